//! The edge's ingest contract (issue 5) against the real worker under wrangler local
//! mode: exactly-once storage (within a batch, across batches, concurrent requests),
//! per-event answers for mixed batches, every error path with its status and JSON error
//! and nothing stored, CORS, `request.cf` enrichment, user-agent and bot
//! classification, leads, the KV cache's invalidation, and that no IP address is kept.
//!
//! Each test creates its own site, so tests share one worker and run in parallel.

use closeloop_e2e::http::{self, Answer};
use closeloop_e2e::now_ms;
use closeloop_e2e::worker::{Site, Worker};
use serde_json::{json, Value};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const SAFARI_IOS: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const HEADLESS: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36";

/// A page view made `ago_ms` before the batch is sent.
fn pageview(id: &str, url: &str, ago_ms: i64, sent_at: i64) -> Value {
    json!({"id": id, "type": "pageview", "created_at": sent_at - ago_ms, "url": url, "referrer": "", "title": "T"})
}

/// A batch sent now by `visitor` to `site`.
fn batch(site: &str, visitor: &str, events: Vec<Value>, sent_at: i64) -> String {
    json!({"site_id": site, "visitor_id": visitor, "sent_at": sent_at, "events": events})
        .to_string()
}

/// A batch of page views with these ids on `origin`'s pages, sent now.
fn views(site: &str, visitor: &str, origin: &str, ids: &[&str]) -> String {
    let now = now_ms();
    let events = ids
        .iter()
        .enumerate()
        .map(|(i, id)| pageview(id, &format!("{origin}/p{i}"), 1_000 - i as i64, now))
        .collect();
    batch(site, visitor, events, now)
}

/// POSTs a batch as a browser on `origin` with `user_agent` would (text/plain).
fn send(worker: &Worker, origin: &str, user_agent: &str, body: &str) -> Answer {
    http::request(
        "POST",
        &worker.url("/v1/collect"),
        &[
            ("Content-Type", "text/plain;charset=UTF-8"),
            ("Origin", origin),
            ("User-Agent", user_agent),
        ],
        Some(body),
    )
    .expect("collect request")
}

