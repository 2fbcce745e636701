-- How many messages a seed may receive in a day, from every campaign together. The planner
-- counts the seed's outbox rows on the planned local day against it.
ALTER TABLE seeds ADD COLUMN daily_cap BIGINT NOT NULL DEFAULT 2 CHECK (daily_cap >= 0);

-- The planner counts a seed's rows by time (caps, the pair limit, rotation): index by both.
-- The new index also serves every lookup by seed alone, so it replaces the old one.
DROP INDEX outbox_seed_id;
CREATE INDEX outbox_seed_id_run_at ON outbox (seed_id, run_at);
