//! Small helpers shared by the commands: the repository root, readable steps, and
//! running tools quietly with their output kept in a log file.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// What a command returns: a readable message on failure.
pub type Result<T = ()> = std::result::Result<T, String>;

/// The repository root (the parent of `xtask/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where each step's full output is kept: `target/xtask-logs/`.
pub fn log_dir() -> PathBuf {
    let dir = root().join("target").join("xtask-logs");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Prints a top-level line: `==> what`.
pub fn say(what: impl Display) {
    println!("==> {what}");
}

/// Prints an indented detail line.
pub fn note(what: impl Display) {
    println!("    {what}");
}

/// The environment every tool gets: wrangler's telemetry off, no remote `cf` fetch,
/// and the project's tools first on `PATH`.
pub fn tool_env(cmd: &mut Command) -> &mut Command {
    let root = root();
    let bin = root.join("node_modules").join(".bin");
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("WRANGLER_LOG_PATH", log_dir().join("wrangler"))
        .env("NO_UPDATE_NOTIFIER", "1")
        .env("npm_config_update_notifier", "false")
        .env("npm_config_fund", "false")
        .env("npm_config_audit", "false")
        .env("PATH", format!("{}:{path}", bin.display()))
        .current_dir(root)
}

/// Runs `cmd` as one step: prints `label ... ok (1.2s)`, with the tool's output kept in
/// `target/xtask-logs/<log>.log`. On failure prints the last lines and where the log is.
pub fn step(label: &str, log: &str, cmd: &mut Command) -> Result {
    use std::io::Write;
    let started = Instant::now();
    print!("    {label} ... ");
    let _ = std::io::stdout().flush();
    let log_path = log_dir().join(format!("{log}.log"));
    let file =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    tool_env(cmd);
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err))
        .status()
        .map_err(|e| format!("could not start {:?}: {e}", cmd.get_program()))?;
    let secs = started.elapsed().as_secs_f64();
    if status.success() {
        println!("ok ({secs:.1}s)");
        Ok(())
    } else {
        println!("FAILED ({secs:.1}s)");
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(25)..];
        for l in tail {
            println!("      | {l}");
        }
        Err(format!(
            "{label} failed; full output in {}",
            log_path.display()
        ))
    }
}

/// Runs `cmd` with its output going straight to the terminal (for test runners).
pub fn run_visible(cmd: &mut Command) -> Result {
    tool_env(cmd);
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("could not start {:?}: {e}", cmd.get_program()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{:?} exited with {status}", cmd.get_program()))
    }
}

/// Runs `cmd` and returns its standard output (trimmed), or `None` if it cannot run
/// or fails. For version probes.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `cargo` as invoked by the user (respects `$CARGO`).
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// A tool installed by `npm ci` into `node_modules/`.
pub fn node_tool(rel: &str) -> PathBuf {
    root().join("node_modules").join(rel)
}

/// The version of a package in `Cargo.lock` (the first match).
pub fn locked_version(package: &str) -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock"))
        .map_err(|e| format!("Cargo.lock: {e}"))?;
    let needle = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == needle {
            if let Some(v) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = "))
            {
                return Ok(v.trim_matches('"').to_string());
            }
        }
    }
    Err(format!("{package} is not in Cargo.lock"))
}
