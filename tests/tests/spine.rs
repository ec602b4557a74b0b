//! The thin slice through the whole system (issue 3): a real Chromium visits the demo
//! site from an email campaign, the tracker sends its beacon to the real worker, and
//! the sources report counts exactly what happened. Plus the ingest contract's first
//! guarantees: exactly-once storage, clear 4xx errors that store nothing, and keys.

use closeloop_e2e::browser::{blocking, eval_until, Browser};
use closeloop_e2e::http;
use closeloop_e2e::site::StaticSite;
use closeloop_e2e::worker::{Site, Worker};
use closeloop_e2e::{now_ms, root, wait_for};
use serde_json::{json, Value};
use std::time::Duration;

fn demo_site(worker: &Worker, site: &Site) -> StaticSite {
    StaticSite::start(&root().join("demo-site"), None, &worker.base, &site.id)
        .expect("static demo site")
}

fn events_stored(worker: &Worker, site: &str) -> i64 {
    worker
        .count(&format!(
            "SELECT COUNT(*) FROM events WHERE site_id = '{site}'"
        ))
        .expect("count events")
}

fn sources_report(worker: &Worker, site: &Site, group_by: &str) -> http::Answer {
    let url = worker.url(&format!(
        "/v1/sites/{}/reports/sources?group_by={group_by}",
        site.id
    ));
    http::get(&url, Some(&site.read_key)).expect("sources report")
}

/// The row of a report whose `field` is `value`.
fn row<'a>(report: &'a Value, field: &str, value: &str) -> Option<&'a Value> {
    report["rows"]
        .as_array()?
        .iter()
        .find(|r| r.get(field).and_then(Value::as_str) == Some(value))
}

/// Scenario: one visitor opens the demo home page from the `launch` newsletter
/// (`utm_source=newsletter&utm_medium=email&utm_campaign=launch`) and clicks through to
/// the pricing page. Expected, by hand: 1 visitor, 1 session (the click is same-site and
/// within 30 minutes), 2 page views, all credited to email / newsletter / launch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visit_from_an_email_campaign_reaches_the_sources_report() {
    let worker = Worker::shared().expect("worker");
    let site_origin_port = closeloop_e2e::free_port().expect("port");
    let origin = format!("http://127.0.0.1:{site_origin_port}");
    let site = worker.create_site(&[&origin]).expect("site");
    let demo = StaticSite::start(
        &root().join("demo-site"),
        Some(site_origin_port),
        &worker.base,
        &site.id,
    )
    .expect("demo site");

    let browser = Browser::launch().await.expect("chromium");
    let page = browser
        .inner
        .new_page(demo.url("/?utm_source=newsletter&utm_medium=email&utm_campaign=launch"))
        .await
        .expect("open landing page");
    page.wait_for_navigation()
        .await
        .expect("landing page loaded");
    // The tracker loads asynchronously: wait until it has queued or sent the first view.
    eval_until(
        &page,
        "typeof window.closeloop === 'object' && window.closeloop.profile() != null",
        Duration::from_secs(20),
    )
    .await
    .expect("tracker ready");
    page.find_element("#to-pricing")
        .await
        .expect("link")
        .click()
        .await
        .expect("click");
    eval_until(
        &page,
        "location.pathname === '/pricing.html' && document.readyState === 'complete'",
        Duration::from_secs(20),
    )
    .await
    .expect("the click leads to the pricing page");

    let report = blocking(|| {
        wait_for(
            "two page views in the sources report",
            Duration::from_secs(30),
            || {
                let a = sources_report(worker, &site, "campaign");
                let views =
                    row(&a.json, "campaign", "launch").and_then(|r| r["pageviews"].as_i64());
                (views == Some(2)).then_some(a)
            },
        )
    });
    browser.close().await;
    let report = report.unwrap_or_else(|e| {
        panic!(
            "{e}\nlast report: {}\nworker log:\n{}",
            sources_report(worker, &site, "campaign").text,
            worker.log_tail()
        )
    });

    assert_eq!(report.status, 200);
    let r = row(&report.json, "campaign", "launch").expect("launch row");
    assert_eq!(r["source"], "newsletter");
    assert_eq!(r["medium"], "email");
    assert_eq!(r["channel"], "Email");
    assert_eq!(r["visitors"], 1);
    assert_eq!(r["sessions"], 1);
    assert_eq!(r["pageviews"], 2);
    assert_eq!(
        report.json["rows"].as_array().map(Vec::len),
        Some(1),
        "{}",
        report.text
    );
    assert_eq!(events_stored(worker, &site.id), 2);
    let paths = worker
        .query(&format!(
            "SELECT path FROM events WHERE site_id = '{}' ORDER BY derived_ts",
            site.id
        ))
        .expect("paths");
    assert_eq!(
        paths,
        vec![json!({"path": "/"}), json!({"path": "/pricing.html"})]
    );
}

