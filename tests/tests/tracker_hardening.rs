//! The tracker's parts of issue 12 in real Chromium against the real worker: Global
//! Privacy Control always wins, the send lock (it outlives a request, and a page
//! that leaves gives it up), a full localStorage (acknowledged data goes first, and
//! what had to be dropped is counted and reported), a batch refused for good (tried
//! a bounded number of times, then dropped and counted), and the page's log of the
//! event ids the tracker created (`window.__closeloop_log`, a test hook); and issue
//! 17's compressed serving of the download.
//!
//! What the browser sent is watched on the DevTools protocol's network events, what
//! the edge stored in D1, and what the tracker kept in the page's localStorage.

mod tracker_common;

use chromiumoxide::cdp::browser_protocol::page::AddScriptToEvaluateOnNewDocumentParams;
use closeloop_e2e::browser::{blocking, eval_until, Browser};
use closeloop_e2e::site::DEMO_EDGE;
use closeloop_e2e::wait_for;
use serde_json::{json, Value};
use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracker_common::*;

/// Per request: when its first bytes came, and when the browser closed it.
type Requests = Arc<Mutex<Vec<(Instant, Option<Instant>)>>>;

/// An endpoint that accepts connections, reads requests and never answers: a
/// request to it stays in flight until the browser gives it up. Records, per
/// request, when its first bytes came and when the browser closed it.
struct Hang {
    port: u16,
    log: Requests,
    stop: Arc<AtomicBool>,
}

