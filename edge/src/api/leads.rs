//! `GET /v1/sites/{site}/leads` (search by email, source, channel, stage, date) and
//! `GET /v1/sites/{site}/leads/{lead}` (the journey: visitors, sessions with their touches,
//! pages in order, conversions and every model's credit per touch), read key.
//!
//! `{lead}` is a lead id or an email (normalised, then turned into the lead id). The
//! journey's `data_driven` credits use the chains fitted over the report range given by
//! `from` / `to` (default: the 30 days before now), like the sources report's.

use super::reports::read_query;
use super::{param, query_pairs};
use crate::error::{ApiError, ApiResult};
use crate::ingest::lead_id;
use crate::store::reporting::{LeadListRow, LeadSearch};
use crate::store::{SiteConfig, Store};
use closeloop_core::identity::normalize_email;
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
    let int = |name: &str, default: i64, max: i64| -> ApiResult<i64> {
        match param(&pairs, name) {
            None => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (0..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_parameter",
                        format!("`{name}` must be a whole number from 0 to {max}"),
                    )
                }),
        }
    };
    let limit = int("limit", DEFAULT_LIMIT, MAX_LIMIT)?.max(1);
    let offset = int("cursor", 0, i64::from(u32::MAX))?;
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

/// The lead id a path segment names (a lead id, or an email).
pub fn resolve(site: &SiteConfig, segment: &str) -> String {
    let decoded =
        url::form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| segment.to_string());
    if decoded.contains('@') {
        if let Some(email) = normalize_email(&decoded) {
            return lead_id(&site.id, &email);
        }
    }
    decoded
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
    Ok(Response::from_json(&body)?)
}

/// Handles `DELETE .../leads/{lead}` (write key): erases the lead everywhere (see
/// [`Store::erase_lead`]); reports no longer count it. 404 `unknown_lead` when there is
/// nothing of it.
pub async fn erase(store: &Store, site: &SiteConfig, segment: &str) -> ApiResult<Response> {
    let lead = resolve(site, segment);
    let erased = store.erase_lead(&site.id, &lead).await?;
    store.forget_lead_deliveries(&site.id, &lead).await?;
    if !erased.lead && erased.conversions == 0 {
        return Err(ApiError::new(
            404,
            "unknown_lead",
            format!("no lead `{segment}`"),
        ));
    }
    Ok(Response::from_json(
        &json!({ "lead": lead, "erased": erased }),
    )?)
}
