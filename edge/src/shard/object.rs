//! The `Shard` Durable Object class (wasm32 only): [`ShardEngine`] over the object's own
//! SQLite storage ([`DurableSql`]), reached by the worker through `fetch` with JSON bodies
//! ([`super::client`]). The class only carries out what the engine decides:
//!
//! | request | body | answer |
//! |---|---|---|
//! | `POST /ingest` | [`ShardBatch`] | [`super::msg::ShardAnswer`] |
//! | `POST /traffic` | [`TrafficQuery`] | [`super::msg::TrafficAnswer`] |
//! | `GET /status` | — | [`super::ShardStatus`] |
//!
//! An error answers `{"error": {"code", "message"}}` with the status of
//! [`EngineError::parts`] (400 for a request the engine cannot act on, 500 when its storage
//! failed; either way the transaction changed nothing).
//!
//! # The alarm
//!
//! After a batch leaves events waiting for the archive, the object sets its alarm
//! [`ARCHIVE_DELAY_MS`] later (once: an alarm already set is kept). The alarm writes the
//! archive objects to the `ARCHIVE` R2 bucket ([`R2Archive`]) and only then takes their
//! events off the queue (a lost acknowledgement rewrites the same object, same name, same
//! bytes), summarises the days batches changed, deletes raw events past the retention that
//! are archived, and drops old quota counters. What is still queued sets the alarm again.
//! An alarm that fails is retried by the runtime (with back-off); nothing is lost.
//!
//! # The directory
//!
//! After a batch that changes a linked visitor (or links one), the shard tells the site's
//! lead directory ([`D1Directory`]: the site's D1 rows) once the batch is committed. If
//! that fails the visitor stays dirty in the shard (`version > synced`) and the alarm
//! sends its full state (up to [`DIRTY_PER_ALARM`] a run, again until none is left).

use super::msg::{ShardBatch, TrafficQuery};
use super::ShardEngine;
use crate::archive::R2Archive;
use crate::directory::D1Directory;
use crate::engines::EngineError;
use crate::sqlite::durable::DurableSql;
use crate::store::Store;
use closeloop_core::rollup::DAY_MS;
use std::cell::OnceCell;
use worker::{durable_object, Date, DurableObject, Env, Method, Request, Response, State};

/// How long after a batch the alarm writes the archive (ms): events of ~30 s of traffic
/// share an object.
pub const ARCHIVE_DELAY_MS: i64 = 30_000;

/// Most archive objects one alarm writes (each up to `ARCHIVE_OBJECT_EVENTS` events); the
/// rest set the alarm again at once.
const OBJECTS_PER_ALARM: usize = 20;

/// Most dirty visitors whose full state one alarm sends the directory.
const DIRTY_PER_ALARM: usize = 50;

/// Most dirty days one alarm summarises.
const DAYS_PER_ALARM: usize = 64;

/// One site's shard (`SHARD.idFromName(msg::object_name(..))`).
#[durable_object]
pub struct Shard {
    state: State,
    env: Env,
    engine: OnceCell<ShardEngine<DurableSql>>,
}

impl Shard {
    /// The engine, its schema brought up to date on first use.
    fn engine(&self) -> Result<&ShardEngine<DurableSql>, EngineError> {
        if let Some(e) = self.engine.get() {
            return Ok(e);
        }
        let opened = ShardEngine::open(DurableSql::new(self.state.storage()))?;
        Ok(self.engine.get_or_init(|| opened))
    }

    async fn answer(&self, req: &mut Request) -> Result<Response, EngineError> {
        let engine = self.engine()?;
        let path = req.path();
        match (req.method(), path.as_str()) {
            (Method::Post, "/ingest") => {
                let batch: ShardBatch = read_json(req).await?;
                let mut ingested = engine.ingest(&batch)?;
                if let Some(sync) = &ingested.sync {
                    // committed: now the directory hears of it (a failure leaves the
                    // visitor dirty for the alarm)
                    let directory = self.directory(&batch.settings.site)?;
                    let delivered = super::archive::deliver(engine, &directory, sync).await?;
                    ingested.answer.directory_synced = delivered;
                    if !delivered {
                        self.alarm_in(ARCHIVE_DELAY_MS).await?;
                    }
                }
                if engine.pending()? > 0 {
                    self.alarm_in(self.archive_delay()).await?;
                }
                json(&ingested.answer)
            }
            (Method::Post, "/traffic") => {
                let query: TrafficQuery = read_json(req).await?;
                json(&engine.traffic(&query)?)
            }
            (Method::Get, "/status") => json(&engine.status()?),
            _ => Err(EngineError::invalid(format!(
                "a shard has no route {} {path}",
                req.method()
            ))),
        }
    }

