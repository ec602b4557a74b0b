//! The browser tracker against the real worker (issue 7): real Chromium, pages served
//! on their own origin (cross-origin, as on a customer's site), and every check made
//! on what the edge stored in D1, not only on what the page did.
//!
//! Each test writes its own small pages (the tag exactly as a site owner writes it),
//! creates a site of its own, and counts that site's events.

use closeloop_e2e::browser::{blocking, eval_until, Browser};
use closeloop_e2e::site::{StaticSite, DEMO_EDGE, DEMO_SITE};
use closeloop_e2e::worker::{Site, Worker};
use closeloop_e2e::{free_port, temp_dir, wait_for};
use serde_json::{json, Value};
use std::time::Duration;

/// True once the loader has started the wasm tracker.
const READY: &str = "typeof window.closeloop === 'object' && window.closeloop.profile() != null";
/// The tracker's keys in localStorage, as a JSON string.
const STORED_KEYS: &str =
    "JSON.stringify(Object.keys(localStorage).filter(k => k.startsWith('_cl_')).sort())";

/// A page with the tag as a site owner writes it (`extra_attrs` after `data-site`),
/// `head` before the tag and `body` as given.
fn page(title: &str, head: &str, extra_attrs: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>{head}\
         <script async src=\"{DEMO_EDGE}/t.js\" data-site=\"{DEMO_SITE}\"{extra_attrs}></script>\
         </head><body>{body}</body></html>"
    )
}

/// A site of its own on a worker, its pages served on a fresh origin it allows.
struct Setup<'w> {
    worker: &'w Worker,
    site: Site,
    web: StaticSite,
}

fn setup_on<'w>(worker: &'w Worker, pages: &[(&str, String)]) -> Setup<'w> {
    let port = free_port().expect("port");
    let origin = format!("http://127.0.0.1:{port}");
    let site = worker.create_site(&[&origin]).expect("site");
    let dir = temp_dir("tracker-pages").expect("pages dir");
    for (path, html) in pages {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).expect("pages subdir");
        }
        std::fs::write(&file, html).expect("write page");
    }
    let web = StaticSite::start(&dir, Some(port), &worker.base, &site.id).expect("static site");
    Setup { worker, site, web }
}

fn setup(pages: &[(&str, String)]) -> Setup<'static> {
    setup_on(Worker::shared().expect("worker"), pages)
}

/// The site's stored events (`columns`), oldest first by device time.
fn events(worker: &Worker, site: &str, columns: &str, filter: &str) -> Vec<Value> {
    let sql = format!(
        "SELECT {columns} FROM events WHERE site_id = '{site}' {filter} ORDER BY created_at, event_id"
    );
    worker.query(&sql).unwrap_or_default()
}

fn count(worker: &Worker, site: &str, filter: &str) -> usize {
    events(worker, site, "event_id", filter).len()
}

/// Waits until at least `n` events match `filter`, then returns how many do.
fn wait_count(worker: &Worker, site: &str, n: usize, filter: &str, what: &str) -> usize {
    let got = blocking(|| {
        wait_for(what, Duration::from_secs(60), || {
            let c = count(worker, site, filter);
            (c >= n).then_some(c)
        })
    });
    got.unwrap_or_else(|e| {
        panic!(
            "{e}: {} stored\nevents: {:?}\nworker log:\n{}",
            count(worker, site, filter),
            events(worker, site, "type, path, name", ""),
            worker.log_tail()
        )
    })
}

impl Setup<'_> {
    fn events(&self, columns: &str, filter: &str) -> Vec<Value> {
        events(self.worker, &self.site.id, columns, filter)
    }

    fn count(&self, filter: &str) -> usize {
        count(self.worker, &self.site.id, filter)
    }

    fn wait_count(&self, n: usize, filter: &str, what: &str) -> usize {
        wait_count(self.worker, &self.site.id, n, filter, what)
    }
}

async fn open(browser: &Browser, url: &str) -> chromiumoxide::Page {
    let p = browser.inner.new_page(url).await.expect("open page");
    let _ = p.wait_for_navigation().await;
    eval_until(&p, READY, Duration::from_secs(30))
        .await
        .expect("tracker ready");
    p
}

