//! `POST /v1/sites/{site}/events:import` (write key): the events of `/v1/collect` from a
//! server or another tool, with their recorded times taken as they are.
//!
//! The body is one batch, a JSON array of batches, or JSON lines (one batch per line).
//! Every batch is validated first with `closeloop_core::validate` in import mode (no skew
//! correction, no age limit; `derived_ts = created_at`); a batch whose envelope is
//! unreadable refuses the whole request (400, naming the batch) and nothing is stored.
//! Then each batch goes through the collect pipeline's own stages: rows and leads
//! ([`crate::ingest::rows_from`], [`crate::ingest::leads_from`]), enrichment from the
//! batch's `context` (geo fields; user agent and Client Hints parsed by
//! [`crate::enrich::agent_with_hints`]),
//! exactly-once storage ([`Store::insert_batch`]) and re-sessionisation of the visitor
//! (`crate::ingest::resessionize`). No rate limit and no visitor quota apply: the
//! write key is trusted.

use super::{body, MAX_WRITE_BODY_BYTES};
use crate::enrich::{self, Agent, Geo};
use crate::error::{ApiError, ApiResult};
use crate::ingest;
use crate::store::{NewEvents, Quota, SiteConfig, Store, Stored};
use closeloop_core::validate::{validate, ValidateOptions, Validated};
use closeloop_core::wire::EventResult;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;
use worker::{Request, Response};

/// Most batches one request may carry.
pub const MAX_BATCHES: usize = 1_000;

/// The geo and user agent of a batch, given as fields (`context`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct EventContext {
    /// ISO 3166-1 alpha-2 country.
    pub country: Option<String>,
    /// Region name.
    pub region: Option<String>,
    /// ISO 3166-2 region code.
    pub region_code: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Continent code.
    pub continent: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// IANA time zone.
    pub timezone: Option<String>,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
    /// Autonomous system number.
    pub asn: Option<i64>,
    /// Autonomous system organisation.
    pub as_org: Option<String>,
    /// EU flag.
    pub is_eu: Option<bool>,
    /// The visitor's user agent.
    pub user_agent: Option<String>,
    /// The visitor's Client Hints headers (`sec-ch-ua-mobile`, `sec-ch-ua-platform`...,
    /// names case-insensitive), when a server forwards them: they take precedence over
    /// the user agent, as on `/v1/collect`.
    pub client_hints: Option<std::collections::BTreeMap<String, String>>,
    /// Device type, overriding what the user agent says.
    pub device_type: Option<String>,
    /// Bot flag, overriding what the user agent says.
    pub is_bot: Option<bool>,
}

impl EventContext {
    /// The enrichment this context gives: geo as given; device, browser and OS from the
    /// user agent (when given), with `device_type` and `is_bot` taking precedence.
    pub fn enrichment(&self) -> (Geo, Agent) {
        let clean = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(String::from)
        };
        let geo = Geo {
            country: clean(&self.country).map(|c| c.to_ascii_uppercase()),
            region: clean(&self.region),
            region_code: clean(&self.region_code),
            city: clean(&self.city),
            continent: clean(&self.continent),
            postal_code: clean(&self.postal_code),
            timezone: clean(&self.timezone),
            latitude: self.latitude.filter(|f| f.is_finite()),
            longitude: self.longitude.filter(|f| f.is_finite()),
            asn: self.asn,
            as_org: clean(&self.as_org),
            colo: None,
            is_eu: self.is_eu.unwrap_or(false),
        };
        let mut agent = match clean(&self.user_agent) {
            Some(ua) => {
                let given: std::collections::BTreeMap<String, &str> = self
                    .client_hints
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
                    .collect();
                let hints: [Option<String>; 6] = std::array::from_fn(|i| {
                    given.get(enrich::HINT_HEADERS[i]).map(|v| v.to_string())
                });
                enrich::agent_with_hints(&ua, &hints)
            }
            // no user agent: a server-side event is not a bot unless it says so
            None => Agent {
                device_type: "other".into(),
                ..Agent::default()
            },
        };
        if let Some(bot) = self.is_bot {
            // the caller decided: kept as given, never re-classified from the user agent
            agent.source = None;
            agent.is_bot = bot;
            if bot {
                agent.device_type = "bot".into();
                agent.bot_reason = Some("import:context".into());
            } else {
                agent.bot_reason = None;
                if agent.device_type == "bot" {
                    agent.device_type = "other".into();
                }
            }
        }
        if let Some(d) = clean(&self.device_type) {
            if closeloop_core::agent::DEVICE_TYPES.contains(&d.as_str()) {
                agent.source = None;
                agent.device_type = d;
            }
        }
        (geo, agent)
    }
}

/// The answer: every event's result, batches in order, and the counts.
#[derive(Debug, Serialize)]
pub struct ImportEventsResponse {
    /// One per event.
    pub results: Vec<EventResult>,
    /// Stored now.
    pub accepted: u32,
    /// Already stored.
    pub duplicates: u32,
    /// Refused.
    pub rejected: u32,
}