impl Hang {
    fn start() -> Hang {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let log: Requests = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let (l, s) = (l.clone(), s.clone());
                std::thread::spawn(move || {
                    let _ = conn.set_nonblocking(false);
                    let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
                    let mut buf = [0u8; 4096];
                    let mut me: Option<usize> = None;
                    let close = |me: Option<usize>| {
                        if let (Some(i), Ok(mut v)) = (me, l.lock()) {
                            if let Some(e) = v.get_mut(i) {
                                e.1 = Some(Instant::now());
                            }
                        }
                    };
                    loop {
                        match conn.read(&mut buf) {
                            Ok(0) => break close(me),
                            Ok(_) => {
                                if me.is_none() {
                                    if let Ok(mut v) = l.lock() {
                                        v.push((Instant::now(), None));
                                        me = Some(v.len() - 1);
                                    }
                                }
                            }
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) =>
                            {
                                if s.load(Ordering::Relaxed) {
                                    break;
                                }
                            }
                            Err(_) => break close(me),
                        }
                    }
                });
            }
        });
        Hang { port, log, stop }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/v1/collect", self.port)
    }

    fn requests(&self) -> Vec<(Instant, Option<Instant>)> {
        self.log.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Drop for Hang {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Scenario: visit 1 without Global Privacy Control; the site calls
/// `consent(true)`, so `_cl_c = "1"` is stored, and the page view is sent (1 event
/// at the edge). Then the browser turns GPC on (`navigator.globalPrivacyControl`,
/// injected with `Page.addScriptToEvaluateOnNewDocument`) and the visitor comes
/// back: a load, an SPA navigation, `track`, `consent(true)`, another `track`,
/// `identify`, and the page going away (`pagehide`, the beacon path). Expected: GPC
/// wins over the stored consent and over `consent(true)`: no request to
/// `/v1/collect` leaves the browser after GPC is on, no `_cl_*` key and no
/// `_cl_vid` cookie remain (what visit 1 stored is deleted), and the edge still
/// has the 1 event of visit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_privacy_control_wins_over_a_stored_consent_and_consent_true() {
    let s = setup(&[("g.html", page("GPC", "", "", "<p>gpc</p>"))]);
    let browser = Browser::launch().await.expect("chromium");
    let (p, net) = watched_page(&browser).await;
    goto(&p, &s.web.url("/g.html")).await;
    eval(&p, "closeloop.consent(true)").await;
    s.wait_count(1, "", "visit 1's page view", 60);
    assert!(eval_str(&p, STORED_KEYS).await.contains("_cl_c"));
    blocking(|| {
        wait_for("visit 1 acknowledged", Duration::from_secs(20), || {
            net.sent().iter().any(|r| r.kind == "Fetch").then_some(())
        })
    })
    .expect("visit 1 sent");

    p.evaluate_on_new_document(AddScriptToEvaluateOnNewDocumentParams::new(
        "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', \
         {get() { return true; }});",
    ))
    .await
    .expect("inject GPC");
    let before = net.sent().len();
    goto(&p, &s.web.url("/g.html?visit=2")).await;
    assert_eq!(
        eval(&p, "navigator.globalPrivacyControl").await,
        json!(true)
    );
    for js in [
        "history.pushState({}, '', '/g/next')",
        "closeloop.track('under-gpc')",
        "closeloop.consent(true)",
        "closeloop.track('after-consent-true')",
        "closeloop.identify('gpc@example.com')",
        "window.dispatchEvent(new Event('pagehide'))",
    ] {
        eval(&p, js).await;
        sleep(100).await;
    }
    sleep(3_000).await;
    let keys = eval_str(&p, STORED_KEYS).await;
    let cookie = eval_str(&p, "document.cookie").await;
    let after: Vec<Sent> = net.sent().into_iter().skip(before).collect();
    browser.close().await;
    assert_eq!(keys, "[]", "nothing stored under GPC");
    assert!(!cookie.contains("_cl_vid"), "{cookie}");
    assert!(after.is_empty(), "sent under GPC: {after:?}");
    assert_eq!(s.count(""), 1, "only visit 1's page view at the edge");
}

/// Scenario: page A's sends go to an endpoint that never answers, so A holds the
/// send lock (`_cl_l`, `[tab, expiry]`) with its request in flight; the visitor
/// closes A and opens page B of the same site (same storage), whose sends go to the
/// worker. Expected: A gave its lock up when it left, so B sends at once: A's unsent
/// page view and B's reach the edge before A's lock would have expired (20 s after A
/// took it; a lock left behind holds every other page back until then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_leaves_gives_its_send_lock_to_the_next_page() {
    let hang = Hang::start();
    let endpoint = format!(" data-endpoint=\"{}\"", hang.endpoint());
    let s = setup(&[
        ("a.html", page("A", "", &endpoint, "<p>a</p>")),
        ("b.html", page("B", "", "", "<p>b</p>")),
    ]);
    let browser = Browser::launch().await.expect("chromium");
    let a = open(&browser, &s.web.url("/a.html")).await;
    eval_until(
        &a,
        "localStorage.getItem('_cl_l') !== null",
        Duration::from_secs(20),
    )
    .await
    .expect("A holds the lock");
    blocking(|| {
        wait_for("A's request in flight", Duration::from_secs(20), || {
            (!hang.requests().is_empty()).then_some(())
        })
    })
    .expect("A sending");
    let a_lock = eval_str(&a, "localStorage.getItem('_cl_l')").await;
    let expiry = serde_json::from_str::<Value>(&a_lock).expect("lock JSON")[1]
        .as_i64()
        .expect("lock expiry");
    a.close().await.expect("close A");
    let b = open(&browser, &s.web.url("/b.html")).await;
    let left = expiry - closeloop_e2e::now_ms();
    assert!(
        left > 2_000,
        "too slow to test: A's lock expires in {left} ms"
    );
    s.wait_count(
        2,
        "AND type = 'pageview'",
        "A's and B's page views before A's lock expired",
        (left as u64 - 1_000) / 1_000,
    );
    let lock = eval(&b, "localStorage.getItem('_cl_l')").await;
    browser.close().await;
    assert_ne!(lock, json!(a_lock), "A's lock is gone");
    let paths: Vec<Value> = s
        .events("path", "AND type = 'pageview'")
        .into_iter()
        .map(|r| r["path"].clone())
        .collect();
    assert_eq!(paths, vec![json!("/a.html"), json!("/b.html")]);
}

/// Records, in the page, when each of the tracker's sends began and when its
/// `fetch` settled (an answer, or the loader's abort at the request timeout): the
/// tracker's own view of a request in flight. (Chromium may keep a keepalive
/// request's socket open after the abort; the edge deduplicates what follows.)
const SENDS: &str = "<script>window.__sends = []; var f0 = window.fetch; \
    window.fetch = function (u) { var r = {s: Date.now(), e: 0}; \
    if (String(u).indexOf('/v1/collect') >= 0) __sends.push(r); \
    var p = f0.apply(this, arguments); \
    p.then(function () { r.e = Date.now(); }, function () { r.e = Date.now(); }); \
    return p; };</script>";

