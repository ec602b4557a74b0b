//! `GET /v1/sites/{site}/reports/bots` (read key): why traffic was left out of the
//! reports. The range's flagged events grouped by reason — the list and pattern that
//! matched (`crawler-user-agents:Googlebot\/`, `isbot:headless`...), Cloudflare's signal,
//! Client Hints (`client-hints:HeadlessChrome`) or an import's word — with their
//! visitors, sessions, first and last time and one user agent, beside the range's
//! event counts and the lists compiled into this worker (name, version, licence, date).

use super::{param, query_pairs};
use crate::error::ApiResult;
use crate::reports::parse_time;
use crate::store::{SiteConfig, Store};
use closeloop_core::time::{format_rfc3339, MS_PER_DAY};
use serde_json::json;
use worker::{Request, Response};

/// Default range: the last 30 days, as the other reports.
const DEFAULT_DAYS: i64 = 30;

/// Handles `GET .../reports/bots` (`from`, `to`: RFC 3339 or `YYYY-MM-DD`).
pub async fn report(
    req: &Request,
    store: &Store,
    site: &SiteConfig,
    now: i64,
) -> ApiResult<Response> {
    let pairs = query_pairs(req)?;
    let to = match param(&pairs, "to") {
        Some(v) => parse_time("to", v)?,
        None => now + 1,
    };
    let from = match param(&pairs, "from") {
        Some(v) => parse_time("from", v)?,
        None => to - DEFAULT_DAYS * MS_PER_DAY,
    };
    if from >= to {
        return Err(crate::error::ApiError::bad_request(
            "invalid_parameter",
            "`from` must be before `to`",
        ));
    }
    let (rows, events, bot_events) = store.bots_report(&site.id, from, to).await?;
    let rows: Vec<_> = rows
        .into_iter()
        .map(|r| {
            let (list, pattern) = match r.reason.split_once(':') {
                Some((l, p)) if r.reason != "(not recorded)" => {
                    (Some(l.to_string()), Some(p.to_string()))
                }
                _ => (None, None),
            };
            json!({
                "reason": r.reason,
                "list": list,
                "pattern": pattern,
                "events": r.events,
                "visitors": r.visitors,
                "sessions": r.sessions,
                "first_seen": format_rfc3339(r.first_seen),
                "last_seen": format_rfc3339(r.last_seen),
                "user_agent": r.user_agent,
            })
        })
        .collect();
    let lists: Vec<_> = closeloop_core::bots::lists()
        .iter()
        .map(|l| {
            json!({
                "name": l.name, "registry": l.registry, "version": l.version,
                "licence": l.licence, "retrieved": l.retrieved, "patterns": l.patterns,
            })
        })
        .collect();
    Ok(Response::from_json(&json!({
        "site": site.id,
        "from": format_rfc3339(from),
        "to": format_rfc3339(to),
        "events": events,
        "bot_events": bot_events,
        "rows": rows,
        "lists": lists,
    }))?)
}
