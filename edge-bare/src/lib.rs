//! The ingest benchmark's baseline: a bare Cloudflare Worker that stores a collect batch
//! the cheapest way the platform allows, so `cargo xtask bench` can compare the real
//! worker's `POST /v1/collect` (validation, deduplication, enrichment, sessions, leads,
//! rate limits) with plain storage on the same machine, runtime and D1 schema.
//!
//! `POST /v1/collect` parses the body as JSON (`serde_json::Value`, no schema check),
//! and inserts one `events` row per event, with the same columns as the real worker's
//! rows: values taken straight from the body, `derived_ts` by the design's formula, and
//! fixed placeholders for the enrichment columns (geo, device, browser, OS, bot flag).
//! All rows go in one `db.batch()`; the answer is `200 {"accepted": n}`. Nothing else:
//! no validation, no duplicate check (a plain `INSERT`), no KV, no rate limits, no
//! visitors, sessions or leads. `GET /v1/health` answers `{"ok": true}` (readiness).

use serde_json::Value;
use wasm_bindgen::JsValue;
use worker::{event, Context, D1PreparedStatement, Date, Env, Method, Request, Response};

/// The same columns, in the same order, as the real worker's events insert.
const INSERT_SQL: &str = "INSERT INTO events (site_id, event_id, visitor_id, type, url, path, \
     referrer, title, name, props, form_fields, form_values, form_id, created_at, sent_at, \
     received_at, derived_ts, country, region, region_code, city, continent, postal_code, \
     timezone, latitude, longitude, asn, as_org, colo, is_eu, device_type, browser, \
     browser_version, os, os_version, is_bot) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, \
     ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, \
     ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36)";

/// The worker's entry point.
#[event(fetch)]
pub async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    match (req.method(), req.path().as_str()) {
        (Method::Post, "/v1/collect") => collect(req, &env).await,
        (Method::Get, "/v1/health") => Response::from_json(&serde_json::json!({ "ok": true })),
        _ => Response::error("not found", 404),
    }
}

/// A string field of `v`, or SQL NULL.
fn text(v: &Value, key: &str) -> JsValue {
    v.get(key)
        .and_then(Value::as_str)
        .map(JsValue::from_str)
        .unwrap_or(JsValue::NULL)
}

/// An integer field of `v` (0 when missing).
fn int(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

/// The path of an absolute URL, by plain string search (`/` when there is none).
fn path_of(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme
        .find('/')
        .and_then(|i| after_scheme.get(i..))
        .unwrap_or("/");
    path.split(['?', '#']).next().unwrap_or("/")
}

/// `POST /v1/collect`: one plain insert per event, all in one D1 batch.
async fn collect(mut req: Request, env: &Env) -> worker::Result<Response> {
    let received_at = Date::now().as_millis() as i64;
    let body = req.text().await?;
    let Ok(batch) = serde_json::from_str::<Value>(&body) else {
        return Response::error("malformed json", 400);
    };
    let site = text(&batch, "site_id");
    let visitor = text(&batch, "visitor_id");
    let sent_at = int(&batch, "sent_at");
    let events = batch
        .get("events")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let db = env.d1("DB")?;
    let num = |n: i64| JsValue::from_f64(n as f64);
    let s = JsValue::from_str;
    let mut stmts: Vec<D1PreparedStatement> = Vec::with_capacity(events.len());
    for e in events {
        let url = e.get("url").and_then(Value::as_str).unwrap_or("");
        let created_at = int(e, "created_at");
        stmts.push(db.prepare(INSERT_SQL).bind(&[
            site.clone(),
            text(e, "id"),
            visitor.clone(),
            text(e, "type"),
            s(url),
            s(path_of(url)),
            text(e, "referrer"),
            text(e, "title"),
            JsValue::NULL,
            JsValue::NULL,
            JsValue::NULL,
            JsValue::NULL,
            JsValue::NULL,
            num(created_at),
            num(sent_at),
            num(received_at),
            num(received_at - (sent_at - created_at)),
            s("US"),
            s("Texas"),
            s("TX"),
            s("Austin"),
            s("NA"),
            s("78701"),
            s("America/Chicago"),
            JsValue::from_f64(30.27),
            JsValue::from_f64(-97.74),
            num(395_747),
            s("Cloudflare"),
            s("DFW"),
            num(0),
            s("desktop"),
            s("Chrome"),
            s("131.0"),
            s("Windows 10"),
            s("NT 10.0"),
            num(0),
        ])?);
    }
    let n = stmts.len();
    if n > 0 {
        db.batch(stmts).await?;
    }
    Response::from_json(&serde_json::json!({ "accepted": n }))
}
