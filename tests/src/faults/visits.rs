//! The visits of a fault run: visitor slots, the seeded scripts a tab follows in
//! Chromium (SPA and full loads, `track` bursts, `identify`, the demo form, reloads,
//! offline spells, tabs closed mid-send) and "the next visit" that empties a visitor's
//! queue. Each tab forwards the tracker's log of created ids to the run (see
//! [`INIT_JS`]).

use super::Run;
use crate::browser::Browser;
use crate::proxy::SplitMix64;
use crate::Result;
use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
#[allow(deprecated)] // Network.emulateNetworkConditions: still what sets navigator.onLine
use chromiumoxide::cdp::browser_protocol::network::{EmulateNetworkConditionsParams, EnableParams};
use chromiumoxide::cdp::browser_protocol::page::{
    AddScriptToEvaluateOnNewDocumentParams, NavigateParams,
};
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams,
};
use chromiumoxide::cdp::js_protocol::runtime::{AddBindingParams, EventBindingCalled};
use chromiumoxide::Page;
use futures::StreamExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The DevTools binding each page's log push calls.
pub(super) const BINDING: &str = "__cl_created";

/// Runs in every document before its scripts: the log array the tracker pushes into,
/// forwarding each id to the harness at once.
/// The payload is the id and the action the harness said the tab was doing (kept in
/// the tab's `sessionStorage`, which survives its navigations), read when the event is
/// created.
pub(super) const INIT_JS: &str =
    "(function(){var l=[];l.push=function(id){Array.prototype.push.call(l,id);\
var a='landing';try{a=sessionStorage.getItem('__cl_action')||a;}catch(e){}\
try{window.__cl_created(String(id)+' '+a);}catch(e){}return l.length;};\
Object.defineProperty(window,'__closeloop_log',{value:l});})();";

/// True once the loader has started the wasm tracker (and the document is not the one
/// an action left: see [`Tab::mark`]).
pub(super) const READY: &str = "!window.__cl_old && typeof window.closeloop === 'object' \
&& window.closeloop.profile() != null";

/// The tracker's queued events in this context's storage.
pub(super) const QUEUED: &str =
    "JSON.stringify(Object.keys(localStorage).filter(k => k.startsWith('_cl_e.')).map(k => k.slice(6)))";

/// One visitor slot: a fresh browser context per visitor, one to three visits, then the
/// next visit that must empty its queue; repeated until the run has enough events.
pub(super) async fn visitor_loop(run: Arc<Run>, browser: Arc<Browser>, slot: usize) -> Result {
    let mut rng = SplitMix64(run.opts.seed ^ ((slot as u64 + 1) << 32));
    let b = slot / 100;
    while run.more() {
        let visitor = run.visitors.fetch_add(1, Ordering::SeqCst);
        let ctx = browser
            .inner
            .create_browser_context(CreateBrowserContextParams::default())
            .await
            .map_err(|e| format!("browser context: {e}"))?;
        let visits = 1 + rng.below(3) as usize;
        for _ in 0..visits {
            if !run.more() {
                break;
            }
            run.visits.fetch_add(1, Ordering::SeqCst);
            if rng.percent(20) {
                // two tabs of the same visitor at once (one queue, one lock)
                let mut r1 = SplitMix64(rng.next_u64());
                let mut r2 = SplitMix64(rng.next_u64());
                let (a, b2) = tokio::join!(
                    visit(&run, &browser, ctx.clone(), visitor, &mut r1),
                    visit(&run, &browser, ctx.clone(), visitor, &mut r2)
                );
                run.visit_ended(a);
                run.visit_ended(b2);
            } else {
                let r = visit(&run, &browser, ctx.clone(), visitor, &mut rng).await;
                run.visit_ended(r);
            }
        }
        // the next visit, in the background (the slot goes on with a new visitor):
        // sends what earlier tabs left queued; a visitor it cannot empty now waits for
        // the final drain
        let next = {
            let run2 = Arc::clone(&run);
            let browser = Arc::clone(&browser);
            tokio::spawn(async move {
                let left = drain(&run2, &browser, ctx.clone(), Duration::from_secs(20)).await;
                match left {
                    Ok(l) if l.is_empty() => {
                        let _ = browser.inner.dispose_browser_context(ctx).await;
                    }
                    _ => {
                        if let Ok(mut l) = run2.leftovers.lock() {
                            l.push((b, ctx));
                        }
                    }
                }
            })
        };
        if let Ok(mut n) = run.next_visits.lock() {
            n.push(next);
        }
    }
    Ok(())
}

