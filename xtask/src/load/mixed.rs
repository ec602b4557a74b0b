//! The ramp's companions in `cargo xtask load`: beacons beside reports and imports, a
//! backlogged flush under beacons, and the worker with `wrangler.toml`'s own limits.

use super::{
    beacon, beacons, cut, stored, timed_step, Part, Step, BACKLOG_VISITORS, MIXED_CLIENTS, ORIGIN,
};
use crate::util::Result;
use closeloop_e2e::http;
use closeloop_e2e::worker::{Site, Worker};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Beacons from [`MIXED_CLIENTS`] clients alone, then with reports and imports.
pub(super) fn mixed(w: &Worker, site: &Site, secs: u64) -> Result<Part> {
    let alone = timed_step(w, site, MIXED_CLIENTS, "ma", secs);
    let stop = AtomicBool::new(false);
    let reports = Mutex::new(Vec::<(String, f64, u16)>::new());
    let imports = Mutex::new(Vec::<(String, f64, u16)>::new());
    let imported = AtomicU64::new(0);
    let import_errors = Mutex::new(BTreeMap::<String, String>::new());
    let with = std::thread::scope(|s| {
        let h = s.spawn(|| timed_step(w, site, MIXED_CLIENTS, "mb", secs));
        for (i, path) in [
            "reports/sources?group_by=channel&model=data_driven",
            "reports/pages",
        ]
        .into_iter()
        .enumerate()
        {
            let (stop, reports) = (&stop, &reports);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let a = http::get(
                        &w.url(&format!("/v1/sites/{}/{path}", site.id)),
                        Some(&site.read_key),
                    );
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    let status = a.map(|a| a.status).unwrap_or(0);
                    if let Ok(mut r) = reports.lock() {
                        r.push((format!("report {i}"), ms, status));
                    }
                }
            });
        }
        let (stop, imports, imported, import_errors) = (&stop, &imports, &imported, &import_errors);
        s.spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let lines: Vec<String> = (0..50)
                    .map(|k| {
                        json!({"visitor_id": format!("vimp-{n:06}-{k:02}"), "events": [{
                            "id": format!("ev-imp-{n}-{k}"), "type": "pageview",
                            "created_at": closeloop_e2e::now_ms() - 86_400_000,
                            "url": "https://load.example/imported"}]})
                        .to_string()
                    })
                    .collect();
                let t = Instant::now();
                let a = http::request(
                    "POST",
                    &w.url(&format!("/v1/sites/{}/events:import", site.id)),
                    &[
                        ("Content-Type", "application/x-ndjson"),
                        ("Authorization", &format!("Bearer {}", site.write_key)),
                    ],
                    Some(&lines.join("\n")),
                );
                let ms = t.elapsed().as_secs_f64() * 1e3;
                if let Ok(a) = &a {
                    imported.fetch_add(a.json["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
                }
                let csv = format!(
                    "deal_id,email,revenue,currency,closed_at\nd-{n},lead{n}@example.com,12.50,USD,2026-11-20\n"
                );
                let t2 = Instant::now();
                let b = http::request(
                    "POST",
                    &w.url(&format!("/v1/sites/{}/conversions:import", site.id)),
                    &[
                        ("Content-Type", "text/csv"),
                        ("Authorization", &format!("Bearer {}", site.write_key)),
                    ],
                    Some(&csv),
                );
                for (what, answer) in [("events:import", &a), ("conversions:import", &b)] {
                    let why = match answer {
                        Ok(x) if (200..300).contains(&x.status) => continue,
                        Ok(x) => format!("{} {}", x.status, cut(&x.text)),
                        Err(e) => cut(e),
                    };
                    if let Ok(mut m) = import_errors.lock() {
                        m.entry(what.to_string()).or_insert(why);
                    }
                }
                if let Ok(mut im) = imports.lock() {
                    im.push(("events:import".into(), ms, a.map(|a| a.status).unwrap_or(0)));
                    im.push((
                        "conversions:import".into(),
                        t2.elapsed().as_secs_f64() * 1e3,
                        b.map(|b| b.status).unwrap_or(0),
                    ));
                }
                n += 1;
            }
        });
        let step = h.join().unwrap_or_default();
        stop.store(true, Ordering::Relaxed);
        step
    });
    let median = |v: &[(String, f64, u16)], what: &str| -> (usize, f64, usize) {
        let mut ms: Vec<f64> = v
            .iter()
            .filter(|r| r.0.starts_with(what))
            .map(|r| r.1)
            .collect();
        ms.sort_by(f64::total_cmp);
        let bad = v
            .iter()
            .filter(|r| r.0.starts_with(what) && !(200..300).contains(&r.2))
            .count();
        (ms.len(), ms.get(ms.len() / 2).copied().unwrap_or(0.0), bad)
    };
    let reports = reports.into_inner().unwrap_or_default();
    let imports = imports.into_inner().unwrap_or_default();
    let (rn, rmed, rbad) = median(&reports, "report");
    let (en, emed, ebad) = median(&imports, "events:import");
    let (cn, cmed, cbad) = median(&imports, "conversions:import");
    let mut part = Part {
        ok: alone.stored == alone.accepted as i64
            && with.stored == with.accepted as i64
            && with.failures == 0
            && with.statuses.keys().all(|s| *s == 200)
            && rbad + ebad + cbad == 0,
        ..Part::default()
    };
    part.lines.push(format!(
        "beacons alone ({MIXED_CLIENTS} clients): {:.0} events/s, p50 {:.1} ms, p99 {:.1} ms",
        alone.events_per_sec(),
        alone.pct(0.5),
        alone.pct(0.99)
    ));
    part.lines.push(format!(
        "beacons with reports and imports: {:.0} events/s ({:.0} %), p50 {:.1} ms, p99 {:.1} ms, stored {} / accepted {}, [{}]",
        with.events_per_sec(),
        100.0 * with.events_per_sec() / alone.events_per_sec().max(1e-9),
        with.pct(0.5),
        with.pct(0.99),
        with.stored,
        with.accepted,
        with.statuses()
    ));
    part.lines.push(format!(
        "meanwhile: {rn} reports (median {rmed:.0} ms, {rbad} not 2xx), {en} events:import of 50 batches (median {emed:.0} ms, {ebad} not 2xx, {} events accepted), {cn} conversions:import (median {cmed:.0} ms, {cbad} not 2xx)",
        imported.load(Ordering::Relaxed)
    ));
    for (what, why) in import_errors.into_inner().unwrap_or_default() {
        part.lines.push(format!("{what} not 2xx: {why}"));
    }
    if let Some(why) = with.why() {
        part.lines.push(format!("beacons not 200: {why}"));
    }
    Ok(part)
}

