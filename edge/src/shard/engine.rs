//! The shard's ingest: one visitor's batch → deduplicated events, quotas, sessions at
//! ingest (core's `resession`), rollup deltas (core's `Rollup::apply`), the archive queue and
//! what the directory must hear, all in one transaction.

use super::msg::{
    BatchEvent, JourneySessionMsg, JourneyView, LeadLink, Outcome, RequestContext, ShardAnswer,
    ShardBatch, ShardSettings, SyncAnswer, VisitorSync, JOURNEY_MAX_SESSIONS, JOURNEY_MAX_VIEWS,
};
use super::sql;
use crate::args;
use crate::engines::EngineError;
use crate::sqlite::{query_as, query_one, Arg, Sql, SqlError};
use closeloop_core::arrival::{arrival, SessionTouch};
use closeloop_core::resession::{
    plan, resessionize, Changes, Marker, PageRef, Plan, VisitEvent, VisitSession, Window,
};
use closeloop_core::rollup::{Rollup, RowKey};
use closeloop_core::session::Arrival;
use closeloop_core::time::{format_date, MS_PER_DAY};
use closeloop_core::wire::TouchAck;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Sessions read per page when a late event re-cuts a visitor's sessions.
pub const RECUT_PAGE: i64 = 32;
/// Meta key of the site's settings.
pub(super) const META_SETTINGS: &str = "settings";
/// Meta key of the retention watermark: raw events of sessions that ended at or before it
/// left the shard.
pub(super) const META_EXPIRED_THROUGH: &str = "expired_through";

/// One event as archived: everything the edge knew of it, one NDJSON line. The same line
/// is what a rebuild replays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivedEvent {
    /// The site.
    pub site: String,
    /// The visitor.
    pub visitor_id: String,
    /// When the edge received it.
    pub received_at: i64,
    /// The event.
    #[serde(flatten)]
    pub event: BatchEvent,
    /// Geo and user agent of its request.
    #[serde(flatten)]
    pub context: RequestContext,
    /// The lead it identified, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead: Option<LeadLink>,
}

/// What a batch did: the answer for the worker, and what to tell the directory (after the
/// transaction committed; `ShardEngine::synced` records its answer).
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    /// The answer.
    pub answer: ShardAnswer,
    /// What to tell the directory, if anything.
    pub sync: Option<VisitorSync>,
}

/// A session as stored.
#[derive(Debug, Deserialize)]
pub(super) struct DbSession {
    session_id: String,
    start_ts: i64,
    first_event: String,
    end_ts: i64,
    last_event: String,
    touch: Option<String>,
    landing_path: String,
    events: i64,
    pageviews: i64,
    is_bot: i64,
    country: Option<String>,
    device: Option<String>,
    entrance: Option<String>,
    exit_page: Option<String>,
    prev_any: Option<String>,
    prev_human: Option<String>,
}

fn parse_opt<T: for<'de> Deserialize<'de>>(v: &Option<String>) -> Result<Option<T>, EngineError> {
    Ok(match v {
        Some(s) => Some(serde_json::from_str(s)?),
        None => None,
    })
}

fn json_opt<T: Serialize>(v: &Option<T>) -> Result<Option<String>, EngineError> {
    Ok(match v {
        Some(x) => Some(serde_json::to_string(x)?),
        None => None,
    })
}

impl DbSession {
    pub(super) fn visit(&self) -> Result<VisitSession<SessionTouch>, EngineError> {
        Ok(VisitSession {
            id: self.session_id.clone(),
            start: self.start_ts,
            first_event: self.first_event.clone(),
            end: self.end_ts,
            last_event: self.last_event.clone(),
            touch: parse_opt(&self.touch)?,
            landing_path: self.landing_path.clone(),
            events: self.events.max(0) as u64,
            pageviews: self.pageviews.max(0) as u64,
            is_bot: self.is_bot != 0,
            country: self.country.clone(),
            device: self.device.clone(),
            entrance: parse_opt::<PageRef>(&self.entrance)?,
            exit: parse_opt::<PageRef>(&self.exit_page)?,
            prev_any: parse_opt::<Marker<SessionTouch>>(&self.prev_any)?,
            prev_human: parse_opt::<Marker<SessionTouch>>(&self.prev_human)?,
        })
    }
}