/// The names of what a tab can be doing (the log's payload names one).
pub(super) const ACTIONS: [&str; 15] = [
    "landing",
    "SPA navigation",
    "track",
    "full load (link)",
    "history.back()",
    "reload",
    "full load (to the form)",
    "form submit",
    "identify",
    "offline",
    "back online",
    "pause",
    "closed mid-send",
    "closed tab",
    "next visit",
];

/// A tab; the events it creates are put down to the action it is doing.
struct Tab {
    page: Page,
    listener: tokio::task::JoinHandle<()>,
    /// Closed right after an event (mid-send): the close is the action.
    closing: bool,
    /// SPA entries pushed in the current document (`history.back()` stays in it).
    spa_depth: usize,
    path: String,
}

impl Tab {
    async fn set(&self, action: &'static str) {
        let _ = self
            .page
            .evaluate(format!(
                "try {{ sessionStorage.setItem('__cl_action', '{action}') }} catch (e) {{}}"
            ))
            .await;
    }

    /// Marks the current document, so [`READY`] is false until a new one has loaded.
    async fn mark(&self) {
        let _ = self.page.evaluate("window.__cl_old = 1").await;
    }

    async fn eval(&self, js: &str) -> serde_json::Value {
        self.page
            .evaluate(js)
            .await
            .map(|r| r.into_value().unwrap_or(serde_json::Value::Null))
            .unwrap_or(serde_json::Value::Null)
    }

    async fn ready(&self) -> Result {
        crate::browser::eval_until(&self.page, READY, Duration::from_secs(60)).await
    }
}

/// Opens a tab of context `ctx` on `url` (with `referrer`), its log forwarded.
async fn open_tab(
    run: &Arc<Run>,
    browser: &Browser,
    ctx: BrowserContextId,
    url: &str,
    referrer: Option<String>,
) -> Result<Tab> {
    let mut params = CreateTargetParams::new("about:blank");
    params.browser_context_id = Some(ctx);
    let page = browser
        .inner
        .new_page(params)
        .await
        .map_err(|e| format!("new tab: {e}"))?;
    page.execute(AddBindingParams::new(BINDING))
        .await
        .map_err(|e| format!("binding: {e}"))?;
    let mut events = page
        .event_listener::<EventBindingCalled>()
        .await
        .map_err(|e| format!("binding listener: {e}"))?;
    let listener = {
        let run = Arc::clone(run);
        tokio::spawn(async move {
            while let Some(ev) = events.next().await {
                if ev.name == BINDING {
                    run.log(&ev.payload);
                }
            }
        })
    };
    page.execute(AddScriptToEvaluateOnNewDocumentParams::new(INIT_JS))
        .await
        .map_err(|e| format!("init script: {e}"))?;
    page.execute(EnableParams::default())
        .await
        .map_err(|e| format!("network domain: {e}"))?;
    let mut nav = NavigateParams::new(url);
    nav.referrer = referrer;
    page.execute(nav)
        .await
        .map_err(|e| format!("navigate {url}: {e}"))?;
    let tab = Tab {
        page,
        listener,
        closing: false,
        spa_depth: 0,
        path: url.to_string(),
    };
    if let Err(e) = tab.ready().await {
        close(tab).await;
        return Err(format!("{url}: {e}"));
    }
    Ok(tab)
}

