//! The fault run as a command (for `cargo xtask soak`): `closeloop-faults [--events N]
//! [--seed S] [--browsers B] [--visitors V] [--restarts R] [--json FILE] [--markdown
//! FILE]`. Prints the
//! tables; exits non-zero unless every created event was stored exactly once.

use closeloop_e2e::faults::{self, Options};

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seed = arg(&args, "--seed").unwrap_or_else(faults::random_seed);
    let mut opts = Options::soak(seed);
    if let Some(n) = arg(&args, "--events") {
        opts.events = n;
    }
    if let Some(n) = arg(&args, "--browsers") {
        opts.browsers = n;
    }
    if let Some(n) = arg(&args, "--visitors") {
        opts.visitors = n;
    }
    if let Some(n) = arg(&args, "--restarts") {
        opts.restarts = n;
    }
    println!(
        "fault run: seed {seed}, {} events, {} browsers x {} visitors, {} restarts \
         (replay: --seed {seed})",
        opts.events, opts.browsers, opts.visitors, opts.restarts
    );
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio: {e}");
            std::process::exit(2);
        }
    };
    let outcome = match rt.block_on(faults::run(&opts)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("the fault run failed to run (seed {seed}): {e}");
            std::process::exit(2);
        }
    };
    println!("{}", outcome.table());
    if let Some(path) = arg::<String>(&args, "--json") {
        if let Err(e) = std::fs::write(&path, outcome.json().to_string()) {
            eprintln!("{path}: {e}");
        }
    }
    if let Some(path) = arg::<String>(&args, "--markdown") {
        if let Err(e) = std::fs::write(&path, outcome.table()) {
            eprintln!("{path}: {e}");
        }
    }
    if outcome.ok() {
        println!("every created event stored exactly once (seed {seed})");
    } else {
        println!(
            "NOT exactly once (seed {seed}; replay: cargo xtask soak --seed {seed}):\n  {}",
            outcome.examples.join("\n  ")
        );
        std::process::exit(1);
    }
}
