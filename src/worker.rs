//! The production loops. Each calls one step function (the same the tests call) on a timer,
//! records what happened on the status board, and stops when the shutdown token fires.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::engagement::pool::SessionLimits;
use crate::engagement::scan;
use crate::engagement::seed_worker::SeedWorker;
use crate::sender::Dispatcher;
use crate::startup::App;
use crate::status::Health;
use crate::store;

/// Most outbox rows one dispatcher pass claims; a full pass is followed by another at once.
const DISPATCH_BATCH: i64 = 1_000;

/// Runs `step` every `every` until `shutdown`. A step in flight is finished, not cut.
async fn every<F, Fut>(every: Duration, shutdown: CancellationToken, mut step: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => step().await,
        }
    }
}

/// The daily preflight of running campaigns, on the configured cron schedule (UTC).
pub async fn start_cron(app: &App) -> anyhow::Result<tokio_cron_scheduler::JobScheduler> {
    use tokio_cron_scheduler::{Job, JobScheduler};
    let sched = JobScheduler::new().await?;
    let a = app.clone();
    let job = Job::new_async(app.config.preflight.schedule.as_str(), move |_, _| {
        let a = a.clone();
        Box::pin(async move {
            match crate::preflight::gate::recheck_all(&a, false).await {
                Ok(applied) => tracing::info!(?applied, "scheduled preflight done"),
                Err(e) => tracing::error!(error = %format!("{e:#}"), "scheduled preflight failed"),
            }
        })
    })
    .map_err(|e| {
        anyhow::anyhow!(
            "preflight.schedule {:?}: {e}",
            app.config.preflight.schedule
        )
    })?;
    sched.add(job).await?;
    sched.start().await?;
    Ok(sched)
}

pub fn spawn_all(app: &App, tracker: &TaskTracker, shutdown: CancellationToken) {
    use crate::clock::scaled;
    let clock = app.clock.as_ref();
    let a = app.clone();
    tracker.spawn(every(
        scaled(clock, Duration::from_secs(60), Duration::from_secs(1)),
        shutdown.clone(),
        move || {
            let a = a.clone();
            async move {
                match crate::scheduler::run_once(&a).await {
                    Ok(_) => a
                        .status
                        .set("scheduler", Health::Ok, "planning", a.clock.now()),
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "planning failed");
                        a.status.set(
                            "scheduler",
                            Health::Failing,
                            format!("{e:#}"),
                            a.clock.now(),
                        );
                    }
                }
            }
        },
    ));

    let a = app.clone();
    let dispatcher = std::sync::Arc::new(Dispatcher::new(app.clone()));
    let tick = scaled(clock, Duration::from_secs(5), Duration::from_millis(200));
    let stop = shutdown.clone();
    tracker.spawn(every(tick, shutdown.clone(), move || {
        let a = a.clone();
        let d = dispatcher.clone();
        let stop = stop.clone();
        async move {
            // Everything due, in batches, before the next tick: a backlog (after a pause or
            // a relay outage) drains at the dispatcher's pace instead of a batch per tick.
            let mut result = Ok(crate::sender::DispatchReport::default());
            while let Ok(total) = &result {
                match d.run_once(DISPATCH_BATCH).await {
                    Ok(pass) => {
                        let full = pass.claimed as i64 >= DISPATCH_BATCH;
                        result = Ok(total.clone().plus(&pass));
                        if !full || stop.is_cancelled() {
                            break;
                        }
                    }
                    Err(e) => result = Err(e),
                }
            }
            match result {
                Ok(r) if r.claimed == 0 => {}
                Ok(r) => {
                    let health = if r.sent == r.claimed {
                        Health::Ok
                    } else {
                        Health::Degraded
                    };
                    a.status
                        .set("sender", health, format!("{r:?}"), a.clock.now());
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "dispatch failed");
                    a.status
                        .set("sender", Health::Failing, format!("{e:#}"), a.clock.now());
                }
            }
        }
    }));

    // Interrupted sends (a node died mid-transaction) are settled before anything is resent.
    let a = app.clone();
    let period = Duration::from_secs(app.config.warmup.lease_secs.min(60));
    tracker.spawn(every(
        scaled(clock, period, Duration::from_secs(1)),
        shutdown.clone(),
        move || {
            let a = a.clone();
            async move {
                match crate::sender::reconcile::run_once(&a).await {
                    Ok(r) if r == Default::default() => {}
                    Ok(r) => tracing::info!(report = ?r, "reconciled interrupted sends"),
                    Err(e) => tracing::error!(error = %format!("{e:#}"), "reconciliation failed"),
                }
            }
        },
    ));

    let a = app.clone();
    tracker.spawn(every(
        Duration::from_secs(300),
        shutdown.clone(),
        move || {
            let a = a.clone();
            async move { probe_servers(&a).await }
        },
    ));

    let a = app.clone();
    let interval = scaled(
        clock,
        Duration::from_secs(app.config.warmup.scan_interval_secs),
        Duration::from_secs(1),
    );
    tracker.spawn(every(interval, shutdown.clone(), move || {
        let a = a.clone();
        async move {
            sweep_missing(&a).await;
            // Replies queued by the seed workers, their placement at the senders, retention.
            crate::engagement::upkeep::run_once(&a).await;
            // The roll-ups brought up to date, then the placement guard.
            after_scan(&a).await;
        }
    }));

    let a = app.clone();
    let t = tracker.clone();
    let limits = SessionLimits::new(&app.config.imap);
    let running = Running::default();
    let stop = shutdown.clone();
    tracker.spawn(every(
        scaled(clock, Duration::from_secs(60), Duration::from_secs(1)),
        shutdown.clone(),
        move || {
            let shutdown = &stop;
            let (a, t, limits, shutdown) = (a.clone(), t.clone(), limits.clone(), shutdown.clone());
            let running = running.clone();
            async move { start_seed_workers(&a, &t, &limits, &running, &shutdown).await }
        },
    ));

    let a = app.clone();
    tracker.spawn(every(
        scaled(clock, Duration::from_secs(10), Duration::from_secs(1)),
        shutdown,
        move || {
            let a = a.clone();
            async move {
                match crate::webhooks::run_once(&a).await {
                    Ok(r) if r == Default::default() => {}
                    Ok(r) => tracing::info!(report = ?r, "webhooks"),
                    Err(e) => tracing::error!(error = %format!("{e:#}"), "webhook step failed"),
                }
            }
        },
    ));
}

