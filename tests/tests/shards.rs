//! A site whose events live in shards (issue 14), against the real worker: SQLite-backed
//! Durable Objects under wrangler's local mode, reached through `POST /v1/collect`.
//!
//! Scenario (site with `shards: 2`, origin `https://shop.example`; H is a whole hour three
//! hours before now; every event is sent by the browser right after it is made):
//!
//! | visitor   | event | at       | url                                               | referrer               |
//! |-----------|-------|----------|---------------------------------------------------|------------------------|
//! | v1        | a1    | H+10m    | /?utm_source=google&utm_medium=cpc                | —                      |
//! | v1        | a2    | H+11m    | /pricing                                          | https://shop.example/  |
//! | v1        | b1    | H+2h10m  | /blog?utm_source=newsletter&utm_medium=email      | —                      |
//! | v1        | b1    | (again: a retry)                                                                    |
//! | v1        | c1    | H+30m    | /docs (late: sent after b1)                       | https://shop.example/  |
//! | v2        | d1    | H+2h30m  | /?utm_source=google&utm_medium=cpc                | —                      |
//! | v3, v4    | e1,f1 | H+1h     | /about                                            | —                      |
//!
//! By hand (a session ends after 30 minutes without an event; a new campaign starts one;
//! an internal referrer continues one):
//! - v1: a1, a2 one `google` session; b1, 1h59m after a2 and a new campaign, a
//!   `newsletter` session; the retry of b1 is a duplicate; c1, late, 19 minutes after a2
//!   with an internal referrer, joins the `google` session (3 page views);
//! - v2: one `google` session (1 page view); v3 and v4: one `(direct)` session each.
//!
//! So over [H, now's hour + 1h) by source: `google` 2 visitors, 2 sessions, 4 page views;
//! `newsletter` 1, 1, 1; `(direct)` 2, 2, 2; 4 distinct visitors; 7 events in the shards
//! (none in D1), spread over both shards.

use closeloop_core::time::format_rfc3339;
use closeloop_e2e::beacon::{admin, assert_error, get, new_site, send, HOUR};
use closeloop_e2e::now_ms;
use closeloop_e2e::openapi::conforms;
use closeloop_e2e::worker::{Site, Worker};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const ORIGIN: &str = "https://shop.example";
const MIN: i64 = 60_000;

/// A page view; its id is `id` made long enough for the wire schema (8 characters).
fn page(id: &str, path_query: &str, referrer: &str, at: i64) -> Value {
    json!({"id": format!("{id}-event"), "type": "pageview", "created_at": at,
           "url": format!("{ORIGIN}{path_query}"), "referrer": referrer})
}

/// Sends `events` of `visitor` as the browser does right after making the last of them
/// (so the device's clock agrees with the worker's: `sent_at` is now).
fn beacon(w: &Worker, site: &Site, visitor: &str, events: Vec<Value>) -> Value {
    let body = json!({"site_id": site.id, "visitor_id": visitor, "sent_at": now_ms(),
                      "events": events});
    let a = send(w, Some(ORIGIN), &body);
    assert_eq!(a.status, 200, "{}", a.text);
    a.json
}

