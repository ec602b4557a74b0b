-- The pages report's exits (issue 15): a session's exit is its last page view (latest time,
-- then the largest event id, the order sessionisation uses). The session row carries its
-- path and time, written by `Store::replace_sessions` with the rest of the session, so the
-- report counts a range's exits per path from one index (no per-event flag to rewrite).

ALTER TABLE sessions ADD COLUMN exit_path TEXT;
ALTER TABLE sessions ADD COLUMN exit_at INTEGER;

UPDATE sessions SET (exit_path, exit_at) = (
  SELECT e.path, e.derived_ts FROM events e
  WHERE e.site_id = sessions.site_id AND e.session_id = sessions.session_id
    AND e.type = 'pageview'
  ORDER BY e.derived_ts DESC, e.event_id DESC LIMIT 1);

-- Exits per path in a range, bots left out or not, from the index alone.
CREATE INDEX sessions_site_exit ON sessions(site_id, exit_at, exit_path, is_bot);
