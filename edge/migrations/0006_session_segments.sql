-- Reports (issue 6's budget): a session's segment attributes on the session itself, so that
-- the reports count and filter sessions without joining each one to its first event.
-- `country` and `device_type` are those of the session's first event (whose id is the
-- session id without `s_`), as the reports always read them; `Store::replace_sessions`
-- writes them from that event.
ALTER TABLE sessions ADD COLUMN country TEXT;
ALTER TABLE sessions ADD COLUMN device_type TEXT;

UPDATE sessions SET
  country = (SELECT e.country FROM events e
             WHERE e.site_id = sessions.site_id AND e.event_id = substr(sessions.session_id, 3)),
  device_type = (SELECT e.device_type FROM events e
                 WHERE e.site_id = sessions.site_id AND e.event_id = substr(sessions.session_id, 3));

-- The sources report counts a range's sessions per group from this index alone (no table
-- lookups): visitors, sessions, page views and every filterable attribute.
CREATE INDEX sessions_site_time_report ON sessions(site_id, started_at, is_bot, channel,
  source, medium, campaign, landing_path, visitor_id, pageviews, country, device_type);
