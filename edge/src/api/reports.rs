//! `GET /v1/sites/{site}/reports/{sources,pages,timeseries}` (read key): the query string
//! is read by `closeloop_core::report::Query::from_pairs`, the rows by the store (only the
//! range and its lookback), and every figure comes from `closeloop_core::report`'s
//! definitions. The sources report has the store count traffic in SQL
//! ([`Store::sources_data`], as core's `Counted::of` defines it) and read only the leads'
//! sessions and the conversions, which core attributes (`sources_counted`); the pages report
//! has the store count every figure per page ([`Store::pages_data`], as core's
//! `PageCount::of` defines them: views, entrances, assists, direct conversions), which core
//! only sorts (`pages_counted`); the timeseries reads every session of the range
//! ([`Store::report_data`]).

use super::{param, query_pairs};
use crate::error::{ApiError, ApiResult};
use crate::store::reporting::RowDims;
use crate::store::{SiteConfig, Store};
use closeloop_core::report::{self, PageSort, Query};
use closeloop_core::time::Granularity;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use worker::{Env, Request, Response};

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
    env: &Env,
    store: &Store,
    site: &SiteConfig,
    now: i64,
) -> ApiResult<Response> {
    let pairs = query_pairs(req)?;
    let mut query = read_query(&pairs, now)?;
    if site.shards > 0 {
        query = on_hours(&pairs, query)?;
    }
    let mut data = store.sources_data(&site.id, &query).await?;
    if site.shards > 0 {
        // the traffic from the shards' rollups; D1 holds only the leads' sessions (the
        // directory), which the credited figures need
        let q = crate::shard::msg::TrafficQuery::of(&query);
        data.counted = crate::shard::client::traffic(env, site, &q)
            .await?
            .traffic
            .counted;
        data.dims = Vec::new();
    }
    let r = report::sources_counted(&data.leads, &data.counted, &query);
    let mut rows = serde_json::to_value(&r.rows).map_err(ApiError::internal)?;
    add_dimensions(&mut rows, &data.dims);
    Ok(Response::from_json(&json!({
        "site": site.id,
        "currency": site.currency,
        "query": r.query,
        "rows": rows,
        "totals": r.totals,
        "spend_reconciliation": r.spend_reconciliation,
    }))?)
}

/// Adds to each row the touch fields (`channel`, `source`, `medium`, `campaign`) that
/// all of the row's sessions in the range (in the segment, bots only when asked) share, so
/// a `campaign` row also says its source and medium when it has one (a campaign shared as
/// "none" is `null`). The store finds them with the row's traffic ([`RowDims`]). Additive:
/// rows stay core's `SourceRow`.
pub fn add_dimensions(rows: &mut Value, dims: &[RowDims]) {
    let by_key: BTreeMap<&str, &RowDims> = dims.iter().map(|d| (d.key.as_str(), d)).collect();
    let Some(list) = rows.as_array_mut() else {
        return;
    };
    for row in list {
        let Some(obj) = row.as_object_mut() else {
            continue;
        };
        let Some(d) = obj
            .get("key")
            .and_then(Value::as_str)
            .and_then(|k| by_key.get(k))
        else {
            continue;
        };
        for (name, value) in [
            ("channel", d.channel.as_ref().map(|v| json!(v))),
            ("source", d.source.as_ref().map(|v| json!(v))),
            ("medium", d.medium.as_ref().map(|v| json!(v))),
            ("campaign", d.campaign.as_ref().map(|v| json!(v))),
        ] {
            if let Some(v) = value {
                obj.insert(name.to_string(), v);
            }
        }
    }
}

