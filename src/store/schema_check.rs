//! The enums and the schema cannot drift: every status column's CHECK list, in both
//! migration directories, holds exactly the words of its enum.

use crate::domain::{
    CampaignStatus, EngagementAction, GmailTab, OutboxStatus, PauseReason, Placement,
    PreflightTrigger, Provider, SeedStatus, SendKind, Source, TlsMode, Verdict,
};

const SQLITE: &str = include_str!("../../migrations/sqlite/20261129000000_initial.sql");
const POSTGRES: &str = include_str!("../../migrations/postgres/20261129000000_initial.sql");
const GMAIL_SQLITE: &str = include_str!("../../migrations/sqlite/20261129000070_gmail_labels.sql");
const GMAIL_POSTGRES: &str =
    include_str!("../../migrations/postgres/20261129000070_gmail_labels.sql");

fn words<T: Copy>(all: &[T], as_str: fn(T) -> &'static str) -> Vec<String> {
    all.iter().map(|v| as_str(*v).to_owned()).collect()
}

/// (table, column, the enum's words) for every enumerated column.
fn enumerated_columns() -> Vec<(&'static str, &'static str, Vec<String>)> {
    let tls = || words(TlsMode::ALL, TlsMode::as_str);
    let source = || words(Source::ALL, Source::as_str);
    let provider = || words(Provider::ALL, Provider::as_str);
    let verdict = || words(Verdict::ALL, Verdict::as_str);
    vec![
        ("senders", "smtp_tls", tls()),
        ("senders", "imap_tls", tls()),
        ("senders", "source", source()),
        ("seeds", "provider", provider()),
        (
            "seeds",
            "status",
            words(SeedStatus::ALL, SeedStatus::as_str),
        ),
        ("seeds", "imap_tls", tls()),
        ("seeds", "smtp_tls", tls()),
        ("seeds", "source", source()),
        (
            "campaigns",
            "status",
            words(CampaignStatus::ALL, CampaignStatus::as_str),
        ),
        (
            "campaigns",
            "pause_reason",
            words(PauseReason::ALL, PauseReason::as_str),
        ),
        ("campaigns", "source", source()),
        ("outbox", "kind", words(SendKind::ALL, SendKind::as_str)),
        (
            "outbox",
            "status",
            words(OutboxStatus::ALL, OutboxStatus::as_str),
        ),
        (
            "placements",
            "placement",
            words(Placement::ALL, Placement::as_str),
        ),
        ("placements", "provider", provider()),
        (
            "engagement_events",
            "action",
            words(EngagementAction::ALL, EngagementAction::as_str),
        ),
        (
            "preflight_runs",
            "trigger",
            words(PreflightTrigger::ALL, PreflightTrigger::as_str),
        ),
        ("preflight_runs", "verdict", verdict()),
        ("preflight_results", "verdict", verdict()),
    ]
}

/// The text of `CREATE TABLE <table> ( … );`.
fn table_body<'a>(sql: &'a str, table: &str) -> &'a str {
    let start_marker = format!("CREATE TABLE {table} (");
    let start = sql
        .find(&start_marker)
        .unwrap_or_else(|| panic!("no CREATE TABLE {table}"));
    let body = &sql[start + start_marker.len()..];
    &body[..body.find("\n);").expect("table body ends with a line ');'")]
}

/// The quoted words of `CHECK (<column> IN ('a', 'b'))` in the table body.
fn check_words(body: &str, column: &str) -> Vec<String> {
    let marker = format!("CHECK ({column} IN (");
    let mut found = body.match_indices(&marker);
    let (at, _) = found
        .next()
        .unwrap_or_else(|| panic!("no `{marker}` in the table"));
    assert!(found.next().is_none(), "two `{marker}` in one table");
    let list = &body[at + marker.len()..];
    let list = &list[..list.find(')').expect("closing parenthesis")];
    list.split(',')
        .map(|w| {
            let w = w.trim();
            w.strip_prefix('\'')
                .and_then(|w| w.strip_suffix('\''))
                .unwrap_or_else(|| panic!("{w:?} in `{marker}` is not a quoted word"))
                .to_owned()
        })
        .collect()
}

#[test]
fn every_check_list_matches_its_enum() {
    let columns = enumerated_columns();
    for (file, sql) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
        for (table, column, want) in &columns {
            let mut got = check_words(table_body(sql, table), column);
            let mut want = want.clone();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{file}: CHECK list of {table}.{column}");
        }
        // No enumerated CHECK escapes the list above.
        let text_checks = sql.matches(" IN ('").count();
        assert_eq!(
            text_checks,
            columns.len(),
            "{file}: CHECK (… IN ('…')) count"
        );
    }
}

