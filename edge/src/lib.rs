//! The Closeloop edge: a Cloudflare Worker (workers-rs) that ingests the tracker's
//! beacons into D1 and answers the API.
//!
//! One `#[event(fetch)]` entry dispatches on method and path segments (a `match`, so
//! that paths such as `events:import` and JSON 404/405 answers need no special cases).
//! Module map:
//! - [`ingest`] — `POST /v1/collect`: validate → dedupe → enrich → classify → store.
//! - [`enrich`] — geo from `request.cf`, device / browser / OS, bots.
//! - [`touch`] — a page load's entry source and channel.
//! - [`store`] — the only module that knows SQL and KV keys.
//! - [`auth`] — keys (SHA-256 hashed, constant-time compared) and the admin token.
//! - [`admin`] — sites, origins and keys.
//! - [`reclassify`] — stored events and sessions classified again when the lists change.
//! - [`reports`] — the read API.
//! - [`api`] — events:import, conversions, spend, reports, leads, openapi.json.
//! - [`cors`], [`error`] — CORS headers; one JSON error type.

pub mod admin;
pub mod api;
pub mod archive;
pub mod auth;
pub mod cors;
pub mod engines;
pub mod enrich;
pub mod error;
pub mod ingest;
pub mod reclassify;
pub mod reports;
pub mod shard;
pub mod sqlite;
pub mod store;
pub mod touch;

use error::{ApiError, ApiResult};
use store::Store;
use worker::{event, Context, Date, Env, Method, Request, Response};

/// Runs once when an isolate instantiates the module: compiles the user-agent rules and
/// the bot lists (see BENCHMARKS.md, "Enrichment", for what it costs) so that this
/// one-off cost falls in the isolate's start-up budget instead of its first request's CPU
/// time.
#[event(start)]
pub fn start() {
    enrich::warm();
}

/// Queued visitors the cron trigger sessionises per run, in chunks of
/// [`ingest::FLUSH_CHUNK`].
const CRON_FLUSH_ROUNDS: usize = 300;

/// The cron trigger (`[triggers] crons` in wrangler.toml): the sessionisation that
/// `POST /v1/collect` deferred, then webhook deliveries.
#[event(scheduled)]
pub async fn scheduled(_event: worker::ScheduledEvent, env: Env, _ctx: worker::ScheduleContext) {
    match Store::from_env(&env) {
        Ok(store) => {
            if let Err(e) = ingest::flush_sessions(&store, None, CRON_FLUSH_ROUNDS).await {
                worker::console_error!("session flush failed: {}", e.message);
            }
        }
        Err(e) => worker::console_error!("session flush failed: {}", e.message),
    }
    api::webhooks::scheduled(&env, Date::now().as_millis() as i64).await;
}

/// The worker's entry point.
#[event(fetch)]
pub async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let now = Date::now().as_millis() as i64;
    let is_collect = req.path() == "/v1/collect";
    if is_collect && req.method() == Method::Post {
        let sender = req.headers().get("Origin").ok().flatten();
        let (result, origin) = ingest::collect(req, &env, now).await;
        let (mut resp, origin) = match result {
            Ok(r) => (r, origin),
            // An error is readable by whichever page sent the batch (its body says
            // nothing secret): the tracker must see a refusal's status to stop
            // retrying a batch refused for good (issue 12), which a browser hides
            // behind a network error without this header.
            Err(e) => (e.into_response()?, origin.or(sender)),
        };
        if let Some(o) = origin {
            cors::allow(&mut resp, &o)?;
        }
        return Ok(resp);
    }
    match route(req, &env, now).await {
        Ok(r) => Ok(r),
        Err(e) => e.into_response(),
    }
}

/// Everything but `POST /v1/collect`.
async fn route(mut req: Request, env: &Env, now: i64) -> ApiResult<Response> {
    let path = req.path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method();
    match (segments.as_slice(), &method) {
        (["v1", "health"], Method::Get) => {
            Ok(Response::from_json(&serde_json::json!({ "ok": true }))?)
        }
        (["v1", "collect"], Method::Options) => {
            let origin = req.headers().get("Origin")?;
            let allowed = match &origin {
                Some(o) => Store::from_env(env)?.some_site_allows(o).await?,
                None => false,
            };
            Ok(cors::preflight(origin.as_deref().filter(|_| allowed))?)
        }
        (["v1", "admin", rest @ ..], _) => {
            auth::check_admin(
                req.headers().get("Authorization")?,
                env.var("ADMIN_TOKEN").ok().map(|s| s.to_string()),
            )?;
            let store = Store::from_env(env)?;
            match (rest, &method) {
                (["sites"], Method::Post) => admin::create_site(&mut req, &store, now).await,
                (["sites"], Method::Get) => admin::list_sites(&store).await,
                (["sites", site, "keys"], Method::Post) => {
                    admin::add_key(&mut req, &store, site, now).await
                }
                (["sites", site, "origins"], Method::Put) => {
                    admin::set_origins(&mut req, &store, site).await
                }
                (["sites", site, "reclassify"], Method::Post) => {
                    reclassify::step(&req, &store, site).await
                }
                // what the cron trigger does first, now (operators, tests); `?site=`
                // limits it to one site
                (["sessions:flush"], Method::Post) => {
                    let url = req.url()?;
                    let site = match url.query_pairs().find(|(k, _)| k == "site") {
                        Some((_, id)) => Some(store.site(&id).await?.ok_or_else(|| {
                            ApiError::new(404, "unknown_site", format!("no site `{id}`"))
                        })?),
                        None => None,
                    };
                    let done =
                        ingest::flush_sessions(&store, site.as_ref(), CRON_FLUSH_ROUNDS).await?;
                    Ok(Response::from_json(&done)?)
                }
                (
                    ["sites"]
                    | ["sites", _, "keys"]
                    | ["sites", _, "origins"]
                    | ["sites", _, "reclassify"]
                    | ["sessions:flush"],
                    _,
                ) => Err(ApiError::method_not_allowed()),
                _ => Err(ApiError::no_route()),
            }
        }
        (["v1", "openapi.json"], Method::Get) => api::openapi::serve(),
        (["v1", "sites", site, rest @ ..], _) if api::handles(rest) => {
            api::route(&mut req, env, site, rest, now).await
        }
        (["v1", "health"] | ["v1", "collect"] | ["v1", "sites", _, "reports", "sources"], _) => {
            Err(ApiError::method_not_allowed())
        }
        _ => Err(ApiError::no_route()),
    }
}
