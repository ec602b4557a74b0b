//! `cargo xtask refresh-lists`: refreshes the lists `closeloop-core` compiles in.
//!
//! - Bot patterns, from the package registries with their ordinary clients (no other
//!   network access is needed): the `isbot` npm package's pattern list (Unlicense) and
//!   `crawler-user-agents` (MIT) from PyPI, or from npm when pip is missing. Each is
//!   written to `core/data/bots/` with its version, licence, date and the SHA-256 of the
//!   package it came from; crawler-user-agents' example user agents (`instances`) are
//!   left out: they are the benchmark's corpus (`cargo xtask bench --only enrich`), never
//!   what we ship.
//! - Matomo's referrer lists, with `core/data/refresh.sh` (it needs GitHub; where only
//!   the registries are reachable it fails and the old lists are kept, said in one line).
//!
//! Afterwards run `cargo test -p closeloop-core`: the tests pin the lists' behaviour, and
//! `core/build.rs` refuses a pattern it cannot compile exactly.

use crate::util::{self, note, root, say, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where downloaded packages are unpacked (the build tree, never committed).
fn work_dir() -> PathBuf {
    root().join("target").join("refresh-lists")
}

pub fn run(args: &[String]) -> Result {
    say("Refreshing the bot lists from the package registries (core/data/bots)");
    let dir = work_dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let date = util::output(Command::new("date").args(["-u", "+%Y-%m-%d"]))
        .unwrap_or_else(|| "unknown".into());
    isbot(&dir, &date)?;
    crawler_user_agents(&dir, &date)?;
    if args.iter().any(|a| a == "--bots-only") {
        return Ok(());
    }
    say("Refreshing Matomo's referrer lists (core/data/matomo; needs GitHub)");
    if let Err(e) = util::run_visible(Command::new("bash").arg(root().join("core/data/refresh.sh")))
    {
        note(format!(
            "Matomo's lists were kept as they are ({e}); they are not published on a package registry"
        ));
    }
    note("now run `cargo test -p closeloop-core` and commit core/data/");
    Ok(())
}

/// Packs `spec` from the npm registry into `dir`; returns the unpacked `package/`
/// directory and the tarball's SHA-256.
pub fn npm_pack(spec: &str, dir: &Path) -> Result<(PathBuf, String)> {
    let log = format!("npm-pack-{}", spec.replace(['/', '@'], "_"));
    util::step(
        &format!("npm pack {spec}"),
        &log,
        Command::new("npm")
            .args(["pack", spec, "--pack-destination"])
            .arg(dir),
    )?;
    let name = spec
        .trim_start_matches('@')
        .replace('/', "-")
        .split('@')
        .next()
        .unwrap_or(spec)
        .to_string();
    let tgz = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&name) && n.ends_with(".tgz"))
        })
        .ok_or_else(|| format!("npm pack {spec}: no tarball in {}", dir.display()))?;
    let out = dir.join(format!("{name}-unpacked"));
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    util::step(
        &format!("unpacking {}", tgz.display()),
        &format!("{log}-tar"),
        Command::new("tar").arg("xzf").arg(&tgz).arg("-C").arg(&out),
    )?;
    Ok((out.join("package"), sha256_file(&tgz)?))
}