#[test]
fn lifecycle_words_in_table_checks_are_enum_words() {
    for sql in [SQLITE, POSTGRES] {
        let paused = format!("(status = '{}')", CampaignStatus::Paused.as_str());
        assert!(table_body(sql, "campaigns").contains(&paused));
        let sending = format!("(status = '{}')", OutboxStatus::Sending.as_str());
        let not_sending = format!("status <> '{}'", OutboxStatus::Sending.as_str());
        let outbox = table_body(sql, "outbox");
        assert!(outbox.contains(&sending) && outbox.contains(&not_sending));
        let defaults = [
            ("seeds", SeedStatus::Active.as_str()),
            ("campaigns", CampaignStatus::Draft.as_str()),
            ("outbox", OutboxStatus::Planned.as_str()),
        ];
        for (table, word) in defaults {
            assert!(
                table_body(sql, table).contains(&format!("DEFAULT '{word}'")),
                "{table} default {word}"
            );
        }
    }
}

#[test]
fn both_backends_share_one_logical_schema() {
    // Only the id column type may differ.
    let pg_as_sqlite = POSTGRES
        .replace(
            "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
            "INTEGER PRIMARY KEY AUTOINCREMENT",
        )
        .replace("(PostgreSQL)", "(SQLite)")
        .replace("migrations/sqlite/", "migrations/postgres/");
    assert_eq!(pg_as_sqlite, SQLITE);
}

#[test]
fn columns_added_later_match_their_enums() {
    assert_eq!(GMAIL_SQLITE, GMAIL_POSTGRES, "one logical schema");
    let mut got = check_words(GMAIL_SQLITE, "gmail_tab");
    let mut want = words(GmailTab::ALL, GmailTab::as_str);
    got.sort();
    want.sort();
    assert_eq!(got, want, "CHECK list of placements.gmail_tab");
}

const ROLLUPS_SQLITE: &str = include_str!("../../migrations/sqlite/20261129000010_rollups.sql");
const ROLLUPS_POSTGRES: &str = include_str!("../../migrations/postgres/20261129000010_rollups.sql");

#[test]
fn rollups_migration_check_lists_match_their_enums() {
    use crate::domain::WebhookStatus;
    let provider = || words(Provider::ALL, Provider::as_str);
    let columns = vec![
        ("placement_rollups", "provider", provider()),
        ("rollup_latency", "provider", provider()),
        ("provider_holds", "provider", provider()),
        (
            "provider_holds",
            "reason",
            words(PauseReason::ALL, PauseReason::as_str),
        ),
        (
            "state_events",
            "old_status",
            words(CampaignStatus::ALL, CampaignStatus::as_str),
        ),
        (
            "state_events",
            "new_status",
            words(CampaignStatus::ALL, CampaignStatus::as_str),
        ),
        (
            "state_events",
            "pause_reason",
            words(PauseReason::ALL, PauseReason::as_str),
        ),
        (
            "state_events",
            "verdict",
            words(Verdict::ALL, Verdict::as_str),
        ),
        (
            "webhook_deliveries",
            "status",
            words(WebhookStatus::ALL, WebhookStatus::as_str),
        ),
    ];
    for (file, sql) in [("sqlite", ROLLUPS_SQLITE), ("postgres", ROLLUPS_POSTGRES)] {
        for (table, column, want) in &columns {
            let mut got = check_words(table_body(sql, table), column);
            let mut want = want.clone();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{file}: CHECK list of {table}.{column}");
        }
        assert_eq!(sql.matches(" IN ('").count(), columns.len(), "{file}");
    }
    // The tables are the same on both backends (the triggers differ in form only).
    let tables = |sql: &str| {
        sql[sql.find("CREATE TABLE").unwrap()..]
            .split("CREATE TABLE")
            .map(|t| t[..t.find("\n);").unwrap_or(t.len())].to_owned())
            .collect::<Vec<_>>()
    };
    let pg: Vec<String> = tables(ROLLUPS_POSTGRES)
        .into_iter()
        .map(|t| {
            t.replace(
                "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
                "INTEGER PRIMARY KEY AUTOINCREMENT",
            )
        })
        .collect();
    assert_eq!(pg, tables(ROLLUPS_SQLITE));
}

const PLACEMENT_CHECKS_SQLITE: &str =
    include_str!("../../migrations/sqlite/20261130000020_placements_checks.sql");

/// The quoted words of `CHECK (<column> = 'a' OR <column> = 'b' …)` in the table body.
fn or_words(body: &str, column: &str) -> Vec<String> {
    let marker = format!("{column} = '");
    body.match_indices(&marker)
        .map(|(at, _)| {
            let rest = &body[at + marker.len()..];
            rest[..rest.find('\'').expect("closing quote")].to_owned()
        })
        .collect()
}

#[test]
fn sqlite_placements_checks_written_as_comparisons_match_their_enums() {
    let body = table_body(PLACEMENT_CHECKS_SQLITE, "placements_new");
    let columns = [
        ("placement", words(Placement::ALL, Placement::as_str)),
        ("provider", words(Provider::ALL, Provider::as_str)),
        ("gmail_tab", words(GmailTab::ALL, GmailTab::as_str)),
    ];
    for (column, want) in columns {
        let mut got = or_words(body, column);
        let mut want = want.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want, "CHECK of placements.{column}");
    }
    assert!(
        !body.contains(" IN ("),
        "no IN list left in the ledger's CHECKs"
    );
}
