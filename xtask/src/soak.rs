//! `cargo xtask soak [--events N] [--seed S] [--no-build]`: the fault run at scale (issue 13) —
//! 10,000+ events from real Chromium visits through the seeded fault-injecting proxy,
//! against the real worker stopped and started again along the way
//! (`tests/src/faults.rs`, run by the `closeloop-faults` binary). Prints created /
//! stored / duplicated / lost per fault kind and writes the table to BENCHMARKS.md (its
//! own section). Fails unless every created event was stored exactly once; the seed is
//! printed so a failing run can be replayed with `--seed`.

use crate::util::{self, log_dir, note, say, Result};
use serde_json::Value;

fn arg(args: &[String], name: &str) -> Option<String> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

pub fn run(args: &[String]) -> Result {
    let events: usize = match arg(args, "--events") {
        Some(n) => n
            .parse()
            .map_err(|_| format!("--events {n}: not a number"))?,
        None => 10_000,
    };
    let seed = arg(args, "--seed");
    crate::install::chromium()?;
    if args.iter().any(|a| a == "--no-build") {
        closeloop_e2e::worker::check_built()?;
    } else {
        crate::build()?;
    }
    say(format!(
        "Soak: {events} events from Chromium visits through the fault proxy{}",
        seed.as_deref()
            .map(|s| format!(" (seed {s})"))
            .unwrap_or_default()
    ));
    let json = log_dir().join("soak.json");
    let md = log_dir().join("soak.md");
    let _ = std::fs::remove_file(&json);
    let mut cmd = util::cargo();
    cmd.args([
        "run",
        "-q",
        "-p",
        "closeloop-e2e",
        "--bin",
        "closeloop-faults",
        "--",
        "--events",
        &events.to_string(),
        "--json",
    ])
    .arg(&json)
    .arg("--markdown")
    .arg(&md);
    if let Some(s) = &seed {
        cmd.args(["--seed", s]);
    }
    note(format!(
        "about 1 event per 0.1-0.3 s on two cores: expect {}-{} min",
        events / 600,
        events / 200
    ));
    let ran = util::step("the fault run (closeloop-faults)", "soak", &mut cmd);
    let report: Value = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or_else(|| {
            ran.clone()
                .err()
                .unwrap_or_else(|| "the fault run wrote no report".into())
        })?;
    let n = |k: &str| report[k].as_u64().unwrap_or(0);
    let seed = n("seed");
    note(format!(
        "seed {seed}: created {}, stored once {}, duplicated {}, lost {} ({} visits, {} requests, {} restarts, {:.0} min)",
        n("created"),
        n("stored"),
        n("duplicated"),
        n("lost"),
        n("visits"),
        n("requests"),
        n("restarts"),
        report["seconds"].as_f64().unwrap_or(0.0) / 60.0
    ));
    let table = std::fs::read_to_string(&md).unwrap_or_default();
    let ok = report["ok"].as_bool() == Some(true);
    let body = format!(
        "## Exactly once under faults (`cargo xtask soak`)\n\n\
         Measured {}. Real headless Chromium visits of the demo site (fresh browser contexts as \
         visitors; SPA and full loads, forms, reloads, offline spells, tabs closed mid-send) \
         through the fault-injecting proxy (`tests/src/proxy.rs`, seeded plan) to the real \
         worker under `wrangler dev`, which is stopped and started again {} times. Created = \
         distinct ids in the tracker's own log (`window.__closeloop_log`); stored, duplicated \
         and lost are read from D1. An event counts under every fault its requests met. \
         {}\n\n{table}",
        today(),
        n("restarts"),
        if ok {
            "**Every created event stored exactly once.**"
        } else {
            "**NOT exactly once** (see the examples in target/xtask-logs/soak.log)."
        },
    );
    crate::benchmarks_md::write_section("soak", &body)?;
    note("wrote the soak section of BENCHMARKS.md");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "not exactly once (seed {seed}; replay: cargo xtask soak --seed {seed} --events {events})"
        ))
    }
}

fn today() -> String {
    util::output(std::process::Command::new("date").args(["-u", "+%Y-%m-%d"])).unwrap_or_default()
}
