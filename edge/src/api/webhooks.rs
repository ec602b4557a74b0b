//! Webhooks (manage key): `POST /v1/sites/{site}/webhooks` registers a URL that receives a
//! signed JSON POST when a visitor becomes a lead (`lead.created`) and when a lead becomes
//! a customer (`customer.created`), with the lead's first touch, latest touch and pages
//! read; `GET .../webhooks` lists them (never their secrets), `DELETE .../webhooks/{id}`
//! deletes one with its deliveries, `POST .../webhooks/{id}:rotate` gives it a new secret
//! (the previous one keeps signing beside it for `previous_secret_ttl` seconds, 24 hours by
//! default, so the receiver can switch without losing a delivery). Each of these is in the
//! audit log.
//!
//! Only `https` URLs to public host names are accepted (`closeloop_core::netguard`), at
//! registration and again at every delivery ([`crate::delivery`]).
//!
//! Deliveries go through a D1 outbox filled in the same transaction as the lead or the
//! deal ([`crate::store::webhooks`]); the cron trigger sends what is due, fairly between
//! sites and with a timeout ([`crate::delivery`]); a failed attempt (network error,
//! timeout, redirect or a non-2xx answer) is retried with exponential backoff (10 s, 20 s,
//! 40 s … about 11 hours in all) up to [`MAX_ATTEMPTS`].
//! `POST /v1/sites/{site}/webhooks:deliver` runs the same step for one site at once (an
//! operator's "send now", and how the tests stand in for the cron).
//!
//! # Signature
//!
//! `Closeloop-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, as
//! Stripe signs (during a rotation a second `v1=` carries the previous secret's
//! signature): the receiver recomputes it over the raw body with the secret shown at
//! registration (or rotation), accepts any matching `v1`, and refuses old `t`s.
//! `Closeloop-Delivery` carries the delivery id (the same on every retry: the receiver's
//! idempotency key), `Closeloop-Event` the type.

use super::{body, conversions::conversion_json, MAX_MANAGE_BODY_BYTES};
use crate::error::{ApiError, ApiResult};
use crate::store::audit::{Actor, AuditRecord};
use crate::store::webhooks::{DueDelivery, WebhookListed, WebhookRow};
use crate::store::{SiteConfig, Store};
use closeloop_core::netguard;
use closeloop_core::time::format_rfc3339;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use worker::{Env, Request, Response};

/// Event types a webhook may ask for.
pub const EVENT_TYPES: [&str; 2] = ["lead.created", "customer.created"];
/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: i64 = 12;
/// The first retry's delay (doubled after each failure).
pub const FIRST_RETRY_MS: i64 = 10_000;
/// How long the previous secret keeps signing after a rotation, by default (seconds).
pub const PREVIOUS_SECRET_TTL_S: i64 = 24 * 3600;
/// The longest a rotation may keep the previous secret signing (seconds).
pub const MAX_PREVIOUS_SECRET_TTL_S: i64 = 7 * 24 * 3600;
/// Most webhooks per site.
pub const MAX_WEBHOOKS_PER_SITE: usize = 20;

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

fn audit(
    site: &SiteConfig,
    actor: &Actor,
    now: i64,
    action: &'static str,
    id: &str,
) -> AuditRecord {
    AuditRecord {
        site_id: site.id.clone(),
        at: now,
        actor: actor.clone(),
        action,
        target: Some(id.to_string()),
        detail: json!({}),
    }
}

/// Handles `POST /v1/sites/{site}/webhooks`.
pub async fn create(
    req: &mut Request,
    env: &Env,
    store: &Store,
    site: &SiteConfig,
    actor: &Actor,
    now: i64,
) -> ApiResult<Response> {
    let bytes = body(req, MAX_MANAGE_BODY_BYTES).await?;
    let input: Value = serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::bad_request("malformed_json", "the body is not valid JSON"))?;
    if !input.is_object() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object",
        ));
    }
    let raw = input["url"].as_str().unwrap_or_default().trim();
    if raw.len() > 2048 {
        return Err(ApiError::bad_request(
            "invalid_url",
            "`url` is longer than 2048 bytes",
        ));
    }
    let url = netguard::check_target(raw, crate::delivery::allow_loopback(env))
        .map_err(|r| {
            ApiError::bad_request(
                "invalid_url",
                format!("`url` must be https to a public host name: {}", r.message),
            )
        })?
        .to_string();
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
    if store.list_webhooks(&site.id).await?.len() >= MAX_WEBHOOKS_PER_SITE {
        return Err(ApiError::new(
            409,
            "too_many_webhooks",
            format!("a site has at most {MAX_WEBHOOKS_PER_SITE} webhooks: delete one first"),
        ));
    }
    let row = WebhookRow {
        id: format!("wh_{}", crate::auth::random_hex(8)?),
        url,
        events: serde_json::to_string(&events).map_err(ApiError::internal)?,
        secret: format!("whsec_{}", crate::auth::random_hex(24)?),
        created_at: now,
    };
    let mut record = audit(site, actor, now, "webhook.created", &row.id);
    record.detail = json!({ "url": row.url, "events": events });
    store.create_webhook(&site.id, &row, &record).await?;
    Ok(Response::from_json(&json!({
        "id": row.id,
        "url": row.url,
        "events": events,
        "secret": row.secret,
        "created_at": format_rfc3339(now),
    }))?
    .with_status(201))
}

