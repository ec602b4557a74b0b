//! The fault run (issue 13): many visits in headless Chromium, through the
//! fault-injecting [`crate::proxy`], against the real worker; at the end every event
//! the pages created must be stored exactly once.
//!
//! - **Pages**: the demo site (`demo-site/`), served on its own origin with its tag
//!   pointed at the proxy, so every beacon, `fetch` and `sendBeacon` crosses the proxy.
//! - **Visitors**: each is a fresh Chromium browser context (its own storage: its own
//!   visitor id and queue); several run at once in each browser. A visitor makes one to
//!   three visits (sometimes two tabs at once), each a seeded script of actions: SPA
//!   navigations, `history.back()`, full loads by clicking links, `track` bursts,
//!   `identify`, the demo form submitted (a full load to the thanks page), reloads, an
//!   offline spell (DevTools network emulation) and closing the tab right after an
//!   event (mid-send). Then "the next visit": a page of the same context that waits
//!   until the queue it inherited is empty, after which the context goes away.
//! - **The network**: the proxy's seeded plan (drops, delays, stalls, 500/503/429 with
//!   `Retry-After`, answers cut after the worker committed, duplicated requests), and
//!   the worker itself stopped and started again during the run.
//! - **What was created**: the tracker's own log. Each page defines
//!   `window.__closeloop_log` before the tag (a DevTools init script), and the tracker
//!   pushes every event id it queues into it; the push is forwarded at once over a
//!   DevTools binding, so ids created just before an unload or a tab close are known.
//! - **The check**: after the visits, faults are turned off and every visitor whose
//!   queue is not empty gets one more visit (bounded); then D1 is read: created ids
//!   stored once, twice (duplicated) or never (lost), and stored ids the log never saw
//!   (also counted as duplicated: an event the tracker made twice), per fault kind the
//!   events met and per action that created them.
//!
//! The same seed replays the same plan and scripts (timings, and so the exact
//! interleaving, still vary from run to run).

use crate::browser::Browser;
use crate::proxy::{Fault, Ledger, Plan, Proxy, SplitMix64};
use crate::site::StaticSite;
use crate::worker::Worker;
use crate::{free_port, root, Result};
use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod visits;
use visits::{drain, visitor_loop, ACTIONS};

/// The row of events that no request through the proxy ever carried.
const NO_REQUEST: &str = "never sent through the proxy";

/// How big a run is.
#[derive(Debug, Clone)]
pub struct Options {
    /// The seed of the proxy's plan and of every visit's script.
    pub seed: u64,
    /// No visit starts once the pages created this many events.
    pub events: usize,
    /// Chromium processes.
    pub browsers: usize,
    /// Visitors at once in each browser.
    pub visitors: usize,
    /// Times the worker is stopped and started again during the visits.
    pub restarts: usize,
    /// No visit starts after this long, whatever the count.
    pub time_limit: Duration,
}

impl Options {
    /// The quick run inside `cargo xtask test`: a few hundred events, one restart.
    pub fn quick(seed: u64) -> Options {
        Options {
            seed,
            events: 300,
            browsers: 1,
            visitors: 4,
            restarts: 1,
            time_limit: Duration::from_secs(75),
        }
    }

    /// The soak (`cargo xtask soak`): 10,000 events, a restart every ~2,000.
    pub fn soak(seed: u64) -> Options {
        Options {
            seed,
            events: 10_000,
            browsers: 2,
            visitors: 3,
            restarts: 5,
            time_limit: Duration::from_secs(3 * 3600),
        }
    }
}

/// One line of a report table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    /// A fault kind or an action.
    pub name: String,
    /// Collect requests that met the fault (fault rows only).
    pub requests: Option<u64>,
    /// Events created (in the tracker's log).
    pub created: usize,
    /// Of those, stored exactly once.
    pub stored: usize,
    /// Of those, stored more than once.
    pub duplicated: usize,
    /// Of those, not stored.
    pub lost: usize,
}

