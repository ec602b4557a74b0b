//! `cargo xtask`: the project's commands (the cargo xtask pattern).
//!
//! - `cargo xtask demo` — install what is missing, build, migrate the local D1, start
//!   the worker in wrangler's local mode with the demo site and the dashboard.
//! - `cargo xtask test` — install what is missing, then run every test.
//! - `cargo xtask bench` — build in release and write BENCHMARKS.md (`--only` a part: print it).
//! - `cargo xtask soak` — the fault run at 10,000+ events (writes its BENCHMARKS.md section).
//! - `cargo xtask load` — rising load on the local worker, the knee (its BENCHMARKS.md section).
//! - `cargo xtask fuzz` — every cargo-fuzz target, then schemathesis (its BENCHMARKS.md section).
//! - `cargo xtask build` — build the tracker and the worker (`build tracker`: the tracker).
//! - `cargo xtask site create|list|keys|origins|settings|identity-secret` — manage sites on a
//!   running worker.
//! - `cargo xtask lint` — rustfmt and clippy, native and wasm32.
//! - `cargo xtask refresh-lists` — refresh the bot lists (package registries) and the
//!   referrer lists core compiles in.

mod bench;
mod bench_enrich;
mod bench_ingest;
mod bench_reports;
mod bench_tracker;
mod benchmarks_md;
mod dashboard;
mod demo;
mod edge;
mod fuzz;
mod install;
mod lists;
mod load;
mod schema_fuzz;
mod site;
mod soak;
mod test;
mod tracker;
mod util;

use util::{say, Result};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  demo [--screenshots]
                  install, build, migrate and serve the demo (worker + demo site);
                  --screenshots: save every dashboard view into docs/ and stop
  test            install what is missing, then run every test
  bench [--only sizes,ingest,tracker,reports,core,enrich] [--quick]
                  build in release, measure, write BENCHMARKS.md (--only: print)
  soak [--events N] [--seed S] [--no-build]
                  10,000 events from Chromium through the fault proxy: exactly once?
  load [--step-seconds S] [--max-clients N] [--no-build]
                  rising concurrent clients, mixed load, real limits: the knee
  fuzz [--minutes N] [--only a,b] [--schema-seconds S] [--seed S]
                  every cargo-fuzz target N min (10), then schemathesis S s (600)
  build [tracker] build the tracker and the worker (or the tracker alone)
  lint            cargo fmt --check, clippy (native and wasm32, -D warnings), tsc
  site ...        manage sites on a running worker (see `cargo xtask site help`)
  refresh-lists   refresh the bot lists (npm, PyPI) and referrer lists core compiles in";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    let result = match args.first().map(String::as_str) {
        Some("build") if rest == ["tracker"] => install::build_tools()
            .and_then(|_| tracker::build())
            .and_then(|_| dashboard::write_headers()),
        Some("build") => build(),
        Some("demo") => demo::run(rest),
        Some("test") => test::run(rest),
        Some("bench") => bench::run(rest),
        Some("soak") => soak::run(rest),
        Some("fuzz") => fuzz::run(rest),
        Some("load") => load::run(rest),
        Some("lint") => lint(),
        Some("site") => site::run(rest),
        Some("refresh-lists") => lists::run(rest),
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_string()),
    };
    if let Err(e) = result {
        eprintln!("\nerror: {e}");
        std::process::exit(1);
    }
}

/// Installs the build tools, then builds the tracker and the worker.
pub fn build() -> Result {
    install::build_tools()?;
    say("Building the tracker and the worker");
    tracker::build()?;
    dashboard::build()?;
    edge::build()?;
    Ok(())
}

/// rustfmt and clippy over every crate, native and wasm32, warnings as errors; the
/// dashboard's TypeScript type-checked.
fn lint() -> Result {
    install::build_tools()?;
    say("Linting");
    util::step(
        "cargo fmt --check",
        "lint-fmt",
        util::cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    util::step(
        "clippy (native crates)",
        "lint-clippy-native",
        util::cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    util::step(
        "clippy (tracker and edge, wasm32)",
        "lint-clippy-wasm",
        util::cargo().args([
            "clippy",
            "-p",
            "closeloop-tracker",
            "-p",
            "closeloop-edge",
            "--target",
            "wasm32-unknown-unknown",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    dashboard::typecheck()?;
    Ok(())
}
