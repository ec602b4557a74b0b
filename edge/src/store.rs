//! Storage: the only module that knows SQL, table names and KV keys.
//!
//! D1 holds everything (see `edge/migrations/`); KV caches each existing site's
//! configuration under `site:{id}`, so that a beacon costs no D1 read for configuration,
//! and the isolate keeps the directory of site ids and allowed origins in memory
//! ([`trust::Directory`]), so that an unknown site id or origin costs no D1 or KV access
//! at all (nothing negative is ever written to KV). Admin changes delete the cached
//! entries.
//!
//! Exactly-once storage: every event is an `INSERT ... ON CONFLICT (site_id, event_id)
//! DO NOTHING`, all of one request's writes go in one `db.batch()` (a D1 batch is one
//! transaction: stored whole or not at all), and each statement's `meta.changes` says
//! whether that event was new (1) or already there (0).

use crate::error::{ApiError, ApiResult};
use audit::AuditRecord;
use closeloop_core::privacy::PrivacySettings;
use keys::NewKey;
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, Env};

pub mod agents;
pub mod audit;
pub mod catalog;
pub mod directory;
pub mod erasure;
mod ingest;
pub mod keys;
pub mod reporting;
pub mod tombstones;
pub mod trust;
pub mod webhooks;

/// A site's configuration, as cached in KV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteConfig {
    /// The site's public id.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// Origins (`scheme://host[:port]`) whose pages may send events.
    pub allowed_origins: Vec<String>,
    /// ISO 4217 reporting currency.
    pub currency: String,
    /// Referrer hosts that never start a session (besides the default list).
    pub excluded_referrers: Vec<String>,
    /// When it was created (ms since the epoch).
    pub created_at: i64,
    /// Most events one visitor may send per UTC day (counted when received).
    #[serde(default = "default_quota")]
    pub max_events_per_visitor_day: i64,
    /// What is kept of a visitor: query keys of stored URLs, geo fields.
    #[serde(default)]
    pub privacy: PrivacySettings,
    /// The beacon rules and limits of issue 12 (migration 0009).
    #[serde(flatten)]
    pub trust: trust::TrustSettings,
    /// Where the site's events live: 0, this D1 database (every report); `N` ≥ 1, `N`
    /// per-site shards (SQLite-backed Durable Objects, issue 14: sessions built at
    /// ingest, traffic from rollups; `crate::shard`). Migration 0014.
    #[serde(default)]
    pub shards: u32,
}

/// The default [`SiteConfig::max_events_per_visitor_day`].
pub const DEFAULT_VISITOR_QUOTA: i64 = 5_000;

fn default_quota() -> i64 {
    DEFAULT_VISITOR_QUOTA
}

#[cfg(test)]
impl SiteConfig {
    /// The site the edge's unit tests share: `demo`, `https://example.com`, EUR, default
    /// quota, privacy and beacon settings.
    pub(crate) fn for_tests() -> SiteConfig {
        SiteConfig {
            id: "demo".into(),
            name: "Demo".into(),
            allowed_origins: vec!["https://example.com".into()],
            currency: "EUR".into(),
            excluded_referrers: vec![],
            created_at: 0,
            max_events_per_visitor_day: DEFAULT_VISITOR_QUOTA,
            privacy: Default::default(),
            trust: Default::default(),
            shards: 0,
        }
    }
}

/// What KV holds under `site:{id}`: the site, or a short-lived "no such site".
#[derive(Debug, Serialize, Deserialize)]
struct CachedSite {
    site: Option<SiteConfig>,
}

pub use ingest::{EventRow, Inserted, LeadRow, NewEvents, Quota, Stored};

/// An event as sessionisation reads it back.
#[derive(Debug, Clone, Deserialize)]
pub struct StoredEvent {
    /// Its id.
    pub event_id: String,
    /// `pageview`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Full URL.
    pub url: String,
    /// Path.
    pub path: String,
    /// Referrer.
    pub referrer: Option<String>,
    /// Skew-corrected time.
    pub derived_ts: i64,
    /// Bot flag (0/1).
    pub is_bot: i64,
}