/// What a run found.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The seed (printed for a replay).
    pub seed: u64,
    /// Events the pages created (distinct ids in the tracker's log).
    pub created: usize,
    /// Created events stored exactly once.
    pub stored: usize,
    /// Created events stored more than once, plus stored events the log never saw.
    pub duplicated: usize,
    /// Created events not stored.
    pub lost: usize,
    /// Stored events of the site that no page logged.
    pub unlogged: usize,
    /// Ids the log saw twice (the tracker gave two events one id).
    pub logged_twice: usize,
    /// Lost events still in a browser's queue when the run gave up waiting.
    pub still_queued: usize,
    /// Per fault kind the events met.
    pub by_fault: Vec<Row>,
    /// Per action that created the events.
    pub by_action: Vec<Row>,
    /// Visits that ended early on an error of the browser or the harness (counted and
    /// shown; what their pages created is still checked).
    pub visit_errors: usize,
    /// Visits made, visitors (browser contexts), tabs opened.
    pub visits: usize,
    /// See [`Outcome::visits`].
    pub visitors: usize,
    /// Collect requests the proxy saw.
    pub requests: u64,
    /// Times the worker was taken down and up.
    pub restarts: usize,
    /// How long the visits and the final drain took.
    pub duration: Duration,
    /// A few lost or duplicated ids, for the failure message.
    pub examples: Vec<String>,
}

impl Outcome {
    /// Exactly once: nothing lost, nothing duplicated, nothing unexplained.
    pub fn ok(&self) -> bool {
        self.created > 0
            && self.lost == 0
            && self.duplicated == 0
            && self.unlogged == 0
            && self.logged_twice == 0
            && self.stored == self.created
    }

    /// The tables in Markdown.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "seed {}: {} events created by {} visits of {} visitors, {} collect requests, \
             worker restarted {} times, {:.0} s\n\n",
            self.seed,
            self.created,
            self.visits,
            self.visitors,
            self.requests,
            self.restarts,
            self.duration.as_secs_f64()
        ));
        out.push_str(
            "| fault met (by at least one request carrying the event) | requests | created | stored once | duplicated | lost |\n\
             |---|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.by_fault {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                r.name,
                r.requests.map(|n| n.to_string()).unwrap_or_default(),
                r.created,
                r.stored,
                r.duplicated,
                r.lost
            ));
        }
        out.push_str(&format!(
            "| **all events** | **{}** | **{}** | **{}** | **{}** | **{}** |\n\n",
            self.requests, self.created, self.stored, self.duplicated, self.lost
        ));
        out.push_str(
            "| what the page was doing when the event was created | created | stored once | duplicated | lost |\n\
             |---|---:|---:|---:|---:|\n",
        );
        for r in &self.by_action {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                r.name, r.created, r.stored, r.duplicated, r.lost
            ));
        }
        out.push_str(&format!(
            "\nStored but never logged: {}; logged twice: {}; lost but still queued in a browser: {}; \
             visits ended early by a browser or harness error: {}.\n",
            self.unlogged, self.logged_twice, self.still_queued, self.visit_errors
        ));
        out
    }
}

/// A seed from the clock, for runs that were not given one (printed, to replay).
pub fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    SplitMix64(nanos ^ u64::from(std::process::id())).next_u64() % 1_000_000_000
}

impl Row {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name, "requests": self.requests, "created": self.created,
            "stored": self.stored, "duplicated": self.duplicated, "lost": self.lost,
        })
    }
}

impl Outcome {
    /// The outcome as JSON (for `cargo xtask soak`, which writes BENCHMARKS.md).
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "seed": self.seed, "created": self.created, "stored": self.stored,
            "duplicated": self.duplicated, "lost": self.lost, "unlogged": self.unlogged,
            "logged_twice": self.logged_twice, "still_queued": self.still_queued,
            "visits": self.visits, "visitors": self.visitors, "requests": self.requests,
            "visit_errors": self.visit_errors,
            "restarts": self.restarts, "seconds": self.duration.as_secs_f64(),
            "by_fault": self.by_fault.iter().map(Row::json).collect::<Vec<_>>(),
            "by_action": self.by_action.iter().map(Row::json).collect::<Vec<_>>(),
            "ok": self.ok(), "examples": self.examples,
        })
    }
}

