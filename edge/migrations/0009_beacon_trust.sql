-- Hostile traffic, the beacon side (issue 12) and bad rows (issue 13). Only
-- edge/src/store/ (store/trust.rs) reads and writes these tables and columns.

-- A site's beacon rules:
-- - `extra_hosts`: hosts, besides those of the allowed origins, whose URLs beacons may
--   record (JSON array of lower-case hosts); any other is rejected `foreign_host`;
-- - `identity_secret`: when set, `identify` must carry user_hash = HMAC-SHA256(secret,
--   normalised email) (NULL: verification off);
-- - `max_events_per_day`: events the site's beacons may store per UTC day (received
--   time); over it batches are answered 429 `site_quota_exceeded`;
-- - `bad_rows_kept`: how many bad rows the site keeps (a ring: the oldest is replaced).
ALTER TABLE sites ADD COLUMN extra_hosts TEXT NOT NULL DEFAULT '[]';
ALTER TABLE sites ADD COLUMN identity_secret TEXT;
ALTER TABLE sites ADD COLUMN max_events_per_day INTEGER NOT NULL DEFAULT 1000000;
ALTER TABLE sites ADD COLUMN bad_rows_kept INTEGER NOT NULL DEFAULT 1000;

-- How each visitor↔lead link was made (core's identity::LinkMethod: form, identify,
-- verified_identify, import, api), by which event and when it was received (`linked_at`
-- stays the identifying event's derived time). Links made before this migration:
-- `unknown`.
ALTER TABLE lead_visitors ADD COLUMN method TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE lead_visitors ADD COLUMN event_id TEXT;
ALTER TABLE lead_visitors ADD COLUMN received_at INTEGER;

-- The visitor quota counted on received time: events stored per visitor and UTC day of
-- receipt, added once per batch (the batch's new events are found by primary key among
-- its own ids), so the check before an insert reads one row instead of the visitor's
-- events. Keyed by day first, so that the cron trigger drops past days by range.
CREATE TABLE visitor_days (
  day         INTEGER NOT NULL,  -- days since 1970-01-01 (UTC), of received_at
  site_id     TEXT NOT NULL,
  visitor_id  TEXT NOT NULL,
  events      INTEGER NOT NULL,
  PRIMARY KEY (day, site_id, visitor_id)
) WITHOUT ROWID;

-- A site's beacon health per UTC day of receipt: one counter per metric (core's
-- health module names them: accepted, rejected:{code}, refused:{code}, dropped,
-- clock_skew). `accepted` is also the site's daily event count its cap is checked
-- against, and its `last_at` the last time an event was stored. Kept 90 days.
CREATE TABLE site_stats (
  site_id  TEXT NOT NULL,
  day      INTEGER NOT NULL,
  metric   TEXT NOT NULL,
  n        INTEGER NOT NULL,
  last_at  INTEGER,
  PRIMARY KEY (site_id, day, metric)
) WITHOUT ROWID;

-- Bad rows: rejected events and refused batches as sent (secrets redacted, cut to 2 KB),
-- per site in a ring of `sites.bad_rows_kept` slots: row `seq` goes to slot
-- `seq % bad_rows_kept`, replacing the oldest; so the store never grows past the bound
-- and needs no deletes.
CREATE TABLE bad_rows (
  site_id     TEXT NOT NULL,
  slot        INTEGER NOT NULL,
  seq         INTEGER NOT NULL,
  at          INTEGER NOT NULL,  -- received (ms)
  kind        TEXT NOT NULL,     -- event | batch
  reason      TEXT NOT NULL,     -- the error code
  message     TEXT NOT NULL,
  event_id    TEXT,
  visitor_id  TEXT,
  raw         TEXT NOT NULL,
  truncated   INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (site_id, slot)
) WITHOUT ROWID;
CREATE INDEX bad_rows_seq ON bad_rows(site_id, seq);
