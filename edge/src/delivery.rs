//! Webhook deliveries: one run claims what is due and sends it, fairly, with a timeout,
//! without following redirects, only to targets that pass `closeloop_core::netguard` at
//! the moment of sending.
//!
//! - **Claim** ([`crate::store::Store::claim_deliveries`]): at most [`PER_SITE`] deliveries
//!   per site and [`MAX_PER_RUN`] in all, sites taking turns, leased to this run: two runs
//!   at once (the cron trigger, `webhooks:deliver`) never send the same delivery.
//! - **Fairness**: each site's claimed deliveries form a lane, sent in order; lanes run
//!   side by side, [`LANES`] at a time (a Worker keeps six connections open at once), so a
//!   slow or failing receiver holds only its own lane. A receiver that does not answer
//!   (timeout, network error) ends its lane for this run (the rest of that lane is released
//!   for the next run), so a dead receiver costs one timeout per run; one site's backlog is
//!   served [`PER_SITE`] at a time.
//! - **Timeout**: [`TIMEOUT_MS`] per delivery, then the request is aborted and the attempt
//!   counts as failed (retried with backoff, same delivery id: receivers dedupe on it).
//! - **Redirects** are never followed (`redirect: manual`): a 3xx is a failed attempt.
//! - **Targets** are checked again before each delivery ([`netguard::check_target`]): a
//!   webhook stored before the rule, or whose URL was changed in D1, is refused at delivery
//!   and given up at once (nothing is sent).
//! - **Budget**: a run claims no more than its share of the invocation's D1 statements
//!   (and subrequests) allows, [`COST_PER_DELIVERY`] each.
//!
//! Delivery is at least once per delivery id: a receiver that answers after the timeout
//! (or a run that dies before recording) gets the same delivery again later.

use crate::api::webhooks::{payload, retry_at, signature};
use crate::error::ApiResult;
use crate::store::webhooks::DueDelivery;
use crate::store::{SiteConfig, Store};
use closeloop_core::netguard;
use futures_util::future::{select, Either};
use futures_util::stream::{FuturesUnordered, StreamExt};
use wasm_bindgen::JsValue;
use worker::{
    AbortController, Delay, Env, Fetch, Headers, Method, Request, RequestInit, RequestRedirect,
};

/// How long a receiver may take to answer, ms.
pub const TIMEOUT_MS: u64 = 10_000;
/// Deliveries claimed per site per run.
pub const PER_SITE: i64 = 20;
/// Deliveries claimed per run, at most.
pub const MAX_PER_RUN: i64 = 100;
/// Sites served side by side.
pub const LANES: usize = 6;
/// D1 statements (payload reads, the record) and subrequests (the POST) one delivery
/// takes, at most.
pub const COST_PER_DELIVERY: u32 = 8;