/// The tracker's log as the harness hears it: event id → the action that created it.
#[derive(Default)]
struct Created {
    ids: HashMap<String, &'static str>,
    twice: usize,
}

/// Shared state of a run.
struct Run {
    opts: Options,
    proxy: Proxy,
    web: StaticSite,
    created: Mutex<Created>,
    count: AtomicUsize,
    visits: AtomicUsize,
    visit_errors: Mutex<Vec<String>>,
    /// Set when every visitor slot has ended (the restarter stops waiting).
    visits_done: std::sync::atomic::AtomicBool,
    visitors: AtomicUsize,
    started: Instant,
    /// The visitors' "next visits" under way.
    next_visits: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Browser contexts whose queue was not empty after their last visit.
    leftovers: Mutex<Vec<(usize, BrowserContextId)>>,
}

impl Run {
    fn visit_ended(&self, r: Result) {
        if let Err(e) = r {
            if let Ok(mut errors) = self.visit_errors.lock() {
                errors.push(e);
            }
        }
    }

    fn more(&self) -> bool {
        self.count.load(Ordering::SeqCst) < self.opts.events
            && self.started.elapsed() < self.opts.time_limit
    }

    fn log(&self, payload: &str) {
        let (id, action) = payload.split_once(' ').unwrap_or((payload, "landing"));
        let action = ACTIONS
            .iter()
            .find(|a| **a == action)
            .copied()
            .unwrap_or("other");
        if let Ok(mut c) = self.created.lock() {
            if c.ids.insert(id.to_string(), action).is_some() {
                c.twice += 1;
            } else {
                self.count.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Runs the fault run and reports what it found (the caller decides pass or fail).
pub async fn run(opts: &Options) -> Result<Outcome> {
    let started = Instant::now();
    let worker = tokio::task::spawn_blocking(Worker::start_raised)
        .await
        .map_err(|e| e.to_string())??;
    let port = free_port()?;
    let origin = format!("http://127.0.0.1:{port}");
    let site = {
        let origin = origin.clone();
        let w = &worker;
        tokio::task::block_in_place(|| w.create_site(&[&origin]))?
    };
    let proxy = Proxy::start(&worker.base, Plan::new(opts.seed)).await?;
    warm_up(&proxy.base).await?;
    let web = StaticSite::start(&root().join("demo-site"), Some(port), &proxy.base, &site.id)?;
    let worker = Arc::new(Mutex::new(worker));
    let run = Arc::new(Run {
        opts: opts.clone(),
        proxy,
        web,
        created: Mutex::new(Created::default()),
        count: AtomicUsize::new(0),
        visits: AtomicUsize::new(0),
        visit_errors: Mutex::new(Vec::new()),
        visits_done: std::sync::atomic::AtomicBool::new(false),
        visitors: AtomicUsize::new(0),
        started,
        next_visits: Mutex::new(Vec::new()),
        leftovers: Mutex::new(Vec::new()),
    });

    let mut browsers = Vec::new();
    for _ in 0..opts.browsers.max(1) {
        browsers.push(Arc::new(Browser::launch().await?));
    }

    // the worker goes down and up when the created count passes each of these marks
    let restarter = {
        let run = Arc::clone(&run);
        let worker = Arc::clone(&worker);
        tokio::spawn(async move { restarts(run, worker).await })
    };
    let mut slots = Vec::new();
    for (b, browser) in browsers.iter().enumerate() {
        for v in 0..opts.visitors.max(1) {
            let run = Arc::clone(&run);
            let browser = Arc::clone(browser);
            let slot = b * 100 + v;
            slots.push(tokio::spawn(async move {
                visitor_loop(run, browser, slot).await
            }));
        }
    }
    let progress = {
        let run = Arc::clone(&run);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                let errors = run.visit_errors.lock().map(|e| e.len()).unwrap_or(0);
                println!(
                    "  {:>5.0} s: {} events created, {} visits, {} collect requests, {} visit errors",
                    run.started.elapsed().as_secs_f64(),
                    run.count.load(Ordering::SeqCst),
                    run.visits.load(Ordering::SeqCst),
                    run.proxy.collect_requests(),
                    errors
                );
            }
        })
    };
    let mut errors = Vec::new();
    for s in slots {
        match s.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(e.to_string()),
        }
    }
    run.visits_done.store(true, Ordering::SeqCst);
    let restarts_done = restarter.await.map_err(|e| e.to_string())??;
    let next_visits = run
        .next_visits
        .lock()
        .map(|mut n| std::mem::take(&mut *n))
        .unwrap_or_default();
    for n in next_visits {
        let _ = n.await;
    }

