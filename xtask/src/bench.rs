//! `cargo xtask bench`: builds in release, measures, and writes BENCHMARKS.md.
//!
//! Rows so far: the tracker's transfer size (every file a visitor downloads, raw,
//! gzip -9 and brotli -q 11) and core's criterion benchmarks (channel classification
//! throughput, attribution of a 50-touch journey per model), and the enrichment's
//! accuracy on public corpora with its CPU beside `main`'s (`bench_enrich.rs`).

use crate::util::{self, note, root, say, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

pub fn run(args: &[String]) -> Result {
    let quick = args.iter().any(|a| a == "--quick");
    // `--only a,b`: run only those parts (sizes, ingest, tracker, reports, core) and print
    // them; BENCHMARKS.md is rewritten only by a whole run.
    let only: Option<Vec<String>> = args.iter().position(|a| a == "--only").map(|i| {
        args.get(i + 1)
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    });
    const PARTS: [&str; 6] = ["sizes", "ingest", "tracker", "reports", "core", "enrich"];
    if let Some(o) = &only {
        if let Some(bad) = o.iter().find(|p| !PARTS.contains(&p.as_str())) {
            return Err(format!(
                "unknown bench part `{bad}` (one of {})",
                PARTS.join(", ")
            ));
        }
    }
    let wanted = |p: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == p));
    // the enrichment part measures core natively and needs no build of the worker
    if only
        .as_ref()
        .is_none_or(|o| o.iter().any(|p| p != "enrich"))
    {
        crate::build()?;
    }
    let mut md = String::from(
        "# Benchmarks\n\nWritten by `cargo xtask bench` (do not edit by hand). Machine: 2 cores, 24 GiB.\n",
    );
    md.push_str(&format!("Measured: {}.\n\n", today()));

    if wanted("sizes") {
        say("Tracker transfer size");
        md.push_str(&crate::bench_tracker::sizes()?);
    }
    if wanted("ingest") {
        say("Ingest throughput: the worker beside a bare insert-only worker");
        md.push_str(&crate::bench_ingest::run()?);
    }
    if wanted("tracker") {
        say("Tracker start-up on the main thread (headless Chromium)");
        md.push_str(&crate::bench_tracker::run()?);
    }
    if wanted("reports") {
        say("Reports over a generated data set, beside sqlite3");
        md.push_str(&crate::bench_reports::run()?);
    }
    if wanted("enrich") {
        say("Enrichment: bots, devices and channels against public corpora");
        md.push_str(&crate::bench_enrich::run()?);
    }
    if wanted("core") {
        say("core benchmarks (criterion)");
        md.push_str(&core_benches(quick)?);
    }

    let path = root().join("BENCHMARKS.md");
    if let Some(parts) = &only {
        println!("\n{md}");
        // A partial run rewrites only its own sections of BENCHMARKS.md.
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        let new = splice_sections(&old, &md, &today(), &parts.join(","));
        std::fs::write(&path, new).map_err(|e| e.to_string())?;
        note(format!(
            "a partial run (--only): its sections of {} rewritten",
            path.display()
        ));
        return Ok(());
    }
    // the soak, load and fuzz sections are other commands' (see benchmarks_md.rs)
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let md = crate::benchmarks_md::keep_sections(&md, &old);
    std::fs::write(&path, md).map_err(|e| e.to_string())?;
    note(format!("wrote {}", path.display()));
    Ok(())
}

/// The `## ` sections of a markdown text: (heading line, the whole section).
fn sections(md: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in md.split_inclusive('\n') {
        // a marked section's opening line (soak, load, fuzz: benchmarks_md.rs) starts
        // a piece of its own, so that it stays with the section it opens
        if line.starts_with("## ") || line.starts_with("<!-- section:") {
            out.push((line.trim_end().to_string(), String::new()));
        }
        if let Some(last) = out.last_mut() {
            last.1.push_str(line);
        }
    }
    out
}

