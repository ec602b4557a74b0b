-- Sessionisation is deferred out of `POST /v1/collect`: a batch marks its visitor here
-- (in the same transaction as its events), and a flush (the cron trigger, and every read
-- that needs sessions: reports, leads, webhooks) rebuilds that visitor's sessions from
-- `from_ts` on. `version` changes at each mark, so a flush removes only the mark it
-- read and a visitor marked again meanwhile stays queued (random, below 2^53 so that it
-- survives the trip through a JavaScript number).
CREATE TABLE session_queue (
  site_id    TEXT NOT NULL,
  visitor_id TEXT NOT NULL,
  from_ts    INTEGER NOT NULL,
  version    INTEGER NOT NULL,
  PRIMARY KEY (site_id, visitor_id)
) WITHOUT ROWID;