    /// [`ARCHIVE_DELAY_MS`], or the `SHARD_ARCHIVE_DELAY_MS` variable (the tests shorten
    /// it; a deployment never sets it).
    fn archive_delay(&self) -> i64 {
        self.env
            .var("SHARD_ARCHIVE_DELAY_MS")
            .ok()
            .and_then(|v| v.to_string().parse::<i64>().ok())
            .filter(|d| (0..=ARCHIVE_DELAY_MS).contains(d))
            .unwrap_or(ARCHIVE_DELAY_MS)
    }

    /// The site's lead directory (its D1 rows: [`D1Directory`]).
    fn directory(&self, site: &str) -> Result<D1Directory, EngineError> {
        let store = Store::from_env(&self.env)
            .map_err(|e| EngineError::Sql(crate::sqlite::SqlError::new(e.message)))?;
        Ok(D1Directory::new(store, site))
    }

    /// Sets the alarm `delay` ms from now unless one is already set.
    async fn alarm_in(&self, delay: i64) -> Result<(), EngineError> {
        let storage = self.state.storage();
        let set = storage.get_alarm().await.map_err(platform)?;
        if set.is_none() {
            // an `i64` is an offset from now (workers-rs's `ScheduledTime`), not a time
            storage.set_alarm(delay.max(0)).await.map_err(platform)?;
        }
        Ok(())
    }

    async fn run_alarm(&self) -> Result<(), EngineError> {
        let engine = self.engine()?;
        let now = Date::now().as_millis() as i64;
        let sink = R2Archive::from_env(&self.env, "ARCHIVE").map_err(EngineError::invalid)?;
        let archived = super::archive::flush_archive(engine, &sink, now, OBJECTS_PER_ALARM).await?;
        let mut dirty = 0;
        if let Some(settings) = engine.settings()? {
            let directory = self.directory(&settings.site)?;
            super::archive::retry_dirty(engine, &directory, DIRTY_PER_ALARM).await?;
            dirty = engine.status()?.dirty_visitors;
        }
        engine.summarise_days(0, now.div_euclid(DAY_MS) + 2, DAYS_PER_ALARM)?;
        engine.expire(now)?;
        engine.prune_quotas(now)?;
        if dirty > 0 {
            self.alarm_in(ARCHIVE_DELAY_MS).await?;
        }
        if engine.pending()? > 0 {
            // more to write: at once; a write that failed: after the usual delay
            self.alarm_in(if archived > 0 { 0 } else { ARCHIVE_DELAY_MS })
                .await?;
        }
        Ok(())
    }
}

impl DurableObject for Shard {
    fn new(state: State, env: Env) -> Self {
        Shard {
            state,
            env,
            engine: OnceCell::new(),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        match self.answer(&mut req).await {
            Ok(r) => Ok(r),
            Err(e) => error_response(&e),
        }
    }

    async fn alarm(&self) -> worker::Result<Response> {
        match self.run_alarm().await {
            Ok(()) => Response::ok(""),
            // the runtime retries a failed alarm with back-off
            Err(e) => {
                worker::console_error!("shard alarm failed: {e}");
                Err(worker::Error::RustError(e.to_string()))
            }
        }
    }
}

/// The JSON answer of an engine error.
pub fn error_response(e: &EngineError) -> worker::Result<Response> {
    let (status, code, message) = e.parts();
    Ok(Response::from_json(&serde_json::json!({
        "error": { "code": code, "message": message }
    }))?
    .with_status(status))
}

async fn read_json<T: serde::de::DeserializeOwned>(req: &mut Request) -> Result<T, EngineError> {
    let text = req.text().await.map_err(platform)?;
    serde_json::from_str(&text).map_err(|e| EngineError::invalid(format!("unreadable body: {e}")))
}

fn json<T: serde::Serialize>(v: &T) -> Result<Response, EngineError> {
    Response::from_json(v).map_err(platform)
}

/// A platform call that failed (storage, alarm): an internal error.
fn platform(e: worker::Error) -> EngineError {
    EngineError::Sql(crate::sqlite::SqlError::new(e.to_string()))
}
