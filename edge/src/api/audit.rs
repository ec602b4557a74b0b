//! The audit log: `GET /v1/sites/{site}/audit` (manage key, that site's entries) and
//! `GET /v1/admin/audit?site=` (admin token, every site or one). Newest first, paged with
//! `before` (the `seq` of the last entry seen; the answer's `next_before`) and `limit`
//! (default 100, at most 1000).

use super::{param, query_pairs};
use crate::error::{ApiError, ApiResult};
use crate::store::audit::AuditEntry;
use crate::store::{SiteConfig, Store};
use closeloop_core::time::format_rfc3339;
use serde_json::{json, Value};
use worker::{Request, Response};

/// Default page size.
pub const DEFAULT_LIMIT: i64 = 100;
/// Largest page size.
pub const MAX_LIMIT: i64 = 1_000;

fn entry_json(e: &AuditEntry) -> Value {
    json!({
        "seq": e.seq,
        "site": e.site_id,
        "at": format_rfc3339(e.at),
        "actor": e.actor,
        "action": e.action,
        "target": e.target,
        "detail": serde_json::from_str::<Value>(&e.detail).unwrap_or_else(|_| json!({})),
    })
}

/// Answers a page of entries of `site` (or of every site).
pub async fn page(req: &Request, store: &Store, site: Option<&str>) -> ApiResult<Response> {
    let pairs = query_pairs(req)?;
    let int = |name: &str| -> ApiResult<Option<i64>> {
        param(&pairs, name)
            .map(|v| {
                v.parse::<i64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_parameter",
                        format!("`{name}` must be a whole number of at least 1"),
                    )
                })
            })
            .transpose()
    };
    // more than the document's maximum is refused, not cut (found by the schema fuzz)
    let limit = int("limit")?.unwrap_or(DEFAULT_LIMIT);
    if limit > MAX_LIMIT {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("`limit` must be at most {MAX_LIMIT}"),
        ));
    }
    let before = int("before")?;
    let entries = store.audit_log(site, before, limit).await?;
    let next = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(Response::from_json(&json!({
        "entries": entries.iter().map(entry_json).collect::<Vec<_>>(),
        "next_before": next,
    }))?)
}

/// Handles `GET /v1/sites/{site}/audit`.
pub async fn site(req: &Request, store: &Store, site: &SiteConfig) -> ApiResult<Response> {
    page(req, store, Some(&site.id)).await
}
