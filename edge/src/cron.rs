//! The cron trigger's work (every minute, `[triggers] crons` in wrangler.toml; also
//! `POST /v1/admin/cron:run`): the sessionisation `POST /v1/collect` deferred, then webhook
//! deliveries — all inside D1's statements per invocation.
//!
//! D1 counts every statement of a `batch()` against the 1000 a Worker invocation may run
//! (Workers Paid), and subrequests (the deliveries' POSTs) share that figure. One run
//! spends at most [`BUDGET`] of them: the flush first, up to
//! [`crate::ingest::FLUSH_STATEMENTS`] (it sizes each chunk and writes only the visitors
//! whose sessions fit, the rest stay queued), then deliveries, each claimed only when
//! [`crate::delivery::COST_PER_DELIVERY`] more fits. A backlog is worked off over
//! successive runs; none fails half-way for running out of queries. The store counts the
//! statements it prepares ([`Store::statements`]), and the answer of
//! `POST /v1/admin/cron:run` reports the count.

use crate::delivery::{self, RunSummary};
use crate::error::ApiResult;
use crate::ingest::{self, Flushed};
use crate::store::{Store, D1_STATEMENTS_PER_INVOCATION};
use worker::Env;

/// D1 statements and subrequests one run may use (of
/// [`D1_STATEMENTS_PER_INVOCATION`]; the rest is margin for the site lookups and the KV
/// cache, which D1 does not count, and for anything this accounting misses).
pub const BUDGET: u32 = D1_STATEMENTS_PER_INVOCATION - 100;

/// What one run did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CronSummary {
    /// The sessionisation.
    pub sessions: Flushed,
    /// The deliveries.
    pub webhooks: RunSummary,
    /// D1 statements the run prepared (each is run once).
    pub d1_statements: u32,
    /// Deliveries attempted (each a subrequest).
    pub subrequests: u32,
}

/// One run of the cron's work. A failed flush does not keep the deliveries from running.
pub async fn run(store: &Store, env: &Env, now: i64) -> ApiResult<CronSummary> {
    let sessions = match ingest::flush_sessions(store, None, crate::CRON_FLUSH_ROUNDS).await {
        Ok(f) => f,
        Err(e) => {
            worker::console_error!("session flush failed: {}", e.message);
            Flushed::default()
        }
    };
    let webhooks = delivery::run(store, env, None, now, BUDGET).await?;
    // the received-day counters past their use (visitor quotas of earlier days, health
    // counters past 90 days), a bounded number of rows per run (two statements)
    let today = closeloop_core::health::day_of(now);
    if let Err(e) = store
        .prune_counters(today, crate::api::health::MAX_DAYS, crate::PRUNE_ROWS)
        .await
    {
        worker::console_error!("pruning counters failed: {}", e.message);
    }
    let subrequests = webhooks.delivered + webhooks.failed;
    Ok(CronSummary {
        sessions,
        webhooks,
        d1_statements: store.statements(),
        subrequests,
    })
}
