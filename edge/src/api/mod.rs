//! The closing-the-loop API under `/v1/sites/{site}/...`: server-side events, CRM
//! conversions, spend, webhooks, erasure (write key) and the marketer's reports and lead journeys
//! (read key), plus `GET /v1/openapi.json`.
//!
//! Each handler is thin: it checks the key, reads the body or the query with core
//! (`closeloop_core::{validate, import, report}`), calls the store
//! ([`crate::store::reporting`]) and answers JSON. The figures are computed by
//! `closeloop_core::report` only.

pub mod bots;
pub mod conversions;
pub mod events_import;
pub mod leads;
pub mod openapi;
pub mod reports;
pub mod spend;
pub mod webhooks;

use crate::auth::KeyKind;
use crate::error::{ApiError, ApiResult};
use crate::store::{SiteConfig, Store};
use closeloop_core::import::RowError;
use serde_json::{json, Value};
use worker::{Env, Method, Request, Response};

/// Largest body the write endpoints read (a CSV export or an import of many batches).
pub const MAX_WRITE_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Whether the path after `/v1/sites/{site}/` is one of this module's.
pub fn handles(rest: &[&str]) -> bool {
    matches!(
        rest,
        ["events:import"]
            | ["conversions"]
            | ["conversions:import"]
            | ["spend"]
            | ["spend:import"]
            | ["reports", "sources" | "pages" | "timeseries" | "bots"]
            | ["leads"]
            | ["leads", _]
            | ["webhooks"]
            | ["webhooks:deliver"]
    )
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
async fn authorise_fresh(req: &Request, store: &Store, site: &str) -> ApiResult<SiteConfig> {
    let hash = crate::reports::key_hash(req)?;
    let (found, queued) = store.key_and_queue(&hash, site).await?;
    crate::reports::check_key(found, &hash, site, KeyKind::Read)?;
    let cfg = site_config(store, site).await?;
    if queued {
        fresh_sessions(store, &cfg).await?;
    }
    Ok(cfg)
}

/// Dispatches a request under `/v1/sites/{site}/` that [`handles`] accepts.
pub async fn route(
    req: &mut Request,
    env: &Env,
    site: &str,
    rest: &[&str],
    now: i64,
) -> ApiResult<Response> {
    let method = req.method();
    let store = Store::from_env(env)?;
    match (rest, &method) {
        (["events:import"], Method::Post) => {
            let cfg = authorise(req, &store, site, KeyKind::Write).await?;
            events_import::import(req, &store, &cfg, now).await
        }
        (["conversions"], Method::Post) => {
            let cfg = authorise(req, &store, site, KeyKind::Write).await?;
            conversions::create(req, &store, &cfg, now).await
        }
        (["conversions:import"], Method::Post) => {
            let cfg = authorise(req, &store, site, KeyKind::Write).await?;
            conversions::import(req, &store, &cfg, now).await
        }
        (["spend"], Method::Post) => {
            let cfg = authorise(req, &store, site, KeyKind::Write).await?;
            spend::create(req, &store, &cfg, now).await
        }
        (["spend:import"], Method::Post) => {
            let cfg = authorise(req, &store, site, KeyKind::Write).await?;
            spend::import(req, &store, &cfg, now).await
        }
        (["reports", "sources"], Method::Get) => {
            let cfg = authorise_fresh(req, &store, site).await?;
            reports::sources(req, &store, &cfg, now).await
        }
        (["reports", "pages"], Method::Get) => {
            let cfg = authorise_fresh(req, &store, site).await?;
            reports::pages(req, &store, &cfg, now).await
        }
        (["reports", "bots"], Method::Get) => {
            let cfg = authorise_fresh(req, &store, site).await?;
            bots::report(req, &store, &cfg, now).await
        }
        (["reports", "timeseries"], Method::Get) => {
            let cfg = authorise_fresh(req, &store, site).await?;
            reports::timeseries(req, &store, &cfg, now).await
        }
        (["leads"], Method::Get) => {
            let cfg = authorise_fresh(req, &store, site).await?;
            leads::list(req, &store, &cfg).await
        }
        (["leads", lead], Method::Delete) => {
            let cfg = authorise(req, &store, site, KeyKind::Write).await?;
            leads::erase(&store, &cfg, lead).await
        }
        (["leads", lead], Method::Get) => {
            let cfg = authorise_fresh(req, &store, site).await?;
            leads::journey(req, &store, &cfg, lead, now).await
        }
        (["webhooks"], Method::Post) => {
            let cfg = authorise(req, &store, site, KeyKind::Write).await?;
            webhooks::create(req, &store, &cfg, now).await
        }
        (["webhooks:deliver"], Method::Post) => {
            let cfg = authorise(req, &store, site, KeyKind::Write).await?;
            webhooks::deliver(&store, &cfg, now).await
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// Checks the key (401 without one, 403 when it is not a `kind` key of this site) and
/// loads the site.
async fn authorise(
    req: &Request,
    store: &Store,
    site: &str,
    kind: KeyKind,
) -> ApiResult<SiteConfig> {
    crate::reports::require_key(req, store, site, kind).await?;
    site_config(store, site).await
}

/// The site's configuration (404 `unknown_site` when there is none).
async fn site_config(store: &Store, site: &str) -> ApiResult<SiteConfig> {
    store
        .site(site)
        .await?
        .ok_or_else(|| ApiError::new(404, "unknown_site", format!("no site `{site}`")))
}

/// Reads the body, refusing more than `limit` bytes with 413.
/// A write endpoint's body that must be one JSON object (400 `malformed_json` or
/// `invalid_body` otherwise).
async fn json_object_body(req: &mut Request) -> ApiResult<Value> {
    let bytes = body(req, MAX_WRITE_BODY_BYTES).await?;
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

async fn body(req: &mut Request, limit: usize) -> ApiResult<Vec<u8>> {
    let declared = req
        .headers()
        .get("Content-Length")?
        .and_then(|l| l.trim().parse::<usize>().ok());
    let too_large = || {
        ApiError::new(
            413,
            "body_too_large",
            format!("the body is larger than {limit} bytes"),
        )
    };
    if declared.is_some_and(|l| l > limit) {
        return Err(too_large());
    }
    let bytes = req.bytes().await?;
    if bytes.len() > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// The query string as (name, value) pairs, percent-decoded.
fn query_pairs(req: &Request) -> ApiResult<Vec<(String, String)>> {
    Ok(req
        .url()?
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
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
        assert!(!handles(&["nothing"]));
    }
}
