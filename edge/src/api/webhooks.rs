//! Webhooks: `POST /v1/sites/{site}/webhooks` registers a URL (write key) that receives a
//! signed JSON POST when a visitor becomes a lead (`lead.created`) and when a lead becomes
//! a customer (`customer.created`), with the lead's first touch, latest touch and pages
//! read.
//!
//! Deliveries go through a D1 outbox ([`crate::store::webhooks`]): the cron trigger
//! (`[triggers] crons` in wrangler.toml, [`scheduled`]) fills it from new leads and won
//! deals and sends what is due; a failed attempt (network error or a non-2xx answer) is
//! retried with exponential backoff (10 s, 20 s, 40 s … about 11 hours in all) up to
//! [`MAX_ATTEMPTS`].
//! `POST /v1/sites/{site}/webhooks:deliver` (write key) runs the same step for one site at
//! once (an operator's "send now", and how the tests stand in for the cron).
//!
//! # Signature
//!
//! `Closeloop-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, as
//! Stripe signs: the receiver recomputes it over the raw body with the secret shown once at
//! registration and refuses old `t`s. `Closeloop-Delivery` carries the delivery id (the
//! same on every retry: the receiver's idempotency key), `Closeloop-Event` the type.

use super::{body, conversions::conversion_json};
use crate::error::{ApiError, ApiResult};
use crate::store::webhooks::{DueDelivery, WebhookRow};
use crate::store::{SiteConfig, Store};
use closeloop_core::time::format_rfc3339;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use wasm_bindgen::JsValue;
use worker::{Env, Fetch, Headers, Method, Request, RequestInit, Response};

/// Event types a webhook may ask for.
pub const EVENT_TYPES: [&str; 2] = ["lead.created", "customer.created"];
/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: i64 = 12;
/// Deliveries sent per run.
pub const BATCH: i64 = 50;
/// The first retry's delay (doubled after each failure).
pub const FIRST_RETRY_MS: i64 = 10_000;

/// `HMAC-SHA256(secret, "<t>.<body>")` in hex, and the header value.
pub fn signature(secret: &str, t_secs: i64, body: &str) -> String {
    let mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map(|mut m| {
        m.update(format!("{t_secs}.{body}").as_bytes());
        hex::encode(m.finalize().into_bytes())
    });
    // HMAC takes keys of any length, so `new_from_slice` cannot fail
    format!("t={t_secs},v1={}", mac.unwrap_or_default())
}

/// When to retry after the `attempts`-th failed attempt (`None`: give up).
pub fn retry_at(now: i64, attempts: i64) -> Option<i64> {
    (attempts < MAX_ATTEMPTS).then(|| {
        now.saturating_add(FIRST_RETRY_MS.saturating_mul(1 << (attempts - 1).clamp(0, 20)))
    })
}

/// Whether a webhook URL is acceptable: https, or http to the local machine (tests, dev).
pub fn valid_url(u: &str) -> bool {
    match url::Url::parse(u) {
        Ok(url) => match url.scheme() {
            "https" => url.host_str().is_some(),
            "http" => matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")),
            _ => false,
        },
        Err(_) => false,
    }
}

/// Handles `POST /v1/sites/{site}/webhooks`.
pub async fn create(
    req: &mut Request,
    store: &Store,
    site: &SiteConfig,
    now: i64,
) -> ApiResult<Response> {
    let bytes = body(req, 64 * 1024).await?;
    let input: Value = serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::bad_request("malformed_json", "the body is not valid JSON"))?;
    let url = input["url"].as_str().unwrap_or_default().trim().to_string();
    if !valid_url(&url) {
        return Err(ApiError::bad_request(
            "invalid_url",
            "`url` must be an https URL (http only for localhost)",
        ));
    }
    let events: Vec<String> = match input.get("events") {
        None | Some(Value::Null) => EVENT_TYPES.iter().map(|e| e.to_string()).collect(),
        Some(Value::Array(list)) => {
            let mut out = Vec::new();
            for e in list {
                match e.as_str().filter(|e| EVENT_TYPES.contains(e)) {
                    Some(e) if !out.iter().any(|o: &String| o == e) => out.push(e.to_string()),
                    Some(_) => {}
                    None => {
                        return Err(ApiError::bad_request(
                            "invalid_event_type",
                            format!("`events` may hold {}", EVENT_TYPES.join(", ")),
                        ))
                    }
                }
            }
            out
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_event_type",
                "`events` must be a list",
            ))
        }
    };
    let row = WebhookRow {
        id: format!("wh_{}", crate::auth::random_hex(8)?),
        url,
        events: serde_json::to_string(&events).map_err(ApiError::internal)?,
        secret: format!("whsec_{}", crate::auth::random_hex(24)?),
        created_at: now,
    };
    store.create_webhook(&site.id, &row).await?;
    Ok(Response::from_json(&json!({
        "id": row.id,
        "url": row.url,
        "events": events,
        "secret": row.secret,
        "created_at": format_rfc3339(now),
    }))?
    .with_status(201))
}

