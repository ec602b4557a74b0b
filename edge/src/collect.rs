//! `POST /v1/collect`, the handler: reads the body (bounded), has core validate it, finds
//! the site (the directory first), requires an allowed `Origin`, checks the site's daily cap
//! and the rate limits, applies the site's rules ([`crate::trust`]), then runs the stages of
//! [`crate::ingest`] and stores the batch, its leads, day counters and tallies in one D1
//! batch. Every refusal is counted and kept as a bad row ([`crate::tally`]).

use crate::body;
use crate::error::{ApiError, ApiResult};
use crate::ingest::{ack_touch, enrich_request, leads_from, rows_from};
use crate::limits;
use crate::store::trust::NewBadRow;
use crate::store::{NewEvents, Quota, SiteConfig, Store, Stored};
use crate::tally;
use crate::trust::{self, LeadSource};
use closeloop_core::badrow;
use closeloop_core::health::{self, metric};
use closeloop_core::validate::{validate, ValidateOptions, Validated};
use closeloop_core::wire::{self, CollectResponse, ErrorDetail, Status};
use std::collections::HashSet;
use worker::{Context, Env, Request, Response};

/// How long an isolate answers a site over its daily cap from memory (429, no D1
/// access) before it asks D1 again (so a raised cap takes effect within this time).
const CAPPED_MEMORY_MS: i64 = 60_000;

thread_local! {
    /// Sites this isolate found over their daily cap: id → (day, until).
    static CAPPED: std::cell::RefCell<std::collections::HashMap<String, (i64, i64)>> =
        Default::default();
}

/// 429 `site_quota_exceeded`, retried after the UTC day ends.
fn site_quota_error(site: &SiteConfig, now: i64) -> ApiError {
    let mut e = ApiError::new(
        429,
        "site_quota_exceeded",
        format!(
            "site `{}` has stored its {} events for today (UTC); more are refused until \
             midnight UTC",
            site.id, site.trust.max_events_per_day
        ),
    );
    e.retry_after = Some(health::seconds_to_next_day(now));
    e
}

/// Whether this isolate already knows the site is over its cap today.
fn known_capped(site_id: &str, day: i64, now: i64) -> bool {
    CAPPED.with(|c| {
        c.borrow()
            .get(site_id)
            .is_some_and(|(d, until)| *d == day && now < *until)
    })
}

/// Counts a refused batch of a known site and keeps its bad row (sampled); the caller then
/// writes the tallies when due ([`tally::settle`]).
fn refuse(site: &SiteConfig, e: &ApiError, body: &[u8], visitor_id: Option<String>, now: i64) {
    tally::count(&site.id, health::day_of(now), &metric::refused(e.code), 1);
    tally::bad_row(trust::refused_row(site, now, e, body, visitor_id));
}

