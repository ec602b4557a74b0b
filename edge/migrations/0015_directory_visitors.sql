-- Issue 14: the lead directory of a site whose events live in shards is this database's
-- own rows (edge/src/store/directory.rs): `leads`, `lead_visitors` and, for linked
-- visitors only, `sessions`, as a shard reports them. This table keeps the version of
-- each linked visitor's state the directory has, so that a shard's deltas apply in order
-- and exactly once (a delta on top of its base version, a full state over an older one).
CREATE TABLE directory_visitors (
  site_id     TEXT NOT NULL,
  visitor_id  TEXT NOT NULL,
  version     INTEGER NOT NULL,
  PRIMARY KEY (site_id, visitor_id)
);

-- The page views of linked visitors, as the shards report them (a lead's journey keeps its
-- latest 5 000 per visitor): the pages report's assists and a lead's pages.
CREATE TABLE journey_views (
  site_id     TEXT NOT NULL,
  event_id    TEXT NOT NULL,
  visitor_id  TEXT NOT NULL,
  session_id  TEXT NOT NULL,
  at          INTEGER NOT NULL,
  path        TEXT NOT NULL,
  PRIMARY KEY (site_id, event_id)
);
CREATE INDEX journey_views_visitor ON journey_views(site_id, visitor_id, at);
CREATE INDEX journey_views_time ON journey_views(site_id, at);