async fn eval(p: &chromiumoxide::Page, js: &str) -> Value {
    p.evaluate(js)
        .await
        .map(|r| r.into_value::<Value>().unwrap_or(Value::Null))
        .unwrap_or(Value::Null)
}

async fn eval_str(p: &chromiumoxide::Page, js: &str) -> String {
    eval(p, js).await.as_str().unwrap_or_default().to_string()
}

fn sleep(ms: u64) -> tokio::time::Sleep {
    tokio::time::sleep(Duration::from_millis(ms))
}

/// Scenario (paths by hand): load `/spa.html` (view 1); `pushState('/spa/a')` (view 2);
/// `pushState('/spa/a')` again (same path: none); `replaceState('/spa/a?utm_source=x')`
/// (same path, the query rewritten: none); `replaceState('/spa/b')` (path changed:
/// view 3); `history.back()` to `/spa/a` (popstate: view 4); reload `/spa/a` (a reload
/// of the last page viewed: none). Then a `track` marks the end. Expected: 4 page views,
/// paths `/spa.html`, `/spa/a`, `/spa/b`, `/spa/a`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spa_navigation_counts_each_path_change_once_and_a_reload_not_again() {
    let spa = page("SPA", "", "", "<p>app</p>");
    let s = setup(&[("spa.html", spa.clone()), ("spa/a.html", spa)]);
    let browser = Browser::launch().await.expect("chromium");
    let p = open(&browser, &s.web.url("/spa.html")).await;
    for js in [
        "history.pushState({}, '', '/spa/a')",
        "history.pushState({}, '', '/spa/a')",
        "history.replaceState({}, '', '/spa/a?utm_source=x')",
        "history.replaceState({}, '', '/spa/b')",
        "history.back()",
    ] {
        eval(&p, js).await;
        sleep(50).await;
    }
    eval_until(
        &p,
        "location.pathname === '/spa/a'",
        Duration::from_secs(10),
    )
    .await
    .expect("back to /spa/a");
    s.wait_count(4, "AND type = 'pageview'", "four page views");
    p.reload().await.expect("reload");
    eval_until(&p, READY, Duration::from_secs(30))
        .await
        .expect("tracker ready after reload");
    eval(&p, "closeloop.track('after-reload')").await;
    s.wait_count(1, "AND type = 'track'", "the marker after the reload");
    browser.close().await;
    let paths: Vec<Value> = s
        .events("path", "AND type = 'pageview'")
        .into_iter()
        .map(|r| r["path"].clone())
        .collect();
    assert_eq!(
        paths,
        vec![
            json!("/spa.html"),
            json!("/spa/a"),
            json!("/spa/b"),
            json!("/spa/a")
        ]
    );
}