/// Queues [`BACKLOG_VISITORS`] visitors, then flushes them through the admin endpoint
/// while beacons arrive; checks ingest kept going and every event got its session.
pub(super) fn flush_under_load(w: &Worker, site: &Site) -> Result<Part> {
    // first, a clean slate: everything stored so far sessionised
    w.flush_sessions(None)?;
    // the backlog: one batch per visitor, 8 at a time
    let stop = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let refused = Mutex::new(None::<String>);
    std::thread::scope(|s| {
        for c in 0..8u64 {
            let (sent, site, refused) = (&sent, &site, &refused);
            s.spawn(move || {
                let mut n = c;
                while n < BACKLOG_VISITORS as u64 {
                    let body = beacon(&site.id, &format!("vq-{n:08}"), "queued", n);
                    if let Ok(a) = http::request(
                        "POST",
                        &w.url("/v1/collect"),
                        &[("Content-Type", "text/plain"), ("Origin", ORIGIN)],
                        Some(&body),
                    ) {
                        if a.status == 200 {
                            sent.fetch_add(1, Ordering::Relaxed);
                        } else if let Ok(mut r) = refused.lock() {
                            r.get_or_insert_with(|| format!("{} {}", a.status, cut(&a.text)));
                        }
                    }
                    n += 8;
                }
            });
        }
    });
    let queued = w.count("SELECT COUNT(*) FROM session_queue")?;
    let per_second = Mutex::new(BTreeMap::<u64, u64>::new());
    let t0 = Instant::now();
    let mut flushes = Vec::new();
    let step = std::thread::scope(|s| {
        let h = s.spawn(|| beacons(w, site, MIXED_CLIENTS, "fl", &stop, Some(&per_second)));
        // the beacons run a second alone, then the backlog is flushed as the cron does
        std::thread::sleep(Duration::from_secs(1));
        loop {
            let t = Instant::now();
            let r = w.flush_sessions(None);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let more = r
                .as_ref()
                .map(|v| v["more"] == json!(true))
                .unwrap_or(false);
            flushes.push((ms, r.map(|v| v["visitors"].as_u64().unwrap_or(0))));
            if !more || t0.elapsed() > Duration::from_secs(120) {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap_or_default()
    });
    let mut step = step;
    step.stored = stored(w, site, "fl");
    let flush_secs: f64 = flushes.iter().map(|f| f.0).sum::<f64>() / 1e3;
    let flushed: u64 = flushes.iter().filter_map(|f| f.1.as_ref().ok()).sum();
    let flush_errors = flushes.iter().filter(|f| f.1.is_err()).count();
    // what the beacons queued meanwhile is the next flush's: run it, then check
    w.flush_sessions(None)?;
    let without_session = w.count(&format!(
        "SELECT COUNT(*) FROM events WHERE site_id = '{}' AND session_id IS NULL",
        site.id
    ))?;
    let still_queued = w.count("SELECT COUNT(*) FROM session_queue")?;
    let per_second = per_second.into_inner().unwrap_or_default();
    let seconds = step.seconds.floor() as u64;
    let idle_seconds = (0..seconds)
        .filter(|s| per_second.get(s).copied().unwrap_or(0) == 0)
        .count();
    let refused = refused.into_inner().unwrap_or_default();
    let mut part = Part {
        ok: refused.is_none()
            && step.failures == 0
            && step.statuses.keys().all(|s| *s == 200)
            && idle_seconds == 0
            && step.stored == step.accepted as i64
            && without_session == 0
            && still_queued == 0
            && flush_errors == 0
            && queued as u64 >= sent.load(Ordering::Relaxed),
        lines: vec![
            format!(
                "backlog: {} visitors queued ({} batches sent); flushed {flushed} visitors (the backlog and what the beacons queued meanwhile; `POST /v1/admin/sessions:flush` called until nothing was left) in {flush_secs:.1} s ({flush_errors} errors)",
                queued,
                sent.load(Ordering::Relaxed),
            ),
            format!(
                "beacons meanwhile ({MIXED_CLIENTS} clients): {:.0} events/s, p50 {:.1} ms, p99 {:.1} ms, max {:.0} ms, seconds without an accepted beacon: {idle_seconds} of {seconds}, stored {} / accepted {}, [{}]",
                step.events_per_sec(),
                step.pct(0.5),
                step.pct(0.99),
                step.pct(1.0),
                step.stored,
                step.accepted,
                step.statuses()
            ),
            format!(
                "afterwards: {without_session} stored events without a session, {still_queued} visitors still queued"
            ),
        ],
    };
    if let Some(why) = refused {
        part.lines
            .push(format!("a backlog batch was refused: {why}"));
    }
    if let Some(why) = step.why() {
        part.lines.push(format!("beacons not 200: {why}"));
    }
    Ok(part)
}

/// 16 clients against a worker with `wrangler.toml`'s own limits, 2 visitors (each over its 30 per 10 s within seconds).
pub(super) fn real_limits(secs: u64) -> Result<Part> {
    let w = Worker::start()?;
    let site = w.create_site(&[ORIGIN])?;
    let stop = AtomicBool::new(false);
    let retry_after = Mutex::new(Vec::<String>::new());
    let counts = Mutex::new(Step::default());
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for c in 0..16u64 {
            let (stop, retry_after, counts, w, site) = (&stop, &retry_after, &counts, &w, &site);
            s.spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let body = beacon(
                        &site.id,
                        &format!("vreal-{:04}", c % 2),
                        &format!("real{c}"),
                        n,
                    );
                    n += 1;
                    let a = http::request(
                        "POST",
                        &w.url("/v1/collect"),
                        &[("Content-Type", "text/plain"), ("Origin", ORIGIN)],
                        Some(&body),
                    );
                    if let Ok(mut m) = counts.lock() {
                        m.requests += 1;
                        match a {
                            Ok(a) => {
                                *m.statuses.entry(a.status).or_default() += 1;
                                if a.status != 200 && a.status != 429 {
                                    m.samples.entry(a.status).or_insert_with(|| cut(&a.text));
                                }
                                m.accepted += a.json["accepted"].as_u64().unwrap_or(0);
                                if a.status == 429 {
                                    if let (Some(r), Ok(mut ra)) =
                                        (a.header("retry-after"), retry_after.lock())
                                    {
                                        if ra.len() < 1000 {
                                            ra.push(r.to_string());
                                        }
                                    }
                                }
                            }
                            Err(_) => m.failures += 1,
                        }
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
    });
    let mut st = counts.into_inner().unwrap_or_default();
    st.seconds = t0.elapsed().as_secs_f64();
    st.stored = w.count(&format!(
        "SELECT COUNT(*) FROM events WHERE site_id = '{}'",
        site.id
    ))?;
    let ra = retry_after.into_inner().unwrap_or_default();
    let limited = st.statuses.get(&429).copied().unwrap_or(0);
    let with_header = ra.len() as u64;
    let values: std::collections::BTreeSet<String> = ra.into_iter().collect();
    let mut part = Part {
        ok: st.stored == st.accepted as i64
            && limited > 0
            && st.samples.is_empty()
            && with_header == limited.min(1000),
        lines: vec![format!(
            "16 clients, 2 visitors, one address, {:.0} s: {} requests [{}], {:.0} events/s accepted, stored {} / accepted {}; every 429 had Retry-After ({:?} s)",
            st.seconds,
            st.requests,
            st.statuses(),
            st.events_per_sec(),
            st.stored,
            st.accepted,
            values
        )],
    };
    if let Some(why) = st.why() {
        part.lines
            .push(format!("answers other than 200 and 429: {why}"));
    }
    Ok(part)
}
