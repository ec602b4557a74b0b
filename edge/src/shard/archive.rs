//! The shard's archive queue, its retention, its rebuild from the archive, and the async
//! steps (archive flush, directory delivery) that the Durable Object and the native tests
//! run the same way.
//!
//! - **Archive**: every accepted event is queued (`archive_pending`) in the batch's
//!   transaction; [`flush_archive`] writes the oldest day's queued events as one NDJSON
//!   object (at most [`ARCHIVE_OBJECT_EVENTS`] lines) through an [`ArchiveSink`], then takes
//!   them off the queue. A failed write leaves them queued; a write whose acknowledgement was
//!   lost writes the same object (same name, same lines) again.
//! - **Retention**: [`ShardEngine::expire`] deletes the raw events of sessions that ended
//!   more than the site's retention ago, only once archived (sessions, rollups and journeys
//!   stay). The latest such session end is the shard's watermark: an event at or before
//!   it plus 30 minutes is refused (`beyond_retention`), since it could re-cut a session
//!   whose events are only in the archive; a later one re-cuts from the first session after
//!   the watermark, which is exact (a timeout separates them).
//! - **Rebuild** ([`rebuild_step`]): replays the site's archive through the same ingest
//!   code into an empty shard (a new generation of the site's layout: another `N`, new
//!   channel rules), taking the events of its own visitors.

use super::engine::{ArchivedEvent, Ingested, ShardEngine, META_EXPIRED_THROUGH};
use super::msg::{ShardBatch, ShardSettings, SyncAnswer, VisitorSync};
use super::sql;
use crate::archive::{object_key, site_prefix, ArchiveSink};
use crate::args;
use crate::engines::EngineError;
use crate::sqlite::{query_as, query_one, Sql};
use closeloop_core::rollup::DAY_MS;
use serde::{Deserialize, Serialize};

/// Most events in one archive object.
pub const ARCHIVE_OBJECT_EVENTS: i64 = 5_000;
/// Raw events deleted per retention round.
pub const EXPIRE_BATCH: i64 = 2_000;
/// Archive objects replayed per rebuild step.
pub const REBUILD_OBJECTS_PER_STEP: usize = 8;
/// Meta key of a rebuild in progress.
const META_REBUILD: &str = "rebuild";

/// One archive object about to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveObject {
    /// Its name.
    pub key: String,
    /// Its day (`YYYY-MM-DD`).
    pub day: String,
    /// The queue numbers it covers.
    pub first_seq: i64,
    /// See `first_seq`.
    pub last_seq: i64,
    /// Its lines.
    pub body: String,
    /// How many lines.
    pub events: i64,
}

/// A rebuild's progress (kept in the shard's meta while it runs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildState {
    /// The last object replayed.
    pub after: Option<String>,
    /// Objects replayed.
    pub objects: u64,
    /// Lines read.
    pub lines: u64,
    /// Events of this shard stored again.
    pub accepted: u64,
    /// Events of this shard already there (a catch-up run).
    pub duplicates: u64,
    /// Whether every object was replayed.
    pub done: bool,
}

