//! A small run of `hearth bench planning` on both backends: it plans and inserts every send.

use crate::bench_planning::{PlanningBench, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_planning_bench_runs_on_both_backends() {
    let small = |database_url| PlanningBench {
        campaigns: 40,
        sends: 4_000,
        seeds: 70,
        database_url,
    };
    let code = run(small(None)).await.unwrap();
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    if let Some(admin) = crate::pg::admin_url() {
        assert_eq!(
            run(small(Some(admin))).await.unwrap(),
            std::process::ExitCode::SUCCESS
        );
    }
}