/// Scenario: a lead form with an email, a first and last name, a password, a hidden
/// token, a card number (`autocomplete="cc-number"`), a field marked
/// `data-closeloop-ignore`, one marked `data-closeloop-capture` and a free-text message;
/// the visitor clicks Send (the form posts to /thanks.html). Expected by the privacy
/// rules: field names all but the ignored one; values only email, name (first and last
/// joined) and the marked plan; no secret anywhere in what the edge stored; a lead
/// with the email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_submit_with_an_email_becomes_a_lead_with_the_right_fields_and_no_password() {
    let form = "<form id=\"lead\" name=\"demo-form\" action=\"/thanks.html\" method=\"post\">\
        <input type=\"email\" name=\"email\" value=\"ann@example.com\">\
        <input name=\"first_name\" value=\"Ann\"><input name=\"last_name\" value=\"Lee\">\
        <input type=\"password\" name=\"password\" value=\"hunter2-secret\">\
        <input type=\"hidden\" name=\"csrf\" value=\"tok-secret\">\
        <input name=\"card\" autocomplete=\"cc-number\" value=\"4111111111111111\">\
        <input name=\"notes\" data-closeloop-ignore value=\"ignored-secret\">\
        <input name=\"plan\" data-closeloop-capture value=\"pro\">\
        <textarea name=\"message\">free text stays private</textarea>\
        <button id=\"send\">Send</button></form>";
    let s = setup(&[
        ("form.html", page("Form", "", "", form)),
        ("thanks.html", page("Thanks", "", "", "<p>thanks</p>")),
    ]);
    let browser = Browser::launch().await.expect("chromium");
    let p = open(&browser, &s.web.url("/form.html")).await;
    p.find_element("#send")
        .await
        .expect("button")
        .click()
        .await
        .expect("click");
    s.wait_count(1, "AND type = 'form_submit'", "the form submit");
    s.wait_count(1, "AND path = '/thanks.html'", "the thanks page view");
    browser.close().await;

    let rows = s.events(
        "form_id, form_fields, form_values",
        "AND type = 'form_submit'",
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    let fields: Value =
        serde_json::from_str(rows[0]["form_fields"].as_str().unwrap_or("null")).expect("fields");
    let values: Value =
        serde_json::from_str(rows[0]["form_values"].as_str().unwrap_or("null")).expect("values");
    assert_eq!(rows[0]["form_id"], "lead");
    assert_eq!(
        fields,
        json!([
            "email",
            "first_name",
            "last_name",
            "password",
            "csrf",
            "card",
            "plan",
            "message"
        ])
    );
    assert_eq!(
        values,
        json!({"email": "ann@example.com", "name": "Ann Lee", "plan": "pro"})
    );
    let everything = serde_json::to_string(&s.events("*", "")).unwrap_or_default();
    for secret in [
        "hunter2",
        "tok-secret",
        "4111111111111111",
        "ignored-secret",
        "free text",
    ] {
        assert!(!everything.contains(secret), "{secret} reached the edge");
    }
    let leads = s
        .worker
        .query(&format!(
            "SELECT email FROM leads WHERE site_id = '{}'",
            s.site.id
        ))
        .expect("leads");
    assert_eq!(leads, vec![json!({"email": "ann@example.com"})]);
}

/// Scenario: two devices (two browsers, two visitor ids) each call
/// `closeloop.identify('bob@example.com')`. Expected: one lead, two visitor ids in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_device_identified_with_the_same_email_joins_the_same_lead() {
    let s = setup(&[("home.html", page("Home", "", "", "<p>home</p>"))]);
    for _ in 0..2 {
        let browser = Browser::launch().await.expect("chromium");
        let p = open(&browser, &s.web.url("/home.html")).await;
        eval(&p, "closeloop.identify('bob@example.com', {name: 'Bob'})").await;
        let before = s.count("AND type = 'identify'");
        s.wait_count(before + 1, "AND type = 'identify'", "the identify call");
        browser.close().await;
    }
    let visitors = s.events("DISTINCT visitor_id", "AND type = 'identify'");
    assert_eq!(visitors.len(), 2, "two devices, two visitor ids");
    let lead_visitors = s
        .worker
        .count(&format!(
            "SELECT COUNT(DISTINCT lv.visitor_id) FROM lead_visitors lv JOIN leads l \
             ON l.site_id = lv.site_id AND l.lead_id = lv.lead_id \
             WHERE l.site_id = '{}' AND l.email = 'bob@example.com'",
            s.site.id
        ))
        .expect("lead visitors");
    assert_eq!(lead_visitors, 2);
    let leads = s
        .worker
        .count(&format!(
            "SELECT COUNT(*) FROM leads WHERE site_id = '{}'",
            s.site.id
        ))
        .expect("leads");
    assert_eq!(leads, 1);
}

/// Scenario: a `track` call, and the tab is closed at once (before the 300 ms batching
/// delay): the `pagehide` beacon must carry it. Expected: the page view and the event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_right_before_the_page_closes_arrives_by_beacon() {
    let s = setup(&[("bye.html", page("Bye", "", "", "<p>bye</p>"))]);
    let browser = Browser::launch().await.expect("chromium");
    let p = open(&browser, &s.web.url("/bye.html")).await;
    eval(&p, "closeloop.track('bye', {why: 'closing'})").await;
    p.close().await.expect("close tab");
    s.wait_count(
        1,
        "AND type = 'track' AND name = 'bye'",
        "the beacon's event",
    );
    s.wait_count(1, "AND type = 'pageview'", "the page view");
    browser.close().await;
    assert_eq!(s.count(""), 2);
}

