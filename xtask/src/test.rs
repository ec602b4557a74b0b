//! `cargo xtask test`: installs what is missing, builds, then runs every test — unit
//! and property tests of every crate, the end-to-end tests against a real worker under
//! wrangler's local mode and a real headless Chromium, and a bounded fuzzing run —
//! printing one line per suite and where the full output is.

use crate::util::{self, log_dir, note, say, Result};
use closeloop_e2e::worker::{Worker, ENV_ADMIN, ENV_BASE, ENV_PERSIST};
use std::process::{Command, Stdio};
use std::time::Instant;

/// How long each fuzz target runs inside the test suite, in seconds.
const FUZZ_SECONDS: u64 = 15;
/// How long the schema fuzz of the worker runs inside the test suite, in seconds.
const SCHEMA_FUZZ_SECONDS: u64 = 90;

/// The seed of that short run: the same cases on every machine (new ones are
/// `cargo xtask fuzz`'s job, with a fresh seed each time).
const SCHEMA_FUZZ_SEED: u64 = 20_261_203;

/// Totals over every suite.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    failures: Vec<String>,
}

pub fn run(args: &[String]) -> Result {
    let started = Instant::now();
    let skip_fuzz = args.iter().any(|a| a == "--no-fuzz");
    crate::install::build_tools()?;
    crate::install::chromium()?;
    if !skip_fuzz {
        crate::install::cargo_fuzz()?;
        crate::schema_fuzz::install()?;
    }
    crate::build()?;

    let mut tally = Tally::default();
    say("Tracker size budget (issue 17)");
    match crate::tracker::check_budget() {
        Ok(line) => {
            note(format!("ok     {line}"));
            tally.passed += 1;
        }
        Err(e) => {
            note(format!("FAILED {e}"));
            tally.failed += 1;
            tally.failures.push(format!("tracker size budget: {e}"));
        }
    }

    say("Unit and property tests (core, tracker, edge, xtask)");
    cargo_test(
        &mut tally,
        "unit",
        util::cargo().args([
            "test",
            "--workspace",
            "--exclude",
            "closeloop-e2e",
            "--no-fail-fast",
        ]),
    )?;

    say("End-to-end tests (wrangler dev local mode + headless Chromium)");
    let worker = start_worker()?;
    note(format!(
        "worker on {} (state in {})",
        worker.base,
        worker.persist.display()
    ));
    let mut e2e = util::cargo();
    e2e.args(["test", "-p", "closeloop-e2e", "--no-fail-fast"])
        .env(ENV_BASE, &worker.base)
        .env(ENV_PERSIST, &worker.persist)
        .env(ENV_ADMIN, &worker.admin_token);
    cargo_test(&mut tally, "e2e", &mut e2e)?;
    drop(worker);

    if skip_fuzz {
        note("fuzzing skipped (--no-fuzz)");
    } else {
        say(format!(
            "Schema fuzz of the worker (schemathesis, {SCHEMA_FUZZ_SECONDS} s)"
        ));
        schema_fuzz(&mut tally)?;
        say(format!(
            "Fuzzing every parser ({FUZZ_SECONDS} s per target)"
        ));
        fuzz(&mut tally)?;
    }

    println!();
    let mins = started.elapsed().as_secs_f64() / 60.0;
    if tally.failed == 0 {
        println!("All tests passed in {mins:.1} min.");
    } else {
        println!("Failed tests:");
        for f in &tally.failures {
            println!("  - {f}");
        }
        println!("(full output in {})", log_dir().display());
    }
    println!("{} passed, {} failed", tally.passed, tally.failed);
    if tally.failed == 0 {
        Ok(())
    } else {
        Err(format!("{} test(s) failed", tally.failed))
    }
}

fn start_worker() -> Result<Worker> {
    use std::io::Write;
    print!("    starting the worker under wrangler dev ... ");
    let _ = std::io::stdout().flush();
    let t = Instant::now();
    let w = Worker::start()?;
    println!("ok ({:.1}s)", t.elapsed().as_secs_f64());
    Ok(w)
}

