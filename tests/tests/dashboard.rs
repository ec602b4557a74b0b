//! The marketer's dashboard (`/dashboard/`, served from the worker's static assets) in a
//! real Chromium: it asks for the site id and read key, keeps them out of the URL, shows
//! the sources table with the figures the worker stored, and explains a wrong key.

use closeloop_e2e::browser::{blocking, eval_until, Browser, USER_AGENT};
use closeloop_e2e::http::{self, Answer};
use closeloop_e2e::worker::{Site, Worker};
use closeloop_e2e::{now_ms, wait_for};
use serde_json::{json, Value};
use std::time::Duration;

const ORIGIN: &str = "https://dash-shop.example";
const LANDING: &str =
    "https://dash-shop.example/?utm_source=newsletter&utm_medium=email&utm_campaign=launch";

/// POSTs a batch as a desktop browser on [`ORIGIN`] would (text/plain like sendBeacon,
/// with a browser user agent so that the edge does not flag it as a bot).
fn send(worker: &Worker, body: &Value) -> Answer {
    let answer = http::request(
        "POST",
        &worker.url("/v1/collect"),
        &[
            ("Content-Type", "text/plain;charset=UTF-8"),
            ("Origin", ORIGIN),
            ("User-Agent", USER_AGENT),
        ],
        Some(&body.to_string()),
    )
    .expect("collect");
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["rejected"], 0, "{}", answer.text);
    answer
}

/// Scenario (all within the last minute, so inside the dashboard's default range of the
/// last 30 days):
/// - visitor A lands from the `launch` newsletter (`utm_medium=email`), views /pricing
///   (same-site: the same session) and submits the demo form with an email: a lead;
/// - visitor B opens the home page with no referrer (Direct), one page view;
/// - visitor C opens /blog with no referrer (Direct) two hours earlier, and comes back
///   with no referrer to /pricing: more than 30 minutes later, a second Direct session.
///
/// Expected by channel, worked out by hand: Email — 1 visitor, 1 session, 1 lead
/// (the lead's only touch); Direct — 2 visitors (B, C), 3 sessions, 0 leads; totals —
/// 3 visitors, 4 sessions, 1 lead. Nothing was sold and no spend was posted.
fn post_scenario(worker: &Worker, site: &Site) {
    let t = now_ms() - 60_000;
    let pv = |id: &str, at: i64, url: &str, referrer: &str| {
        json!({"id": id, "type": "pageview", "created_at": at, "url": url,
               "referrer": referrer, "title": "Dash shop"})
    };
    let a = json!({"site_id": site.id, "visitor_id": "dash-visitor-a-0001", "sent_at": t + 5_000,
    "events": [
        pv("dash-evt-a-0001", t, LANDING, ""),
        pv("dash-evt-a-0002", t + 1_000, "https://dash-shop.example/pricing", LANDING),
        {"id": "dash-evt-a-0003", "type": "form_submit", "created_at": t + 2_000,
         "url": "https://dash-shop.example/pricing", "referrer": LANDING,
         "form": {"id": "demo", "fields": ["email", "name"],
                  "values": {"email": "ann@dash-shop.example", "name": "Ann"}}}
    ]});
    let b = json!({"site_id": site.id, "visitor_id": "dash-visitor-b-0002", "sent_at": t + 5_000,
        "events": [pv("dash-evt-b-0001", t + 100, "https://dash-shop.example/", "")]});
    let c = json!({"site_id": site.id, "visitor_id": "dash-visitor-c-0003", "sent_at": t + 5_000,
    "events": [
        pv("dash-evt-c-0001", t - 2 * 3_600_000, "https://dash-shop.example/blog", ""),
        pv("dash-evt-c-0002", t + 200, "https://dash-shop.example/pricing", "")
    ]});
    assert_eq!(send(worker, &a).json["accepted"], 3);
    assert_eq!(send(worker, &b).json["accepted"], 1);
    assert_eq!(send(worker, &c).json["accepted"], 2);
}