/// Scenario: the page is loaded and its view stored; the network goes offline; three
/// `track` calls; 2 s pass; the network comes back. Expected: nothing more stored while
/// offline, then all four events exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(deprecated)] // Network.emulateNetworkConditions: still what sets navigator.onLine
async fn offline_for_a_while_then_back_delivers_everything_once() {
    use chromiumoxide::cdp::browser_protocol::network::{
        EmulateNetworkConditionsParams, EnableParams,
    };
    let s = setup(&[("off.html", page("Offline", "", "", "<p>offline</p>"))]);
    let browser = Browser::launch().await.expect("chromium");
    let p = open(&browser, &s.web.url("/off.html")).await;
    s.wait_count(1, "", "the page view");
    p.execute(EnableParams::default())
        .await
        .expect("network domain");
    p.execute(EmulateNetworkConditionsParams::new(true, 0.0, -1.0, -1.0))
        .await
        .expect("offline");
    for i in 0..3 {
        eval(&p, &format!("closeloop.track('offline-{i}')")).await;
    }
    sleep(2_000).await;
    assert_eq!(
        blocking(|| s.count("")),
        1,
        "nothing is stored while offline"
    );
    p.execute(EmulateNetworkConditionsParams::new(false, 0.0, -1.0, -1.0))
        .await
        .expect("online");
    s.wait_count(4, "", "everything after coming back online");
    sleep(1_500).await;
    browser.close().await;
    let names: Vec<Value> = s
        .events("name", "AND type = 'track'")
        .into_iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(
        names,
        vec![json!("offline-0"), json!("offline-1"), json!("offline-2")]
    );
    assert_eq!(s.count(""), 4);
}

/// Scenario: a dedicated worker; the page view is stored; the worker stops; three
/// `track` calls fail to send (backoff); the worker starts again. Expected: all four
/// events, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_down_for_a_while_then_back_delivers_everything_once() {
    let mut worker = Worker::start().expect("dedicated worker");
    let pages = [("down.html", page("Down", "", "", "<p>down</p>"))];
    // The origin and site id stay valid across the restart (same port, same state).
    let Setup { site, web, .. } = setup_on(&worker, &pages);
    let id = site.id.clone();
    let browser = Browser::launch().await.expect("chromium");
    let p = open(&browser, &web.url("/down.html")).await;
    wait_count(&worker, &id, 1, "", "the page view");
    blocking(|| worker.stop());
    for i in 0..3 {
        eval(&p, &format!("closeloop.track('down-{i}')")).await;
    }
    sleep(3_000).await;
    blocking(|| worker.restart()).expect("restart the worker");
    wait_count(&worker, &id, 4, "", "everything after the worker came back");
    sleep(1_500).await;
    browser.close().await;
    assert_eq!(count(&worker, &id, "AND type = 'track'"), 3);
    assert_eq!(count(&worker, &id, ""), 4);
}

/// Scenario: two tabs of one site in one browser (shared storage and queue); each
/// makes five `track` calls, interleaved. Expected: 2 page views and 10 events, each
/// once, all with one visitor id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_share_the_queue_without_duplicates() {
    let s = setup(&[("tab.html", page("Tab", "", "", "<p>tab</p>"))]);
    let browser = Browser::launch().await.expect("chromium");
    let a = open(&browser, &s.web.url("/tab.html")).await;
    let b = open(&browser, &s.web.url("/tab.html")).await;
    for i in 0..5 {
        eval(&a, &format!("closeloop.track('a-{i}')")).await;
        eval(&b, &format!("closeloop.track('b-{i}')")).await;
    }
    s.wait_count(12, "", "both tabs' events");
    sleep(1_500).await;
    browser.close().await;
    assert_eq!(s.count(""), 12);
    let visitors = s.events("DISTINCT visitor_id", "");
    assert_eq!(visitors.len(), 1, "one browser, one visitor: {visitors:?}");
    let names = s.events("name", "AND type = 'track'");
    for i in 0..5 {
        for tab in ["a", "b"] {
            let n = format!("{tab}-{i}");
            assert_eq!(
                names.iter().filter(|r| r["name"] == n.as_str()).count(),
                1,
                "{n}"
            );
        }
    }
}

