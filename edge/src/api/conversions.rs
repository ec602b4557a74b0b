//! `POST /v1/sites/{site}/conversions` and `POST .../conversions:import` (write key): a
//! lead became a customer, or a deal reached a CRM stage.
//!
//! Bodies and CSV rows are read by `closeloop_core::import` (amounts to minor units, dates,
//! stages, HubSpot / Salesforce headers). Here:
//! - **the lead**: `lead_id` as given, else the id the lead of `email` has — or will have,
//!   as lead ids are derived from (site, email) ([`crate::ingest::lead_id`]); so a deal
//!   for an email no visitor has given yet is kept and counted as soon as one does;
//! - **currency**: the site's reporting currency, or another with `exchange_rate` (units
//!   of the reporting currency per unit of the other), else 400 `exchange_rate_required`;
//! - **idempotency** on (deal_id, stage): the same values again are `unchanged` (200);
//!   other values are 409 `deal_conflict` with `error.existing` and `error.sent` (in a CSV,
//!   that row is `rejected` with the same code);
//! - **erased leads**: a deal whose lead id or email has a tombstone (the lead was erased)
//!   is refused, 409 `lead_erased` (a CSV row: `rejected`), and nothing is stored.

use super::{
    body, convert, error_response, json_object_body, query_pairs, row_error_response,
    MAX_WRITE_BODY_BYTES,
};
use crate::error::{ApiError, ApiResult};
use crate::ingest::lead_id;
use crate::store::reporting::{ConversionEntry, PutConversion};
use crate::store::{SiteConfig, Store};
use closeloop_core::import::{
    conversion_from_json, parse_conversions, ConversionRecord, ImportOptions, RowError,
};
use closeloop_core::report::KIND_CUSTOMER;
use closeloop_core::time::format_rfc3339;
use serde::Serialize;
use serde_json::{json, Value};
use worker::{Request, Response};

/// Why a conversion of an erased lead is refused.
const ERASED: &str = "this lead was erased; nothing was stored (a manage key can lift its \
                      tombstone: DELETE /v1/sites/{site}/tombstones/{email})";

/// The API's view of a stored conversion (OpenAPI `Conversion`).
pub fn conversion_json(c: &ConversionEntry) -> Value {
    json!({
        "deal_id": c.deal_id,
        "lead_id": c.lead_id,
        "email": c.email,
        "kind": c.kind,
        "revenue": c.revenue,
        "currency": c.currency,
        "original_revenue": c.original_revenue,
        "original_currency": c.original_currency,
        "exchange_rate": c.exchange_rate,
        "closed_at": format_rfc3339(c.closed_at),
        "received_at": format_rfc3339(c.received_at),
    })
}

/// A parsed record made ready to store for `site`, or the row error.
pub fn entry(
    rec: ConversionRecord,
    site: &SiteConfig,
    now: i64,
) -> Result<ConversionEntry, (String, String)> {
    let lead = match (&rec.lead_id, &rec.email) {
        (Some(l), _) if !l.trim().is_empty() => l.trim().to_string(),
        (_, Some(e)) => lead_id(&site.id, e),
        _ => {
            return Err((
                "missing_value".into(),
                "the conversion needs `email` or `lead_id`".into(),
            ))
        }
    };
    let (revenue, rate) = convert(
        rec.revenue,
        &rec.currency,
        &site.currency,
        rec.exchange_rate,
    )
    .map_err(|(c, m)| (c.to_string(), m))?;
    Ok(ConversionEntry {
        deal_id: rec.deal_id,
        kind: rec.stage.unwrap_or_else(|| KIND_CUSTOMER.to_string()),
        lead_id: lead,
        email: rec.email,
        revenue,
        currency: site.currency.clone(),
        original_revenue: rec.revenue,
        original_currency: rec.currency,
        exchange_rate: rate,
        closed_at: rec.closed_at,
        received_at: now,
    })
}

fn options(site: &SiteConfig, pairs: &[(String, String)]) -> ApiResult<ImportOptions> {
    super::import_options(site, pairs, None)
}

