-- One row per campaign and sending day that has been planned. Inserting it is the claim:
-- of several nodes planning the same day, exactly one inserts, the others skip.
CREATE TABLE campaign_days (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id),
    plan_day    TEXT   NOT NULL,
    sends       BIGINT NOT NULL CHECK (sends >= 0),
    planned_at  BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, plan_day)
);
