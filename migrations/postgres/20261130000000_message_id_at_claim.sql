-- A warm-up row gets its Message-ID when it is claimed for sending, not when it is planned
-- (issue 4: a day's million planned rows each paid an insertion into the unique index of
-- 45-byte texts, a third of planning's time). `message_id` becomes NULL until the claim, and
-- its unique index holds only the rows that have one. Every row that ever reached the relay
-- has one: a row is `sending` from its claim on, and the CHECK below says so.
ALTER TABLE outbox ALTER COLUMN message_id DROP NOT NULL;
ALTER TABLE outbox DROP CONSTRAINT outbox_message_id_key;
CREATE UNIQUE INDEX outbox_message_id ON outbox (message_id) WHERE message_id IS NOT NULL;
ALTER TABLE outbox ADD CONSTRAINT outbox_message_id_assigned
    CHECK (message_id IS NOT NULL OR status IN ('planned', 'cancelled'));
