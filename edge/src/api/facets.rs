//! `GET /v1/sites/{site}/reports/facets` (read key): what the site has data for — the span
//! of its sessions and conversions (all time), the conversion kinds it has sent (`lead`,
//! `customer` and each CRM stage, for a conversion picker), and the values of every segment
//! dimension among the sessions of `[from, to)` (default: the 30 days before now), most
//! sessions first. A dashboard offers only what exists, and opens on a range that holds data
//! when the last 30 days hold none.

use super::query_pairs;
use super::reports::read_query;
use crate::error::ApiResult;
use crate::store::catalog::DIMENSIONS;
use crate::store::{SiteConfig, Store};
use closeloop_core::time::format_rfc3339;
use serde_json::{json, Map, Value};
use worker::{Request, Response};

/// Handles `GET .../reports/facets?from=&to=&include_bots=`.
pub async fn facets(
    req: &Request,
    store: &Store,
    site: &SiteConfig,
    now: i64,
) -> ApiResult<Response> {
    let pairs = query_pairs(req)?;
    let query = read_query(&pairs, now)?;
    let f = store
        .facets(&site.id, query.from, query.to, query.include_bots)
        .await?;
    let time = |t: Option<i64>| t.map_or(Value::Null, |t| json!(format_rfc3339(t)));
    let first_conversion = f.kinds.iter().map(|k| k.first).min();
    let last_conversion = f.kinds.iter().map(|k| k.last).max();
    let mut values = Map::new();
    for ((name, _), list) in DIMENSIONS.iter().zip(&f.values) {
        values.insert(
            (*name).to_string(),
            Value::Array(
                list.iter()
                    .map(|v| json!({"value": v.value, "sessions": v.sessions}))
                    .collect(),
            ),
        );
    }
    Ok(Response::from_json(&json!({
        "site": site.id,
        "currency": site.currency,
        "query": {
            "from": format_rfc3339(query.from),
            "to": format_rfc3339(query.to),
            "include_bots": query.include_bots,
        },
        "data": {
            "sessions": f.sessions.sessions,
            "first_session": time(f.sessions.first),
            "last_session": time(f.sessions.last),
            "first_conversion": time(first_conversion),
            "last_conversion": time(last_conversion),
        },
        "conversion_kinds": f.kinds.iter().map(|k| json!({
            "kind": k.kind,
            "conversions": k.conversions,
            "first": format_rfc3339(k.first),
            "last": format_rfc3339(k.last),
        })).collect::<Vec<_>>(),
        "values": values,
    }))?)
}
