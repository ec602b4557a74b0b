-- Reports (issue 6's budget): distinct visitors counted without a temporary b-tree of
-- visitor ids, and data_driven's journey steps without building journeys.
--
-- Each non-bot session points back to its visitor's previous non-bot session, in time
-- order (start, then session id): `prev_at` / `prev_channel` are that session's start and
-- channel, and `prev_<key>_at` the start of the previous one with the same row key of the
-- sources report (channel, source, medium, campaign or `(not set)`, landing path or `/`).
-- NULL: there is none (and always NULL on a bot session). So, for a range [from, to):
-- - a visitor's first session of a row in the range is the one session of that row in
--   the range whose `prev_<key>_at` is NULL or before `from`: counting those counts the
--   row's distinct visitors, and counting the sessions whose `prev_at` is NULL or before
--   `from` counts the range's distinct visitors;
-- - a session's previous session in the range is `prev_channel` when `prev_at >= from`:
--   the (previous channel, channel) pairs are the journeys' steps.
-- Only bots left out and no segment filter can be read this way (a segment would need
-- the previous session in the segment); the other reports count as before.
--
-- Written by the session flush (`Store::replace_sessions_stmts`) for the sessions it
-- rebuilds, which are all of a visitor's sessions from some time on: the markers only look
-- back, so the earlier sessions keep theirs.
ALTER TABLE sessions ADD COLUMN prev_at INTEGER;
ALTER TABLE sessions ADD COLUMN prev_channel TEXT;
ALTER TABLE sessions ADD COLUMN prev_channel_at INTEGER;
ALTER TABLE sessions ADD COLUMN prev_source_at INTEGER;
ALTER TABLE sessions ADD COLUMN prev_medium_at INTEGER;
ALTER TABLE sessions ADD COLUMN prev_campaign_at INTEGER;
ALTER TABLE sessions ADD COLUMN prev_landing_at INTEGER;

-- the same statement as the flush's, over every session
UPDATE sessions AS s SET
  (prev_at, prev_channel) = (SELECT p.started_at, p.channel FROM sessions p
    WHERE p.site_id = s.site_id AND p.visitor_id = s.visitor_id AND p.is_bot = 0
    AND (p.started_at, p.session_id) < (s.started_at, s.session_id)
    ORDER BY p.started_at DESC, p.session_id DESC LIMIT 1),
  prev_channel_at = (SELECT max(p.started_at) FROM sessions p
    WHERE p.site_id = s.site_id AND p.visitor_id = s.visitor_id AND p.is_bot = 0
    AND (p.started_at, p.session_id) < (s.started_at, s.session_id)
    AND p.channel = s.channel),
  prev_source_at = (SELECT max(p.started_at) FROM sessions p
    WHERE p.site_id = s.site_id AND p.visitor_id = s.visitor_id AND p.is_bot = 0
    AND (p.started_at, p.session_id) < (s.started_at, s.session_id)
    AND p.source = s.source),
  prev_medium_at = (SELECT max(p.started_at) FROM sessions p
    WHERE p.site_id = s.site_id AND p.visitor_id = s.visitor_id AND p.is_bot = 0
    AND (p.started_at, p.session_id) < (s.started_at, s.session_id)
    AND p.medium = s.medium),
  prev_campaign_at = (SELECT max(p.started_at) FROM sessions p
    WHERE p.site_id = s.site_id AND p.visitor_id = s.visitor_id AND p.is_bot = 0
    AND (p.started_at, p.session_id) < (s.started_at, s.session_id)
    AND coalesce(p.campaign, '(not set)') = coalesce(s.campaign, '(not set)')),
  prev_landing_at = (SELECT max(p.started_at) FROM sessions p
    WHERE p.site_id = s.site_id AND p.visitor_id = s.visitor_id AND p.is_bot = 0
    AND (p.started_at, p.session_id) < (s.started_at, s.session_id)
    AND coalesce(p.landing_path, '/') = coalesce(s.landing_path, '/'))
WHERE s.is_bot = 0;

-- The range's sessions, counted per row from this index alone (it replaces 0006's, whose
-- columns it starts with).
DROP INDEX sessions_site_time;
CREATE INDEX sessions_site_time ON sessions(site_id, started_at, is_bot, channel, source,
  medium, campaign, landing_path, visitor_id, pageviews, country, device_type, prev_at,
  prev_channel, prev_channel_at, prev_source_at, prev_medium_at, prev_campaign_at,
  prev_landing_at);