/// Scenario: `data-consent="required"`; the visitor browses (a load and an SPA
/// navigation) without answering. Expected: nothing in localStorage or cookies, nothing
/// at the edge. Then `consent(true)`: the two held page views arrive and the visitor id
/// is stored. Then `consent(false)`: storage is cleared but for the refusal itself, and
/// a later `track` is not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_required_and_not_given_stores_and_sends_nothing() {
    let s = setup(&[(
        "c.html",
        page(
            "Consent",
            "",
            " data-consent=\"required\"",
            "<p>consent</p>",
        ),
    )]);
    let browser = Browser::launch().await.expect("chromium");
    let p = open(&browser, &s.web.url("/c.html")).await;
    eval(&p, "history.pushState({}, '', '/c/next')").await;
    sleep(2_000).await;
    assert_eq!(eval_str(&p, STORED_KEYS).await, "[]");
    assert!(!eval_str(&p, "document.cookie").await.contains("_cl_vid"));
    assert_eq!(blocking(|| s.count("")), 0, "nothing sent without consent");

    eval(&p, "closeloop.consent(true)").await;
    s.wait_count(
        2,
        "AND type = 'pageview'",
        "the held page views after consent",
    );
    assert!(eval_str(&p, STORED_KEYS).await.contains("_cl_vid"));

    eval(&p, "closeloop.consent(false)").await;
    assert_eq!(eval_str(&p, STORED_KEYS).await, "[\"_cl_c\"]");
    assert!(!eval_str(&p, "document.cookie").await.contains("_cl_vid"));
    eval(&p, "closeloop.track('after-revoke')").await;
    sleep(2_000).await;
    browser.close().await;
    assert_eq!(s.count(""), 2);
}

/// Scenario: the browser sends Global Privacy Control (`navigator.globalPrivacyControl`
/// is true); the visitor browses. Expected: nothing stored in the browser, nothing at
/// the edge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_privacy_control_stores_and_sends_nothing() {
    let gpc = "<script>Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', \
               {get() { return true; }});</script>";
    let s = setup(&[("g.html", page("GPC", gpc, "", "<p>gpc</p>"))]);
    let browser = Browser::launch().await.expect("chromium");
    let p = open(&browser, &s.web.url("/g.html")).await;
    eval(
        &p,
        "history.pushState({}, '', '/g/next'); closeloop.track('gpc')",
    )
    .await;
    sleep(2_500).await;
    assert_eq!(eval_str(&p, STORED_KEYS).await, "[]");
    assert!(!eval_str(&p, "document.cookie").await.contains("_cl_vid"));
    browser.close().await;
    assert_eq!(s.count(""), 0);
}

/// Scenario: storage is blocked (reading `localStorage` and `document.cookie` throws,
/// as with blocked cookies). The visitor browses and a custom event fires. Expected: no
/// error reaches the page, and the edge stores the two page views and the event (the
/// queue lives in memory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_storage_degrades_to_memory_without_errors() {
    let block = "<script>window.__errors = [];\
        addEventListener('error', e => __errors.push(String(e.message)));\
        addEventListener('unhandledrejection', e => __errors.push(String(e.reason)));\
        const no = () => { throw new DOMException('blocked', 'SecurityError'); };\
        Object.defineProperty(window, 'localStorage', {get: no});\
        Object.defineProperty(Document.prototype, 'cookie', {get: no, set: no});</script>";
    let s = setup(&[("b.html", page("Blocked", block, "", "<p>blocked</p>"))]);
    let browser = Browser::launch().await.expect("chromium");
    let p = open(&browser, &s.web.url("/b.html")).await;
    eval(
        &p,
        "history.pushState({}, '', '/b/next'); closeloop.track('blocked')",
    )
    .await;
    s.wait_count(3, "", "the events sent from memory");
    let errors = eval_str(&p, "JSON.stringify(__errors)").await;
    let profile = eval(&p, "closeloop.profile().pageviews").await;
    browser.close().await;
    assert_eq!(errors, "[]");
    assert_eq!(profile, json!(2));
    assert_eq!(s.count("AND type = 'pageview'"), 2);
    assert_eq!(s.count("AND type = 'track'"), 1);
}