/// A visitor waiting for sessionisation (a row of `session_queue`).
#[derive(Debug, Clone, Deserialize)]
pub struct QueuedVisitor {
    /// Its site.
    pub site_id: String,
    /// The visitor.
    pub visitor_id: String,
    /// Rebuild from the session holding this time on.
    pub from_ts: i64,
    /// The mark's version (changes whenever the visitor is marked again).
    pub version: i64,
}

/// A session to write.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    /// Its id (the id of its first event).
    pub session_id: String,
    /// First event time.
    pub started_at: i64,
    /// Last event time.
    pub ended_at: i64,
    /// The touch.
    pub touch: crate::touch::Touch,
    /// Entrance page path.
    pub landing_path: String,
    /// Page views in it.
    pub pageviews: i64,
    /// Whether it is a bot's.
    pub is_bot: bool,
    /// Its events' ids.
    pub event_ids: Vec<String>,
    /// The id of its first page view (in `event_ids`' order), if it has one: the page view
    /// flagged as its entrance.
    pub entrance: Option<String>,
    /// Its last page view's path and time (its exit), if it has a page view.
    pub exit: Option<(String, i64)>,
}

fn s(v: &str) -> JsValue {
    JsValue::from_str(v)
}
fn opt(v: Option<&str>) -> JsValue {
    v.map(JsValue::from_str).unwrap_or(JsValue::NULL)
}
fn n(v: i64) -> JsValue {
    JsValue::from_f64(v as f64)
}
fn optf(v: Option<f64>) -> JsValue {
    v.map(JsValue::from_f64).unwrap_or(JsValue::NULL)
}
fn b(v: bool) -> JsValue {
    n(i64::from(v))
}

/// A visitor's events from the start of its latest session that began at or before
/// `?3` (from `?3` when there is none), in time order, at most `?4`.
const WINDOW_SQL: &str =
    "SELECT event_id, type, url, path, referrer, derived_ts, is_bot FROM events \
     WHERE site_id = ?1 AND visitor_id = ?2 AND derived_ts >= coalesce( \
       (SELECT max(started_at) FROM sessions \
        WHERE site_id = ?1 AND visitor_id = ?2 AND started_at <= ?3), ?3) \
     ORDER BY derived_ts, event_id LIMIT ?4";

/// How long an isolate keeps a site's configuration in memory, ms. KV itself takes up
/// to 60 s to show a change in every location, so this adds little to how long a change
/// takes to reach every beacon; the isolate that made the change forgets at once.
pub const MEMORY_TTL_MS: u64 = 10_000;
/// Most sites an isolate keeps in memory (the map is cleared when full).
const MEMORY_MAX_SITES: usize = 1_000;

thread_local! {
    /// Site configurations this isolate read lately: id → (read at, config).
    static SITES: std::cell::RefCell<std::collections::HashMap<String, (u64, Option<SiteConfig>)>> =
        Default::default();
}

/// Access to D1 and the KV cache.
pub struct Store {
    db: D1Database,
    kv: worker::kv::KvStore,
    cache_ttl: u64,
    /// D1 statements prepared by this invocation (see [`Store::statements`]).
    statements: std::cell::Cell<u32>,
}

/// Statements D1 runs per Worker invocation, at most (Workers Paid; each statement of a
/// `batch()` counts). Long-running work (the cron trigger, the flush before a read)
/// checks [`Store::statements`] against its share of this.
pub const D1_STATEMENTS_PER_INVOCATION: u32 = 1_000;