/// An event as sessionisation reads it back.
#[derive(Debug, Deserialize)]
struct DbEvent {
    event_id: String,
    #[serde(rename = "type")]
    kind: String,
    path: String,
    derived_ts: i64,
    arrival: String,
    is_bot: i64,
    country: Option<String>,
    device: Option<String>,
    session_id: Option<String>,
}

impl DbEvent {
    fn visit(self) -> Result<VisitEvent<SessionTouch>, EngineError> {
        Ok(VisitEvent {
            arrival: serde_json::from_str::<Arrival<SessionTouch>>(&self.arrival)?,
            pageview: self.kind == "pageview",
            id: self.event_id,
            at: self.derived_ts,
            path: self.path,
            is_bot: self.is_bot != 0,
            country: self.country,
            device: self.device,
            session: self.session_id,
        })
    }
}

/// A visitor's directory state.
#[derive(Debug, Deserialize)]
pub(super) struct DbVisitor {
    pub(super) lead_id: Option<String>,
    pub(super) linked: i64,
    pub(super) version: i64,
    pub(super) synced: i64,
    pub(super) pending_links: Option<String>,
}

/// A page of a re-cut: the sessions, their events, and whether no session follows.
type RecutPage = (
    Vec<VisitSession<SessionTouch>>,
    Vec<VisitEvent<SessionTouch>>,
    bool,
);

/// The shard's logic over its SQL (see the [module docs](super)).
pub struct ShardEngine<S: Sql> {
    pub(super) sql: S,
    /// Row key JSON → id (cleared when a transaction fails: its ids may be gone).
    pub(super) keys: RefCell<HashMap<String, i64>>,
    /// Settings as last stored.
    settings: RefCell<Option<ShardSettings>>,
}

impl<S: Sql> ShardEngine<S> {
    /// Opens a shard over `sql`, bringing its schema up to date.
    pub fn open(sql: S) -> Result<ShardEngine<S>, EngineError> {
        crate::sqlite::migrate(&sql, &sql::SCHEMA)?;
        Ok(ShardEngine {
            sql,
            keys: RefCell::new(HashMap::new()),
            settings: RefCell::new(None),
        })
    }

    /// The SQL underneath (counters, size).
    pub fn sql(&self) -> &S {
        &self.sql
    }

    /// Runs `f` in a transaction; forgets cached row key ids when it fails.
    pub(super) fn atomically<T>(
        &self,
        f: impl FnOnce() -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let r = self.sql.transaction(f);
        if r.is_err() {
            self.keys.borrow_mut().clear();
        }
        r
    }

    pub(super) fn meta(&self, key: &str) -> Result<Option<String>, EngineError> {
        #[derive(Deserialize)]
        struct V {
            value: String,
        }
        Ok(query_one::<V, S>(&self.sql, sql::META_GET, &args![key])?.map(|v| v.value))
    }

    pub(super) fn set_meta(&self, key: &str, value: &str) -> Result<(), EngineError> {
        self.sql.execute(sql::META_PUT, &args![key, value])?;
        Ok(())
    }

    /// The settings last sent to this shard (the alarm works with them).
    pub fn settings(&self) -> Result<Option<ShardSettings>, EngineError> {
        if let Some(s) = self.settings.borrow().as_ref() {
            return Ok(Some(s.clone()));
        }
        let s = match self.meta(META_SETTINGS)? {
            Some(v) => Some(serde_json::from_str::<ShardSettings>(&v)?),
            None => None,
        };
        self.settings.replace(s.clone());
        Ok(s)
    }

    /// Keeps the settings a request carries (when they changed). A request for another
    /// site or shard than the one this shard holds is refused.
    pub(super) fn keep_settings(&self, s: &ShardSettings) -> Result<(), EngineError> {
        let known = self.settings()?;
        if let Some(k) = &known {
            if k.site != s.site || k.shard != s.shard {
                return Err(EngineError::Conflict(format!(
                    "this shard holds site `{}` shard {}, not site `{}` shard {}",
                    k.site, k.shard, s.site, s.shard
                )));
            }
            if k == s {
                return Ok(());
            }
        }
        self.set_meta(META_SETTINGS, &serde_json::to_string(s)?)?;
        self.settings.replace(Some(s.clone()));
        Ok(())
    }

