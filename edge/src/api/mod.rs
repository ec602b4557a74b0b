//! The closing-the-loop API under `/v1/sites/{site}/...`: server-side events, CRM
//! conversions and spend (write key), the marketer's reports and lead journeys (read key),
//! beacon health (read key), bad rows (write key), erasure, tombstones, webhooks and the
//! site's audit log (manage key), plus
//! `GET /v1/openapi.json`.
//!
//! [`ROUTES`] is the one table of these endpoints and the scope each needs: the router
//! checks the key against it before any handler runs, and a unit test checks it equals the
//! OpenAPI document's paths and security (so an endpoint cannot be added without its scope,
//! nor documented with another).
//!
//! Each handler is thin: it reads the body or the query with core
//! (`closeloop_core::{validate, import, report}`), calls the store
//! ([`crate::store::reporting`]) and answers JSON. The figures are computed by
//! `closeloop_core::report` only.

pub mod audit;
pub mod bots;
pub mod conversions;
pub mod events_import;
pub mod exports;
pub mod facets;
pub mod health;
pub mod leads;
pub mod openapi;
pub mod reports;
pub mod spend;
pub mod webhooks;

use crate::auth::KeyKind;
use crate::error::{ApiError, ApiResult};
use crate::store::audit::Actor;
use crate::store::keys::KeyRecord;
use crate::store::{SiteConfig, Store};
use closeloop_core::import::RowError;
use serde_json::{json, Value};
use worker::{Env, Method, Request, Response};

/// Largest body the write endpoints read (a CSV export or an import of many batches).
pub const MAX_WRITE_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Largest body the management endpoints read (webhooks, settings).
pub const MAX_MANAGE_BODY_BYTES: usize = 16 * 1024;

/// Largest body of a write endpoint that takes one JSON object (a conversion, a spend
/// period).
pub const MAX_JSON_BODY_BYTES: usize = 64 * 1024;

/// One endpoint under `/v1/sites/{site}/`: its method, its path pattern (`{name}` matches
/// one non-empty segment, or the part of a segment before a `:verb`) and the key scope it
/// needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path after `/v1/sites/{site}/`.
    pub path: &'static str,
    /// The scope of key it needs.
    pub scope: KeyKind,
}

const fn entry(method: &'static str, path: &'static str, scope: KeyKind) -> Route {
    Route {
        method,
        path,
        scope,
    }
}

/// Every endpoint under `/v1/sites/{site}/` and its scope.
pub const ROUTES: [Route; 25] = [
    entry("POST", "events:import", KeyKind::Write),
    entry("POST", "conversions", KeyKind::Write),
    entry("POST", "conversions:import", KeyKind::Write),
    entry("POST", "spend", KeyKind::Write),
    entry("POST", "spend:import", KeyKind::Write),
    entry("GET", "reports/sources", KeyKind::Read),
    entry("GET", "reports/pages", KeyKind::Read),
    entry("GET", "reports/bots", KeyKind::Read),
    entry("GET", "reports/timeseries", KeyKind::Read),
    entry("GET", "reports/facets", KeyKind::Read),
    entry("GET", "reports/traffic", KeyKind::Read),
    entry("GET", "leads", KeyKind::Read),
    entry("GET", "leads/{lead}", KeyKind::Read),
    entry("DELETE", "leads/{lead}", KeyKind::Manage),
    entry("DELETE", "tombstones/{email}", KeyKind::Manage),
    entry("GET", "webhooks", KeyKind::Manage),
    entry("POST", "webhooks", KeyKind::Manage),
    entry("DELETE", "webhooks/{webhook}", KeyKind::Manage),
    entry("POST", "webhooks/{webhook}:rotate", KeyKind::Manage),
    entry("POST", "webhooks:deliver", KeyKind::Manage),
    entry("GET", "audit", KeyKind::Manage),
    entry("GET", "health", KeyKind::Read),
    // bad rows hold what visitors sent: the write key, as the raw exports
    entry("GET", "rejected", KeyKind::Write),
    entry("GET", "exports", KeyKind::Write),
    entry("GET", "exports/file", KeyKind::Write),
];