/// Scenario: two tabs of one site whose endpoint never answers. Tab A sends first
/// and holds the lock; its request hangs; tab B has events to send too. Expected,
/// over 28 s: at least two sends (A's, aborted by the loader at the 15 s request
/// timeout, then B's or A's retry), and never two in flight at once: each send
/// starts after the one before settled, because the lock (20 s) outlives the
/// request it guards (issue 12: a 15 s lock against a 20 s timeout let a second
/// tab start while the first was still sending).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_never_send_at_once_while_a_request_hangs() {
    let hang = Hang::start();
    let endpoint = format!(" data-endpoint=\"{}\"", hang.endpoint());
    let s = setup(&[("h.html", page("Hang", SENDS, &endpoint, "<p>hang</p>"))]);
    let browser = Browser::launch().await.expect("chromium");
    let a = open(&browser, &s.web.url("/h.html")).await;
    blocking(|| {
        wait_for("A's request in flight", Duration::from_secs(20), || {
            (!hang.requests().is_empty()).then_some(())
        })
    })
    .expect("A sending");
    let b = open(&browser, &s.web.url("/h.html")).await;
    eval(&b, "closeloop.track('from-b')").await;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(28) {
        sleep(500).await;
    }
    let mut sends: Vec<(i64, i64)> = Vec::new();
    for tab in [&a, &b] {
        let v = eval(tab, "window.__sends").await;
        for r in v.as_array().into_iter().flatten() {
            sends.push((r["s"].as_i64().unwrap_or(0), r["e"].as_i64().unwrap_or(0)));
        }
    }
    browser.close().await;
    sends.sort();
    let t0 = sends.first().map_or(0, |r| r.0);
    let timeline: Vec<String> = sends
        .iter()
        .map(|(b, e)| {
            let end = if *e == 0 {
                "pending".to_string()
            } else {
                format!("{:.1}s", (e - t0) as f64 / 1000.0)
            };
            format!("{:.1}s..{end}", (b - t0) as f64 / 1000.0)
        })
        .collect();
    assert!(sends.len() >= 2, "sends: {timeline:?}");
    for pair in sends.windows(2) {
        let (first, next) = (pair[0], pair[1]);
        assert!(
            first.1 != 0 && first.1 <= next.0,
            "two sends in flight at once: {timeline:?}"
        );
    }
}

/// Scenario (sizes by hand): the page view is sent and acknowledged, so storage
/// holds the visitor id and the profile (about 350 UTF-16 units, with its page
/// counts). The browser goes offline; `track` e1, e2, e3, each with a 500-character
/// prop (about 660 units with its key); the page then fills localStorage with its
/// own keys until not one more character fits. Then `track` e4: storage refuses it,
/// so the tracker gives up acknowledged data first — the profile's page counts,
/// then the profile — which is not enough, then the oldest unsent event, e1 (1
/// dropped); e4 then fits. `track` e5: no profile left, so e2 goes (2 dropped).
/// Expected in storage: e3, e4, e5, no profile, `_cl_d = "2"`. Back online: one
/// batch with e3, e4, e5 and `dropped: 2`; the edge stores those three; the count
/// is taken off once acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(deprecated)] // Network.emulateNetworkConditions: still what sets navigator.onLine
async fn a_full_local_storage_gives_up_acknowledged_data_first_and_counts_what_it_drops() {
    use chromiumoxide::cdp::browser_protocol::network::EmulateNetworkConditionsParams;
    let s = setup(&[("s.html", page("Full", "", "", "<p>full</p>"))]);
    let browser = Browser::launch().await.expect("chromium");
    let (p, net) = watched_page(&browser).await;
    goto(&p, &s.web.url("/s.html")).await;
    s.wait_count(1, "", "the page view", 60);
    let acked = "!Object.keys(localStorage).some(k => k.startsWith('_cl_e.')) && \
                 localStorage.getItem('_cl_p') !== null && \
                 JSON.parse(localStorage.getItem('_cl_p')).lt !== undefined";
    eval_until(&p, acked, Duration::from_secs(20))
        .await
        .expect("the page view acknowledged, the profile stored");
    p.execute(EmulateNetworkConditionsParams::new(true, 0.0, -1.0, -1.0))
        .await
        .expect("offline");
    for name in ["e1", "e2", "e3"] {
        eval(
            &p,
            &format!("closeloop.track('{name}', {{pad: 'x'.repeat(500)}})"),
        )
        .await;
        sleep(20).await;
    }
    let queued = "Object.keys(localStorage).filter(k => k.startsWith('_cl_e.')).length";
    eval_until(&p, &format!("{queued} === 3"), Duration::from_secs(10))
        .await
        .expect("three events queued");
    let filled = eval(
        &p,
        "(() => { let n = 0, size = 1 << 20; \
           while (size >= 1) { \
             try { localStorage.setItem('fill-' + n, 'x'.repeat(size)); n++; } \
             catch (e) { size = size >> 1; } } \
           try { localStorage.setItem('p', 'x'); return -1; } catch (e) { return n; } })()",
    )
    .await;
    assert!(
        filled.as_i64().unwrap_or(-1) > 0,
        "storage filled: {filled}"
    );
    for name in ["e4", "e5"] {
        eval(
            &p,
            &format!("closeloop.track('{name}', {{pad: 'x'.repeat(500)}})"),
        )
        .await;
        sleep(20).await;
    }
    let kept = eval(
        &p,
        "Object.keys(localStorage).filter(k => k.startsWith('_cl_e.')) \
           .map(k => JSON.parse(localStorage.getItem(k))) \
           .sort((a, b) => a.created_at - b.created_at).map(e => e.name)",
    )
    .await;
    let dropped = eval(&p, "localStorage.getItem('_cl_d')").await;
    let profile = eval(&p, "localStorage.getItem('_cl_p')").await;
    assert_eq!(kept, json!(["e3", "e4", "e5"]));
    assert_eq!(dropped, json!("2"));
    assert_eq!(profile, Value::Null, "the profile gave way first");

    eval(
        &p,
        "Object.keys(localStorage).filter(k => k.startsWith('fill-')) \
           .forEach(k => localStorage.removeItem(k))",
    )
    .await;
    p.execute(EmulateNetworkConditionsParams::new(false, 0.0, -1.0, -1.0))
        .await
        .expect("online");
    s.wait_count(3, "AND type = 'track'", "the three kept events", 60);
    eval_until(
        &p,
        "localStorage.getItem('_cl_d') === null",
        Duration::from_secs(20),
    )
    .await
    .expect("the dropped count taken off once acknowledged");
    browser.close().await;
    let names: Vec<Value> = s
        .events("name", "AND type = 'track'")
        .into_iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("e3"), json!("e4"), json!("e5")]);
    let reported: Vec<Value> = net
        .batches()
        .into_iter()
        .filter(|b| b["dropped"] == json!(2))
        .collect();
    assert_eq!(reported.len(), 1, "{:?}", net.batches());
    let sent: Vec<&Value> = reported[0]["events"]
        .as_array()
        .map(|a| a.iter().map(|e| &e["name"]).collect())
        .unwrap_or_default();
    assert_eq!(sent, vec![&json!("e3"), &json!("e4"), &json!("e5")]);
}

