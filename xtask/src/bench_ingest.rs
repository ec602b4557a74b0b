//! The ingest benchmark (issue 5's budget): throughput of `POST /v1/collect` with
//! batches of 20 page views against the real worker, side by side in one run with a
//! bare worker (`edge-bare/`) that inserts the same rows into the same D1 schema with no
//! validation, deduplication or enrichment; p50 and p99 latency of one batch.
//!
//! Both run under `wrangler dev` in local mode on 127.0.0.1, each with fresh state. The
//! same batches go to both in alternating rounds (real, bare, real, bare, ...) of
//! [`ROUND`] batches with [`CONCURRENCY`] requests in flight, so machine noise falls on
//! both. A worker's throughput is its events divided by the wall time of its own rounds
//! only. Every answer is checked (real: 200 with all 20 accepted; bare: 200 with 20
//! inserted) and the stored rows are counted at the end, so a failure cannot look fast.
//!
//! Issue 14: a third target sends the same batches to a second site of the real worker
//! made with `shards: 2` (sessions built inline in its Durable Objects); its budget is
//! ≥ 1.0 × the bare worker.
//!
//! Pacing: locally every request comes from 127.0.0.1, and the real worker's per-client
//! limit (`RL_CLIENT_LOCAL`, 3 000 requests per 10 s in local runs) would answer 429. Before a real round
//! that would bring the last 10 s over [`CLIENT_BUDGET`], the bench waits, outside any
//! timed round. Each batch has its own visitor id, so the per-visitor limit (30 per
//! 10 s) and daily quota never trigger.