    /// The id of a row key (numbered on first use).
    pub(super) fn key_id(&self, key: &RowKey) -> Result<i64, EngineError> {
        let text = serde_json::to_string(key)?;
        if let Some(id) = self.keys.borrow().get(&text) {
            return Ok(*id);
        }
        #[derive(Deserialize)]
        struct K {
            key_id: i64,
        }
        let id = match query_one::<K, S>(&self.sql, sql::ROW_KEY_ID, &args![&text])? {
            Some(k) => k.key_id,
            None => {
                self.sql.execute(sql::ROW_KEY_INSERT, &args![&text])?;
                query_one::<K, S>(&self.sql, sql::ROW_KEY_ID, &args![&text])?
                    .ok_or_else(|| SqlError::new("a row key was not numbered"))?
                    .key_id
            }
        };
        self.keys.borrow_mut().insert(text, id);
        Ok(id)
    }

    /// Row keys by id.
    pub(super) fn keys_by_id(
        &self,
        ids: &BTreeSet<i64>,
    ) -> Result<BTreeMap<i64, RowKey>, EngineError> {
        #[derive(Deserialize)]
        struct K {
            key_id: i64,
            key: String,
        }
        let list = serde_json::to_string(&ids.iter().collect::<Vec<_>>())?;
        let mut out = BTreeMap::new();
        for k in query_as::<K, S>(&self.sql, sql::ROW_KEYS_BY_ID, &args![list])? {
            out.insert(k.key_id, serde_json::from_str(&k.key)?);
        }
        Ok(out)
    }

    fn sessions(
        &self,
        q: &str,
        args: &[Arg],
    ) -> Result<Vec<VisitSession<SessionTouch>>, EngineError> {
        query_as::<DbSession, S>(&self.sql, q, args)?
            .iter()
            .map(DbSession::visit)
            .collect()
    }

    /// A page of the visitor's sessions from `(start, id)` (inclusive or not), with all
    /// their events, as `resession` reads a re-cut.
    fn recut_page(
        &self,
        visitor: &str,
        from: (i64, &str),
        inclusive: bool,
        latest: &str,
    ) -> Result<RecutPage, EngineError> {
        let q = if inclusive {
            sql::SESSIONS_FROM
        } else {
            sql::SESSIONS_AFTER
        };
        let sessions = self.sessions(q, &args![visitor, from.0, from.1, RECUT_PAGE])?;
        let (Some(first), Some(last)) = (sessions.first(), sessions.last()) else {
            return Ok((Vec::new(), Vec::new(), true));
        };
        let ids: BTreeSet<&str> = sessions.iter().map(|s| s.id.as_str()).collect();
        let events = query_as::<DbEvent, S>(
            &self.sql,
            sql::EVENTS_BETWEEN,
            &args![visitor, first.start, last.end],
        )?
        .into_iter()
        .filter(|e| e.session_id.as_deref().is_some_and(|s| ids.contains(s)))
        .map(DbEvent::visit)
        .collect::<Result<Vec<_>, _>>()?;
        let complete = last.id == latest;
        Ok((sessions, events, complete))
    }