/// The cells of the sources table's body and footer rows, as the page shows them.
const TABLE_JS: &str = "JSON.stringify({
    rows: [...document.querySelectorAll('#sources tbody tr')].map(tr => [...tr.cells].map(c => c.textContent)),
    totals: [...document.querySelectorAll('#sources tfoot tr')].map(tr => [...tr.cells].map(c => c.textContent)),
    status: document.getElementById('sources-status').textContent })";

async fn eval_string(page: &chromiumoxide::Page, js: &str) -> String {
    page.evaluate(js)
        .await
        .expect("evaluate")
        .into_value::<String>()
        .expect("a string")
}

async fn sign_in(page: &chromiumoxide::Page, site: &str, key: &str) {
    eval_until(
        page,
        "!document.getElementById('login').hidden",
        Duration::from_secs(20),
    )
    .await
    .expect("the sign-in form is shown");
    for (selector, text) in [("#site", site), ("#key", key)] {
        let input = page.find_element(selector).await.expect("input");
        input
            .call_js_fn("function() { this.value = ''; }", false)
            .await
            .expect("clear input");
        input.click().await.expect("focus input");
        input.type_str(text).await.expect("type");
    }
    page.find_element("#login button[type=submit]")
        .await
        .expect("open button")
        .click()
        .await
        .expect("click open");
}

/// Checks one row of figures: label, visitors, sessions and leads exactly; the money
/// and ratio columns show a value or "—" (never blank, `NaN` or `undefined`).
fn check_row(cells: &Value, label: &str, visitors: &str, sessions: &str, leads: &str) {
    let cells: Vec<&str> = cells
        .as_array()
        .expect("cells")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(cells.len(), 10, "{cells:?}");
    assert_eq!(cells[..4], [label, visitors, sessions, leads], "{cells:?}");
    // No customers were won: 0 credited, or "—" while the API has no such column.
    assert!(matches!(cells[4], "0" | "—"), "customers: {cells:?}");
    for c in &cells[5..] {
        assert!(
            !c.is_empty() && !c.contains("NaN") && !c.contains("undefined"),
            "{cells:?}"
        );
    }
}