/// Handles `GET .../reports/pages` (`sort`, `order` besides the report parameters).
pub async fn pages(
    req: &Request,
    env: &Env,
    store: &Store,
    site: &SiteConfig,
    now: i64,
) -> ApiResult<Response> {
    let pairs = query_pairs(req)?;
    let mut query = read_query(&pairs, now)?;
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
    let rows = if site.shards > 0 {
        // views, entrances and exits from the shards' rollups; assists and direct
        // conversions from the leads' sessions and page views in D1 (the directory)
        query = on_hours(&pairs, query)?;
        let mut q = crate::shard::msg::TrafficQuery::of(&query);
        q.pages = true;
        let answer = crate::shard::client::traffic(env, site, &q).await?;
        let lookback = query.params().lookback_ms;
        let mut leads = store
            .report_data(&site.id, query.from, query.to, lookback, false)
            .await?;
        leads.pageviews = store
            .journey_pageviews(&site.id, query.from.saturating_sub(lookback), query.to)
            .await?;
        closeloop_core::rollup::answer::pages_from(
            &answer.pages.unwrap_or_default(),
            &leads,
            &query,
            sort,
            descending,
        )
    } else {
        let counted = store.pages_data(&site.id, &query).await?;
        report::pages_counted(&counted, sort, descending)
    };
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
    env: &Env,
    store: &Store,
    site: &SiteConfig,
    now: i64,
) -> ApiResult<Response> {
    let pairs = query_pairs(req)?;
    let mut query = read_query(&pairs, now)?;
    if site.shards > 0 {
        query = on_hours(&pairs, query)?;
    }
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
    let points = if site.shards > 0 {
        // the traffic of each bucket from the shards' rollups; the credited figures from
        // the leads' sessions and conversions, which are all D1 holds of such a site
        let mut q = crate::shard::msg::TrafficQuery::of(&query);
        q.granularity = Some(granularity.as_str().to_owned());
        q.max_buckets = MAX_BUCKETS;
        let answer = crate::shard::client::traffic(env, site, &q).await?;
        report::timeseries_counted(
            &data,
            &answer.traffic.counted.steps,
            |from, to| {
                answer
                    .buckets
                    .iter()
                    .find(|b| b.from == from && b.to == to)
                    .map(|b| b.traffic.counted.clone())
                    .unwrap_or_default()
            },
            &query,
            granularity,
            MAX_BUCKETS,
        )
    } else {
        report::timeseries(&data, &query, granularity, MAX_BUCKETS)
    };
    Ok(Response::from_json(&json!({
        "site": site.id,
        "currency": site.currency,
        "query": query,
        "granularity": granularity.as_str(),
        "points": points,
    }))?)
}

/// Handles `GET .../reports/traffic`: visitors, sessions and page views per row key over
/// the range, in the segment (no credited figure). A site in D1 counts them in SQL as the
/// sources report does ([`Store::sources_data`]); a site in shards (issue 14) asks every
/// shard for its rollups and adds them up (`crate::shard::client::traffic`; the range must
/// then be on whole hours, as the rollups are kept per hour).
pub async fn traffic(
    req: &Request,
    env: &Env,
    store: &Store,
    site: &SiteConfig,
    now: i64,
) -> ApiResult<Response> {
    let pairs = query_pairs(req)?;
    let mut query = read_query(&pairs, now)?;
    if site.shards > 0 {
        query = on_hours(&pairs, query)?;
    }
    let (counted, visitors_exact) = if site.shards > 0 {
        let q = crate::shard::msg::TrafficQuery::of(&query);
        let answer = crate::shard::client::traffic(env, site, &q).await?;
        (answer.traffic.counted, answer.traffic.visitors_exact)
    } else {
        (store.sources_data(&site.id, &query).await?.counted, true)
    };
    Ok(Response::from_json(&json!({
        "site": site.id,
        "query": {
            "from": closeloop_core::time::format_rfc3339(query.from),
            "to": closeloop_core::time::format_rfc3339(query.to),
            "group_by": query.group_by,
        },
        "storage": if site.shards > 0 { "shards" } else { "d1" },
        "shards": site.shards,
        "visitors": counted.visitors,
        "visitors_exact": visitors_exact,
        "rows": counted.rows,
    }))?)
}

/// The range of a report of a site kept in shards, whose rollups count whole hours: a
/// bound left out (the default range, ending now) is widened to the hour (nothing is
/// stored after now); a bound given must be on the hour (400 `invalid_parameter`).
pub fn on_hours(pairs: &[(String, String)], mut q: Query) -> ApiResult<Query> {
    const HOUR: i64 = 3_600_000;
    for name in ["from", "to"] {
        let given = param(pairs, name).is_some();
        let v = if name == "from" {
            &mut q.from
        } else {
            &mut q.to
        };
        if v.rem_euclid(HOUR) == 0 {
            continue;
        }
        if given {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!(
                    "`{name}` must be on the hour: this site's traffic is kept in hourly rollups"
                ),
            ));
        }
        *v = if name == "from" {
            v.div_euclid(HOUR) * HOUR
        } else {
            (v.div_euclid(HOUR) + 1) * HOUR
        };
    }
    Ok(q)
}
