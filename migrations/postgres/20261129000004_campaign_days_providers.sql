-- What each planned day sent to each provider ("gmail=3 outlook=2"), so the provider mix of a
-- campaign's last days is read from one row a day instead of counted from the outbox (which
-- keeps every message ever planned). Days planned before this column say nothing ('').
ALTER TABLE campaign_days ADD COLUMN by_provider TEXT NOT NULL DEFAULT '';
