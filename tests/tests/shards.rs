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

use closeloop_core::time::{format_date, format_rfc3339};
use closeloop_e2e::beacon::{admin, assert_error, get, new_site, send, DAY, HOUR};
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

    // the routes that read every event or session in D1 refuse rather than answer
    // without the shards'
    for path in ["reports/bots", "reports/facets"] {
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

/// Leads across shards: the directory (the site's D1 rows) learns each linked visitor's
/// sessions, and the sources report credits them.
///
/// Scenario (site with `shards: 2`; H a whole hour three hours before now):
///
/// | visitor | at       | event                                             |
/// |---------|----------|---------------------------------------------------|
/// | v1      | H+10m    | page view /?utm_source=google&utm_medium=cpc      |
/// | v1      | H+12m    | identify ann@example.com                          |
/// | v2      | H+1h     | page view /?utm_source=newsletter&utm_medium=email |
/// | v3      | H+20m    | page view /about (direct)                         |
/// | v3      | H+2h     | page view /?utm_source=newsletter&utm_medium=email |
/// | v3      | H+2h05m  | identify bob@example.com                          |
///
/// and ann's deal: 100.00 USD won at H+2h30m.
///
/// By hand, last touch (default 90-day lookback): ann's lead (H+12m) and her deal
/// (H+2h30m) have one touch, her `google` session; bob's lead (H+2h05m) has two, the
/// direct session and the `newsletter` one, the last of which is credited. So by source:
/// `google` 1 visitor, 1 session, 1 page view, 1 lead, 1 customer, 10 000 revenue;
/// `newsletter` 2 visitors (v2, v3), 2 sessions, 2 page views, 1 lead; `(direct)` 1, 1, 1
/// and nothing credited. D1 holds the 2 leads and only their visitors' 3 sessions (v2 is no
/// lead's). A late page view of bob's then joins his direct session (2 page views), in the
/// directory too.
#[test]
fn leads_across_shards_are_credited_by_the_sources_report() {
    let w = Worker::shared().expect("worker");
    let (site, _) = new_site(w, ORIGIN, json!({"shards": 2}));
    let now = now_ms();
    let h = now.div_euclid(HOUR) * HOUR - 3 * HOUR;
    let identify = |id: &str, email: &str, t: i64| {
        json!({"id": format!("{id}-event"), "type": "identify", "created_at": t,
               "url": format!("{ORIGIN}/signup"), "email": email})
    };
    let sent = [
        beacon(
            w,
            &site,
            "visitor-ann-0001",
            vec![
                page(
                    "p1",
                    "/?utm_source=google&utm_medium=cpc",
                    "",
                    at(h, 10 * MIN),
                ),
                identify("i1", "ann@example.com", at(h, 12 * MIN)),
            ],
        ),
        beacon(
            w,
            &site,
            "visitor-anon-002",
            vec![page(
                "p2",
                "/?utm_source=newsletter&utm_medium=email",
                "",
                at(h, HOUR),
            )],
        ),
        beacon(
            w,
            &site,
            "visitor-bob-0003",
            vec![page("p3", "/about", "", at(h, 20 * MIN))],
        ),
        beacon(
            w,
            &site,
            "visitor-bob-0003",
            vec![
                page(
                    "p4",
                    "/?utm_source=newsletter&utm_medium=email",
                    "",
                    at(h, 2 * HOUR),
                ),
                identify("i2", "bob@example.com", at(h, 2 * HOUR + 5 * MIN)),
            ],
        ),
    ];
    for a in &sent {
        assert!(statuses(a).iter().all(|s| s == "accepted"), "{a}");
    }
    let deal = json!({"deal_id": "deal-ann-1", "email": "ann@example.com", "revenue": 100.0,
                      "currency": "USD",
                      "closed_at": format_rfc3339(h + 2 * HOUR + 30 * MIN)});
    let a = closeloop_e2e::http::post_json(
        &w.url(&format!("/v1/sites/{}/conversions", site.id)),
        &deal,
        &[("Authorization", &format!("Bearer {}", site.write_key))],
    )
    .expect("deal");
    assert_eq!(a.status, 201, "{}", a.text);

    let to = now.div_euclid(HOUR) * HOUR + HOUR;
    let r = get(
        w,
        &site,
        &format!(
            "reports/sources?group_by=source&model=last_touch&from={}&to={}",
            format_rfc3339(h),
            format_rfc3339(to)
        ),
        Some(&site.read_key),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let rows: BTreeMap<String, (u64, u64, u64, f64, f64, f64)> = r.json["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|x| {
            (
                x["key"].as_str().unwrap_or_default().to_owned(),
                (
                    x["visitors"].as_u64().unwrap_or(0),
                    x["sessions"].as_u64().unwrap_or(0),
                    x["pageviews"].as_u64().unwrap_or(0),
                    x["leads"].as_f64().unwrap_or(-1.0),
                    x["customers"].as_f64().unwrap_or(-1.0),
                    x["revenue"].as_f64().unwrap_or(-1.0),
                ),
            )
        })
        .collect();
    let expected: BTreeMap<String, (u64, u64, u64, f64, f64, f64)> = [
        ("google", (1, 1, 1, 1.0, 1.0, 10_000.0)),
        ("newsletter", (2, 2, 2, 1.0, 0.0, 0.0)),
        ("(direct)", (1, 1, 1, 0.0, 0.0, 0.0)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(rows, expected, "{}", r.text);

    // the directory: both leads, and only their visitors' sessions, in D1
    let count = |sql: String| w.count(&sql).expect("count");
    assert_eq!(
        count(format!(
            "SELECT count(*) FROM leads WHERE site_id = '{}'",
            site.id
        )),
        2
    );
    assert_eq!(
        count(format!(
            "SELECT count(*) FROM sessions WHERE site_id = '{}'",
            site.id
        )),
        3
    );
    let leads = get(w, &site, "leads", Some(&site.read_key));
    assert_eq!(leads.status, 200, "{}", leads.text);
    assert_eq!(
        leads.json["leads"].as_array().map(Vec::len),
        Some(2),
        "{}",
        leads.text
    );
    // every linked visitor is synced: none dirty in the shards
    assert_eq!(sum(&shard_status(w, &site), "dirty_visitors"), 0);

    // a late page view of bob's (H+25m, internal referrer: 5 minutes after /about) joins
    // his direct session, which now has 2 page views: the directory hears of the change
    let late = beacon(
        w,
        &site,
        "visitor-bob-0003",
        vec![page(
            "p5",
            "/team",
            &format!("{ORIGIN}/about"),
            at(h, 25 * MIN),
        )],
    );
    assert_eq!(statuses(&late), ["accepted"], "{late}");
    let bob = w
        .query(&format!(
            "SELECT source, pageviews FROM sessions WHERE site_id = '{}' \
             AND visitor_id = 'visitor-bob-0003' ORDER BY started_at",
            site.id
        ))
        .expect("bob's sessions");
    assert_eq!(
        bob,
        vec![
            json!({"source": "(direct)", "pageviews": 2}),
            json!({"source": "newsletter", "pageviews": 1})
        ]
    );
    assert_eq!(sum(&shard_status(w, &site), "dirty_visitors"), 0);

    // the timeseries by day over the same range: its buckets add up to the 4 sessions, the
    // 5 page views (p5 included), the 2 leads, 1 customer and 10 000 of revenue (the range
    // spans one or two UTC days, depending on the time of the run)
    let ts = get(
        w,
        &site,
        &format!(
            "reports/timeseries?model=last_touch&from={}&to={}",
            format_rfc3339(h),
            format_rfc3339(to)
        ),
        Some(&site.read_key),
    );
    assert_eq!(ts.status, 200, "{}", ts.text);
    conforms(&ts, "TimeseriesReport");
    let points = ts.json["points"].as_array().expect("points");
    let total = |f: &str| -> f64 {
        points
            .iter()
            .map(|p| p["figures"][f].as_f64().unwrap_or(0.0))
            .sum()
    };
    assert_eq!(
        (
            total("sessions"),
            total("pageviews"),
            total("leads"),
            total("customers"),
            total("revenue")
        ),
        (4.0, 5.0, 2.0, 1.0, 10_000.0),
        "{}",
        ts.text
    );

    // the pages report. By hand over [H, now's hour + 1h), default 90-day lookback:
    // - views: `/` 3 (p1, p2, p4), `/about` 1 (p3), `/team` 1 (p5); entrances: `/` 3,
    //   `/about` 1; exits: `/` 3 (v1's, v2's and bob's newsletter session), `/team` 1 (bob's
    //   direct session, p5 after p3);
    // - assists (distinct pages a lead viewed before its conversion, the conversion's own
    //   page left out): ann's lead (H+12m) after `/`; her deal (H+2h30m) after `/` (10 000
    //   of revenue); bob's lead (H+2h05m) after `/about`, `/team` and `/`;
    // - direct conversions: both leads happened on `/signup`.
    let pages = get(
        w,
        &site,
        &format!(
            "reports/pages?from={}&to={}",
            format_rfc3339(h),
            format_rfc3339(to)
        ),
        Some(&site.read_key),
    );
    assert_eq!(pages.status, 200, "{}", pages.text);
    let rows: BTreeMap<String, Vec<f64>> = pages.json["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap_or_default().to_owned(),
                [
                    "views",
                    "entrances",
                    "exits",
                    "assisted_leads",
                    "assisted_customers",
                    "assisted_revenue",
                    "direct_conversions",
                ]
                .iter()
                .map(|f| r[*f].as_f64().unwrap_or(-1.0))
                .collect(),
            )
        })
        .collect();
    let expected: BTreeMap<String, Vec<f64>> = [
        ("/", vec![3.0, 3.0, 3.0, 2.0, 1.0, 10_000.0, 0.0]),
        ("/about", vec![1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0]),
        ("/team", vec![1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]),
        ("/signup", vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(rows, expected, "{}", pages.text);
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
/// queue (a dedicated worker whose shards set their alarm 500 ms after a batch); a
/// warehouse lists the day's objects and reads them as NDJSON (`exports`, write key).
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

    // a warehouse lists the day's objects and reads them (write key)
    let day = now.div_euclid(DAY);
    let range = format!(
        "exports?from={}&to={}",
        format_date(day * DAY),
        format_date((day + 1) * DAY)
    );
    let list = get(&w, &site, &range, Some(&site.write_key));
    assert_eq!(list.status, 200, "{}", list.text);
    conforms(&list, "ExportList");
    let keys: Vec<String> = list.json["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter_map(|o| o["key"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(keys.len(), 1, "{}", list.text);
    assert!(
        keys[0].starts_with(&format!("site={}/day={}/", site.id, format_date(day * DAY))),
        "{keys:?}"
    );
    let file = get(
        &w,
        &site,
        &format!("exports/file?key={}", keys[0].replace('=', "%3D")),
        Some(&site.write_key),
    );
    assert_eq!(file.status, 200, "{}", file.text);
    let lines: Vec<Value> = file
        .text
        .lines()
        .map(|l| serde_json::from_str(l).expect("an NDJSON line"))
        .collect();
    let ids: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["event_id"].as_str())
        .collect();
    assert_eq!(ids, ["h1-event", "h2-event"], "{}", file.text);
    assert!(lines.iter().all(|l| l["visitor_id"] == "visitor-arch-001"));

    // attacked: the read key, another site's key, another site's object, bad dates
    let (other, _) = new_site(&w, ORIGIN, json!({"shards": 1}));
    assert_error(
        &get(&w, &site, &range, Some(&site.read_key)),
        403,
        "insufficient_scope",
    );
    assert_error(&get(&w, &site, &range, None), 401, "missing_key");
    assert_error(
        &get(&w, &site, &range, Some(&other.write_key)),
        403,
        "forbidden",
    );
    assert_error(
        &get(
            &w,
            &other,
            &format!("exports/file?key={}", keys[0].replace('=', "%3D")),
            Some(&other.write_key),
        ),
        404,
        "not_found",
    );
    for bad in [
        "exports?from=2026-01-01",
        "exports?from=2026-01-02&to=2026-01-01",
        "exports?from=2025-01-01&to=2026-01-01",
        "exports?from=yesterday&to=2026-01-01",
        "exports/file",
    ] {
        assert_error(
            &get(&w, &site, bad, Some(&site.write_key)),
            400,
            "invalid_parameter",
        );
    }
}