/// Whether the path segments `rest` match `pattern`.
pub fn matches(pattern: &str, rest: &[&str]) -> bool {
    let parts: Vec<&str> = pattern.split('/').collect();
    parts.len() == rest.len()
        && parts.iter().zip(rest).all(|(p, r)| {
            match (p.strip_prefix('{'), p.find("}:")) {
                // `{name}:verb`: a non-empty name, then `:verb`
                (Some(_), Some(i)) => {
                    let verb = &p[i + 1..];
                    r.len() > verb.len() && r.ends_with(verb)
                }
                (Some(_), None) => !r.is_empty(),
                (None, _) => p == r,
            }
        })
}

/// Whether the path after `/v1/sites/{site}/` is one of this module's.
pub fn handles(rest: &[&str]) -> bool {
    ROUTES.iter().any(|r| matches(r.path, rest))
}

/// The route for a method and path: `Err` 405 when the path is known but not the method.
pub fn find(method: &Method, rest: &[&str]) -> ApiResult<&'static Route> {
    ROUTES
        .iter()
        .find(|r| r.method == method.as_ref() && matches(r.path, rest))
        .ok_or_else(ApiError::method_not_allowed)
}

/// Most queued visitors a read sessionises before it answers, in chunks of
/// `crate::ingest::FLUSH_CHUNK` (a larger backlog is the cron trigger's to finish).
pub const READ_FLUSH_ROUNDS: usize = 200;

/// Brings the site's sessions up to date before a read that needs them: the
/// sessionisation `POST /v1/collect` deferred ([`crate::ingest::flush_sessions`]).
async fn fresh_sessions(store: &Store, cfg: &SiteConfig) -> ApiResult<()> {
    let done = crate::ingest::flush_sessions(store, Some(cfg), READ_FLUSH_ROUNDS).await?;
    if done.more {
        worker::console_warn!(
            "site {}: more queued visitors than one read sessionises; the cron finishes them",
            cfg.id
        );
    }
    Ok(())
}

/// [`authorise`] for a read that needs sessions, then [`fresh_sessions`] when the site has
/// visitors waiting: the key check and the queue check share one D1 round trip (a report
/// of a site with nothing queued then costs two round trips in all).
async fn authorise_fresh(
    req: &Request,
    store: &Store,
    site: &str,
    now: i64,
) -> ApiResult<(SiteConfig, KeyRecord)> {
    let hash = crate::reports::key_hash(req)?;
    let (found, queued) = store.key_and_queue(&hash, site).await?;
    let key = crate::reports::check_key(found, &hash, site, KeyKind::Read)?;
    crate::reports::record_use(store, &key, now).await?;
    let cfg = site_config(store, site).await?;
    if queued {
        fresh_sessions(store, &cfg).await?;
    }
    Ok((cfg, key))
}

/// Dispatches a request under `/v1/sites/{site}/` that [`handles`] accepts: the key is
/// checked against the route's scope first.
pub async fn route(
    req: &mut Request,
    env: &Env,
    site: &str,
    rest: &[&str],
    now: i64,
) -> ApiResult<Response> {
    let method = req.method();
    let r = find(&method, rest)?;
    let store = Store::from_env(env)?;
    let needs_sessions = r.scope == KeyKind::Read;
    let (cfg, key) = if needs_sessions {
        authorise_fresh(req, &store, site, now).await?
    } else {
        authorise(req, &store, site, r.scope, now).await?
    };
    let actor = Actor::Key(key.id.clone());
    if cfg.shards > 0 && NOT_ON_SHARDS.contains(&r.path) {
        return Err(ApiError::new(
            409,
            "not_on_shards",
            format!(
                "site `{}` keeps its events in shards, which do not serve `{}` yet: \
                 its traffic is at reports/traffic",
                cfg.id, r.path
            ),
        ));
    }
    match (r.path, rest) {
        ("events:import", _) => events_import::import(req, &store, &cfg, now).await,
        ("conversions", _) => conversions::create(req, &store, &cfg, now).await,
        ("conversions:import", _) => conversions::import(req, &store, &cfg, now).await,
        ("spend", _) => spend::create(req, &store, &cfg, now).await,
        ("spend:import", _) => spend::import(req, &store, &cfg, now).await,
        ("reports/sources", _) => reports::sources(req, env, &store, &cfg, now).await,
        ("reports/pages", _) => reports::pages(req, env, &store, &cfg, now).await,
        ("reports/bots", _) => bots::report(req, &store, &cfg, now).await,
        ("reports/timeseries", _) => reports::timeseries(req, env, &store, &cfg, now).await,
        ("reports/facets", _) => facets::facets(req, &store, &cfg, now).await,
        ("reports/traffic", _) => reports::traffic(req, env, &store, &cfg, now).await,
        ("leads", _) => leads::list(req, &store, &cfg).await,
        ("leads/{lead}", [_, lead]) if r.method == "GET" => {
            leads::journey(req, &store, &cfg, lead, now).await
        }
        ("leads/{lead}", [_, lead]) => leads::erase(&store, &cfg, lead, &actor, now).await,
        ("tombstones/{email}", [_, email]) => {
            leads::lift_tombstone(&store, &cfg, email, &actor, now).await
        }
        ("webhooks", _) if r.method == "GET" => webhooks::list(&store, &cfg).await,
        ("webhooks", _) => webhooks::create(req, env, &store, &cfg, &actor, now).await,
        ("webhooks/{webhook}", [_, id]) => webhooks::delete(&store, &cfg, id, &actor, now).await,
        ("webhooks/{webhook}:rotate", [_, id]) => {
            let id = id.trim_end_matches(":rotate");
            webhooks::rotate(req, &store, &cfg, id, &actor, now).await
        }
        ("webhooks:deliver", _) => webhooks::deliver(env, &store, &cfg, now).await,
        ("audit", _) => audit::site(req, &store, &cfg).await,
        ("health", _) => health::health(req, &store, &cfg, now).await,
        ("rejected", _) => health::rejected(req, &store, &cfg, now).await,
        ("exports", _) => exports::list(req, env, &cfg).await,
        ("exports/file", _) => exports::file(req, env, &cfg).await,
        _ => Err(ApiError::no_route()),
    }
}