/// Downloads `spec` (a wheel) from PyPI with pip into `dir` and unpacks it; returns the
/// unpacked directory and the wheel's SHA-256. `None` when pip is not installed.
pub fn pip_wheel(spec: &str, dir: &Path) -> Result<Option<(PathBuf, String, String)>> {
    let pip = ["pip3", "pip"]
        .into_iter()
        .find(|p| util::output(Command::new(p).arg("--version")).is_some());
    let Some(pip) = pip else {
        return Ok(None);
    };
    let dl = dir.join(format!("pip-{}", spec.replace(['=', '<', '>'], "_")));
    std::fs::create_dir_all(&dl).map_err(|e| e.to_string())?;
    util::step(
        &format!("pip download {spec}"),
        &format!("pip-{}", spec.replace(['=', '<', '>'], "_")),
        Command::new(pip)
            .args([
                "download",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--disable-pip-version-check",
                spec,
                "-d",
            ])
            .arg(&dl),
    )?;
    let whl = std::fs::read_dir(&dl)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| format!("pip download {spec}: no wheel"))?;
    let version = whl
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('-').nth(1))
        .unwrap_or("unknown")
        .to_string();
    let out = dl.join("unpacked");
    util::step(
        &format!("unpacking {}", whl.display()),
        &format!("pip-{}-unzip", spec.replace(['=', '<', '>'], "_")),
        Command::new("python3")
            .args(["-m", "zipfile", "-e"])
            .arg(&whl)
            .arg(&out),
    )?;
    Ok(Some((out, sha256_file(&whl)?, version)))
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn read_json(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes `value` as JSON with one array element per line (small diffs on refresh), and
/// says how many patterns were added and removed.
fn write_list(path: &Path, value: &Value) -> Result {
    let old: Vec<String> = read_json(path)
        .ok()
        .and_then(|v| v["patterns"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(pattern_text)
        .collect();
    let new: Vec<String> = value["patterns"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(pattern_text)
        .collect();
    let added = new.iter().filter(|p| !old.contains(p)).count();
    let removed = old.iter().filter(|p| !new.contains(p)).count();
    let mut text = String::from("{\n");
    let obj = value.as_object().ok_or("a list is a JSON object")?;
    let mut first = true;
    for (k, v) in obj {
        if !first {
            text.push_str(",\n");
        }
        first = false;
        if k == "patterns" {
            text.push_str("  \"patterns\": [\n");
            let items: Vec<String> = v
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|p| format!("    {}", serde_json::to_string(p).unwrap_or_default()))
                .collect();
            text.push_str(&items.join(",\n"));
            text.push_str("\n  ]");
        } else {
            text.push_str(&format!(
                "  {}: {}",
                serde_json::to_string(k).unwrap_or_default(),
                serde_json::to_string(v).unwrap_or_default()
            ));
        }
    }
    text.push_str("\n}\n");
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    note(format!(
        "{}: {} patterns ({added} added, {removed} removed)",
        path.strip_prefix(root()).unwrap_or(path).display(),
        new.len()
    ));
    Ok(())
}

fn pattern_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other["pattern"].as_str().unwrap_or_default().to_string(),
    }
}

fn bots_dir() -> PathBuf {
    root().join("core").join("data").join("bots")
}

/// The `isbot` npm package: its compiled `list` export is upstream's `src/patterns.json`.
fn isbot(dir: &Path, date: &str) -> Result {
    let (pkg, sha) = npm_pack("isbot@latest", dir)?;
    let meta = read_json(&pkg.join("package.json"))?;
    let script = format!(
        "process.stdout.write(JSON.stringify(require({:?}).list))",
        pkg.join("index.js").display().to_string()
    );
    let out = util::output(Command::new("node").args(["-e", &script]))
        .ok_or("node could not read isbot's pattern list")?;
    let list: Value = serde_json::from_str(&out).map_err(|e| format!("isbot list: {e}"))?;
    if list.as_array().is_none_or(|l| l.len() < 50) {
        return Err("isbot's pattern list looks empty; keeping the old one".into());
    }
    write_list(
        &bots_dir().join("isbot.json"),
        &json!({
            "name": "isbot",
            "registry": "npm",
            "version": meta["version"],
            "licence": meta["license"],
            "upstream": "https://github.com/omrilotan/isbot (src/patterns.json, the package's `list` export)",
            "retrieved": date,
            "package_sha256": sha,
            "patterns": list,
        }),
    )
}

/// `crawler-user-agents` (PyPI, newer than its npm releases; npm when pip is missing):
/// patterns with their URL, date and tags; the example user agents are left out.
fn crawler_user_agents(dir: &Path, date: &str) -> Result {
    let (file, sha, version, registry) = match pip_wheel("crawler-user-agents", dir)? {
        Some((out, sha, version)) => (
            out.join("crawleruseragents")
                .join("crawler-user-agents.json"),
            sha,
            version,
            "PyPI",
        ),
        None => {
            let (pkg, sha) = npm_pack("crawler-user-agents@latest", dir)?;
            let version = read_json(&pkg.join("package.json"))?["version"]
                .as_str()
                .unwrap_or("unknown")
                .to_string();
            (pkg.join("crawler-user-agents.json"), sha, version, "npm")
        }
    };
    let all = read_json(&file)?;
    let entries = all
        .as_array()
        .ok_or("crawler-user-agents.json: not a list")?;
    if entries.len() < 100 {
        return Err("crawler-user-agents looks empty; keeping the old one".into());
    }
    let patterns: Vec<Value> = entries
        .iter()
        .filter_map(|e| {
            let mut o = serde_json::Map::new();
            o.insert("pattern".into(), e.get("pattern")?.clone());
            for k in ["url", "addition_date", "tags"] {
                if let Some(v) = e.get(k) {
                    o.insert(k.into(), v.clone());
                }
            }
            Some(Value::Object(o))
        })
        .collect();
    write_list(
        &bots_dir().join("crawler-user-agents.json"),
        &json!({
            "name": "crawler-user-agents",
            "registry": registry,
            "version": version,
            "licence": "MIT",
            "upstream": "https://github.com/monperrus/crawler-user-agents (crawler-user-agents.json; `instances` left out)",
            "retrieved": date,
            "package_sha256": sha,
            "patterns": patterns,
        }),
    )
}
