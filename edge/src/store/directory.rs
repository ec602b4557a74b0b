//! SQL of the lead directory of a site whose events live in shards (issue 14: "the site's
//! own D1 rows"): what a shard tells it of a linked visitor ([`VisitorSync`]) lands in the
//! tables every lead already uses — `leads` and `lead_visitors` (so the leads API, CRM
//! conversions matched by email and the webhook outbox triggers work as for a site in D1)
//! and the visitor's sessions in `sessions` (only linked visitors' sessions: the touches the
//! sources report credits) and their page views in `journey_views` (the pages report's
//! assists) — with the visitor's version in `directory_visitors` (migration 0015).
//!
//! A sync applies in one D1 batch (one transaction) or not at all. Every statement is
//! guarded by the version read before it ([`GUARD`]): a delta applies only on top of its
//! base version, a full state only over an older one, and a sync that raced another leaves
//! nothing and is answered `need_full` (the shard then sends its full state; nothing is lost
//! or applied twice). Links are idempotent upserts.

use super::{n, opt, s, Store};
use crate::error::{ApiError, ApiResult};
use crate::shard::msg::{SyncAnswer, VisitorSync};
use serde::Deserialize;

/// Every statement of a sync runs only while the visitor's stored version is still the
/// one read first (?1 site, ?2 visitor, ?3 that version, -1 for none).
const GUARD: &str = "coalesce((SELECT version FROM directory_visitors \
     WHERE site_id = ?1 AND visitor_id = ?2), -1) = ?3";

