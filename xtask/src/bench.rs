//! `cargo xtask bench`: builds in release, measures, and writes BENCHMARKS.md.
//!
//! Rows so far: the tracker's transfer size (every file a visitor downloads, raw,
//! gzip -9 and brotli -q 11) and core's criterion benchmarks (channel classification
//! throughput, attribution of a 50-touch journey per model), and the enrichment's
//! accuracy on public corpora with its CPU beside `main`'s (`bench_enrich.rs`).

use crate::util::{self, note, root, say, Result};
use serde_json::Value;
use std::io::Write;
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
        md.push_str(&tracker_sizes()?);
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

    if only.is_some() {
        println!("\n{md}");
        note("a partial run (--only): BENCHMARKS.md left as it was");
        return Ok(());
    }
    let path = root().join("BENCHMARKS.md");
    std::fs::write(&path, md).map_err(|e| e.to_string())?;
    note(format!("wrote {}", path.display()));
    Ok(())
}

/// Sizes of what a visitor downloads: the loader (t.js, with the glue) and the wasm.
fn tracker_sizes() -> Result<String> {
    let public = root().join("dist").join("public");
    let mut files: Vec<PathBuf> = vec![public.join("t.js")];
    let wasm_dir = public.join("t");
    if let Ok(rd) = std::fs::read_dir(&wasm_dir) {
        files.extend(
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "wasm")),
        );
    }
    let mut out = String::from(
        "## Tracker transfer size\n\nEverything a visitor downloads (budget: ≤ 20 KB gzipped in all, aiming at 12 KB).\n\n\
         | file | raw bytes | gzip -9 | brotli -q 11 |\n|---|---:|---:|---:|\n",
    );
    let (mut tr, mut tg, mut tb) = (0, 0, 0);
    for f in &files {
        let bytes = std::fs::read(f)
            .map_err(|e| format!("{}: {e} (was the tracker built?)", f.display()))?;
        let (r, g, b) = (bytes.len(), gzip_len(&bytes)?, brotli_len(&bytes)?);
        let name = f.strip_prefix(&public).unwrap_or(f).display().to_string();
        note(format!("{name}: {r} B raw, {g} B gzip, {b} B brotli"));
        out.push_str(&format!("| `{name}` | {r} | {g} | {b} |\n"));
        (tr, tg, tb) = (tr + r, tg + g, tb + b);
    }
    out.push_str(&format!(
        "| **total** | **{tr}** | **{tg}** ({:.1} KB) | **{tb}** ({:.1} KB) |\n\n",
        tg as f64 / 1024.0,
        tb as f64 / 1024.0
    ));
    Ok(out)
}

fn gzip_len(bytes: &[u8]) -> Result<usize> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).map_err(|e| e.to_string())?;
    enc.finish().map(|v| v.len()).map_err(|e| e.to_string())
}

fn brotli_len(bytes: &[u8]) -> Result<usize> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 11, 22);
        w.write_all(bytes).map_err(|e| e.to_string())?;
    }
    Ok(out.len())
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
