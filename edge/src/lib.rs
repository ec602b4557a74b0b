//! The Closeloop edge: a Cloudflare Worker (workers-rs) that ingests the tracker's
//! beacons into D1 and answers the API.
//!
//! One `#[event(fetch)]` entry dispatches on method and path segments (a `match`, so
//! that paths such as `events:import` and JSON 404/405 answers need no special cases).
//! Module map:
//! - [`collect`] — `POST /v1/collect`, the handler; [`ingest`] — its stages: validate →
//!   dedupe → enrich → classify → store.
//! - [`trust`] — what a beacon may do: origin, hosts, identities, leads, bad rows.
//! - [`limits`], [`tally`] — rate limits; refusal counts and bad rows at a bounded cost.
//! - [`body`] — the one bounded body reader every handler uses.
//! - [`enrich`] — geo from `request.cf`, device / browser / OS, bots.
//! - [`touch`] — a page load's entry source and channel.
//! - [`store`] — the only module that knows SQL and KV keys.
//! - [`auth`] — keys (SHA-256 hashed, constant-time compared) and the admin token.
//! - [`admin`] — sites, origins, privacy settings, keys, the audit log.
//! - [`privacy`] — GPC, URL cleaning and geo minimisation before anything is stored.
//! - [`delivery`], [`cron`] — webhook deliveries; the cron trigger's bounded work.
//! - [`reclassify`] — stored events and sessions classified again when the lists change.
//! - [`reports`] — the read API.
//! - [`api`] — events:import, conversions, spend, reports, leads, openapi.json.
//! - [`cors`], [`error`] — CORS headers; one JSON error type.

pub mod admin;
pub mod api;
pub mod archive;
pub mod auth;
pub mod body;
pub mod collect;
pub mod cors;
pub mod cron;
pub mod delivery;
pub mod directory;
pub mod engines;
pub mod enrich;
pub mod error;
pub mod ingest;
pub mod limits;
pub mod privacy;
pub mod reclassify;
pub mod reports;
pub mod shard;
pub mod sqlite;
pub mod store;
pub mod tally;
pub mod touch;
pub mod trust;

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
pub(crate) const CRON_FLUSH_ROUNDS: usize = 300;

/// Most rows of each counter table the cron trigger deletes per run (a day's visitor
/// counters of a busy deployment take a few runs; they are only read for today).
pub(crate) const PRUNE_ROWS: i64 = 20_000;

/// The cron trigger (`[triggers] crons` in wrangler.toml): the sessionisation that
/// `POST /v1/collect` deferred, then webhook deliveries, within D1's statements per
/// invocation ([`cron::run`]).
#[event(scheduled)]
pub async fn scheduled(_event: worker::ScheduledEvent, env: Env, _ctx: worker::ScheduleContext) {
    let result = match Store::from_env(&env) {
        Ok(store) => cron::run(&store, &env, Date::now().as_millis() as i64)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        worker::console_error!("cron run failed: {}", e.message);
    }
}

/// The worker's entry point.
#[event(fetch)]
pub async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let now = Date::now().as_millis() as i64;
    // workers-rs reads a method it does not know (`QUERY`, `FOO`) as GET: such a request
    // is refused here, before any route sees it (found by the schema fuzz)
    if !known_method(&req.inner().method()) {
        let path = req.path();
        let mut resp = match allowed_methods(&path) {
            Some(methods) => {
                let mut r = ApiError::method_not_allowed().into_response()?;
                r.headers_mut().set("Allow", &methods)?;
                r
            }
            None => ApiError::no_route().into_response()?,
        };
        if let Some(o) = req.headers().get("Origin").ok().flatten() {
            if path == "/v1/collect" {
                cors::allow(&mut resp, &o)?;
            }
        }
        return Ok(resp);
    }
    let is_collect = req.path() == "/v1/collect";
    if is_collect && req.method() == Method::Post {
        let sender = req.headers().get("Origin").ok().flatten();
        let (result, origin) = collect::collect(req, &env, &ctx, now).await;
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
    let path = req.path();
    let mut resp = match route(req, &env, now).await {
        Ok(r) => r,
        Err(e) => e.into_response()?,
    };
    if resp.status_code() == 405 {
        // RFC 9110: a 405 says which methods the path takes (found by the schema fuzz)
        if let Some(methods) = allowed_methods(&path) {
            resp.headers_mut().set("Allow", &methods)?;
        }
    }
    Ok(resp)
}

