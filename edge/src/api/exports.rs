//! `GET /v1/sites/{site}/exports` and `GET .../exports/file` (write key, as every raw read:
//! the archive holds what visitors sent): a warehouse lists the site's raw archive objects
//! of a range of UTC days, then reads each as NDJSON, one accepted event a line
//! (`shard::engine::ArchivedEvent`). The objects are written by the shards' alarms
//! ([`crate::shard::object`]) into the `ARCHIVE` R2 bucket, partitioned by site and day
//! ([`crate::archive`]). A site kept in D1 has no archive: its list is empty.

use super::{param, query_pairs};
use crate::archive::{day_prefix, site_prefix, ArchiveSink};
use crate::error::{ApiError, ApiResult};
use crate::store::SiteConfig;
use closeloop_core::rollup::DAY_MS;
use closeloop_core::time::{format_date, parse_date};
use serde_json::json;
use worker::{Env, Request, Response};

/// Most days one listing covers.
pub const MAX_DAYS: i64 = 92;
/// Most objects one listing answers (`next` says where the next page starts).
pub const MAX_OBJECTS: usize = 1_000;

fn day_param(pairs: &[(String, String)], name: &str) -> ApiResult<i64> {
    let v = param(pairs, name).ok_or_else(|| {
        ApiError::bad_request("invalid_parameter", format!("`{name}` is required"))
    })?;
    parse_date(v).map_err(|_| {
        ApiError::bad_request(
            "invalid_parameter",
            format!("`{name}` must be a YYYY-MM-DD date"),
        )
    })
}

#[cfg(target_arch = "wasm32")]
fn sink(env: &Env) -> ApiResult<crate::archive::R2Archive> {
    crate::archive::R2Archive::from_env(env, "ARCHIVE").map_err(ApiError::internal)
}

/// Outside the worker (the edge's native unit tests) there is no R2.
#[cfg(not(target_arch = "wasm32"))]
fn sink(_env: &Env) -> ApiResult<crate::archive::MemoryArchive> {
    Err(ApiError::internal("no R2 bucket outside the worker"))
}

/// `GET .../exports?from=YYYY-MM-DD&to=YYYY-MM-DD[&after=KEY]`: the objects of days
/// `[from, to)`, by name (day, then shard and queue number), at most [`MAX_OBJECTS`];
/// `next` is the `after` of the next page (`null`: the list is complete).
pub async fn list(req: &Request, env: &Env, site: &SiteConfig) -> ApiResult<Response> {
    let pairs = query_pairs(req)?;
    let from = day_param(&pairs, "from")?;
    let to = day_param(&pairs, "to")?;
    if to <= from || (to - from) / DAY_MS > MAX_DAYS {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("`to` must be after `from`, by at most {MAX_DAYS} days"),
        ));
    }
    let after = param(&pairs, "after").map(str::to_owned);
    if let Some(a) = &after {
        if !a.starts_with(&site_prefix(&site.id)) {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                "`after` must be an object of this site",
            ));
        }
    }
    let mut objects: Vec<String> = Vec::new();
    let mut next = None;
    if site.shards > 0 {
        let archive = sink(env)?;
        let mut day = from;
        'days: while day < to {
            let prefix = day_prefix(&site.id, &format_date(day));
            // pages of this day's objects after `after` (an earlier day's key sorts first)
            let mut cursor = after.clone().filter(|a| a.as_str() > prefix.as_str());
            loop {
                let room = MAX_OBJECTS - objects.len();
                let (keys, more) = archive
                    .list(&prefix, cursor.as_deref(), room)
                    .await
                    .map_err(ApiError::internal)?;
                cursor = keys.last().cloned();
                objects.extend(keys);
                if objects.len() >= MAX_OBJECTS {
                    if more || day + DAY_MS < to {
                        next = objects.last().cloned();
                    }
                    break 'days;
                }
                if !more {
                    break;
                }
            }
            day += DAY_MS;
        }
    }
    Ok(Response::from_json(&json!({
        "site": site.id,
        "from": format_date(from),
        "to": format_date(to),
        "objects": objects
            .iter()
            .map(|k| json!({ "key": k }))
            .collect::<Vec<_>>(),
        "next": next,
    }))?)
}

/// `GET .../exports/file?key=KEY`: one archive object of this site, as NDJSON (404
/// `not_found` for a key that is not one of this site's objects).
pub async fn file(req: &Request, env: &Env, site: &SiteConfig) -> ApiResult<Response> {
    let pairs = query_pairs(req)?;
    let key = param(&pairs, "key")
        .ok_or_else(|| ApiError::bad_request("invalid_parameter", "`key` is required"))?;
    let not_found = || ApiError::new(404, "not_found", format!("no archive object `{key}`"));
    // another site's objects are never read, whatever the key says
    if !key.starts_with(&site_prefix(&site.id)) || key.contains("..") {
        return Err(not_found());
    }
    let body = sink(env)?
        .get(key)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(not_found)?;
    let mut resp = Response::ok(body)?;
    resp.headers_mut()
        .set("Content-Type", "application/x-ndjson")?;
    Ok(resp)
}
