-- Reports, placement guard and webhooks (SQLite). Keep it logically identical to
-- migrations/postgres/20261129000010_rollups.sql. The triggers differ in form only:
-- SQLite's fire per row, PostgreSQL's per statement over the transition tables.

-- Daily roll-ups: one row per campaign, plan day and provider, recomputed from the outbox,
-- the ledger and the engagement events by `store::rollup::refresh` for every dirty day.
CREATE TABLE placement_rollups (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id),
    day         TEXT   NOT NULL,
    provider    TEXT   NOT NULL CHECK (provider IN ('gmail', 'outlook', 'yahoo', 'other')),
    planned     BIGINT NOT NULL,
    sent        BIGINT NOT NULL,
    failed      BIGINT NOT NULL,
    placed      BIGINT NOT NULL,
    inbox       BIGINT NOT NULL,
    spam        BIGINT NOT NULL,
    promotions  BIGINT NOT NULL,
    other       BIGINT NOT NULL,
    missing     BIGINT NOT NULL,
    rescued     BIGINT NOT NULL,
    replied     BIGINT NOT NULL,
    spf_pass    BIGINT NOT NULL,
    spf_seen    BIGINT NOT NULL,
    dkim_pass   BIGINT NOT NULL,
    dkim_seen   BIGINT NOT NULL,
    dmarc_pass  BIGINT NOT NULL,
    dmarc_seen  BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, day, provider)
);

-- Delivery latency of the same rows as a log-bucket histogram (src/report/latency.rs).
CREATE TABLE rollup_latency (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id),
    day         TEXT   NOT NULL,
    provider    TEXT   NOT NULL CHECK (provider IN ('gmail', 'outlook', 'yahoo', 'other')),
    bucket      BIGINT NOT NULL CHECK (bucket BETWEEN 0 AND 95),
    n           BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, day, provider, bucket)
);

-- Campaign days whose roll-ups are stale. Written by the triggers below in the writer's own
-- transaction; `gen` grows with every write so that a refresh only clears what it saw.
CREATE TABLE rollup_dirty (
    campaign_id BIGINT NOT NULL,
    plan_day    TEXT   NOT NULL,
    gen         BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (campaign_id, plan_day)
);

-- The roll-up reads a campaign day's rows: index by both (serves lookups by campaign too).
DROP INDEX outbox_campaign_id;
CREATE INDEX outbox_campaign_id_plan_day ON outbox (campaign_id, plan_day);

CREATE TRIGGER outbox_rollup_insert AFTER INSERT ON outbox
WHEN NEW.plan_day IS NOT NULL
BEGIN
    INSERT INTO rollup_dirty (campaign_id, plan_day) VALUES (NEW.campaign_id, NEW.plan_day)
    ON CONFLICT (campaign_id, plan_day) DO UPDATE SET gen = rollup_dirty.gen + 1;
END;

CREATE TRIGGER outbox_rollup_status AFTER UPDATE OF status ON outbox
WHEN NEW.plan_day IS NOT NULL AND NEW.status <> OLD.status
BEGIN
    INSERT INTO rollup_dirty (campaign_id, plan_day) VALUES (NEW.campaign_id, NEW.plan_day)
    ON CONFLICT (campaign_id, plan_day) DO UPDATE SET gen = rollup_dirty.gen + 1;
END;

CREATE TRIGGER placements_rollup AFTER INSERT ON placements
BEGIN
    INSERT INTO rollup_dirty (campaign_id, plan_day)
    SELECT o.campaign_id, o.plan_day FROM outbox o
    WHERE o.id = NEW.outbox_id AND o.plan_day IS NOT NULL
    ON CONFLICT (campaign_id, plan_day) DO UPDATE SET gen = rollup_dirty.gen + 1;
END;

CREATE TRIGGER engagement_events_rollup AFTER INSERT ON engagement_events
BEGIN
    INSERT INTO rollup_dirty (campaign_id, plan_day)
    SELECT o.campaign_id, o.plan_day FROM placements p JOIN outbox o ON o.id = p.outbox_id
    WHERE p.id = NEW.placement_id AND o.plan_day IS NOT NULL
    ON CONFLICT (campaign_id, plan_day) DO UPDATE SET gen = rollup_dirty.gen + 1;
END;

-- A provider whose ramp is held for one campaign (the planner skips its seeds) while
-- `released_at` is NULL. Lifted by a person only; the guard then judges only what was sent
-- after the release.
CREATE TABLE provider_holds (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id),
    provider    TEXT   NOT NULL CHECK (provider IN ('gmail', 'outlook', 'yahoo', 'other')),
    reason      TEXT   NOT NULL CHECK (reason IN ('manual', 'preflight', 'placement', 'bounces', 'sender_error')),
    detail      TEXT,
    held_at     BIGINT NOT NULL,
    released_at BIGINT,
    PRIMARY KEY (campaign_id, provider)
);

-- Every campaign status change and every finished preflight run, written by triggers in
-- the same transaction as the change: the source of the webhooks and of the guard's
-- "since the last resume".
CREATE TABLE state_events (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id      BIGINT REFERENCES campaigns (id),
    preflight_run_id BIGINT REFERENCES preflight_runs (id) ON DELETE CASCADE,
    old_status       TEXT CHECK (old_status IN ('draft', 'active', 'paused', 'completed')),
    new_status       TEXT CHECK (new_status IN ('draft', 'active', 'paused', 'completed')),
    pause_reason     TEXT CHECK (pause_reason IN ('manual', 'preflight', 'placement', 'bounces', 'sender_error')),
    pause_detail     TEXT,
    verdict          TEXT CHECK (verdict IN ('pass', 'warn', 'fail', 'unknown')),
    at               BIGINT NOT NULL,
    CHECK ((campaign_id IS NULL) <> (preflight_run_id IS NULL))
);
CREATE INDEX state_events_campaign_id ON state_events (campaign_id, id);

CREATE TRIGGER campaigns_state_event AFTER UPDATE OF status ON campaigns
WHEN NEW.status <> OLD.status
BEGIN
    INSERT INTO state_events (campaign_id, old_status, new_status, pause_reason, pause_detail, at)
    VALUES (NEW.id, OLD.status, NEW.status, NEW.pause_reason, NEW.pause_detail, NEW.updated_at);
END;

CREATE TRIGGER preflight_runs_state_event AFTER UPDATE OF finished_at ON preflight_runs
WHEN OLD.finished_at IS NULL AND NEW.finished_at IS NOT NULL
BEGIN
    INSERT INTO state_events (preflight_run_id, verdict, at)
    VALUES (NEW.id, NEW.verdict, NEW.finished_at);
END;

-- One delivery of one event to one configured webhook, with retries (an outbox).
CREATE TABLE webhook_deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    BIGINT NOT NULL REFERENCES state_events (id) ON DELETE CASCADE,
    endpoint    TEXT   NOT NULL,
    status      TEXT   NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'skipped')),
    attempts    BIGINT NOT NULL DEFAULT 0,
    run_at      BIGINT NOT NULL,
    lease_until BIGINT,
    last_error  TEXT,
    done_at     BIGINT,
    UNIQUE (event_id, endpoint)
);
CREATE INDEX webhook_deliveries_status_run_at ON webhook_deliveries (status, run_at);