use crate::util::{note, root, say, Result};
use closeloop_e2e::http::{self, Answer};
use closeloop_e2e::worker::{watched_wrangler, wrangler, wrangler_env, Worker};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The site's allowed origin (sent as `Origin`).
const ORIGIN: &str = "https://bench.example";
/// Shards of the bench's sharded site.
const SHARDS: u32 = 2;
/// A desktop Chrome on Windows.
const USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
     (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
/// Events per batch.
const EVENTS_PER_BATCH: usize = 20;
/// Requests in flight.
const CONCURRENCY: usize = 4;
/// Batches per worker per round.
const ROUND: usize = 16;
/// Measured rounds per worker (override with `CLOSELOOP_BENCH_INGEST_ROUNDS`).
const ROUNDS: usize = 30;
/// Warm-up batches per worker (not measured).
const WARMUP: usize = 10 * ROUND;
/// Real-worker requests allowed in any 10 s (below `RL_CLIENT_LOCAL`'s 3 000).
const CLIENT_BUDGET: usize = 2_500;
/// The whole measured run stops after this, whatever is left.
const RUN_LIMIT: Duration = Duration::from_secs(600);

/// Measures both workers and returns the BENCHMARKS.md section. Expects the real
/// worker built (`cargo xtask build`); builds the bare worker into `edge-bare/build/`.
///
/// Diagnosis: `CLOSELOOP_BENCH_INGEST_VARIANTS="label,path/to/wrangler.toml[,KEY:VALUE...];..."`
/// adds prebuilt variants of the real worker (each its own `wrangler dev` with those
/// `--var`s, fresh state, the same site) to the same interleaved rounds, as extra rows.
/// `CLOSELOOP_BENCH_INGEST_ROUNDS` sets the number of rounds (default 15).
pub fn run() -> Result<String> {
    say("Ingest throughput: real worker vs bare worker");
    crate::edge::build_crate(
        "closeloop-edge-bare",
        "edge-bare",
        &root().join("edge-bare").join("build"),
    )?;
    let rounds = std::env::var("CLOSELOOP_BENCH_INGEST_ROUNDS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(ROUNDS);

    note("starting the real worker and the bare worker (wrangler dev, fresh state)");
    let real = Worker::start()?;
    let site = real.create_site(&[ORIGIN])?;
    // issue 14: a site whose events live in 2 shards, on the same real worker (its
    // sessions are built inline, in the shard)
    let sharded = format!("{}s", site.id);
    let made = real.admin(
        "POST",
        "/v1/admin/sites",
        Some(
            &json!({"id": sharded, "allowed_origins": [ORIGIN], "currency": "USD",
                     "shards": SHARDS}),
        ),
    )?;
    if made.status != 201 {
        return Err(format!("creating the sharded site: {}", made.text));
    }
    let bare = Dev::start(&bare_config(), &[])?;
    let real_sends = Rc::new(RefCell::new(VecDeque::new()));
    let mut targets = vec![
        Target::new("real (`edge/`)", real.url("/v1/collect"), true).sharing(real_sends.clone()),
        Target::new("bare (`edge-bare/`)", bare.url("/v1/collect"), false),
        Target::new(
            "real, a site in 2 shards (`edge/`, issue 14)",
            real.url("/v1/collect"),
            true,
        )
        .sharing(real_sends)
        .for_site(&site.id, &sharded),
    ];
    let mut variants = Vec::new();
    for spec in std::env::var("CLOSELOOP_BENCH_INGEST_VARIANTS")
        .unwrap_or_default()
        .split(';')
        .filter(|s| !s.trim().is_empty())
    {
        let mut parts = spec.split(',').map(str::trim);
        let (Some(label), Some(config)) = (parts.next(), parts.next()) else {
            return Err(format!(
                "bad variant `{spec}`: want label,config[,KEY:VALUE...]"
            ));
        };
        let token = format!("bench-{}", closeloop_e2e::now_ms());
        let mut vars: Vec<String> = parts.map(str::to_string).collect();
        vars.push(format!("ADMIN_TOKEN:{token}"));
        // all local traffic is one client (wrangler.toml's RL_*_LOCAL)
        vars.push("LOCAL_RATE_LIMITS:1".to_string());
        note(format!("starting variant `{label}` ({config}, {vars:?})"));
        let dev = Dev::start(Path::new(config), &vars)?;
        dev.create_site(&site.id, &token)?;
        targets.push(Target::new(label, dev.url("/v1/collect"), true));
        variants.push(dev);
    }

    let run_id = closeloop_e2e::now_ms() % 1_000_000_000;
    let total = WARMUP + rounds * ROUND;
    let batches: Vec<String> = (0..total)
        .map(|i| batch(&site.id, run_id, i, closeloop_e2e::now_ms()))
        .collect();
    let (warm, measured) = batches.split_at(WARMUP);

    note(format!(
        "warming up: {WARMUP} batches each, then {rounds} rounds of {ROUND} batches of \
         {EVENTS_PER_BATCH} events each, {CONCURRENCY} in flight"
    ));
    for t in targets.iter_mut() {
        t.run(warm, false)?;
    }
    let started = Instant::now();
    for chunk in measured.chunks(ROUND) {
        if started.elapsed() > RUN_LIMIT {
            note("time limit reached: stopping early");
            break;
        }
        for t in targets.iter_mut() {
            t.run(chunk, true)?;
        }
    }

    // Nothing acknowledged may be missing.
    let want = (WARMUP + targets[0].stats.batches) * EVENTS_PER_BATCH;
    let mut stored = vec![real.count(&format!(
        "SELECT count(*) FROM events WHERE site_id = '{}'",
        site.id
    ))?];
    stored.push(bare.count_events()?);
    let shards = real.admin("GET", &format!("/v1/admin/sites/{sharded}/shards"), None)?;
    stored.push(
        shards.json["status"]
            .as_array()
            .map(|a| a.iter().map(|s| s["events"].as_i64().unwrap_or(0)).sum())
            .unwrap_or(-1),
    );
    for v in &variants {
        stored.push(v.count_events()?);
    }
    if stored.iter().any(|&n| n != want as i64) {
        return Err(format!(
            "stored rows {stored:?} (real, bare, shards, variants...), expected {want} each"
        ));
    }

    // The real worker defers sessionisation to a flush (the cron trigger, or any read
    // that needs sessions): time it over everything the run queued, and check it left
    // every stored event in a session.
    note("sessionising what the real worker queued (POST /v1/admin/sessions:flush)");
    let t0 = Instant::now();
    let mut flushed = (0u64, 0u64);
    loop {
        let f = real.flush_sessions(Some(&site.id))?;
        flushed.0 += f["visitors"].as_u64().unwrap_or(0);
        flushed.1 += f["sessions"].as_u64().unwrap_or(0);
        if f["more"] != Value::Bool(true) {
            break;
        }
    }
    let flush_time = t0.elapsed();
    let unsessioned = real.count(&format!(
        "SELECT count(*) FROM events WHERE site_id = '{}' AND session_id IS NULL",
        site.id
    ))?;
    if unsessioned != 0 {
        return Err(format!(
            "{unsessioned} stored events have no session after the flush"
        ));
    }
    let flush = Flush {
        visitors: flushed.0,
        sessions: flushed.1,
        secs: flush_time.as_secs_f64(),
        events: want,
    };
    note(format!(
        "flush: {} visitors, {} sessions in {:.2} s ({:.0} events/s)",
        flush.visitors,
        flush.sessions,
        flush.secs,
        want as f64 / flush.secs.max(1e-9)
    ));

    let bare_rate = targets[1].stats.events_per_sec().max(f64::MIN_POSITIVE);
    let mut paused = Duration::ZERO;
    for t in &targets {
        paused = paused.max(t.paused);
        note(format!(
            "{}: {} batches, {:.0} events/s, p50 {:.1} ms, p99 {:.1} ms, ratio {:.2}",
            t.label,
            t.stats.batches,
            t.stats.events_per_sec(),
            t.stats.percentile(0.50),
            t.stats.percentile(0.99),
            t.stats.events_per_sec() / bare_rate
        ));
    }
    let ratio = targets[0].stats.events_per_sec() / bare_rate;
    note(format!(
        "budget real/bare ≥ 0.80: {}; paced {:.1} s for RL_CLIENT_LOCAL; {want} rows stored in each",
        if ratio >= 0.8 { "holds" } else { "NOT met" },
        paused.as_secs_f64()
    ));
    let sharded_ratio = targets[2].stats.events_per_sec() / bare_rate;
    note(format!(
        "budget shards/bare ≥ 1.0 (issue 14): {} ({sharded_ratio:.2})",
        if sharded_ratio >= 1.0 {
            "holds"
        } else {
            "NOT met"
        },
    ));
    let with_flush = flush.rate_with(targets[0].stats.events_per_sec()) / bare_rate;
    note(format!(
        "counting the deferred flush too: {with_flush:.2} of the bare worker"
    ));
    let mut md = markdown(&targets, ratio, paused, want, &flush, with_flush);
    md.push_str(&format!(
        "A site in shards (issue 14): the same batches for a second site of the same real \
         worker made with `shards: 2`, whose shards deduplicate, build the sessions inline \
         and keep the hourly rollups in their own SQLite (Durable Objects under workerd), \
         answered at {sharded_ratio:.2} of the bare worker — budget ≥ 1.0: {}. Its \
         {want} events were counted in the shards (`GET /v1/admin/sites/{{site}}/shards`). \
         Both real sites share the one local client limit (paced together).\n\n",
        if sharded_ratio >= 1.0 {
            "met"
        } else {
            "**not met**"
        },
    ));
    Ok(md)
}

/// The deferred sessionisation of everything a run stored.
struct Flush {
    visitors: u64,
    sessions: u64,
    secs: f64,
    events: usize,
}

impl Flush {
    /// Events per second of a worker ingesting at `rate` and also flushing each event.
    fn rate_with(&self, rate: f64) -> f64 {
        let per_event = self.secs / (self.events.max(1) as f64);
        1.0 / (1.0 / rate.max(f64::MIN_POSITIVE) + per_event)
    }
}

/// The BENCHMARKS.md section.
fn markdown(
    targets: &[Target],
    ratio: f64,
    paused: Duration,
    rows: usize,
    flush: &Flush,
    with_flush: f64,
) -> String {
    let mut out = String::from(
        "## Ingest throughput (`POST /v1/collect`)\n\n\
         Batches of 20 page views (distinct visitor per batch, UTM-tagged landing pages and \
         search/social referrers on some, a desktop Chrome user agent) sent to the real \
         worker and to a bare worker (`edge-bare/`: the same rows into the same D1 `events` \
         table in one `db.batch()`, no validation, deduplication, enrichment, KV, rate limits \
         or sessions), both under `wrangler dev` local mode on this machine, in alternating \
         rounds of 16 batches with 4 requests in flight, after 160 warm-up batches each (so \
         that V8 has tiered both workers' wasm up). Throughput counts only each worker's \
         own rounds; latency is one batch's request, client side. The real worker \
         remembers parsed user agents per isolate, so this bench's one user agent is parsed \
         once; varied real traffic pays the parse (~50 µs) more often. \
         Budget: real ≥ 0.8 × bare.\n\n\
         | worker | batches | events/s | p50 (ms) | p99 (ms) | ratio to bare |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    let bare_rate = targets
        .get(1)
        .map(|t| t.stats.events_per_sec())
        .unwrap_or(0.0)
        .max(f64::MIN_POSITIVE);
    for (i, t) in targets.iter().enumerate() {
        let r = t.stats.events_per_sec() / bare_rate;
        let r = if i == 0 {
            format!("**{r:.2}**")
        } else {
            format!("{r:.2}")
        };
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.1} | {:.1} | {r} |\n",
            t.label,
            t.stats.batches,
            t.stats.events_per_sec(),
            t.stats.percentile(0.50),
            t.stats.percentile(0.99)
        ));
    }
    out.push_str(&format!(
        "\nBudget {}: {ratio:.2} of the bare worker's throughput. Every answer was checked \
         (real: all 20 accepted) and {rows} rows were found stored in each database \
         (warm-up included). Waits to stay under the per-client limit (`RL_CLIENT_LOCAL`, all \
         local traffic is one client): {:.1} s, outside the timed rounds.\n\n",
        if ratio >= 0.8 { "met" } else { "**not met**" },
        paused.as_secs_f64()
    ));
    out.push_str(&format!(
        "The real worker answers a beacon after one D1 round trip and leaves sessionisation \
         to a flush (the cron trigger every minute, and any read that needs sessions), \
         which the bare worker never does. Flushing what the run queued — {} visitors, {} \
         sessions, {} events — took {:.2} s ({:.0} events/s, in chunks of 100 visitors); \
         afterwards every stored event was in a session. Counting that work as if done \
         inline, the real worker would be at {with_flush:.2} of the bare worker.\n\n",
        flush.visitors,
        flush.sessions,
        flush.events,
        flush.secs,
        flush.events as f64 / flush.secs.max(1e-9),
    ));
    out
}

