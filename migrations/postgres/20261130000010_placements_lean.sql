-- A folder scan records a thousand placements in a few statements (issue 5), so what the
-- database does per placement row counts: `UNIQUE (message_id)` was a second unique index of
-- 45-byte texts, redundant (a placement is one per outbox row, `outbox_id` is UNIQUE, and the
-- outbox's Message-IDs are unique). Lookups by Message-ID go through the outbox's index.
-- (The roll-up trigger stays: here it runs once per statement, not per row as on SQLite.)
ALTER TABLE placements DROP CONSTRAINT placements_message_id_key;
