//! Debian's Chromium, headless, driven over the DevTools protocol with chromiumoxide.

use crate::{temp_dir, Result};
use chromiumoxide::browser::{Browser as CdpBrowser, BrowserConfig};
use futures::StreamExt;
use std::path::PathBuf;

/// Where Debian installs Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The flags every launch uses besides `--headless` and `--no-sandbox` (nothing that
/// reaches the network). chromiumoxide adds the leading `--`.
pub const FLAGS: &[&str] = &[
    "disable-gpu",
    "disable-quic",
    "no-first-run",
    "disable-background-networking",
    "disable-component-update",
    "disable-sync",
];

/// The user agent the tests' browser announces: headless Chromium's own says
/// `HeadlessChrome`, which the edge rightly flags as a bot (left out of reports), so the
/// harness presents itself as the desktop Chrome of the same version.
pub const USER_AGENT: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";

/// A headless Chromium with a fresh profile. Closed when [`Browser::close`] is called
/// (and killed when dropped).
pub struct Browser {
    /// The chromiumoxide handle: open pages with `browser.inner.new_page(url)`.
    pub inner: CdpBrowser,
    handler: tokio::task::JoinHandle<()>,
    /// The fresh `--user-data-dir`.
    pub profile: PathBuf,
}

impl Browser {
    /// Launches Chromium headless with a fresh user-data dir.
    pub async fn launch() -> Result<Browser> {
        if !std::path::Path::new(CHROMIUM).exists() {
            return Err(format!(
                "{CHROMIUM} is missing: `cargo xtask test` installs Debian's chromium"
            ));
        }
        let profile = temp_dir("chromium")?;
        let config = BrowserConfig::builder()
            .chrome_executable(CHROMIUM)
            .no_sandbox()
            .user_data_dir(&profile)
            .args(FLAGS.iter().copied())
            .arg(("user-agent", USER_AGENT))
            .launch_timeout(std::time::Duration::from_secs(60))
            .request_timeout(std::time::Duration::from_secs(60))
            .build()?;
        let (inner, mut handler) = CdpBrowser::launch(config)
            .await
            .map_err(|e| format!("launching {CHROMIUM}: {e}"))?;
        let handler = tokio::spawn(async move {
            while let Some(event) = handler.next().await {
                if event.is_err() {
                    // A message chromiumoxide does not know; the connection goes on.
                    continue;
                }
            }
        });
        Ok(Browser {
            inner,
            handler,
            profile,
        })
    }

    /// Closes the browser and removes its profile.
    pub async fn close(mut self) {
        let _ = self.inner.close().await;
        let _ = self.inner.wait().await;
        self.handler.abort();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Evaluates the JavaScript expression `expr` on `page` every 100 ms until it returns
/// `true`, or fails after `timeout`.
pub async fn eval_until(
    page: &chromiumoxide::Page,
    expr: &str,
    timeout: std::time::Duration,
) -> Result {
    let start = std::time::Instant::now();
    loop {
        if let Ok(v) = page.evaluate(expr).await {
            if v.into_value::<bool>().unwrap_or(false) {
                return Ok(());
            }
        }
        if start.elapsed() > timeout {
            return Err(format!("timed out after {timeout:?} waiting for `{expr}`"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Runs blocking work (HTTP polling, SQLite reads) from an async test without
/// stalling the browser's event handler.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}