/// Points each non-bot session of `site_id = ?1` (and what the caller adds to the
/// `WHERE`) back to its visitor's previous non-bot session, overall and per row key of the
/// sources report (migration 0007 says what the reports read from them, and writes the
/// same statement out). The flush runs it over the sessions it rebuilt; they are all of the
/// visitor's sessions from some time on, and the markers only look back.
fn session_markers_sql() -> String {
    let earlier = "FROM sessions p WHERE p.site_id = s.site_id \
         AND p.visitor_id = s.visitor_id AND p.is_bot = 0 \
         AND (p.started_at, p.session_id) < (s.started_at, s.session_id)";
    // (marker column, the row key over a session `x`)
    let keys = [
        ("prev_channel_at", "x.channel"),
        ("prev_source_at", "x.source"),
        ("prev_medium_at", "x.medium"),
        ("prev_campaign_at", "coalesce(x.campaign, '(not set)')"),
        ("prev_landing_at", "coalesce(x.landing_path, '/')"),
    ];
    let per_key: Vec<String> = keys
        .iter()
        .map(|(column, key)| {
            format!(
                "{column} = (SELECT max(p.started_at) {earlier} AND {} = {})",
                key.replace("x.", "p."),
                key.replace("x.", "s.")
            )
        })
        .collect();
    format!(
        "UPDATE sessions AS s SET (prev_at, prev_channel) = (SELECT p.started_at, p.channel \
         {earlier} ORDER BY p.started_at DESC, p.session_id DESC LIMIT 1), {} \
         WHERE s.site_id = ?1 AND s.is_bot = 0",
        per_key.join(", ")
    )
}

impl Store {
    /// Opens the `DB` and `CONFIG` bindings.
    pub fn from_env(env: &Env) -> ApiResult<Self> {
        let cache_ttl = env
            .var("SITE_CACHE_TTL")
            .ok()
            .and_then(|v| v.to_string().parse().ok())
            .unwrap_or(300u64)
            .max(60); // KV's shortest expiration
        Ok(Store {
            db: env.d1("DB")?,
            kv: env.kv("CONFIG")?,
            cache_ttl,
            statements: Default::default(),
        })
    }

    /// Every statement goes through here, so that [`Store::statements`] counts them.
    fn stmt(&self, sql: &str, args: &[JsValue]) -> ApiResult<D1PreparedStatement> {
        self.statements.set(self.statements.get().saturating_add(1));
        Ok(self.db.prepare(sql).bind(args)?)
    }

    /// D1 statements this invocation has prepared (each is run once): what counts against
    /// [`D1_STATEMENTS_PER_INVOCATION`].
    pub fn statements(&self) -> u32 {
        self.statements.get()
    }

    // ---- sites and keys -------------------------------------------------------

    /// The site's configuration: from the isolate's memory when read there less than
    /// [`MEMORY_TTL_MS`] ago; `None` at once when the directory has no such site (no KV
    /// or D1 access for unknown ids); else from KV when cached, else from D1 (then cached
    /// in KV).
    pub async fn site(&self, id: &str) -> ApiResult<Option<SiteConfig>> {
        let now = worker::Date::now().as_millis();
        let remembered = SITES.with(|m| {
            m.borrow()
                .get(id)
                .filter(|(at, _)| now.saturating_sub(*at) < MEMORY_TTL_MS)
                .map(|(_, site)| site.clone())
        });
        if let Some(site) = remembered {
            return Ok(site);
        }
        let site = if self.directory().await?.has_site(id) {
            self.site_from_kv_or_db(id).await?
        } else {
            None
        };
        SITES.with(|m| {
            let mut m = m.borrow_mut();
            // a bound on memory, whatever ids arrive
            if m.len() >= MEMORY_MAX_SITES {
                m.clear();
            }
            m.insert(id.to_string(), (now, site.clone()));
        });
        Ok(site)
    }

    async fn site_from_kv_or_db(&self, id: &str) -> ApiResult<Option<SiteConfig>> {
        let key = format!("site:{id}");
        if let Ok(Some(cached)) = self.kv.get(&key).json::<CachedSite>().await {
            return Ok(cached.site);
        }
        let site = self.site_from_db(id).await?;
        // only a site that exists is cached: an unknown id never costs a KV write
        if site.is_some() {
            let value = serde_json::to_string(&CachedSite { site: site.clone() })
                .map_err(ApiError::internal)?;
            // A failed cache write only costs a D1 read next time.
            if let Ok(put) = self.kv.put(&key, value) {
                let _ = put.expiration_ttl(self.cache_ttl).execute().await;
            }
        }
        Ok(site)
    }