/// One worker under test: where to send, its rate-limit pacing and its measurements.
struct Target {
    label: String,
    url: String,
    /// Real-like (rate-limited per client: paced; answers list `accepted`).
    limited: bool,
    /// The requests of the last 10 s to its worker (shared by targets of one worker: one
    /// client limit).
    sends: Rc<RefCell<VecDeque<Instant>>>,
    /// The batches' site id, and the one this target sends them to instead.
    swap: Option<(String, String)>,
    paused: Duration,
    stats: Stats,
}

impl Target {
    fn new(label: &str, url: String, limited: bool) -> Target {
        Target {
            label: label.to_string(),
            url,
            limited,
            sends: Rc::new(RefCell::new(VecDeque::new())),
            swap: None,
            paused: Duration::ZERO,
            stats: Stats::default(),
        }
    }

    /// Paces with `sends` (another target's, for the same worker).
    fn sharing(mut self, sends: Rc<RefCell<VecDeque<Instant>>>) -> Target {
        self.sends = sends;
        self
    }

    /// Sends the batches of site `from` to site `to`.
    fn for_site(mut self, from: &str, to: &str) -> Target {
        self.swap = Some((
            format!("\"site_id\":\"{from}\""),
            format!("\"site_id\":\"{to}\""),
        ));
        self
    }