/// Scenario: see [`post_scenario`]. The marketer opens /dashboard/, enters the site id
/// and read key, picks the first-touch model; the table shows Direct (2 visitors, 3
/// sessions, 0 leads), Email (1, 1, 1) and the totals (3, 4, 1). The key is in sessionStorage, not in the URL.
/// Then they sign in again with a made-up key and are told to check the read key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_sources_table_and_explains_a_wrong_key() {
    let worker = Worker::shared().expect("worker");
    let site = worker.create_site(&[ORIGIN]).expect("site");
    blocking(|| post_scenario(worker, &site));

    // The dashboard is a static asset of the worker.
    let html = blocking(|| http::get(&worker.url("/dashboard/"), None)).expect("GET /dashboard/");
    assert_eq!(
        html.status, 200,
        "dist/public/dashboard/ is missing? {}",
        html.text
    );
    assert!(html.text.contains("dashboard.js"), "{}", html.text);
    // `cargo xtask demo` prints `/dashboard` (no slash): it leads to the page too.
    let bare = blocking(|| http::get(&worker.url("/dashboard"), None)).expect("GET /dashboard");
    assert_eq!(bare.status, 200, "{}", bare.text);
    assert!(
        bare.text.contains("/dashboard/dashboard.js"),
        "{}",
        bare.text
    );
    // The report itself answers before the browser looks (the worker needs no warm-up).
    blocking(|| {
        wait_for("the sources report", Duration::from_secs(30), || {
            let url = worker.url(&format!(
                "/v1/sites/{}/reports/sources?model=first_touch",
                site.id
            ));
            http::get(&url, Some(&site.read_key))
                .ok()
                .filter(|a| a.status == 200)
        })
    })
    .expect("sources report");

    let browser = Browser::launch().await.expect("chromium");
    let page = browser
        .inner
        .new_page(worker.url("/dashboard/"))
        .await
        .expect("open dashboard");
    page.wait_for_navigation().await.expect("dashboard loaded");

    sign_in(&page, &site.id, &site.read_key).await;
    page.evaluate(
        "(() => { const m = document.getElementById('model'); m.value = 'first_touch';
                  m.dispatchEvent(new Event('change')); return true; })()",
    )
    .await
    .expect("choose first touch");
    let shown = eval_until(
        &page,
        "document.getElementById('sources-section').dataset.state === 'ok'
         && document.getElementById('model').value === 'first_touch'
         && document.querySelector('#sources tbody tr[data-key=\"Email\"]') !== null",
        Duration::from_secs(30),
    )
    .await;
    let table: Value = serde_json::from_str(&eval_string(&page, TABLE_JS).await).expect("json");
    if let Err(e) = shown {
        panic!("{e}\ntable: {table}\nworker log:\n{}", worker.log_tail());
    }

    let rows = table["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{table}");
    // Most sessions first.
    check_row(&rows[0], "Direct", "2", "3", "0");
    check_row(&rows[1], "Email", "1", "1", "1");
    check_row(&table["totals"][0], "Total", "3", "4", "1");

    // The key never reaches the URL; it is kept in this tab's sessionStorage.
    let href = eval_string(&page, "location.href").await;
    assert!(!href.contains(&site.read_key), "{href}");
    assert!(!href.contains(&site.id), "{href}");
    let stored = eval_string(&page, "sessionStorage.getItem('closeloop.dashboard') || ''").await;
    assert!(stored.contains(&site.read_key), "{stored}");

    // Pages and timeseries: a table / chart, or a clear "not available yet" (404).
    for (section, content) in [
        ("pages", "#pages tbody tr"),
        ("timeseries", "#chart svg rect.bar"),
    ] {
        let state_js = format!("document.getElementById('{section}-section').dataset.state");
        let settled = eval_until(
            &page,
            &format!("['ok', 'unavailable'].includes({state_js})"),
            Duration::from_secs(30),
        )
        .await;
        let state = eval_string(&page, &format!("String({state_js})")).await;
        let status = eval_string(
            &page,
            &format!("document.getElementById('{section}-status').textContent"),
        )
        .await;
        if let Err(e) = settled {
            panic!(
                "{section}: {e}\nstate {state}: {status}\nworker log:\n{}",
                worker.log_tail()
            );
        }
        let drawn = eval_string(
            &page,
            &format!("String(document.querySelectorAll('{content}').length)"),
        )
        .await;
        if state == "unavailable" {
            assert!(
                status.contains("not available on this worker yet"),
                "{status}"
            );
            assert_eq!(drawn, "0", "{section}");
        } else {
            assert_ne!(drawn, "0", "{section}: {status}");
        }
    }

    // A wrong key: a readable message, no figures.
    page.find_element("#signout")
        .await
        .expect("sign-out button")
        .click()
        .await
        .expect("sign out");
    sign_in(&page, &site.id, "clr_not-the-right-key-0000").await;
    let refused = eval_until(
        &page,
        "document.getElementById('sources-section').dataset.state === 'error'",
        Duration::from_secs(30),
    )
    .await;
    let wrong: Value = serde_json::from_str(&eval_string(&page, TABLE_JS).await).expect("json");
    browser.close().await;
    refused.unwrap_or_else(|e| panic!("{e}\n{wrong}"));
    let status = wrong["status"].as_str().expect("status");
    assert!(status.contains("check the read key"), "{status}");
    assert!(status.contains("403"), "{status}");
    assert_eq!(wrong["rows"].as_array().map(Vec::len), Some(0), "{wrong}");
}