/// Handles `POST /v1/sites/{site}/conversions`.
pub async fn create(
    req: &mut Request,
    store: &Store,
    site: &SiteConfig,
    now: i64,
) -> ApiResult<Response> {
    let sent = json_object_body(req).await?;
    let pairs = query_pairs(req)?;
    let rec = match conversion_from_json(&sent, &options(site, &pairs)?) {
        Ok(r) => r,
        Err(e) => return row_error_response(&e),
    };
    let entry = match entry(rec, site, now) {
        Ok(e) => e,
        Err((code, message)) => return error_response(400, &code, &message, None),
    };
    let before = store
        .put_conversions(&site.id, std::slice::from_ref(&entry))
        .await?;
    match before.into_iter().next() {
        None | Some(PutConversion::Created) => Ok(Response::from_json(&json!({
            "status": "created",
            "conversion": conversion_json(&entry),
        }))?
        .with_status(201)),
        Some(PutConversion::Erased) => error_response(409, "lead_erased", ERASED, None),
        Some(PutConversion::Existing(old)) if old.same_values(&entry) => {
            Ok(Response::from_json(&json!({
                "status": "unchanged",
                "conversion": conversion_json(&old),
            }))?)
        }
        Some(PutConversion::Existing(old)) => error_response(
            409,
            "deal_conflict",
            &format!(
                "deal `{}` ({}) was stored before with other values; nothing was changed",
                old.deal_id, old.kind
            ),
            Some(json!({ "existing": conversion_json(&old), "sent": sent })),
        ),
    }
}

/// One CSV row's outcome (OpenAPI `RowResult`).
#[derive(Debug, Serialize)]
pub struct RowOutcome {
    /// The line on which the row starts.
    pub row: u64,
    /// `created`, `unchanged`, `replaced` or `rejected`.
    pub status: &'static str,
    /// The deal (conversions) when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deal_id: Option<String>,
    /// Why it was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

impl RowOutcome {
    /// A refused row.
    pub fn rejected(row: u64, deal_id: Option<String>, code: &str, message: &str) -> Self {
        RowOutcome {
            row,
            status: "rejected",
            deal_id,
            error: Some(json!({ "code": code, "message": message })),
        }
    }
}

/// The answer of an import (OpenAPI `ImportRowsResponse`).
pub fn rows_response(rows: Vec<RowOutcome>, with_replaced: bool) -> ApiResult<Response> {
    let count = |s: &str| rows.iter().filter(|r| r.status == s).count();
    let mut body = json!({
        "created": count("created"),
        "unchanged": count("unchanged"),
        "rejected": count("rejected"),
    });
    if with_replaced {
        body["replaced"] = json!(count("replaced"));
    }
    body["rows"] = serde_json::to_value(&rows).map_err(ApiError::internal)?;
    Ok(Response::from_json(&body)?)
}

/// Handles `POST /v1/sites/{site}/conversions:import` (text/csv).
pub async fn import(
    req: &mut Request,
    store: &Store,
    site: &SiteConfig,
    now: i64,
) -> ApiResult<Response> {
    let bytes = body(req, MAX_WRITE_BODY_BYTES).await?;
    let pairs = query_pairs(req)?;
    let parsed = match parse_conversions(&bytes, &options(site, &pairs)?) {
        Ok(rows) => rows,
        Err(e) => return error_response(400, &e.code, &e.message, None),
    };
    let mut outcomes: Vec<Option<RowOutcome>> = Vec::with_capacity(parsed.len());
    let mut entries: Vec<(usize, u64, ConversionEntry)> = Vec::new();
    for r in parsed {
        let row = r.row;
        match r
            .result
            .map_err(|e: RowError| (e.code, e.message))
            .and_then(|rec| {
                let deal = rec.deal_id.clone();
                entry(rec, site, now).map_err(|(c, m)| (c, format!("deal `{deal}`: {m}")))
            }) {
            Ok(e) => {
                entries.push((outcomes.len(), row, e));
                outcomes.push(None);
            }
            Err((code, message)) => {
                outcomes.push(Some(RowOutcome::rejected(row, None, &code, &message)))
            }
        }
    }
    let list: Vec<ConversionEntry> = entries.iter().map(|(_, _, e)| e.clone()).collect();
    let before = store.put_conversions(&site.id, &list).await?;
    for ((slot, row, e), old) in entries.into_iter().zip(before) {
        let outcome = match old {
            PutConversion::Created => RowOutcome {
                row,
                status: "created",
                deal_id: Some(e.deal_id),
                error: None,
            },
            PutConversion::Erased => {
                RowOutcome::rejected(row, Some(e.deal_id.clone()), "lead_erased", ERASED)
            }
            PutConversion::Existing(old) if old.same_values(&e) => RowOutcome {
                row,
                status: "unchanged",
                deal_id: Some(e.deal_id),
                error: None,
            },
            PutConversion::Existing(_) => RowOutcome::rejected(
                row,
                Some(e.deal_id.clone()),
                "deal_conflict",
                &format!(
                    "deal `{}` ({}) was stored before with other values; this row was not kept",
                    e.deal_id, e.kind
                ),
            ),
        };
        if let Some(s) = outcomes.get_mut(slot) {
            *s = Some(outcome);
        }
    }
    rows_response(outcomes.into_iter().flatten().collect(), false)
}
