//! The real worker under `wrangler dev` in local mode, on 127.0.0.1 and a free port,
//! with a throw-away persistence directory (local D1 and KV), plus read access to its
//! D1 database file for the tests' checks.

use crate::http::{self, Answer};
use crate::{free_port, root, temp_dir, wait_for, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The D1 binding name in `wrangler.toml`.
pub const DB_BINDING: &str = "DB";

/// A site created through the admin API, with its keys.
#[derive(Debug, Clone)]
pub struct Site {
    /// The site id (`data-site`).
    pub id: String,
    /// Read key for the query API.
    pub read_key: String,
    /// Write key for conversions, spend and imports.
    pub write_key: String,
}

/// A running worker (or the address of one started by `cargo xtask test`).
#[derive(Debug)]
pub struct Worker {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The `--persist-to` directory (local D1/KV state).
    pub persist: PathBuf,
    /// The admin token passed with `--var ADMIN_TOKEN:...`.
    pub admin_token: String,
    port: u16,
    child: Option<Child>,
    log: PathBuf,
    /// Extra `--var NAME:VALUE` for `wrangler dev` (see [`Worker::start_with_vars`]).
    vars: Vec<(String, String)>,
    /// A wrangler configuration of its own (raised rate limits), else `wrangler.toml`.
    config: Option<PathBuf>,
}

/// Every `[[ratelimits]]` limit a worker started with [`Worker::start_raised`] has, per
/// period: far above anything a local run sends, so that a load or fault run measures
/// the worker, not the limiters (all local traffic comes from one address).
pub const RAISED_RATE_LIMIT: u64 = 1_000_000;

/// `wrangler.toml` with every rate limit set to `limit` and its paths made absolute, so
/// that the copy can live outside the repository (in a run's state directory). Paths
/// found in `moved` (`main`, `directory`, ... → a new absolute path) are replaced.
pub fn config_with_limits(limit: u64, moved: &[(&str, PathBuf)]) -> Result<String> {
    let text = std::fs::read_to_string(root().join("wrangler.toml"))
        .map_err(|e| format!("wrangler.toml: {e}"))?;
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        let path_key = ["main", "directory", "migrations_dir"]
            .into_iter()
            .find(|k| t.starts_with(&format!("{k} =")));
        if t.starts_with("simple = {") {
            let period = t
                .split("period")
                .nth(1)
                .and_then(|r| r.trim_start_matches([' ', '=']).split([' ', '}']).next())
                .unwrap_or("10");
            out.push_str(&format!(
                "simple = {{ limit = {limit}, period = {period} }}\n"
            ));
        } else if let Some(k) = path_key {
            let value = t
                .split('"')
                .nth(1)
                .ok_or_else(|| format!("wrangler.toml: no quoted value in `{t}`"))?;
            let abs = moved
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, p)| p.clone())
                .unwrap_or_else(|| root().join(value));
            out.push_str(&format!("{k} = \"{}\"\n", abs.display()));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// The variable that lets webhooks reach a receiver on 127.0.0.1, and the one value that
/// turns it on (`closeloop_core::netguard::LOOPBACK_SWITCH_VALUE`). Only test workers get
/// it; the demo and production never do.
pub const LOOPBACK_SWITCH: (&str, &str) = ("WEBHOOKS_ALLOW_LOOPBACK", "local-tests-only");

/// Environment variables through which `cargo xtask test` hands its worker to the tests.
pub const ENV_BASE: &str = "CLOSELOOP_E2E_BASE";
/// See [`ENV_BASE`].
pub const ENV_PERSIST: &str = "CLOSELOOP_E2E_PERSIST";
/// See [`ENV_BASE`].
pub const ENV_ADMIN: &str = "CLOSELOOP_E2E_ADMIN_TOKEN";

/// The project's wrangler (`node_modules/.bin/wrangler`).
pub fn wrangler() -> PathBuf {
    root().join("node_modules").join(".bin").join("wrangler")
}

/// A command that runs wrangler (arguments to add) under a watchdog shell: when this
/// process goes away (even killed), the shell stops wrangler and workerd, so no server
/// outlives the tests or the bench. With [`wrangler_env`], in its own process group and
/// with stdin closed; the caller adds the arguments and the output.
pub fn watched_wrangler() -> Command {
    let script = format!(
        r#""$@" & child=$!
while kill -0 {parent} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 1; done
kill -TERM $child 2>/dev/null; sleep 2; pkill -KILL -P $child 2>/dev/null; kill -KILL $child 2>/dev/null; wait"#,
        parent = std::process::id()
    );
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(script)
        .arg("wrangler-watchdog")
        .arg(wrangler());
    wrangler_env(&mut cmd);
    use std::os::unix::process::CommandExt;
    cmd.process_group(0).stdin(Stdio::null());
    cmd
}

/// Applies the environment every wrangler call needs: no telemetry, no remote `cf`.
pub fn wrangler_env(cmd: &mut Command) -> &mut Command {
    cmd.env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("NO_UPDATE_NOTIFIER", "1")
        .env("CI", "true")
        .current_dir(root())
}

/// Checks the build outputs the worker needs exist, with a readable hint if not.
pub fn check_built() -> Result {
    if !wrangler().exists() {
        return Err(
            "node_modules/.bin/wrangler is missing: run `cargo xtask test` (it runs npm ci)".into(),
        );
    }
    let shim = root().join("edge").join("build");
    if !shim.exists() {
        return Err(
            "edge/build/ is missing: run `cargo xtask build` first (or `cargo xtask test`)".into(),
        );
    }
    Ok(())
}

/// Copies the files under `from` into `to` (created), recursively.
fn copy_dir(from: &Path, to: &Path) -> Result {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for e in entries.filter_map(|e| e.ok()) {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| format!("{}: {e}", src.display()))?;
        }
    }
    Ok(())
}