    // The final "next visit" of every visitor whose queue was not empty, faults off.
    run.proxy.set_faulting(false);
    let leftovers = run
        .leftovers
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    let mut still_queued: Vec<String> = Vec::new();
    let mut drains = Vec::new();
    for (b, ctx) in leftovers {
        let run = Arc::clone(&run);
        let browser = Arc::clone(&browsers[b]);
        drains.push(tokio::spawn(async move {
            let left = drain(&run, &browser, ctx.clone(), Duration::from_secs(90)).await;
            let _ = browser.inner.dispose_browser_context(ctx).await;
            left
        }));
    }
    let mut drain_errors = Vec::new();
    for d in drains {
        match d.await {
            Ok(Ok(left)) => still_queued.extend(left),
            Ok(Err(e)) => drain_errors.push(format!("final drain: {e}")),
            Err(e) => drain_errors.push(format!("final drain: {e}")),
        }
    }
    if let Ok(mut v) = run.visit_errors.lock() {
        v.extend(drain_errors);
    }
    progress.abort();
    for b in browsers {
        if let Ok(b) = Arc::try_unwrap(b) {
            b.close().await;
        }
    }
    let visit_errors = run
        .visit_errors
        .lock()
        .map(|e| e.clone())
        .unwrap_or_default();
    if !errors.is_empty() && run.count.load(Ordering::SeqCst) == 0 {
        return Err(format!("the visits failed: {}", errors.join("; ")));
    }
    // the last acknowledged writes are in D1 before their answers: read it now
    let worker = Arc::try_unwrap(worker)
        .map_err(|_| "the worker is still shared".to_string())?
        .into_inner()
        .map_err(|e| e.to_string())?;
    let rows = tokio::task::block_in_place(|| {
        worker.query(&format!(
            "SELECT event_id, COUNT(*) AS n FROM events WHERE site_id = '{}' GROUP BY event_id",
            site.id
        ))
    })?;
    let stored: HashMap<String, i64> = rows
        .iter()
        .filter_map(|r| {
            Some((
                r.get("event_id")?.as_str()?.to_string(),
                r.get("n")?.as_i64()?,
            ))
        })
        .collect();
    let created = run
        .created
        .lock()
        .map(|c| (c.ids.clone(), c.twice))
        .map_err(|e| e.to_string())?;
    let ledger = run.proxy.ledger();
    let mut outcome = tally(&created.0, &stored, &ledger, &still_queued);
    outcome.seed = opts.seed;
    outcome.logged_twice = created.1;
    outcome.visits = run.visits.load(Ordering::SeqCst);
    outcome.visit_errors = visit_errors.len();
    if let Some(e) = visit_errors.first() {
        outcome.examples.push(format!(
            "{} visits ended early; the first: {e}",
            visit_errors.len()
        ));
    }
    outcome.visitors = run.visitors.load(Ordering::SeqCst);
    outcome.requests = run.proxy.collect_requests();
    outcome.restarts = restarts_done;
    outcome.duration = started.elapsed();
    if !errors.is_empty() {
        outcome
            .examples
            .push(format!("visit errors: {}", errors.join("; ")));
    }
    drop(worker);
    Ok(outcome)
}

/// Fetches the tracker's loader through the proxy until they answer (the worker's first
/// requests are slow, and the proxy keeps a copy for when the worker is down), so that
/// the first visits do not time out waiting for a tracker that is still loading.
async fn warm_up(proxy: &str) -> Result {
    // (the wasm is binary: the first page's load fetches and keeps it)
    let paths = ["/v1/health", "/t.js"];
    for p in paths {
        let url = format!("{proxy}{p}");
        tokio::task::block_in_place(|| {
            crate::wait_for(
                &format!("{url} to answer 200"),
                Duration::from_secs(90),
                || {
                    crate::http::get(&url, None)
                        .ok()
                        .filter(|a| a.status == 200)
                        .map(|_| ())
                },
            )
        })?;
    }
    Ok(())
}