/// Scenario: a page whose tag names a site the edge does not know, so every batch
/// is refused with 404 `unknown_site` (a permanent refusal). Expected: the batch
/// (its one page view) is sent 3 times, with the usual backoff, then dropped and
/// counted: no 4th request in the 9 s after the 3rd (the backoff would have sent
/// it within 8 s), the queue empty, `_cl_d = "1"`, the refusal count reset. Then a
/// page of the same origin with the right site id: its batch reports `dropped: 1`
/// and the edge stores its page view; the count is taken off once acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_refused_for_good_is_sent_three_times_then_dropped_and_counted() {
    let unknown = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>R</title>\
         <script async src=\"{DEMO_EDGE}/t.js\" data-site=\"no-such-site-4xx\"></script>\
         </head><body><p>r</p></body></html>"
    );
    let s = setup(&[
        ("r.html", unknown),
        ("ok.html", page("OK", "", "", "<p>ok</p>")),
    ]);
    let browser = Browser::launch().await.expect("chromium");
    let (p, net) = watched_page(&browser).await;
    goto(&p, &s.web.url("/r.html")).await;
    let fetches = |net: &Network| net.sent().iter().filter(|r| r.kind == "Fetch").count();
    blocking(|| {
        wait_for("three attempts", Duration::from_secs(30), || {
            (fetches(&net) >= 3).then_some(())
        })
    })
    .expect("three attempts");
    sleep(9_000).await;
    assert_eq!(fetches(&net), 3, "{:?}", net.sent());
    assert_eq!(
        eval_str(&p, STORED_KEYS).await,
        "[\"_cl_d\",\"_cl_p\",\"_cl_vid\"]"
    );
    assert_eq!(eval(&p, "localStorage.getItem('_cl_d')").await, json!("1"));

    goto(&p, &s.web.url("/ok.html")).await;
    s.wait_count(1, "", "the good page's view", 60);
    eval_until(
        &p,
        "localStorage.getItem('_cl_d') === null",
        Duration::from_secs(20),
    )
    .await
    .expect("the count taken off once acknowledged");
    browser.close().await;
    let good: Vec<Value> = net
        .batches()
        .into_iter()
        .filter(|b| b["site_id"] == json!(s.site.id))
        .collect();
    assert_eq!(good.first().map(|b| b["dropped"].clone()), Some(json!(1)));
    assert_eq!(s.count(""), 1);
}