/// Handles `POST /v1/collect`. Returns the answer and, once the site is known, the
/// request's origin when that site allows it (for the CORS header).
pub async fn collect(
    mut req: Request,
    env: &Env,
    ctx: &Context,
    received_at: i64,
) -> (ApiResult<Response>, Option<String>) {
    let origin = req.headers().get("Origin").ok().flatten();
    let mut allowed_origin = None;
    let result = async {
        let store = Store::from_env(env)?;
        let day = health::day_of(received_at);
        let body = match body::read(&mut req, wire::MAX_BODY_BYTES).await {
            Ok(b) => b,
            Err(e) => {
                // unread: no site to file it under
                tally::unknown_site("(body too large)");
                return Err(e);
            }
        };
        let mut validated = match validate(&body, &ValidateOptions::collect(received_at)) {
            Ok(v) => v,
            Err(e) => {
                let e = ApiError::from(e);
                let site = match badrow::site_id_hint(&body) {
                    Some(id) => store.site(&id).await?,
                    None => None,
                };
                match site {
                    Some(site) => {
                        refuse(&site, &e, &body, None, received_at);
                        tally::settle(&store, env, Some(ctx)).await;
                    }
                    None => tally::unknown_site("(unreadable batch)"),
                }
                return Err(e);
            }
        };
        let Some(site) = store.site(&validated.site_id).await? else {
            tally::unknown_site(&validated.site_id);
            return Err(ApiError::new(
                404,
                "unknown_site",
                format!("no site `{}`", validated.site_id),
            ));
        };
        let visitor = Some(validated.visitor_id.clone());
        let checks = async {
            allowed_origin = Some(trust::check_origin(origin.as_deref(), &site)?);
            if known_capped(&site.id, day, received_at) {
                return Err(site_quota_error(&site, received_at));
            }
            limits::rate_limit(
                env,
                &store,
                &req,
                &site.id,
                &validated.visitor_id,
                received_at,
            )
            .await
        };
        if let Err(e) = checks.await {
            refuse(&site, &e, &body, visitor, received_at);
            tally::settle(&store, env, Some(ctx)).await;
            return Err(e);
        }
        // Global Privacy Control: nothing of the batch is stored, every event is answered
        // as refused (`gpc`) so that the tracker drops it
        if crate::privacy::gpc(&req) {
            return Ok(Response::from_json(&crate::privacy::gpc_answer(
                &validated,
            ))?);
        }
        trust::apply_rules(&mut validated, &site);
        for r in &validated.rejected {
            tally::count(&site.id, day, &metric::rejected(r.code.as_str()), 1);
        }
        for row in trust::rejected_rows(&site, &validated, &body, received_at) {
            tally::bad_row(row);
        }
        if validated.clock_skewed() {
            tally::count(&site.id, day, health::CLOCK_SKEW, 1);
        }
        let (geo, agent) = enrich_request(&req);
        let geo = crate::privacy::minimise_geo(geo, &site.privacy);
        let mut rows = rows_from(&validated);
        crate::privacy::clean_rows(&mut rows, &site);
        if rows.is_empty() {
            tally::settle(&store, env, Some(ctx)).await;
            return Ok(Response::from_json(
                &validated.response(&HashSet::new(), None),
            )?);
        }
        let verifies = site.trust.identity_secret.is_some();
        let leads = leads_from(&site.id, &validated, LeadSource::Beacon { verifies });
        if site.shards > 0 {
            let answer = to_shard(env, &site, &validated, &body, &rows, &leads, &geo, &agent).await;
            tally::settle(&store, env, Some(ctx)).await;
            return match answer {
                Ok(a) => Ok(Response::from_json(&a)?),
                Err(e) => {
                    if e.status == 429 {
                        remember_capped(&site.id, day, received_at);
                        refuse(&site, &e, &body, visitor, received_at);
                        tally::settle(&store, env, Some(ctx)).await;
                    }
                    Err(e)
                }
            };
        }
        let (counts, bad_rows) = tally::take(tally::MAX_PIGGYBACK);
        let inserted = store
            .insert_batch_queued(&NewEvents {
                site_id: &site.id,
                visitor_id: &validated.visitor_id,
                rows: &rows,
                geo: &geo,
                agent: &agent,
                leads: &leads,
                quota: Some(Quota {
                    day,
                    max_visitor_events: site.max_events_per_visitor_day,
                    max_site_events: site.trust.max_events_per_day,
                }),
                dropped: i64::from(validated.dropped.min(MAX_DROPPED_PER_BATCH)),
                counts: &counts,
                bad_rows: &bad_rows,
            })
            .await;
        let inserted = match inserted {
            Ok(i) => i,
            Err(e) => {
                tally::put_back(counts, bad_rows);
                return Err(e);
            }
        };
        let stored = inserted.stored;
        if stored.contains(&Stored::OverSiteQuota) {
            remember_capped(&site.id, day, received_at);
            let e = site_quota_error(&site, received_at);
            refuse(&site, &e, &body, visitor, received_at);
            tally::settle(&store, env, Some(ctx)).await;
            return Err(e);
        }
        let ids_where = |what: Stored| -> HashSet<String> {
            rows.iter()
                .zip(&stored)
                .filter(|(_, s)| **s == what)
                .map(|(r, _)| r.event_id.clone())
                .collect()
        };
        let already = ids_where(Stored::AlreadyThere);
        let over_quota = ids_where(Stored::OverQuota);
        let erased = ids_where(Stored::Erased);
        let kept = rows
            .iter()
            .zip(&stored)
            .filter(|(_, s)| matches!(**s, Stored::New | Stored::AlreadyThere))
            .map(|(r, _)| r);
        let touch = ack_touch(kept, inserted.anchor, &site);
        let answer = refuse_over_quota(validated.response(&already, touch), &over_quota, &site);
        let answer = crate::privacy::refuse(
            answer,
            &erased,
            crate::privacy::ERASED_CODE,
            crate::privacy::ERASED_MESSAGE,
        );
        if !over_quota.is_empty() {
            count_over_quota(&site, &validated, &answer, &body, received_at);
            tally::settle(&store, env, Some(ctx)).await;
        }
        Ok(Response::from_json(&answer)?)
    }
    .await;
    (result, allowed_origin)
}

/// Remembers in this isolate that the site is over its daily cap (see [`known_capped`]).
fn remember_capped(site_id: &str, day: i64, now: i64) {
    CAPPED.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= 1_000 {
            c.clear();
        }
        c.insert(site_id.to_owned(), (day, now + CAPPED_MEMORY_MS));
    });
}

/// The code of an event older than what the visitor's shard still keeps raw.
pub const BEYOND_RETENTION: &str = "beyond_retention";