fn listed_json(w: &WebhookListed) -> Value {
    json!({
        "id": w.id,
        "url": w.url,
        "events": serde_json::from_str::<Value>(&w.events).unwrap_or_else(|_| json!([])),
        "created_at": format_rfc3339(w.created_at),
        "previous_secret_until": w.previous_secret_until.map(format_rfc3339),
        "deliveries": {"pending": w.pending, "delivered": w.delivered, "failed": w.failed},
    })
}

/// Handles `GET /v1/sites/{site}/webhooks`.
pub async fn list(store: &Store, site: &SiteConfig) -> ApiResult<Response> {
    let hooks = store.list_webhooks(&site.id).await?;
    Ok(Response::from_json(&json!({
        "webhooks": hooks.iter().map(listed_json).collect::<Vec<_>>(),
    }))?)
}

fn unknown_webhook(id: &str) -> ApiError {
    ApiError::new(404, "unknown_webhook", format!("no webhook `{id}`"))
}

/// Handles `DELETE /v1/sites/{site}/webhooks/{id}`: the webhook and its deliveries go.
pub async fn delete(
    store: &Store,
    site: &SiteConfig,
    id: &str,
    actor: &Actor,
    now: i64,
) -> ApiResult<Response> {
    let record = audit(site, actor, now, "webhook.deleted", id);
    if !store.delete_webhook(&site.id, id, &record).await? {
        return Err(unknown_webhook(id));
    }
    Ok(Response::from_json(&json!({ "id": id, "deleted": true }))?)
}

/// Handles `POST /v1/sites/{site}/webhooks/{id}:rotate` with an optional
/// `{"previous_secret_ttl": seconds}` (0 to 7 days; default 24 hours): a new secret, shown
/// once.
pub async fn rotate(
    req: &mut Request,
    store: &Store,
    site: &SiteConfig,
    id: &str,
    actor: &Actor,
    now: i64,
) -> ApiResult<Response> {
    let bytes = body(req, MAX_MANAGE_BODY_BYTES).await?;
    let ttl = if bytes.iter().all(u8::is_ascii_whitespace) {
        PREVIOUS_SECRET_TTL_S
    } else {
        let input: Value = serde_json::from_slice(&bytes)
            .map_err(|_| ApiError::bad_request("malformed_json", "the body is not valid JSON"))?;
        // the document allows no other member (found by the schema fuzz)
        if let Some(other) = input
            .as_object()
            .and_then(|o| o.keys().find(|k| *k != "previous_secret_ttl"))
        {
            return Err(ApiError::bad_request(
                "invalid_body",
                format!("unknown field `{other}`: the body takes only `previous_secret_ttl`"),
            ));
        }
        match input.get("previous_secret_ttl") {
            None | Some(Value::Null) if input.is_object() => PREVIOUS_SECRET_TTL_S,
            Some(v) => v
                .as_i64()
                .filter(|t| (0..=MAX_PREVIOUS_SECRET_TTL_S).contains(t))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_parameter",
                        format!(
                            "`previous_secret_ttl` must be 0 to {MAX_PREVIOUS_SECRET_TTL_S} seconds"
                        ),
                    )
                })?,
            None => {
                return Err(ApiError::bad_request(
                    "invalid_body",
                    "the body must be a JSON object",
                ))
            }
        }
    };
    let secret = format!("whsec_{}", crate::auth::random_hex(24)?);
    let until = now + ttl * 1000;
    let mut record = audit(site, actor, now, "webhook.secret_rotated", id);
    record.detail = json!({ "previous_secret_ttl": ttl });
    if !store
        .rotate_webhook_secret(&site.id, id, &secret, until, &record)
        .await?
    {
        return Err(unknown_webhook(id));
    }
    Ok(Response::from_json(&json!({
        "id": id,
        "secret": secret,
        "previous_secret_until": (ttl > 0).then(|| format_rfc3339(until)),
    }))?)
}

/// The payload of one delivery (`None` when its lead or deal is gone: erased).
pub async fn payload(store: &Store, d: &DueDelivery) -> ApiResult<Option<Value>> {
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

/// Handles `POST /v1/sites/{site}/webhooks:deliver`: the site's sessions brought up to
/// date, then one delivery run for this site, now.
pub async fn deliver(env: &Env, store: &Store, site: &SiteConfig, now: i64) -> ApiResult<Response> {
    // payloads carry first and latest touches: sessions first
    crate::ingest::flush_sessions(store, Some(site), super::READ_FLUSH_ROUNDS).await?;
    let summary = crate::delivery::run(store, env, Some(site), now, crate::cron::BUDGET).await?;
    Ok(Response::from_json(&summary)?)
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
}
