//! `cargo xtask load [--step-seconds S] [--max-clients N] [--no-build]`: drives the local worker
//! (`wrangler dev`, loopback only) with a rising number of concurrent clients for a
//! bounded time, then a mixed load, then a real-limits run; stops by itself and writes
//! its figures to BENCHMARKS.md (its own section).
//!
//! - **Ramp**: 1, 2, 4, ... clients, each sending `POST /v1/collect` batches of
//!   [`EVENTS_PER_BATCH`] page views back to back for S seconds (default 12). Per step:
//!   requests and events per second, p50 / p99 latency, answers by status, and stored
//!   (counted in D1 afterwards) against accepted (the answers' own counts) — they must be
//!   equal. The knee is the first step after which doubling the clients adds less than
//!   10 % throughput. During each step the worker's CPU is read from `/proc` (every
//!   `workerd` thread), which shows what limits it.
//! - **Mixed**: beacons from 8 clients while other clients fetch reports (sources under
//!   `data_driven`, pages) and post imports (`events:import`, `conversions:import`);
//!   then a backlog of queued visitors (`session_queue`) flushed through
//!   `POST /v1/admin/sessions:flush` while the beacons go on: ingest must keep going
//!   (every second sees accepted beacons, no beacon fails) and, at the end, every stored
//!   event has a session (no queued visitor lost).
//! - **Real limits**: a worker with `wrangler.toml`'s own rate limits, 16 clients of one
//!   address and a handful of visitors: what a client over the limits gets (429 with
//!   `Retry-After`), and stored still equals accepted.
//!
//! The ramp and mixed runs use a worker with raised limits ([`Worker::start_raised`]:
//! every `[[ratelimits]]` limit of a copy of `wrangler.toml` set far above the load),
//! since locally every request comes from one address.

mod mixed;

use crate::util::{note, say, Result};
use closeloop_e2e::http;
use closeloop_e2e::worker::{Site, Worker};
use mixed::{flush_under_load, mixed, real_limits};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Page views per beacon batch.
const EVENTS_PER_BATCH: usize = 10;
/// The site's allowed origin (sent as `Origin`).
const ORIGIN: &str = "https://load.example";
/// Clients of the mixed run's beacons.
const MIXED_CLIENTS: usize = 8;
/// Visitors queued before the flush run.
const BACKLOG_VISITORS: usize = 1_500;

/// What one load step measured.
#[derive(Debug, Default, Clone)]
struct Step {
    clients: usize,
    seconds: f64,
    requests: u64,
    accepted: u64,
    statuses: BTreeMap<u16, u64>,
    failures: u64,
    latencies_ms: Vec<f64>,
    stored: i64,
    cpu: Cpu,
    /// The first answer's body (cut) of each status other than 200, to say why.
    samples: BTreeMap<u16, String>,
}

impl Step {
    fn events_per_sec(&self) -> f64 {
        self.accepted as f64 / self.seconds.max(1e-9)
    }
    fn requests_per_sec(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.latencies_ms.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return 0.0;
        }
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i.min(v.len() - 1)]
    }
    fn statuses(&self) -> String {
        let mut s: Vec<String> = self
            .statuses
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        if self.failures > 0 {
            s.push(format!("no answer: {}", self.failures));
        }
        s.join(", ")
    }
    /// Why answers other than 200 came: the first body of each such status.
    fn why(&self) -> Option<String> {
        (!self.samples.is_empty()).then(|| {
            self.samples
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

/// At most 200 characters of an answer's body.
fn cut(text: &str) -> String {
    text.chars().take(200).collect()
}

/// CPU the worker's processes used during a step, from `/proc`: all of `workerd`, and
/// its busiest thread (a share near 100 % of one core means that thread is the limit).
#[derive(Debug, Default, Clone)]
struct Cpu {
    /// Cores used by every workerd thread together (1.0 = one core busy all the time).
    total: f64,
    /// Cores used by the busiest thread.
    busiest: f64,
    /// That thread's name.
    busiest_name: String,
    /// Cores used by node (wrangler's own process, which proxies every request).
    node: f64,
}

/// Clock ticks of every thread of the processes named `name` under the worker.
fn ticks(pids: &[(u32, String)], name: &str) -> BTreeMap<(u32, u32), (String, u64)> {
    let mut out = BTreeMap::new();
    for (pid, comm) in pids {
        if comm != name {
            continue;
        }
        let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in rd.filter_map(|e| e.ok()) {
            let tid: u32 = t.file_name().to_string_lossy().parse().unwrap_or(0);
            let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
                continue;
            };
            // comm is in parentheses and may hold spaces: split after the last ')'
            let Some(close) = stat.rfind(')') else {
                continue;
            };
            let tname = stat[stat.find('(').map_or(0, |i| i + 1)..close].to_string();
            let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            let (ut, st) = (
                f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0),
                f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0),
            );
            out.insert((*pid, tid), (tname, ut + st));
        }
    }
    out
}