/// After a scan: bring the daily roll-ups up to date, then let the placement guard judge the
/// active campaigns (pauses and provider holds).
pub async fn after_scan(app: &App) {
    if let Err(e) = store::rollup::refresh(&app.store, None, store::rollup::DEFAULT_BATCH).await {
        tracing::error!(error = %e, "roll-up refresh failed");
    }
    match crate::report::guard::run_once(app).await {
        Ok(r) => {
            let health = if r.paused.is_empty() && r.held.is_empty() && r.warned.is_empty() {
                Health::Ok
            } else {
                Health::Degraded
            };
            app.status
                .set("placement guard", health, format!("{r:?}"), app.clock.now());
        }
        Err(e) => {
            tracing::error!(error = %e, "placement guard failed");
            app.status.set(
                "placement guard",
                Health::Failing,
                e.to_string(),
                app.clock.now(),
            );
        }
    }
}

/// Seeds whose worker is running.
type Running = std::sync::Arc<std::sync::Mutex<std::collections::HashSet<i64>>>;

/// Starts a [`SeedWorker`] for every seed that is not disabled and has none yet (seeds added
/// by a config sync or an import get theirs within a minute). A worker ends when its seed is
/// disabled or removed, or at shutdown (the tracker waits for it to log out).
async fn start_seed_workers(
    app: &App,
    tracker: &TaskTracker,
    limits: &std::sync::Arc<SessionLimits>,
    running: &Running,
    shutdown: &CancellationToken,
) {
    let seeds = match store::seeds::list(app.store.pool()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot list seeds for the IMAP workers");
            return;
        }
    };
    for seed in seeds {
        if seed.status == crate::domain::SeedStatus::Disabled {
            continue;
        }
        if !running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(seed.id)
        {
            continue;
        }
        let worker = SeedWorker::new(app.clone(), limits.clone(), seed.id);
        let (running, shutdown, id) = (running.clone(), shutdown.clone(), seed.id);
        tracker.spawn(async move {
            worker.run(shutdown).await;
            running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        });
    }
}

