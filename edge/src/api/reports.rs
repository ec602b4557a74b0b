//! `GET /v1/sites/{site}/reports/{sources,pages,timeseries}` (read key): the query string
//! is read by `closeloop_core::report::Query::from_pairs`, the rows by
//! [`Store::report_data`] (only the range and its lookback), and every figure comes from
//! `closeloop_core::report`.

use super::{param, query_pairs};
use crate::error::{ApiError, ApiResult};
use crate::store::{SiteConfig, Store};
use closeloop_core::report::{self, GroupBy, PageSort, Query, ReportData, SessionRow, NOT_SET};
use closeloop_core::time::Granularity;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use worker::{Request, Response};

/// Most buckets a timeseries may have (a longer range is refused).
pub const MAX_BUCKETS: usize = 400;

/// Reads the report query (400 `invalid_parameter` when a parameter is wrong).
pub fn read_query(pairs: &[(String, String)], now: i64) -> ApiResult<Query> {
    Query::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), now)
        .map_err(|e| ApiError::bad_request("invalid_parameter", e.message))
}

/// Handles `GET .../reports/sources`.
pub async fn sources(
    req: &Request,
    store: &Store,
    site: &SiteConfig,
    now: i64,
) -> ApiResult<Response> {
    let pairs = query_pairs(req)?;
    let query = read_query(&pairs, now)?;
    let data = store
        .report_data(
            &site.id,
            query.from,
            query.to,
            query.params().lookback_ms,
            false,
        )
        .await?;
    let r = report::sources(&data, &query);
    let mut rows = serde_json::to_value(&r.rows).map_err(ApiError::internal)?;
    add_dimensions(&mut rows, &data, &query);
    Ok(Response::from_json(&json!({
        "site": site.id,
        "currency": site.currency,
        "query": r.query,
        "rows": rows,
        "totals": r.totals,
    }))?)
}

/// A session's row key under `group_by` (core's rule).
fn key_of(group_by: GroupBy, s: &SessionRow) -> &str {
    match group_by {
        GroupBy::Channel => &s.channel,
        GroupBy::Source => &s.source,
        GroupBy::Medium => &s.medium,
        GroupBy::Campaign => s.campaign.as_deref().unwrap_or(NOT_SET),
        GroupBy::LandingPage => &s.landing_page,
    }
}

/// Adds to each row the touch fields (`channel`, `source`, `medium`, `campaign`) that
/// all of the row's sessions in the range share, so a `campaign` row also says its
/// source and medium when it has one. Additive: rows stay core's `SourceRow`.
pub fn add_dimensions(rows: &mut Value, data: &ReportData, query: &Query) {
    type Dims = [Option<Option<String>>; 4];
    let mut by_key: BTreeMap<String, Dims> = BTreeMap::new();
    let mut mixed: BTreeMap<String, [bool; 4]> = BTreeMap::new();
    for s in &data.sessions {
        if s.started_at < query.from
            || s.started_at >= query.to
            || (s.is_bot && !query.include_bots)
            || !query.filters.matches(s)
        {
            continue;
        }
        let key = key_of(query.group_by, s).to_string();
        let values = [
            Some(s.channel.clone()),
            Some(s.source.clone()),
            Some(s.medium.clone()),
            s.campaign.clone(),
        ];
        let dims = by_key.entry(key.clone()).or_default();
        let flags = mixed.entry(key).or_default();
        for (i, v) in values.into_iter().enumerate() {
            if let (Some(slot), Some(flag)) = (dims.get_mut(i), flags.get_mut(i)) {
                match slot {
                    None => *slot = Some(v),
                    Some(have) if *have != v => *flag = true,
                    Some(_) => {}
                }
            }
        }
    }
    let Some(list) = rows.as_array_mut() else {
        return;
    };
    for row in list {
        let Some(obj) = row.as_object_mut() else {
            continue;
        };
        let Some(key) = obj.get("key").and_then(Value::as_str).map(String::from) else {
            continue;
        };
        let (Some(dims), Some(flags)) = (by_key.get(&key), mixed.get(&key)) else {
            continue;
        };
        for (i, name) in ["channel", "source", "medium", "campaign"]
            .iter()
            .enumerate()
        {
            if let (Some(Some(v)), Some(false)) = (dims.get(i), flags.get(i)) {
                obj.insert((*name).to_string(), json!(v));
            }
        }
    }
}

/// Handles `GET .../reports/pages` (`sort`, `order` besides the report parameters).
pub async fn pages(
    req: &Request,
    store: &Store,
    site: &SiteConfig,
    now: i64,
) -> ApiResult<Response> {
    let pairs = query_pairs(req)?;
    let query = read_query(&pairs, now)?;
    let sort: PageSort = match param(&pairs, "sort") {
        Some(s) => s.parse().map_err(|e: report::QueryError| {
            ApiError::bad_request("invalid_parameter", e.message)
        })?,
        None => PageSort::default(),
    };
    let descending = match param(&pairs, "order") {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                "`order` must be asc or desc",
            ))
        }
    };
    let data = store
        .report_data(
            &site.id,
            query.from,
            query.to,
            query.params().lookback_ms,
            true,
        )
        .await?;
    let rows = report::pages(&data, &query, sort, descending);
    Ok(Response::from_json(&json!({
        "site": site.id,
        "currency": site.currency,
        "query": query,
        "sort": sort,
        "order": if descending { "desc" } else { "asc" },
        "rows": rows,
    }))?)
}

/// Handles `GET .../reports/timeseries` (`granularity` = `day` (default) or `week`).
pub async fn timeseries(
    req: &Request,
    store: &Store,
    site: &SiteConfig,
    now: i64,
) -> ApiResult<Response> {
    let pairs = query_pairs(req)?;
    let query = read_query(&pairs, now)?;
    let granularity = match param(&pairs, "granularity") {
        None => Granularity::Day,
        Some(g) => Granularity::parse(g).ok_or_else(|| {
            ApiError::bad_request("invalid_parameter", "`granularity` must be day or week")
        })?,
    };
    let buckets = granularity
        .bucket_starts(query.from, query.to, MAX_BUCKETS + 1)
        .len();
    if buckets > MAX_BUCKETS {
        return Err(ApiError::bad_request(
            "range_too_long",
            format!(
                "the range has more than {MAX_BUCKETS} {}s",
                granularity.as_str()
            ),
        ));
    }
    let data = store
        .report_data(
            &site.id,
            query.from,
            query.to,
            query.params().lookback_ms,
            false,
        )
        .await?;
    let points = report::timeseries(&data, &query, granularity, MAX_BUCKETS);
    Ok(Response::from_json(&json!({
        "site": site.id,
        "currency": site.currency,
        "query": query,
        "granularity": granularity.as_str(),
        "points": points,
    }))?)
}