/// The routes a site whose events live in shards (issue 14, [`SiteConfig::shards`]) does
/// not serve yet: they read or write the events and every session in D1, where such a site
/// keeps only its leads and their sessions (its lead directory, [`crate::directory`]).
/// They answer 409 `not_on_shards` rather than figures without the shards' events.
pub const NOT_ON_SHARDS: [&str; 5] = [
    "events:import",
    "reports/bots",
    "reports/facets",
    "leads/{lead}",
    "tombstones/{email}",
];

/// Checks the key (401 without one, 403 when it is malformed or not a live
/// `kind` key of this site) and loads the site.
async fn authorise(
    req: &Request,
    store: &Store,
    site: &str,
    kind: KeyKind,
    now: i64,
) -> ApiResult<(SiteConfig, KeyRecord)> {
    let key = crate::reports::require_key(req, store, site, kind, now).await?;
    Ok((site_config(store, site).await?, key))
}

/// The site's configuration (404 `unknown_site` when there is none).
async fn site_config(store: &Store, site: &str) -> ApiResult<SiteConfig> {
    store
        .site(site)
        .await?
        .ok_or_else(|| ApiError::new(404, "unknown_site", format!("no site `{site}`")))
}

/// A write endpoint's body that must be one JSON object (400 `malformed_json` or
/// `invalid_body` otherwise).
async fn json_object_body(req: &mut Request) -> ApiResult<Value> {
    let bytes = body(req, MAX_JSON_BODY_BYTES).await?;
    let sent: Value = serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::bad_request("malformed_json", "the body is not valid JSON"))?;
    if !sent.is_object() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object",
        ));
    }
    Ok(sent)
}

/// Reads the body, refusing more than `limit` bytes with 413 while it streams
/// ([`crate::body::read`]).
async fn body(req: &mut Request, limit: usize) -> ApiResult<Vec<u8>> {
    crate::body::read(req, limit).await
}

/// The query parameters the document types as a number, a boolean or an enum: given
/// empty (`limit=`) they are refused, where a text filter given empty is no filter (found
/// by the schema fuzz; a unit test checks the list against `docs/openapi.json`).
pub const NOT_EMPTY: [&str; 14] = [
    "before",
    "date_order",
    "days",
    "decimal",
    "granularity",
    "group_by",
    "half_life_days",
    "include_bots",
    "kind",
    "limit",
    "lookback_days",
    "model",
    "order",
    "sort",
];

/// The query string as (name, value) pairs, percent-decoded; 400 `invalid_parameter`
/// when one of [`NOT_EMPTY`] is given empty.
fn query_pairs(req: &Request) -> ApiResult<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> = req
        .url()?
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if let Some((name, _)) = pairs
        .iter()
        .find(|(k, v)| v.trim().is_empty() && NOT_EMPTY.contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("`{name}` must not be empty (leave it out for the default)"),
        ));
    }
    Ok(pairs)
}

