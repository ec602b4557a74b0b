//! SQL of the beacon side of issue 12 and of issue 13's bad rows: a site's beacon rules
//! and limits, the directory of known sites and origins (kept in isolate memory so that
//! unknown sites and origins cost no D1 read or write), the received-day counters (the
//! visitor quota, the site's daily cap, the health figures), the bad-row ring, and the
//! provenance of visitor↔lead links. Part of [`crate::store`], so that only the store
//! module knows SQL (tables of migration 0009).

use super::{n, opt, s, Store};
use crate::error::{ApiError, ApiResult};
use closeloop_core::badrow::Kind;
use closeloop_core::health::StatRow;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use worker::D1PreparedStatement;

/// Default [`TrustSettings::max_events_per_day`]: a site with about 100 000 visitors a
/// day stays well under it; a flood stops there.
pub const DEFAULT_SITE_DAILY_EVENTS: i64 = 1_000_000;
/// Default [`TrustSettings::bad_rows_kept`].
pub const DEFAULT_BAD_ROWS_KEPT: i64 = 1_000;
/// Most bad rows a site may keep.
pub const MAX_BAD_ROWS_KEPT: i64 = 10_000;

/// A site's beacon rules and limits (issue 12), part of [`super::SiteConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrustSettings {
    /// Hosts, besides those of the allowed origins, that events may be recorded on.
    pub extra_hosts: Vec<String>,
    /// The identity secret (`user_hash` = HMAC-SHA256(secret, email)); `None`: off.
    pub identity_secret: Option<String>,
    /// Events the site's beacons may store per UTC day (received time).
    pub max_events_per_day: i64,
    /// Bad rows kept (a ring).
    pub bad_rows_kept: i64,
}

impl Default for TrustSettings {
    fn default() -> Self {
        TrustSettings {
            extra_hosts: Vec::new(),
            identity_secret: None,
            max_events_per_day: DEFAULT_SITE_DAILY_EVENTS,
            bad_rows_kept: DEFAULT_BAD_ROWS_KEPT,
        }
    }
}

// ---- the directory ------------------------------------------------------------------

/// How long an isolate trusts its [`Directory`], ms. A site created or an origin added
/// elsewhere reaches this isolate within that time (the isolate that made the change
/// forgets at once).
pub const DIRECTORY_TTL_MS: u64 = 30_000;

/// Every site id and every allowed origin (lower case, no trailing slash), read in one
/// query and kept in isolate memory: `POST /v1/collect` with an unknown site id and
/// `OPTIONS` with an unknown origin are answered from it, with no D1 or KV access.
#[derive(Debug, Default)]
pub struct Directory {
    sites: HashSet<String>,
    origins: HashSet<String>,
}

impl Directory {
    /// Whether a site with this id exists.
    pub fn has_site(&self, id: &str) -> bool {
        self.sites.contains(id)
    }

    /// Whether some site allows `origin`.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.origins
            .contains(&origin.trim_end_matches('/').to_ascii_lowercase())
    }
}

thread_local! {
    static DIRECTORY: RefCell<Option<(u64, Rc<Directory>)>> = const { RefCell::new(None) };
}

/// Makes this isolate read the directory again at its next use (after an admin change).
pub fn forget_directory() {
    DIRECTORY.with(|d| *d.borrow_mut() = None);
}

// ---- counters and bad rows ------------------------------------------------------------

/// An amount to add to a counter of `site_stats` (core's `health` names the metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    /// Site.
    pub site_id: String,
    /// UTC day number of receipt.
    pub day: i64,
    /// Metric.
    pub metric: String,
    /// Amount.
    pub n: i64,
}

/// A bad row to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBadRow {
    /// Site.
    pub site_id: String,
    /// Ring size of the site ([`TrustSettings::bad_rows_kept`]).
    pub kept: i64,
    /// Received (ms).
    pub at: i64,
    /// Event or batch.
    pub kind: Kind,
    /// The error code.
    pub reason: String,
    /// The error message.
    pub message: String,
    /// The event's id, when one.
    pub event_id: Option<String>,
    /// The visitor's id, when known.
    pub visitor_id: Option<String>,
    /// The raw JSON (redacted, cut).
    pub raw: String,
    /// Whether `raw` was cut.
    pub truncated: bool,
}

