//! `POST /v1/sites/{site}/spend` and `POST .../spend:import` (write key): marketing spend
//! for a day or a period, per channel and optionally source and campaign.
//!
//! Bodies and CSV rows are read by `closeloop_core::import`. A period is stored whole and
//! spread evenly over its days when a report reads it (`closeloop_core::costs`). The key
//! is (period, channel, source, campaign): a re-send replaces the amount (`replaced`, or
//! `unchanged` when it is the same). Another currency than the site's needs
//! `exchange_rate`, else 400 `exchange_rate_required`.

use super::conversions::{rows_response, RowOutcome};
use super::{
    body, convert, error_response, json_object_body, param, query_pairs, row_error_response,
    MAX_WRITE_BODY_BYTES,
};
use crate::error::ApiResult;
use crate::store::reporting::SpendEntry;
use crate::store::{SiteConfig, Store};
use closeloop_core::import::{parse_spend, spend_from_json, ImportOptions, SpendRecord};
use closeloop_core::time::{format_date, MS_PER_DAY};
use serde_json::{json, Value};
use worker::{Request, Response};

/// The API's view of stored spend (OpenAPI `Spend`).
pub fn spend_json(e: &SpendEntry) -> Value {
    json!({
        "amount": e.amount,
        "currency": e.currency,
        "start": format_date(e.first_day.saturating_mul(MS_PER_DAY)),
        "end": format_date(e.last_day.saturating_mul(MS_PER_DAY)),
        "channel": e.channel,
        "source": (!e.source.is_empty()).then_some(&e.source),
        "campaign": (!e.campaign.is_empty()).then_some(&e.campaign),
    })
}

/// A parsed record made ready to store for `site`, or the row error.
pub fn entry(
    rec: SpendRecord,
    site: &SiteConfig,
    now: i64,
) -> Result<SpendEntry, (String, String)> {
    let (amount, rate) = convert(rec.amount, &rec.currency, &site.currency, rec.exchange_rate)
        .map_err(|(c, m)| (c.to_string(), m))?;
    Ok(SpendEntry {
        first_day: rec.first_day,
        last_day: rec.last_day,
        channel: rec.channel,
        source: rec.source.unwrap_or_default(),
        campaign: rec.campaign.unwrap_or_default(),
        amount,
        currency: site.currency.clone(),
        original_amount: rec.amount,
        original_currency: rec.currency,
        exchange_rate: rate,
        received_at: now,
    })
}

fn options(site: &SiteConfig, pairs: &[(String, String)]) -> ApiResult<ImportOptions> {
    super::import_options(site, pairs, param(pairs, "channel").map(String::from))
}

fn status(before: Option<i64>, now: i64) -> &'static str {
    match before {
        None => "created",
        Some(b) if b == now => "unchanged",
        Some(_) => "replaced",
    }
}

/// Handles `POST /v1/sites/{site}/spend`.
pub async fn create(
    req: &mut Request,
    store: &Store,
    site: &SiteConfig,
    now: i64,
) -> ApiResult<Response> {
    let sent = json_object_body(req).await?;
    let pairs = query_pairs(req)?;
    let rec = match spend_from_json(&sent, &options(site, &pairs)?) {
        Ok(r) => r,
        Err(e) => return row_error_response(&e),
    };
    let entry = match entry(rec, site, now) {
        Ok(e) => e,
        Err((code, message)) => return error_response(400, &code, &message, None),
    };
    let before = store
        .put_spend(&site.id, std::slice::from_ref(&entry))
        .await?;
    let st = status(before.into_iter().next().flatten(), entry.amount);
    Ok(
        Response::from_json(&json!({ "status": st, "spend": spend_json(&entry) }))?
            .with_status(if st == "created" { 201 } else { 200 }),
    )
}

/// Handles `POST /v1/sites/{site}/spend:import` (text/csv).
pub async fn import(
    req: &mut Request,
    store: &Store,
    site: &SiteConfig,
    now: i64,
) -> ApiResult<Response> {
    let bytes = body(req, MAX_WRITE_BODY_BYTES).await?;
    let pairs = query_pairs(req)?;
    let parsed = match parse_spend(&bytes, &options(site, &pairs)?) {
        Ok(rows) => rows,
        Err(e) => return error_response(400, &e.code, &e.message, None),
    };
    let mut outcomes: Vec<Option<RowOutcome>> = Vec::with_capacity(parsed.len());
    let mut entries: Vec<(usize, u64, SpendEntry)> = Vec::new();
    for r in parsed {
        let row = r.row;
        match r
            .result
            .map_err(|e| (e.code, e.message))
            .and_then(|rec| entry(rec, site, now))
        {
            Ok(e) => {
                entries.push((outcomes.len(), row, e));
                outcomes.push(None);
            }
            Err((code, message)) => {
                outcomes.push(Some(RowOutcome::rejected(row, None, &code, &message)))
            }
        }
    }
    let list: Vec<SpendEntry> = entries.iter().map(|(_, _, e)| e.clone()).collect();
    let before = store.put_spend(&site.id, &list).await?;
    for ((slot, row, e), old) in entries.into_iter().zip(before) {
        if let Some(s) = outcomes.get_mut(slot) {
            *s = Some(RowOutcome {
                row,
                status: status(old, e.amount),
                deal_id: None,
                error: None,
            });
        }
    }
    rows_response(outcomes.into_iter().flatten().collect(), true)
}
