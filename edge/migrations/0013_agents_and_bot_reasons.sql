-- Issue 16: why an event was flagged as a bot, and what it was parsed from.
--
-- `events.bot_reason`: the list and pattern that flagged it (`crawler-user-agents:Googlebot\/`,
-- `isbot:headless`, `closeloop:(empty user agent)`), Cloudflare's signal
-- (`cloudflare:verified-bot`, `cloudflare:bot-score:2`), `client-hints:HeadlessChrome`, or
-- `import:context` (the importer said so); NULL for people and for rows stored before
-- this migration. A session carries its first event's reason, as it carries its bot flag.
ALTER TABLE events ADD COLUMN bot_reason TEXT;
ALTER TABLE sessions ADD COLUMN bot_reason TEXT;

-- `events.agent_id`: the request's user agent and Client Hints, kept once per site in
-- `agents`, so that `POST /v1/admin/sites/{site}/reclassify` can parse them again when the
-- lists change. NULL when an import's context decided the device or bot flag itself, and
-- for rows stored before this migration (those keep their device and bot flag; their
-- sessions' channels are still rebuilt).
ALTER TABLE events ADD COLUMN agent_id TEXT;

CREATE TABLE agents (
  site_id         TEXT NOT NULL,
  agent_id        TEXT NOT NULL,             -- ua_ + 24 hex of SHA-256(user agent, hints)
  user_agent      TEXT NOT NULL,             -- the User-Agent header (at most 1,024 characters)
  hints           TEXT NOT NULL DEFAULT '{}', -- the Client Hints headers sent (JSON object)
  first_seen      INTEGER NOT NULL,          -- received_at of the first request with it
  -- how the lists compiled into the worker classify it (written at first sight, rewritten
  -- by re-classification, then copied onto the site's events that carry this agent)
  device_type     TEXT,
  browser         TEXT,
  browser_version TEXT,
  os              TEXT,
  os_version      TEXT,
  is_bot          INTEGER NOT NULL DEFAULT 0,
  bot_reason      TEXT,
  PRIMARY KEY (site_id, agent_id)
);

-- The bots report groups a range's flagged events by reason (only flagged rows are in
-- this index). Re-classification walks a site's events by time (events_site_time) and
-- finds each one's agent by primary key: no index on events.agent_id, which every
-- insert would pay for.
CREATE INDEX events_bot_reason ON events(site_id, bot_reason, derived_ts) WHERE bot_reason IS NOT NULL;