/// The payload of one delivery (`None` when its lead or deal is gone: erased).
async fn payload(store: &Store, d: &DueDelivery) -> ApiResult<Option<Value>> {
    let conversion = match &d.deal_id {
        Some(deal) => match store
            .stored_conversion(&d.site_id, deal, "customer")
            .await?
        {
            Some(c) => Some(c),
            None => return Ok(None),
        },
        None => None,
    };
    // a deal whose email no visitor has given yet is sent with the deal's email
    let email = match store.lead_email(&d.site_id, &d.lead_id).await? {
        Some(e) => e,
        None => match conversion.as_ref().and_then(|c| c.email.clone()) {
            Some(e) => e,
            None => return Ok(None),
        },
    };
    let data = store.lead_data(&d.site_id, &d.lead_id).await?;
    let mut sessions: Vec<_> = data.sessions.iter().filter(|s| !s.is_bot).collect();
    sessions.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
    let touch = |s: Option<&&closeloop_core::report::SessionRow>| match s {
        Some(s) => {
            // as the wire's TouchAck: no `campaign` member when there is none
            let mut t = json!({"channel": s.channel, "source": s.source, "medium": s.medium});
            if let Some(campaign) = &s.campaign {
                t["campaign"] = json!(campaign);
            }
            t
        }
        None => Value::Null,
    };
    let mut pages = data.pageviews.clone();
    pages.sort_by(|a, b| (a.at, &a.path).cmp(&(b.at, &b.path)));
    let mut body = json!({
        "id": d.id,
        "type": d.kind,
        "site": d.site_id,
        "created_at": format_rfc3339(d.created_at),
        "lead": {
            "lead": d.lead_id,
            "email": email,
            "first_touch": touch(sessions.first()),
            "latest_touch": touch(sessions.last()),
            "pages": pages.iter().map(|p| p.path.clone()).collect::<Vec<_>>(),
        },
    });
    if let Some(c) = &conversion {
        body["conversion"] = conversion_json(c);
    }
    Ok(Some(body))
}

/// Sends one delivery; `Err` carries why it failed.
async fn send(d: &DueDelivery, body: &str, now: i64) -> Result<(), String> {
    let headers = Headers::new();
    let t = now.div_euclid(1000);
    let set = |k: &str, v: &str| headers.set(k, v).map_err(|e| e.to_string());
    set("Content-Type", "application/json")?;
    set("User-Agent", "Closeloop-Webhooks/1")?;
    set("Closeloop-Delivery", &d.id)?;
    set("Closeloop-Event", &d.kind)?;
    set("Closeloop-Signature", &signature(&d.secret, t, body))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(body)));
    let req = Request::new_with_init(&d.url, &init).map_err(|e| e.to_string())?;
    let resp = Fetch::Request(req)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status_code();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("the receiver answered {status}"))
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunSummary {
    /// Delivered now.
    pub delivered: u32,
    /// Failed now (to be retried, or given up).
    pub failed: u32,
    /// Dropped (the lead was erased).
    pub dropped: u32,
}

/// Fills the outbox and sends what is due (all sites, or one).
pub async fn run(store: &Store, site: Option<&SiteConfig>, now: i64) -> ApiResult<RunSummary> {
    // payloads carry first and latest touches: sessions first
    crate::ingest::flush_sessions(store, site, super::READ_FLUSH_ROUNDS).await?;
    let site = site.map(|s| s.id.as_str());
    store.enqueue_webhooks(site, now).await?;
    let mut summary = RunSummary::default();
    for d in store.due_deliveries(site, now, BATCH).await? {
        let Some(body) = payload(store, &d).await? else {
            store
                .record_attempt(&d.id, now, Some("the lead or deal was erased"), None)
                .await?;
            summary.dropped += 1;
            continue;
        };
        let text = body.to_string();
        match send(&d, &text, now).await {
            Ok(()) => {
                store.record_attempt(&d.id, now, None, None).await?;
                summary.delivered += 1;
            }
            Err(e) => {
                let retry = retry_at(now, d.attempts + 1);
                store.record_attempt(&d.id, now, Some(&e), retry).await?;
                summary.failed += 1;
            }
        }
    }
    Ok(summary)
}

/// Handles `POST /v1/sites/{site}/webhooks:deliver`: one run for this site, now.
pub async fn deliver(store: &Store, site: &SiteConfig, now: i64) -> ApiResult<Response> {
    let summary = run(store, Some(site), now).await?;
    Ok(Response::from_json(&summary)?)
}

/// The cron trigger's work: one run over every site.
pub async fn scheduled(env: &Env, now: i64) {
    let result = match Store::from_env(env) {
        Ok(store) => run(&store, None, now).await.map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        worker::console_error!("webhook run failed: {}", e.message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
        let mut m = Hmac::<Sha256>::new_from_slice(b"Jefe").expect("key");
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(m.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // the header signs "<t>.<body>"
        let mut m = Hmac::<Sha256>::new_from_slice(b"Jefe").expect("key");
        m.update(b"12.{}");
        let want = format!("t=12,v1={}", hex::encode(m.finalize().into_bytes()));
        assert_eq!(signature("Jefe", 12, "{}"), want);
    }

    #[test]
    fn backoff_doubles_then_gives_up() {
        assert_eq!(retry_at(0, 1), Some(10_000));
        assert_eq!(retry_at(0, 2), Some(20_000));
        assert_eq!(retry_at(0, 3), Some(40_000));
        assert_eq!(retry_at(0, MAX_ATTEMPTS), None);
    }

    #[test]
    fn urls() {
        assert!(valid_url("https://crm.example.com/hook"));
        assert!(valid_url("http://127.0.0.1:8080/hook"));
        assert!(!valid_url("http://crm.example.com/hook"));
        assert!(!valid_url("ftp://x"));
        assert!(!valid_url("not a url"));
    }
}
