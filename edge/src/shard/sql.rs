//! Every SQL statement of the shard, named, and its schema (run on object start by
//! `sqlite::migrate`). Only this file knows the shard's tables.
//!
//! Times are ms since the epoch; hours and days are counted since the epoch (UTC). 64-bit
//! visitor hashes are 16 hex digits (they would not survive JavaScript's numbers).

use crate::sqlite::Schema;

/// The shard's schema, one script per version.
pub const SCHEMA: Schema = Schema {
    name: "shard",
    migrations: &[V1],
};

const V1: &str = r#"
-- The site's settings as last sent, the archive's next object number, the retention
-- watermark: small values by key.
CREATE TABLE meta (
  key    TEXT PRIMARY KEY,
  value  TEXT NOT NULL
) WITHOUT ROWID;

-- Every event of the shard's visitors once (event_id is the deduplication key), with what
-- sessionisation needs as columns and the whole event as archived (`record`, NDJSON line).
CREATE TABLE events (
  event_id     TEXT PRIMARY KEY,
  visitor_id   TEXT NOT NULL,
  type         TEXT NOT NULL,
  path         TEXT NOT NULL,
  derived_ts   INTEGER NOT NULL,
  received_at  INTEGER NOT NULL,
  arrival      TEXT NOT NULL,      -- core::session::Arrival<SessionTouch>, JSON
  is_bot       INTEGER NOT NULL,
  country      TEXT,
  device       TEXT,
  session_id   TEXT,
  record       TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX events_visitor_time ON events(visitor_id, derived_ts, event_id);
CREATE INDEX events_time ON events(derived_ts);

-- Sessions as core::resession keeps them (VisitSession): summary, touch and markers.
CREATE TABLE sessions (
  session_id    TEXT PRIMARY KEY,
  visitor_id    TEXT NOT NULL,
  start_ts      INTEGER NOT NULL,
  first_event   TEXT NOT NULL,
  end_ts        INTEGER NOT NULL,
  last_event    TEXT NOT NULL,
  touch         TEXT,              -- SessionTouch JSON; NULL: direct
  landing_path  TEXT NOT NULL,
  events        INTEGER NOT NULL,
  pageviews     INTEGER NOT NULL,
  is_bot        INTEGER NOT NULL,
  country       TEXT,
  device        TEXT,
  entrance      TEXT,              -- PageRef JSON
  exit_page     TEXT,              -- PageRef JSON
  prev_any      TEXT,              -- Marker JSON
  prev_human    TEXT               -- Marker JSON
) WITHOUT ROWID;
CREATE INDEX sessions_visitor ON sessions(visitor_id, start_ts, session_id);
CREATE INDEX sessions_end ON sessions(end_ts);

-- The shard's visitors, and what the directory has seen of them: `version` counts the
-- changes it must see, `synced` the version it acknowledged (version > synced: dirty, the
-- alarm retries with a full state); links not yet acknowledged wait in `pending_links`.
CREATE TABLE visitors (
  visitor_id     TEXT PRIMARY KEY,
  first_seen     INTEGER NOT NULL,
  last_seen      INTEGER NOT NULL,
  lead_id        TEXT,
  linked         INTEGER NOT NULL DEFAULT 0,
  version        INTEGER NOT NULL DEFAULT 0,
  synced         INTEGER NOT NULL DEFAULT 0,
  pending_links  TEXT,
  links_version  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX visitors_dirty ON visitors(visitor_id) WHERE version > synced;

-- Row keys (core::rollup::RowKey as JSON), numbered once.
CREATE TABLE row_keys (
  key_id  INTEGER PRIMARY KEY,
  key     TEXT NOT NULL UNIQUE
);

-- Hour rollups (core::rollup::Rollup): signed sums, rows at zero deleted.
CREATE TABLE hour_rows (
  hour          INTEGER NOT NULL,
  key_id        INTEGER NOT NULL,
  sessions      INTEGER NOT NULL,
  pageviews     INTEGER NOT NULL,
  new_visitors  INTEGER NOT NULL,
  PRIMARY KEY (hour, key_id)
) WITHOUT ROWID;
CREATE TABLE hour_visitors (
  hour      INTEGER NOT NULL,
  key_id    INTEGER NOT NULL,
  visitor   TEXT NOT NULL,         -- visitor_hash, 16 hex digits
  sessions  INTEGER NOT NULL,
  PRIMARY KEY (hour, key_id, visitor)
) WITHOUT ROWID;
CREATE TABLE hour_pages (
  hour       INTEGER NOT NULL,
  path       TEXT NOT NULL,
  key_id     INTEGER NOT NULL,
  views      INTEGER NOT NULL,
  entrances  INTEGER NOT NULL,
  exits      INTEGER NOT NULL,
  PRIMARY KEY (hour, path, key_id)
) WITHOUT ROWID;
-- journey steps; prev_channel '' and prev_hour 0 stand for "no previous session"
CREATE TABLE hour_steps (
  hour          INTEGER NOT NULL,
  with_bots     INTEGER NOT NULL,
  prev_channel  TEXT NOT NULL,
  prev_hour     INTEGER NOT NULL,
  channel       TEXT NOT NULL,
  n             INTEGER NOT NULL,
  PRIMARY KEY (hour, with_bots, prev_channel, prev_hour, channel)
) WITHOUT ROWID;

-- Day summaries (core::rollup::DayRollup): visitors as VisitorSet bytes (exact hashes up
-- to 1 024, then a DataSketches HLL). A day whose hours change is marked dirty and
-- summarised again from its hours (by the alarm, or by the first read that needs it).
CREATE TABLE day_rows (
  day           INTEGER NOT NULL,
  key_id        INTEGER NOT NULL,
  sessions      INTEGER NOT NULL,
  pageviews     INTEGER NOT NULL,
  new_visitors  INTEGER NOT NULL,
  visitors      BLOB NOT NULL,
  PRIMARY KEY (day, key_id)
) WITHOUT ROWID;
CREATE TABLE day_pages (
  day        INTEGER NOT NULL,
  path       TEXT NOT NULL,
  key_id     INTEGER NOT NULL,
  views      INTEGER NOT NULL,
  entrances  INTEGER NOT NULL,
  exits      INTEGER NOT NULL,
  PRIMARY KEY (day, path, key_id)
) WITHOUT ROWID;
CREATE TABLE day_steps (
  day           INTEGER NOT NULL,
  with_bots     INTEGER NOT NULL,
  prev_channel  TEXT NOT NULL,
  prev_day      INTEGER NOT NULL,
  channel       TEXT NOT NULL,
  n             INTEGER NOT NULL,
  PRIMARY KEY (day, with_bots, prev_channel, prev_day, channel)
) WITHOUT ROWID;
CREATE TABLE dirty_days (
  day  INTEGER PRIMARY KEY
);

-- Quota counters per UTC day of receipt: per visitor, and the shard's share of the site.
CREATE TABLE quota_visitors (
  day         INTEGER NOT NULL,
  visitor_id  TEXT NOT NULL,
  events      INTEGER NOT NULL,
  PRIMARY KEY (day, visitor_id)
) WITHOUT ROWID;
CREATE TABLE quota_days (
  day     INTEGER PRIMARY KEY,
  events  INTEGER NOT NULL
);

-- Events accepted and not yet in the archive (filled in the same transaction as the
-- events; the alarm writes them out as NDJSON objects and deletes them).
CREATE TABLE archive_pending (
  seq       INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id  TEXT NOT NULL,
  day       TEXT NOT NULL          -- YYYY-MM-DD of derived_ts (UTC)
);
-- The objects written, for the record.
CREATE TABLE archive_objects (
  key         TEXT PRIMARY KEY,
  day         TEXT NOT NULL,
  first_seq   INTEGER NOT NULL,
  last_seq    INTEGER NOT NULL,
  events      INTEGER NOT NULL,
  bytes       INTEGER NOT NULL,
  written_at  INTEGER NOT NULL
) WITHOUT ROWID;
"#;

// ---- meta -------------------------------------------------------------------------------

/// A meta value.
pub const META_GET: &str = "SELECT value FROM meta WHERE key = ?1";
/// Sets a meta value.
pub const META_PUT: &str = "INSERT INTO meta (key, value) VALUES (?1, ?2) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";

// ---- ingest -----------------------------------------------------------------------------

/// Which of these event ids are stored (`?1` a JSON array of ids).
pub const EVENTS_PRESENT: &str =
    "SELECT event_id FROM events WHERE event_id IN (SELECT value FROM json_each(?1))";
/// The visitor's events stored today, and the shard's (quota counters of the day `?1`).
pub const QUOTA_READ: &str = "SELECT \
     (SELECT events FROM quota_visitors WHERE day = ?1 AND visitor_id = ?2) AS visitor, \
     (SELECT events FROM quota_days WHERE day = ?1) AS shard";
/// Adds to the visitor's day counter.
pub const QUOTA_VISITOR_ADD: &str = "INSERT INTO quota_visitors (day, visitor_id, events) \
     VALUES (?1, ?2, ?3) ON CONFLICT (day, visitor_id) DO UPDATE SET events = events + excluded.events";
/// Adds to the shard's day counter.
pub const QUOTA_DAY_ADD: &str = "INSERT INTO quota_days (day, events) VALUES (?1, ?2) \
     ON CONFLICT (day) DO UPDATE SET events = events + excluded.events";
/// Drops counters of days before `?1`.
pub const QUOTA_PRUNE_VISITORS: &str = "DELETE FROM quota_visitors WHERE day < ?1";
/// See [`QUOTA_PRUNE_VISITORS`].
pub const QUOTA_PRUNE_DAYS: &str = "DELETE FROM quota_days WHERE day < ?1";

/// Inserts one event.
pub const EVENT_INSERT: &str = "INSERT INTO events (event_id, visitor_id, type, path, \
     derived_ts, received_at, arrival, is_bot, country, device, session_id, record) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
/// Moves a stored event to another session.
pub const EVENT_SET_SESSION: &str = "UPDATE events SET session_id = ?2 WHERE event_id = ?1";

/// The columns of a session row (every statement that reads sessions reads these).
macro_rules! session_columns {
    () => {
        "SELECT session_id, visitor_id, start_ts, first_event, end_ts, last_event, touch, \
         landing_path, events, pageviews, is_bot, country, device, entrance, exit_page, \
         prev_any, prev_human FROM sessions "
    };
}
/// The visitor's latest session.
pub const SESSION_LATEST: &str = concat!(
    session_columns!(),
    "WHERE visitor_id = ?1 \
     ORDER BY start_ts DESC, session_id DESC LIMIT 1"
);
/// The visitor's latest session whose first event is at or before `(?2, ?3)`.
pub const SESSION_HOLDING: &str = concat!(
    session_columns!(),
    "WHERE visitor_id = ?1 \
     AND (start_ts < ?2 OR (start_ts = ?2 AND session_id <= 's_' || ?3)) \
     ORDER BY start_ts DESC, session_id DESC LIMIT 1"
);
/// The visitor's first session.
pub const SESSION_FIRST: &str = concat!(
    session_columns!(),
    "WHERE visitor_id = ?1 \
     ORDER BY start_ts, session_id LIMIT 1"
);
/// Up to `?4` of the visitor's sessions from `(?2, ?3)` on (inclusive).
pub const SESSIONS_FROM: &str = concat!(
    session_columns!(),
    "WHERE visitor_id = ?1 \
     AND (start_ts > ?2 OR (start_ts = ?2 AND session_id >= ?3)) \
     ORDER BY start_ts, session_id LIMIT ?4"
);
/// Up to `?4` of the visitor's sessions after `(?2, ?3)`.
pub const SESSIONS_AFTER: &str = concat!(
    session_columns!(),
    "WHERE visitor_id = ?1 \
     AND (start_ts > ?2 OR (start_ts = ?2 AND session_id > ?3)) \
     ORDER BY start_ts, session_id LIMIT ?4"
);
/// The latest `?2` sessions of the visitor (a journey's full state).
pub const SESSIONS_LATEST_N: &str = concat!(
    session_columns!(),
    "WHERE visitor_id = ?1 \
     ORDER BY start_ts DESC, session_id DESC LIMIT ?2"
);
/// The visitor's events in `[?2, ?3]` (the events of a run of its sessions: sessions do
/// not overlap in time).
pub const EVENTS_BETWEEN: &str = "SELECT event_id, type, path, derived_ts, arrival, is_bot, \
     country, device, session_id FROM events WHERE visitor_id = ?1 AND derived_ts >= ?2 \
     AND derived_ts <= ?3";
/// The visitor's latest `?3` page views from `?2` on (a journey's full state).
pub const PAGEVIEWS_OF_VISITOR: &str = "SELECT event_id, session_id, derived_ts, path \
     FROM events WHERE visitor_id = ?1 AND derived_ts >= ?2 AND type = 'pageview' \
     AND session_id IS NOT NULL ORDER BY derived_ts DESC, event_id DESC LIMIT ?3";
/// Writes a session (insert or replace).
pub const SESSION_UPSERT: &str = "INSERT INTO sessions (session_id, visitor_id, start_ts, \
     first_event, end_ts, last_event, touch, landing_path, events, pageviews, is_bot, \
     country, device, entrance, exit_page, prev_any, prev_human) VALUES (?1, ?2, ?3, ?4, ?5, \
     ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) ON CONFLICT (session_id) DO \
     UPDATE SET visitor_id = excluded.visitor_id, start_ts = excluded.start_ts, \
     first_event = excluded.first_event, end_ts = excluded.end_ts, \
     last_event = excluded.last_event, touch = excluded.touch, \
     landing_path = excluded.landing_path, events = excluded.events, \
     pageviews = excluded.pageviews, is_bot = excluded.is_bot, country = excluded.country, \
     device = excluded.device, entrance = excluded.entrance, exit_page = excluded.exit_page, \
     prev_any = excluded.prev_any, prev_human = excluded.prev_human";
/// Deletes a session.
pub const SESSION_DELETE: &str = "DELETE FROM sessions WHERE session_id = ?1";

/// Records a visitor seen in a batch.
pub const VISITOR_SEEN: &str = "INSERT INTO visitors (visitor_id, first_seen, last_seen) \
     VALUES (?1, ?2, ?3) ON CONFLICT (visitor_id) DO UPDATE SET \
     first_seen = min(first_seen, excluded.first_seen), \
     last_seen = max(last_seen, excluded.last_seen)";
/// A visitor's directory state.
pub const VISITOR_GET: &str = "SELECT visitor_id, lead_id, linked, version, synced, \
     pending_links, links_version FROM visitors WHERE visitor_id = ?1";
/// A new change for the directory (`?2` the new version; `?3` the pending links, `?4`
/// whether they changed).
pub const VISITOR_BUMP: &str = "UPDATE visitors SET version = ?2, pending_links = ?3, \
     links_version = CASE WHEN ?4 THEN ?2 ELSE links_version END WHERE visitor_id = ?1";
/// The directory acknowledged version `?2` (its lead `?3`, linked `?4`).
pub const VISITOR_SYNCED: &str = "UPDATE visitors SET synced = max(synced, ?2), \
     lead_id = ?3, linked = ?4, \
     pending_links = CASE WHEN ?2 >= links_version THEN NULL ELSE pending_links END \
     WHERE visitor_id = ?1";
/// Visitors the directory has not seen the latest of.
pub const VISITORS_DIRTY: &str =
    "SELECT visitor_id FROM visitors WHERE version > synced ORDER BY visitor_id LIMIT ?1";

/// The id of a row key.
pub const ROW_KEY_ID: &str = "SELECT key_id FROM row_keys WHERE key = ?1";
/// Numbers a new row key.
pub const ROW_KEY_INSERT: &str =
    "INSERT INTO row_keys (key) VALUES (?1) ON CONFLICT (key) DO NOTHING";
/// Row keys by id (`?1` a JSON array of ids).
pub const ROW_KEYS_BY_ID: &str = "SELECT key_id, key FROM row_keys \
     WHERE key_id IN (SELECT value FROM json_each(?1))";

// ---- rollups ----------------------------------------------------------------------------

/// Adds to an hour row.
pub const HOUR_ROW_ADD: &str = "INSERT INTO hour_rows (hour, key_id, sessions, pageviews, \
     new_visitors) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (hour, key_id) DO UPDATE SET \
     sessions = sessions + excluded.sessions, pageviews = pageviews + excluded.pageviews, \
     new_visitors = new_visitors + excluded.new_visitors";
/// Drops an hour row at zero.
pub const HOUR_ROW_PRUNE: &str = "DELETE FROM hour_rows WHERE hour = ?1 AND key_id = ?2 \
     AND sessions = 0 AND pageviews = 0 AND new_visitors = 0";
/// Adds to a visitor's sessions in an hour row.
pub const HOUR_VISITOR_ADD: &str = "INSERT INTO hour_visitors (hour, key_id, visitor, \
     sessions) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (hour, key_id, visitor) DO UPDATE SET \
     sessions = sessions + excluded.sessions";
/// Drops a visitor at zero.
pub const HOUR_VISITOR_PRUNE: &str = "DELETE FROM hour_visitors WHERE hour = ?1 \
     AND key_id = ?2 AND visitor = ?3 AND sessions = 0";
/// Adds to a page's figures.
pub const HOUR_PAGE_ADD: &str = "INSERT INTO hour_pages (hour, path, key_id, views, \
     entrances, exits) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (hour, path, key_id) DO \
     UPDATE SET views = views + excluded.views, entrances = entrances + excluded.entrances, \
     exits = exits + excluded.exits";
/// Drops a page at zero.
pub const HOUR_PAGE_PRUNE: &str = "DELETE FROM hour_pages WHERE hour = ?1 AND path = ?2 \
     AND key_id = ?3 AND views = 0 AND entrances = 0 AND exits = 0";
/// Adds to a journey step.
pub const HOUR_STEP_ADD: &str = "INSERT INTO hour_steps (hour, with_bots, prev_channel, \
     prev_hour, channel, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (hour, with_bots, \
     prev_channel, prev_hour, channel) DO UPDATE SET n = n + excluded.n";
/// Drops a step at zero.
pub const HOUR_STEP_PRUNE: &str = "DELETE FROM hour_steps WHERE hour = ?1 AND with_bots = ?2 \
     AND prev_channel = ?3 AND prev_hour = ?4 AND channel = ?5 AND n = 0";
/// Marks a day for a new summary.
pub const DAY_DIRTY: &str = "INSERT INTO dirty_days (day) VALUES (?1) ON CONFLICT DO NOTHING";

/// Hour rows in `[?1, ?2)`.
pub const HOUR_ROWS_IN: &str = "SELECT hour, key_id, sessions, pageviews, new_visitors \
     FROM hour_rows WHERE hour >= ?1 AND hour < ?2";
/// Hour visitors in `[?1, ?2)`.
pub const HOUR_VISITORS_IN: &str =
    "SELECT hour, key_id, visitor, sessions FROM hour_visitors WHERE hour >= ?1 AND hour < ?2";
/// Hour pages in `[?1, ?2)`.
pub const HOUR_PAGES_IN: &str = "SELECT hour, path, key_id, views, entrances, exits \
     FROM hour_pages WHERE hour >= ?1 AND hour < ?2";
/// Hour steps in `[?1, ?2)`.
pub const HOUR_STEPS_IN: &str = "SELECT hour, with_bots, prev_channel, prev_hour, channel, n \
     FROM hour_steps WHERE hour >= ?1 AND hour < ?2";

/// Dirty days in `[?1, ?2)`.
pub const DIRTY_DAYS_IN: &str =
    "SELECT day FROM dirty_days WHERE day >= ?1 AND day < ?2 ORDER BY day LIMIT ?3";
/// A day is summarised.
pub const DAY_CLEAN: &str = "DELETE FROM dirty_days WHERE day = ?1";
/// Drops a day's summary (before it is written again).
pub const DAY_ROWS_CLEAR: &str = "DELETE FROM day_rows WHERE day = ?1";
/// See [`DAY_ROWS_CLEAR`].
pub const DAY_PAGES_CLEAR: &str = "DELETE FROM day_pages WHERE day = ?1";
/// See [`DAY_ROWS_CLEAR`].
pub const DAY_STEPS_CLEAR: &str = "DELETE FROM day_steps WHERE day = ?1";
/// Writes a day row.
pub const DAY_ROW_INSERT: &str = "INSERT INTO day_rows (day, key_id, sessions, pageviews, \
     new_visitors, visitors) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/// Writes a day page.
pub const DAY_PAGE_INSERT: &str = "INSERT INTO day_pages (day, path, key_id, views, \
     entrances, exits) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/// Writes a day step.
pub const DAY_STEP_INSERT: &str = "INSERT INTO day_steps (day, with_bots, prev_channel, \
     prev_day, channel, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/// Day rows in `[?1, ?2)`.
pub const DAY_ROWS_IN: &str = "SELECT day, key_id, sessions, pageviews, new_visitors, \
     visitors FROM day_rows WHERE day >= ?1 AND day < ?2";
/// Day pages in `[?1, ?2)`.
pub const DAY_PAGES_IN: &str = "SELECT day, path, key_id, views, entrances, exits \
     FROM day_pages WHERE day >= ?1 AND day < ?2";
/// Day steps in `[?1, ?2)`.
pub const DAY_STEPS_IN: &str = "SELECT day, with_bots, prev_channel, prev_day, channel, n \
     FROM day_steps WHERE day >= ?1 AND day < ?2";

// ---- archive and retention --------------------------------------------------------------

/// Queues an event for the archive.
pub const PENDING_INSERT: &str = "INSERT INTO archive_pending (event_id, day) VALUES (?1, ?2)";
/// The oldest pending day's first `?1` events, with their lines.
pub const PENDING_NEXT: &str = "SELECT p.seq, p.day, e.record FROM archive_pending p \
     JOIN events e ON e.event_id = p.event_id \
     WHERE p.day = (SELECT day FROM archive_pending ORDER BY seq LIMIT 1) \
     ORDER BY p.seq LIMIT ?1";
/// Pending entries whose event is gone (erased before it was archived).
pub const PENDING_ORPHANS: &str = "DELETE FROM archive_pending WHERE NOT EXISTS \
     (SELECT 1 FROM events e WHERE e.event_id = archive_pending.event_id)";
/// Takes archived entries off the queue (`?1` the day, `?2` ..= `?3` the seqs).
pub const PENDING_DONE: &str =
    "DELETE FROM archive_pending WHERE day = ?1 AND seq >= ?2 AND seq <= ?3";
/// How many events wait for the archive.
pub const PENDING_COUNT: &str = "SELECT count(*) AS n FROM archive_pending";
/// Records an object written.
pub const OBJECT_INSERT: &str = "INSERT INTO archive_objects (key, day, first_seq, last_seq, \
     events, bytes, written_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (key) DO NOTHING";
/// Moves the pending queue's numbering past `?1` (after a rebuild: new objects never take
/// the name of an archived one).
pub const PENDING_FLOOR_SET: &str =
    "INSERT INTO archive_pending (seq, event_id, day) VALUES (?1, '', '')";
/// See [`PENDING_FLOOR_SET`].
pub const PENDING_FLOOR_CLEAR: &str = "DELETE FROM archive_pending WHERE event_id = ''";

/// Archived events of sessions that ended before `?1`, up to `?2` (retention).
pub const EXPIRED_EVENTS: &str = "SELECT e.event_id, s.end_ts FROM events e \
     JOIN sessions s ON s.session_id = e.session_id \
     WHERE e.derived_ts < ?1 AND s.end_ts < ?1 \
     AND NOT EXISTS (SELECT 1 FROM archive_pending p WHERE p.event_id = e.event_id) \
     ORDER BY e.derived_ts LIMIT ?2";
/// Deletes events (`?1` a JSON array of ids).
pub const EVENTS_DELETE: &str =
    "DELETE FROM events WHERE event_id IN (SELECT value FROM json_each(?1))";

// ---- inspection -------------------------------------------------------------------------

/// Counts for the shard's status.
pub const STATUS: &str = "SELECT \
     (SELECT count(*) FROM events) AS events, \
     (SELECT count(*) FROM sessions) AS sessions, \
     (SELECT count(*) FROM visitors) AS visitors, \
     (SELECT count(*) FROM visitors WHERE version > synced) AS dirty_visitors, \
     (SELECT count(*) FROM archive_pending) AS pending, \
     (SELECT count(*) FROM archive_objects) AS objects, \
     (SELECT count(*) FROM dirty_days) AS dirty_days";