    /// The visitor's session changes for `fresh` events (reading what `plan` asks, a page
    /// at a time).
    fn resession(
        &self,
        visitor: &str,
        fresh: &[VisitEvent<SessionTouch>],
        settings: &ShardSettings,
    ) -> Result<Changes<SessionTouch>, EngineError> {
        let rules = settings.rules();
        let excluded = |host: &str| rules.excludes(host);
        let latest = self
            .sessions(sql::SESSION_LATEST, &args![visitor])?
            .into_iter()
            .next();
        let mut window = match plan(latest.as_ref(), fresh) {
            Plan::First => Window::Empty,
            Plan::Append => match latest.clone() {
                Some(l) => Window::Append(Box::new(l)),
                None => Window::Empty,
            },
            Plan::Recut { at, id } => {
                let latest_id = latest.as_ref().map(|s| s.id.clone()).unwrap_or_default();
                let from = match self
                    .sessions(sql::SESSION_HOLDING, &args![visitor, at, &id])?
                    .into_iter()
                    .next()
                {
                    Some(s) => s,
                    None => self
                        .sessions(sql::SESSION_FIRST, &args![visitor])?
                        .into_iter()
                        .next()
                        .ok_or_else(|| SqlError::new("a visitor with a latest session has none"))?,
                };
                // a session whose raw events expired is never re-cut: the new events come
                // more than the timeout after it (older ones are refused), so the re-cut
                // starts at the next session, with its markers (see shard::archive)
                let expired = self
                    .meta(META_EXPIRED_THROUGH)?
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|w| from.end <= w);
                let (sessions, events, complete) =
                    self.recut_page(visitor, (from.start, &from.id), !expired, &latest_id)?;
                Window::Recut {
                    sessions,
                    events,
                    complete,
                }
            }
        };
        let latest_id = latest.as_ref().map(|s| s.id.clone()).unwrap_or_default();
        // each round reads one more page; a visitor has finitely many sessions
        loop {
            match resessionize(&window, fresh, excluded) {
                Ok(changes) => return Ok(changes),
                Err(more) => {
                    let Window::Recut {
                        sessions,
                        events,
                        complete,
                    } = &mut window
                    else {
                        return Err(EngineError::Sql(SqlError::new(
                            "the sessioniser asked for more outside a re-cut",
                        )));
                    };
                    let (s2, e2, c2) =
                        self.recut_page(visitor, (more.start, &more.id), false, &latest_id)?;
                    if s2.is_empty() {
                        return Err(EngineError::Sql(SqlError::new(
                            "the sessioniser asked for sessions past the visitor's latest",
                        )));
                    }
                    sessions.extend(s2);
                    events.extend(e2);
                    *complete = c2;
                }
            }
        }
    }

    /// Stores one visitor's batch (see the [module docs](super)). All of it, or nothing.
    pub fn ingest(&self, batch: &ShardBatch) -> Result<Ingested, EngineError> {
        self.ingest_with(batch, false)
    }

    /// [`ShardEngine::ingest`]; `replay`: events from the archive (a rebuild) — no quota,
    /// not archived again.
    pub(super) fn ingest_with(
        &self,
        batch: &ShardBatch,
        replay: bool,
    ) -> Result<Ingested, EngineError> {
        let s = &batch.settings;
        if s.shard >= s.shards.max(1) {
            return Err(EngineError::invalid(format!(
                "shard {} of {} does not exist",
                s.shard, s.shards
            )));
        }
        if super::msg::shard_of(&batch.visitor, s.shards) != s.shard {
            return Err(EngineError::invalid(format!(
                "visitor `{}` lives in shard {} of {}, not {}",
                batch.visitor,
                super::msg::shard_of(&batch.visitor, s.shards),
                s.shards,
                s.shard
            )));
        }
        self.atomically(|| self.ingest_in_tx(batch, replay))
    }

    fn ingest_in_tx(&self, batch: &ShardBatch, replay: bool) -> Result<Ingested, EngineError> {
        let settings = &batch.settings;
        self.keep_settings(settings)?;
        let visitor = batch.visitor.as_str();
        // 1. what is already stored
        #[derive(Deserialize)]
        struct Id {
            event_id: String,
        }
        let ids: Vec<&str> = batch.events.iter().map(|e| e.event_id.as_str()).collect();
        let present: BTreeSet<String> = query_as::<Id, S>(
            &self.sql,
            sql::EVENTS_PRESENT,
            &args![serde_json::to_string(&ids)?],
        )?
        .into_iter()
        .map(|i| i.event_id)
        .collect();
        // 2. retention, quotas, in the batch's order
        let watermark: Option<i64> = match self.meta(META_EXPIRED_THROUGH)? {
            Some(v) => v.parse().ok(),
            None => None,
        };
        let day = batch.received_at.div_euclid(MS_PER_DAY);
        #[derive(Deserialize)]
        struct Quota {
            visitor: Option<i64>,
            shard: Option<i64>,
        }
        let q = query_one::<Quota, S>(&self.sql, sql::QUOTA_READ, &args![day, visitor])?;
        let (mut visitor_used, mut shard_used) = q
            .map(|q| (q.visitor.unwrap_or(0), q.shard.unwrap_or(0)))
            .unwrap_or((0, 0));
        let shard_cap = settings.shard_day_cap();
        let mut results: Vec<(String, Outcome)> = Vec::with_capacity(batch.events.len());
        let mut fresh: Vec<&BatchEvent> = Vec::new();
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        for e in &batch.events {
            let outcome = if present.contains(&e.event_id) || !seen.insert(&e.event_id) {
                Outcome::Duplicate
            } else if watermark.is_some_and(|w| {
                e.derived_ts <= w.saturating_add(closeloop_core::session::SESSION_TIMEOUT_MS)
            }) {
                Outcome::BeyondRetention
            } else if !replay && shard_used >= shard_cap {
                Outcome::SiteQuotaExceeded
            } else if !replay && visitor_used >= settings.max_events_per_visitor_day {
                Outcome::VisitorQuotaExceeded
            } else {
                visitor_used += 1;
                shard_used += 1;
                fresh.push(e);
                Outcome::Accepted
            };
            results.push((e.event_id.clone(), outcome));
        }
        // 3. sessions at ingest
        let visits: Vec<VisitEvent<SessionTouch>> = fresh
            .iter()
            .map(|e| VisitEvent {
                id: e.event_id.clone(),
                at: e.derived_ts,
                path: e.path.clone(),
                arrival: arrival(
                    &e.url,
                    e.referrer.as_deref(),
                    !e.is_pageview(),
                    &settings.hosts,
                ),
                pageview: e.is_pageview(),
                is_bot: batch.context.is_bot,
                country: batch.context.country.clone(),
                device: Some(batch.context.device_type.clone()).filter(|d| !d.is_empty()),
                session: None,
            })
            .collect();
        let changes = if visits.is_empty() {
            Changes {
                sessions: Vec::new(),
                assigned: Vec::new(),
                told: None,
            }
        } else {
            self.resession(visitor, &visits, settings)?
        };
        // 4. writes: events, moved events, sessions
        let assigned: HashMap<&str, &str> = changes
            .assigned
            .iter()
            .map(|(e, s)| (e.as_str(), s.as_str()))
            .collect();
        let links_by_event: BTreeMap<&str, &LeadLink> = batch
            .links
            .iter()
            .map(|l| (l.event_id.as_str(), l))
            .collect();
        for (e, v) in fresh.iter().zip(&visits) {
            let record = ArchivedEvent {
                site: settings.site.clone(),
                visitor_id: visitor.to_owned(),
                received_at: batch.received_at,
                event: (*e).clone(),
                context: batch.context.clone(),
                lead: links_by_event
                    .get(e.event_id.as_str())
                    .map(|l| (*l).clone()),
            };
            self.sql.execute(
                sql::EVENT_INSERT,
                &args![
                    &e.event_id,
                    visitor,
                    &e.kind,
                    &e.path,
                    e.derived_ts,
                    batch.received_at,
                    serde_json::to_string(&v.arrival)?,
                    v.is_bot,
                    v.country.clone(),
                    v.device.clone(),
                    assigned.get(e.event_id.as_str()).map(|s| s.to_string()),
                    serde_json::to_string(&record)?,
                ],
            )?;
            if !replay {
                self.sql.execute(
                    sql::PENDING_INSERT,
                    &args![&e.event_id, format_date(e.derived_ts)],
                )?;
            }
        }
        let fresh_ids: BTreeSet<&str> = fresh.iter().map(|e| e.event_id.as_str()).collect();
        for (event, session) in &changes.assigned {
            if !fresh_ids.contains(event.as_str()) {
                self.sql
                    .execute(sql::EVENT_SET_SESSION, &args![event, session])?;
            }
        }
        for c in &changes.sessions {
            if let (Some(old), None) = (&c.old, &c.new) {
                self.sql.execute(sql::SESSION_DELETE, &args![&old.id])?;
            }
        }
        for c in &changes.sessions {
            if let Some(new) = &c.new {
                self.write_session(visitor, new)?;
            }
        }
        // 5. rollups
        let mut delta = Rollup::new();
        delta.apply(visitor, &changes);
        self.write_rollup_delta(&delta)?;
        // 6. counters and the visitor
        if !fresh.is_empty() {
            let n = fresh.len() as i64;
            if !replay {
                self.sql
                    .execute(sql::QUOTA_VISITOR_ADD, &args![day, visitor, n])?;
                self.sql.execute(sql::QUOTA_DAY_ADD, &args![day, n])?;
            }
            let first = fresh.iter().map(|e| e.derived_ts).min().unwrap_or(0);
            let last = fresh.iter().map(|e| e.derived_ts).max().unwrap_or(0);
            self.sql
                .execute(sql::VISITOR_SEEN, &args![visitor, first, last])?;
        }
        // 7. the directory: links of stored events, and a linked visitor's changes
        let stored: BTreeSet<&str> = results
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Accepted | Outcome::Duplicate))
            .map(|(id, _)| id.as_str())
            .collect();
        let links: Vec<LeadLink> = batch
            .links
            .iter()
            .filter(|l| stored.contains(l.event_id.as_str()))
            .cloned()
            .collect();
        let state = query_one::<DbVisitor, S>(&self.sql, sql::VISITOR_GET, &args![visitor])?;
        let mut sync = None;
        let mut lead = None;
        if let Some(state) = state {
            lead = state.lead_id.clone();
            let linked = state.linked != 0;
            let changed = !changes.sessions.is_empty();
            if !links.is_empty() || (linked && changed) {
                let mut pending: Vec<LeadLink> = match &state.pending_links {
                    Some(p) => serde_json::from_str(p)?,
                    None => Vec::new(),
                };
                let before = pending.len();
                for l in links {
                    if !pending
                        .iter()
                        .any(|p| p.lead_id == l.lead_id && p.event_id == l.event_id)
                    {
                        pending.push(l);
                    }
                }
                let new_links = pending.len() != before;
                let version = state.version.max(0) as u64 + 1;
                let pending_json = if pending.is_empty() {
                    None
                } else {
                    Some(serde_json::to_string(&pending)?)
                };
                self.sql.execute(
                    sql::VISITOR_BUMP,
                    &args![visitor, version, pending_json, new_links],
                )?;
                let dirty = state.version > state.synced;
                sync = Some(if linked && !dirty {
                    delta_sync(
                        visitor,
                        version,
                        state.version.max(0) as u64,
                        pending,
                        &changes,
                    )
                } else {
                    self.full_sync_in_tx(visitor)?
                        .ok_or_else(|| SqlError::new("a visitor just written is missing"))?
                });
            }
        }
        let touch = changes.told.as_ref().map(|t| {
            let t = t.touch.clone().unwrap_or_else(SessionTouch::direct);
            TouchAck {
                channel: t.channel,
                source: t.source,
                medium: t.medium,
                campaign: t.campaign,
            }
        });
        Ok(Ingested {
            answer: ShardAnswer {
                results,
                touch,
                directory_synced: sync.is_none(),
                lead,
            },
            sync,
        })
    }

    fn write_session(
        &self,
        visitor: &str,
        s: &VisitSession<SessionTouch>,
    ) -> Result<(), EngineError> {
        self.sql.execute(
            sql::SESSION_UPSERT,
            &args![
                &s.id,
                visitor,
                s.start,
                &s.first_event,
                s.end,
                &s.last_event,
                json_opt(&s.touch)?,
                &s.landing_path,
                s.events,
                s.pageviews,
                s.is_bot,
                s.country.clone(),
                s.device.clone(),
                json_opt(&s.entrance)?,
                json_opt(&s.exit)?,
                json_opt(&s.prev_any)?,
                json_opt(&s.prev_human)?,
            ],
        )?;
        Ok(())
    }

    /// The visitor's full journey state for the directory, at its current version, with its
    /// pending links (`None`: no such visitor).
    pub fn full_sync(&self, visitor: &str) -> Result<Option<VisitorSync>, EngineError> {
        self.atomically(|| self.full_sync_in_tx(visitor))
    }

    fn full_sync_in_tx(&self, visitor: &str) -> Result<Option<VisitorSync>, EngineError> {
        let Some(state) = query_one::<DbVisitor, S>(&self.sql, sql::VISITOR_GET, &args![visitor])?
        else {
            return Ok(None);
        };
        let mut sessions = self.sessions(
            sql::SESSIONS_LATEST_N,
            &args![visitor, JOURNEY_MAX_SESSIONS as i64],
        )?;
        sessions.reverse();
        let views_since: Option<i64> = match self.meta(META_EXPIRED_THROUGH)? {
            Some(v) => v.parse().ok(),
            None => None,
        };
        #[derive(Deserialize)]
        struct View {
            event_id: String,
            session_id: String,
            derived_ts: i64,
            path: String,
        }
        let mut views: Vec<JourneyView> = query_as::<View, S>(
            &self.sql,
            sql::PAGEVIEWS_OF_VISITOR,
            &args![
                visitor,
                views_since.map_or(i64::MIN / 2, |w| w + 1),
                JOURNEY_MAX_VIEWS as i64
            ],
        )?
        .into_iter()
        .map(|v| JourneyView {
            event_id: v.event_id,
            session: v.session_id,
            at: v.derived_ts,
            path: v.path,
        })
        .collect();
        views.reverse();
        Ok(Some(VisitorSync {
            visitor: visitor.to_owned(),
            version: state.version.max(0) as u64,
            base: None,
            links: match &state.pending_links {
                Some(p) => serde_json::from_str(p)?,
                None => Vec::new(),
            },
            sessions: sessions.iter().map(journey_session).collect(),
            removed: Vec::new(),
            views_in: views,
            views_out: Vec::new(),
            views_since: views_since.map(|w| w + 1),
        }))
    }

    /// Records the directory's answer to a sync of `version`.
    pub fn synced(
        &self,
        visitor: &str,
        version: u64,
        answer: &SyncAnswer,
    ) -> Result<(), EngineError> {
        if answer.need_full {
            return Ok(());
        }
        self.atomically(|| {
            self.sql.execute(
                sql::VISITOR_SYNCED,
                &args![visitor, version, answer.lead.clone(), answer.lead.is_some()],
            )?;
            Ok(())
        })
    }

    /// Visitors whose latest changes the directory has not acknowledged (the alarm sends
    /// them a full state).
    pub fn dirty_visitors(&self, limit: usize) -> Result<Vec<String>, EngineError> {
        #[derive(Deserialize)]
        struct V {
            visitor_id: String,
        }
        Ok(
            query_as::<V, S>(&self.sql, sql::VISITORS_DIRTY, &args![limit as i64])?
                .into_iter()
                .map(|v| v.visitor_id)
                .collect(),
        )
    }

    /// Counts for inspection.
    pub fn status(&self) -> Result<ShardStatus, EngineError> {
        let mut s = query_one::<ShardStatus, S>(&self.sql, sql::STATUS, &[])?.unwrap_or_default();
        s.database_bytes = self.sql.database_size();
        s.counters = self.sql.counters();
        Ok(s)
    }
}