/// A stored bad row as `GET /v1/sites/{site}/rejected` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct BadRowView {
    /// Sequence number (the cursor).
    pub seq: i64,
    /// Received (ms).
    pub at: i64,
    /// `event` or `batch`.
    pub kind: String,
    /// Error code.
    pub reason: String,
    /// Error message.
    pub message: String,
    /// Event id.
    pub event_id: Option<String>,
    /// Visitor id.
    pub visitor_id: Option<String>,
    /// Raw JSON text.
    pub raw: String,
    /// Whether `raw` was cut (0/1).
    pub truncated: i64,
}

/// Which bad rows to list.
#[derive(Debug, Clone, Default)]
pub struct BadRowQuery {
    /// Only this reason.
    pub reason: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only rows received at or after this time (ms).
    pub since: Option<i64>,
    /// Only rows older than this sequence number (paging, newest first).
    pub before: Option<i64>,
    /// Page size.
    pub limit: i64,
}

/// A visitor↔lead link with its provenance.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LinkRow {
    /// The visitor id.
    pub visitor_id: String,
    /// How it was made (core's `LinkMethod` name).
    pub method: String,
    /// The identifying event's derived time (ms).
    pub linked_at: i64,
    /// When that event was received (ms; `None` before migration 0009).
    pub received_at: Option<i64>,
    /// The identifying event.
    pub event_id: Option<String>,
}

/// A change to a site's beacon settings (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct TrustUpdate {
    /// New extra hosts.
    pub extra_hosts: Option<Vec<String>>,
    /// New daily cap.
    pub max_events_per_day: Option<i64>,
    /// New visitor quota.
    pub max_events_per_visitor_day: Option<i64>,
    /// New ring size.
    pub bad_rows_kept: Option<i64>,
    /// New identity secret: `Some(Some(s))` sets, `Some(None)` turns verification off.
    pub identity_secret: Option<Option<String>>,
    /// New storage: 0 D1, `N` shards (the caller checks that the site stored nothing).
    pub shards: Option<u32>,
}

/// The upsert of one counter.
const COUNT_SQL: &str = "INSERT INTO site_stats (site_id, day, metric, n) VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (site_id, day, metric) DO UPDATE SET n = n + excluded.n";

/// One bad row into the site's ring: the next sequence number, in slot `seq % kept`,
/// replacing the row there (the oldest).
const BAD_ROW_SQL: &str = "INSERT INTO bad_rows (site_id, slot, seq, at, kind, reason, message, \
     event_id, visitor_id, raw, truncated) SELECT ?1, nx.seq % ?2, nx.seq, ?3, ?4, ?5, ?6, ?7, ?8, \
     ?9, ?10 FROM (SELECT coalesce(max(seq), 0) + 1 AS seq FROM bad_rows WHERE site_id = ?1) nx \
     WHERE true ON CONFLICT (site_id, slot) DO UPDATE SET seq = excluded.seq, at = excluded.at, \
     kind = excluded.kind, reason = excluded.reason, message = excluded.message, \
     event_id = excluded.event_id, visitor_id = excluded.visitor_id, raw = excluded.raw, \
     truncated = excluded.truncated";

/// The rows of one batch (`?1` site, `?2` the batch's event ids as a JSON array) that this
/// request stored (`?3` its received_at): found by primary key among the batch's own ids,
/// never by scanning the visitor's events. (A concurrent duplicate received in the same
/// millisecond would be counted by both requests: an overcount by a retry, never an
/// undercount.)
pub(super) const ADDED_SQL: &str = "(SELECT count(*) FROM events WHERE site_id = ?1 \
     AND event_id IN (SELECT value FROM json_each(?2)) AND received_at = ?3)";

impl Store {
    /// The directory of known sites and origins: from isolate memory when read less than
    /// [`DIRECTORY_TTL_MS`] ago, else one D1 query (every site's id and origins).
    pub async fn directory(&self) -> ApiResult<Rc<Directory>> {
        let now = worker::Date::now().as_millis();
        let kept = DIRECTORY.with(|d| {
            d.borrow()
                .as_ref()
                .filter(|(at, _)| now.saturating_sub(*at) < DIRECTORY_TTL_MS)
                .map(|(_, dir)| Rc::clone(dir))
        });
        if let Some(dir) = kept {
            return Ok(dir);
        }
        #[derive(Deserialize)]
        struct Row {
            id: String,
            allowed_origins: String,
        }
        let rows: Vec<Row> = self
            .stmt("SELECT id, allowed_origins FROM sites", &[])?
            .all()
            .await?
            .results()?;
        let mut dir = Directory::default();
        for r in rows {
            let origins: Vec<String> = serde_json::from_str(&r.allowed_origins).unwrap_or_default();
            dir.origins.extend(
                origins
                    .iter()
                    .map(|o| o.trim_end_matches('/').to_ascii_lowercase()),
            );
            dir.sites.insert(r.id);
        }
        let dir = Rc::new(dir);
        DIRECTORY.with(|d| *d.borrow_mut() = Some((now, Rc::clone(&dir))));
        Ok(dir)
    }

