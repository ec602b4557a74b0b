//! Beacons as the end-to-end tests of issue 12 send them: batches, page views, sites
//! with beacon settings, and the health and bad-row reads.

use crate::http::{self, Answer};
use crate::now_ms;
use crate::openapi::conforms;
use crate::worker::{Site, Worker};
use serde_json::{json, Value};
use std::time::Duration;

/// A desktop Chrome user agent.
pub const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
/// An hour, ms.
pub const HOUR: i64 = 3_600_000;
/// A day, ms.
pub const DAY: i64 = 24 * HOUR;

/// A page view made at `created_at` (device clock).
pub fn pv(id: &str, url: &str, created_at: i64) -> Value {
    json!({"id": id, "type": "pageview", "created_at": created_at, "url": url, "referrer": ""})
}

/// A batch of `visitor` sent at `sent_at` (device clock).
pub fn batch(site: &Site, visitor: &str, events: Vec<Value>, sent_at: i64) -> Value {
    json!({"site_id": site.id, "visitor_id": visitor, "sent_at": sent_at, "events": events})
}

/// POSTs a beacon as a browser would (text/plain, as sendBeacon), with `origin` as its
/// `Origin` header when given.
pub fn send(w: &Worker, origin: Option<&str>, body: &Value) -> Answer {
    let mut headers = vec![
        ("Content-Type", "text/plain;charset=UTF-8"),
        ("User-Agent", CHROME),
    ];
    if let Some(o) = origin {
        headers.push(("Origin", o));
    }
    http::request(
        "POST",
        &w.url("/v1/collect"),
        &headers,
        Some(&body.to_string()),
    )
    .expect("collect")
}

/// Each event's status, `status:code` when it carries an error.
pub fn statuses(a: &Answer) -> Vec<String> {
    a.json["results"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|e| {
                    let s = e["status"].as_str().unwrap_or("?");
                    match e["error"]["code"].as_str() {
                        Some(code) => format!("{s}:{code}"),
                        None => s.to_string(),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts a JSON error with this status and code (and a message).
pub fn assert_error(a: &Answer, status: u16, code: &str) {
    assert_eq!(
        (a.status, a.error_code()),
        (status, Some(code)),
        "{}",
        a.text
    );
    assert!(
        a.json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        a.text
    );
    assert!(a
        .header("content-type")
        .is_some_and(|c| c.contains("application/json")));
}

/// An admin request with the worker's token.
pub fn admin(w: &Worker, method: &str, path: &str, body: Option<&Value>) -> Answer {
    let auth = format!("Bearer {}", w.admin_token);
    let text = body.map(Value::to_string);
    http::request(
        method,
        &w.url(path),
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        text.as_deref(),
    )
    .expect("admin request")
}

/// Creates a site allowing `origin` with extra members in the creation body (settings);
/// answers the site and the creation answer.
pub fn new_site(w: &Worker, origin: &str, extra: Value) -> (Site, Value) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let id = format!(
        "tr{}x{}x{}",
        std::process::id(),
        now_ms() % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    );
    let mut body = json!({"id": id, "allowed_origins": [origin], "currency": "USD"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let a = admin(w, "POST", "/v1/admin/sites", Some(&body));
    assert_eq!(a.status, 201, "{}", a.text);
    let key = |k: &str| a.json[k].as_str().unwrap_or_default().to_string();
    (
        Site {
            id,
            read_key: key("read_key"),
            write_key: key("write_key"),
        },
        a.json,
    )
}

/// `GET /v1/sites/{site}/{path}` with a key.
pub fn get(w: &Worker, site: &Site, path: &str, key: Option<&str>) -> Answer {
    http::get(&w.url(&format!("/v1/sites/{}/{path}", site.id)), key).expect("get")
}

/// The site's health (read key), checked against the OpenAPI schema.
pub fn health(w: &Worker, site: &Site) -> Value {
    let a = get(w, site, "health", Some(&site.read_key));
    assert_eq!(a.status, 200, "{}", a.text);
    conforms(&a, "SiteHealth");
    a.json
}

/// The integer a counting query answers.
pub fn count(w: &Worker, sql: &str) -> i64 {
    w.count(sql).expect("count")
}

/// Waits, if needed, until the UTC day has more than a minute left (the daily counters
/// of a test must not straddle midnight).
pub fn away_from_midnight() {
    let left = DAY - now_ms().rem_euclid(DAY);
    if left < 60_000 {
        std::thread::sleep(Duration::from_millis(left as u64 + 1_000));
    }
}