fn batch(site: &str, ids: &[&str]) -> String {
    let now = now_ms();
    let events: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({"id": id, "type": "pageview", "created_at": now - 1000 + i as i64,
                   "url": format!("https://shop.example/p{i}"), "referrer": "", "title": "P"})
        })
        .collect();
    json!({"site_id": site, "visitor_id": "visitor-0001-aaaa", "sent_at": now, "events": events})
        .to_string()
}

/// Scenario: the same batch of three events arrives twice (a retry). Expected: the
/// first answer accepts 3, the second says duplicate for all 3, and 3 rows are stored.
#[test]
fn the_same_batch_twice_is_stored_once() {
    let worker = Worker::shared().expect("worker");
    let origin = "https://shop.example";
    let site = worker.create_site(&[origin]).expect("site");
    let body = batch(
        &site.id,
        &["evt-aaaa-0001", "evt-aaaa-0002", "evt-aaaa-0003"],
    );

    let first = worker.collect(origin, &body).expect("first");
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.json["accepted"], 3, "{}", first.text);
    let second = worker.collect(origin, &body).expect("second");
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.json["accepted"], 0, "{}", second.text);
    assert_eq!(second.json["duplicates"], 3, "{}", second.text);
    let statuses: Vec<&str> = second.json["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["status"].as_str())
        .collect();
    assert_eq!(statuses, ["duplicate", "duplicate", "duplicate"]);
    assert_eq!(events_stored(worker, &site.id), 3);
}

/// Scenario: three bad requests — a batch for a site that does not exist, a batch from
/// an origin the site does not allow, and a body that is not JSON. Expected: 404
/// `unknown_site`, 403 `origin_not_allowed`, 400 `malformed_json`, each a JSON error
/// body, and no event stored for any of them.
#[test]
fn bad_batches_get_json_errors_and_store_nothing() {
    let worker = Worker::shared().expect("worker");
    let origin = "https://allowed.example";
    let site = worker.create_site(&[origin]).expect("site");

    let unknown = worker
        .collect(origin, &batch("no-such-site-x", &["evt-bbbb-0001"]))
        .expect("unknown");
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert_eq!(
        unknown.error_code(),
        Some("unknown_site"),
        "{}",
        unknown.text
    );
    assert!(unknown.json["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(events_stored(worker, "no-such-site-x"), 0);

    let wrong_origin = worker
        .collect("https://evil.example", &batch(&site.id, &["evt-bbbb-0002"]))
        .expect("wrong origin");
    assert_eq!(wrong_origin.status, 403, "{}", wrong_origin.text);
    assert_eq!(
        wrong_origin.error_code(),
        Some("origin_not_allowed"),
        "{}",
        wrong_origin.text
    );

    let malformed = worker
        .collect(origin, "{\"site_id\": \"x\", \"events\": [")
        .expect("malformed");
    assert_eq!(malformed.status, 400, "{}", malformed.text);
    assert_eq!(
        malformed.error_code(),
        Some("malformed_json"),
        "{}",
        malformed.text
    );

    assert_eq!(events_stored(worker, &site.id), 0);
}

/// Scenario: the sources report asked without a key, with a made-up key, and with the
/// site's write key (not a read key). Expected: 401, 403, 403, each a JSON error.
#[test]
fn reports_need_the_read_key() {
    let worker = Worker::shared().expect("worker");
    let site = worker.create_site(&["https://keys.example"]).expect("site");
    let other = worker
        .create_site(&["https://other.example"])
        .expect("other site");
    let url = worker.url(&format!("/v1/sites/{}/reports/sources", site.id));

    let none = http::get(&url, None).expect("no key");
    assert_eq!(none.status, 401, "{}", none.text);
    assert!(none.error_code().is_some(), "{}", none.text);

    let wrong = http::get(&url, Some("clr_not-a-real-key")).expect("wrong key");
    assert_eq!(wrong.status, 403, "{}", wrong.text);
    assert!(wrong.error_code().is_some(), "{}", wrong.text);

    let others = http::get(&url, Some(&other.read_key)).expect("another site's key");
    assert_eq!(others.status, 403, "{}", others.text);

    let ok = http::get(&url, Some(&site.read_key)).expect("right key");
    assert_eq!(ok.status, 200, "{}", ok.text);
}

/// The demo pages are served with the tag rewritten to the test's worker and site.
#[test]
fn the_demo_site_includes_the_tag_as_a_site_owner_would() {
    let worker = Worker::shared().expect("worker");
    let site = Site {
        id: "tagcheck".into(),
        read_key: String::new(),
        write_key: String::new(),
    };
    let demo = demo_site(worker, &site);
    let page = http::get(&demo.url("/landing/demo.html"), None).expect("page");
    assert_eq!(page.status, 200);
    let tag = format!(
        "<script async src=\"{}/t.js\" data-site=\"tagcheck\"></script>",
        worker.base
    );
    assert!(page.text.contains(&tag), "{}", page.text);
    let loader = http::get(&worker.url("/t.js"), None).expect("t.js");
    assert_eq!(loader.status, 200, "the worker serves the tracker loader");
}