/// Counts created, stored once, duplicated and lost, overall, per fault and per action.
pub fn tally(
    created: &HashMap<String, &'static str>,
    stored: &HashMap<String, i64>,
    ledger: &Ledger,
    still_queued: &[String],
) -> Outcome {
    let mut o = Outcome::default();
    // rows by fault (and one for events no request carried through the proxy)
    let mut faults: BTreeMap<Option<Fault>, Row> = BTreeMap::new();
    let mut actions: BTreeMap<&'static str, Row> = BTreeMap::new();
    let count = |r: &mut Row, n: i64| {
        r.created += 1;
        match n {
            0 => r.lost += 1,
            1 => r.stored += 1,
            _ => r.duplicated += 1,
        }
    };
    for (id, action) in created {
        let n = stored.get(id).copied().unwrap_or(0);
        let met: Vec<Option<Fault>> = match ledger.events.get(id) {
            // an event counts under each fault it met; under `none` only if it met none
            Some(set) if set.len() > 1 => set
                .iter()
                .filter(|f| **f != Fault::None)
                .map(|f| Some(*f))
                .collect(),
            Some(set) => set.iter().map(|f| Some(*f)).collect(),
            None => vec![None],
        };
        for f in &met {
            let row = faults.entry(*f).or_insert_with(|| Row {
                name: f.map_or(NO_REQUEST, Fault::name).to_string(),
                requests: f.map(|f| ledger.requests.get(&f).copied().unwrap_or(0)),
                ..Row::default()
            });
            count(row, n);
        }
        let a = actions.entry(action).or_insert_with(|| Row {
            name: action.to_string(),
            ..Row::default()
        });
        count(a, n);
        o.created += 1;
        match n {
            0 => {
                o.lost += 1;
                if o.examples.len() < 10 {
                    // what the worker answered about it (status, its life, ms into the run)
                    let answers = ledger.answers.get(id).cloned().unwrap_or_default();
                    o.examples.push(format!(
                        "lost {id} ({action}, met {met:?}, worker answered {answers:?})"
                    ));
                }
            }
            1 => o.stored += 1,
            _ => {
                o.duplicated += 1;
                if o.examples.len() < 10 {
                    o.examples
                        .push(format!("stored {n} times: {id} ({action}, met {met:?})"));
                }
            }
        }
    }
    for id in stored.keys() {
        if !created.contains_key(id) {
            o.unlogged += 1;
            o.duplicated += 1;
            if o.examples.len() < 10 {
                o.examples.push(format!("stored but never logged: {id}"));
            }
        }
    }
    o.still_queued = still_queued
        .iter()
        .filter(|id| !stored.contains_key(*id))
        .count();
    let mut by_fault: Vec<Row> = Fault::ALL
        .iter()
        .map(|f| {
            faults.remove(&Some(*f)).unwrap_or_else(|| Row {
                name: f.name().to_string(),
                requests: Some(ledger.requests.get(f).copied().unwrap_or(0)),
                ..Row::default()
            })
        })
        .collect();
    if let Some(r) = faults.remove(&None) {
        by_fault.push(r);
    }
    o.by_fault = by_fault;
    o.by_action = actions.into_values().collect();
    o
}

