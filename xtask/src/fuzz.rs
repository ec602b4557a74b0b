//! `cargo xtask fuzz [--minutes N] [--only a,b] [--schema-seconds S]`: every cargo-fuzz
//! target of the project (libFuzzer, nightly toolchain, no sanitizer) for N minutes
//! each (default 10), then the schema-driven HTTP fuzz of the running worker
//! (schemathesis, `schema_fuzz.rs`) for S seconds (default 600). Prints executions and
//! findings per target; a crash leaves its input under `<fuzz dir>/artifacts/<target>/`
//! and fails the command. The totals (executions, CPU hours, findings) accumulate in
//! BENCHMARKS.md's fuzz section.
//!
//! `cargo xtask test` runs the same targets briefly (see [`run_targets`]).

use crate::util::{self, log_dir, note, say, Result};
use serde_json::{json, Value};
use std::process::Command;

/// A cargo-fuzz target: its project directory, name and extra libFuzzer flags.
pub struct Target {
    /// The cargo-fuzz project (`core/fuzz` or `edge/fuzz`).
    pub dir: &'static str,
    /// The target's name.
    pub name: &'static str,
    /// What it fuzzes.
    pub what: &'static str,
    /// A libFuzzer dictionary, relative to the project.
    pub dict: Option<&'static str>,
}

/// Every target, one per parser of the project.
pub const TARGETS: [Target; 8] = [
    Target {
        dir: "core/fuzz",
        name: "batch",
        what: "the /v1/collect batch (core validate, both modes)",
        dict: Some("batch.dict"),
    },
    Target {
        dir: "core/fuzz",
        name: "csv_import",
        what: "CSV conversions and spend (core import)",
        dict: None,
    },
    Target {
        dir: "core/fuzz",
        name: "write_json",
        what: "conversion and spend JSON bodies (core import)",
        dict: None,
    },
    Target {
        dir: "core/fuzz",
        name: "entry",
        what: "entry URLs and referrers, channels (core entry, channel)",
        dict: None,
    },
    Target {
        dir: "core/fuzz",
        name: "email",
        what: "emails (core identity)",
        dict: None,
    },
    Target {
        dir: "core/fuzz",
        name: "report_query",
        what: "report query strings (core report::Query)",
        dict: None,
    },
    Target {
        dir: "edge/fuzz",
        name: "events_import",
        what: "the events:import body: array / JSON lines, context (edge)",
        dict: None,
    },
    Target {
        dir: "edge/fuzz",
        name: "user_agent",
        what: "user agents and request.cf (edge enrich)",
        dict: None,
    },
];

/// What one target's run did.
pub struct Ran {
    /// The target's name.
    pub name: &'static str,
    /// Inputs executed (libFuzzer's `Done N runs`).
    pub execs: u64,
    /// Seconds it fuzzed.
    pub seconds: u64,
    /// Crashing inputs found.
    pub findings: u64,
    /// The failure, if it failed.
    pub error: Option<String>,
}

/// Whether to use `cargo +nightly` (else the pinned stable with `RUSTC_BOOTSTRAP=1`).
fn nightly() -> bool {
    util::output(Command::new("rustup").args(["toolchain", "list"]))
        .is_some_and(|l| l.lines().any(|t| t.starts_with("nightly")))
}

fn cargo_fuzz() -> Command {
    let mut cmd = Command::new("cargo");
    if nightly() {
        cmd.arg("+nightly");
    } else {
        // cargo-fuzz wants a nightly rustc (`-Z` flags); the pinned stable toolchain with
        // RUSTC_BOOTSTRAP=1 does the same (checked)
        cmd.env("RUSTC_BOOTSTRAP", "1");
    }
    cmd.env_remove("RUSTUP_TOOLCHAIN").env_remove("CARGO");
    cmd
}

/// Builds every target of both projects (one step each).
pub fn build_targets() -> Result {
    for dir in ["core/fuzz", "edge/fuzz"] {
        let mut cmd = cargo_fuzz();
        cmd.args(["fuzz", "build", "-s", "none", "--fuzz-dir", dir]);
        util::step(
            &format!("cargo fuzz build ({dir})"),
            &format!("fuzz-build-{}", dir.replace('/', "-")),
            &mut cmd,
        )?;
    }
    Ok(())
}

/// Runs `targets` (all when empty) for `seconds` each; new corpus entries go to a
/// scratch directory, never into the repository.
pub fn run_targets(seconds: u64, only: &[String], log_prefix: &str) -> Result<Vec<Ran>> {
    build_targets()?;
    let mut out = Vec::new();
    for t in TARGETS
        .iter()
        .filter(|t| only.is_empty() || only.iter().any(|o| o == t.name))
    {
        let scratch = closeloop_e2e::temp_dir("fuzz-corpus")?;
        let mut cmd = cargo_fuzz();
        cmd.args(["fuzz", "run", "-s", "none", "--fuzz-dir", t.dir, t.name])
            .arg(&scratch)
            .arg(format!("{}/corpus/{}", t.dir, t.name))
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-max_len=8192",
                "-timeout=10",
                "-rss_limit_mb=2048",
                "-print_final_stats=1",
            ]);
        if let Some(d) = t.dict {
            cmd.arg(format!("-dict={}/{d}", t.dir));
        }
        let log = format!("{log_prefix}-{}", t.name);
        let result = util::step(
            &format!("{} — {} ({seconds} s)", t.name, t.what),
            &log,
            &mut cmd,
        );
        let _ = std::fs::remove_dir_all(&scratch);
        let text =
            std::fs::read_to_string(log_dir().join(format!("{log}.log"))).unwrap_or_default();
        let execs = text
            .lines()
            .rev()
            .filter_map(|l| l.trim().strip_prefix("stat::number_of_executed_units:"))
            .find_map(|n| n.trim().parse::<u64>().ok())
            .or_else(|| {
                text.lines()
                    .rev()
                    .filter_map(|l| l.trim().strip_prefix("Done "))
                    .find_map(|r| r.split_whitespace().next()?.parse().ok())
            })
            .unwrap_or(0);
        let findings = text.matches("Test unit written to").count() as u64;
        note(format!(
            "{}: {execs} executions, {findings} findings",
            t.name
        ));
        out.push(Ran {
            name: t.name,
            execs,
            seconds,
            findings,
            error: result.err(),
        });
    }
    Ok(out)
}

