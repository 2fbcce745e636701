-- Hearth's initial schema (SQLite). Keep it logically identical to
-- migrations/postgres/20261129000000_initial.sql: only the id columns differ.
--
-- Conventions: times are BIGINT unix epoch seconds; booleans are BIGINT 0/1; every
-- lifecycle or classification column is TEXT with a CHECK listing exactly the words of
-- its Rust enum (src/domain/status.rs, TlsMode in src/domain/endpoint.rs). A unit test in
-- src/store/schema_check.rs fails when an enum and a CHECK list drift apart.

CREATE TABLE settings (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE senders (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE,
    address       TEXT NOT NULL,
    display_name  TEXT,
    helo          TEXT NOT NULL,
    ips           TEXT NOT NULL DEFAULT '',
    smtp_host     TEXT NOT NULL,
    smtp_port     BIGINT NOT NULL CHECK (smtp_port BETWEEN 1 AND 65535),
    smtp_tls      TEXT NOT NULL CHECK (smtp_tls IN ('implicit', 'starttls', 'none')),
    smtp_ca_file  TEXT,
    smtp_username TEXT NOT NULL,
    smtp_secret   TEXT NOT NULL,
    dkim_domain   TEXT,
    dkim_selector TEXT,
    dkim_key_file TEXT,
    imap_host     TEXT,
    imap_port     BIGINT CHECK (imap_port BETWEEN 1 AND 65535),
    imap_tls      TEXT CHECK (imap_tls IN ('implicit', 'starttls', 'none')),
    imap_ca_file  TEXT,
    imap_username TEXT,
    imap_secret   TEXT,
    source        TEXT NOT NULL CHECK (source IN ('config', 'import', 'api')),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    -- DKIM and IMAP are each all-or-nothing (a CA file stays optional).
    CHECK ((dkim_domain IS NULL) = (dkim_selector IS NULL)
       AND (dkim_domain IS NULL) = (dkim_key_file IS NULL)),
    CHECK ((imap_host IS NULL) = (imap_port IS NULL)
       AND (imap_host IS NULL) = (imap_tls IS NULL)
       AND (imap_host IS NULL) = (imap_username IS NULL)
       AND (imap_host IS NULL) = (imap_secret IS NULL))
);

CREATE TABLE seeds (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    address       TEXT NOT NULL UNIQUE,
    provider      TEXT NOT NULL CHECK (provider IN ('gmail', 'outlook', 'yahoo', 'other')),
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'broken', 'disabled')),
    status_reason TEXT,
    imap_host     TEXT NOT NULL,
    imap_port     BIGINT NOT NULL CHECK (imap_port BETWEEN 1 AND 65535),
    imap_tls      TEXT NOT NULL CHECK (imap_tls IN ('implicit', 'starttls', 'none')),
    imap_ca_file  TEXT,
    imap_username TEXT NOT NULL,
    imap_secret   TEXT NOT NULL,
    smtp_host     TEXT,
    smtp_port     BIGINT CHECK (smtp_port BETWEEN 1 AND 65535),
    smtp_tls      TEXT CHECK (smtp_tls IN ('implicit', 'starttls', 'none')),
    smtp_ca_file  TEXT,
    smtp_username TEXT,
    smtp_secret   TEXT,
    -- JSON object of folder-name overrides; opaque to the store.
    folders       TEXT NOT NULL DEFAULT '{}',
    source        TEXT NOT NULL CHECK (source IN ('config', 'import', 'api')),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    CHECK ((smtp_host IS NULL) = (smtp_port IS NULL)
       AND (smtp_host IS NULL) = (smtp_tls IS NULL)
       AND (smtp_host IS NULL) = (smtp_username IS NULL)
       AND (smtp_host IS NULL) = (smtp_secret IS NULL))
);