/// Records as `missing` every sent message not seen in its seed inbox in time.
pub async fn sweep_missing(app: &App) {
    let now = app.clock.now();
    let cutoff = now - app.config.warmup.missing_after_minutes as i64 * 60;
    match store::ledger::record_missing(app.store.pool(), cutoff, now).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(count = n, "messages recorded as missing"),
        Err(e) => tracing::error!(error = %e, "missing sweep failed"),
    }
}

/// One pass over all seeds without the per-seed workers: records overdue mail as missing,
/// scans every seed that has sent mail not yet in the ledger (a session each, opened and
/// closed), engages with what was found, then sends the queued replies, reads where they
/// landed and applies retention (`engagement::upkeep`). One seed's failure does not stop the others.
/// `serve` runs [`SeedWorker`]s instead; this is the same work in one call, for tests and tools.
pub async fn scan_pending(app: &App) {
    let pool = app.store.pool();
    sweep_missing(app).await;
    let seeds = match store::ledger::seeds_awaiting_placement(pool).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot list seeds to scan");
            return;
        }
    };
    for seed in seeds {
        let component = format!("seed {}", seed.record.address);
        match scan::scan_seed(app, &seed).await {
            Ok(r) => app.status.set(
                component,
                Health::Ok,
                format!(
                    "scanned {} folders, {} new placements",
                    r.folders.len(),
                    r.recorded
                ),
                app.clock.now(),
            ),
            Err(e) => {
                tracing::warn!(seed = %seed.record.address, error = %e, "scan failed");
                app.status
                    .set(component, Health::Failing, e.to_string(), app.clock.now());
            }
        }
    }
    let since = app.clock.now() - 7 * 86_400;
    let to_engage = match store::ledger::seeds_to_engage(pool, since).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::error!(error = %e, "cannot list seeds to engage");
            return;
        }
    };
    for id in to_engage {
        let Ok(Some(seed)) = store::seeds::get(pool, id).await else {
            continue;
        };
        match crate::engagement::act::engage_seed(app, &seed).await {
            Ok(r) if r.performed + r.recognised > 0 => {
                tracing::info!(seed = %seed.record.address, report = ?r, "engaged")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(seed = %seed.record.address, error = %e, "engagement failed"),
        }
    }
    crate::engagement::upkeep::run_once(app).await;
}

/// Checks that every sender's SMTP relay and every seed's IMAP server accepts a connection,
/// so a server that cannot reach them still says clearly which and why (`/readyz`, logs).
/// This is reachability only; the full checks of the identity are preflight's.
pub async fn probe_servers(app: &App) {
    let pool = app.store.pool();
    let mut targets = Vec::new();
    match store::senders::list(pool).await {
        Ok(senders) => targets.extend(
            senders
                .into_iter()
                .map(|s| (format!("sender {} smtp", s.record.name), s.record.smtp)),
        ),
        Err(e) => tracing::error!(error = %e, "cannot list senders"),
    }
    match store::seeds::list(pool).await {
        Ok(seeds) => targets.extend(
            seeds
                .into_iter()
                .filter(|s| s.status != crate::domain::SeedStatus::Disabled)
                .map(|s| (format!("seed {} imap", s.record.address), s.record.imap)),
        ),
        Err(e) => tracing::error!(error = %e, "cannot list seeds"),
    }
    for (component, endpoint) in targets {
        let addr = endpoint.display_addr();
        let host = endpoint
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let result = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect((host.as_str(), endpoint.port)),
        )
        .await;
        let now = app.clock.now();
        match result {
            Ok(Ok(_)) => app
                .status
                .set(component, Health::Ok, format!("{addr} reachable"), now),
            Ok(Err(e)) => {
                tracing::warn!(%component, %addr, error = %e, "server unreachable");
                app.status.set(
                    component,
                    Health::Failing,
                    format!("{addr} unreachable: {e}"),
                    now,
                );
            }
            Err(_) => {
                tracing::warn!(%component, %addr, "server unreachable: timed out");
                app.status.set(
                    component,
                    Health::Failing,
                    format!("{addr} unreachable: timed out after 5 s"),
                    now,
                );
            }
        }
    }
}
