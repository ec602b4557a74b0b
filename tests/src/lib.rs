//! The end-to-end harness: the real worker under `wrangler dev` in local mode (workerd,
//! local D1 and KV), the demo site served on a second origin, and Debian's Chromium
//! driven over the DevTools protocol (chromiumoxide).
//!
//! Test binaries in `tests/tests/` share one worker per `cargo xtask test` run (its URL
//! comes in `CLOSELOOP_E2E_*` variables, see [`worker::Worker::shared`]) and isolate
//! themselves by creating a site of their own. A test that stops or restarts the worker
//! starts a dedicated one with [`worker::Worker::start`].

pub mod beacon;
pub mod demo_data;
pub mod http;
pub mod openapi;
pub mod receiver;
pub mod scenario;
pub mod site;
pub mod worker;

#[cfg(feature = "browser")]
pub mod browser;
#[cfg(feature = "browser")]
pub mod dashboard;
#[cfg(feature = "browser")]
pub mod faults;
#[cfg(feature = "browser")]
pub mod proxy;

/// Errors in the harness are plain strings: they end a test with a readable message.
pub type Result<T = ()> = std::result::Result<T, String>;

/// The repository root.
pub fn root() -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| here.to_path_buf())
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// A fresh directory under the system's temp dir, unique to this process and call.
pub fn temp_dir(prefix: &str) -> Result<std::path::PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "closeloop-{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Polls `f` every 100 ms until it returns `Some`, or fails after `timeout`.
pub fn wait_for<T>(
    what: &str,
    timeout: std::time::Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T> {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
