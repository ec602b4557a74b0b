-- The pages report (issue 6's budget) counts every figure in SQL: views and entrances from
-- the page views themselves, assists from the leads' page views in a lookback window, direct
-- conversions from the leads. So a page view carries what its session says about it, and a
-- lead the page of its identifying event; `Store::replace_sessions` and the lead upsert of
-- `Store::insert_batch` keep them up to date (edge/src/store.rs).

-- 1 on the first page view of its session, in the order sessionisation uses (time, then
-- event id); 0 on every other event.
ALTER TABLE events ADD COLUMN entrance INTEGER NOT NULL DEFAULT 0;
-- The `is_bot` of the event's session; NULL while the event is in no session (not yet
-- sessionised): such an event counts nowhere, as before.
ALTER TABLE events ADD COLUMN session_bot INTEGER;
-- The identifying event: the earliest `form_submit` / `identify` event (ties: the smallest
-- event id) of one of the lead's visitors at `first_seen`, and its path; NULL when there is
-- none (the event was refused, or its visitor belongs to another lead).
ALTER TABLE leads ADD COLUMN first_event_id TEXT;
ALTER TABLE leads ADD COLUMN first_path TEXT;

UPDATE events SET session_bot = s.is_bot FROM sessions s
  WHERE s.site_id = events.site_id AND s.session_id = events.session_id;

UPDATE events SET entrance = 1 WHERE rowid IN (
  SELECT (SELECT e.rowid FROM events e WHERE e.site_id = s.site_id AND e.session_id = s.session_id
            AND e.type = 'pageview' ORDER BY e.derived_ts, e.event_id LIMIT 1)
  FROM sessions s);

UPDATE leads SET (first_event_id, first_path) = (
  SELECT e.event_id, e.path FROM lead_visitors v CROSS JOIN events e
    ON e.site_id = v.site_id AND e.visitor_id = v.visitor_id
  WHERE v.site_id = leads.site_id AND v.lead_id = leads.lead_id
    AND e.derived_ts = leads.first_seen AND e.type IN ('form_submit', 'identify')
  ORDER BY e.event_id LIMIT 1);

-- Views and entrances per path, read from this index alone: one range of `derived_ts` per
-- path (the report walks the distinct paths).
CREATE INDEX events_pages ON events(site_id, type, path, derived_ts, session_bot, entrance);

-- A visitor's events in time order, as before (ingest's previous event and quota, the
-- sessionisation windows read its first three columns), now covering what the assists read:
-- a lead's page views in a lookback window, with their path, session and bot flag.
DROP INDEX events_visitor_time;
CREATE INDEX events_visitor_time ON events(site_id, visitor_id, derived_ts, type, path,
  session_bot, session_id);

-- A session's page views with their entrance flag (the pages report with a segment).
DROP INDEX events_session;
CREATE INDEX events_session ON events(site_id, session_id, type, derived_ts, path, entrance);

-- Sessions that started before a range and went on into it (the pages report with a
-- segment counts their page views in the range too).
CREATE INDEX sessions_site_end ON sessions(site_id, ended_at, started_at);

-- The conversions of a range reach their leads' visitors from indexes alone.
DROP INDEX lead_visitors_lead;
CREATE INDEX lead_visitors_lead ON lead_visitors(site_id, lead_id, visitor_id);
DROP INDEX leads_site_first_seen;
CREATE INDEX leads_site_first_seen ON leads(site_id, first_seen, lead_id, first_path);