/// The first value of a query parameter (empty counts as absent).
fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, v)| k == name && !v.trim().is_empty())
        .map(|(_, v)| v.trim())
}

/// A JSON error answer with a code that is not one of [`ApiError`]'s static ones (the
/// row codes of `closeloop_core::import`), and optional extra members of `error`.
/// The CSV/JSON import options of a request: the site's currency as the default, and the
/// `decimal` (`point` | `comma`) and `date_order` (`day_month` | `month_day`) parameters.
fn import_options(
    site: &SiteConfig,
    pairs: &[(String, String)],
    default_channel: Option<String>,
) -> ApiResult<closeloop_core::import::ImportOptions> {
    use closeloop_core::import::{DateOrder, Decimal, ImportOptions};
    let decimal = match param(pairs, "decimal") {
        None => None,
        Some("point") => Some(Decimal::Point),
        Some("comma") => Some(Decimal::Comma),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                "`decimal` must be point or comma",
            ))
        }
    };
    let date_order = match param(pairs, "date_order") {
        None => None,
        Some("day_month") => Some(DateOrder::DayMonth),
        Some("month_day") => Some(DateOrder::MonthDay),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                "`date_order` must be day_month or month_day",
            ))
        }
    };
    Ok(ImportOptions {
        default_currency: Some(site.currency.clone()),
        decimal,
        date_order,
        default_channel,
    })
}

fn error_response(status: u16, code: &str, message: &str, extra: Option<Value>) -> ApiResult {
    let mut error = json!({ "code": code, "message": message });
    if let (Some(Value::Object(extra)), Some(obj)) = (extra, error.as_object_mut()) {
        obj.extend(extra);
    }
    Ok(Response::from_json(&json!({ "error": error }))?.with_status(status))
}

/// The answer for a JSON body core refused.
fn row_error_response(e: &RowError) -> ApiResult {
    error_response(400, &e.code, &e.message, None)
}

