//! Driving the marketer's dashboard (`/dashboard/`) in headless Chromium: a page at a
//! chosen width with every console error, uncaught exception and browser log error
//! (CSP violations included) collected, sign-in, waiting for a view to settle, and
//! screenshots. Used by `tests/tests/dashboard.rs` and `cargo xtask demo --screenshots`.

use crate::browser::{eval_until, Browser};
use crate::Result;
use chromiumoxide::cdp::browser_protocol::emulation::{
    MediaFeature, SetDeviceMetricsOverrideParams, SetEmulatedMediaParams,
};
use chromiumoxide::cdp::browser_protocol::log::{
    EnableParams as LogEnable, EventEntryAdded, LogEntryLevel,
};
use chromiumoxide::cdp::js_protocol::runtime::{
    ConsoleApiCalledType, EventConsoleApiCalled, EventExceptionThrown,
};
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use futures::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The laptop and phone widths every view is checked and shown at.
pub const WIDTHS: [(u32, u32); 2] = [(1366, 900), (390, 844)];

/// A dashboard tab and the errors its console and log reported.
pub struct Tab {
    /// The page.
    pub page: Page,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Tab {
    /// Opens a blank tab at `width` × `height` (a phone, touch and mobile viewport, below
    /// 500 px), listening to the console and the log, then loads `url`.
    pub async fn open(browser: &Browser, url: &str, width: u32, height: u32) -> Result<Tab> {
        let page = browser
            .inner
            .new_page("about:blank")
            .await
            .map_err(|e| e.to_string())?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let mut console = page
            .event_listener::<EventConsoleApiCalled>()
            .await
            .map_err(|e| e.to_string())?;
        let mut thrown = page
            .event_listener::<EventExceptionThrown>()
            .await
            .map_err(|e| e.to_string())?;
        let mut log = page
            .event_listener::<EventEntryAdded>()
            .await
            .map_err(|e| e.to_string())?;
        page.execute(LogEnable::default())
            .await
            .map_err(|e| e.to_string())?;
        let e1 = errors.clone();
        tokio::spawn(async move {
            while let Some(ev) = console.next().await {
                if matches!(
                    ev.r#type,
                    ConsoleApiCalledType::Error | ConsoleApiCalledType::Assert
                ) {
                    let args: Vec<String> = ev
                        .args
                        .iter()
                        .map(|a| {
                            a.value
                                .as_ref()
                                .map_or_else(|| format!("{:?}", a.description), |v| v.to_string())
                        })
                        .collect();
                    e1.lock()
                        .map(|mut v| v.push(format!("console.error: {}", args.join(" "))))
                        .ok();
                }
            }
        });
        let e2 = errors.clone();
        tokio::spawn(async move {
            while let Some(ev) = thrown.next().await {
                let d = &ev.exception_details;
                let what = d
                    .exception
                    .as_ref()
                    .and_then(|x| x.description.clone())
                    .unwrap_or_else(|| d.text.clone());
                e2.lock()
                    .map(|mut v| v.push(format!("uncaught: {what}")))
                    .ok();
            }
        });
        let e3 = errors.clone();
        tokio::spawn(async move {
            while let Some(ev) = log.next().await {
                if ev.entry.level == LogEntryLevel::Error {
                    e3.lock()
                        .map(|mut v| v.push(format!("log: {} ({:?})", ev.entry.text, ev.entry.url)))
                        .ok();
                }
            }
        });
        let mobile = width < 500;
        page.execute(SetDeviceMetricsOverrideParams::new(
            width,
            height,
            if mobile { 2.0 } else { 1.0 },
            mobile,
        ))
        .await
        .map_err(|e| e.to_string())?;
        page.goto(url).await.map_err(|e| e.to_string())?;
        Ok(Tab { page, errors })
    }

    /// The errors reported so far.
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Evaluates `js` and returns its value as JSON.
    pub async fn eval(&self, js: &str) -> Result<serde_json::Value> {
        let v = self
            .page
            .evaluate(js)
            .await
            .map_err(|e| format!("{js}: {e}"))?;
        Ok(v.into_value::<serde_json::Value>()
            .unwrap_or(serde_json::Value::Null))
    }

    /// Waits until `expr` is true (30 s).
    pub async fn until(&self, expr: &str) -> Result {
        eval_until(&self.page, expr, Duration::from_secs(30)).await
    }

    /// Signs in on the sign-in form with a site id and a read key, as a person types them.
    pub async fn sign_in(&self, site: &str, key: &str) -> Result {
        self.until("!!document.getElementById('login')").await?;
        for (selector, text) in [("#site", site), ("#key", key)] {
            let input = self
                .page
                .find_element(selector)
                .await
                .map_err(|e| e.to_string())?;
            input.call_js_fn("function() { this.value = ''; this.dispatchEvent(new Event('input', {bubbles: true})); }", false).await.map_err(|e| e.to_string())?;
            input.click().await.map_err(|e| e.to_string())?;
            input.type_str(text).await.map_err(|e| e.to_string())?;
        }
        self.page
            .find_element("#login button[type=submit]")
            .await
            .map_err(|e| e.to_string())?
            .click()
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Waits until a report whose path and parameters contain `needle` (as JSON, e.g.
    /// `"model":"linear"`) is shown, and nothing is loading.
    pub async fn settled_for(&self, needle: &str) -> Result {
        self.until(&format!(
            "(() => {{ const s = [...document.querySelectorAll('.status[data-for]')]; \
             return s.length > 0 && s.every(x => x.dataset.state !== 'loading') \
             && s.some(x => x.dataset.for.includes({})); }})()",
            serde_json::json!(needle)
        ))
        .await?;
        self.settled().await
    }

    /// Waits until the view is shown and nothing is loading any more.
    pub async fn settled(&self) -> Result {
        // a change re-renders, then its effects start the requests: give them a frame
        tokio::time::sleep(Duration::from_millis(250)).await;
        self.until(
            "!!document.getElementById('view-heading') && !document.querySelector('.status.loading') \
             && !document.querySelector('[data-state=loading]')",
        )
        .await?;
        // charts draw on the next frames
        tokio::time::sleep(Duration::from_millis(400)).await;
        Ok(())
    }

    /// Saves a PNG of the whole page at `width` (the viewport grown to the page's height,
    /// then put back to `height`; chromiumoxide's own full-page mode forgets the width).
    pub async fn screenshot(&self, path: &std::path::Path, width: u32, height: u32) -> Result {
        let full = self
            .eval("Math.ceil(document.documentElement.scrollHeight)")
            .await?
            .as_u64()
            .unwrap_or(u64::from(height))
            .max(u64::from(height));
        let mobile = width < 500;
        let scale = if mobile { 2.0 } else { 1.0 };
        let metrics = |h: u64| SetDeviceMetricsOverrideParams::new(width, h as i64, scale, mobile);
        self.page
            .execute(metrics(full))
            .await
            .map_err(|e| e.to_string())?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let shot = self
            .page
            .save_screenshot(ScreenshotParams::builder().build(), path)
            .await
            .map_err(|e| format!("{}: {e}", path.display()));
        self.page
            .execute(metrics(u64::from(height)))
            .await
            .map_err(|e| e.to_string())?;
        shot.map(|_| ())
    }
}

/// The views `cargo xtask demo --screenshots` saves, with their URL state.
pub const SHOTS: [(&str, &str); 8] = [
    ("overview", "view=overview"),
    ("sources", "view=sources&group_by=campaign&model=linear"),
    ("funnel", "view=funnel"),
    (
        "compare",
        "view=compare&model=first_touch&model_b=last_touch",
    ),
    ("pages", "view=pages"),
    ("trend", "view=trend&metric=leads&granularity=day"),
    ("leads", "view=leads"),
    ("journey", "view=lead"),
];

/// The views also saved in the dark theme (`prefers-color-scheme: dark`), at laptop width.
pub const DARK_SHOTS: [&str; 2] = ["overview", "sources"];

/// Saves every view of [`SHOTS`] at both [`WIDTHS`] into `dir` as
/// `dashboard-{view}-{width}.png`, and those of [`DARK_SHOTS`] in the dark theme as
/// `dashboard-{view}-dark-1366.png`, signed in to `site` on `base` (a running worker); the
/// journey is that of `lead`. Fails on any console error. Returns the files written.
pub fn screenshots(
    base: &str,
    site: &str,
    read_key: &str,
    lead: &str,
    dir: &std::path::Path,
) -> Result<Vec<std::path::PathBuf>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let browser = Browser::launch().await?;
        let mut written = Vec::new();
        let result: Result = async {
            let mut passes: Vec<(u32, u32, bool)> =
                WIDTHS.iter().map(|&(w, h)| (w, h, false)).collect();
            passes.push((WIDTHS[0].0, WIDTHS[0].1, true));
            for (width, height, dark) in passes {
                let first = format!("{base}/dashboard/?site={site}");
                let tab = Tab::open(&browser, &first, width, height).await?;
                if dark {
                    tab.page
                        .execute(
                            SetEmulatedMediaParams::builder()
                                .feature(MediaFeature::new("prefers-color-scheme", "dark"))
                                .build(),
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                }
                tab.sign_in(site, read_key).await?;
                tab.settled().await?;
                for (name, query) in SHOTS {
                    if dark && !DARK_SHOTS.contains(&name) {
                        continue;
                    }
                    let mut q = format!("?site={site}&{query}");
                    if name == "journey" {
                        q.push_str(&format!("&lead={lead}"));
                    }
                    tab.eval(&format!(
                        "history.pushState(null, '', {}); dispatchEvent(new PopStateEvent('popstate')); true",
                        serde_json::json!(q)
                    ))
                    .await?;
                    tab.settled().await?;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    tab.eval("window.scrollTo(0, 0); document.activeElement && document.activeElement.blur(); true").await?;
                    let theme = if dark { "-dark" } else { "" };
                    let path = dir.join(format!("dashboard-{name}{theme}-{width}.png"));
                    tab.screenshot(&path, width, height).await?;
                    written.push(path);
                }
                let errors = tab.errors();
                if !errors.is_empty() {
                    return Err(format!("console errors at {width}px: {errors:?}"));
                }
            }
            Ok(())
        }
        .await;
        browser.close().await;
        result.map(|_| written)
    })
}
