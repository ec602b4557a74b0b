//! Nothing dropped silently, at a bounded cost: the counters and bad rows of refused
//! batches and rejected events, gathered in the isolate's memory and written in as few
//! D1 statements as a flood allows.
//!
//! - **Counts** add up in memory per (site, day, metric) and are written as one upsert
//!   each: inside the next beacon's own insert batch (no extra round trip), or on their
//!   own when nothing else writes — at once when a bad row is waiting, else at most
//!   [`FLUSH_AFTER_MS`] after the first count (a delayed flush is scheduled with
//!   `waitUntil`, so counts are written even if no request follows).
//! - **Bad rows** are sampled: each isolate keeps at most [`BAD_ROWS_PER_MINUTE`] a
//!   minute per site; the rest are only counted. A flood of refused beacons therefore
//!   costs each isolate at most that many row writes a minute per site, plus one counter
//!   write per reason every [`FLUSH_AFTER_MS`].
//! - **Unknown sites** have nowhere to be filed (and filing them would let random ids
//!   write): they are only counted in memory and logged, one line a minute per isolate
//!   with the count and a few of the ids (Workers Logs keep them).
//!
//! Counts an isolate holds when it is evicted (at most [`FLUSH_AFTER_MS`] of refusals)
//! are lost: refusal counts are exact to within that, accepted and rejected counts of
//! stored batches are exact (written with the batch).

use crate::store::trust::{Count, NewBadRow};
use crate::store::Store;
use std::cell::RefCell;
use std::collections::HashMap;

/// Bad rows one isolate keeps per site and minute; beyond, refusals are only counted.
pub const BAD_ROWS_PER_MINUTE: u32 = 60;
/// Longest time a count waits in memory before it is written, ms.
pub const FLUSH_AFTER_MS: u64 = 10_000;
/// Most counters and bad rows written with one beacon's insert batch.
pub const MAX_PIGGYBACK: usize = 50;
/// Most distinct counters held in memory (a flush is forced beyond).
const MAX_PENDING_COUNTS: usize = 2_000;
/// Most sites whose bad-row budget is remembered (cleared when full).
const MAX_BUDGET_SITES: usize = 1_000;

#[derive(Default)]
struct Pending {
    counts: HashMap<(String, i64, String), i64>,
    rows: Vec<NewBadRow>,
    /// When the oldest pending count was added (ms).
    since: Option<u64>,
    /// Per site: the minute and the bad rows kept in it.
    budget: HashMap<String, (u64, u32)>,
    /// A delayed flush is waiting.
    scheduled: bool,
    /// Unknown-site refusals since the last log line, a few of their ids, and when that
    /// line was written.
    unknown: (u64, Vec<String>, u64),
}

thread_local! {
    static PENDING: RefCell<Pending> = RefCell::new(Pending::default());
}

fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

/// Adds `n` to a site's counter of `day`.
pub fn count(site_id: &str, day: i64, metric: &str, n: i64) {
    if n <= 0 {
        return;
    }
    let now = now_ms();
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        *p.counts
            .entry((site_id.to_string(), day, metric.to_string()))
            .or_default() += n;
        p.since.get_or_insert(now);
    });
}

/// Keeps `row` if its site's budget this minute allows; `false` when it was only counted.
pub fn bad_row(row: NewBadRow) -> bool {
    let now = now_ms();
    let minute = now / 60_000;
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        if p.budget.len() >= MAX_BUDGET_SITES && !p.budget.contains_key(&row.site_id) {
            p.budget.clear();
        }
        let slot = p.budget.entry(row.site_id.clone()).or_insert((minute, 0));
        if slot.0 != minute {
            *slot = (minute, 0);
        }
        if slot.1 >= BAD_ROWS_PER_MINUTE {
            return false;
        }
        slot.1 += 1;
        p.rows.push(row);
        true
    })
}

/// Takes up to `max` pending counters and bad rows (to write them with a batch).
pub fn take(max: usize) -> (Vec<Count>, Vec<NewBadRow>) {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let rows: Vec<NewBadRow> = {
            let k = p.rows.len().min(max);
            p.rows.drain(..k).collect()
        };
        let room = max.saturating_sub(rows.len());
        let keys: Vec<(String, i64, String)> = p.counts.keys().take(room).cloned().collect();
        let counts = keys
            .into_iter()
            .filter_map(|k| {
                let n = p.counts.remove(&k)?;
                Some(Count {
                    site_id: k.0,
                    day: k.1,
                    metric: k.2,
                    n,
                })
            })
            .collect();
        if p.counts.is_empty() {
            p.since = None;
        }
        (counts, rows)
    })
}

/// Puts back what a failed write took, so it is tried again.
pub fn put_back(counts: Vec<Count>, rows: Vec<NewBadRow>) {
    for c in counts {
        count(&c.site_id, c.day, &c.metric, c.n);
    }
    PENDING.with(|p| p.borrow_mut().rows.extend(rows));
}

/// Whether pending tallies should be written now: a bad row waits, a count has waited
/// [`FLUSH_AFTER_MS`], or too many counters are held.
pub fn due() -> bool {
    let now = now_ms();
    PENDING.with(|p| {
        let p = p.borrow();
        !p.rows.is_empty()
            || p.counts.len() >= MAX_PENDING_COUNTS
            || p.since
                .is_some_and(|since| now.saturating_sub(since) >= FLUSH_AFTER_MS)
    })
}

/// Writes everything pending (in chunks), putting back what a failed write took.
pub async fn flush(store: &Store) {
    loop {
        let (counts, rows) = take(MAX_PIGGYBACK);
        if counts.is_empty() && rows.is_empty() {
            return;
        }
        if let Err(e) = store.write_tallies(&counts, &rows).await {
            worker::console_error!("writing tallies failed: {}", e.message);
            put_back(counts, rows);
            return;
        }
    }
}

/// After a request that wrote nothing: writes the pending tallies now when [`due`],
/// else makes sure a delayed flush will (`waitUntil`, [`FLUSH_AFTER_MS`] later).
pub async fn settle(store: &Store, env: &worker::Env, ctx: Option<&worker::Context>) {
    if due() {
        flush(store).await;
        return;
    }
    let pending = PENDING.with(|p| p.borrow().since.is_some());
    let Some(ctx) = ctx.filter(|_| pending) else {
        return;
    };
    let first = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        !std::mem::replace(&mut p.scheduled, true)
    });
    if !first {
        return;
    }
    let env = env.clone();
    ctx.wait_until(async move {
        worker::Delay::from(std::time::Duration::from_millis(FLUSH_AFTER_MS)).await;
        PENDING.with(|p| p.borrow_mut().scheduled = false);
        if let Ok(store) = Store::from_env(&env) {
            flush(&store).await;
        }
    });
}

/// Counts a batch refused for a site that does not exist (not stored anywhere: there is
/// no site to file it under); logs the count once a minute.
pub fn unknown_site(id: &str) {
    let now = now_ms();
    let line = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let u = &mut p.unknown;
        u.0 += 1;
        if u.1.len() < 5 && !u.1.iter().any(|x| x == id) {
            u.1.push(id.chars().take(64).collect());
        }
        if now.saturating_sub(u.2) >= 60_000 {
            let line = format!(
                "{} batches refused for unknown sites since the last report (e.g. {:?})",
                u.0, u.1
            );
            *u = (0, Vec::new(), now);
            Some(line)
        } else {
            None
        }
    });
    if let Some(line) = line {
        worker::console_warn!("{line}");
    }
}
