-- no-transaction
-- A folder scan records a thousand placements in a few statements (issue 5: Hearth's scan of
-- 1,000 new messages should take no longer than a plain IMAP client's SEARCH and FETCH), so
-- what the database does per placement row counts. Two things did more than the row itself:
--
-- * `UNIQUE (message_id)`: a second unique index of 45-byte texts, redundant (a placement is
--   one per outbox row, `outbox_id` is UNIQUE, and the outbox's Message-IDs are unique).
--   Lookups by Message-ID go through the outbox's index.
-- * The trigger `placements_rollup`, which per inserted row read the outbox row and rewrote
--   the campaign day's mark in `rollup_dirty`. SQLite has no statement triggers, and it
--   commits one writer at a time: the roll-up refresh finds the placements inserted since
--   it last looked by their ids instead (`rollup_watermark`, advanced in the refresh's own
--   transaction), which no writer can forget and which costs the writers nothing.
--
-- SQLite cannot drop a UNIQUE constraint: the table is rebuilt as the outbox was (migration
-- 20261130000000): foreign keys off around one transaction, the trigger of
-- `engagement_events` that reads `placements` dropped and made again, AUTOINCREMENT's high
-- mark carried over (also for an empty table), the references checked before COMMIT.
PRAGMA foreign_keys = OFF;
BEGIN;

DROP TRIGGER placements_rollup;
DROP TRIGGER engagement_events_rollup;

-- The placement ledger: one row per message, ever.
CREATE TABLE placements_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id        BIGINT NOT NULL UNIQUE REFERENCES outbox (id),
    seed_id          BIGINT NOT NULL REFERENCES seeds (id),
    -- The outbox row's, kept beside it for the ledger's readers.
    message_id       TEXT NOT NULL,
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
    created_at       BIGINT NOT NULL,
    gmail_labels     TEXT,
    gmail_tab        TEXT CHECK (gmail_tab IN ('primary', 'promotions', 'social', 'updates', 'forums'))
);

INSERT INTO placements_new (id, outbox_id, seed_id, message_id, placement, folder, provider,
    seen_at, latency_secs, auth_spf, auth_dkim, auth_dmarc, auth_results, imap_uidvalidity,
    imap_uid, created_at, gmail_labels, gmail_tab)
SELECT id, outbox_id, seed_id, message_id, placement, folder, provider,
    seen_at, latency_secs, auth_spf, auth_dkim, auth_dmarc, auth_results, imap_uidvalidity,
    imap_uid, created_at, gmail_labels, gmail_tab
FROM placements;

DELETE FROM sqlite_sequence WHERE name = 'placements_new';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'placements_new', seq FROM sqlite_sequence WHERE name = 'placements';

DROP TABLE placements;
ALTER TABLE placements_new RENAME TO placements;
CREATE INDEX placements_seed_id ON placements (seed_id);

-- The last placement id whose campaign day the roll-up refresh has marked dirty. Every
-- placement so far was marked by the trigger this migration drops.
CREATE TABLE rollup_watermark (
    name    TEXT PRIMARY KEY,
    last_id BIGINT NOT NULL
);
INSERT INTO rollup_watermark (name, last_id)
SELECT 'placements', COALESCE(MAX(id), 0) FROM placements;

CREATE TRIGGER engagement_events_rollup AFTER INSERT ON engagement_events
BEGIN
    INSERT INTO rollup_dirty (campaign_id, plan_day)
    SELECT o.campaign_id, o.plan_day FROM placements p JOIN outbox o ON o.id = p.outbox_id
    WHERE p.id = NEW.placement_id AND o.plan_day IS NOT NULL
    ON CONFLICT (campaign_id, plan_day) DO UPDATE SET gen = rollup_dirty.gen + 1;
END;

-- The rebuilt table satisfies the references it had, and the ones to it still hold: a
-- violation fails the CHECK, and the transaction with it.
CREATE TEMP TABLE placements_fk_violations (n INTEGER NOT NULL CHECK (n = 0));
INSERT INTO placements_fk_violations SELECT COUNT(*) FROM pragma_foreign_key_check;
DROP TABLE placements_fk_violations;

COMMIT;
PRAGMA foreign_keys = ON;
