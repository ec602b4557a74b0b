//! `POST /v1/admin/sites/{site}/reclassify` (admin token): when the lists compiled into
//! the worker change (`cargo xtask refresh-lists`, a new deploy), a site's stored events
//! and sessions are classified again, and every report follows.
//!
//! The work is done in bounded steps, one per request, each answering the `cursor` of
//! the next (`cargo xtask site reclassify SITE` calls until `done`):
//! 1. `agents:<after>` — up to [`AGENTS_PER_STEP`] of the site's stored user agents (with
//!    their Client Hints) are parsed again by `closeloop_core::agent` and their
//!    classification rewritten;
//! 2. `events:<from>` — each agent's classification is copied onto the site's events, a
//!    time window of at most 5,000 events per step; events Cloudflare flagged keep their
//!    flag (a fact of that request), and events an import's context classified, or
//!    stored before migration 0013, have no agent and keep theirs;
//! 3. `sessions` — every visitor is queued for sessionisation from its first event, so
//!    the next flush (the cron trigger, any report, or `POST /v1/admin/sessions:flush`)
//!    rebuilds all sessions: channels with today's referrer lists, bot flags and segments
//!    from the re-classified events.

use crate::enrich;
use crate::error::{ApiError, ApiResult};
use crate::store::Store;
use serde_json::json;
use worker::{Request, Response};

/// Agents parsed again per step (each costs ~30-100 µs of CPU in the worker).
pub const AGENTS_PER_STEP: i64 = 50;

/// One step, from `cursor` (absent: the start).
pub async fn step(req: &Request, store: &Store, site_id: &str) -> ApiResult<Response> {
    let site = store
        .site(site_id)
        .await?
        .ok_or_else(|| ApiError::new(404, "unknown_site", format!("no site `{site_id}`")))?;
    let url = req.url()?;
    let cursor = url
        .query_pairs()
        .find(|(k, _)| k == "cursor")
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| "agents:".into());
    let bad = || {
        ApiError::bad_request(
            "invalid_cursor",
            "`cursor` must be one this endpoint answered (agents:…, events:…, sessions)",
        )
    };
    let (phase, arg) = cursor.split_once(':').unwrap_or((cursor.as_str(), ""));
    let mut agents = 0;
    let mut agents_changed = 0;
    let mut events_updated = 0;
    let mut visitors_queued = 0;
    let next: Option<String> = match phase {
        "agents" => {
            let batch = store.agents_after(&site.id, arg, AGENTS_PER_STEP).await?;
            let classes: Vec<(String, enrich::Agent)> = batch
                .iter()
                .map(|a| {
                    (
                        a.agent_id.clone(),
                        enrich::agent_from_stored(&a.user_agent, &a.hints),
                    )
                })
                .collect();
            agents = classes.len();
            agents_changed = store.write_agent_classes(&site.id, &classes).await?;
            Some(match batch.last() {
                Some(last) if batch.len() as i64 == AGENTS_PER_STEP => {
                    format!("agents:{}", last.agent_id)
                }
                _ => format!("events:{}", i64::MIN),
            })
        }
        "events" => {
            let from: i64 = arg.parse().map_err(|_| bad())?;
            let (changed, next) = store.reclassify_events_window(&site.id, from).await?;
            events_updated = changed;
            Some(match next {
                Some(ts) => format!("events:{ts}"),
                None => "sessions".into(),
            })
        }
        "sessions" if arg.is_empty() => {
            visitors_queued = store.queue_all_visitors(&site.id).await?;
            None
        }
        _ => return Err(bad()),
    };
    Ok(Response::from_json(&json!({
        "site": site.id,
        "phase": phase,
        "agents": agents,
        "agents_changed": agents_changed,
        "events_updated": events_updated,
        "visitors_queued": visitors_queued,
        "done": next.is_none(),
        "cursor": next,
    }))?)
}
