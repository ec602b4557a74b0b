//! `GET /v1/sites/{site}/leads` (search by email, source, channel, stage, date) and
//! `GET /v1/sites/{site}/leads/{lead}` (the journey: visitors and how each was linked,
//! sessions with their touches, pages in order, conversions and every model's credit per
//! touch), read key; erasure (`DELETE .../leads/{lead}`) and the lifting of its tombstone
//! (`DELETE .../tombstones/{email}`), manage key.
//!
//! `{lead}` is a lead id or an email (normalised, then turned into the lead id). The
//! journey's `data_driven` credits use the chains fitted over the report range given by
//! `from` / `to` (default: the 30 days before now), like the sources report's.

use super::reports::read_query;
use super::{param, query_pairs};
use crate::error::{ApiError, ApiResult};
use crate::ingest::lead_id;
use crate::store::audit::{Actor, AuditRecord};
use crate::store::erasure::Tombstone;
use crate::store::reporting::{LeadListRow, LeadSearch};
use crate::store::{SiteConfig, Store};
use closeloop_core::identity::normalize_email;
use closeloop_core::privacy::TombstoneKind;
use closeloop_core::report::{self, Chains};
use closeloop_core::time::format_rfc3339;
use serde_json::{json, Value};
use worker::{Request, Response};

/// Default and largest page size of the leads list.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page size.
pub const MAX_LIMIT: i64 = 500;
/// Largest time the list's `to` defaults to (year 2255, well inside D1's integers).
const FAR_FUTURE_MS: i64 = 9_000_000_000_000;

fn touch(
    channel: &Option<String>,
    source: &Option<String>,
    medium: &Option<String>,
    campaign: &Option<String>,
) -> Value {
    match (channel, source, medium) {
        (Some(c), Some(s), Some(m)) => {
            let mut t = json!({"channel": c, "source": s, "medium": m});
            // as the wire's TouchAck: no `campaign` member when there is none
            if let Some(campaign) = campaign {
                t["campaign"] = json!(campaign);
            }
            t
        }
        _ => Value::Null,
    }
}

fn summary(r: &LeadListRow) -> Value {
    json!({
        "lead": r.lead_id,
        "email": r.email,
        "name": r.name,
        "company": r.company,
        "first_seen": format_rfc3339(r.first_seen),
        "visitors": r.visitors,
        "first_touch": touch(&r.f_channel, &r.f_source, &r.f_medium, &r.f_campaign),
        "latest_touch": touch(&r.l_channel, &r.l_source, &r.l_medium, &r.l_campaign),
        "customer": r.customers > 0,
        "revenue": r.revenue,
        "stages": r
            .stages
            .as_deref()
            .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok())
            .unwrap_or_default(),
    })
}

/// Handles `GET .../leads?email=&source=&channel=&stage=&from=&to=&limit=&cursor=`.
pub async fn list(req: &Request, store: &Store, site: &SiteConfig) -> ApiResult<Response> {
    let pairs = query_pairs(req)?;
    let time = |name: &str, default: i64| -> ApiResult<i64> {
        match param(&pairs, name) {
            None => Ok(default),
            Some(v) => crate::reports::parse_time(name, v),
        }
    };
    let int = |name: &str, default: i64, min: i64, max: i64| -> ApiResult<i64> {
        match param(&pairs, name) {
            None => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_parameter",
                        format!("`{name}` must be a whole number from {min} to {max}"),
                    )
                }),
        }
    };
    // `limit=0` was taken as 1 while the document says 1–500 (found by the schema fuzz)
    let limit = int("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let offset = int("cursor", 0, 0, i64::from(u32::MAX))?;
    let search = LeadSearch {
        email: param(&pairs, "email").map(|e| e.to_ascii_lowercase()),
        source: param(&pairs, "source").map(String::from),
        channel: param(&pairs, "channel").map(String::from),
        stage: match param(&pairs, "stage") {
            Some(s) if s.len() > 64 => {
                return Err(ApiError::bad_request(
                    "invalid_parameter",
                    "`stage` is longer than 64 bytes",
                ))
            }
            s => s.map(str::to_ascii_lowercase),
        },
        from: time("from", 0)?,
        to: time("to", FAR_FUTURE_MS)?,
        limit,
        offset,
    };
    let rows = store.leads(&site.id, &search).await?;
    let next = (rows.len() as i64 == limit).then(|| (offset + limit).to_string());
    Ok(Response::from_json(&json!({
        "leads": rows.iter().map(summary).collect::<Vec<_>>(),
        "next_cursor": next,
    }))?)
}

/// A path segment, percent-decoded (`+` stays a plus: emails carry them).
fn decode(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| segment.to_string())
}

/// The normalised email a path segment names, when it names one.
fn segment_email(segment: &str) -> Option<String> {
    let decoded = decode(segment);
    decoded
        .contains('@')
        .then(|| normalize_email(&decoded))
        .flatten()
}

/// The lead id a path segment names (a lead id, or an email).
pub fn resolve(site: &SiteConfig, segment: &str) -> String {
    match segment_email(segment) {
        Some(email) => lead_id(&site.id, &email),
        None => decode(segment),
    }
}