/// Stops and starts the worker when the created count passes each restart mark.
async fn restarts(run: Arc<Run>, worker: Arc<Mutex<Worker>>) -> Result<usize> {
    let n = run.opts.restarts;
    let mut rng = SplitMix64(run.opts.seed ^ 0x5EED);
    let mut done = 0;
    for k in 1..=n {
        // at the k-th of n+1 equal shares of the events, or of the time if that is
        // what ends the run (a slow machine)
        let mark = run.opts.events * k / (n + 1);
        let at = run.opts.time_limit.mul_f64(k as f64 / (n + 1) as f64);
        while run.count.load(Ordering::SeqCst) < mark && run.started.elapsed() < at {
            if !run.more() || run.visits_done.load(Ordering::SeqCst) {
                return Ok(done);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let down_for = Duration::from_millis(2_000 + rng.below(4_000));
        run.proxy.set_down(true);
        let stopped_at = run.proxy.elapsed_ms();
        let w = Arc::clone(&worker);
        tokio::task::spawn_blocking(move || {
            if let Ok(mut w) = w.lock() {
                w.stop();
            }
        })
        .await
        .map_err(|e| e.to_string())?;
        tokio::time::sleep(down_for).await;
        let w = Arc::clone(&worker);
        tokio::task::spawn_blocking(move || match w.lock() {
            Ok(mut w) => w.restart(),
            Err(e) => Err(e.to_string()),
        })
        .await
        .map_err(|e| e.to_string())??;
        run.proxy.set_down(false);
        println!(
            "  worker stopped at {stopped_at} ms, answering again at {} ms (life {})",
            run.proxy.elapsed_ms(),
            done + 1
        );
        done += 1;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scenario by hand: five events created; a stored once (met no fault), b stored once
    /// (met a drop, a cut and a clean request), c stored twice (met a duplicate), d never
    /// stored (met a 500), e stored once (no request through the proxy carried it); and x
    /// stored but never logged. Expected: created 5, stored once 3 (a, b, e), duplicated
    /// 2 (c, and x), lost 1 (d); rows: none 1 (a), drop 1 and cut 1 (b), duplicate 1
    /// (c), 500 1 lost (d), never sent 1 (e); actions: track 3 stored, landing 2.
    #[test]
    fn the_tally_counts_per_fault_and_action() {
        let created: HashMap<String, &'static str> = [
            ("a", "track"),
            ("b", "track"),
            ("c", "landing"),
            ("d", "landing"),
            ("e", "track"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let stored: HashMap<String, i64> = [("a", 1), ("b", 1), ("c", 2), ("e", 1), ("x", 1)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let mut ledger = Ledger::default();
        let mut met = |id: &str, f: Fault| {
            ledger.events.entry(id.into()).or_default().insert(f);
        };
        met("a", Fault::None);
        met("b", Fault::Drop);
        met("b", Fault::CutAfter);
        met("b", Fault::None);
        met("c", Fault::Duplicate);
        met("d", Fault::Error500);
        ledger.requests.insert(Fault::Drop, 3);
        let o = tally(&created, &stored, &ledger, &["d".to_string()]);
        assert_eq!(
            (o.created, o.stored, o.duplicated, o.lost, o.unlogged),
            (5, 3, 2, 1, 1)
        );
        assert_eq!(o.still_queued, 1);
        let row = |name: &str| o.by_fault.iter().find(|r| r.name == name).cloned();
        let none = row("none").expect("none row");
        // a only: b met faults besides its clean request, e met no request at all
        assert_eq!((none.created, none.stored), (1, 1));
        let never = row(NO_REQUEST).expect("never-sent row");
        assert_eq!((never.requests, never.created, never.stored), (None, 1, 1));
        let cut = row("cut after the worker answered").expect("cut row");
        assert_eq!((cut.requests, cut.created, cut.stored), (Some(0), 1, 1));
        let drop = row("dropped request").expect("drop row");
        assert_eq!((drop.requests, drop.created, drop.stored), (Some(3), 1, 1));
        let dup = row("sent twice at once").expect("dup row");
        assert_eq!((dup.created, dup.duplicated), (1, 1));
        let e500 = row("500 from the proxy").expect("500 row");
        assert_eq!((e500.created, e500.lost), (1, 1));
        let track = o
            .by_action
            .iter()
            .find(|r| r.name == "track")
            .expect("track");
        assert_eq!((track.created, track.stored), (3, 3));
        let landing = o
            .by_action
            .iter()
            .find(|r| r.name == "landing")
            .expect("landing");
        assert_eq!(
            (landing.created, landing.duplicated, landing.lost),
            (2, 1, 1)
        );
        assert!(!o.ok());
    }
}
