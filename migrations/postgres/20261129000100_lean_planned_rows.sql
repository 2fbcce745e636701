-- Planning writes a day's warm-up rows in bulk (a million rows for 10,000 campaigns; issue 4
-- wants them computed and written in 5 s), so everything the database does per planned row
-- counts. This migration moves per-row work to per-batch work where a batch can do it:
--
-- * Seeds' caps: the planner needs, per seed, what is already planned for it on the day. That
--   was counted from the outbox through an index on (seed_id, run_at), one entry per row at a
--   random place. `seed_days` keeps the count instead: one row per seed, sender and planning
--   day (the local day of the planning campaigns, as unix bounds), added to by the planning
--   transaction that writes the sends. A seed's load on a day is the sum over every row whose
--   bounds overlap that day: exact for senders in one time zone, and on the safe side (counts
--   more, never less) where senders in several zones share seeds. Cancelled rows stay counted
--   for their day (the seed's room is not handed back mid-day).
-- * The due index keys quarter-hour slots instead of exact times: rows enter it at the end of
--   their slot, not at a random place; the claim reads slot by slot (`run_at / 900`), and
--   within a slot takes what is due.
-- * Roll-up days are marked dirty by the writers, once per batch and campaign day, not by a
--   trigger per inserted row (status changes are still marked by their trigger).
-- * Sent rows by seed (placements awaiting, history) get their own partial index, filled when
--   a row is sent rather than when it is planned.
CREATE TABLE seed_days (
    seed_id     BIGINT NOT NULL REFERENCES seeds (id),
    sender_id   BIGINT NOT NULL,
    day_start   BIGINT NOT NULL,
    day_end     BIGINT NOT NULL CHECK (day_end > day_start),
    planned     BIGINT NOT NULL CHECK (planned >= 0),
    last_run_at BIGINT NOT NULL,
    PRIMARY KEY (seed_id, sender_id, day_start)
);
CREATE INDEX seed_days_day_end ON seed_days (day_end);

-- What the outbox holds already, by UTC day (the planning day of old rows is not known).
INSERT INTO seed_days (seed_id, sender_id, day_start, day_end, planned, last_run_at)
SELECT o.seed_id, c.sender_id, o.run_at - (o.run_at % 86400), o.run_at - (o.run_at % 86400) + 86400,
       COUNT(*), MAX(o.run_at)
FROM outbox o JOIN campaigns c ON c.id = o.campaign_id
WHERE o.kind = 'warmup' AND o.status <> 'cancelled' AND o.status <> 'failed'
GROUP BY o.seed_id, c.sender_id, o.run_at - (o.run_at % 86400);

DROP INDEX outbox_seed_id_run_at;
CREATE INDEX outbox_seed_sent ON outbox (seed_id) WHERE status = 'sent';

DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox ((run_at / 900), id) WHERE status = 'planned';

DROP TRIGGER outbox_rollup_insert ON outbox;
DROP FUNCTION rollup_mark_outbox_insert();

-- PostgreSQL checks a foreign key by a query per inserted row (about 7 s of the 14 s a million
-- planned rows took). The outbox's references are held by the rows written with them in the
-- same transaction instead: a warm-up row's campaign by its `campaign_days` claim, its seed by
-- `seed_days`, a reply's seed by its engagement event's placement; so a campaign or seed with
-- rows still cannot be deleted. SQLite checks its foreign keys by a b-tree look-up and keeps them.
ALTER TABLE outbox DROP CONSTRAINT outbox_campaign_id_fkey;
ALTER TABLE outbox DROP CONSTRAINT outbox_seed_id_fkey;