/// Handles `GET .../leads/{lead}`.
pub async fn journey(
    req: &Request,
    store: &Store,
    site: &SiteConfig,
    segment: &str,
    now: i64,
) -> ApiResult<Response> {
    let pairs = query_pairs(req)?;
    let query = read_query(&pairs, now)?;
    let lead = resolve(site, segment);
    let data = store.lead_data(&site.id, &lead).await?;
    let range = store
        .report_data(
            &site.id,
            query.from,
            query.to,
            query.params().lookback_ms,
            false,
        )
        .await?;
    let chains = Chains::fit(&range, &query);
    let Some(j) = report::journey(&data, &lead, &query, &chains) else {
        return Err(ApiError::new(
            404,
            "unknown_lead",
            format!("no lead `{segment}`"),
        ));
    };
    let mut body = serde_json::to_value(&j).map_err(ApiError::internal)?;
    if let (Some(obj), Some(email)) = (
        body.as_object_mut(),
        store.lead_email(&site.id, &lead).await?,
    ) {
        obj.insert("email".into(), Value::String(email));
    }
    // how each visitor became the lead's (issue 12: a browser is untrusted, so a link
    // says whether a verified identify, a server or an unverified beacon made it)
    let links: Vec<Value> = store
        .lead_links(&site.id, &lead)
        .await?
        .into_iter()
        .map(|l| {
            json!({
                "visitor": l.visitor_id,
                "method": l.method,
                "linked_at": format_rfc3339(l.linked_at),
                "received_at": l.received_at.map(format_rfc3339),
                "event_id": l.event_id,
            })
        })
        .collect();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("links".into(), Value::Array(links));
    }
    Ok(Response::from_json(&body)?)
}

/// Handles `DELETE .../leads/{lead}` (manage key): erases the lead everywhere in one
/// transaction (see [`crate::store::erasure`]) and leaves its tombstones, so that no later
/// beacon, import or conversion brings it back; reports no longer count it. 404
/// `unknown_lead` when there is nothing of it.
pub async fn erase(
    store: &Store,
    site: &SiteConfig,
    segment: &str,
    actor: &Actor,
    now: i64,
) -> ApiResult<Response> {
    let lead = resolve(site, segment);
    let mut traces = store.lead_traces(&site.id, &lead).await?;
    if !traces.lead && traces.conversions == 0 {
        return Err(ApiError::new(
            404,
            "unknown_lead",
            format!("no lead `{segment}`"),
        ));
    }
    if let Some(email) = segment_email(segment) {
        if !traces.emails.contains(&email) {
            traces.emails.push(email);
        }
    }
    let mut tombstones = vec![Tombstone {
        hash: store
            .tombstone_of(&site.id, TombstoneKind::Lead, &lead)
            .await?,
        kind: TombstoneKind::Lead.as_str(),
    }];
    for e in &traces.emails {
        tombstones.push(Tombstone {
            hash: store
                .tombstone_of(&site.id, TombstoneKind::Email, e)
                .await?,
            kind: TombstoneKind::Email.as_str(),
        });
    }
    for v in &traces.visitors {
        tombstones.push(Tombstone {
            hash: store
                .tombstone_of(&site.id, TombstoneKind::Visitor, v)
                .await?,
            kind: TombstoneKind::Visitor.as_str(),
        });
    }
    let audit = AuditRecord {
        site_id: site.id.clone(),
        at: now,
        actor: actor.clone(),
        action: "lead.erased",
        // the salted hash: the log never names the person
        target: tombstones.first().map(|t| t.hash.clone()),
        detail: json!({
            "visitors": traces.visitors.len(),
            "conversions": traces.conversions,
        }),
    };
    let erased = store
        .erase_lead(&site.id, &lead, &traces.emails, &tombstones, now, &audit)
        .await?;
    Ok(Response::from_json(
        &json!({ "lead": lead, "erased": erased, "tombstone": true }),
    )?)
}

/// Handles `DELETE .../tombstones/{email}` (manage key): lifts the tombstone an erasure
/// left for this email (and its lead id), so that the person can be recorded again. 404
/// `unknown_tombstone` when there is none.
pub async fn lift_tombstone(
    store: &Store,
    site: &SiteConfig,
    segment: &str,
    actor: &Actor,
    now: i64,
) -> ApiResult<Response> {
    let email = segment_email(segment).ok_or_else(|| {
        ApiError::bad_request("invalid_email", "the path must name an email address")
    })?;
    let lead = lead_id(&site.id, &email);
    let hashes = vec![
        store
            .tombstone_of(&site.id, TombstoneKind::Lead, &lead)
            .await?,
        store
            .tombstone_of(&site.id, TombstoneKind::Email, &email)
            .await?,
    ];
    let audit = AuditRecord {
        site_id: site.id.clone(),
        at: now,
        actor: actor.clone(),
        action: "tombstone.lifted",
        target: hashes.first().cloned(),
        detail: json!({}),
    };
    if !store.lift_tombstones(&site.id, &hashes, &audit).await? {
        return Err(ApiError::new(
            404,
            "unknown_tombstone",
            "no erasure left a tombstone for this email",
        ));
    }
    Ok(Response::from_json(
        &json!({ "lead": lead, "lifted": true }),
    )?)
}