impl<S: Sql> ShardEngine<S> {
    /// The next archive object to write: the oldest queued day's first events (`None`:
    /// nothing queued, or no settings yet).
    pub fn next_archive_object(&self) -> Result<Option<ArchiveObject>, EngineError> {
        let Some(settings) = self.settings()? else {
            return Ok(None);
        };
        self.sql.execute(sql::PENDING_ORPHANS, &[])?;
        #[derive(Deserialize)]
        struct P {
            seq: i64,
            day: String,
            record: String,
        }
        let rows = query_as::<P, S>(&self.sql, sql::PENDING_NEXT, &args![ARCHIVE_OBJECT_EVENTS])?;
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok(None);
        };
        let mut body = String::new();
        for r in &rows {
            body.push_str(&r.record);
            body.push('\n');
        }
        Ok(Some(ArchiveObject {
            key: object_key(&settings.site, &first.day, &settings.label(), first.seq),
            day: first.day.clone(),
            first_seq: first.seq,
            last_seq: last.seq,
            events: rows.len() as i64,
            body,
        }))
    }

    /// Takes a written object's events off the queue.
    pub fn archived(&self, object: &ArchiveObject, now: i64) -> Result<(), EngineError> {
        self.atomically(|| {
            self.sql.execute(
                sql::PENDING_DONE,
                &args![&object.day, object.first_seq, object.last_seq],
            )?;
            self.sql.execute(
                sql::OBJECT_INSERT,
                &args![
                    &object.key,
                    &object.day,
                    object.first_seq,
                    object.last_seq,
                    object.events,
                    object.body.len() as i64,
                    now
                ],
            )?;
            Ok(())
        })
    }

    /// Events waiting for the archive.
    pub fn pending(&self) -> Result<i64, EngineError> {
        #[derive(Deserialize)]
        struct N {
            n: i64,
        }
        Ok(query_one::<N, S>(&self.sql, sql::PENDING_COUNT, &[])?.map_or(0, |n| n.n))
    }

    /// Deletes up to [`EXPIRE_BATCH`] archived raw events of sessions that ended more than
    /// the retention before `now`; returns how many.
    pub fn expire(&self, now: i64) -> Result<usize, EngineError> {
        let Some(settings) = self.settings()? else {
            return Ok(0);
        };
        let horizon = now.saturating_sub(settings.retention_days.max(1).saturating_mul(DAY_MS));
        self.expire_before(horizon)
    }

    /// [`ShardEngine::expire`] with the horizon given.
    pub fn expire_before(&self, horizon: i64) -> Result<usize, EngineError> {
        self.atomically(|| {
            #[derive(Deserialize)]
            struct E {
                event_id: String,
                end_ts: i64,
            }
            let rows = query_as::<E, S>(
                &self.sql,
                sql::EXPIRED_EVENTS,
                &args![horizon, EXPIRE_BATCH],
            )?;
            let Some(latest_end) = rows.iter().map(|e| e.end_ts).max() else {
                return Ok(0);
            };
            let ids: Vec<&str> = rows.iter().map(|e| e.event_id.as_str()).collect();
            self.sql
                .execute(sql::EVENTS_DELETE, &args![serde_json::to_string(&ids)?])?;
            let old: Option<i64> = self
                .meta(META_EXPIRED_THROUGH)?
                .and_then(|v| v.parse().ok());
            let mark = old.map_or(latest_end, |o| o.max(latest_end));
            self.set_meta(META_EXPIRED_THROUGH, &mark.to_string())?;
            Ok(rows.len())
        })
    }

    /// The retention watermark (see the module docs), if events expired.
    pub fn expired_through(&self) -> Result<Option<i64>, EngineError> {
        Ok(self
            .meta(META_EXPIRED_THROUGH)?
            .and_then(|v| v.parse().ok()))
    }

    /// Drops quota counters of days before yesterday.
    pub fn prune_quotas(&self, now: i64) -> Result<(), EngineError> {
        let keep = now.div_euclid(DAY_MS) - 1;
        self.atomically(|| {
            self.sql.execute(sql::QUOTA_PRUNE_VISITORS, &args![keep])?;
            self.sql.execute(sql::QUOTA_PRUNE_DAYS, &args![keep])?;
            Ok(())
        })
    }

    /// Starts a rebuild with these settings. A shard that holds events refuses, unless
    /// `catch_up` (a second run over the archive after the switch: events already there are
    /// duplicates, missing ones are added).
    pub fn rebuild_begin(
        &self,
        settings: &ShardSettings,
        catch_up: bool,
    ) -> Result<RebuildState, EngineError> {
        self.atomically(|| {
            let status = self.status()?;
            if !catch_up && (status.events > 0 || status.sessions > 0) {
                return Err(EngineError::Conflict(
                    "a rebuild fills an empty shard (a new generation): this one holds events"
                        .into(),
                ));
            }
            self.keep_settings(settings)?;
            let state = RebuildState::default();
            self.set_meta(META_REBUILD, &serde_json::to_string(&state)?)?;
            Ok(state)
        })
    }

    /// The rebuild in progress, if any.
    pub fn rebuild_state(&self) -> Result<Option<RebuildState>, EngineError> {
        Ok(match self.meta(META_REBUILD)? {
            Some(v) => Some(serde_json::from_str(&v)?),
            None => None,
        })
    }

    fn save_rebuild(&self, state: &RebuildState) -> Result<(), EngineError> {
        self.atomically(|| self.set_meta(META_REBUILD, &serde_json::to_string(state)?))
    }

    /// Replays one archive object's lines: this shard's visitors' events, through the same
    /// ingest as a beacon (no quota, not archived again), a request's events together.
    /// Returns (lines, accepted, duplicates) and what to tell the directory.
    pub fn replay(&self, body: &str) -> Result<(u64, u64, u64, Vec<VisitorSync>), EngineError> {
        let settings = self
            .settings()?
            .ok_or_else(|| EngineError::invalid("a rebuild needs the site's settings first"))?;
        let mut lines = 0u64;
        let mut batches: Vec<ShardBatch> = Vec::new();
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            lines += 1;
            let e: ArchivedEvent = serde_json::from_str(line).map_err(|err| {
                EngineError::invalid(format!("an archive line does not read: {err}"))
            })?;
            if e.site != settings.site
                || super::msg::shard_of(&e.visitor_id, settings.shards) != settings.shard
            {
                continue;
            }
            match batches.last_mut() {
                Some(b) if b.visitor == e.visitor_id && b.received_at == e.received_at => {
                    b.events.push(e.event);
                    b.links.extend(e.lead);
                }
                _ => batches.push(ShardBatch {
                    settings: settings.clone(),
                    visitor: e.visitor_id,
                    received_at: e.received_at,
                    context: e.context,
                    events: vec![e.event],
                    links: e.lead.into_iter().collect(),
                }),
            }
        }
        let (mut accepted, mut duplicates) = (0u64, 0u64);
        let mut syncs = Vec::new();
        for b in &batches {
            let Ingested { answer, sync } = self.ingest_with(b, true)?;
            for (_, o) in &answer.results {
                match o {
                    super::msg::Outcome::Accepted => accepted += 1,
                    super::msg::Outcome::Duplicate => duplicates += 1,
                    _ => {}
                }
            }
            syncs.extend(sync);
        }
        Ok((lines, accepted, duplicates, syncs))
    }
}

