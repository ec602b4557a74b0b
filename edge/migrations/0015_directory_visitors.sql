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