fn arg(args: &[String], name: &str) -> Option<String> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

/// `cargo xtask fuzz`.
pub fn run(args: &[String]) -> Result {
    let minutes: u64 = match arg(args, "--minutes") {
        Some(m) => m
            .parse()
            .map_err(|_| format!("--minutes {m}: not a number"))?,
        None => 10,
    };
    let schema_secs: u64 = match arg(args, "--schema-seconds") {
        Some(s) => s
            .parse()
            .map_err(|_| format!("--schema-seconds {s}: not a number"))?,
        None => 600,
    };
    // replays a schemathesis run (its seed is printed at the end of each)
    let seed: Option<u64> = match arg(args, "--seed") {
        Some(s) => Some(s.parse().map_err(|_| format!("--seed {s}: not a number"))?),
        None => None,
    };
    let only: Vec<String> = arg(args, "--only")
        .map(|o| o.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    crate::install::cargo_fuzz()?;
    if minutes > 0 {
        say(format!(
            "Fuzzing every parser, {minutes} min per target (cargo fuzz, libFuzzer)"
        ));
    }
    // `-max_total_time=0` would mean "forever": 0 minutes skips the targets
    let ran = if minutes > 0 {
        run_targets(minutes * 60, &only, "fuzz")?
    } else {
        Vec::new()
    };
    let mut schema = None;
    if schema_secs > 0 && only.is_empty() {
        crate::build()?;
        say(format!(
            "Schema fuzz of the running worker ({schema_secs} s, schemathesis)"
        ));
        schema = Some((
            schema_secs,
            crate::schema_fuzz::run(schema_secs, "fuzz-schema", seed)?,
        ));
    }
    record(&ran, schema.as_ref().map(|(s, f)| (*s, f)))?;
    let failed: Vec<String> =
        ran.iter()
            .filter_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.name)))
            .chain(
                schema.as_ref().filter(|(_, f)| !f.ok).map(|_| {
                    "schemathesis found problems (target/xtask-logs/fuzz-schema.log)".into()
                }),
            )
            .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("\n"))
    }
}

/// Adds this run to the totals kept in BENCHMARKS.md's fuzz section and rewrites it.
fn record(ran: &[Ran], schema: Option<(u64, &crate::schema_fuzz::Findings)>) -> Result {
    let path = util::root().join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let mut totals: Value = old
        .lines()
        .find_map(|l| l.trim().strip_prefix("<!-- fuzz-totals: "))
        .and_then(|l| l.strip_suffix(" -->"))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_else(|| json!({}));
    for r in ran {
        let t = &mut totals[r.name];
        let add = |v: &Value, n: u64| v.as_u64().unwrap_or(0) + n;
        *t = json!({
            "execs": add(&t["execs"], r.execs),
            "seconds": add(&t["seconds"], r.seconds),
            "findings": add(&t["findings"], r.findings),
        });
    }
    if let Some((secs, f)) = schema {
        let t = &mut totals["schemathesis"];
        let add = |v: &Value, n: u64| v.as_u64().unwrap_or(0) + n;
        *t = json!({
            "execs": add(&t["execs"], f.cases.unwrap_or(0)),
            "seconds": add(&t["seconds"], secs),
            "findings": add(&t["findings"], u64::from(!f.ok)),
        });
    }
    let mut body = String::from(
        "## Fuzzing (`cargo xtask fuzz`)\n\n\
         Totals over every `cargo xtask fuzz` run recorded here (libFuzzer through cargo-fuzz, \
         no sanitizer, one core per target; schemathesis against the worker under `wrangler dev`). \
         A finding is a crashing input (or, for schemathesis, a run that found a problem); each \
         was fixed and pinned by a regression test (see the tests named after it).\n\n\
         | target | what | executions | CPU hours | findings |\n|---|---|---:|---:|---:|\n",
    );
    let mut hours = 0.0;
    let mut names: Vec<(&str, &str)> = TARGETS.iter().map(|t| (t.name, t.what)).collect();
    names.push(("schemathesis", "the HTTP surface from docs/openapi.json"));
    for (name, what) in names {
        let t = &totals[name];
        let secs = t["seconds"].as_u64().unwrap_or(0) as f64;
        hours += secs / 3600.0;
        body.push_str(&format!(
            "| `{name}` | {what} | {} | {:.2} | {} |\n",
            t["execs"].as_u64().unwrap_or(0),
            secs / 3600.0,
            t["findings"].as_u64().unwrap_or(0)
        ));
    }
    body.push_str(&format!(
        "\n**{hours:.2} fuzz hours in all** (last run {}).\n\n<!-- fuzz-totals: {} -->\n",
        util::output(Command::new("date").args(["-u", "+%Y-%m-%d"])).unwrap_or_default(),
        totals
    ));
    crate::benchmarks_md::write_section("fuzz", &body)?;
    note(format!("{hours:.2} fuzz hours recorded in BENCHMARKS.md"));
    Ok(())
}
