//! Installs what the project needs and the machine lacks: the wasm32 target,
//! `wasm-bindgen-cli` at exactly the version in `Cargo.lock`, the npm tools (wrangler,
//! esbuild, binaryen's wasm-opt) through the committed `package-lock.json`, Debian's
//! Chromium, and cargo-fuzz. Each check is cheap, so warm runs skip every install.

use crate::util::{self, note, output, root, step, Result};
use std::process::Command;

/// `rustup target add wasm32-unknown-unknown` when the target is missing.
pub fn wasm_target() -> Result {
    let installed =
        output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if installed
        .lines()
        .any(|l| l.trim() == "wasm32-unknown-unknown")
    {
        return Ok(());
    }
    step(
        "installing the wasm32-unknown-unknown target (rustup)",
        "install-wasm-target",
        Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]),
    )
}

/// `cargo install wasm-bindgen-cli` at the version `Cargo.lock` pins, when the one on
/// `PATH` is missing or another version. (Not `--locked`: a locked dependency of it is
/// missing from the registry mirror here; see shared/setup.md.)
pub fn wasm_bindgen() -> Result {
    let want = util::locked_version("wasm-bindgen")?;
    let have = output(Command::new("wasm-bindgen").arg("--version")).unwrap_or_default();
    if have.split_whitespace().nth(1) == Some(want.as_str()) {
        return Ok(());
    }
    step(
        &format!("installing wasm-bindgen-cli {want} from crates.io (first run only, ~5 min)"),
        "install-wasm-bindgen",
        util::cargo().args(["install", "wasm-bindgen-cli", "--version", &want, "--force"]),
    )
}

/// `npm ci` when `node_modules/` is missing or older than `package-lock.json`.
pub fn node_modules() -> Result {
    let root = root();
    let stamp = root.join("node_modules").join(".package-lock.json");
    let lock = root.join("package-lock.json");
    let fresh = match (std::fs::metadata(&stamp), std::fs::metadata(&lock)) {
        (Ok(s), Ok(l)) => match (s.modified(), l.modified()) {
            (Ok(s), Ok(l)) => s >= l,
            _ => false,
        },
        _ => false,
    };
    if fresh && util::node_tool(".bin/wrangler").exists() {
        return Ok(());
    }
    step(
        "installing wrangler, esbuild and wasm-opt from the npm registry (npm ci)",
        "install-npm",
        Command::new("npm").args(["ci", "--no-audit", "--no-fund"]),
    )
}

/// Debian's `chromium`, with apt, when `/usr/bin/chromium` is missing.
pub fn chromium() -> Result {
    if std::path::Path::new("/usr/bin/chromium").exists() {
        return Ok(());
    }
    step(
        "apt-get update",
        "install-apt-update",
        Command::new("apt-get").args(["update", "-q"]),
    )?;
    step(
        "installing Debian's chromium with apt (~1 min)",
        "install-chromium",
        Command::new("apt-get")
            .args(["install", "-y", "-q", "chromium"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// `cargo install cargo-fuzz` when missing (the fuzz target runs on the nightly
/// toolchain the machine ships).
pub fn cargo_fuzz() -> Result {
    if output(Command::new("cargo").args(["fuzz", "--version"])).is_some() {
        return Ok(());
    }
    step(
        "installing cargo-fuzz from crates.io (first run only, ~2 min)",
        "install-cargo-fuzz",
        util::cargo().args(["install", "cargo-fuzz"]),
    )
}

/// Everything the build needs (not the browser).
pub fn build_tools() -> Result {
    util::say("Checking tools");
    wasm_target()?;
    node_modules()?;
    wasm_bindgen()?;
    note("tools ready");
    Ok(())
}
