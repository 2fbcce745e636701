-- no-transaction
-- SQLite compiles a CHECK of the form `column IN ('a', 'b', 'c', …)` into code that, for
-- every row written, fills a temporary B-tree with the list and then searches it: the three
-- such CHECKs of `placements` cost more than the rest of the row's insert together (about
-- 3 µs of 4.5 per row on a two-core machine, `EXPLAIN INSERT INTO placements …` shows the
-- `OpenEphemeral`). The same rules written as comparisons joined by OR cost a few
-- nanoseconds. They accept and refuse exactly the same values, NULL included (a NULL
-- compares to NULL, and a CHECK passes on NULL, as before).
--
-- SQLite cannot change a CHECK in place: the table is rebuilt as in migration
-- 20261130000010 (foreign keys off around one transaction, the trigger of
-- `engagement_events` that reads `placements` dropped and made again, AUTOINCREMENT's high
-- mark carried over, the references checked before COMMIT). Nothing else changes; the
-- roll-up watermark keeps its place, since the ids do.
PRAGMA foreign_keys = OFF;
BEGIN;

DROP TRIGGER engagement_events_rollup;

-- The placement ledger: one row per message, ever.
CREATE TABLE placements_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id        BIGINT NOT NULL UNIQUE REFERENCES outbox (id),
    seed_id          BIGINT NOT NULL REFERENCES seeds (id),
    -- The outbox row's, kept beside it for the ledger's readers.
    message_id       TEXT NOT NULL,
    placement        TEXT NOT NULL CHECK (placement = 'inbox' OR placement = 'spam'
                         OR placement = 'promotions' OR placement = 'other'
                         OR placement = 'missing'),
    folder           TEXT,
    provider         TEXT NOT NULL CHECK (provider = 'gmail' OR provider = 'outlook'
                         OR provider = 'yahoo' OR provider = 'other'),
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
    gmail_tab        TEXT CHECK (gmail_tab = 'primary' OR gmail_tab = 'promotions'
                         OR gmail_tab = 'social' OR gmail_tab = 'updates'
                         OR gmail_tab = 'forums')
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
