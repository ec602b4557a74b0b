-- Issue 14: where a site's events live. 0: this database (events, sessions, the session
-- queue: every report as before); N >= 1: N per-site shards, SQLite-backed Durable
-- Objects (edge/src/shard), which build sessions at ingest and keep the rollups. Set when
-- the site is made, or later while it has stored nothing (admin.rs: `shards_fixed`).
ALTER TABLE sites ADD COLUMN shards INTEGER NOT NULL DEFAULT 0;