    /// The statement adding `c` to its counter.
    pub(crate) fn count_stmt(&self, c: &Count) -> ApiResult<D1PreparedStatement> {
        self.stmt(COUNT_SQL, &[s(&c.site_id), n(c.day), s(&c.metric), n(c.n)])
    }

    /// The statement keeping `r` in its site's ring.
    pub(crate) fn bad_row_stmt(&self, r: &NewBadRow) -> ApiResult<D1PreparedStatement> {
        self.stmt(
            BAD_ROW_SQL,
            &[
                s(&r.site_id),
                n(r.kept.clamp(1, MAX_BAD_ROWS_KEPT)),
                n(r.at),
                s(r.kind.as_str()),
                s(&r.reason),
                s(&r.message),
                opt(r.event_id.as_deref()),
                opt(r.visitor_id.as_deref()),
                s(&r.raw),
                n(i64::from(r.truncated)),
            ],
        )
    }

    /// Writes counters and bad rows in one transaction (nothing when both are empty).
    pub async fn write_tallies(&self, counts: &[Count], rows: &[NewBadRow]) -> ApiResult<()> {
        let mut stmts = Vec::with_capacity(counts.len() + rows.len());
        for c in counts {
            stmts.push(self.count_stmt(c)?);
        }
        for r in rows {
            stmts.push(self.bad_row_stmt(r)?);
        }
        if !stmts.is_empty() {
            self.db.batch(stmts).await?;
        }
        Ok(())
    }

    /// The site's counters of days `from_day..=to_day`, and the last time an event was
    /// stored on any day kept (as an `accepted` row with that `last_at`).
    pub async fn stats(
        &self,
        site_id: &str,
        from_day: i64,
        to_day: i64,
    ) -> ApiResult<Vec<StatRow>> {
        #[derive(Deserialize)]
        struct Row {
            day: i64,
            metric: String,
            n: i64,
            last_at: Option<i64>,
        }
        let results = self
            .db
            .batch(vec![
                self.stmt(
                    "SELECT day, metric, n, last_at FROM site_stats WHERE site_id = ?1 \
                     AND day >= ?2 AND day <= ?3",
                    &[s(site_id), n(from_day), n(to_day)],
                )?,
                self.stmt(
                    "SELECT day, metric, 0 AS n, last_at FROM site_stats WHERE site_id = ?1 \
                     AND metric = 'accepted' AND last_at IS NOT NULL ORDER BY day DESC LIMIT 1",
                    &[s(site_id)],
                )?,
            ])
            .await?;
        let mut out = Vec::new();
        for r in &results {
            for row in r.results::<Row>()? {
                out.push(StatRow {
                    day: row.day,
                    metric: row.metric,
                    n: row.n,
                    last_at: row.last_at,
                });
            }
        }
        Ok(out)
    }

    /// A page of the site's bad rows, newest first.
    pub async fn bad_rows(&self, site_id: &str, q: &BadRowQuery) -> ApiResult<Vec<BadRowView>> {
        Ok(self
            .stmt(
                "SELECT seq, at, kind, reason, message, event_id, visitor_id, raw, truncated \
                 FROM bad_rows WHERE site_id = ?1 AND (?2 IS NULL OR reason = ?2) \
                 AND (?3 IS NULL OR kind = ?3) AND (?4 IS NULL OR at >= ?4) \
                 AND (?5 IS NULL OR seq < ?5) ORDER BY seq DESC LIMIT ?6",
                &[
                    s(site_id),
                    opt(q.reason.as_deref()),
                    opt(q.kind.as_deref()),
                    q.since.map(n).unwrap_or(wasm_bindgen::JsValue::NULL),
                    q.before.map(n).unwrap_or(wasm_bindgen::JsValue::NULL),
                    n(q.limit),
                ],
            )?
            .all()
            .await?
            .results()?)
    }

