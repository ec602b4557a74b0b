//! Storage: the only module that knows SQL, table names and KV keys.
//!
//! D1 holds everything (see `edge/migrations/`); KV caches each site's configuration
//! under `site:{id}` (and the answer "is this origin allowed by some site" under
//! `origin:{origin}`), so that a beacon costs no D1 read for configuration. Admin
//! changes delete the cached entries.
//!
//! Exactly-once storage: every event is an `INSERT ... ON CONFLICT (site_id, event_id)
//! DO NOTHING`, all of one request's writes go in one `db.batch()` (a D1 batch is one
//! transaction: stored whole or not at all), and each statement's `meta.changes` says
//! whether that event was new (1) or already there (0).

use crate::auth::KeyKind;
use crate::enrich::{Agent, Geo};
use crate::error::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, Env};

pub mod agents;
pub mod reporting;
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
    /// Most events one visitor may send in a rolling 24 hours.
    #[serde(default = "default_quota")]
    pub max_events_per_visitor_day: i64,
}

/// The default [`SiteConfig::max_events_per_visitor_day`].
pub const DEFAULT_VISITOR_QUOTA: i64 = 5_000;

fn default_quota() -> i64 {
    DEFAULT_VISITOR_QUOTA
}

/// What KV holds under `site:{id}`: the site, or a short-lived "no such site".
#[derive(Debug, Serialize, Deserialize)]
struct CachedSite {
    site: Option<SiteConfig>,
}

/// One event row, ready to insert.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// The event's id (the deduplication key within the site).
    pub event_id: String,
    /// The visitor's id.
    pub visitor_id: String,
    /// `pageview`, `form_submit`, `identify` or `track`.
    pub kind: &'static str,
    /// Full URL.
    pub url: String,
    /// URL path.
    pub path: String,
    /// Referrer, when any.
    pub referrer: Option<String>,
    /// Page title.
    pub title: Option<String>,
    /// Custom event name.
    pub name: Option<String>,
    /// Props / traits as JSON.
    pub props: Option<String>,
    /// Form field names as JSON.
    pub form_fields: Option<String>,
    /// Kept form values as JSON.
    pub form_values: Option<String>,
    /// Form id.
    pub form_id: Option<String>,
    /// Device time of creation.
    pub created_at: i64,
    /// Device time of sending.
    pub sent_at: i64,
    /// Edge time of receipt.
    pub received_at: i64,
    /// Skew-corrected time.
    pub derived_ts: i64,
}

/// The visitor quota an insert checks: at most `max_events` events with `derived_ts`
/// at or after `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Start of the rolling window (ms).
    pub since: i64,
    /// Most events in it.
    pub max_events: i64,
}

/// One request's accepted events with what the edge adds to them: what
/// [`Store::insert_batch`] writes.
#[derive(Debug, Clone, Copy)]
pub struct NewEvents<'a> {
    /// The site.
    pub site_id: &'a str,
    /// The visitor.
    pub visitor_id: &'a str,
    /// The event rows.
    pub rows: &'a [EventRow],
    /// The request's geo.
    pub geo: &'a Geo,
    /// The request's user agent.
    pub agent: &'a Agent,
    /// Leads the events identify.
    pub leads: &'a [LeadRow],
    /// The visitor quota to check.
    pub quota: Quota,
}

/// What became of one event row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Inserted now.
    New,
    /// Already stored (a retry or a concurrent duplicate).
    AlreadyThere,
    /// Refused: the visitor is over its quota.
    OverQuota,
}

/// A lead found in a batch (an identify event or a form submit with an email).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadRow {
    /// Stable id derived from the site and email.
    pub lead_id: String,
    /// Normalised email.
    pub email: String,
    /// Name, when given.
    pub name: Option<String>,
    /// Company, when given.
    pub company: Option<String>,
    /// Phone, when given.
    pub phone: Option<String>,
    /// When the visitor identified (derived_ts).
    pub at: i64,
    /// The identifying event: the batch's earliest for this email (ties: smallest id).
    pub event_id: String,
}

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
}

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