fn statuses(answer: &Value) -> Vec<String> {
    answer["results"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|e| e["status"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The time `offset` after the hour `h`.
fn at(h: i64, offset: i64) -> i64 {
    h + offset
}

fn traffic(w: &Worker, site: &Site, from: i64, to: i64) -> BTreeMap<String, (u64, u64, u64)> {
    let path = format!(
        "reports/traffic?group_by=source&from={}&to={}",
        format_rfc3339(from),
        format_rfc3339(to)
    );
    let a = get(w, site, &path, Some(&site.read_key));
    assert_eq!(a.status, 200, "{}", a.text);
    conforms(&a, "TrafficReport");
    a.json["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap_or_default().to_owned(),
                (
                    r["visitors"].as_u64().unwrap_or(0),
                    r["sessions"].as_u64().unwrap_or(0),
                    r["pageviews"].as_u64().unwrap_or(0),
                ),
            )
        })
        .collect()
}

fn shard_status(w: &Worker, site: &Site) -> Vec<Value> {
    let a = admin(
        w,
        "GET",
        &format!("/v1/admin/sites/{}/shards", site.id),
        None,
    );
    assert_eq!(a.status, 200, "{}", a.text);
    conforms(&a, "SiteShards");
    a.json["status"].as_array().cloned().unwrap_or_default()
}

fn sum(status: &[Value], field: &str) -> i64 {
    status.iter().map(|s| s[field].as_i64().unwrap_or(0)).sum()
}

#[test]
fn a_sharded_site_builds_sessions_at_ingest_and_answers_the_hand_worked_traffic() {
    let w = Worker::shared().expect("worker");
    let (site, made) = new_site(w, ORIGIN, json!({"shards": 2}));
    assert_eq!(made["site"]["shards"], 2, "{made}");
    let now = now_ms();
    let h = now.div_euclid(HOUR) * HOUR - 3 * HOUR;
    let internal = format!("{ORIGIN}/");

    let first = beacon(
        w,
        &site,
        "visitor-one-0001",
        vec![
            page(
                "a1",
                "/?utm_source=google&utm_medium=cpc",
                "",
                at(h, 10 * MIN),
            ),
            page("a2", "/pricing", &internal, at(h, 11 * MIN)),
        ],
    );
    assert_eq!(statuses(&first), ["accepted", "accepted"], "{first}");
    let news = page(
        "b1",
        "/blog?utm_source=newsletter&utm_medium=email",
        "",
        at(h, 2 * HOUR + 10 * MIN),
    );
    let second = beacon(w, &site, "visitor-one-0001", vec![news.clone()]);
    assert_eq!(statuses(&second), ["accepted"], "{second}");
    // the retry is answered as a duplicate and stores nothing
    let retry = beacon(w, &site, "visitor-one-0001", vec![news]);
    assert_eq!(statuses(&retry), ["duplicate"], "{retry}");
    let late = beacon(
        w,
        &site,
        "visitor-one-0001",
        vec![page("c1", "/docs", &internal, at(h, 30 * MIN))],
    );
    assert_eq!(statuses(&late), ["accepted"], "{late}");
    let v2 = beacon(
        w,
        &site,
        "visitor-two-0002",
        vec![page(
            "d1",
            "/?utm_source=google&utm_medium=cpc",
            "",
            at(h, 2 * HOUR + 30 * MIN),
        )],
    );
    assert_eq!(statuses(&v2), ["accepted"], "{v2}");
    for (v, id) in [("visitor-three-03", "e1"), ("visitor-four-004", "f1")] {
        let a = beacon(w, &site, v, vec![page(id, "/about", "", at(h, HOUR))]);
        assert_eq!(statuses(&a), ["accepted"], "{a}");
    }

    // the figures worked out by hand above
    let to = now.div_euclid(HOUR) * HOUR + HOUR;
    let rows = traffic(w, &site, h, to);
    let expected: BTreeMap<String, (u64, u64, u64)> = [
        ("google", (2, 2, 4)),
        ("newsletter", (1, 1, 1)),
        ("(direct)", (2, 2, 2)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(rows, expected);
    let whole = get(
        w,
        &site,
        &format!(
            "reports/traffic?group_by=source&from={}&to={}",
            format_rfc3339(h),
            format_rfc3339(to)
        ),
        Some(&site.read_key),
    );
    assert_eq!(whole.json["visitors"], 4, "{}", whole.text);
    assert_eq!(whole.json["storage"], "shards", "{}", whole.text);

    // the events are in the shards, spread over both, and none in D1
    let status = shard_status(w, &site);
    assert_eq!(status.len(), 2);
    assert_eq!(sum(&status, "events"), 7, "{status:?}");
    assert_eq!(sum(&status, "visitors"), 4, "{status:?}");
    assert_eq!(sum(&status, "sessions"), 5, "{status:?}");
    assert!(
        status.iter().all(|s| s["events"].as_i64().unwrap_or(0) > 0),
        "one shard holds nothing: {status:?}"
    );
    let in_d1 = w
        .count(&format!(
            "SELECT count(*) FROM events WHERE site_id = '{}'",
            site.id
        ))
        .expect("count");
    assert_eq!(in_d1, 0);

    // a range not on whole hours cannot be answered from hourly rollups
    let odd = get(
        w,
        &site,
        &format!(
            "reports/traffic?from={}&to={}",
            format_rfc3339(h + MIN),
            format_rfc3339(to)
        ),
        Some(&site.read_key),
    );
    assert_eq!(odd.status, 400, "{}", odd.text);

    // the routes that read D1's events refuse rather than answer without the shards'
    for path in [
        "reports/sources",
        "reports/pages",
        "reports/timeseries",
        "leads",
    ] {
        let a = get(w, &site, path, Some(&site.read_key));
        assert_error(&a, 409, "not_on_shards");
    }
    // once events are stored, the number of shards is fixed; out of range is refused
    let path = format!("/v1/admin/sites/{}", site.id);
    assert_error(
        &admin(w, "PATCH", &path, Some(&json!({"shards": 3}))),
        409,
        "shards_fixed",
    );
    assert_error(
        &admin(w, "PATCH", &path, Some(&json!({"shards": 0}))),
        409,
        "shards_fixed",
    );
    assert_error(
        &admin(w, "PATCH", &path, Some(&json!({"shards": 65}))),
        400,
        "invalid_parameter",
    );
    let same = admin(w, "PATCH", &path, Some(&json!({"shards": 2})));
    assert_eq!(same.status, 200, "{}", same.text);
}

#[test]
fn the_traffic_report_is_attacked_and_answers_a_site_in_d1_too() {
    let w = Worker::shared().expect("worker");
    let (site, _) = new_site(w, ORIGIN, json!({}));
    let (other, _) = new_site(w, ORIGIN, json!({}));
    let now = now_ms();
    let h = now.div_euclid(HOUR) * HOUR - HOUR;
    let a = beacon(
        w,
        &site,
        "visitor-d1-00001",
        vec![page(
            "g1",
            "/?utm_source=google&utm_medium=cpc",
            "",
            at(h, 5 * MIN),
        )],
    );
    assert_eq!(statuses(&a), ["accepted"], "{a}");
    let to = now.div_euclid(HOUR) * HOUR + HOUR;
    let rows = traffic(w, &site, h, to);
    assert_eq!(
        rows,
        [("google".to_owned(), (1, 1, 1))].into_iter().collect(),
        "one page view from google: 1 visitor, 1 session, 1 page view"
    );
    let path = "reports/traffic";
    assert_error(&get(w, &site, path, None), 401, "missing_key");
    assert_error(
        &get(w, &site, path, Some(&other.read_key)),
        403,
        "forbidden",
    );
    assert_error(
        &get(w, &site, path, Some(&site.write_key)),
        403,
        "insufficient_scope",
    );
    assert_error(
        &get(
            w,
            &site,
            "reports/traffic?from=yesterday",
            Some(&site.read_key),
        ),
        400,
        "invalid_parameter",
    );
    // a site in D1 has no shards to show
    let a = admin(
        w,
        "GET",
        &format!("/v1/admin/sites/{}/shards", site.id),
        None,
    );
    assert_eq!((a.status, a.json["status"].clone()), (200, json!([])));
    assert_eq!(
        http_status(w, "GET", &format!("/v1/admin/sites/{}/shards", site.id)),
        401
    );
}

fn http_status(w: &Worker, method: &str, path: &str) -> u16 {
    closeloop_e2e::http::request(method, &w.url(path), &[], None)
        .expect("request")
        .status
}

/// The archive: a shard's alarm writes the events it accepted to R2 and takes them off its
/// queue (a dedicated worker whose shards set their alarm 500 ms after a batch).
#[test]
fn a_shards_alarm_archives_what_it_accepted() {
    let w = Worker::start_with_vars(&[("SHARD_ARCHIVE_DELAY_MS", "500")]).expect("worker");
    let (site, _) = new_site(&w, ORIGIN, json!({"shards": 1}));
    let now = now_ms();
    let a = beacon(
        &w,
        &site,
        "visitor-arch-001",
        vec![
            page("h1", "/", "", now - 2 * MIN),
            page("h2", "/pricing", &format!("{ORIGIN}/"), now - MIN),
        ],
    );
    assert_eq!(statuses(&a), ["accepted", "accepted"], "{a}");
    let mut last = Vec::new();
    for _ in 0..60 {
        last = shard_status(&w, &site);
        if sum(&last, "pending") == 0 && sum(&last, "objects") >= 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(sum(&last, "pending"), 0, "{last:?}\n{}", w.log_tail());
    assert_eq!(sum(&last, "objects"), 1, "{last:?}");
    assert_eq!(sum(&last, "events"), 2, "{last:?}");
}