/// Whether `method` is one workers-rs names (it reads any other as GET).
fn known_method(method: &str) -> bool {
    Method::all()
        .iter()
        .any(|m| m.as_ref().eq_ignore_ascii_case(method))
}

/// The methods each path of the HTTP surface takes (`docs/openapi.json`; the e2e tests
/// check the two agree), for the `Allow` header of a 405.
pub fn allowed_methods(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let methods = match segments.as_slice() {
        ["v1", "health"]
        | ["v1", "openapi.json"]
        | ["v1", "admin", "audit"]
        | ["v1", "admin", "sites", _, "shards"] => "GET",
        ["v1", "collect"] => "POST, OPTIONS",
        ["v1", "admin", "sites"] | ["v1", "admin", "sites", _, "keys"] => "GET, POST",
        ["v1", "admin", "sites", _, "keys", key] if admin::is_rotate(key) => "POST",
        ["v1", "admin", "sites", _, "keys", _] => "DELETE",
        ["v1", "admin", "sites", _, "reclassify"]
        | ["v1", "admin", "sessions:flush"]
        | ["v1", "admin", "cron:run"] => "POST",
        ["v1", "admin", "sites", _, "origins" | "privacy"] => "PUT",
        ["v1", "admin", "sites", _] => "PATCH",
        ["v1", "admin", "sites", _, "identity_secret"] => "POST, DELETE",
        // the site API: its route table says (`{webhook}:rotate` is that path's only,
        // although `{webhook}` matches the segment too)
        ["v1", "sites", _, rest @ ..] => {
            let routes: Vec<&api::Route> = api::ROUTES
                .iter()
                .filter(|r| api::matches(r.path, rest))
                .collect();
            let verb = routes.iter().any(|r| r.path.contains("}:"));
            let methods: Vec<&str> = routes
                .iter()
                .filter(|r| !verb || r.path.contains("}:"))
                .map(|r| r.method)
                .collect();
            return (!methods.is_empty()).then(|| methods.join(", "));
        }
        _ => return None,
    };
    Some(methods.to_string())
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
            admin::route(&mut req, env, rest, now).await
        }
        (["v1", "openapi.json"], Method::Get) => api::openapi::serve(),
        (["v1", "sites", site, rest @ ..], _) if api::handles(rest) => {
            api::route(&mut req, env, site, rest, now).await
        }
        // a path of the surface asked with another method (`/v1/openapi.json` was a
        // 404: found by the schema fuzz)
        _ if allowed_methods(&path).is_some() => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::no_route()),
    }
}

#[cfg(test)]
mod tests {
    use super::allowed_methods;
    use serde_json::Value;

    /// The `Allow` of every documented path is exactly its documented methods (what
    /// `tests/tests/schema_fuzz.rs` checks against a running worker).
    #[test]
    fn allowed_methods_are_the_documented_ones() {
        let doc: Value = serde_json::from_str(crate::api::openapi::DOCUMENT).expect("openapi");
        for (template, ops) in doc["paths"].as_object().expect("paths") {
            let path: String = template
                .split('/')
                .map(|seg| match (seg.strip_prefix('{'), seg.find("}:")) {
                    (Some(_), Some(i)) => format!("x{}", &seg[i + 1..]),
                    (Some(_), None) => "x".to_string(),
                    (None, _) => seg.to_string(),
                })
                .collect::<Vec<_>>()
                .join("/");
            let mut documented: Vec<String> = ops
                .as_object()
                .expect("operations")
                .keys()
                .filter(|m| m.as_str() != "parameters")
                .map(|m| m.to_ascii_uppercase())
                .collect();
            documented.sort();
            let mut allowed: Vec<String> = allowed_methods(&path)
                .unwrap_or_else(|| panic!("{template}: no methods"))
                .split(", ")
                .map(str::to_string)
                .collect();
            allowed.sort();
            assert_eq!(allowed, documented, "{template}");
        }
        assert_eq!(allowed_methods("/v1/sites/x/nothing"), None);
        assert_eq!(allowed_methods("/v1/nothing"), None);
    }
}