/// A sharded site's batch (issue 14): the visitor's shard deduplicates it, checks the
/// quotas, builds the sessions and answers per event; the answer is the tracker's, as
/// for a site in D1 (a site over its daily cap: 429 `site_quota_exceeded`, the whole
/// batch to be sent again later, its stored events then duplicates).
#[allow(clippy::too_many_arguments)]
async fn to_shard(
    env: &Env,
    site: &SiteConfig,
    validated: &Validated,
    body: &[u8],
    rows: &[crate::store::EventRow],
    leads: &[crate::store::LeadRow],
    geo: &crate::enrich::Geo,
    agent: &crate::enrich::Agent,
) -> ApiResult<closeloop_core::wire::CollectResponse> {
    use crate::shard::msg::Outcome;
    let batch = crate::shard::client::batch(
        site,
        &validated.visitor_id,
        rows.first().map_or(0, |r| r.received_at),
        rows,
        leads,
        geo,
        agent,
    );
    let answer = crate::shard::client::ingest(env, site, &batch).await?;
    let received_at = batch.received_at;
    if answer
        .results
        .iter()
        .any(|(_, o)| *o == Outcome::SiteQuotaExceeded)
    {
        return Err(site_quota_error(site, received_at));
    }
    let ids_where = |what: Outcome| -> HashSet<String> {
        answer
            .results
            .iter()
            .filter(|(_, o)| *o == what)
            .map(|(id, _)| id.clone())
            .collect()
    };
    let already = ids_where(Outcome::Duplicate);
    let over_quota = ids_where(Outcome::VisitorQuotaExceeded);
    let beyond = ids_where(Outcome::BeyondRetention);
    let response = refuse_over_quota(
        validated.response(&already, answer.touch.clone()),
        &over_quota,
        site,
    );
    let response = crate::privacy::refuse(
        response,
        &beyond,
        BEYOND_RETENTION,
        "older than the raw events the site keeps (its retention)",
    );
    if !over_quota.is_empty() {
        count_over_quota(site, validated, &response, body, received_at);
    }
    Ok(response)
}

/// The most `dropped` one batch may report (a tracker's queue holds 500 events; a
/// forged batch cannot inflate the health figure by more than this).
const MAX_DROPPED_PER_BATCH: u32 = 10_000;

/// Counts the events the visitor quota refused and keeps their bad rows (sampled).
fn count_over_quota(
    site: &SiteConfig,
    v: &Validated,
    answer: &CollectResponse,
    body: &[u8],
    at: i64,
) {
    let refused: Vec<&wire::EventResult> = answer
        .results
        .iter()
        .filter(|r| {
            r.error
                .as_ref()
                .is_some_and(|e| e.code == VISITOR_QUOTA_EXCEEDED)
        })
        .collect();
    let day = health::day_of(at);
    tally::count(
        &site.id,
        day,
        &metric::rejected(VISITOR_QUOTA_EXCEEDED),
        refused.len() as i64,
    );
    let raw = badrow::raw_events(body);
    for r in refused {
        let Some(e) = v.events.iter().find(|e| e.event.id == r.id) else {
            continue;
        };
        let (text, truncated) = raw.get(e.index).map(badrow::raw_text).unwrap_or_default();
        tally::bad_row(NewBadRow {
            site_id: site.id.clone(),
            kept: site.trust.bad_rows_kept,
            at,
            kind: badrow::Kind::Event,
            reason: VISITOR_QUOTA_EXCEEDED.to_string(),
            message: r
                .error
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_default(),
            event_id: Some(r.id.clone()),
            visitor_id: Some(v.visitor_id.clone()),
            raw: text,
            truncated,
        });
    }
}

/// The code of an event refused by the visitor quota.
pub const VISITOR_QUOTA_EXCEEDED: &str = "visitor_quota_exceeded";

/// Marks the events the visitor quota refused as rejected (`visitor_quota_exceeded`)
/// and recounts.
pub fn refuse_over_quota(
    mut answer: CollectResponse,
    over: &HashSet<String>,
    site: &SiteConfig,
) -> CollectResponse {
    if over.is_empty() {
        return answer;
    }
    for r in answer.results.iter_mut() {
        if r.status == Status::Accepted && over.contains(&r.id) {
            r.status = Status::Rejected;
            r.error = Some(ErrorDetail {
                code: VISITOR_QUOTA_EXCEEDED.into(),
                message: format!(
                    "this visitor has stored its {} events for today (UTC)",
                    site.max_events_per_visitor_day
                ),
            });
        }
    }
    let count = |s: Status| answer.results.iter().filter(|r| r.status == s).count() as u32;
    answer.accepted = count(Status::Accepted);
    answer.duplicates = count(Status::Duplicate);
    answer.rejected = count(Status::Rejected);
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> SiteConfig {
        SiteConfig::for_tests()
    }

    #[test]
    fn events_over_the_quota_become_rejections() {
        let ok = |id: &str| wire::EventResult {
            id: id.into(),
            status: Status::Accepted,
            error: None,
        };
        let answer = CollectResponse {
            results: vec![
                ok("a"),
                ok("b"),
                wire::EventResult {
                    id: "c".into(),
                    status: Status::Duplicate,
                    error: None,
                },
            ],
            accepted: 2,
            duplicates: 1,
            rejected: 0,
            touch: None,
        };
        let over: HashSet<String> = ["b".to_string()].into();
        let out = refuse_over_quota(answer, &over, &site());
        assert_eq!((out.accepted, out.duplicates, out.rejected), (1, 1, 1));
        assert_eq!(out.results[1].status, Status::Rejected);
        assert_eq!(
            out.results[1].error.as_ref().map(|e| e.code.as_str()),
            Some("visitor_quota_exceeded")
        );
    }
}
