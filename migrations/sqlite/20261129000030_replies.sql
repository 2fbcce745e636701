-- Replies from seeds (issue 5). A reply is an outbox row of kind 'reply' sent through the
-- seed's own SMTP: it is written, with its text, in the same transaction as the seed's
-- `reply` engagement event, before anything is sent, so no pass ever writes a second one.
ALTER TABLE outbox ADD COLUMN body TEXT;

-- Each kind of row has its own sender (warm-up: the sender's relay; reply: the seed's SMTP),
-- and each claims only its own kind. Replies are few beside warm-up mail: partial indexes keep
-- them out of the cost of planning a day's warm-up rows (see 20261129000003). Queries spell
-- the kind and status as literals so these indexes can serve them.
CREATE INDEX outbox_replies ON outbox (status, run_at, id) WHERE kind = 'reply';
CREATE INDEX outbox_in_reply_to ON outbox (in_reply_to) WHERE in_reply_to IS NOT NULL;

-- How far each folder of a sender's own mailbox has been read for replies (as imap_cursors
-- does for seeds).
CREATE TABLE sender_cursors (
    sender_id   BIGINT NOT NULL REFERENCES senders (id) ON DELETE CASCADE,
    folder      TEXT NOT NULL,
    uidvalidity BIGINT NOT NULL,
    last_uid    BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (sender_id, folder)
);
