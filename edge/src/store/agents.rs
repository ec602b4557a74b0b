//! Agents (user agents and Client Hints, once per site), bot reasons, and the
//! re-classification of stored events when the lists change (migration 0013).

use super::{b, n, opt, s, Store};
use crate::enrich::Agent;
use crate::error::{ApiError, ApiResult};
use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::D1PreparedStatement;

/// Events re-classified per window (one `UPDATE` over a time window of a site's events).
pub const RECLASSIFY_EVENTS_PER_WINDOW: i64 = 5_000;

/// The statement that keeps a request's agent once per site, with how the lists
/// classify it (nothing when the agent came from an import's context).
pub(super) fn agent_stmt(
    store: &Store,
    site_id: &str,
    agent: &Agent,
    received_at: i64,
) -> ApiResult<Option<D1PreparedStatement>> {
    let Some(src) = &agent.source else {
        return Ok(None);
    };
    Ok(Some(store.stmt(
        "INSERT INTO agents (site_id, agent_id, user_agent, hints, first_seen, device_type, \
         browser, browser_version, os, os_version, is_bot, bot_reason) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
         ON CONFLICT (site_id, agent_id) DO NOTHING",
        &class_args(
            site_id,
            &src.id,
            agent,
            Some((&src.user_agent, &src.hints, received_at)),
        ),
    )?))
}

/// The bound values of an agent row: site, id, [user agent, hints, first seen], then its
/// classification. A request flagged by Cloudflare alone keeps its agent's own verdict
/// here (the signal belongs to the request, not to the user agent).
fn class_args(
    site_id: &str,
    id: &str,
    agent: &Agent,
    first: Option<(&str, &str, i64)>,
) -> Vec<JsValue> {
    let by_request = agent
        .bot_reason
        .as_deref()
        .is_some_and(|r| r.starts_with("cloudflare:"));
    let mut args = vec![s(site_id), s(id)];
    if let Some((ua, hints, at)) = first {
        args.extend([s(ua), s(hints), n(at)]);
    }
    let (device, is_bot, reason) = if by_request {
        // re-parsed from the user agent alone, below; Cloudflare's verdict stays on the event
        let again = agent
            .source
            .as_ref()
            .map(|src| crate::enrich::agent_from_stored(&src.user_agent, &src.hints));
        match again {
            Some(a) => (a.device_type, a.is_bot, a.bot_reason),
            None => (agent.device_type.clone(), false, None),
        }
    } else {
        (
            agent.device_type.clone(),
            agent.is_bot,
            agent.bot_reason.clone(),
        )
    };
    args.extend([
        s(&device),
        opt(agent.browser.as_deref()),
        opt(agent.browser_version.as_deref()),
        opt(agent.os.as_deref()),
        opt(agent.os_version.as_deref()),
        b(is_bot),
        opt(reason.as_deref()),
    ]);
    args
}

/// An agent as stored, to parse again.
#[derive(Debug, Clone, Deserialize)]
pub struct StoredAgent {
    /// Its id.
    pub agent_id: String,
    /// The user agent.
    pub user_agent: String,
    /// The hints (JSON).
    pub hints: String,
}

/// One row of the bots report: the flagged events of one reason.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct BotRow {
    /// `list:pattern`, `cloudflare:...`, `client-hints:...`, `import:context`, or
    /// `(not recorded)` for rows stored before reasons were kept.
    pub reason: String,
    /// Flagged events.
    pub events: i64,
    /// Their distinct visitors.
    pub visitors: i64,
    /// Their distinct sessions.
    pub sessions: i64,
    /// First and last event time (ms).
    pub first_seen: i64,
    /// Last event time (ms).
    pub last_seen: i64,
    /// One user agent flagged for this reason (the most recent stored), when known.
    pub user_agent: Option<String>,
}

/// Events of a range, flagged or not.
#[derive(Debug, Clone, Deserialize)]
struct Totals {
    events: i64,
    bot_events: i64,
}

impl Store {
    /// The bots report: a site's flagged events in `[from, to)` by reason, and the
    /// range's event counts (all, flagged).
    pub async fn bots_report(
        &self,
        site_id: &str,
        from: i64,
        to: i64,
    ) -> ApiResult<(Vec<BotRow>, i64, i64)> {
        let results = self
            .db
            .batch(vec![
                self.stmt(
                    "SELECT coalesce(e.bot_reason, '(not recorded)') AS reason, count(*) AS events, \
                     count(DISTINCT e.visitor_id) AS visitors, count(DISTINCT e.session_id) AS sessions, \
                     min(e.derived_ts) AS first_seen, max(e.derived_ts) AS last_seen, \
                     (SELECT a.user_agent FROM events x JOIN agents a ON a.site_id = x.site_id \
                        AND a.agent_id = x.agent_id WHERE x.site_id = ?1 AND x.is_bot = 1 \
                        AND x.bot_reason IS e.bot_reason AND x.derived_ts >= ?2 AND x.derived_ts < ?3 \
                        ORDER BY x.derived_ts DESC LIMIT 1) AS user_agent \
                     FROM events e WHERE e.site_id = ?1 AND e.is_bot = 1 \
                     AND e.derived_ts >= ?2 AND e.derived_ts < ?3 \
                     GROUP BY e.bot_reason ORDER BY events DESC, reason",
                    &[s(site_id), n(from), n(to)],
                )?,
                self.stmt(
                    "SELECT count(*) AS events, coalesce(sum(is_bot), 0) AS bot_events FROM events \
                     WHERE site_id = ?1 AND derived_ts >= ?2 AND derived_ts < ?3",
                    &[s(site_id), n(from), n(to)],
                )?,
            ])
            .await?;
        let rows: Vec<BotRow> = match results.first() {
            Some(r) => r.results()?,
            None => Vec::new(),
        };
        let totals: Option<Totals> = match results.get(1) {
            Some(r) => r.results()?.into_iter().next(),
            None => None,
        };
        let t = totals.unwrap_or(Totals {
            events: 0,
            bot_events: 0,
        });
        Ok((rows, t.events, t.bot_events))
    }