fn statuses(a: &Answer) -> Vec<String> {
    a.json["results"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|e| e["status"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn stored(worker: &Worker, site: &Site) -> i64 {
    worker
        .count(&format!(
            "SELECT COUNT(*) FROM events WHERE site_id = '{}'",
            site.id
        ))
        .expect("count events")
}

fn stored_ids(worker: &Worker, site: &Site) -> Vec<String> {
    worker
        .query(&format!(
            "SELECT event_id FROM events WHERE site_id = '{}' ORDER BY event_id",
            site.id
        ))
        .expect("event ids")
        .iter()
        .filter_map(|r| r["event_id"].as_str().map(String::from))
        .collect()
}

/// Asserts a 4xx JSON error with this status and code.
fn assert_error(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    assert_eq!(a.error_code(), Some(code), "{}", a.text);
    assert!(
        a.json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "no message: {}",
        a.text
    );
    assert!(a
        .header("content-type")
        .is_some_and(|c| c.contains("application/json")));
}

/// Scenario: one batch carries event `a`, `b`, then `a` again (a tracker that queued
/// the same event twice). Expected: accepted, accepted, duplicate; 2 rows stored.
#[test]
fn duplicates_within_a_batch_are_stored_once() {
    let worker = Worker::shared().expect("worker");
    let origin = "https://dup-in.example";
    let site = worker.create_site(&[origin]).expect("site");
    let body = views(
        &site.id,
        "visitor-dupin-01",
        origin,
        &["evt-in-000a", "evt-in-000b", "evt-in-000a"],
    );
    let a = send(worker, origin, CHROME, &body);
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(statuses(&a), ["accepted", "accepted", "duplicate"]);
    assert_eq!(
        (a.json["accepted"].as_i64(), a.json["duplicates"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(stored_ids(worker, &site), ["evt-in-000a", "evt-in-000b"]);
}

/// Scenario: batch 1 has events `1`, `2`; batch 2 (a retry that grew) has `2`, `3`.
/// Expected: batch 2 answers duplicate, accepted; 3 rows stored.
#[test]
fn duplicates_across_batches_are_stored_once() {
    let worker = Worker::shared().expect("worker");
    let origin = "https://dup-across.example";
    let site = worker.create_site(&[origin]).expect("site");
    let first = send(
        worker,
        origin,
        CHROME,
        &views(
            &site.id,
            "visitor-across-1",
            origin,
            &["evt-ac-0001", "evt-ac-0002"],
        ),
    );
    assert_eq!(statuses(&first), ["accepted", "accepted"], "{}", first.text);
    let second = send(
        worker,
        origin,
        CHROME,
        &views(
            &site.id,
            "visitor-across-1",
            origin,
            &["evt-ac-0002", "evt-ac-0003"],
        ),
    );
    assert_eq!(
        statuses(&second),
        ["duplicate", "accepted"],
        "{}",
        second.text
    );
    assert_eq!(
        stored_ids(worker, &site),
        ["evt-ac-0001", "evt-ac-0002", "evt-ac-0003"]
    );
}

/// Scenario: eight requests carry the same batch of five events at the same moment
/// (sendBeacon plus fetch fallback, several tabs). Expected: every answer is 200, the
/// eight answers accept 5 events in all (each event accepted by exactly one answer, a
/// duplicate in the others), and 5 rows are stored.
#[test]
fn concurrent_requests_with_the_same_batch_store_each_event_once() {
    let worker = Worker::shared().expect("worker");
    let origin = "https://concurrent.example";
    let site = worker.create_site(&[origin]).expect("site");
    let ids = [
        "evt-cc-0001",
        "evt-cc-0002",
        "evt-cc-0003",
        "evt-cc-0004",
        "evt-cc-0005",
    ];
    let body = views(&site.id, "visitor-concur-1", origin, &ids);
    let answers: Vec<Answer> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| send(worker, origin, CHROME, &body)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    for a in &answers {
        assert_eq!(a.status, 200, "{}", a.text);
    }
    for (i, id) in ids.iter().enumerate() {
        let accepted = answers
            .iter()
            .filter(|a| statuses(a).get(i).map(String::as_str) == Some("accepted"))
            .count();
        assert_eq!(accepted, 1, "event {id} accepted by {accepted} answers");
    }
    let total: i64 = answers
        .iter()
        .filter_map(|a| a.json["accepted"].as_i64())
        .sum();
    assert_eq!(total, 5);
    assert_eq!(stored(worker, &site), 5);
}

/// Scenario: a batch of four: a good page view, one with an `ftp:` URL, a good one, and
/// one whose `created_at` is a string. Expected: 200 with accepted, rejected
/// (`invalid_url`), accepted, rejected (`invalid_event`); only the two good ones stored.
#[test]
fn a_mixed_batch_keeps_the_good_events_and_rejects_the_bad() {
    let worker = Worker::shared().expect("worker");
    let origin = "https://mixed.example";
    let site = worker.create_site(&[origin]).expect("site");
    let now = now_ms();
    let events = vec![
        pageview("evt-mx-0001", "https://mixed.example/", 900, now),
        pageview("evt-mx-0002", "ftp://mixed.example/file", 800, now),
        pageview("evt-mx-0003", "https://mixed.example/b", 700, now),
        json!({"id": "evt-mx-0004", "type": "pageview", "created_at": "yesterday", "url": "https://mixed.example/c"}),
    ];
    let a = send(
        worker,
        origin,
        CHROME,
        &batch(&site.id, "visitor-mixed-01", events, now),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        statuses(&a),
        ["accepted", "rejected", "accepted", "rejected"]
    );
    assert_eq!(
        a.json["results"][1]["error"]["code"], "invalid_url",
        "{}",
        a.text
    );
    assert_eq!(
        a.json["results"][3]["error"]["code"], "invalid_event",
        "{}",
        a.text
    );
    assert_eq!(
        (a.json["accepted"].as_i64(), a.json["rejected"].as_i64()),
        (Some(2), Some(2))
    );
    assert_eq!(stored_ids(worker, &site), ["evt-mx-0001", "evt-mx-0003"]);
}

/// Scenario: every way a whole batch is refused, each sent for this test's site from its
/// allowed origin (except the origin and site cases). Expected for each: its status,
/// its JSON error code, and no event stored.
#[test]
fn every_refused_batch_gets_its_json_error_and_stores_nothing() {
    let worker = Worker::shared().expect("worker");
    let origin = "https://errors.example";
    let site = worker.create_site(&[origin]).expect("site");
    let now = now_ms();
    let one = |id: &str| vec![pageview(id, "https://errors.example/", 500, now)];

    let malformed = send(worker, origin, CHROME, "{\"site_id\": \"x\", \"events\": [");
    assert_error(&malformed, 400, "malformed_json");

    let wrong_type = json!({"site_id": site.id, "visitor_id": "visitor-errors-1", "sent_at": "now", "events": one("evt-er-0001")});
    assert_error(
        &send(worker, origin, CHROME, &wrong_type.to_string()),
        400,
        "invalid_batch",
    );

    let not_a_list = json!({"site_id": site.id, "visitor_id": "visitor-errors-1", "sent_at": now, "events": {"id": "evt-er-0002"}});
    assert_error(
        &send(worker, origin, CHROME, &not_a_list.to_string()),
        400,
        "invalid_batch",
    );

    // 300 KB of padding in a title: over the 256 KB body limit
    let big_title = "x".repeat(300 * 1024);
    let oversized = json!({"site_id": site.id, "visitor_id": "visitor-errors-1", "sent_at": now,
        "events": [{"id": "evt-er-0003", "type": "pageview", "created_at": now, "url": "https://errors.example/", "title": big_title}]});
    assert_error(
        &send(worker, origin, CHROME, &oversized.to_string()),
        413,
        "body_too_large",
    );

    let many: Vec<Value> = (0..101)
        .map(|i| {
            pageview(
                &format!("evt-many-{i:04}"),
                "https://errors.example/",
                500,
                now,
            )
        })
        .collect();
    assert_error(
        &send(
            worker,
            origin,
            CHROME,
            &batch(&site.id, "visitor-errors-1", many, now),
        ),
        400,
        "too_many_events",
    );

    let unknown = batch(
        "no-such-site-edge",
        "visitor-errors-1",
        one("evt-er-0004"),
        now,
    );
    assert_error(&send(worker, origin, CHROME, &unknown), 404, "unknown_site");

    let foreign = batch(&site.id, "visitor-errors-1", one("evt-er-0005"), now);
    let refused = send(worker, "https://evil.example", CHROME, &foreign);
    assert_error(&refused, 403, "origin_not_allowed");
    // The refusal is readable by the page that sent it (nothing in it is secret), so
    // that a tracker on a page the site does not allow stops retrying (issue 12).
    assert_eq!(
        refused.header("access-control-allow-origin"),
        Some("https://evil.example")
    );

    // the device clock two days off: the batch's times cannot be trusted
    let skewed = batch(
        &site.id,
        "visitor-errors-1",
        vec![pageview(
            "evt-er-0006",
            "https://errors.example/",
            500,
            now - 2 * 86_400_000,
        )],
        now - 2 * 86_400_000,
    );
    assert_error(&send(worker, origin, CHROME, &skewed), 400, "clock_skew");

    assert_eq!(stored(worker, &site), 0);
    assert_eq!(
        worker
            .count("SELECT COUNT(*) FROM events WHERE site_id = 'no-such-site-edge'")
            .expect("count"),
        0
    );
}

/// Scenario: one batch sent now with an event made 8 days before sending (older than
/// the 7-day limit) and one claiming to be made 10 minutes after sending (beyond the
/// 1-minute allowance), beside a good one. Expected: rejected `event_too_old`, rejected
/// `event_in_future`, accepted; only the good one stored.
#[test]
fn ancient_and_future_events_are_rejected() {
    let worker = Worker::shared().expect("worker");
    let origin = "https://times.example";
    let site = worker.create_site(&[origin]).expect("site");
    let now = now_ms();
    let events = vec![
        pageview("evt-tm-0001", "https://times.example/", 8 * 86_400_000, now),
        pageview("evt-tm-0002", "https://times.example/", -10 * 60_000, now),
        pageview("evt-tm-0003", "https://times.example/", 1_000, now),
    ];
    let a = send(
        worker,
        origin,
        CHROME,
        &batch(&site.id, "visitor-times-01", events, now),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(statuses(&a), ["rejected", "rejected", "accepted"]);
    assert_eq!(a.json["results"][0]["error"]["code"], "event_too_old");
    assert_eq!(a.json["results"][1]["error"]["code"], "event_in_future");
    assert_eq!(stored_ids(worker, &site), ["evt-tm-0003"]);
}

/// Scenario: the event was made 2 s before sending, by a device whose clock is 1 hour
/// behind the edge's. Expected: `derived_ts` = received_at − 2 s, so within a few
/// seconds of the edge's now, while `created_at` and `sent_at` keep the device's times.
#[test]
fn derived_time_corrects_the_device_clock() {
    let worker = Worker::shared().expect("worker");
    let origin = "https://skew.example";
    let site = worker.create_site(&[origin]).expect("site");
    let device_now = now_ms() - 3_600_000;
    let body = batch(
        &site.id,
        "visitor-skew-001",
        vec![pageview(
            "evt-sk-0001",
            "https://skew.example/",
            2_000,
            device_now,
        )],
        device_now,
    );
    let before = now_ms();
    let a = send(worker, origin, CHROME, &body);
    let after = now_ms();
    assert_eq!(statuses(&a), ["accepted"], "{}", a.text);
    let rows = worker
        .query(&format!(
            "SELECT created_at, sent_at, received_at, derived_ts FROM events WHERE site_id = '{}'",
            site.id
        ))
        .expect("row");
    let r = &rows[0];
    assert_eq!(r["created_at"].as_i64(), Some(device_now - 2_000));
    assert_eq!(r["sent_at"].as_i64(), Some(device_now));
    let received = r["received_at"].as_i64().expect("received_at");
    assert!(
        (before..=after).contains(&received),
        "received_at {received} outside {before}..{after}"
    );
    assert_eq!(r["derived_ts"].as_i64(), Some(received - 2_000));
}

/// Scenario: a browser preflights `POST /v1/collect` (a `fetch` with a JSON body) from
/// an allowed origin, then from another. Expected: 204 with the origin echoed and POST
/// allowed for the first; no `Access-Control-Allow-Origin` for the second. The answer
/// to the POST itself carries the echo too.
#[test]
fn cors_preflight_and_answer_headers() {
    let worker = Worker::shared().expect("worker");
    let origin = "https://cors.example";
    let site = worker.create_site(&[origin]).expect("site");
    let preflight = |o: &str| {
        http::request(
            "OPTIONS",
            &worker.url("/v1/collect"),
            &[
                ("Origin", o),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type"),
            ],
            None,
        )
        .expect("preflight")
    };
    let ok = preflight(origin);
    assert_eq!(ok.status, 204);
    assert_eq!(ok.header("access-control-allow-origin"), Some(origin));
    assert!(ok
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("POST")));
    assert!(ok
        .header("access-control-allow-headers")
        .is_some_and(|h| h.to_lowercase().contains("content-type")));
    let other = preflight("https://not-allowed.example");
    assert_eq!(other.header("access-control-allow-origin"), None);

    let post = http::request(
        "POST",
        &worker.url("/v1/collect"),
        &[
            ("Content-Type", "application/json"),
            ("Origin", origin),
            ("User-Agent", CHROME),
        ],
        Some(&views(
            &site.id,
            "visitor-cors-001",
            origin,
            &["evt-co-0001"],
        )),
    )
    .expect("post");
    assert_eq!(post.status, 200, "{}", post.text);
    assert_eq!(post.header("access-control-allow-origin"), Some(origin));
}

/// Scenario: a batch through wrangler's local mode, whose `request.cf` is miniflare's
/// fixed placeholder (CLOUDFLARE_CF_FETCH_ENABLED=false): Austin, Texas (TX), US, NA,
/// 78701, America/Chicago, 30.27130 / -97.74260, AS395747, colo DFW, not in the EU.
/// Expected: exactly those values in the stored event.
#[test]
fn request_cf_geo_is_stored() {
    let worker = Worker::shared().expect("worker");
    let origin = "https://geo.example";
    let site = worker.create_site(&[origin]).expect("site");
    let a = send(
        worker,
        origin,
        CHROME,
        &views(&site.id, "visitor-geo-0001", origin, &["evt-geo-001"]),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let rows = worker
        .query(&format!(
            "SELECT country, region, region_code, city, continent, postal_code, timezone, latitude, longitude, asn, colo, is_eu \
             FROM events WHERE site_id = '{}'",
            site.id
        ))
        .expect("geo");
    assert_eq!(
        rows,
        vec![
            json!({"country": "US", "region": "Texas", "region_code": "TX", "city": "Austin", "continent": "NA",
            "postal_code": "78701", "timezone": "America/Chicago", "latitude": 30.2713, "longitude": -97.7426,
            "asn": 395747, "colo": "DFW", "is_eu": 0})
        ]
    );
}

/// Scenario: five visitors send one page view each with the user agents of Chrome on
/// Windows, Safari on an iPhone, Firefox on Linux, Googlebot and headless Chrome.
/// Expected: desktop/Chrome/Windows 10, mobile/Safari/iPhone, desktop/Firefox/Linux,
/// and the last two flagged as bots; the report leaves the bots out unless
/// `include_bots=true` (3 visitors, then 5).
#[test]
fn user_agents_are_classified_and_bots_left_out_of_reports() {
    let worker = Worker::shared().expect("worker");
    let origin = "https://agents.example";
    let site = worker.create_site(&[origin]).expect("site");
    let cases = [
        (
            "evt-ua-chrome",
            CHROME,
            "desktop",
            Some("Chrome"),
            Some("Windows 10"),
            0,
        ),
        (
            "evt-ua-safari",
            SAFARI_IOS,
            "mobile",
            Some("Safari"),
            Some("iPhone"),
            0,
        ),
        (
            "evt-ua-firefx",
            FIREFOX,
            "desktop",
            Some("Firefox"),
            Some("Linux"),
            0,
        ),
        ("evt-ua-gbot01", GOOGLEBOT, "bot", None, None, 1),
        ("evt-ua-headls", HEADLESS, "bot", None, None, 1),
    ];
    for (i, (id, ua, ..)) in cases.iter().enumerate() {
        let a = send(
            worker,
            origin,
            ua,
            &views(&site.id, &format!("visitor-agent-{i:02}"), origin, &[id]),
        );
        assert_eq!(statuses(&a), ["accepted"], "{}", a.text);
    }
    for (id, _, device, browser, os, bot) in cases {
        let rows = worker
            .query(&format!(
                "SELECT device_type, browser, os, is_bot FROM events WHERE site_id = '{}' AND event_id = '{id}'",
                site.id
            ))
            .expect("row");
        let r = &rows[0];
        assert_eq!(r["device_type"], device, "{id}: {r}");
        assert_eq!(r["is_bot"], bot, "{id}: {r}");
        if let Some(b) = browser {
            assert_eq!(r["browser"], b, "{id}: {r}");
        }
        if let Some(o) = os {
            assert_eq!(r["os"], o, "{id}: {r}");
        }
    }
    let report = |extra: &str| {
        let url = worker.url(&format!(
            "/v1/sites/{}/reports/sources?group_by=channel{extra}",
            site.id
        ));
        http::get(&url, Some(&site.read_key)).expect("report")
    };
    let humans = report("");
    assert_eq!(humans.status, 200, "{}", humans.text);
    assert_eq!(humans.json["totals"]["visitors"], 3, "{}", humans.text);
    let all = report("&include_bots=true");
    assert_eq!(all.json["totals"]["visitors"], 5, "{}", all.text);
}

/// Scenario: a request that says it comes from 203.0.113.77 (in `X-Forwarded-For`,
/// `CF-Connecting-IP` and `X-Real-IP`) sends a page view and a form submit with an
/// email. Expected: neither that address nor the loopback address the request really
/// came from appears anywhere in this site's rows, nor the first anywhere in the
/// database file.
#[test]
fn the_ip_address_is_stored_nowhere() {
    let worker = Worker::shared().expect("worker");
    let origin = "https://privacy.example";
    let site = worker.create_site(&[origin]).expect("site");
    let now = now_ms();
    let events = vec![
        pageview("evt-ip-0001", "https://privacy.example/", 2_000, now),
        json!({"id": "evt-ip-0002", "type": "form_submit", "created_at": now - 1_000, "url": "https://privacy.example/demo",
               "form": {"id": "lead", "fields": ["email"], "values": {"email": "ip.check@example.com"}}}),
    ];
    let ip = "203.0.113.77";
    let a = http::request(
        "POST",
        &worker.url("/v1/collect"),
        &[
            ("Content-Type", "text/plain"),
            ("Origin", origin),
            ("User-Agent", CHROME),
            ("X-Forwarded-For", ip),
            ("CF-Connecting-IP", ip),
            ("X-Real-IP", ip),
        ],
        Some(&batch(&site.id, "visitor-ip-00001", events, now)),
    )
    .expect("collect");
    assert_eq!(statuses(&a), ["accepted", "accepted"], "{}", a.text);
    worker.flush_sessions(Some(&site.id)).expect("flush");
    for table in ["events", "sessions", "visitors", "leads", "lead_visitors"] {
        let rows = worker
            .query(&format!(
                "SELECT * FROM {table} WHERE site_id = '{}'",
                site.id
            ))
            .expect("rows");
        assert!(!rows.is_empty(), "{table} has no row for the site");
        let text = serde_json::to_string(&rows).expect("json");
        assert!(!text.contains(ip), "{table} holds the IP: {text}");
        assert!(
            !text.contains("127.0.0.1"),
            "{table} holds the loopback IP: {text}"
        );
    }
    let db = worker.db_path().expect("db path");
    for file in [db.clone(), db.with_extension("sqlite-wal")] {
        if let Ok(bytes) = std::fs::read(&file) {
            assert!(
                !bytes.windows(ip.len()).any(|w| w == ip.as_bytes()),
                "{} holds the IP",
                file.display()
            );
        }
    }
}

/// Scenario: visitor A submits the demo form with `Ann@Example.com ` (a form submit),
/// visitor B (another device) later identifies as `ann@example.com`, visitor C submits
/// a form with no email. Expected: one lead, email normalised to `ann@example.com`,
/// with the name from the form, linked to A and B; C is not a lead.
#[test]
fn form_submits_and_identify_make_one_lead_across_devices() {
    let worker = Worker::shared().expect("worker");
    let origin = "https://leads.example";
    let site = worker.create_site(&[origin]).expect("site");
    let now = now_ms();
    let form = |id: &str, values: Value| {
        json!({"id": id, "type": "form_submit", "created_at": now - 1_000, "url": "https://leads.example/demo",
               "form": {"id": "lead", "fields": ["email", "name", "message"], "values": values}})
    };
    let a = send(
        worker,
        origin,
        CHROME,
        &batch(
            &site.id,
            "visitor-lead-aaa",
            vec![form(
                "evt-ld-0001",
                json!({"email": "Ann@Example.com ", "name": "Ann Lee"}),
            )],
            now,
        ),
    );
    assert_eq!(statuses(&a), ["accepted"], "{}", a.text);
    let identify = json!({"id": "evt-ld-0002", "type": "identify", "created_at": now - 500, "url": "https://leads.example/app", "email": "ann@example.com"});
    let b = send(
        worker,
        origin,
        SAFARI_IOS,
        &batch(&site.id, "visitor-lead-bbb", vec![identify], now),
    );
    assert_eq!(statuses(&b), ["accepted"], "{}", b.text);
    let c = send(
        worker,
        origin,
        FIREFOX,
        &batch(
            &site.id,
            "visitor-lead-ccc",
            vec![form("evt-ld-0003", json!({"name": "Nobody"}))],
            now,
        ),
    );
    assert_eq!(statuses(&c), ["accepted"], "{}", c.text);

    let leads = worker
        .query(&format!(
            "SELECT lead_id, email, name FROM leads WHERE site_id = '{}'",
            site.id
        ))
        .expect("leads");
    assert_eq!(leads.len(), 1, "{leads:?}");
    assert_eq!(leads[0]["email"], "ann@example.com");
    assert_eq!(leads[0]["name"], "Ann Lee");
    let linked = worker
        .query(&format!(
            "SELECT visitor_id, lead_id FROM lead_visitors WHERE site_id = '{}' ORDER BY visitor_id",
            site.id
        ))
        .expect("links");
    let visitors: Vec<&str> = linked
        .iter()
        .filter_map(|r| r["visitor_id"].as_str())
        .collect();
    assert_eq!(visitors, ["visitor-lead-aaa", "visitor-lead-bbb"]);
    assert!(linked.iter().all(|r| r["lead_id"] == leads[0]["lead_id"]));
}

/// Scenario: a site allows only origin A. A batch from origin B is refused (and the
/// site's configuration is now cached in KV); the admin adds B; the same batch from B
/// is then accepted. Expected: 403, then 200 — the admin change invalidated the cache.
#[test]
fn changing_origins_invalidates_the_cached_site() {
    let worker = Worker::shared().expect("worker");
    let (a_origin, b_origin) = ("https://first.example", "https://second.example");
    let site = worker.create_site(&[a_origin]).expect("site");
    let body = views(&site.id, "visitor-cache-01", b_origin, &["evt-kv-0001"]);
    assert_error(
        &send(worker, b_origin, CHROME, &body),
        403,
        "origin_not_allowed",
    );
    let auth = format!("Bearer {}", worker.admin_token);
    let put = http::request(
        "PUT",
        &worker.url(&format!("/v1/admin/sites/{}/origins", site.id)),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(&json!({"allowed_origins": [a_origin, b_origin]}).to_string()),
    )
    .expect("put origins");
    assert_eq!(put.status, 200, "{}", put.text);
    let again = send(worker, b_origin, CHROME, &body);
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(statuses(&again), ["accepted"]);
}

/// Scenario: the admin endpoints without the token, with a wrong one, and creating a
/// site whose id is taken. Expected: 401, 403, 409, each a JSON error.
#[test]
fn admin_endpoints_need_the_token() {
    let worker = Worker::shared().expect("worker");
    let site = worker
        .create_site(&["https://admin.example"])
        .expect("site");
    let url = worker.url("/v1/admin/sites");
    assert_error(
        &http::get(&url, None).expect("no token"),
        401,
        "missing_key",
    );
    assert_error(
        &http::get(&url, Some("not-the-token")).expect("wrong token"),
        403,
        "forbidden",
    );
    let auth = format!("Bearer {}", worker.admin_token);
    let again = http::post_json(
        &url,
        &json!({"id": site.id, "allowed_origins": []}),
        &[("Authorization", &auth)],
    )
    .expect("duplicate site");
    assert_error(&again, 409, "site_exists");
    let list = http::get(&url, Some(&worker.admin_token)).expect("list");
    assert_eq!(list.status, 200, "{}", list.text);
    assert!(list.json["sites"]
        .as_array()
        .is_some_and(|s| s.iter().any(|x| x["id"] == site.id.as_str())));
}

/// Scenario: one visitor lands from the `launch` newsletter and views a second page 40 s
/// later; a second visitor comes from Google search. Expected, grouped by campaign:
/// Email/newsletter/email/launch with 1 visitor, 1 session, 2 page views; Organic
/// Search/google with 1 visitor, 1 session, 1 page view; totals 2, 2, 3.
#[test]
fn the_sources_report_counts_sessions_by_touch() {
    let worker = Worker::shared().expect("worker");
    let origin = "https://report.example";
    let site = worker.create_site(&[origin]).expect("site");
    let now = now_ms();
    let newsletter = vec![
        pageview(
            "evt-rp-0001",
            "https://report.example/?utm_source=newsletter&utm_medium=email&utm_campaign=launch",
            41_000,
            now,
        ),
        json!({"id": "evt-rp-0002", "type": "pageview", "created_at": now - 1_000, "url": "https://report.example/pricing",
               "referrer": "https://report.example/", "title": "Pricing"}),
    ];
    let a = send(
        worker,
        origin,
        CHROME,
        &batch(&site.id, "visitor-report-1", newsletter.clone(), now),
    );
    assert_eq!(statuses(&a), ["accepted", "accepted"], "{}", a.text);
    assert_eq!(a.json["touch"]["channel"], "Email", "{}", a.text);
    // a retry of the same batch stores nothing new and still tells the visitor's touch
    let retry = send(
        worker,
        origin,
        CHROME,
        &batch(&site.id, "visitor-report-1", newsletter, now),
    );
    assert_eq!(
        statuses(&retry),
        ["duplicate", "duplicate"],
        "{}",
        retry.text
    );
    assert_eq!(retry.json["touch"]["campaign"], "launch", "{}", retry.text);
    let search = vec![
        json!({"id": "evt-rp-0003", "type": "pageview", "created_at": now - 1_000,
        "url": "https://report.example/blog", "referrer": "https://www.google.com/"}),
    ];
    let b = send(
        worker,
        origin,
        FIREFOX,
        &batch(&site.id, "visitor-report-2", search, now),
    );
    assert_eq!(statuses(&b), ["accepted"], "{}", b.text);

    let url = worker.url(&format!(
        "/v1/sites/{}/reports/sources?group_by=campaign",
        site.id
    ));
    let r = http::get(&url, Some(&site.read_key)).expect("report");
    assert_eq!(r.status, 200, "{}", r.text);
    let rows = r.json["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{}", r.text);
    let email = rows
        .iter()
        .find(|x| x["channel"] == "Email")
        .expect("email row");
    assert_eq!(
        (&email["source"], &email["medium"], &email["campaign"]),
        (&json!("newsletter"), &json!("email"), &json!("launch"))
    );
    assert_eq!(
        (&email["visitors"], &email["sessions"], &email["pageviews"]),
        (&json!(1), &json!(1), &json!(2))
    );
    let organic = rows
        .iter()
        .find(|x| x["channel"] == "Organic Search")
        .expect("organic row");
    assert_eq!(
        (
            &organic["visitors"],
            &organic["sessions"],
            &organic["pageviews"]
        ),
        (&json!(1), &json!(1), &json!(1))
    );
    assert_eq!(
        (
            &r.json["totals"]["visitors"],
            &r.json["totals"]["sessions"],
            &r.json["totals"]["pageviews"]
        ),
        (&json!(2), &json!(2), &json!(3))
    );
    // times in the answer are RFC 3339 (`from` at the top level or under `query`)
    let from = r.json.get("from").or_else(|| r.json.pointer("/query/from"));
    assert!(
        from.and_then(Value::as_str)
            .is_some_and(|t| t.ends_with('Z')),
        "{}",
        r.text
    );
}

/// Scenario: a visitor lands from the `spring` newsletter and reads /pricing (batch 1,
/// two page views); two minutes later it reads /docs from a link on the site (batch 2).
/// Expected: batch 1's answer tells Email/spring (it starts a session), batch 2's tells
/// no touch (it goes on with that session). Until something flushes, the visitor waits
/// on `session_queue` and has no session; a report flushes first and counts 1 visitor,
/// 1 session, 3 page views on the Email row; then the queue is empty and all 3 events
/// are in the one session `s_evt-dq-0001`.
#[test]
fn sessions_are_built_after_the_answer_and_before_any_report() {
    let worker = Worker::shared().expect("worker");
    let origin = "https://deferred.example";
    let site = worker.create_site(&[origin]).expect("site");
    let now = now_ms();
    let landing = vec![
        pageview(
            "evt-dq-0001",
            "https://deferred.example/?utm_source=newsletter&utm_medium=email&utm_campaign=spring",
            180_000,
            now,
        ),
        json!({"id": "evt-dq-0002", "type": "pageview", "created_at": now - 150_000,
               "url": "https://deferred.example/pricing", "referrer": "https://deferred.example/"}),
    ];
    let a = send(
        worker,
        origin,
        CHROME,
        &batch(&site.id, "visitor-dq-1", landing, now),
    );
    assert_eq!(statuses(&a), ["accepted", "accepted"], "{}", a.text);
    assert_eq!(a.json["touch"]["channel"], "Email", "{}", a.text);
    assert_eq!(a.json["touch"]["campaign"], "spring", "{}", a.text);
    let more = vec![
        json!({"id": "evt-dq-0003", "type": "pageview", "created_at": now - 30_000,
        "url": "https://deferred.example/docs", "referrer": "https://deferred.example/pricing"}),
    ];
    let b = send(
        worker,
        origin,
        CHROME,
        &batch(&site.id, "visitor-dq-1", more, now),
    );
    assert_eq!(statuses(&b), ["accepted"], "{}", b.text);
    assert!(b.json.get("touch").is_none_or(Value::is_null), "{}", b.text);

    let count = |sql: &str| {
        worker
            .count(&sql.replace("{site}", &site.id))
            .expect("count")
    };
    assert_eq!(
        count("SELECT count(*) FROM session_queue WHERE site_id = '{site}'"),
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM sessions WHERE site_id = '{site}'"),
        0
    );

    let url = worker.url(&format!(
        "/v1/sites/{}/reports/sources?group_by=channel",
        site.id
    ));
    let r = http::get(&url, Some(&site.read_key)).expect("report");
    assert_eq!(r.status, 200, "{}", r.text);
    let rows = r.json["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{}", r.text);
    assert_eq!(rows[0]["channel"], "Email", "{}", r.text);
    assert_eq!(
        (
            &rows[0]["visitors"],
            &rows[0]["sessions"],
            &rows[0]["pageviews"]
        ),
        (&json!(1), &json!(1), &json!(3)),
        "{}",
        r.text
    );
    assert_eq!(
        count("SELECT count(*) FROM session_queue WHERE site_id = '{site}'"),
        0
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM events WHERE site_id = '{site}' AND session_id = 's_evt-dq-0001'"
        ),
        3
    );
    // nothing left to do: a flush of the site rebuilds no one
    let f = worker.flush_sessions(Some(&site.id)).expect("flush");
    assert_eq!(f["visitors"], 0, "{f}");
}

/// Creates a site whose visitors may send at most `quota` events a day.
fn site_with_quota(worker: &Worker, origin: &str, quota: i64) -> Site {
    let id = format!("quota{}x{}", std::process::id(), now_ms() % 1_000_000_000);
    let auth = format!("Bearer {}", worker.admin_token);
    let a = http::post_json(
        &worker.url("/v1/admin/sites"),
        &json!({"id": id, "allowed_origins": [origin], "max_events_per_visitor_day": quota}),
        &[("Authorization", &auth)],
    )
    .expect("create site");
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(
        a.json["site"]["max_events_per_visitor_day"], quota,
        "{}",
        a.text
    );
    Site {
        id,
        read_key: a.json["read_key"].as_str().unwrap_or_default().to_string(),
        write_key: a.json["write_key"].as_str().unwrap_or_default().to_string(),
    }
}

/// Scenario: a site allows 3 events per visitor per day. Visitor X sends 2 events, then
/// 2 more; visitor Y sends 1. Expected: X's second batch answers accepted, rejected
/// (`visitor_quota_exceeded`); Y's event is accepted; 4 events stored (3 of X, 1 of Y).
#[test]
fn a_visitor_over_its_daily_quota_is_refused() {
    let worker = Worker::shared().expect("worker");
    let origin = "https://quota.example";
    let site = site_with_quota(worker, origin, 3);
    let first = send(
        worker,
        origin,
        CHROME,
        &views(
            &site.id,
            "visitor-quota-xx",
            origin,
            &["evt-qt-0001", "evt-qt-0002"],
        ),
    );
    assert_eq!(statuses(&first), ["accepted", "accepted"], "{}", first.text);
    let second = send(
        worker,
        origin,
        CHROME,
        &views(
            &site.id,
            "visitor-quota-xx",
            origin,
            &["evt-qt-0003", "evt-qt-0004"],
        ),
    );
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(
        statuses(&second),
        ["accepted", "rejected"],
        "{}",
        second.text
    );
    assert_eq!(
        second.json["results"][1]["error"]["code"],
        "visitor_quota_exceeded"
    );
    assert_eq!(
        (
            second.json["accepted"].as_i64(),
            second.json["rejected"].as_i64()
        ),
        (Some(1), Some(1))
    );
    let other = send(
        worker,
        origin,
        CHROME,
        &views(&site.id, "visitor-quota-yy", origin, &["evt-qt-0005"]),
    );
    assert_eq!(statuses(&other), ["accepted"], "{}", other.text);
    assert_eq!(
        stored_ids(worker, &site),
        ["evt-qt-0001", "evt-qt-0002", "evt-qt-0003", "evt-qt-0005"]
    );
}

/// Scenario: one visitor fires 45 one-event requests back to back (a script gone wild);
/// the per-visitor limit is 30 requests per 10 s. Expected: some answers are 429
/// `rate_limited` with a `Retry-After`, and exactly the events of the 200 answers are
/// stored.
#[test]
fn too_many_requests_from_one_visitor_get_429() {
    let worker = Worker::shared().expect("worker");
    let origin = "https://flood.example";
    let site = worker.create_site(&[origin]).expect("site");
    let mut ok = 0;
    let mut limited = None;
    for i in 0..45 {
        let a = send(
            worker,
            origin,
            CHROME,
            &views(
                &site.id,
                "visitor-flood-01",
                origin,
                &[&format!("evt-fl-{i:04}")],
            ),
        );
        match a.status {
            200 => ok += 1,
            429 => limited = Some(a),
            other => panic!("unexpected {other}: {}", a.text),
        }
    }
    let limited = limited.expect("no 429 after 45 requests");
    assert_error(&limited, 429, "rate_limited");
    assert!(limited
        .header("retry-after")
        .is_some_and(|s| s.parse::<u32>().is_ok_and(|n| n > 0)));
    assert!(ok >= 30, "only {ok} accepted before the limit");
    assert_eq!(stored(worker, &site), ok);
}
