//! The worker's side of the shards: which shard a visitor's batch goes to, the settings
//! each request carries, and a site's traffic asked of every shard and merged. The
//! requests are the Durable Object's `fetch` with JSON bodies ([`super::object`]).

use super::msg::{
    object_name, shard_of, BatchEvent, LeadLink, RequestContext, ShardAnswer, ShardBatch,
    ShardSettings, TrafficAnswer, TrafficQuery, DEFAULT_RETENTION_DAYS,
};
use super::ShardStatus;
use crate::enrich::{Agent, Geo};
use crate::error::{ApiError, ApiResult};
use crate::store::{EventRow, LeadRow, SiteConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::{Env, Method, Request, RequestInit};

/// The Durable Object namespace of the shards (wrangler.toml).
pub const BINDING: &str = "SHARD";

/// Most shards a site may have (a site setting, 1 to this).
pub const MAX_SHARDS: u32 = 64;

/// The settings shard `shard` of `site` works with.
pub fn settings(site: &SiteConfig, shard: u32) -> ShardSettings {
    ShardSettings {
        site: site.id.clone(),
        shard,
        shards: site.shards.max(1),
        hosts: crate::trust::site_hosts(site),
        excluded: site.excluded_referrers.clone(),
        max_events_per_visitor_day: site.max_events_per_visitor_day,
        max_events_per_day: site.trust.max_events_per_day,
        retention_days: DEFAULT_RETENTION_DAYS,
        generation: 0,
    }
}

/// One visitor's batch for its shard, from what `POST /v1/collect` validated and enriched.
pub fn batch(
    site: &SiteConfig,
    visitor: &str,
    received_at: i64,
    rows: &[EventRow],
    leads: &[LeadRow],
    geo: &Geo,
    agent: &Agent,
) -> ShardBatch {
    let links = leads
        .iter()
        .map(|l| {
            let path = rows
                .iter()
                .find(|r| r.event_id == l.event_id)
                .map(|r| r.path.clone());
            LeadLink {
                may_join: l.may_join,
                ..LeadLink::of(l, path, l.method.as_str(), received_at)
            }
        })
        .collect();
    ShardBatch {
        settings: settings(site, shard_of(visitor, site.shards.max(1))),
        visitor: visitor.to_owned(),
        received_at,
        context: RequestContext::of(geo, agent),
        events: rows.iter().map(BatchEvent::of).collect(),
        links,
    }
}

/// Sends a visitor's batch to its shard.
pub async fn ingest(env: &Env, site: &SiteConfig, batch: &ShardBatch) -> ApiResult<ShardAnswer> {
    call(
        env,
        site,
        batch.settings.shard,
        Method::Post,
        "/ingest",
        Some(batch),
    )
    .await
}

/// A site's traffic: every shard asked side by side, the answers merged (a visitor lives
/// in one shard, so the sums are exact).
pub async fn traffic(env: &Env, site: &SiteConfig, q: &TrafficQuery) -> ApiResult<TrafficAnswer> {
    let asks =
        (0..site.shards.max(1)).map(|n| call(env, site, n, Method::Post, "/traffic", Some(q)));
    let parts = futures_util::future::try_join_all(asks).await?;
    Ok(TrafficAnswer::merge(&parts))
}

/// Every shard's counts, in shard order.
pub async fn status(env: &Env, site: &SiteConfig) -> ApiResult<Vec<ShardStatus>> {
    let asks = (0..site.shards.max(1))
        .map(|n| call::<(), ShardStatus>(env, site, n, Method::Get, "/status", None));
    futures_util::future::try_join_all(asks).await
}

async fn call<B: Serialize, T: DeserializeOwned>(
    env: &Env,
    site: &SiteConfig,
    shard: u32,
    method: Method,
    path: &str,
    body: Option<&B>,
) -> ApiResult<T> {
    let namespace = env.durable_object(BINDING)?;
    let stub = namespace.get_by_name(&object_name(&site.id, shard, site.shards.max(1), 0))?;
    let mut init = RequestInit::new();
    init.with_method(method);
    if let Some(b) = body {
        let text = serde_json::to_string(b).map_err(ApiError::internal)?;
        init.with_body(Some(wasm_bindgen::JsValue::from_str(&text)));
    }
    let req = Request::new_with_init(&format!("https://shard{path}"), &init)?;
    let mut resp = stub.fetch_with_request(req).await?;
    let status = resp.status_code();
    let text = resp.text().await?;
    if status != 200 {
        // the shard's error body is `{"error": {"code", "message"}}`
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let code = v["error"]["code"]
            .as_str()
            .unwrap_or("shard_failed")
            .to_owned();
        let message = v["error"]["message"]
            .as_str()
            .unwrap_or("the shard failed")
            .to_owned();
        return Err(if status == 400 {
            ApiError::bad_request("invalid_request", message)
        } else {
            ApiError::internal(format!("shard {shard}: {code}: {message}"))
        });
    }
    serde_json::from_str(&text).map_err(ApiError::internal)
}