    /// Sends `bodies` (paced first if rate-limited); keeps the timings when `measure`.
    fn run(&mut self, bodies: &[String], measure: bool) -> Result {
        if self.limited {
            self.paused += pace(&mut self.sends.borrow_mut(), bodies.len());
        }
        let swapped: Vec<String>;
        let bodies = match &self.swap {
            Some((from, to)) => {
                swapped = bodies.iter().map(|b| b.replacen(from, to, 1)).collect();
                &swapped[..]
            }
            None => bodies,
        };
        let timed = phase(&self.url, bodies, &self.label)?;
        if measure {
            self.stats.add(timed);
        }
        Ok(())
    }
}

/// An error unless the answer (200, `accepted`) acknowledges the whole batch.
fn check(who: &str, a: &Answer) -> Result {
    let n = a.json.get("accepted").and_then(Value::as_u64);
    if a.status == 200 && n == Some(EVENTS_PER_BATCH as u64) {
        return Ok(());
    }
    Err(format!(
        "{who} answered {}: {}",
        a.status,
        a.text.chars().take(400).collect::<String>()
    ))
}

/// Latencies and wall time of the measured rounds of one worker.
#[derive(Default)]
struct Stats {
    batches: usize,
    wall: Duration,
    latencies: Vec<Duration>,
}

impl Stats {
    fn add(&mut self, (wall, lat): (Duration, Vec<Duration>)) {
        self.batches += lat.len();
        self.wall += wall;
        self.latencies.extend(lat);
        self.latencies.sort();
    }

