//! What a site owner sees of their beacons: `GET /v1/sites/{site}/health` (read key: the
//! counts per UTC day of events accepted, rejected by reason, refused batches by reason,
//! events the trackers dropped, batches from skewed clocks, and when the last event was
//! stored; core's [`closeloop_core::health`] defines the figures) and
//! `GET /v1/sites/{site}/rejected` (write key: the bad rows themselves, which hold what
//! visitors sent, newest first, with filters and a cursor).
//!
//! Both first write what the answering isolate still holds in memory
//! ([`crate::tally::flush`]), so a refusal it saw is in the answer.

use super::{param, query_pairs};
use crate::error::{ApiError, ApiResult};
use crate::store::trust::BadRowQuery;
use crate::store::{SiteConfig, Store};
use crate::tally;
use closeloop_core::badrow::Kind;
use closeloop_core::health::{day_of, summarise};
use closeloop_core::time::format_rfc3339;
use serde_json::json;
use worker::{Request, Response};

/// Default and largest number of days the health endpoint covers.
pub const DEFAULT_DAYS: i64 = 7;
/// See [`DEFAULT_DAYS`] (the counters are kept 90 days).
pub const MAX_DAYS: i64 = 90;
/// Days whose counts the rejected list sums.
const COUNT_DAYS: i64 = 30;
/// Default and largest page of bad rows.
pub const DEFAULT_LIMIT: i64 = 50;
/// See [`DEFAULT_LIMIT`].
pub const MAX_LIMIT: i64 = 500;

fn int(pairs: &[(String, String)], name: &str, default: i64, min: i64, max: i64) -> ApiResult<i64> {
    match param(pairs, name) {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_parameter",
                    format!("`{name}` must be a whole number from {min} to {max}"),
                )
            }),
    }
}

/// Handles `GET .../health?days=N` (1 to 90, default 7: today and the days before).
pub async fn health(
    req: &Request,
    store: &Store,
    site: &SiteConfig,
    now: i64,
) -> ApiResult<Response> {
    let pairs = query_pairs(req)?;
    let days = int(&pairs, "days", DEFAULT_DAYS, 1, MAX_DAYS)?;
    tally::flush(store).await;
    let today = day_of(now);
    let from = today - days + 1;
    let h = summarise(&store.stats(&site.id, from, today).await?, from, today);
    let mut body = serde_json::to_value(&h).map_err(ApiError::internal)?;
    if let Some(obj) = body.as_object_mut() {
        obj.insert("site".into(), json!(site.id));
        obj.insert(
            "limits".into(),
            json!({
                "max_events_per_day": site.trust.max_events_per_day,
                "max_events_per_visitor_day": site.max_events_per_visitor_day,
                "bad_rows_kept": site.trust.bad_rows_kept,
                "identity_verification": site.trust.identity_secret.is_some(),
            }),
        );
    }
    Ok(Response::from_json(&body)?)
}

/// Handles `GET .../rejected?reason=&kind=event|batch&since=&limit=&cursor=`.
pub async fn rejected(
    req: &Request,
    store: &Store,
    site: &SiteConfig,
    now: i64,
) -> ApiResult<Response> {
    let pairs = query_pairs(req)?;
    let limit = int(&pairs, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let before = match param(&pairs, "cursor") {
        None => None,
        Some(_) => Some(int(&pairs, "cursor", 0, 1, i64::MAX)?),
    };
    let kind = match param(&pairs, "kind") {
        None => None,
        Some(k) => Some(
            Kind::parse(k)
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_parameter", "`kind` must be event or batch")
                })?
                .as_str()
                .to_string(),
        ),
    };
    let since = match param(&pairs, "since") {
        None => None,
        Some(v) => Some(crate::reports::parse_time("since", v)?),
    };
    let reason = param(&pairs, "reason")
        .map(|r| r.chars().take(64).collect::<String>())
        .filter(|r| r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
    if param(&pairs, "reason").is_some() && reason.is_none() {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "`reason` must be an error code such as foreign_host",
        ));
    }
    tally::flush(store).await;
    let q = BadRowQuery {
        reason,
        kind,
        since,
        before,
        limit,
    };
    let rows = store.bad_rows(&site.id, &q).await?;
    let today = day_of(now);
    let counted = summarise(
        &store.stats(&site.id, today - COUNT_DAYS + 1, today).await?,
        today - COUNT_DAYS + 1,
        today,
    );
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.seq.to_string()))
        .flatten();
    Ok(Response::from_json(&json!({
        "site": site.id,
        "kept": site.trust.bad_rows_kept,
        "counts": {
            "from": counted.from,
            "to": counted.to,
            "events": counted.totals.rejected_by_reason,
            "batches": counted.totals.refused_by_reason,
        },
        "rows": rows.iter().map(|r| json!({
            "id": r.seq,
            "at": format_rfc3339(r.at),
            "kind": r.kind,
            "reason": r.reason,
            "message": r.message,
            "event_id": r.event_id,
            "visitor_id": r.visitor_id,
            "raw": r.raw,
            "truncated": r.truncated != 0,
        })).collect::<Vec<_>>(),
        "next_cursor": next,
    }))?)
}