/// `old` BENCHMARKS.md with the sections of a partial run's `new` text put in place
/// of those with the same heading (appended when new), and a line saying which
/// were measured when.
fn splice_sections(old: &str, new: &str, date: &str, parts: &str) -> String {
    let fresh = sections(new);
    let head_end = old.find("\n## ").map_or(old.len(), |i| i + 1);
    let mut head: String = old[..head_end]
        .lines()
        .filter(|l| !l.starts_with("Partial run"))
        .map(|l| format!("{l}\n"))
        .collect();
    if head.trim().is_empty() {
        head = "# Benchmarks\n\n".into();
    }
    while head.ends_with("\n\n") {
        head.pop();
    }
    head.push_str(&format!(
        "Partial run (`--only {parts}`) on {date}: its sections below are from that day.\n\n"
    ));
    let mut out = head;
    let mut used = vec![false; fresh.len()];
    for (heading, text) in sections(&old[head_end.min(old.len())..]) {
        match fresh.iter().position(|(h, _)| *h == heading) {
            Some(i) => {
                out.push_str(&fresh[i].1);
                used[i] = true;
            }
            None => out.push_str(&text),
        }
    }
    for (i, (_, text)) in fresh.iter().enumerate() {
        if !used[i] {
            out.push_str(text);
        }
    }
    out
}

/// Runs `cargo bench -p closeloop-core` and tabulates criterion's estimates.
fn core_benches(quick: bool) -> Result<String> {
    let mut cmd = util::cargo();
    cmd.args(["bench", "-p", "closeloop-core"]);
    if quick {
        cmd.args(["--", "--warm-up-time", "1", "--measurement-time", "2"]);
    }
    util::step("cargo bench -p closeloop-core", "bench-core", &mut cmd)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let dir = target.join("criterion");
    let mut rows = vec![];
    collect_estimates(&dir, &mut rows);
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::from(
        "## core (criterion, one core)\n\n| benchmark | mean time | throughput |\n|---|---:|---:|\n",
    );
    for (name, ns, elems) in rows {
        let thr = match elems {
            Some(n) if ns > 0.0 => format!("{:.2} M/s", n as f64 / ns * 1e3),
            _ => "".into(),
        };
        note(format!("{name}: {} {thr}", human_ns(ns)));
        out.push_str(&format!("| `{name}` | {} | {thr} |\n", human_ns(ns)));
    }
    out.push('\n');
    Ok(out)
}

/// Finds `<group>/<bench>/new/estimates.json` under criterion's directory.
fn collect_estimates(dir: &Path, rows: &mut Vec<(String, f64, Option<u64>)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in rd.filter_map(|e| e.ok()) {
        let p = entry.path();
        if !p.is_dir() {
            continue;
        }
        let est = p.join("new").join("estimates.json");
        let meta = p.join("new").join("benchmark.json");
        if est.is_file() {
            let read = |f: &Path| -> Option<Value> {
                serde_json::from_slice(&std::fs::read(f).ok()?).ok()
            };
            let (Some(e), Some(m)) = (read(&est), read(&meta)) else {
                continue;
            };
            let ns = e["mean"]["point_estimate"].as_f64().unwrap_or(0.0);
            let name = m["full_id"].as_str().unwrap_or("?").to_string();
            let elems = m["throughput"]["Elements"].as_u64();
            rows.push((name, ns, elems));
        } else if p.file_name().is_some_and(|n| n != "report") {
            collect_estimates(&p, rows);
        }
    }
}

fn human_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

fn today() -> String {
    util::output(std::process::Command::new("date").args(["-u", "+%Y-%m-%d"])).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::splice_sections;

    #[test]
    fn a_partial_run_replaces_only_its_sections() {
        let old = "# Benchmarks\n\nMeasured: 2026-01-01.\n\n## A\n\nold a\n\n## B\n\nold b\n";
        let new = "# Benchmarks\n\nMeasured: 2026-02-02.\n\n## B\n\nnew b\n\n## C\n\nnew c\n";
        let out = splice_sections(old, new, "2026-02-02", "b,c");
        assert_eq!(
            out,
            "# Benchmarks\n\nMeasured: 2026-01-01.\nPartial run (`--only b,c`) on 2026-02-02: \
             its sections below are from that day.\n\n## A\n\nold a\n\n## B\n\nnew b\n\n\
             ## C\n\nnew c\n"
        );
        // a second partial run replaces the line, not adds one
        let again = splice_sections(&out, new, "2026-03-03", "b");
        assert_eq!(again.matches("Partial run").count(), 1);
        assert!(again.contains("on 2026-03-03"));
    }
}