    fn events_per_sec(&self) -> f64 {
        (self.batches * EVENTS_PER_BATCH) as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Nearest-rank percentile in milliseconds (`q` in 0..=1).
    fn percentile(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let rank = (q * self.latencies.len() as f64).ceil() as usize;
        let i = rank.clamp(1, self.latencies.len()) - 1;
        self.latencies
            .get(i)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    }
}

/// Sends `bodies` to `url` with [`CONCURRENCY`] in flight; answers the wall time and
/// each request's latency, or the first bad answer.
fn phase(url: &str, bodies: &[String], who: &str) -> Result<(Duration, Vec<Duration>)> {
    let headers = [
        ("Content-Type", "text/plain;charset=UTF-8"),
        ("Origin", ORIGIN),
        ("User-Agent", USER_AGENT),
    ];
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let per_thread: Vec<Result<Vec<Duration>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CONCURRENCY)
            .map(|_| {
                s.spawn(|| {
                    let mut lat = Vec::new();
                    while let Some(body) = bodies.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let t = Instant::now();
                        let a = http::request("POST", url, &headers, Some(body))?;
                        lat.push(t.elapsed());
                        check(who, &a)?;
                    }
                    Ok(lat)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a bench thread panicked".into()))
            })
            .collect()
    });
    let wall = started.elapsed();
    let mut all = Vec::with_capacity(bodies.len());
    for r in per_thread {
        all.extend(r?);
    }
    Ok((wall, all))
}

/// Waits until `n` more requests keep the last 10 s under [`CLIENT_BUDGET`], then
/// records them; answers the time waited.
fn pace(sent: &mut VecDeque<Instant>, n: usize) -> Duration {
    let window = Duration::from_secs(10);
    let mut waited = Duration::ZERO;
    loop {
        while sent.front().is_some_and(|t| t.elapsed() >= window) {
            sent.pop_front();
        }
        if sent.len() + n <= CLIENT_BUDGET {
            break;
        }
        let wait = sent
            .front()
            .map(|t| window.saturating_sub(t.elapsed()))
            .unwrap_or_default()
            + Duration::from_millis(50);
        std::thread::sleep(wait);
        waited += wait;
    }
    let now = Instant::now();
    sent.extend(std::iter::repeat_n(now, n));
    waited
}

/// Landing pages: (path and query, referrer) of a visit's first page view.
const LANDINGS: &[(&str, Option<&str>)] = &[
    (
        "/pricing?utm_source=google&utm_medium=cpc&utm_campaign=spring_sale&utm_term=crm+attribution&gclid=Cj0KCQiA",
        Some("https://www.google.com/"),
    ),
    ("/blog/closing-the-loop", Some("https://www.google.com/")),
    (
        "/?utm_source=linkedin&utm_medium=social&utm_campaign=launch",
        Some("https://www.linkedin.com/"),
    ),
    ("/", None),
    (
        "/features?utm_source=newsletter&utm_medium=email&utm_campaign=november",
        None,
    ),
    ("/docs/getting-started", Some("https://news.ycombinator.com/")),
];

/// Pages visited after landing.
const PAGES: &[(&str, &str)] = &[
    ("/features", "Features"),
    ("/pricing", "Pricing"),
    ("/docs/getting-started", "Getting started"),
    ("/blog/closing-the-loop", "Closing the loop"),
    ("/customers", "Customers"),
    ("/contact", "Contact us"),
];

/// Batch `i` of this run: 20 page views of one visitor, 15 s apart, sent just now.
fn batch(site_id: &str, run_id: i64, i: usize, now: i64) -> String {
    let host = "https://bench.example";
    let first = now - (EVENTS_PER_BATCH as i64) * 15_000;
    let (landing, landing_ref) = LANDINGS[i % LANDINGS.len()];
    let mut prev = format!("{host}{landing}");
    let mut events = Vec::with_capacity(EVENTS_PER_BATCH);
    for k in 0..EVENTS_PER_BATCH {
        let (url, referrer, title) = if k == 0 {
            (prev.clone(), landing_ref.map(str::to_string), "Closeloop")
        } else {
            let (path, title) = PAGES[(i + k) % PAGES.len()];
            (format!("{host}{path}"), Some(prev.clone()), title)
        };
        let mut ev = json!({
            "id": format!("ev-{run_id}-{i:05}-{k:02}"),
            "type": "pageview",
            "created_at": first + (k as i64) * 15_000,
            "url": url,
            "title": title,
        });
        if let (Some(r), Some(obj)) = (referrer, ev.as_object_mut()) {
            obj.insert("referrer".into(), json!(r));
        }
        prev = url;
        events.push(ev);
    }
    json!({
        "site_id": site_id,
        "visitor_id": format!("vb{run_id}x{i:06}"),
        "sent_at": now,
        "events": events,
    })
    .to_string()
}