    async fn site_from_db(&self, id: &str) -> ApiResult<Option<SiteConfig>> {
        #[derive(Deserialize)]
        struct Row {
            id: String,
            name: String,
            allowed_origins: String,
            currency: String,
            excluded_referrers: String,
            created_at: i64,
            max_events_per_visitor_day: i64,
            privacy: String,
            extra_hosts: String,
            identity_secret: Option<String>,
            max_events_per_day: i64,
            bad_rows_kept: i64,
            shards: i64,
        }
        let row: Option<Row> = self
            .stmt(
                "SELECT id, name, allowed_origins, currency, excluded_referrers, created_at, \
                 max_events_per_visitor_day, privacy, extra_hosts, identity_secret, \
                 max_events_per_day, bad_rows_kept, shards FROM sites WHERE id = ?1",
                &[s(id)],
            )?
            .first(None)
            .await?;
        Ok(row.map(|r| SiteConfig {
            id: r.id,
            name: r.name,
            allowed_origins: serde_json::from_str(&r.allowed_origins).unwrap_or_default(),
            currency: r.currency,
            excluded_referrers: serde_json::from_str(&r.excluded_referrers).unwrap_or_default(),
            created_at: r.created_at,
            max_events_per_visitor_day: r.max_events_per_visitor_day,
            privacy: serde_json::from_str(&r.privacy).unwrap_or_default(),
            trust: trust::TrustSettings {
                extra_hosts: serde_json::from_str(&r.extra_hosts).unwrap_or_default(),
                identity_secret: r.identity_secret,
                max_events_per_day: r.max_events_per_day,
                bad_rows_kept: r.bad_rows_kept,
            },
            shards: u32::try_from(r.shards).unwrap_or(0),
        }))
    }

    /// Whether the site has stored any event in D1, or erased any visitor or email (its
    /// tombstones must then go on refusing what they cover: the D1 path checks them).
    pub async fn has_events(&self, site_id: &str) -> ApiResult<bool> {
        #[derive(Deserialize)]
        struct One {
            #[allow(dead_code)]
            one: i64,
        }
        let row: Option<One> = self
            .stmt(
                "SELECT 1 AS one FROM events WHERE site_id = ?1 \
                 UNION ALL SELECT 1 FROM tombstones WHERE site_id = ?1 LIMIT 1",
                &[s(site_id)],
            )?
            .first(None)
            .await?;
        Ok(row.is_some())
    }