/// The demo site's pages (all have the tag; the form is on the demo landing page).
const PAGES: [&str; 7] = [
    "/",
    "/pricing.html",
    "/articles/",
    "/articles/closed-loop-basics.html",
    "/articles/attribution-models.html",
    "/articles/content-that-converts.html",
    "/landing/demo.html",
];

/// Where visits come from: a landing URL's query and a referrer.
fn arrival(rng: &mut SplitMix64) -> (String, Option<String>) {
    match rng.below(6) {
        0 => (
            "?utm_source=newsletter&utm_medium=email&utm_campaign=soak".into(),
            None,
        ),
        1 => (String::new(), Some("https://www.google.com/".into())),
        2 => ("?gclid=Cj0soak".into(), None),
        3 => (String::new(), Some("https://news.ycombinator.com/".into())),
        _ => (String::new(), None),
    }
}

/// One visit: a tab opened on a landing page, 4–12 actions, then closed.
async fn visit(
    run: &Arc<Run>,
    browser: &Browser,
    ctx: BrowserContextId,
    visitor: usize,
    rng: &mut SplitMix64,
) -> Result {
    let landing = PAGES[rng.below(PAGES.len() as u64) as usize];
    let (query, referrer) = arrival(rng);
    let url = run.web.url(&format!("{landing}{query}"));
    let mut tab = open_tab(run, browser, ctx, &url, referrer).await?;
    let result = actions(run, &mut tab, visitor, rng).await;
    if result.is_ok() {
        tokio::time::sleep(Duration::from_millis(rng.below(800))).await;
    }
    close(tab).await;
    result
}

