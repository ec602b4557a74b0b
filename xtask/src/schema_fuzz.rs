//! The schema-driven HTTP fuzz of the running worker (issue 13): schemathesis (PyPI,
//! installed into a venv under `target/` only when missing or at another version)
//! generates requests from `docs/openapi.json` — valid and invalid — and checks every
//! answer: no 5xx, status codes, content types, headers and bodies as the document
//! says (so every error is in the `{"error": {"code", "message"}}` shape the document
//! gives every 4xx).
//!
//! The worker is a dedicated one (`wrangler dev`, throw-away state, raised rate limits
//! so that the limiters do not answer most requests) with one site whose keys are
//! given to schemathesis per security scheme; the `site` path parameter is that site
//! (otherwise nearly every request would be a 404 for an unknown site).

use crate::util::{self, log_dir, note, root, Result};
use closeloop_e2e::worker::Worker;
use std::path::PathBuf;
use std::process::Command;

/// The schemathesis release the checks were written against.
pub const SCHEMATHESIS_VERSION: &str = "4.32.5";

fn venv() -> PathBuf {
    root().join("target").join("schemathesis")
}

/// The `schemathesis` command of the venv.
pub fn binary() -> PathBuf {
    venv().join("bin").join("schemathesis")
}

/// Creates the venv and installs schemathesis from PyPI when missing or another version.
pub fn install() -> Result {
    let have = util::output(Command::new(binary()).arg("--version")).unwrap_or_default();
    if have.ends_with(SCHEMATHESIS_VERSION) {
        return Ok(());
    }
    if !venv().join("bin").join("pip").exists() {
        util::step(
            "creating a Python venv for schemathesis (target/schemathesis)",
            "install-schemathesis-venv",
            Command::new("python3").arg("-m").arg("venv").arg(venv()),
        )?;
    }
    util::step(
        &format!(
            "installing schemathesis {SCHEMATHESIS_VERSION} from PyPI (first run only, ~1 min)"
        ),
        "install-schemathesis",
        Command::new(venv().join("bin").join("pip")).args([
            "install",
            "-q",
            &format!("schemathesis=={SCHEMATHESIS_VERSION}"),
        ]),
    )
}

/// What a run found.
pub struct Findings {
    /// Test cases schemathesis ran (from its summary), if it said.
    pub cases: Option<u64>,
    /// Whether it found nothing wrong.
    pub ok: bool,
}

/// Runs schemathesis for `seconds` against a dedicated worker. `log` names the log file.
/// With a `seed` the run draws the same cases every time (a slower machine draws a prefix
/// of them): `cargo xtask test` pins one so that CI is reproducible, `cargo xtask fuzz`
/// explores with a new seed each run (schemathesis prints it).
pub fn run(seconds: u64, log: &str, seed: Option<u64>) -> Result<Findings> {
    install()?;
    let worker = Worker::start_raised()?;
    let (site, manage_key) = worker.create_managed_site(&["https://fuzz.example"])?;
    let config = worker.persist.join("schemathesis.toml");
    // The keys go through the environment, not the file.
    let toml = format!(
        r#"# written by cargo xtask (xtask/src/schema_fuzz.rs)
base-url = "{base}"
request-timeout = 30.0
workers = 1
max-failures = 50

[auth.openapi]
readKey = {{ bearer = "${{CL_READ_KEY}}" }}
writeKey = {{ bearer = "${{CL_WRITE_KEY}}" }}
manageKey = {{ bearer = "${{CL_MANAGE_KEY}}" }}
adminToken = {{ bearer = "${{CL_ADMIN_TOKEN}}" }}

[parameters]
"path.site" = "{site}"

[checks]
# a valid request may still meet a missing lead or an unknown deal: that is a 4xx
positive_data_acceptance.enabled = false
"#,
        base = worker.base,
        site = site.id
    );
    std::fs::write(&config, toml).map_err(|e| e.to_string())?;
    let report = log_dir().join(format!("{log}-junit.xml"));
    let mut cmd = Command::new(binary());
    cmd.arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(root().join("docs").join("openapi.json"))
        .args(["--max-time", &seconds.to_string(), "--report", "junit"])
        .arg("--report-junit-path")
        .arg(&report)
        .args(["--no-color"]);
    if let Some(seed) = seed {
        cmd.args(["--seed", &seed.to_string()]);
    }
    cmd.env("CL_READ_KEY", &site.read_key)
        .env("CL_WRITE_KEY", &site.write_key)
        .env("CL_MANAGE_KEY", &manage_key)
        .env("CL_ADMIN_TOKEN", &worker.admin_token)
        .env("SCHEMATHESIS_HOOKS", "")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let label = format!("schemathesis against the worker ({seconds} s, docs/openapi.json)");
    let ran = util::step(&label, log, &mut cmd);
    let text = std::fs::read_to_string(log_dir().join(format!("{log}.log"))).unwrap_or_default();
    let summary: Vec<String> = text
        .lines()
        .skip_while(|l| !l.contains("SUMMARY"))
        .filter(|l| !l.trim().is_empty())
        .take(30)
        .map(str::to_string)
        .collect();
    let cases = text.lines().find_map(|l| {
        let l = l.trim();
        let n = l.split_whitespace().next()?.parse::<u64>().ok()?;
        (l.contains("test cases") || l.contains("generated")).then_some(n)
    });
    for l in summary.iter().take(12) {
        note(format!("| {l}"));
    }
    drop(worker);
    Ok(Findings {
        cases,
        ok: ran.is_ok(),
    })
}