/// Scenario: the page defines `window.__closeloop_log = []` before the tag (the
/// fault runs' hook); the visitor loads the page, navigates once, and the site calls
/// `track` and `identify`. Expected: the log holds the ids of exactly the 4 events
/// the edge stored (2 page views, the track, the identify).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_log_gets_every_event_id_the_tracker_creates() {
    let head = "<script>window.__closeloop_log = [];</script>";
    let s = setup(&[("l.html", page("Log", head, "", "<p>log</p>"))]);
    let browser = Browser::launch().await.expect("chromium");
    let p = open(&browser, &s.web.url("/l.html")).await;
    for js in [
        "history.pushState({}, '', '/l/next')",
        "closeloop.track('logged')",
        "closeloop.identify('log@example.com')",
    ] {
        eval(&p, js).await;
    }
    s.wait_count(4, "", "the four events", 60);
    let log = eval(&p, "window.__closeloop_log").await;
    browser.close().await;
    let mut logged: Vec<String> = log
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut stored: Vec<String> = s
        .events("event_id", "")
        .iter()
        .filter_map(|r| r["event_id"].as_str().map(String::from))
        .collect();
    logged.sort();
    stored.sort();
    assert_eq!(logged.len(), 4, "{log}");
    assert_eq!(logged, stored);
}

/// Regression: `consent(true)` copied every `_cl_` key from memory to storage,
/// including the keys memory did not hold, which wrote `"undefined"` over the
/// stored queue. Scenario: no consent required; the page queues `consent(true)`
/// before the tag (`window.closeloop = [["consent", true]]`), so it runs right
/// after start-up, before the first send. Expected: the landing page view reaches
/// the edge, and no stored value is the string "undefined".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_given_before_the_first_send_keeps_the_queue() {
    let head = "<script>window.closeloop = [['consent', true]];</script>";
    let s = setup(&[("c.html", page("Consent", head, "", "<p>c</p>"))]);
    let browser = Browser::launch().await.expect("chromium");
    let p = open(&browser, &s.web.url("/c.html")).await;
    let broken = eval(
        &p,
        "Object.keys(localStorage).filter(k => localStorage.getItem(k) === 'undefined')",
    )
    .await;
    s.wait_count(1, "AND type = 'pageview'", "the landing page view", 30);
    let consent = eval(&p, "localStorage.getItem('_cl_c')").await;
    browser.close().await;
    assert_eq!(broken, json!([]));
    assert_eq!(consent, json!("1"));
}

/// Issue 17: what a visitor downloads is served compressed, brotli where the client
/// accepts it (as browsers do over https), gzip otherwise, by the worker's static
/// assets (wrangler's local asset server here; Cloudflare's network compresses
/// `application/wasm` and `text/javascript` the same way in production). Expected:
/// `t.js` and the wasm it names answer `Content-Encoding: br` to `br, gzip`, `gzip`
/// to `gzip`, none to `identity`, and each compressed body is at most two thirds of
/// the raw one.
#[test]
fn the_loader_and_the_wasm_are_served_brotli_when_accepted() {
    let worker = closeloop_e2e::worker::Worker::shared().expect("worker");
    let get = |path: &str, enc: &str| -> (Option<String>, usize) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut res = agent
            .get(worker.url(path))
            .header("Accept-Encoding", enc)
            .call()
            .expect("GET");
        assert_eq!(res.status().as_u16(), 200, "{path}");
        let ce = res
            .headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let body = res.body_mut().read_to_vec().expect("body");
        (ce, body.len())
    };
    let (_, loader) = get("/t.js", "identity");
    let wasm = String::from_utf8_lossy(&loader_text(worker))
        .split("t/closeloop.")
        .nth(1)
        .and_then(|rest| rest.split(".wasm").next())
        .map(|hash| format!("/t/closeloop.{hash}.wasm"))
        .expect("t.js names the wasm");
    for path in ["/t.js", wasm.as_str()] {
        let (none, raw) = get(path, "identity");
        let (br, br_len) = get(path, "br, gzip");
        let (gz, gz_len) = get(path, "gzip");
        assert_eq!(none, None, "{path}");
        assert_eq!(br.as_deref(), Some("br"), "{path}");
        assert_eq!(gz.as_deref(), Some("gzip"), "{path}");
        assert!(
            br_len * 3 < raw * 2 && gz_len * 3 < raw * 2,
            "{path}: {raw} {br_len} {gz_len}"
        );
    }
    assert!(loader > 0);
}

fn loader_text(worker: &closeloop_e2e::worker::Worker) -> Vec<u8> {
    closeloop_e2e::http::get(&worker.url("/t.js"), None)
        .expect("t.js")
        .text
        .into_bytes()
}