impl Store {
    /// Applies a shard's [`VisitorSync`] (see the module docs) and answers the visitor's
    /// lead and the version the directory now has.
    pub async fn apply_sync(&self, site_id: &str, msg: &VisitorSync) -> ApiResult<SyncAnswer> {
        #[derive(Deserialize)]
        struct V {
            version: i64,
            lead_id: Option<String>,
        }
        let read = |_: ()| {
            self.stmt(
                "SELECT coalesce((SELECT version FROM directory_visitors WHERE site_id = ?1 \
                 AND visitor_id = ?2), -1) AS version, (SELECT lead_id FROM lead_visitors \
                 WHERE site_id = ?1 AND visitor_id = ?2) AS lead_id",
                &[s(site_id), s(&msg.visitor)],
            )
        };
        let before: V = read(())?
            .first(None)
            .await?
            .ok_or_else(|| ApiError::internal("directory: no row"))?;
        let version = i64::try_from(msg.version).unwrap_or(i64::MAX);
        let answer = |v: &V, need_full: bool| SyncAnswer {
            lead: v.lead_id.clone(),
            version: u64::try_from(v.version).ok(),
            need_full,
        };
        // a retry of what the directory has: nothing to do
        if before.version >= version {
            return Ok(answer(&before, false));
        }
        // a delta that does not fit what the directory has: the full state, please
        if let Some(base) = msg.base {
            if i64::try_from(base).unwrap_or(i64::MAX) != before.version {
                return Ok(answer(&before, true));
            }
        }
        let guard_args = [s(site_id), s(&msg.visitor), n(before.version)];
        let mut stmts = Vec::new();
        for l in &msg.links {
            // a beacon fills only the traits a lead lacks; a trusted party overwrites them
            let traits = if l.is_trusted() {
                "name = coalesce(excluded.name, leads.name), \
                 company = coalesce(excluded.company, leads.company), \
                 phone = coalesce(excluded.phone, leads.phone)"
            } else {
                "name = coalesce(leads.name, excluded.name), \
                 company = coalesce(leads.company, excluded.company), \
                 phone = coalesce(leads.phone, excluded.phone)"
            };
            let traits = if l.may_join {
                format!(
                    "DO UPDATE SET {traits}, \
                     first_event_id = CASE WHEN excluded.first_seen < leads.first_seen \
                       THEN excluded.first_event_id ELSE leads.first_event_id END, \
                     first_path = CASE WHEN excluded.first_seen < leads.first_seen \
                       THEN excluded.first_path ELSE leads.first_path END, \
                     first_seen = min(leads.first_seen, excluded.first_seen)"
                )
            } else {
                "DO NOTHING".to_owned()
            };
            stmts.push(self.stmt(
                &format!(
                    "INSERT INTO leads (site_id, lead_id, email, name, company, phone, \
                     first_seen, first_event_id, first_path) \
                     SELECT ?1, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11 WHERE {GUARD} \
                     ON CONFLICT (site_id, email) {traits}"
                ),
                &[
                    guard_args[0].clone(),
                    guard_args[1].clone(),
                    guard_args[2].clone(),
                    s(&l.lead_id),
                    s(&l.email),
                    opt(l.name.as_deref()),
                    opt(l.company.as_deref()),
                    opt(l.phone.as_deref()),
                    n(l.at),
                    s(&l.event_id),
                    opt(l.path.as_deref()),
                ],
            )?);
            // the first identity a visitor gives is the one it keeps; a link that may not
            // join an existing lead is made only while the lead has no other visitor
            let join = if l.may_join {
                ""
            } else {
                " AND NOT EXISTS (SELECT 1 FROM lead_visitors o WHERE o.site_id = ?1 \
                   AND o.lead_id = leads.lead_id AND o.visitor_id <> ?2)"
            };
            stmts.push(self.stmt(
                &format!(
                    "INSERT INTO lead_visitors (site_id, visitor_id, lead_id, linked_at, method, \
                     event_id, received_at) SELECT ?1, ?2, lead_id, ?5, ?6, ?7, ?8 FROM leads \
                     WHERE site_id = ?1 AND email = ?4 AND {GUARD}{join} \
                     ON CONFLICT (site_id, visitor_id) DO NOTHING"
                ),
                &[
                    guard_args[0].clone(),
                    guard_args[1].clone(),
                    guard_args[2].clone(),
                    s(&l.email),
                    n(l.at),
                    s(&l.method),
                    s(&l.event_id),
                    n(l.received_at),
                ],
            )?);
        }
        // the sessions: a full state replaces them all, a delta removes what is gone
        if msg.base.is_none() {
            stmts.push(self.stmt(
                &format!("DELETE FROM sessions WHERE site_id = ?1 AND visitor_id = ?2 AND {GUARD}"),
                &guard_args,
            )?);
        } else if !msg.removed.is_empty() {
            let removed = serde_json::to_string(&msg.removed).map_err(ApiError::internal)?;
            stmts.push(self.stmt(
                &format!(
                    "DELETE FROM sessions WHERE site_id = ?1 AND visitor_id = ?2 AND {GUARD} \
                     AND session_id IN (SELECT value FROM json_each(?4))"
                ),
                &[
                    guard_args[0].clone(),
                    guard_args[1].clone(),
                    guard_args[2].clone(),
                    s(&removed),
                ],
            )?);
        }
        if !msg.sessions.is_empty() {
            let rows: Vec<serde_json::Value> = msg
                .sessions
                .iter()
                .map(|x| {
                    serde_json::json!({
                        "id": x.id, "start": x.start, "channel": x.key.channel,
                        "source": x.key.source, "medium": x.key.medium,
                        "campaign": x.key.campaign, "landing": x.key.landing_page,
                        "pageviews": x.pageviews, "bot": i64::from(x.key.is_bot),
                        "country": x.key.country, "device": x.key.device,
                    })
                })
                .collect();
            let rows = serde_json::to_string(&rows).map_err(ApiError::internal)?;
            let col = |name: &str| format!("json_extract(j.value, '$.{name}')");
            stmts.push(self.stmt(
                &format!(
                    "INSERT INTO sessions (site_id, session_id, visitor_id, started_at, ended_at, \
                     channel, source, medium, campaign, landing_path, pageviews, is_bot, country, \
                     device_type) SELECT ?1, {id}, ?2, {start}, {start}, {channel}, {source}, \
                     {medium}, {campaign}, {landing}, {pageviews}, {bot}, {country}, {device} \
                     FROM json_each(?4) j WHERE {GUARD} \
                     ON CONFLICT (site_id, session_id) DO UPDATE SET \
                     visitor_id = excluded.visitor_id, started_at = excluded.started_at, \
                     ended_at = excluded.ended_at, channel = excluded.channel, \
                     source = excluded.source, medium = excluded.medium, \
                     campaign = excluded.campaign, landing_path = excluded.landing_path, \
                     pageviews = excluded.pageviews, is_bot = excluded.is_bot, \
                     country = excluded.country, device_type = excluded.device_type",
                    id = col("id"),
                    start = col("start"),
                    channel = col("channel"),
                    source = col("source"),
                    medium = col("medium"),
                    campaign = col("campaign"),
                    landing = col("landing"),
                    pageviews = col("pageviews"),
                    bot = col("bot"),
                    country = col("country"),
                    device = col("device"),
                ),
                &[
                    guard_args[0].clone(),
                    guard_args[1].clone(),
                    guard_args[2].clone(),
                    s(&rows),
                ],
            )?);
        }
        // the page views: a full state replaces those since `views_since` (older ones left
        // the shard; the directory keeps them), a delta moves what it names
        if msg.base.is_none() {
            stmts.push(self.stmt(
                &format!(
                    "DELETE FROM journey_views WHERE site_id = ?1 AND visitor_id = ?2 \
                     AND at >= ?4 AND {GUARD}"
                ),
                &[
                    guard_args[0].clone(),
                    guard_args[1].clone(),
                    guard_args[2].clone(),
                    n(msg.views_since.unwrap_or(i64::MIN / 2)),
                ],
            )?);
        } else if !msg.views_out.is_empty() {
            let out = serde_json::to_string(&msg.views_out).map_err(ApiError::internal)?;
            stmts.push(self.stmt(
                &format!(
                    "DELETE FROM journey_views WHERE site_id = ?1 AND visitor_id = ?2 \
                     AND {GUARD} AND event_id IN (SELECT value FROM json_each(?4))"
                ),
                &[
                    guard_args[0].clone(),
                    guard_args[1].clone(),
                    guard_args[2].clone(),
                    s(&out),
                ],
            )?);
        }
        if !msg.views_in.is_empty() {
            let views = serde_json::to_string(&msg.views_in).map_err(ApiError::internal)?;
            stmts.push(self.stmt(
                &format!(
                    "INSERT INTO journey_views (site_id, event_id, visitor_id, session_id, at, \
                     path) SELECT ?1, json_extract(j.value, '$.event_id'), ?2, \
                     json_extract(j.value, '$.session'), json_extract(j.value, '$.at'), \
                     json_extract(j.value, '$.path') FROM json_each(?4) j WHERE {GUARD} \
                     ON CONFLICT (site_id, event_id) DO UPDATE SET \
                     session_id = excluded.session_id, at = excluded.at, path = excluded.path"
                ),
                &[
                    guard_args[0].clone(),
                    guard_args[1].clone(),
                    guard_args[2].clone(),
                    s(&views),
                ],
            )?);
        }
        // last: the version (every statement above saw the old one)
        stmts.push(self.stmt(
            &format!(
                "INSERT INTO directory_visitors (site_id, visitor_id, version) \
                 SELECT ?1, ?2, ?4 WHERE {GUARD} \
                 ON CONFLICT (site_id, visitor_id) DO UPDATE SET version = excluded.version"
            ),
            &[
                guard_args[0].clone(),
                guard_args[1].clone(),
                guard_args[2].clone(),
                n(version),
            ],
        )?);
        stmts.push(read(())?);
        let results = self.db.batch(stmts).await?;
        let after: Vec<V> = Self::all(results.last())?;
        let after = after
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::internal("directory: no row"))?;
        // another sync got in first: nothing of this one applied
        let raced = after.version != version;
        Ok(answer(&after, raced))
    }
}

impl Store {
    /// The page views of the linked visitors of a site in shards with a time in
    /// `[from, to)` (the pages report's assists and direct conversions).
    pub async fn journey_pageviews(
        &self,
        site_id: &str,
        from: i64,
        to: i64,
    ) -> ApiResult<Vec<closeloop_core::report::PageViewRow>> {
        let rows = self
            .stmt(
                "SELECT session_id AS session, path, at FROM journey_views \
                 WHERE site_id = ?1 AND at >= ?2 AND at < ?3",
                &[s(site_id), n(from), n(to)],
            )?
            .all()
            .await?;
        Self::all(Some(&rows))
    }
}