/// A visit's 4–12 actions; ends early (and says so) when the tab is closed mid-send.
async fn actions(run: &Arc<Run>, tab: &mut Tab, visitor: usize, rng: &mut SplitMix64) -> Result {
    let steps = 4 + rng.below(9);
    for step in 0..steps {
        if !run.more() && step > 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50 + rng.below(500))).await;
        let roll = rng.below(100);
        match roll {
            0..=21 => spa(tab, rng).await?,
            22..=41 => track(tab, rng, "track").await?,
            42..=53 => link(tab, rng).await?,
            54..=58 => back(tab).await?,
            59..=63 => reload(tab).await?,
            64..=69 => form(tab, run, visitor).await?,
            70..=72 => identify(tab, visitor).await?,
            73..=80 => offline(tab, rng).await?,
            81..=86 => {
                tab.set("pause").await;
                tokio::time::sleep(Duration::from_millis(500 + rng.below(2_500))).await;
            }
            _ => {
                // an event, and the tab closed before the 300 ms batching delay
                track(tab, rng, "closed mid-send").await?;
                tab.closing = true;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Closes the tab (its `pagehide` sends a beacon) and stops forwarding its log once the
/// unload's last messages are in.
async fn close(tab: Tab) {
    if !tab.closing {
        tab.set("closed tab").await;
    }
    let listener = tab.listener;
    let _ = tab.page.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    listener.abort();
}

async fn spa(tab: &mut Tab, rng: &mut SplitMix64) -> Result {
    tab.set("SPA navigation").await;
    let target = PAGES[rng.below(PAGES.len() as u64) as usize];
    let js = format!(
        "history.pushState({{}}, '', '{target}?view={}')",
        rng.below(1_000_000)
    );
    tab.eval(&js).await;
    tab.spa_depth += 1;
    tab.path = target.to_string();
    Ok(())
}

async fn back(tab: &mut Tab) -> Result {
    if tab.spa_depth == 0 {
        return Ok(());
    }
    tab.set("history.back()").await;
    tab.eval("history.back()").await;
    tab.spa_depth -= 1;
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

async fn track(tab: &Tab, rng: &mut SplitMix64, action: &'static str) -> Result {
    tab.set(action).await;
    let n = 1 + rng.below(6);
    let js = format!(
        "for (let i = 0; i < {n}; i++) closeloop.track('soak-' + i, {{step: String(i), r: '{}'}})",
        rng.below(1_000_000)
    );
    tab.eval(&js).await;
    Ok(())
}

async fn identify(tab: &Tab, visitor: usize) -> Result {
    tab.set("identify").await;
    tab.eval(&format!(
        "closeloop.identify('visitor{visitor}@example.com', {{company: 'Soak {visitor}'}})"
    ))
    .await;
    Ok(())
}

/// Clicks a same-site link: a full load.
async fn link(tab: &mut Tab, rng: &mut SplitMix64) -> Result {
    tab.set("full load (link)").await;
    tab.mark().await;
    let i = rng.below(100);
    tab.eval(&format!(
        "(() => {{ const a = [...document.querySelectorAll('a[href^=\"/\"]')]; \
         if (a.length) a[{i} % a.length].click(); else location.reload(); }})()"
    ))
    .await;
    tab.spa_depth = 0;
    tab.ready().await
}

async fn reload(tab: &mut Tab) -> Result {
    tab.set("reload").await;
    tab.mark().await;
    tab.eval("location.reload()").await;
    tab.spa_depth = 0;
    tab.ready().await
}

/// Fills in the demo form and submits it (a full load to the thanks page).
async fn form(tab: &mut Tab, run: &Arc<Run>, visitor: usize) -> Result {
    tab.set("full load (to the form)").await;
    let here = tab.eval("location.pathname").await;
    if here.as_str() != Some("/landing/demo.html") {
        tab.mark().await;
        tab.eval(&format!(
            "location.assign('{}')",
            run.web.url("/landing/demo.html")
        ))
        .await;
        tab.ready().await?;
    }
    tab.set("form submit").await;
    tab.mark().await;
    tab.eval(&format!(
        "(() => {{ const f = document.getElementById('demo-form'); \
         f.elements.name.value = 'Visitor {visitor}'; \
         f.elements.email.value = 'visitor{visitor}@example.com'; \
         f.elements.company.value = 'Soak {visitor}'; \
         f.elements.password.value = 'secret'; \
         f.requestSubmit(); }})()"
    ))
    .await;
    tab.spa_depth = 0;
    tab.ready().await
}

/// Goes offline (DevTools network emulation), makes events, waits, comes back.
#[allow(deprecated)] // Network.emulateNetworkConditions: still what sets navigator.onLine
async fn offline(tab: &mut Tab, rng: &mut SplitMix64) -> Result {
    tab.set("offline").await;
    tab.page
        .execute(EmulateNetworkConditionsParams::new(true, 0.0, -1.0, -1.0))
        .await
        .map_err(|e| format!("offline: {e}"))?;
    for _ in 0..1 + rng.below(3) {
        if rng.percent(50) {
            spa(tab, rng).await?;
        } else {
            track(tab, rng, "offline").await?;
        }
        tab.set("offline").await;
        tokio::time::sleep(Duration::from_millis(100 + rng.below(400))).await;
    }
    tokio::time::sleep(Duration::from_millis(500 + rng.below(3_500))).await;
    tab.page
        .execute(EmulateNetworkConditionsParams::new(false, 0.0, -1.0, -1.0))
        .await
        .map_err(|e| format!("online: {e}"))?;
    tab.set("back online").await;
    Ok(())
}

/// The next visit of a visitor: a page of its context that sends what is queued;
/// waits until the queue is empty or `limit` passes. Returns the ids still queued.
pub(super) async fn drain(
    run: &Arc<Run>,
    browser: &Browser,
    ctx: BrowserContextId,
    limit: Duration,
) -> Result<Vec<String>> {
    let tab = open_tab(run, browser, ctx, &run.web.url("/"), None).await?;
    tab.set("next visit").await;
    let start = Instant::now();
    // `None`: the queue could not be read (an evaluation that failed): never taken for
    // an empty queue, or a visitor whose events are still queued would be thrown away
    let mut left: Option<Vec<String>>;
    loop {
        left = tab
            .eval(QUEUED)
            .await
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok());
        if left.as_ref().is_some_and(Vec::is_empty) || start.elapsed() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    close(tab).await;
    left.ok_or_else(|| "the queue could not be read".to_string())
}