/// Scenario (counts by hand): load `/p.html`; SPA navigations to `/blog/a`, `/blog/b`,
/// `/blog/a`, `/docs/x`, `/blog/a`, `/docs/y`, `/pricing`; then a second load of
/// `/p.html` in a new tab. Views per path: `/blog/a` 3, `/p.html` 2, `/blog/b`,
/// `/docs/x`, `/docs/y`, `/pricing` 1 each (9 in all). Expected `profile()`: the top 5
/// pages by views, ties by name: `/blog/a` 3, `/p.html` 2, `/blog/b` 1, `/docs/x` 1,
/// `/docs/y` 1; sections (a path's first segment) `/blog` 4, `/docs` 2, `/p.html` 2,
/// `/pricing` 1; the visitor id the edge stored; not a lead. The edge stored the same
/// 9 page views.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_orders_top_pages_and_sections_by_views_then_name() {
    let s = setup(&[("p.html", page("Profile", "", "", "<p>profile</p>"))]);
    let browser = Browser::launch().await.expect("chromium");
    let p = open(&browser, &s.web.url("/p.html")).await;
    for path in [
        "/blog/a", "/blog/b", "/blog/a", "/docs/x", "/blog/a", "/docs/y", "/pricing",
    ] {
        eval(&p, &format!("history.pushState({{}}, '', '{path}')")).await;
        sleep(20).await;
    }
    s.wait_count(8, "AND type = 'pageview'", "the first tab's page views");
    let q = open(&browser, &s.web.url("/p.html")).await;
    s.wait_count(9, "AND type = 'pageview'", "the second load's page view");
    let profile = eval(&q, "closeloop.profile()").await;
    browser.close().await;
    assert_eq!(
        profile["top_pages"],
        json!([
            {"path": "/blog/a", "views": 3},
            {"path": "/p.html", "views": 2},
            {"path": "/blog/b", "views": 1},
            {"path": "/docs/x", "views": 1},
            {"path": "/docs/y", "views": 1}
        ])
    );
    assert_eq!(
        profile["top_sections"],
        json!([
            {"section": "/blog", "views": 4},
            {"section": "/docs", "views": 2},
            {"section": "/p.html", "views": 2},
            {"section": "/pricing", "views": 1}
        ])
    );
    assert_eq!(profile["pageviews"], json!(9));
    assert_eq!(profile["is_lead"], json!(false));
    let visitors = s.events("DISTINCT visitor_id", "");
    assert_eq!(visitors, vec![json!({"visitor_id": profile["visitor_id"]})]);
    let mut paths: Vec<String> = s
        .events("path", "AND type = 'pageview'")
        .iter()
        .filter_map(|r| r["path"].as_str().map(String::from))
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/blog/a", "/blog/a", "/blog/a", "/blog/b", "/docs/x", "/docs/y", "/p.html", "/p.html",
            "/pricing"
        ]
    );
}

