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

-- Covering indexes, so that the reports read sessions from an index alone (never a table
-- lookup per session); they replace the two narrow ones, whose columns they start with:
-- - by time: a range's sessions counted per group (visitors, sessions, page views, shared
--   touch fields) with every filterable attribute;
-- - by visitor: the sessions of the leads' visitors (the touches), and the distinct
--   visitors of a range counted in visitor order (no temporary b-tree).
DROP INDEX sessions_site_time;
CREATE INDEX sessions_site_time ON sessions(site_id, started_at, is_bot, channel, source,
  medium, campaign, landing_path, visitor_id, pageviews, country, device_type);
DROP INDEX sessions_visitor;
CREATE INDEX sessions_visitor ON sessions(site_id, visitor_id, started_at, session_id, is_bot,
  channel, source, medium, campaign, landing_path, pageviews, country, device_type);

-- The pages report counts the views and entrances of a range's sessions from their page
-- views in this index alone (no lookup of the event row per page view).
DROP INDEX events_session;
CREATE INDEX events_session ON events(site_id, session_id, type, derived_ts, path);