    /// The visitors of a lead with how and when each was linked, in link order.
    pub async fn lead_links(&self, site_id: &str, lead_id: &str) -> ApiResult<Vec<LinkRow>> {
        Ok(self
            .stmt(
                "SELECT visitor_id, method, linked_at, received_at, event_id FROM lead_visitors \
                 WHERE site_id = ?1 AND lead_id = ?2 ORDER BY linked_at, visitor_id",
                &[s(site_id), s(lead_id)],
            )?
            .all()
            .await?
            .results()?)
    }

    /// Applies a change to a site's beacon settings. `false` when there is no such site.
    /// A smaller ring drops the rows past it.
    pub async fn update_trust(&self, site_id: &str, u: &TrustUpdate) -> ApiResult<bool> {
        let hosts = match &u.extra_hosts {
            Some(h) => Some(serde_json::to_string(h).map_err(ApiError::internal)?),
            None => None,
        };
        let (set_secret, secret) = match &u.identity_secret {
            Some(sec) => (true, sec.clone()),
            None => (false, None),
        };
        let mut stmts = vec![self.stmt(
            "UPDATE sites SET extra_hosts = coalesce(?2, extra_hosts), \
             max_events_per_day = coalesce(?3, max_events_per_day), \
             max_events_per_visitor_day = coalesce(?4, max_events_per_visitor_day), \
             bad_rows_kept = coalesce(?5, bad_rows_kept), \
             identity_secret = CASE WHEN ?6 = 1 THEN ?7 ELSE identity_secret END, \
             shards = coalesce(?8, shards) WHERE id = ?1",
            &[
                s(site_id),
                opt(hosts.as_deref()),
                u.max_events_per_day
                    .map(n)
                    .unwrap_or(wasm_bindgen::JsValue::NULL),
                u.max_events_per_visitor_day
                    .map(n)
                    .unwrap_or(wasm_bindgen::JsValue::NULL),
                u.bad_rows_kept
                    .map(n)
                    .unwrap_or(wasm_bindgen::JsValue::NULL),
                n(i64::from(set_secret)),
                opt(secret.as_deref()),
                u.shards
                    .map(|v| n(i64::from(v)))
                    .unwrap_or(wasm_bindgen::JsValue::NULL),
            ],
        )?];
        if let Some(kept) = u.bad_rows_kept {
            // the ring of a smaller size: rows past it go, the newest `kept` stay in their
            // new slots (`seq % kept`) as later writes fill them
            stmts.push(self.stmt(
                "DELETE FROM bad_rows WHERE site_id = ?1 AND seq <= \
                 coalesce((SELECT max(seq) FROM bad_rows WHERE site_id = ?1), 0) - ?2",
                &[s(site_id), n(kept)],
            )?);
            stmts.push(self.stmt(
                "UPDATE bad_rows SET slot = seq % ?2 + ?3 WHERE site_id = ?1",
                &[s(site_id), n(kept), n(MAX_BAD_ROWS_KEPT * 4)],
            )?);
            stmts.push(self.stmt(
                "UPDATE bad_rows SET slot = slot - ?2 WHERE site_id = ?1",
                &[s(site_id), n(MAX_BAD_ROWS_KEPT * 4)],
            )?);
        }
        let results = self.db.batch(stmts).await?;
        let changed = results
            .first()
            .and_then(|r| r.meta().ok().flatten())
            .and_then(|m| m.changes)
            .unwrap_or(0)
            == 1;
        self.forget_site(site_id).await;
        Ok(changed)
    }

    /// Drops what the counters no longer need: visitor days before yesterday, and site
    /// counters older than `keep_days` (at most `limit` rows each, per run).
    pub async fn prune_counters(&self, today: i64, keep_days: i64, limit: i64) -> ApiResult<()> {
        self.db
            .batch(vec![
                self.stmt(
                    "DELETE FROM visitor_days WHERE (day, site_id, visitor_id) IN \
                     (SELECT day, site_id, visitor_id FROM visitor_days WHERE day < ?1 LIMIT ?2)",
                    &[n(today - 1), n(limit)],
                )?,
                self.stmt(
                    "DELETE FROM site_stats WHERE (site_id, day, metric) IN \
                     (SELECT site_id, day, metric FROM site_stats WHERE day < ?1 LIMIT ?2)",
                    &[n(today - keep_days), n(limit)],
                )?,
            ])
            .await?;
        Ok(())
    }
}