/// Whether the local-test switch is on (`WEBHOOKS_ALLOW_LOOPBACK` set to exactly
/// [`netguard::LOOPBACK_SWITCH_VALUE`]; see `closeloop_core::netguard`).
pub fn allow_loopback(env: &Env) -> bool {
    env.var("WEBHOOKS_ALLOW_LOOPBACK")
        .map(|v| v.to_string() == netguard::LOOPBACK_SWITCH_VALUE)
        .unwrap_or(false)
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunSummary {
    /// Delivered now.
    pub delivered: u32,
    /// Failed now (to be retried, or given up).
    pub failed: u32,
    /// Dropped (the lead or deal is gone).
    pub dropped: u32,
    /// Refused at delivery: the target is not a public https host (given up, not sent).
    pub refused: u32,
    /// Claimed but left for the next run (their lane stopped at a failure).
    pub released: u32,
}

/// Why an attempt did not deliver.
enum Failure {
    /// The receiver answered, but not 2xx (a redirect included): retry later.
    Answered(String),
    /// No answer (timeout, network error): retry later, and send nothing more to this
    /// site in this run.
    Unreachable(String),
    /// Never send: the target is refused.
    Refused(String),
}

/// Sends one delivery.
async fn send(d: &DueDelivery, body: &str, now: i64, loopback: bool) -> Result<(), Failure> {
    let url = netguard::check_target(&d.url, loopback)
        .map_err(|r| Failure::Refused(format!("target refused ({}): {}", r.code, r.message)))?;
    let retry = |e: worker::Error| Failure::Unreachable(e.to_string());
    let headers = Headers::new();
    let t = now.div_euclid(1000);
    let mut sig = signature(&d.secret, t, body);
    if let Some(previous) = &d.previous_secret {
        // during a rotation both secrets sign: `t=..,v1=<new>,v1=<previous>`
        let old = signature(previous, t, body);
        if let Some((_, v1)) = old.split_once(',') {
            sig = format!("{sig},{v1}");
        }
    }
    headers
        .set("Content-Type", "application/json")
        .map_err(retry)?;
    headers
        .set("User-Agent", "Closeloop-Webhooks/1")
        .map_err(retry)?;
    headers.set("Closeloop-Delivery", &d.id).map_err(retry)?;
    headers.set("Closeloop-Event", &d.kind).map_err(retry)?;
    headers.set("Closeloop-Signature", &sig).map_err(retry)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_redirect(RequestRedirect::Manual)
        .with_body(Some(JsValue::from_str(body)));
    let req = Request::new_with_init(url.as_str(), &init).map_err(retry)?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Box::pin(async move { Fetch::Request(req).send_with_signal(&signal).await });
    let timeout = Box::pin(Delay::from(std::time::Duration::from_millis(TIMEOUT_MS)));
    let resp = match select(fetch, timeout).await {
        Either::Left((resp, _)) => resp.map_err(retry)?,
        Either::Right(_) => {
            controller.abort();
            return Err(Failure::Unreachable(format!(
                "no answer within {} s",
                TIMEOUT_MS / 1000
            )));
        }
    };
    match resp.status_code() {
        200..=299 => Ok(()),
        s @ 300..=399 => Err(Failure::Answered(format!(
            "the receiver answered {s} (redirects are not followed)"
        ))),
        s => Err(Failure::Answered(format!("the receiver answered {s}"))),
    }
}

/// One site's claimed deliveries, in order; stops at the first receiver that does not
/// answer (timeout, network error) and releases the rest.
async fn lane(
    store: &Store,
    lease: &str,
    deliveries: Vec<DueDelivery>,
    now: i64,
    loopback: bool,
) -> ApiResult<RunSummary> {
    let mut summary = RunSummary::default();
    let mut left = deliveries.into_iter();
    for d in left.by_ref() {
        let Some(body) = payload(store, &d).await? else {
            store
                .record_attempt(&d.id, lease, now, Some("the lead or deal was erased"), None)
                .await?;
            summary.dropped += 1;
            continue;
        };
        match send(&d, &body.to_string(), now, loopback).await {
            Ok(()) => {
                store.record_attempt(&d.id, lease, now, None, None).await?;
                summary.delivered += 1;
            }
            Err(Failure::Refused(e)) => {
                store
                    .record_attempt(&d.id, lease, now, Some(&e), None)
                    .await?;
                summary.refused += 1;
            }
            Err(Failure::Answered(e)) => {
                let retry = retry_at(now, d.attempts + 1);
                store
                    .record_attempt(&d.id, lease, now, Some(&e), retry)
                    .await?;
                summary.failed += 1;
            }
            Err(Failure::Unreachable(e)) => {
                let retry = retry_at(now, d.attempts + 1);
                store
                    .record_attempt(&d.id, lease, now, Some(&e), retry)
                    .await?;
                summary.failed += 1;
                break;
            }
        }
    }
    let rest: Vec<String> = left.map(|d| d.id).collect();
    if !rest.is_empty() {
        summary.released += rest.len() as u32;
        store.release_deliveries(&rest, lease).await?;
    }
    Ok(summary)
}

/// Claims and sends what is due (one site, or every site), using at most `budget` D1
/// statements of the invocation in all (what was used before the run included).
pub async fn run(
    store: &Store,
    env: &Env,
    site: Option<&SiteConfig>,
    now: i64,
    budget: u32,
) -> ApiResult<RunSummary> {
    let room = budget.saturating_sub(store.statements() + 2 + LANES as u32);
    let total = MAX_PER_RUN.min(i64::from(room / COST_PER_DELIVERY));
    if total < 1 {
        return Ok(RunSummary::default());
    }
    let lease = crate::auth::random_hex(12)?;
    let claimed = store
        .claim_deliveries(site.map(|s| s.id.as_str()), now, &lease, PER_SITE, total)
        .await?;
    // one lane per site, in the order the claim gave
    let mut lanes: Vec<Vec<DueDelivery>> = Vec::new();
    for d in claimed {
        match lanes.iter_mut().find(|l| l[0].site_id == d.site_id) {
            Some(l) => l.push(d),
            None => lanes.push(vec![d]),
        }
    }
    let loopback = allow_loopback(env);
    let mut summary = RunSummary::default();
    let mut waiting = lanes.into_iter();
    let mut running = FuturesUnordered::new();
    for l in waiting.by_ref().take(LANES) {
        running.push(lane(store, &lease, l, now, loopback));
    }
    while let Some(done) = running.next().await {
        let s = done?;
        summary.delivered += s.delivered;
        summary.failed += s.failed;
        summary.dropped += s.dropped;
        summary.refused += s.refused;
        summary.released += s.released;
        if let Some(l) = waiting.next() {
            running.push(lane(store, &lease, l, now, loopback));
        }
    }
    Ok(summary)
}
