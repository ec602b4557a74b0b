-- Per-site cap on events per visitor per rolling 24 hours (abuse protection): events
-- over it are refused with `visitor_quota_exceeded`.
ALTER TABLE sites ADD COLUMN max_events_per_visitor_day INTEGER NOT NULL DEFAULT 5000;
