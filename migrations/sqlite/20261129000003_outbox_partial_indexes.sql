-- Planning writes a day's sends in bulk (a million rows for 10,000 campaigns): every index on
-- the outbox is paid on each of them. The claim only ever looks for `planned` rows by time,
-- and the reconciler for `sending` rows by lease: two partial indexes serve them, and rows
-- already sent, failed or cancelled (most of the table, in time) are in neither. Queries that
-- want these indexes spell the status as a literal ('planned', 'sending'), not a parameter,
-- so the planner can match the index's WHERE clause.
DROP INDEX outbox_status_run_at;
CREATE INDEX outbox_due ON outbox (run_at, id) WHERE status = 'planned';
CREATE INDEX outbox_leased ON outbox (lease_until, id) WHERE status = 'sending';