    /// Every site, by id.
    pub async fn sites(&self) -> ApiResult<Vec<SiteConfig>> {
        #[derive(Deserialize)]
        struct Row {
            id: String,
        }
        let rows: Vec<Row> = self
            .stmt("SELECT id FROM sites ORDER BY id", &[])?
            .all()
            .await?
            .results()?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            if let Some(site) = self.site_from_db(&r.id).await? {
                out.push(site);
            }
        }
        Ok(out)
    }

    /// Creates a site with its first keys (hashes) and privacy settings, with the audit
    /// entry, in one transaction. `false` when the id is taken.
    pub async fn create_site(
        &self,
        site: &SiteConfig,
        keys: &[NewKey],
        audit: &AuditRecord,
    ) -> ApiResult<bool> {
        let origins = serde_json::to_string(&site.allowed_origins).map_err(ApiError::internal)?;
        let excluded =
            serde_json::to_string(&site.excluded_referrers).map_err(ApiError::internal)?;
        let privacy = serde_json::to_string(&site.privacy).map_err(ApiError::internal)?;
        let t = &site.trust;
        let mut stmts = vec![self.stmt(
            "INSERT INTO sites (id, name, allowed_origins, currency, excluded_referrers, created_at, \
             max_events_per_visitor_day, extra_hosts, identity_secret, max_events_per_day, \
             bad_rows_kept, shards) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
             ON CONFLICT (id) DO NOTHING",
            &[
                s(&site.id),
                s(&site.name),
                s(&origins),
                s(&site.currency),
                s(&excluded),
                n(site.created_at),
                n(site.max_events_per_visitor_day),
                s(&serde_json::to_string(&t.extra_hosts).map_err(ApiError::internal)?),
                opt(t.identity_secret.as_deref()),
                n(t.max_events_per_day),
                n(t.bad_rows_kept),
                n(i64::from(site.shards)),
            ],
        )?];
        // only when the site row is the one made here: a taken id gets nothing of this
        let made_here = "EXISTS (SELECT 1 FROM sites WHERE id = ?1 AND created_at = ?7)";
        stmts.push(self.stmt(
            "UPDATE sites SET privacy = ?2 WHERE id = ?1 AND created_at = ?3",
            &[s(&site.id), s(&privacy), n(site.created_at)],
        )?);
        for k in keys {
            stmts.push(self.stmt(
                "INSERT INTO keys (hash, id, site_id, kind, prefix, created_at) \
                 SELECT ?1, ?2, id, ?4, ?5, ?6 FROM sites WHERE id = ?3 AND created_at = ?6",
                &[
                    s(&k.hash),
                    s(&k.id),
                    s(&site.id),
                    s(k.kind.as_str()),
                    s(&k.prefix),
                    n(site.created_at),
                ],
            )?);
        }
        stmts.push(self.audit_stmt_when(audit, made_here, &[n(site.created_at)])?);
        let results = self.db.batch(stmts).await?;
        let created = Self::changes(results.first())? == 1;
        self.forget_site(&site.id).await;
        Ok(created)
    }

    /// Replaces a site's privacy settings, with the audit entry. `false` when there is no
    /// such site.
    pub async fn set_privacy(
        &self,
        site_id: &str,
        privacy: &PrivacySettings,
        audit: &AuditRecord,
    ) -> ApiResult<bool> {
        let json = serde_json::to_string(privacy).map_err(ApiError::internal)?;
        let results = self
            .db
            .batch(vec![
                self.stmt(
                    "UPDATE sites SET privacy = ?2 WHERE id = ?1",
                    &[s(site_id), s(&json)],
                )?,
                self.audit_stmt_when(audit, "EXISTS (SELECT 1 FROM sites WHERE id = ?1)", &[])?,
            ])
            .await?;
        self.forget_site(site_id).await;
        Ok(Self::changes(results.first())? == 1)
    }

    /// Replaces a site's allowed origins, with the audit entry. `false` when there is no
    /// such site.
    pub async fn set_origins(
        &self,
        site_id: &str,
        origins: &[String],
        audit: &AuditRecord,
    ) -> ApiResult<bool> {
        let json = serde_json::to_string(origins).map_err(ApiError::internal)?;
        let results = self
            .db
            .batch(vec![
                self.stmt(
                    "UPDATE sites SET allowed_origins = ?2 WHERE id = ?1",
                    &[s(site_id), s(&json)],
                )?,
                self.audit_stmt_when(audit, "EXISTS (SELECT 1 FROM sites WHERE id = ?1)", &[])?,
            ])
            .await?;
        self.forget_site(site_id).await;
        Ok(Self::changes(results.first())? == 1)
    }

    /// Drops the cached configuration of a site and this isolate's directory.
    pub(crate) async fn forget_site(&self, site_id: &str) {
        SITES.with(|m| m.borrow_mut().remove(site_id));
        trust::forget_directory();
        let _ = self.kv.delete(&format!("site:{site_id}")).await;
    }

    /// Whether some site allows `origin` (for preflights, which carry no site id): from
    /// the isolate's directory, so a random origin costs no D1 or KV access.
    pub async fn some_site_allows(&self, origin: &str) -> ApiResult<bool> {
        Ok(self.directory().await?.allows_origin(origin))
    }

    fn replace_sessions_stmts(
        &self,
        site_id: &str,
        visitor_id: &str,
        from: i64,
        sessions: &[SessionRow],
    ) -> ApiResult<Vec<D1PreparedStatement>> {
        let mut stmts = vec![self.stmt(
            "DELETE FROM sessions WHERE site_id = ?1 AND visitor_id = ?2 AND started_at >= ?3",
            &[s(site_id), s(visitor_id), n(from)],
        )?];
        for x in sessions {
            let t = &x.touch;
            stmts.push(self.stmt(
                "INSERT INTO sessions (site_id, session_id, visitor_id, started_at, ended_at, channel, \
                 source, medium, campaign, term, content, referrer_host, landing_path, click_id, \
                 pageviews, is_bot, exit_path, exit_at, country, device_type, bot_reason) SELECT ?1, \
                 ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
                 (SELECT country FROM events WHERE site_id = ?1 AND event_id = substr(?2, 3)), \
                 (SELECT device_type FROM events WHERE site_id = ?1 AND event_id = substr(?2, 3)), \
                 (SELECT bot_reason FROM events WHERE site_id = ?1 AND event_id = substr(?2, 3)) \
                 WHERE true ON CONFLICT (site_id, session_id) DO UPDATE SET \
                 visitor_id = excluded.visitor_id, started_at = excluded.started_at, \
                 ended_at = excluded.ended_at, channel = excluded.channel, source = excluded.source, \
                 medium = excluded.medium, campaign = excluded.campaign, term = excluded.term, \
                 content = excluded.content, referrer_host = excluded.referrer_host, \
                 landing_path = excluded.landing_path, click_id = excluded.click_id, \
                 pageviews = excluded.pageviews, is_bot = excluded.is_bot, \
                 exit_path = excluded.exit_path, exit_at = excluded.exit_at, \
                 country = excluded.country, device_type = excluded.device_type, \
                 bot_reason = excluded.bot_reason",
                &[
                    s(site_id),
                    s(&x.session_id),
                    s(visitor_id),
                    n(x.started_at),
                    n(x.ended_at),
                    s(&t.channel),
                    s(&t.source),
                    s(&t.medium),
                    opt(t.campaign.as_deref()),
                    opt(t.term.as_deref()),
                    opt(t.content.as_deref()),
                    opt(t.referrer_host.as_deref()),
                    s(&x.landing_path),
                    opt(t.click_id.as_deref()),
                    n(x.pageviews),
                    b(x.is_bot),
                    opt(x.exit.as_ref().map(|e| e.0.as_str())),
                    x.exit.as_ref().map_or(JsValue::NULL, |e| n(e.1)),
                ],
            )?);
            // D1 allows 100 bound parameters per statement: ids go in chunks. Each event
            // also gets its session's bot flag and whether it is the session's entrance (the
            // pages report counts from these; migration 0008). Rows that already say all
            // of it are left alone: a session rebuilt for a new event rewrites only what
            // changed (each written row costs the index entries of these columns).
            for chunk in x.event_ids.chunks(90) {
                let marks: Vec<String> = (0..chunk.len()).map(|i| format!("?{}", i + 5)).collect();
                let sql = format!(
                    "UPDATE events SET session_id = ?1, session_bot = ?3, entrance = (event_id IS ?4) \
                     WHERE site_id = ?2 AND event_id IN ({}) AND (session_id IS NOT ?1 \
                     OR session_bot IS NOT ?3 OR entrance IS NOT (event_id IS ?4))",
                    marks.join(", ")
                );
                let mut args = vec![
                    s(&x.session_id),
                    s(site_id),
                    b(x.is_bot),
                    opt(x.entrance.as_deref()),
                ];
                args.extend(chunk.iter().map(|id| s(id)));
                stmts.push(self.stmt(&sql, &args)?);
            }
        }
        Ok(stmts)
    }

    /// The statement that writes the markers of the sessions `ids` of a site, once they
    /// are all written (one statement for a whole flush chunk: the long statement's
    /// preparation is most of its cost); `None` when there are none.
    fn markers_stmt<'i>(
        &self,
        site_id: &str,
        ids: impl IntoIterator<Item = &'i str>,
    ) -> ApiResult<Option<D1PreparedStatement>> {
        let ids: Vec<&str> = ids.into_iter().collect();
        if ids.is_empty() {
            return Ok(None);
        }
        let list = serde_json::to_string(&ids).map_err(ApiError::internal)?;
        Ok(Some(self.stmt(
            &format!(
                "{} AND s.session_id IN (SELECT value FROM json_each(?2))",
                session_markers_sql()
            ),
            &[s(site_id), s(&list)],
        )?))
    }

    // ---- the session queue ----------------------------------------------------

    /// Up to `limit` visitors waiting for sessionisation (of one site, or of all),
    /// earliest first.
    pub async fn queued_visitors(
        &self,
        site_id: Option<&str>,
        limit: i64,
    ) -> ApiResult<Vec<QueuedVisitor>> {
        let stmt = match site_id {
            Some(id) => self.stmt(
                "SELECT site_id, visitor_id, from_ts, version FROM session_queue \
                 WHERE site_id = ?1 ORDER BY from_ts LIMIT ?2",
                &[s(id), n(limit)],
            )?,
            None => self.stmt(
                "SELECT site_id, visitor_id, from_ts, version FROM session_queue \
                 ORDER BY from_ts LIMIT ?1",
                &[n(limit)],
            )?,
        };
        Ok(stmt.all().await?.results()?)
    }

    /// Each queued visitor's events from the session holding its `from_ts` on (at most
    /// `limit` each), in one round trip.
    pub async fn queued_windows(
        &self,
        queued: &[QueuedVisitor],
        limit: i64,
    ) -> ApiResult<Vec<Vec<StoredEvent>>> {
        if queued.is_empty() {
            return Ok(Vec::new());
        }
        let stmts = queued
            .iter()
            .map(|q| {
                self.stmt(
                    WINDOW_SQL,
                    &[s(&q.site_id), s(&q.visitor_id), n(q.from_ts), n(limit)],
                )
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let results = self.db.batch(stmts).await?;
        if results.len() != queued.len() {
            return Err(ApiError::internal(
                "D1 batch returned fewer results than statements",
            ));
        }
        results
            .iter()
            .map(|r| Ok(r.results()?))
            .collect::<ApiResult<Vec<_>>>()
    }

    /// Writes the rebuilt sessions of queued visitors (each from its `from` on) and takes
    /// them off the queue, in one transaction. A visitor whose mark changed since it was
    /// read (marked again, or taken by another flush) stays or goes back on the queue, so
    /// no write from a stale read is ever the last word.
    pub async fn write_queued_sessions(
        &self,
        done: &[(QueuedVisitor, i64, Vec<SessionRow>)],
    ) -> ApiResult<()> {
        let mut stmts = Vec::new();
        for (q, from, sessions) in done {
            stmts.extend(self.replace_sessions_stmts(
                &q.site_id,
                &q.visitor_id,
                *from,
                sessions,
            )?);
            stmts.push(self.stmt(
                "INSERT INTO session_queue (site_id, visitor_id, from_ts, version) \
                 SELECT ?1, ?2, ?3, abs(random() % 9007199254740992) WHERE NOT EXISTS (SELECT 1 FROM session_queue \
                 WHERE site_id = ?1 AND visitor_id = ?2 AND version = ?4) \
                 ON CONFLICT (site_id, visitor_id) DO UPDATE SET from_ts = min(from_ts, excluded.from_ts)",
                &[s(&q.site_id), s(&q.visitor_id), n(q.from_ts), n(q.version)],
            )?);
            stmts.push(self.stmt(
                "DELETE FROM session_queue WHERE site_id = ?1 AND visitor_id = ?2 AND version = ?3",
                &[s(&q.site_id), s(&q.visitor_id), n(q.version)],
            )?);
        }
        // the markers once every session of the chunk is written, one statement per site
        let mut by_site: std::collections::BTreeMap<&str, Vec<&str>> =
            std::collections::BTreeMap::new();
        for (q, _, sessions) in done {
            by_site
                .entry(q.site_id.as_str())
                .or_default()
                .extend(sessions.iter().map(|x| x.session_id.as_str()));
        }
        for (site_id, ids) in by_site {
            stmts.extend(self.markers_stmt(site_id, ids)?);
        }
        if !stmts.is_empty() {
            self.db.batch(stmts).await?;
        }
        Ok(())
    }
}