CREATE TABLE campaigns (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL UNIQUE,
    sender_id    BIGINT NOT NULL REFERENCES senders (id),
    -- JSON of the ramp plan; opaque to the store.
    plan         TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'active', 'paused', 'completed')),
    pause_reason TEXT CHECK (pause_reason IN ('manual', 'preflight', 'placement', 'bounces', 'sender_error')),
    pause_detail TEXT,
    auto_resume  BIGINT NOT NULL DEFAULT 1 CHECK (auto_resume IN (0, 1)),
    started_at   BIGINT,
    source       TEXT NOT NULL CHECK (source IN ('config', 'import', 'api')),
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    -- A paused campaign always says why; any other status has no pause reason.
    CHECK ((status = 'paused') = (pause_reason IS NOT NULL))
);
CREATE INDEX campaigns_sender_id ON campaigns (sender_id);

CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id),
    seed_id     BIGINT NOT NULL REFERENCES seeds (id),
    kind        TEXT NOT NULL CHECK (kind IN ('warmup', 'reply')),
    message_id  TEXT NOT NULL UNIQUE,
    subject     TEXT NOT NULL,
    in_reply_to TEXT,
    status      TEXT NOT NULL DEFAULT 'planned' CHECK (status IN ('planned', 'sending', 'sent', 'failed', 'cancelled')),
    -- YYYY-MM-DD in the sender's time zone: the plan day this send counts against.
    plan_day    TEXT,
    run_at      BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    attempts    BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT,
    sent_at     BIGINT,
    smtp_reply  TEXT,
    created_at  BIGINT NOT NULL,
    -- Exactly the rows being sent hold a lease.
    CHECK ((status = 'sending') = (lease_until IS NOT NULL)
       AND (status <> 'sending' OR lease_owner IS NOT NULL))
);
CREATE INDEX outbox_status_run_at ON outbox (status, run_at);
CREATE INDEX outbox_campaign_id ON outbox (campaign_id);
CREATE INDEX outbox_seed_id ON outbox (seed_id);

-- The placement ledger: one row per message, ever.
CREATE TABLE placements (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id        BIGINT NOT NULL UNIQUE REFERENCES outbox (id),
    seed_id          BIGINT NOT NULL REFERENCES seeds (id),
    message_id       TEXT NOT NULL UNIQUE,
    placement        TEXT NOT NULL CHECK (placement IN ('inbox', 'spam', 'promotions', 'other', 'missing')),
    folder           TEXT,
    provider         TEXT NOT NULL CHECK (provider IN ('gmail', 'outlook', 'yahoo', 'other')),
    seen_at          BIGINT,
    latency_secs     BIGINT,
    auth_spf         TEXT,
    auth_dkim        TEXT,
    auth_dmarc       TEXT,
    auth_results     TEXT,
    imap_uidvalidity BIGINT,
    imap_uid         BIGINT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX placements_seed_id ON placements (seed_id);

CREATE TABLE engagement_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    placement_id BIGINT NOT NULL REFERENCES placements (id),
    action       TEXT NOT NULL CHECK (action IN ('open', 'star', 'important', 'rescue', 'reply', 'file', 'delete')),
    at           BIGINT NOT NULL,
    detail       TEXT,
    UNIQUE (placement_id, action)
);

CREATE TABLE preflight_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sender_id   BIGINT NOT NULL REFERENCES senders (id),
    trigger     TEXT NOT NULL CHECK (trigger IN ('start', 'schedule', 'manual', 'send_failure')),
    verdict     TEXT CHECK (verdict IN ('pass', 'warn', 'fail', 'unknown')),
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    -- A run has a verdict exactly when it has finished.
    CHECK ((verdict IS NULL) = (finished_at IS NULL))
);
CREATE INDEX preflight_runs_sender_id ON preflight_runs (sender_id, id);

CREATE TABLE preflight_results (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      BIGINT NOT NULL REFERENCES preflight_runs (id) ON DELETE CASCADE,
    check_id    TEXT NOT NULL,
    verdict     TEXT NOT NULL CHECK (verdict IN ('pass', 'warn', 'fail', 'unknown')),
    evidence    TEXT NOT NULL,
    remediation TEXT
);
CREATE INDEX preflight_results_run_id ON preflight_results (run_id);

CREATE TABLE imap_cursors (
    seed_id     BIGINT NOT NULL REFERENCES seeds (id) ON DELETE CASCADE,
    folder      TEXT NOT NULL,
    uidvalidity BIGINT NOT NULL,
    last_uid    BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (seed_id, folder)
);