/// Applies the D1 migrations to the local database under `persist`.
pub fn migrate(persist: &Path) -> Result {
    let out = wrangler_env(&mut Command::new(wrangler()))
        .args([
            "d1",
            "migrations",
            "apply",
            DB_BINDING,
            "--local",
            "--persist-to",
        ])
        .arg(persist)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("wrangler d1 migrations apply: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "wrangler d1 migrations apply failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Worker {
    /// Starts a dedicated worker with fresh local state (webhooks may reach 127.0.0.1:
    /// [`LOOPBACK_SWITCH`]). Stopped when dropped.
    pub fn start() -> Result<Worker> {
        Self::start_with_vars(&[LOOPBACK_SWITCH])
    }

    /// [`Worker::start`] with exactly these extra variables.
    pub fn start_with_vars(vars: &[(&str, &str)]) -> Result<Worker> {
        Self::start_full(None, vars)
    }

    /// Starts a dedicated worker whose rate limits are all [`RAISED_RATE_LIMIT`] (a
    /// copy of `wrangler.toml` in its state directory), for load and fault runs.
    pub fn start_raised() -> Result<Worker> {
        Worker::start_with(Some(RAISED_RATE_LIMIT))
    }

    /// [`Worker::start`], with every rate limit set to `limit` when given.
    pub fn start_with(limit: Option<u64>) -> Result<Worker> {
        Self::start_full(limit, &[LOOPBACK_SWITCH])
    }

    /// A dedicated worker with fresh local state, every rate limit set to `limit` when
    /// given, and exactly these extra variables.
    fn start_full(limit: Option<u64>, vars: &[(&str, &str)]) -> Result<Worker> {
        check_built()?;
        let persist = temp_dir("state")?;
        migrate(&persist)?;
        let config = match limit {
            Some(n) => {
                // a directory of its own: wrangler watches the configuration's directory
                let dir = persist.join("config");
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                // and a copy of the built worker and assets, so that a build during a
                // long run does not reload it under the run
                let build = dir.join("build");
                let public = dir.join("public");
                copy_dir(&root().join("edge").join("build"), &build)?;
                copy_dir(&root().join("dist").join("public"), &public)?;
                let path = dir.join("wrangler.toml");
                let moved = [("main", build.join("index.js")), ("directory", public)];
                std::fs::write(&path, config_with_limits(n, &moved)?)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                Some(path)
            }
            None => None,
        };
        let token = format!("admin-{}-{}", std::process::id(), crate::now_ms());
        let port = free_port()?;
        let mut w = Worker {
            base: format!("http://127.0.0.1:{port}"),
            log: persist.join("wrangler.log"),
            persist,
            admin_token: token,
            port,
            child: None,
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            config,
        };
        w.spawn()?;
        Ok(w)
    }

    /// Replaces the extra variables; they take effect at the next [`Worker::restart`].
    pub fn set_vars(&mut self, vars: &[(&str, &str)]) {
        self.vars = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    /// Starts a worker on a chosen port with persistent state in `persist` (for the
    /// demo: its data survives restarts). Migrations are applied first.
    pub fn start_at(persist: &Path, port: u16, admin_token: &str) -> Result<Worker> {
        check_built()?;
        migrate(persist)?;
        let mut w = Worker {
            base: format!("http://127.0.0.1:{port}"),
            log: persist.join("wrangler.log"),
            persist: persist.to_path_buf(),
            admin_token: admin_token.to_string(),
            port,
            child: None,
            vars: Vec::new(),
            config: None,
        };
        w.spawn()?;
        Ok(w)
    }

    /// The worker shared by the test binaries of one `cargo xtask test` run, from the
    /// `CLOSELOOP_E2E_*` variables; without them, one started for this process.
    pub fn shared() -> Result<&'static Worker> {
        static SHARED: OnceLock<std::result::Result<Worker, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                match (
                    std::env::var(ENV_BASE),
                    std::env::var(ENV_PERSIST),
                    std::env::var(ENV_ADMIN),
                ) {
                    (Ok(base), Ok(persist), Ok(admin_token)) => Ok(Worker {
                        port: base
                            .rsplit(':')
                            .next()
                            .and_then(|p| p.parse().ok())
                            .unwrap_or(0),
                        log: PathBuf::from(&persist).join("wrangler.log"),
                        base,
                        persist: PathBuf::from(persist),
                        admin_token,
                        child: None,
                        vars: Vec::new(),
                        config: None,
                    }),
                    _ => Worker::start(),
                }
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn spawn(&mut self) -> Result {
        let inspector = free_port()?;
        let log = std::fs::File::create(&self.log).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = watched_wrangler();
        cmd.arg("dev");
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        cmd.args(["--ip", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--inspector-port")
            .arg(inspector.to_string())
            .arg("--persist-to")
            .arg(&self.persist)
            .arg("--var")
            .arg(format!("ADMIN_TOKEN:{}", self.admin_token))
            // every local request comes from 127.0.0.1: the limits sized for local runs
            // (wrangler.toml's RL_*_LOCAL)
            .arg("--var")
            .arg("LOCAL_RATE_LIMITS:1")
            // `/__scheduled` runs the cron trigger on demand
            .arg("--test-scheduled");
        for (k, v) in &self.vars {
            cmd.arg("--var").arg(format!("{k}:{v}"));
        }
        cmd.args([
            "--log-level",
            "warn",
            "--show-interactive-dev-session=false",
        ])
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting wrangler dev: {e}"))?;
        self.child = Some(child);
        let health = format!("{}/v1/health", self.base);
        let ready = wait_for(
            "the worker to answer /v1/health",
            Duration::from_secs(90),
            || {
                if let Some(c) = self.child.as_mut() {
                    if let Ok(Some(_)) = c.try_wait() {
                        return Some(false);
                    }
                }
                match http::get(&health, None) {
                    Ok(a) if a.status == 200 => Some(true),
                    _ => None,
                }
            },
        );
        match ready {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => Err(format!(
                "wrangler dev did not become ready on {}; its log ({}):\n{}",
                self.base,
                self.log.display(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            )),
        }
    }

    /// Stops the worker (its state stays in `persist`).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The whole process group: the watchdog shell, node (wrangler) and workerd.
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", child.id())])
                .status();
            for _ in 0..50 {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts a stopped worker again on the same port and state.
    pub fn restart(&mut self) -> Result {
        self.stop();
        self.spawn()
    }

    /// The process id of the worker's `wrangler dev` (its watchdog shell), when this
    /// process started it: `workerd` and `node` are its descendants.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The full URL of a path on the worker.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates a site with these allowed origins through the admin API.
    pub fn create_site(&self, origins: &[&str]) -> Result<Site> {
        self.create_site_with_id(&new_site_id(), origins)
    }

    /// Runs the sessionisation `POST /v1/collect` defers (`POST
    /// /v1/admin/sessions:flush`, what the cron trigger does first), for one site or all,
    /// until nothing is left queued (one call does a bounded share); returns the last
    /// answer with the visitors and sessions of every call added up. Reads that need
    /// sessions do this themselves; a test that looks at the `sessions` table directly
    /// calls it first.
    pub fn flush_sessions(&self, site: Option<&str>) -> Result<Value> {
        let auth = format!("Bearer {}", self.admin_token);
        let path = match site {
            Some(id) => format!("/v1/admin/sessions:flush?site={id}"),
            None => "/v1/admin/sessions:flush".to_string(),
        };
        let (mut visitors, mut sessions) = (0, 0);
        loop {
            let a = http::post_json(&self.url(&path), &json!({}), &[("Authorization", &auth)])?;
            if a.status != 200 {
                return Err(format!("flushing sessions: {} {}", a.status, a.text));
            }
            visitors += a.json["visitors"].as_u64().unwrap_or(0);
            sessions += a.json["sessions"].as_u64().unwrap_or(0);
            if a.json["more"] != json!(true) {
                let mut out = a.json;
                out["visitors"] = json!(visitors);
                out["sessions"] = json!(sessions);
                return Ok(out);
            }
        }
    }

    /// Runs the cron trigger as Cloudflare would (`wrangler dev --test-scheduled`'s
    /// `/__scheduled`); returns the HTTP status.
    pub fn scheduled(&self) -> Result<u16> {
        Ok(http::get(&self.url("/__scheduled?cron=*+*+*+*+*"), None)?.status)
    }

    /// Creates a site with these allowed origins; returns it with its manage key.
    pub fn create_managed_site(&self, origins: &[&str]) -> Result<(Site, String)> {
        self.create_managed_site_with_id(&new_site_id(), origins)
    }

    /// [`Worker::create_managed_site`] with a chosen id.
    pub fn create_managed_site_with_id(
        &self,
        id: &str,
        origins: &[&str],
    ) -> Result<(Site, String)> {
        let a = self.site_answer(id, origins)?;
        let manage = a.json["manage_key"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no manage_key in the site-creation answer: {}", a.text))?;
        Ok((site_from(id, &a)?, manage))
    }

    fn site_answer(&self, id: &str, origins: &[&str]) -> Result<Answer> {
        let auth = format!("Bearer {}", self.admin_token);
        let a = http::post_json(
            &self.url("/v1/admin/sites"),
            &json!({"id": id, "name": id, "allowed_origins": origins, "currency": "USD"}),
            &[("Authorization", &auth)],
        )?;
        if a.status != 200 && a.status != 201 {
            return Err(format!("creating site {id}: {} {}", a.status, a.text));
        }
        Ok(a)
    }

    /// Creates a site with a chosen id.
    pub fn create_site_with_id(&self, id: &str, origins: &[&str]) -> Result<Site> {
        site_from(id, &self.site_answer(id, origins)?)
    }

    /// Calls `path` (from `/v1/...` on) with `key` as the bearer token and a JSON body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer> {
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = auth.as_deref() {
            headers.push(("Authorization", a));
        }
        let text = body.map(Value::to_string);
        http::request(method, &self.url(path), &headers, text.as_deref())
    }

    /// Calls an admin endpoint (`/v1/admin/...`) with the admin token.
    pub fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Answer> {
        self.call(method, path, Some(&self.admin_token), body)
    }

    /// POSTs a collect batch as a browser on `origin` would (text/plain, like sendBeacon).
    pub fn collect(&self, origin: &str, body: &str) -> Result<Answer> {
        http::request(
            "POST",
            &self.url("/v1/collect"),
            &[
                ("Content-Type", "text/plain;charset=UTF-8"),
                ("Origin", origin),
            ],
            Some(body),
        )
    }

    /// The local D1 database file that wrangler keeps under `persist`.
    pub fn db_path(&self) -> Result<PathBuf> {
        let dir = self
            .persist
            .join("v3")
            .join("d1")
            .join("miniflare-D1DatabaseObject");
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.extension().is_some_and(|x| x == "sqlite")
                    && p.file_name().is_some_and(|n| n != "metadata.sqlite")
            })
            .ok_or_else(|| format!("no .sqlite file in {}", dir.display()))
    }

    /// Runs a read-only SQL query on the worker's local D1 and returns the rows as JSON
    /// objects. (Reads the SQLite file directly, beside the running worker.)
    pub fn query(&self, sql: &str) -> Result<Vec<Value>> {
        let path = self.db_path()?;
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        let mut stmt = conn.prepare(sql).map_err(|e| format!("{sql}: {e}"))?;
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let rows = stmt
            .query_map([], |row| {
                let mut obj = serde_json::Map::new();
                for (i, name) in names.iter().enumerate() {
                    let v = match row.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => Value::Null,
                        rusqlite::types::ValueRef::Integer(n) => json!(n),
                        rusqlite::types::ValueRef::Real(f) => json!(f),
                        rusqlite::types::ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                        rusqlite::types::ValueRef::Blob(b) => json!(format!("<{} bytes>", b.len())),
                    };
                    obj.insert(name.clone(), v);
                }
                Ok(Value::Object(obj))
            })
            .map_err(|e| format!("{sql}: {e}"))?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| format!("{sql}: {e}"))
    }

    /// The single integer a `SELECT COUNT(*) ...`-like query returns.
    pub fn count(&self, sql: &str) -> Result<i64> {
        let rows = self.query(sql)?;
        rows.first()
            .and_then(|r| r.as_object())
            .and_then(|o| o.values().next())
            .and_then(Value::as_i64)
            .ok_or_else(|| format!("{sql}: no integer answer"))
    }

    /// The last lines of wrangler's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// A site id no other test (or test process) uses.
pub fn new_site_id() -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "t{}x{}x{}",
        std::process::id(),
        crate::now_ms() % 1_000_000_000,
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// The site (id and keys) of a site-creation answer.
fn site_from(id: &str, a: &Answer) -> Result<Site> {
    let key = |name: &str| -> Result<String> {
        a.json
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("no {name} in the site-creation answer: {}", a.text))
    };
    Ok(Site {
        id: id.to_string(),
        read_key: key("read_key")?,
        write_key: key("write_key")?,
    })
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}