/// Runs a `cargo test` command with its output in a log, then prints one line per test
/// binary and the failures, if any.
fn cargo_test(tally: &mut Tally, log: &str, cmd: &mut Command) -> Result {
    let log_path = log_dir().join(format!("test-{log}.log"));
    let file = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    util::tool_env(cmd);
    let t = Instant::now();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err))
        .status()
        .map_err(|e| format!("cargo test: {e}"))?;
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let mut suite = String::new();
    let mut found = 0;
    for line in text.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("Running ") {
            suite = rest.split(" (").next().unwrap_or(rest).to_string();
        } else if let Some(rest) = l.strip_prefix("Doc-tests ") {
            suite = format!("doc-tests {rest}");
        } else if let Some(rest) = l.strip_prefix("test result: ") {
            found += 1;
            let (p, f) = (
                number_before(rest, " passed"),
                number_before(rest, " failed"),
            );
            tally.passed += p;
            tally.failed += f;
            if p + f > 0 {
                let mark = if f == 0 { "ok" } else { "FAILED" };
                println!("    {mark:6} {suite}: {p} passed, {f} failed");
            }
        } else if let Some(name) = l
            .strip_prefix("test ")
            .and_then(|r| r.strip_suffix(" ... FAILED"))
        {
            tally.failures.push(format!("{suite}: {name}"));
        }
    }
    note(format!(
        "({:.0}s; full output in {})",
        t.elapsed().as_secs_f64(),
        log_path.display()
    ));
    if !status.success() && tally.failed == 0 {
        // A build error, not a test failure: show the end of the log.
        let lines: Vec<&str> = text.lines().collect();
        for l in &lines[lines.len().saturating_sub(40)..] {
            println!("      | {l}");
        }
        return Err(format!(
            "cargo test did not run (see {})",
            log_path.display()
        ));
    }
    if found == 0 {
        return Err(format!(
            "cargo test ran no test binary (see {})",
            log_path.display()
        ));
    }
    if tally.failed > 0 {
        print_failures(&text);
    }
    Ok(())
}

fn print_failures(text: &str) {
    let mut on = false;
    let mut printed = 0;
    for line in text.lines() {
        if line.starts_with("failures:") {
            on = true;
        } else if line.starts_with("test result:") {
            on = false;
        }
        if on && printed < 200 {
            println!("      | {line}");
            printed += 1;
        }
    }
}

fn number_before(s: &str, word: &str) -> u64 {
    s.find(word)
        .and_then(|i| s[..i].rsplit([' ', ';', '.']).find(|w| !w.is_empty()))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A bounded libFuzzer run of every fuzz target (`FUZZ_SECONDS` each, see
/// `fuzz.rs`); a crash is a failed test, with the crashing input left in the target's
/// `artifacts/`.
fn fuzz(tally: &mut Tally) -> Result {
    let ran = match crate::fuzz::run_targets(FUZZ_SECONDS, &[], "test-fuzz") {
        Ok(r) => r,
        Err(e) => {
            tally.failed += 1;
            tally.failures.push(format!("fuzz: {e}"));
            return Ok(());
        }
    };
    for r in ran {
        match r.error {
            None => tally.passed += 1,
            Some(e) => {
                tally.failed += 1;
                tally.failures.push(format!("fuzz {}: {e}", r.name));
            }
        }
    }
    Ok(())
}

/// The short schema fuzz of the worker (schemathesis over `docs/openapi.json`): any
/// finding is a failed test.
fn schema_fuzz(tally: &mut Tally) -> Result {
    match crate::schema_fuzz::run(
        SCHEMA_FUZZ_SECONDS,
        "test-schema-fuzz",
        Some(SCHEMA_FUZZ_SEED),
    ) {
        Ok(f) if f.ok => tally.passed += 1,
        Ok(_) => {
            tally.failed += 1;
            tally.failures.push(
                "schema fuzz: schemathesis found problems (target/xtask-logs/test-schema-fuzz.log)"
                    .into(),
            );
        }
        Err(e) => {
            tally.failed += 1;
            tally.failures.push(format!("schema fuzz: {e}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::number_before;

    #[test]
    fn reads_cargo_test_counts() {
        let line =
            "ok. 12 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s";
        assert_eq!(number_before(line, " passed"), 12);
        assert_eq!(number_before(line, " failed"), 3);
        assert_eq!(number_before("FAILED. 0 passed; 1 failed;", " failed"), 1);
    }
}