/// Scenario: `data-hash-routing`; load `/h.html`, then the hash becomes `#/a`, `#/a`
/// again (no change), `#/b`, and `history.back()` returns to `#/a`. Expected: 4 page
/// views whose URLs end in `/h.html`, `#/a`, `#/b`, `#/a` (the hash is part of the
/// page). The same on `/n.html` without the attribute: the load only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_routing_counts_hash_changes_only_when_the_site_opts_in() {
    let s = setup(&[
        (
            "h.html",
            page("Hash", "", " data-hash-routing", "<p>hash</p>"),
        ),
        ("n.html", page("No hash", "", "", "<p>no hash</p>")),
    ]);
    let browser = Browser::launch().await.expect("chromium");
    let p = open(&browser, &s.web.url("/h.html")).await;
    for js in [
        "location.hash = '#/a'",
        "location.hash = '#/a'",
        "location.hash = '#/b'",
        "history.back()",
    ] {
        eval(&p, js).await;
        sleep(100).await;
    }
    eval_until(&p, "location.hash === '#/a'", Duration::from_secs(10))
        .await
        .expect("back to #/a");
    eval(&p, "closeloop.track('hash-done')").await;
    s.wait_count(1, "AND name = 'hash-done'", "the hash page's marker");
    let n = open(&browser, &s.web.url("/n.html")).await;
    for js in ["location.hash = '#/x'", "location.hash = '#/y'"] {
        eval(&n, js).await;
        sleep(100).await;
    }
    eval(&n, "closeloop.track('plain-done')").await;
    s.wait_count(1, "AND name = 'plain-done'", "the plain page's marker");
    browser.close().await;
    let urls = |path: &str| -> Vec<String> {
        s.events("url", &format!("AND type = 'pageview' AND path = '{path}'"))
            .iter()
            .filter_map(|r| r["url"].as_str().map(String::from))
            .collect()
    };
    let hashed = urls("/h.html");
    let ends: Vec<&str> = hashed
        .iter()
        .map(|u| u.find('#').map_or("", |i| &u[i..]))
        .collect();
    assert_eq!(ends, ["", "#/a", "#/b", "#/a"], "{hashed:?}");
    assert_eq!(urls("/n.html").len(), 1, "no hash routing: the load only");
}

/// Scenario: `data-ignore-paths="/admin/*,/preview"`. The visitor lands on
/// `/admin/x.html` (ignored), navigates to `/admin/y` (ignored) and calls `track`
/// there (ignored too), then `/ok`, `/preview` (ignored) and `/fine`, where a marker
/// is tracked. Expected at the edge: page views of `/ok` and `/fine` and the marker,
/// nothing else; no stored URL or referrer names an ignored page (`/fine`'s referrer
/// is `/ok`, the last page recorded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_paths_are_never_recorded_nor_sent_as_referrers() {
    let attrs = " data-ignore-paths=\"/admin/*,/preview\"";
    let s = setup(&[("admin/x.html", page("Admin", "", attrs, "<p>admin</p>"))]);
    let browser = Browser::launch().await.expect("chromium");
    let p = open(&browser, &s.web.url("/admin/x.html")).await;
    for js in [
        "history.pushState({}, '', '/admin/y')",
        "closeloop.track('on-admin')",
        "history.pushState({}, '', '/ok')",
        "history.pushState({}, '', '/preview')",
        "history.pushState({}, '', '/fine')",
        "closeloop.track('fine-done')",
    ] {
        eval(&p, js).await;
        sleep(50).await;
    }
    s.wait_count(1, "AND name = 'fine-done'", "the marker");
    sleep(1_000).await;
    browser.close().await;
    let rows = s.events("type, path, name, referrer", "");
    let got: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["type"].as_str().unwrap_or("").to_string(),
                r["path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let want = [
        ("pageview", "/ok"),
        ("pageview", "/fine"),
        ("track", "/fine"),
    ];
    assert_eq!(
        got,
        want.map(|(a, b)| (a.to_string(), b.to_string())),
        "{rows:?}"
    );
    let fine_referrer = rows[1]["referrer"].as_str().unwrap_or("");
    assert!(fine_referrer.ends_with("/ok"), "{rows:?}");
    let everything =
        serde_json::to_string(&s.events("url, referrer, name", "")).unwrap_or_default();
    for hidden in ["/admin", "/preview", "on-admin"] {
        assert!(
            !everything.contains(hidden),
            "{hidden} reached the edge: {everything}"
        );
    }
}