fn cpu_between(
    before: &BTreeMap<(u32, u32), (String, u64)>,
    after: &BTreeMap<(u32, u32), (String, u64)>,
    secs: f64,
) -> (f64, f64, String) {
    let hz = 100.0; // USER_HZ on Linux
    let mut total = 0.0;
    let mut busiest = (0.0, String::new());
    for (k, (name, t)) in after {
        let d = t.saturating_sub(before.get(k).map_or(0, |(_, b)| *b)) as f64 / hz / secs;
        total += d;
        if d > busiest.0 {
            busiest = (d, name.clone());
        }
    }
    (total, busiest.0, busiest.1)
}

/// The worker's processes: every descendant of its `wrangler dev` with its name.
fn worker_pids(root_pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root_pid];
    while let Some(p) = stack.pop() {
        let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
        out.push((p, comm.trim().to_string()));
        if let Ok(rd) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in rd.filter_map(|e| e.ok()) {
                let children =
                    std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                stack.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
    }
    out
}

/// A beacon batch of page views for `visitor`, ids unique per `tag` and `n`.
fn beacon(site: &str, visitor: &str, tag: &str, n: u64) -> String {
    let now = closeloop_e2e::now_ms();
    let events: Vec<Value> = (0..EVENTS_PER_BATCH)
        .map(|k| {
            json!({
                "id": format!("ev-{tag}-{n:07}-{k:02}"),
                "type": "pageview",
                "created_at": now - 1_000 + k as i64,
                "url": format!("https://load.example/page-{}?utm_source=load&utm_medium=cpc", k % 5),
                "referrer": if k == 0 { "https://www.google.com/" } else { "https://load.example/" },
                "title": "Load",
            })
        })
        .collect();
    json!({"site_id": site, "visitor_id": visitor, "sent_at": now, "events": events}).to_string()
}

/// Sends beacons from `clients` threads until `stop`; each client is its own visitor
/// for `visitors_per_client` batches, then the next. Returns the merged step figures
/// (and, through `per_second`, accepted events per wall-clock second).
fn beacons(
    w: &Worker,
    site: &Site,
    clients: usize,
    tag: &str,
    stop: &AtomicBool,
    per_second: Option<&Mutex<BTreeMap<u64, u64>>>,
) -> Step {
    let started = Instant::now();
    let merged = Mutex::new(Step::default());
    std::thread::scope(|s| {
        for c in 0..clients {
            let merged = &merged;
            s.spawn(move || {
                let mut mine = Step::default();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let visitor = format!("vl{tag}c{c}v{}", n / 20);
                    let body = beacon(&site.id, &visitor, &format!("{tag}c{c}"), n);
                    n += 1;
                    let t = Instant::now();
                    let a = http::request(
                        "POST",
                        &w.url("/v1/collect"),
                        &[("Content-Type", "text/plain"), ("Origin", ORIGIN)],
                        Some(&body),
                    );
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    mine.requests += 1;
                    match a {
                        Ok(a) => {
                            *mine.statuses.entry(a.status).or_default() += 1;
                            if a.status != 200 {
                                mine.samples.entry(a.status).or_insert_with(|| cut(&a.text));
                            }
                            if a.status == 200 {
                                let acc = a.json["accepted"].as_u64().unwrap_or(0);
                                mine.accepted += acc;
                                if let Some(ps) = per_second {
                                    let sec = started.elapsed().as_secs();
                                    if let Ok(mut m) = ps.lock() {
                                        *m.entry(sec).or_default() += acc;
                                    }
                                }
                            }
                            mine.latencies_ms.push(ms);
                        }
                        Err(_) => mine.failures += 1,
                    }
                }
                if let Ok(mut m) = merged.lock() {
                    m.requests += mine.requests;
                    m.accepted += mine.accepted;
                    m.failures += mine.failures;
                    m.latencies_ms.extend(mine.latencies_ms);
                    for (k, v) in mine.statuses {
                        *m.statuses.entry(k).or_default() += v;
                    }
                    for (k, v) in mine.samples {
                        m.samples.entry(k).or_insert(v);
                    }
                }
            });
        }
    });
    let mut step = merged.into_inner().unwrap_or_default();
    step.clients = clients;
    step.seconds = started.elapsed().as_secs_f64();
    step
}