/// Converts minor units of `from` into minor units of the reporting currency `to` with
/// `rate` (units of `to` per unit of `from`). Same currency: unchanged, no rate needed.
/// Another currency without a rate: `exchange_rate_required`.
pub fn convert(
    amount: i64,
    from: &str,
    to: &str,
    rate: Option<f64>,
) -> Result<(i64, Option<f64>), (&'static str, String)> {
    if from.eq_ignore_ascii_case(to) {
        return Ok((amount, None));
    }
    let Some(rate) = rate else {
        return Err((
            "exchange_rate_required",
            format!(
                "the amount is in {from} but the site reports in {to}: send `exchange_rate` \
                 (units of {to} per unit of {from})"
            ),
        ));
    };
    if !rate.is_finite() || rate <= 0.0 {
        return Err((
            "invalid_rate",
            "`exchange_rate` must be a positive number".into(),
        ));
    }
    use closeloop_core::import::currency_exponent;
    let scale = 10f64.powi(currency_exponent(to) as i32 - currency_exponent(from) as i32);
    let converted = (amount as f64 * rate * scale).round();
    if !converted.is_finite() || converted.abs() > 9.0e15 {
        return Err((
            "invalid_amount",
            "the converted amount is out of range".into(),
        ));
    }
    Ok((converted as i64, Some(rate)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`NOT_EMPTY`] is exactly the document's query parameters that an empty value
    /// cannot satisfy (a number, a boolean, an enum).
    #[test]
    fn the_not_empty_parameters_are_the_documented_ones() {
        let doc: Value = serde_json::from_str(openapi::DOCUMENT).expect("openapi");
        let resolve = |v: &Value| -> Value {
            match v["$ref"].as_str() {
                Some(r) => doc
                    .pointer(&r.replacen('#', "", 1))
                    .cloned()
                    .unwrap_or(Value::Null),
                None => v.clone(),
            }
        };
        let mut strict = std::collections::BTreeSet::new();
        for ops in doc["paths"].as_object().expect("paths").values() {
            let ops = ops.as_object().expect("operations");
            let shared = ops.get("parameters").cloned().unwrap_or(Value::Null);
            for (method, op) in ops {
                if method == "parameters" {
                    continue;
                }
                let own = op["parameters"].as_array().cloned().unwrap_or_default();
                let all = shared.as_array().cloned().unwrap_or_default();
                for p in all.iter().chain(&own).map(resolve) {
                    if p["in"] != "query" {
                        continue;
                    }
                    let schema = &p["schema"];
                    let empty_fits = schema["type"] == "string"
                        && schema.get("enum").is_none()
                        && schema.get("pattern").is_none()
                        && schema.get("format").is_none()
                        && schema.get("allOf").is_none()
                        && schema["minLength"].as_u64().unwrap_or(0) == 0;
                    if !empty_fits {
                        strict.insert(p["name"].as_str().expect("name").to_string());
                    }
                }
            }
        }
        let listed: std::collections::BTreeSet<String> =
            NOT_EMPTY.iter().map(|s| s.to_string()).collect();
        assert_eq!(listed, strict);
    }

    #[test]
    fn same_currency_needs_no_rate() {
        assert_eq!(convert(500_000, "usd", "USD", None), Ok((500_000, None)));
    }

    #[test]
    fn another_currency_needs_a_rate() {
        assert_eq!(
            convert(1_000, "EUR", "USD", None).map_err(|e| e.0),
            Err("exchange_rate_required")
        );
        // 10.00 EUR at 1.10 USD/EUR = 11.00 USD
        assert_eq!(
            convert(1_000, "EUR", "USD", Some(1.1)),
            Ok((1_100, Some(1.1)))
        );
        // 1000 JPY (no minor unit) at 0.0065 USD/JPY = 6.50 USD = 650 cents
        assert_eq!(
            convert(1_000, "JPY", "USD", Some(0.0065)),
            Ok((650, Some(0.0065)))
        );
        assert_eq!(
            convert(1_000, "EUR", "USD", Some(-1.0)).map_err(|e| e.0),
            Err("invalid_rate")
        );
    }

    #[test]
    fn paths() {
        assert!(handles(&["events:import"]));
        assert!(handles(&["leads", "ld_1"]));
        assert!(handles(&["reports", "sources"]));
        assert!(handles(&["webhooks", "wh_1:rotate"]));
        assert!(handles(&["webhooks", "wh_1"]));
        assert_eq!(
            find(&Method::Post, &["webhooks", ":rotate"]).map_err(|e| e.status),
            Err(405)
        );
        assert!(!handles(&["leads", ""]));
        assert!(handles(&["reports", "facets"]));
        assert!(!handles(&["nothing"]));
        let r = find(&Method::Post, &["webhooks", "wh_1:rotate"]).expect("route");
        assert_eq!(r.path, "webhooks/{webhook}:rotate");
        let r = find(&Method::Delete, &["webhooks", "wh_1"]).expect("route");
        assert_eq!(r.path, "webhooks/{webhook}");
        assert_eq!(
            find(&Method::Put, &["webhooks"]).map_err(|e| e.status),
            Err(405)
        );
        assert_eq!(
            find(&Method::Delete, &["leads", "x"]).map(|r| r.scope),
            Ok(KeyKind::Manage)
        );
    }

    /// The route table and the OpenAPI document name the same endpoints under
    /// `/v1/sites/{site}/`, each with the same scope (`readKey`, `writeKey`, `manageKey`).
    #[test]
    fn the_route_table_is_the_documented_one() {
        let doc: Value = serde_json::from_str(openapi::DOCUMENT).expect("openapi");
        let mut documented = Vec::new();
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            let Some(rest) = path.strip_prefix("/v1/sites/{site}/") else {
                continue;
            };
            for (method, op) in ops.as_object().expect("operations") {
                if method == "parameters" {
                    continue;
                }
                let scheme = op["security"][0]
                    .as_object()
                    .and_then(|o| o.keys().next().cloned())
                    .unwrap_or_default();
                let scope = match scheme.as_str() {
                    "readKey" => "read",
                    "writeKey" => "write",
                    "manageKey" => "manage",
                    other => panic!("{method} {path}: security `{other}`"),
                };
                documented.push(format!("{} {rest} {scope}", method.to_uppercase()));
            }
        }
        let mut routed: Vec<String> = ROUTES
            .iter()
            .map(|r| format!("{} {} {}", r.method, r.path, r.scope.as_str()))
            .collect();
        documented.sort();
        routed.sort();
        assert_eq!(routed, documented);
    }
}