    /// Up to `limit` of a site's agents after `after` (by id), to parse again.
    pub async fn agents_after(
        &self,
        site_id: &str,
        after: &str,
        limit: i64,
    ) -> ApiResult<Vec<StoredAgent>> {
        Ok(self
            .stmt(
                "SELECT agent_id, user_agent, hints FROM agents WHERE site_id = ?1 AND agent_id > ?2 \
                 ORDER BY agent_id LIMIT ?3",
                &[s(site_id), s(after), n(limit)],
            )?
            .all()
            .await?
            .results()?)
    }

    /// Writes agents' new classification (one statement per agent, one transaction).
    /// Returns how many rows changed.
    pub async fn write_agent_classes(
        &self,
        site_id: &str,
        classes: &[(String, Agent)],
    ) -> ApiResult<i64> {
        if classes.is_empty() {
            return Ok(0);
        }
        let stmts = classes
            .iter()
            .map(|(id, agent)| {
                self.stmt(
                    "UPDATE agents SET device_type = ?3, browser = ?4, browser_version = ?5, os = ?6, \
                     os_version = ?7, is_bot = ?8, bot_reason = ?9 WHERE site_id = ?1 AND agent_id = ?2 \
                     AND (device_type IS NOT ?3 OR browser IS NOT ?4 OR browser_version IS NOT ?5 \
                     OR os IS NOT ?6 OR os_version IS NOT ?7 OR is_bot IS NOT ?8 OR bot_reason IS NOT ?9)",
                    &class_args(site_id, id, agent, None),
                )
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let mut changed = 0;
        for r in self.db.batch(stmts).await? {
            changed += r.meta()?.and_then(|m| m.changes).unwrap_or(0) as i64;
        }
        Ok(changed)
    }

    /// Copies each agent's classification onto the site's events from `from` on (at most
    /// [`RECLASSIFY_EVENTS_PER_WINDOW`] events' worth of time), except events Cloudflare
    /// flagged. Returns (events changed, where the next window starts; `None` when this
    /// was the last).
    pub async fn reclassify_events_window(
        &self,
        site_id: &str,
        from: i64,
    ) -> ApiResult<(i64, Option<i64>)> {
        #[derive(Deserialize)]
        struct End {
            derived_ts: i64,
        }
        let end: Option<End> = self
            .stmt(
                "SELECT derived_ts FROM events WHERE site_id = ?1 AND derived_ts >= ?2 \
                 ORDER BY derived_ts LIMIT 1 OFFSET ?3",
                &[s(site_id), n(from), n(RECLASSIFY_EVENTS_PER_WINDOW)],
            )?
            .first(None)
            .await?;
        // a window holds at least one millisecond, so a crowd of events at one time
        // cannot stall it
        let next = end.map(|e| e.derived_ts.max(from + 1));
        let to = next.unwrap_or(i64::MAX);
        let r = self
            .stmt(
                "UPDATE events SET device_type = a.device_type, browser = a.browser, \
                 browser_version = a.browser_version, os = a.os, os_version = a.os_version, \
                 is_bot = a.is_bot, bot_reason = a.bot_reason \
                 FROM agents AS a WHERE events.site_id = ?1 AND events.derived_ts >= ?2 \
                 AND events.derived_ts < ?3 AND a.site_id = events.site_id \
                 AND a.agent_id = events.agent_id \
                 AND (events.bot_reason IS NULL OR events.bot_reason NOT LIKE 'cloudflare:%') \
                 AND (events.device_type IS NOT a.device_type OR events.browser IS NOT a.browser \
                   OR events.browser_version IS NOT a.browser_version OR events.os IS NOT a.os \
                   OR events.os_version IS NOT a.os_version OR events.is_bot IS NOT a.is_bot \
                   OR events.bot_reason IS NOT a.bot_reason)",
                &[s(site_id), n(from), n(to)],
            )?
            .run()
            .await?;
        let changed = r.meta()?.and_then(|m| m.changes).unwrap_or(0) as i64;
        Ok((changed, next))
    }

    /// Puts every visitor of the site on the session queue from its first event, so the
    /// next flush rebuilds all its sessions (channels with today's lists, bot flags and
    /// segments from the re-classified events). Returns how many were queued.
    pub async fn queue_all_visitors(&self, site_id: &str) -> ApiResult<i64> {
        let r = self
            .stmt(
                "INSERT INTO session_queue (site_id, visitor_id, from_ts, version) \
                 SELECT site_id, visitor_id, first_seen, abs(random() % 9007199254740992) \
                 FROM visitors WHERE site_id = ?1 AND true \
                 ON CONFLICT (site_id, visitor_id) DO UPDATE SET \
                 from_ts = min(from_ts, excluded.from_ts), version = excluded.version",
                &[s(site_id)],
            )?
            .run()
            .await?;
        r.meta()?
            .and_then(|m| m.changes)
            .map(|c| c as i64)
            .ok_or_else(|| ApiError::internal("D1 gave no change count"))
    }
}