/// A shard's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardStatus {
    /// Raw events kept.
    pub events: i64,
    /// Sessions.
    pub sessions: i64,
    /// Visitors.
    pub visitors: i64,
    /// Visitors the directory has not acknowledged.
    pub dirty_visitors: i64,
    /// Events waiting for the archive.
    pub pending: i64,
    /// Archive objects written.
    pub objects: i64,
    /// Days waiting for a new summary.
    pub dirty_days: i64,
    /// The database's size.
    #[serde(default)]
    pub database_bytes: u64,
    /// Rows read and written since the object started.
    #[serde(default)]
    pub counters: crate::sqlite::Counters,
}

pub(super) fn journey_session(s: &VisitSession<SessionTouch>) -> JourneySessionMsg {
    JourneySessionMsg {
        id: s.id.clone(),
        start: s.start,
        first_event: s.first_event.clone(),
        key: RowKey::of(s),
        pageviews: s.pageviews,
    }
}

/// The delta a batch's changes make to a linked visitor's journey.
fn delta_sync(
    visitor: &str,
    version: u64,
    base: u64,
    links: Vec<LeadLink>,
    changes: &Changes<SessionTouch>,
) -> VisitorSync {
    let mut sync = VisitorSync {
        visitor: visitor.to_owned(),
        version,
        base: Some(base),
        links,
        sessions: Vec::new(),
        removed: Vec::new(),
        views_in: Vec::new(),
        views_out: Vec::new(),
        views_since: None,
    };
    for c in &changes.sessions {
        match &c.new {
            Some(new) => {
                sync.sessions.push(journey_session(new));
                sync.views_in.extend(c.views_in.iter().map(|p| JourneyView {
                    event_id: p.id.clone(),
                    session: new.id.clone(),
                    at: p.at,
                    path: p.path.clone(),
                }));
            }
            None => {
                if let Some(old) = &c.old {
                    sync.removed.push(old.id.clone());
                }
            }
        }
        sync.views_out
            .extend(c.views_out.iter().map(|p| p.id.clone()));
    }
    sync
}