/// A worker under its own `wrangler dev -c <config>` with fresh state (the bare
/// worker, or a diagnostic variant). Stopped when dropped.
struct Dev {
    base: String,
    config: PathBuf,
    persist: PathBuf,
    child: Option<Child>,
}

fn bare_config() -> PathBuf {
    root().join("edge-bare").join("wrangler.toml")
}

impl Dev {
    /// Applies the config's migrations to fresh state and starts `wrangler dev` with
    /// these `--var KEY:VALUE`s; waits for `GET /v1/health`.
    fn start(config: &Path, vars: &[String]) -> Result<Dev> {
        let persist = closeloop_e2e::temp_dir("bench")?;
        wrangler_cmd(
            config,
            &persist,
            &["d1", "migrations", "apply", "DB", "--local"],
        )?;
        let port = closeloop_e2e::free_port()?;
        let inspector = closeloop_e2e::free_port()?;
        let log_path = persist.join("wrangler.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = watched_wrangler();
        cmd.arg("dev")
            .arg("-c")
            .arg(config)
            .args(["--ip", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--inspector-port")
            .arg(inspector.to_string())
            .arg("--persist-to")
            .arg(&persist)
            .args([
                "--log-level",
                "warn",
                "--show-interactive-dev-session=false",
            ]);
        for v in vars {
            cmd.arg("--var").arg(v);
        }
        cmd.stdout(Stdio::from(log)).stderr(Stdio::from(log2));
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting wrangler dev -c {}: {e}", config.display()))?;
        let mut dev = Dev {
            base: format!("http://127.0.0.1:{port}"),
            config: config.to_path_buf(),
            persist,
            child: Some(child),
        };
        let health = dev.url("/v1/health");
        let ready = closeloop_e2e::wait_for(
            "the worker to answer /v1/health",
            Duration::from_secs(90),
            || {
                if let Some(Ok(Some(_))) = dev.child.as_mut().map(Child::try_wait) {
                    return Some(false);
                }
                match http::get(&health, None) {
                    Ok(a) if a.status == 200 => Some(true),
                    _ => None,
                }
            },
        );
        match ready {
            Ok(true) => Ok(dev),
            _ => Err(format!(
                "wrangler dev -c {} did not start; its log ({}):\n{}",
                config.display(),
                log_path.display(),
                std::fs::read_to_string(&log_path).unwrap_or_default()
            )),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates the bench's site (same id as on the real worker) through the admin API.
    fn create_site(&self, id: &str, token: &str) -> Result {
        let a = http::post_json(
            &self.url("/v1/admin/sites"),
            &json!({"id": id, "name": id, "allowed_origins": [ORIGIN], "currency": "USD"}),
            &[("Authorization", &format!("Bearer {token}"))],
        )?;
        if a.status == 200 || a.status == 201 {
            Ok(())
        } else {
            Err(format!("creating site {id}: {} {}", a.status, a.text))
        }
    }

    /// Rows in this worker's `events` table.
    fn count_events(&self) -> Result<i64> {
        let out = wrangler_cmd(
            &self.config,
            &self.persist,
            &[
                "d1",
                "execute",
                "DB",
                "--local",
                "--json",
                "--command",
                "SELECT count(*) AS n FROM events",
            ],
        )?;
        let v: Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
        v.pointer("/0/results/0/n")
            .and_then(Value::as_i64)
            .ok_or_else(|| format!("no count in wrangler's answer: {out}"))
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The whole process group we started: watchdog shell, wrangler, workerd.
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
            for _ in 0..50 {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
        }
    }
}

/// Runs `wrangler <args> -c <config> --persist-to <persist>`; answers its standard
/// output.
fn wrangler_cmd(config: &Path, persist: &Path, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new(wrangler());
    cmd.args(args)
        .arg("-c")
        .arg(config)
        .arg("--persist-to")
        .arg(persist);
    wrangler_env(&mut cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("wrangler {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "wrangler {} failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