/// A stored key's row, by the SHA-256 (hex) of the key.
const KEY_SQL: &str = "SELECT hash, site_id, kind FROM keys WHERE hash = ?1";

#[derive(Deserialize)]
struct KeyRow {
    hash: String,
    site_id: String,
    kind: String,
}

impl KeyRow {
    /// (site, kind, stored hash), when the kind is one this worker knows.
    fn found(self) -> Option<(String, KeyKind, String)> {
        KeyKind::parse(&self.kind).map(|k| (self.site_id, k, self.hash))
    }
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
        })
    }

    fn stmt(&self, sql: &str, args: &[JsValue]) -> ApiResult<D1PreparedStatement> {
        Ok(self.db.prepare(sql).bind(args)?)
    }

    // ---- sites and keys -------------------------------------------------------

    /// The site's configuration: from the isolate's memory when read there less than
    /// [`MEMORY_TTL_MS`] ago, else from KV when cached, else from D1 (then cached, a
    /// missing site too, for a minute).
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
        let site = self.site_from_kv_or_db(id).await?;
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
        let ttl = if site.is_some() { self.cache_ttl } else { 60 };
        let value = serde_json::to_string(&CachedSite { site: site.clone() })
            .map_err(ApiError::internal)?;
        // A failed cache write only costs a D1 read next time.
        if let Ok(put) = self.kv.put(&key, value) {
            let _ = put.expiration_ttl(ttl).execute().await;
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
        }
        let row: Option<Row> = self
            .stmt(
                "SELECT id, name, allowed_origins, currency, excluded_referrers, created_at, \
                 max_events_per_visitor_day FROM sites WHERE id = ?1",
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
        }))
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

    /// Creates a site with its first keys (hashes), in one transaction. `false` when
    /// the id is taken.
    pub async fn create_site(
        &self,
        site: &SiteConfig,
        keys: &[(String, KeyKind)],
    ) -> ApiResult<bool> {
        let origins = serde_json::to_string(&site.allowed_origins).map_err(ApiError::internal)?;
        let excluded =
            serde_json::to_string(&site.excluded_referrers).map_err(ApiError::internal)?;
        let mut stmts = vec![self.stmt(
            "INSERT INTO sites (id, name, allowed_origins, currency, excluded_referrers, created_at, \
             max_events_per_visitor_day) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO NOTHING",
            &[
                s(&site.id),
                s(&site.name),
                s(&origins),
                s(&site.currency),
                s(&excluded),
                n(site.created_at),
                n(site.max_events_per_visitor_day),
            ],
        )?];
        for (hash, kind) in keys {
            // only when the site row is the one made here: a taken id gets no keys
            stmts.push(self.stmt(
                "INSERT INTO keys (hash, site_id, kind, created_at) \
                 SELECT ?1, id, ?3, ?4 FROM sites WHERE id = ?2 AND created_at = ?4",
                &[s(hash), s(&site.id), s(kind.as_str()), n(site.created_at)],
            )?);
        }
        let results = self.db.batch(stmts).await?;
        let created = results
            .first()
            .and_then(|r| r.meta().ok().flatten())
            .and_then(|m| m.changes)
            .unwrap_or(0)
            == 1;
        self.forget_site(&site.id, &site.allowed_origins).await;
        Ok(created)
    }

    /// Adds a key (hash) to an existing site. `false` when there is no such site.
    pub async fn add_key(
        &self,
        site_id: &str,
        hash: &str,
        kind: KeyKind,
        now: i64,
    ) -> ApiResult<bool> {
        let r = self
            .stmt(
                "INSERT INTO keys (hash, site_id, kind, created_at) \
                 SELECT ?1, id, ?3, ?4 FROM sites WHERE id = ?2",
                &[s(hash), s(site_id), s(kind.as_str()), n(now)],
            )?
            .run()
            .await?;
        Ok(r.meta()?.and_then(|m| m.changes).unwrap_or(0) == 1)
    }

    /// Replaces a site's allowed origins. `false` when there is no such site.
    pub async fn set_origins(&self, site_id: &str, origins: &[String]) -> ApiResult<bool> {
        let old = self.site_from_db(site_id).await?;
        let json = serde_json::to_string(origins).map_err(ApiError::internal)?;
        let r = self
            .stmt(
                "UPDATE sites SET allowed_origins = ?2 WHERE id = ?1",
                &[s(site_id), s(&json)],
            )?
            .run()
            .await?;
        let mut touched: Vec<String> = origins.to_vec();
        if let Some(old) = old {
            touched.extend(old.allowed_origins);
        }
        self.forget_site(site_id, &touched).await;
        Ok(r.meta()?.and_then(|m| m.changes).unwrap_or(0) == 1)
    }

    /// Drops the cached configuration of a site and the cached origin answers.
    async fn forget_site(&self, site_id: &str, origins: &[String]) {
        SITES.with(|m| m.borrow_mut().remove(site_id));
        let _ = self.kv.delete(&format!("site:{site_id}")).await;
        for o in origins {
            let _ = self
                .kv
                .delete(&format!("origin:{}", o.to_ascii_lowercase()))
                .await;
        }
    }

    /// The site and kind of the key with this hash.
    pub async fn key(&self, hash: &str) -> ApiResult<Option<(String, KeyKind, String)>> {
        let row: Option<KeyRow> = self.stmt(KEY_SQL, &[s(hash)])?.first(None).await?;
        Ok(row.and_then(KeyRow::found))
    }

    /// [`Store::key`] and whether `site_id` has visitors waiting for sessionisation, in
    /// one round trip (the reads that need sessions ask both before anything else).
    pub async fn key_and_queue(
        &self,
        hash: &str,
        site_id: &str,
    ) -> ApiResult<(Option<(String, KeyKind, String)>, bool)> {
        #[derive(Deserialize)]
        struct Queued {
            #[allow(dead_code)]
            n: i64,
        }
        let results = self
            .db
            .batch(vec![
                self.stmt(KEY_SQL, &[s(hash)])?,
                self.stmt(
                    "SELECT 1 AS n FROM session_queue WHERE site_id = ?1 LIMIT 1",
                    &[s(site_id)],
                )?,
            ])
            .await?;
        let key: Vec<KeyRow> = match results.first() {
            Some(r) => r.results()?,
            None => Vec::new(),
        };
        let queued: Vec<Queued> = match results.get(1) {
            Some(r) => r.results()?,
            None => Vec::new(),
        };
        Ok((
            key.into_iter().next().and_then(KeyRow::found),
            !queued.is_empty(),
        ))
    }

    /// Whether some site allows `origin` (for preflights, which carry no site id).
    /// Cached in KV under `origin:{origin}`.
    pub async fn some_site_allows(&self, origin: &str) -> ApiResult<bool> {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        let key = format!("origin:{origin}");
        if let Ok(Some(v)) = self.kv.get(&key).text().await {
            return Ok(v == "1");
        }
        #[derive(Deserialize)]
        struct Row {
            #[allow(dead_code)]
            id: String,
        }
        let row: Option<Row> = self
            .stmt(
                "SELECT sites.id AS id FROM sites, json_each(sites.allowed_origins) AS o \
                 WHERE lower(rtrim(o.value, '/')) = ?1 LIMIT 1",
                &[s(&origin)],
            )?
            .first(None)
            .await?;
        let allowed = row.is_some();
        if let Ok(put) = self.kv.put(&key, if allowed { "1" } else { "0" }) {
            let _ = put.expiration_ttl(self.cache_ttl).execute().await;
        }
        Ok(allowed)
    }

    // ---- ingestion ------------------------------------------------------------

    /// Stores a batch's events, the visitor and its leads in one transaction. Returns,
    /// per event row, whether it was new, already stored, or refused by the quota.
    pub async fn insert_batch(&self, batch: &NewEvents<'_>) -> ApiResult<Vec<Stored>> {
        Ok(self.insert_batch_with(batch, false).await?.0)
    }

    /// [`Store::insert_batch`] for `POST /v1/collect`: in the same transaction it also
    /// queues the visitor for sessionisation (`session_queue`, from the batch's earliest
    /// event) and reads the time of the visitor's latest stored event before the batch
    /// (the anchor [`crate::ingest::ack_touch`] needs), so the request makes one D1
    /// round trip.
    pub async fn insert_batch_queued(
        &self,
        batch: &NewEvents<'_>,
    ) -> ApiResult<(Vec<Stored>, Option<i64>)> {
        self.insert_batch_with(batch, true).await
    }

    async fn insert_batch_with(
        &self,
        batch: &NewEvents<'_>,
        queue: bool,
    ) -> ApiResult<(Vec<Stored>, Option<i64>)> {
        let NewEvents {
            site_id,
            visitor_id,
            rows,
            geo,
            agent,
            leads,
            quota,
        } = *batch;
        if rows.is_empty() {
            return Ok((Vec::new(), None));
        }
        let mut stmts = Vec::with_capacity(rows.len() + 4 + 3 * leads.len());
        for r in rows {
            stmts.push(self.stmt(
                "INSERT INTO events (site_id, event_id, visitor_id, type, url, path, referrer, title, \
                 name, props, form_fields, form_values, form_id, created_at, sent_at, received_at, \
                 derived_ts, country, region, region_code, city, continent, postal_code, timezone, \
                 latitude, longitude, asn, as_org, colo, is_eu, device_type, browser, browser_version, \
                 os, os_version, is_bot, bot_reason, agent_id) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
                 ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, \
                 ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36, ?39, ?40 \
                 WHERE (SELECT count(*) FROM events WHERE site_id = ?1 AND visitor_id = ?3 \
                        AND derived_ts >= ?37) < ?38 \
                 ON CONFLICT (site_id, event_id) DO NOTHING",
                &[
                    s(site_id),
                    s(&r.event_id),
                    s(&r.visitor_id),
                    s(r.kind),
                    s(&r.url),
                    s(&r.path),
                    opt(r.referrer.as_deref()),
                    opt(r.title.as_deref()),
                    opt(r.name.as_deref()),
                    opt(r.props.as_deref()),
                    opt(r.form_fields.as_deref()),
                    opt(r.form_values.as_deref()),
                    opt(r.form_id.as_deref()),
                    n(r.created_at),
                    n(r.sent_at),
                    n(r.received_at),
                    n(r.derived_ts),
                    opt(geo.country.as_deref()),
                    opt(geo.region.as_deref()),
                    opt(geo.region_code.as_deref()),
                    opt(geo.city.as_deref()),
                    opt(geo.continent.as_deref()),
                    opt(geo.postal_code.as_deref()),
                    opt(geo.timezone.as_deref()),
                    optf(geo.latitude),
                    optf(geo.longitude),
                    geo.asn.map(n).unwrap_or(JsValue::NULL),
                    opt(geo.as_org.as_deref()),
                    opt(geo.colo.as_deref()),
                    b(geo.is_eu),
                    s(&agent.device_type),
                    opt(agent.browser.as_deref()),
                    opt(agent.browser_version.as_deref()),
                    opt(agent.os.as_deref()),
                    opt(agent.os_version.as_deref()),
                    b(agent.is_bot),
                    n(quota.since),
                    n(quota.max_events),
                    opt(agent.bot_reason.as_deref()),
                    opt(agent.source.as_ref().map(|a| a.id.as_str())),
                ],
            )?);
        }
        // the request's user agent and hints, once per site (re-classification; 0013)
        stmts.extend(agents::agent_stmt(
            self,
            site_id,
            agent,
            rows.first().map_or(0, |r| r.received_at),
        )?);
        let first = rows.iter().map(|r| r.derived_ts).min().unwrap_or(0);
        let last = rows.iter().map(|r| r.derived_ts).max().unwrap_or(0);
        stmts.push(self.stmt(
            "INSERT INTO visitors (site_id, visitor_id, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (site_id, visitor_id) DO UPDATE SET \
             first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)",
            &[s(site_id), s(visitor_id), n(first), n(last)],
        )?);
        for l in leads {
            stmts.push(self.stmt(
                "INSERT INTO leads (site_id, lead_id, email, name, company, phone, first_seen) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (site_id, email) DO UPDATE SET \
                 name = coalesce(excluded.name, leads.name), \
                 company = coalesce(excluded.company, leads.company), \
                 phone = coalesce(excluded.phone, leads.phone), \
                 first_event_id = CASE WHEN excluded.first_seen < leads.first_seen THEN NULL \
                   ELSE leads.first_event_id END, \
                 first_path = CASE WHEN excluded.first_seen < leads.first_seen THEN NULL \
                   ELSE leads.first_path END, \
                 first_seen = min(leads.first_seen, excluded.first_seen)",
                &[
                    s(site_id),
                    s(&l.lead_id),
                    s(&l.email),
                    opt(l.name.as_deref()),
                    opt(l.company.as_deref()),
                    opt(l.phone.as_deref()),
                    n(l.at),
                ],
            )?);
            // the first identity a visitor gives is the one it keeps
            stmts.push(self.stmt(
                "INSERT INTO lead_visitors (site_id, visitor_id, lead_id, linked_at) \
                 SELECT ?1, ?2, lead_id, ?4 FROM leads WHERE site_id = ?1 AND email = ?3 \
                 ON CONFLICT (site_id, visitor_id) DO NOTHING",
                &[s(site_id), s(visitor_id), s(&l.email), n(l.at)],
            )?);
            // The identifying event's id and page (the pages report's direct conversions,
            // migration 0008): this batch's event when it is stored, is this visitor's, is at
            // the lead's `first_seen`, the visitor is the lead's, and no stored identifying
            // event with a smaller id is there (the upsert above cleared them when it moved
            // `first_seen` earlier).
            stmts.push(self.stmt(
                "UPDATE leads SET first_event_id = ?4, first_path = (SELECT e.path FROM events e \
                 WHERE e.site_id = ?1 AND e.event_id = ?4) \
                 WHERE site_id = ?1 AND email = ?3 AND first_seen = ?5 \
                 AND (first_event_id IS NULL OR first_event_id > ?4) \
                 AND EXISTS (SELECT 1 FROM events e WHERE e.site_id = ?1 AND e.event_id = ?4 \
                   AND e.visitor_id = ?2 AND e.derived_ts = ?5 \
                   AND e.type IN ('form_submit', 'identify')) \
                 AND EXISTS (SELECT 1 FROM lead_visitors v WHERE v.site_id = ?1 \
                   AND v.visitor_id = ?2 AND v.lead_id = leads.lead_id)",
                &[
                    s(site_id),
                    s(visitor_id),
                    s(&l.email),
                    s(&l.event_id),
                    n(l.at),
                ],
            )?);
        }
        if queue {
            stmts.push(self.stmt(
                "INSERT INTO session_queue (site_id, visitor_id, from_ts, version) \
                 VALUES (?1, ?2, ?3, abs(random() % 9007199254740992)) ON CONFLICT (site_id, visitor_id) DO UPDATE SET \
                 from_ts = min(from_ts, excluded.from_ts), version = excluded.version",
                &[s(site_id), s(visitor_id), n(first)],
            )?);
        }
        // After the writes, in the same transaction: whether the visitor is at its quota
        // now (if not, no insert was refused by it, so every event that changed nothing
        // was already there), and the time of its latest event before the batch.
        stmts.push(self.stmt(
            "SELECT (SELECT count(*) FROM events WHERE site_id = ?1 AND visitor_id = ?2 \
               AND derived_ts >= ?4) >= ?5 AS full, \
             (SELECT max(derived_ts) FROM events WHERE site_id = ?1 AND visitor_id = ?2 \
               AND derived_ts < ?3) AS ts",
            &[
                s(site_id),
                s(visitor_id),
                n(first),
                n(quota.since),
                n(quota.max_events),
            ],
        )?);
        let writes = rows.len();
        let results = self.db.batch(stmts).await?;
        #[derive(Deserialize)]
        struct After {
            full: i64,
            ts: Option<i64>,
        }
        let after = match results.last() {
            Some(r) => r.results::<After>()?.into_iter().next(),
            None => None,
        }
        .ok_or_else(|| ApiError::internal("D1 batch returned fewer results than statements"))?;
        let anchor = if queue { after.ts } else { None };
        let changed: Vec<bool> = results
            .iter()
            .take(writes)
            .map(|r| Ok(r.meta()?.and_then(|m| m.changes).unwrap_or(0) > 0))
            .collect::<ApiResult<_>>()?;
        // At the quota (rare): which of the unchanged events are there tells "already
        // there" from "refused by the quota"; one more read.
        let present = if after.full != 0 && changed.iter().any(|c| !c) {
            self.present_events(site_id, rows).await?
        } else {
            std::collections::HashSet::new()
        };
        let mut out = Vec::with_capacity(rows.len());
        for (changed, row) in changed.iter().zip(rows) {
            out.push(if *changed {
                Stored::New
            } else if after.full == 0 || present.contains(&row.event_id) {
                Stored::AlreadyThere
            } else {
                Stored::OverQuota
            });
        }
        if out.len() != rows.len() {
            return Err(ApiError::internal(
                "D1 batch returned fewer results than statements",
            ));
        }
        Ok((out, anchor))
    }

    /// Which of the rows' events are stored.
    async fn present_events(
        &self,
        site_id: &str,
        rows: &[EventRow],
    ) -> ApiResult<std::collections::HashSet<String>> {
        #[derive(Deserialize)]
        struct Present {
            event_id: String,
        }
        let mut present = std::collections::HashSet::new();
        // D1 allows 100 bound parameters per statement
        for chunk in rows.chunks(90) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("?{}", i + 2)).collect();
            let sql = format!(
                "SELECT event_id FROM events WHERE site_id = ?1 AND event_id IN ({})",
                marks.join(", ")
            );
            let mut args = vec![s(site_id)];
            args.extend(chunk.iter().map(|r| s(&r.event_id)));
            for p in self.stmt(&sql, &args)?.all().await?.results::<Present>()? {
                present.insert(p.event_id);
            }
        }
        Ok(present)
    }

    /// The visitor's events from the start of its latest session that began at or
    /// before `at` (from `at` when there is none), in time order, at most `limit`: what
    /// sessionisation must see again when events at `at` or later were added.
    pub async fn visitor_events_since_session_of(
        &self,
        site_id: &str,
        visitor_id: &str,
        at: i64,
        limit: i64,
    ) -> ApiResult<Vec<StoredEvent>> {
        Ok(self
            .stmt(WINDOW_SQL, &[s(site_id), s(visitor_id), n(at), n(limit)])?
            .all()
            .await?
            .results()?)
    }

    /// Replaces the visitor's sessions that start at or after `from` with `sessions`,
    /// and points their events at them, in one transaction. Each session row also gets the
    /// country and device type of its first event (the reports' segments).
    pub async fn replace_sessions(
        &self,
        site_id: &str,
        visitor_id: &str,
        from: i64,
        sessions: &[SessionRow],
    ) -> ApiResult<()> {
        let mut stmts = self.replace_sessions_stmts(site_id, visitor_id, from, sessions)?;
        stmts.extend(self.markers_stmt(site_id, sessions.iter().map(|x| x.session_id.as_str()))?);
        self.db.batch(stmts).await?;
        Ok(())
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
                 pageviews, is_bot, country, device_type, bot_reason) SELECT ?1, ?2, ?3, ?4, ?5, ?6, \
                 ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
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