/// Runs `beacons` for `secs`, measuring the worker's CPU meanwhile.
fn timed_step(w: &Worker, site: &Site, clients: usize, tag: &str, secs: u64) -> Step {
    let stop = AtomicBool::new(false);
    let pids = w.pid().map(worker_pids).unwrap_or_default();
    let (w0, n0) = (ticks(&pids, "workerd"), ticks(&pids, "node"));
    let t0 = Instant::now();
    let mut step = std::thread::scope(|s| {
        let h = s.spawn(|| beacons(w, site, clients, tag, &stop, None));
        std::thread::sleep(Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap_or_default()
    });
    let el = t0.elapsed().as_secs_f64();
    let (total, busiest, name) = cpu_between(&w0, &ticks(&pids, "workerd"), el);
    let (node, _, _) = cpu_between(&n0, &ticks(&pids, "node"), el);
    step.cpu = Cpu {
        total,
        busiest,
        busiest_name: name,
        node,
    };
    step.stored = stored(w, site, tag);
    step
}

/// Events of a run's `tag` stored in D1 (-1 when the count fails).
fn stored(w: &Worker, site: &Site, tag: &str) -> i64 {
    w.count(&format!(
        "SELECT COUNT(*) FROM events WHERE site_id = '{}' AND event_id LIKE 'ev-{tag}c%'",
        site.id
    ))
    .unwrap_or(-1)
}

fn arg(args: &[String], name: &str) -> Option<u64> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

pub fn run(args: &[String]) -> Result {
    let step_secs = arg(args, "--step-seconds").unwrap_or(12);
    let max_clients = arg(args, "--max-clients").unwrap_or(64) as usize;
    if args.iter().any(|a| a == "--no-build") {
        closeloop_e2e::worker::check_built()?;
    } else {
        crate::build()?;
    }
    say("Load: the worker under wrangler dev, raised rate limits");
    let w = Worker::start_raised()?;
    let site = w.create_site(&[ORIGIN])?;
    // warm-up (V8 tiers the wasm up; the first requests are slow)
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| beacons(&w, &site, 2, "warm", &stop, None));
        std::thread::sleep(Duration::from_secs(5));
        stop.store(true, Ordering::Relaxed);
    });

    let mut steps: Vec<Step> = Vec::new();
    let mut clients = 1;
    while clients <= max_clients {
        let st = timed_step(&w, &site, clients, &format!("r{clients}"), step_secs);
        note(format!(
            "{clients:>3} clients: {:>6.0} events/s, p50 {:>6.1} ms, p99 {:>7.1} ms, stored {} / accepted {}, [{}], workerd {:.2} cores (busiest thread {:.2}: {}), node {:.2}",
            st.events_per_sec(),
            st.pct(0.5),
            st.pct(0.99),
            st.stored,
            st.accepted,
            st.statuses(),
            st.cpu.total,
            st.cpu.busiest,
            st.cpu.busiest_name,
            st.cpu.node
        ));
        if let Some(why) = st.why() {
            note(format!("     answers other than 200: {why}"));
        }
        steps.push(st);
        clients *= 2;
    }
    let knee = knee(&steps);
    note(format!(
        "knee: {} clients ({:.0} events/s)",
        steps[knee].clients,
        steps[knee].events_per_sec()
    ));

    say("Mixed load: beacons with reports and imports, then a backlogged flush");
    // a sub-run that could not finish (the worker stopped answering) is a finding in
    // the section, not an end without figures
    let failed = |what: &str, e: String| Part {
        lines: vec![format!("{what}: **could not finish**: {e}")],
        ok: false,
    };
    let mixed = mixed(&w, &site, step_secs).unwrap_or_else(|e| failed("mixed load", e));
    for l in &mixed.lines {
        note(l);
    }
    let flush = flush_under_load(&w, &site).unwrap_or_else(|e| failed("flush under load", e));
    for l in &flush.lines {
        note(l);
    }
    drop(w);

    say("Real limits: wrangler.toml's own rate limits");
    let real = real_limits(step_secs).unwrap_or_else(|e| failed("real limits", e));
    for l in &real.lines {
        note(l);
    }

    let ok_ramp = steps.iter().all(|s| s.stored == s.accepted as i64);
    let body = section(&steps, knee, &mixed, &flush, &real, step_secs);
    crate::benchmarks_md::write_section("load", &body)?;
    note("wrote the load section of BENCHMARKS.md");
    let mut problems = Vec::new();
    if !ok_ramp {
        problems.push("a ramp step stored a different number of events than it accepted");
    }
    if !mixed.ok {
        problems.push("the mixed load lost or refused beacons");
    }
    if !flush.ok {
        problems.push("the flush under load blocked ingest or lost a queued visitor");
    }
    if !real.ok {
        problems.push("the real-limits run stored a different number than it accepted");
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The knee: the first step after which doubling the clients adds less than 10 %
/// throughput (where more clients stop helping; on a flat curve, the first step).
fn knee(steps: &[Step]) -> usize {
    for i in 0..steps.len().saturating_sub(1) {
        if steps[i + 1].events_per_sec() < steps[i].events_per_sec() * 1.10 {
            return i;
        }
    }
    steps.len().saturating_sub(1)
}

/// Lines and a verdict of a sub-run.
#[derive(Default)]
struct Part {
    lines: Vec<String>,
    ok: bool,
}

fn section(
    steps: &[Step],
    knee: usize,
    mixed: &Part,
    flush: &Part,
    real: &Part,
    secs: u64,
) -> String {
    let mut out = format!(
        "## Load (`cargo xtask load`)\n\n\
         Measured {}. The worker under `wrangler dev` (local mode, loopback, this 2-core machine, which \
         the clients share), rate limits raised (a copy of `wrangler.toml`), clients sending \
         `POST /v1/collect` batches of {EVENTS_PER_BATCH} page views back to back, {secs} s per step. \
         Stored is counted in D1 after each step and must equal what the answers accepted. CPU is \
         read from `/proc` for every thread of `workerd` (the runtime: the worker's isolate and \
         the local D1) and of `node` (wrangler, which proxies each request to workerd); 1.00 = one \
         core busy the whole step.\n\n\
         | clients | requests/s | events/s | p50 ms | p99 ms | answers | stored = accepted | workerd cores | busiest thread | node cores |\n\
         |---:|---:|---:|---:|---:|---|---|---:|---|---:|\n",
        crate::util::output(std::process::Command::new("date").args(["-u", "+%Y-%m-%d"]))
            .unwrap_or_default()
    );
    for (i, s) in steps.iter().enumerate() {
        let mark = if i == knee { " **(knee)**" } else { "" };
        out.push_str(&format!(
            "| {}{mark} | {:.0} | {:.0} | {:.1} | {:.1} | {} | {} ({} / {}) | {:.2} | {:.2} `{}` | {:.2} |\n",
            s.clients,
            s.requests_per_sec(),
            s.events_per_sec(),
            s.pct(0.5),
            s.pct(0.99),
            s.statuses(),
            if s.stored == s.accepted as i64 { "yes" } else { "**NO**" },
            s.stored,
            s.accepted,
            s.cpu.total,
            s.cpu.busiest,
            s.cpu.busiest_name,
            s.cpu.node
        ));
    }
    let k = &steps[knee];
    out.push_str(&format!(
        "\n**Knee: {} clients, {:.0} events/s ({:.0} requests/s)**; past it, more clients only add \
         latency (p99 {:.0} ms at {} clients). See ARCHITECTURE.md (\"What limits ingest\") for what \
         the CPU figures say.\n\n### Mixed load\n\n",
        k.clients,
        k.events_per_sec(),
        k.requests_per_sec(),
        steps.last().map_or(0.0, |s| s.pct(0.99)),
        steps.last().map_or(0, |s| s.clients)
    ));
    for l in mixed.lines.iter().chain(&flush.lines) {
        out.push_str(&format!("- {l}\n"));
    }
    out.push_str(&format!(
        "\nVerdict: reports and imports {} ; the flush {}.\n\n### With the real limits\n\n",
        if mixed.ok {
            "slowed beacons but lost or refused none"
        } else {
            "**lost or refused beacons**"
        },
        if flush.ok {
            "neither blocked ingest (every second had accepted beacons) nor lost a queued visitor (every stored event has its session)"
        } else {
            "**blocked ingest or lost a queued visitor**"
        }
    ));
    for l in &real.lines {
        out.push_str(&format!("- {l}\n"));
    }
    out
}