/// Where a shard's directory is (the `Directory` object in the worker, the engine itself in
/// native tests).
#[allow(async_fn_in_trait)]
pub trait DirectoryLink {
    /// Delivers a sync.
    async fn sync(&self, msg: &VisitorSync) -> Result<SyncAnswer, String>;
}

/// Tells the directory what a batch changed (a delta, then a full state if it asks) and
/// records its answer. A failure leaves the visitor dirty for the alarm; returns whether
/// the directory has the change.
pub async fn deliver<S: Sql, D: DirectoryLink>(
    engine: &ShardEngine<S>,
    directory: &D,
    sync: &VisitorSync,
) -> Result<bool, EngineError> {
    let answer = match directory.sync(sync).await {
        Ok(a) => a,
        Err(_) => return Ok(false),
    };
    if !answer.need_full {
        engine.synced(&sync.visitor, sync.version, &answer)?;
        return Ok(true);
    }
    let Some(full) = engine.full_sync(&sync.visitor)? else {
        return Ok(false);
    };
    match directory.sync(&full).await {
        Ok(a) if !a.need_full => {
            engine.synced(&full.visitor, full.version, &a)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Sends a full state to the directory for up to `limit` dirty visitors; returns how many
/// the directory now has.
pub async fn retry_dirty<S: Sql, D: DirectoryLink>(
    engine: &ShardEngine<S>,
    directory: &D,
    limit: usize,
) -> Result<usize, EngineError> {
    let mut done = 0;
    for visitor in engine.dirty_visitors(limit)? {
        let Some(full) = engine.full_sync(&visitor)? else {
            continue;
        };
        if let Ok(a) = directory.sync(&full).await {
            if !a.need_full {
                engine.synced(&visitor, full.version, &a)?;
                done += 1;
            }
        }
    }
    Ok(done)
}

/// Writes queued events to the archive, up to `max_objects` objects; returns how many
/// events were archived. Stops at the first failed write (they stay queued).
pub async fn flush_archive<S: Sql, A: ArchiveSink>(
    engine: &ShardEngine<S>,
    sink: &A,
    now: i64,
    max_objects: usize,
) -> Result<i64, EngineError> {
    let mut archived = 0;
    for _ in 0..max_objects {
        let Some(object) = engine.next_archive_object()? else {
            break;
        };
        if sink.put(&object.key, object.body.clone()).await.is_err() {
            break;
        }
        engine.archived(&object, now)?;
        archived += object.events;
    }
    Ok(archived)
}

/// One step of a rebuild: replays up to [`REBUILD_OBJECTS_PER_STEP`] more of the site's
/// archive objects (in name order: day by day) and tells the directory; returns the state
/// (`done` when the archive is exhausted).
pub async fn rebuild_step<S: Sql, A: ArchiveSink, D: DirectoryLink>(
    engine: &ShardEngine<S>,
    sink: &A,
    directory: &D,
) -> Result<RebuildState, EngineError> {
    let mut state = engine
        .rebuild_state()?
        .ok_or_else(|| EngineError::invalid("no rebuild in progress"))?;
    if state.done {
        return Ok(state);
    }
    let settings = engine
        .settings()?
        .ok_or_else(|| EngineError::invalid("a rebuild needs the site's settings first"))?;
    let (keys, more) = sink
        .list(
            &site_prefix(&settings.site),
            state.after.as_deref(),
            REBUILD_OBJECTS_PER_STEP,
        )
        .await
        .map_err(|e| {
            EngineError::Sql(crate::sqlite::SqlError::new(format!("archive list: {e}")))
        })?;
    for key in &keys {
        let body = sink
            .get(key)
            .await
            .map_err(|e| {
                EngineError::Sql(crate::sqlite::SqlError::new(format!("archive get: {e}")))
            })?
            .unwrap_or_default();
        let (lines, accepted, duplicates, syncs) = engine.replay(&body)?;
        for s in &syncs {
            deliver(engine, directory, s).await?;
        }
        state.after = Some(key.clone());
        state.objects += 1;
        state.lines += lines;
        state.accepted += accepted;
        state.duplicates += duplicates;
        engine.save_rebuild(&state)?;
    }
    if !more {
        state.done = true;
        engine.save_rebuild(&state)?;
    }
    Ok(state)
}
