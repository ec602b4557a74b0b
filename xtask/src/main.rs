//! `cargo xtask`: the project's commands (the cargo xtask pattern).
//!
//! - `cargo xtask demo` — install what is missing, build, migrate the local D1, start
//!   the worker in wrangler's local mode with the demo site and the dashboard.
//! - `cargo xtask test` — install what is missing, then run every test.
//! - `cargo xtask bench` — build in release and write BENCHMARKS.md.
//! - `cargo xtask build` — build the tracker and the worker.

mod edge;
mod install;
mod tracker;
mod util;

use util::{say, Result};

const USAGE: &str = "usage: cargo xtask <demo|test|bench|build>";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build") => build(),
        _ => Err(USAGE.to_string()),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Installs the build tools, then builds the tracker and the worker.
fn build() -> Result {
    install::build_tools()?;
    say("Building");
    tracker::build()?;
    edge::build()?;
    Ok(())
}