/// Splits the body into batches: a JSON array, one JSON object, or JSON lines.
pub fn batches(body: &[u8]) -> Result<Vec<Value>, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("malformed_json", "the body is not UTF-8"))?;
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    if trimmed.is_empty() {
        return Err(ApiError::bad_request("empty_batch", "the body is empty"));
    }
    let list = if trimmed.starts_with('[') {
        match serde_json::from_str::<Value>(trimmed) {
            Ok(Value::Array(list)) => list,
            Ok(_) | Err(_) => {
                return Err(ApiError::bad_request(
                    "malformed_json",
                    "the body is not a valid JSON array of batches",
                ))
            }
        }
    } else if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        vec![v]
    } else {
        let mut out = Vec::new();
        for (i, line) in trimmed.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            out.push(serde_json::from_str::<Value>(line).map_err(|_| {
                ApiError::bad_request(
                    "malformed_json",
                    format!("line {} is not a JSON batch", i + 1),
                )
            })?);
        }
        out
    };
    if list.is_empty() {
        return Err(ApiError::bad_request("empty_batch", "no batch in the body"));
    }
    if list.len() > MAX_BATCHES {
        return Err(ApiError::bad_request(
            "too_many_batches",
            format!(
                "{} batches; the limit is {MAX_BATCHES} per request",
                list.len()
            ),
        ));
    }
    Ok(list)
}

/// One batch, validated, with its enrichment.
struct Prepared {
    validated: Validated,
    geo: Geo,
    agent: Agent,
}

/// Validates batch `index` of the request for `site`.
fn prepare(index: usize, mut batch: Value, site: &SiteConfig, now: i64) -> ApiResult<Prepared> {
    let at = |msg: String| format!("batch {index}: {msg}");
    let context = match batch.as_object_mut().and_then(|o| o.remove("context")) {
        None | Some(Value::Null) => EventContext::default(),
        Some(v) => serde_json::from_value(v).map_err(|e| {
            ApiError::bad_request("invalid_batch", at(format!("`context` is not valid: {e}")))
        })?,
    };
    let bytes = serde_json::to_vec(&batch).map_err(ApiError::internal)?;
    let validated = validate(&bytes, &ValidateOptions::import(now)).map_err(|e| {
        let mut err = ApiError::from(e);
        err.message = at(err.message);
        err
    })?;
    if !validated.site_id.is_empty() && validated.site_id != site.id {
        return Err(ApiError::bad_request(
            "site_mismatch",
            at(format!(
                "`site_id` is `{}` but the path names site `{}`",
                validated.site_id, site.id
            )),
        ));
    }
    let (geo, agent) = context.enrichment();
    Ok(Prepared {
        validated,
        geo,
        agent,
    })
}

/// Handles `POST /v1/sites/{site}/events:import`.
pub async fn import(
    req: &mut Request,
    store: &Store,
    site: &SiteConfig,
    now: i64,
) -> ApiResult<Response> {
    let body = body(req, MAX_WRITE_BODY_BYTES).await?;
    let prepared = batches(&body)?
        .into_iter()
        .enumerate()
        .map(|(i, b)| prepare(i, b, site, now))
        .collect::<ApiResult<Vec<_>>>()?;
    let mut answer = ImportEventsResponse {
        results: Vec::new(),
        accepted: 0,
        duplicates: 0,
        rejected: 0,
    };
    for p in &prepared {
        let v = &p.validated;
        let rows = ingest::rows_from(v);
        let leads = ingest::leads_from(&site.id, v);
        let stored = store
            .insert_batch(&NewEvents {
                site_id: &site.id,
                visitor_id: &v.visitor_id,
                rows: &rows,
                geo: &p.geo,
                agent: &p.agent,
                leads: &leads,
                // trusted writer: no visitor quota
                quota: Quota {
                    since: i64::MIN / 2,
                    max_events: i64::MAX / 2,
                },
            })
            .await?;
        let already: HashSet<String> = rows
            .iter()
            .zip(&stored)
            .filter(|(_, s)| **s != Stored::New)
            .map(|(r, _)| r.event_id.clone())
            .collect();
        let new_from = rows
            .iter()
            .zip(&stored)
            .filter(|(_, s)| **s == Stored::New)
            .map(|(r, _)| r.derived_ts)
            .min();
        if let Some(at) = new_from {
            ingest::resessionize(store, site, &v.visitor_id, at).await?;
        }
        let r = v.response(&already, None);
        answer.accepted += r.accepted;
        answer.duplicates += r.duplicates;
        answer.rejected += r.rejected;
        answer.results.extend(r.results);
    }
    Ok(Response::from_json(&answer)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_batch_an_array_or_lines() {
        assert_eq!(batches(br#"{"visitor_id":"v"}"#).map(|b| b.len()), Ok(1));
        assert_eq!(batches(br#"[{"a":1},{"a":2}]"#).map(|b| b.len()), Ok(2));
        assert_eq!(batches(b"{\"a\":1}\n\n{\"a\":2}\n").map(|b| b.len()), Ok(2));
        assert_eq!(
            batches(b"{\"a\":1}\n{oops").map_err(|e| e.code),
            Err("malformed_json")
        );
        assert_eq!(batches(b"  ").map_err(|e| e.code), Err("empty_batch"));
        assert_eq!(batches(b"[]").map_err(|e| e.code), Err("empty_batch"));
    }

    #[test]
    fn context_overrides_the_user_agent() {
        let ctx = EventContext {
            country: Some("de".into()),
            user_agent: Some(
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)".into(),
            ),
            ..EventContext::default()
        };
        let (geo, agent) = ctx.enrichment();
        assert_eq!(geo.country.as_deref(), Some("DE"));
        assert!(agent.is_bot);
        let (_, agent) = EventContext {
            device_type: Some("mobile".into()),
            ..EventContext::default()
        }
        .enrichment();
        assert_eq!(
            (agent.device_type.as_str(), agent.is_bot),
            ("mobile", false)
        );
    }
}
