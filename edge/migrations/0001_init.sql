-- Closeloop's D1 schema, first version. Applied by `wrangler d1 migrations apply DB`.
-- Only edge/src/store.rs reads and writes these tables.
-- Times are milliseconds since the Unix epoch (UTC); the API renders them as RFC 3339.

-- A site that may send events: its allowed origins, reporting currency and the
-- referrer hosts it excludes from starting sessions (payment and sign-in round trips).
CREATE TABLE sites (
  id               TEXT PRIMARY KEY,
  name             TEXT NOT NULL,
  allowed_origins  TEXT NOT NULL DEFAULT '[]',  -- JSON array of "scheme://host[:port]"
  currency         TEXT NOT NULL DEFAULT 'USD',  -- ISO 4217 reporting currency
  excluded_referrers TEXT NOT NULL DEFAULT '[]', -- JSON array of hosts
  created_at       INTEGER NOT NULL
);

-- API keys, stored as the SHA-256 (hex) of the key; the key itself is shown once.
CREATE TABLE keys (
  hash        TEXT PRIMARY KEY,
  site_id     TEXT NOT NULL REFERENCES sites(id),
  kind        TEXT NOT NULL CHECK (kind IN ('read', 'write')),
  created_at  INTEGER NOT NULL
);
CREATE INDEX keys_site ON keys(site_id);

-- Every event once: (site_id, event_id) is the deduplication key.
CREATE TABLE events (
  site_id       TEXT NOT NULL,
  event_id      TEXT NOT NULL,
  visitor_id    TEXT NOT NULL,
  type          TEXT NOT NULL,             -- pageview | form_submit | identify | track
  url           TEXT NOT NULL,
  path          TEXT NOT NULL,
  referrer      TEXT,
  title         TEXT,
  name          TEXT,                      -- track: the event's name
  props         TEXT,                      -- track props / identify traits (JSON)
  form_fields   TEXT,                      -- form_submit: field names (JSON array)
  form_values   TEXT,                      -- form_submit: kept values (JSON object)
  form_id       TEXT,
  created_at    INTEGER NOT NULL,          -- device clock
  sent_at       INTEGER NOT NULL,          -- device clock
  received_at   INTEGER NOT NULL,          -- edge clock
  derived_ts    INTEGER NOT NULL,          -- received_at - (sent_at - created_at)
  country       TEXT,
  region        TEXT,
  region_code   TEXT,
  city          TEXT,
  continent     TEXT,
  postal_code   TEXT,
  timezone      TEXT,
  latitude      REAL,
  longitude     REAL,
  asn           INTEGER,
  as_org        TEXT,
  colo          TEXT,
  is_eu         INTEGER NOT NULL DEFAULT 0,
  device_type   TEXT,                      -- desktop | mobile | tablet | bot | other
  browser       TEXT,
  browser_version TEXT,
  os            TEXT,
  os_version    TEXT,
  is_bot        INTEGER NOT NULL DEFAULT 0,
  session_id    TEXT,
  PRIMARY KEY (site_id, event_id)
);
CREATE INDEX events_visitor_time ON events(site_id, visitor_id, derived_ts);
CREATE INDEX events_site_time ON events(site_id, derived_ts);
CREATE INDEX events_session ON events(site_id, session_id);

-- Sessions built by the edge from the stored events; the touch is the entry source.
CREATE TABLE sessions (
  site_id       TEXT NOT NULL,
  session_id    TEXT NOT NULL,
  visitor_id    TEXT NOT NULL,
  started_at    INTEGER NOT NULL,
  ended_at      INTEGER NOT NULL,
  channel       TEXT NOT NULL,
  source        TEXT NOT NULL,
  medium        TEXT NOT NULL,
  campaign      TEXT,
  term          TEXT,
  content       TEXT,
  referrer_host TEXT,
  landing_path  TEXT,
  click_id      TEXT,
  pageviews     INTEGER NOT NULL DEFAULT 0,
  is_bot        INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (site_id, session_id)
);
CREATE INDEX sessions_visitor ON sessions(site_id, visitor_id, started_at);
CREATE INDEX sessions_site_time ON sessions(site_id, started_at);

-- Visitors seen per site.
CREATE TABLE visitors (
  site_id     TEXT NOT NULL,
  visitor_id  TEXT NOT NULL,
  first_seen  INTEGER NOT NULL,
  last_seen   INTEGER NOT NULL,
  PRIMARY KEY (site_id, visitor_id)
);

-- Leads: one per normalised email per site.
CREATE TABLE leads (
  site_id     TEXT NOT NULL,
  lead_id     TEXT NOT NULL,
  email       TEXT NOT NULL,               -- trimmed, lower-cased
  name        TEXT,
  company     TEXT,
  phone       TEXT,
  first_seen  INTEGER NOT NULL,            -- derived_ts of the identifying event
  PRIMARY KEY (site_id, lead_id),
  UNIQUE (site_id, email)
);

-- Which visitor ids belong to which lead (several devices, one person).
CREATE TABLE lead_visitors (
  site_id     TEXT NOT NULL,
  visitor_id  TEXT NOT NULL,
  lead_id     TEXT NOT NULL,
  linked_at   INTEGER NOT NULL,
  PRIMARY KEY (site_id, visitor_id)
);
CREATE INDEX lead_visitors_lead ON lead_visitors(site_id, lead_id);
