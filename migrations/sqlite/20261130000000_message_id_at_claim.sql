-- no-transaction
-- A warm-up row gets its Message-ID when it is claimed for sending, not when it is planned
-- (issue 4: a day's million planned rows each paid an insertion into the unique index of
-- 45-byte texts, a third of planning's time). `message_id` becomes NULL until the claim, and
-- its unique index holds only the rows that have one. Every row that ever reached the relay
-- has one: a row is `sending` from its claim on, and the CHECK below says so.
--
-- SQLite cannot drop NOT NULL or UNIQUE from a column: the table is rebuilt (the procedure
-- of https://sqlite.org/lang_altertable.html#otheralter), foreign keys off around it, in one
-- transaction of its own. The triggers of other tables that read the outbox are dropped and
-- made again around the swap. AUTOINCREMENT's high mark moves with the rows, so no id is
-- ever handed out twice.
PRAGMA foreign_keys = OFF;
BEGIN;

DROP TRIGGER placements_rollup;
DROP TRIGGER engagement_events_rollup;

CREATE TABLE outbox_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id),
    seed_id     BIGINT NOT NULL REFERENCES seeds (id),
    kind        TEXT NOT NULL CHECK (kind IN ('warmup', 'reply')),
    -- Set by the claim (warm-up rows) or at enqueue (replies); kept across retries.
    message_id  TEXT,
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
    body        TEXT,
    -- Exactly the rows being sent hold a lease.
    CHECK ((status = 'sending') = (lease_until IS NOT NULL)
       AND (status <> 'sending' OR lease_owner IS NOT NULL)),
    -- Only a row that never went to the relay may lack a Message-ID.
    CHECK (message_id IS NOT NULL OR status IN ('planned', 'cancelled'))
);

INSERT INTO outbox_new (id, campaign_id, seed_id, kind, message_id, subject, in_reply_to,
    status, plan_day, run_at, lease_owner, lease_until, attempts, last_error, sent_at,
    smtp_reply, created_at, body)
SELECT id, campaign_id, seed_id, kind, message_id, subject, in_reply_to,
    status, plan_day, run_at, lease_owner, lease_until, attempts, last_error, sent_at,
    smtp_reply, created_at, body
FROM outbox;

UPDATE sqlite_sequence SET seq = (SELECT seq FROM sqlite_sequence WHERE name = 'outbox')
WHERE name = 'outbox_new' AND EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'outbox');

DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;

CREATE UNIQUE INDEX outbox_message_id ON outbox (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX outbox_leased ON outbox (lease_until, id) WHERE status = 'sending';
CREATE INDEX outbox_campaign_id_plan_day ON outbox (campaign_id, plan_day);
CREATE INDEX outbox_replies ON outbox (status, run_at, id) WHERE kind = 'reply';
CREATE INDEX outbox_in_reply_to ON outbox (in_reply_to) WHERE in_reply_to IS NOT NULL;
CREATE INDEX outbox_seed_sent ON outbox (seed_id) WHERE status = 'sent';
CREATE INDEX outbox_due ON outbox ((run_at / 900), id) WHERE status = 'planned';

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

-- The rebuilt table satisfies the references it had, and the ones to it still hold: a
-- violation fails the CHECK, and the transaction with it.
CREATE TEMP TABLE outbox_fk_violations (n INTEGER NOT NULL CHECK (n = 0));
INSERT INTO outbox_fk_violations SELECT COUNT(*) FROM pragma_foreign_key_check;
DROP TABLE outbox_fk_violations;

COMMIT;
PRAGMA foreign_keys = ON;
