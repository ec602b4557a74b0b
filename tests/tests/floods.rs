//! Floods and their cost (issue 12) against the real worker under wrangler local mode: the
//! daily caps per site and per visitor counted on received time, unknown sites and origins
//! answered without a storage write, bodies refused at their limit while they stream, and a
//! flood of one site beside another that keeps working. Each scenario names its expected
//! figures, worked out by hand. Tests that count every write or send bodies the local proxy
//! mishandles start a worker of their own.

use closeloop_e2e::beacon::{
    admin, assert_error, away_from_midnight, batch, count, get, health, new_site, pv, send,
    statuses, DAY, HOUR,
};
use closeloop_e2e::http;
use closeloop_e2e::now_ms;
use closeloop_e2e::worker::Worker;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::Duration;

/// A browser other than the harness's Chrome.
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

/// Seconds from `now` to the next UTC midnight, rounded up: what `Retry-After` of a daily
/// cap says.
fn to_midnight(now: i64) -> i64 {
    (DAY - now.rem_euclid(DAY) + 999) / 1000
}

/// Scenario: a site capped at 3 events a day (received time). V1 sends 2 events (the
/// site's count goes 0 → 2), V2 sends 2 (2 < 3: the batch is kept whole, 4), V3 sends 1
/// twice. Expected: 200, 200, then 429 `site_quota_exceeded` twice with `Retry-After` =
/// the seconds left until midnight UTC; 4 events stored, no visitor row for V3; health:
/// accepted 4, `refused_by_reason.site_quota_exceeded` 2.
#[test]
fn the_site_daily_cap_answers_429_and_is_counted() {
    away_from_midnight();
    let w = Worker::shared().expect("worker");
    let origin = "https://cap.example";
    let (site, created) = new_site(w, origin, json!({"max_events_per_day": 3}));
    assert_eq!(created["site"]["max_events_per_day"], 3);
    let now = now_ms();
    let views = |visitor: &str, ids: &[&str]| {
        let events = ids
            .iter()
            .map(|id| pv(id, "https://cap.example/", now - 1_000))
            .collect();
        batch(&site, visitor, events, now)
    };
    let a = send(
        w,
        Some(origin),
        &views("visitor-cap-001", &["evt-cp-0001", "evt-cp-0002"]),
    );
    assert_eq!(statuses(&a), ["accepted", "accepted"], "{}", a.text);
    let b = send(
        w,
        Some(origin),
        &views("visitor-cap-002", &["evt-cp-0003", "evt-cp-0004"]),
    );
    assert_eq!(statuses(&b), ["accepted", "accepted"], "{}", b.text);
    for _ in 0..2 {
        let before = now_ms();
        let c = send(w, Some(origin), &views("visitor-cap-003", &["evt-cp-0005"]));
        assert_error(&c, 429, "site_quota_exceeded");
        let retry: i64 = c
            .header("retry-after")
            .and_then(|r| r.parse().ok())
            .expect("Retry-After");
        let want = to_midnight(before);
        assert!(
            (want - 5..=want + 1).contains(&retry),
            "Retry-After {retry}, want ~{want}"
        );
    }
    assert_eq!(
        count(
            w,
            &format!("SELECT count(*) FROM events WHERE site_id = '{}'", site.id)
        ),
        4
    );
    assert_eq!(
        count(
            w,
            &format!(
                "SELECT count(*) FROM visitors WHERE site_id = '{}' AND visitor_id = 'visitor-cap-003'",
                site.id
            )
        ),
        0
    );
    let h = health(w, &site);
    assert_eq!(h["totals"]["accepted"], 4, "{h}");
    assert_eq!(
        h["totals"]["refused_by_reason"]["site_quota_exceeded"], 2,
        "{h}"
    );
}

/// Scenario: a site allows 5 events per visitor per day. A visitor sends 5 page views its
/// device made 48 h ago (an offline queue, within the 72 h bound), then 1 page view made
/// now. The quota counts events on the day they are received, so the 5 backdated ones
/// count today. Expected: 5 accepted, then rejected `visitor_quota_exceeded`; 5 stored;
/// health counts `visitor_quota_exceeded` 1. The refused batch comes from a browser the
/// site has not seen (Firefox): it leaves no `agents` row (1 row, the first batch's Chrome).
#[test]
fn the_visitor_quota_counts_backdated_events_when_received() {
    away_from_midnight();
    let w = Worker::shared().expect("worker");
    let origin = "https://recv-quota.example";
    let (site, _) = new_site(w, origin, json!({"max_events_per_visitor_day": 5}));
    let now = now_ms();
    let old: Vec<Value> = (0..5)
        .map(|i| {
            pv(
                &format!("evt-rq-000{i}"),
                "https://recv-quota.example/",
                now - 48 * HOUR + i * 1_000,
            )
        })
        .collect();
    let a = send(w, Some(origin), &batch(&site, "visitor-rq-0001", old, now));
    assert_eq!(statuses(&a), vec!["accepted"; 5], "{}", a.text);
    let refused = batch(
        &site,
        "visitor-rq-0001",
        vec![pv("evt-rq-0009", "https://recv-quota.example/", now - 500)],
        now,
    );
    let b = http::request(
        "POST",
        &w.url("/v1/collect"),
        &[
            ("Content-Type", "text/plain;charset=UTF-8"),
            ("User-Agent", FIREFOX),
            ("Origin", origin),
        ],
        Some(&refused.to_string()),
    )
    .expect("collect");
    assert_eq!(
        statuses(&b),
        ["rejected:visitor_quota_exceeded"],
        "{}",
        b.text
    );
    assert_eq!(
        count(
            w,
            &format!("SELECT count(*) FROM events WHERE site_id = '{}'", site.id)
        ),
        5
    );
    assert_eq!(
        count(
            w,
            &format!("SELECT count(*) FROM agents WHERE site_id = '{}'", site.id)
        ),
        1
    );
    let h = health(w, &site);
    assert_eq!(
        h["totals"]["rejected_by_reason"]["visitor_quota_exceeded"], 1,
        "{h}"
    );
}

/// Rows of every table of the worker's D1 file, and the entries of its KV namespace.
fn storage_counts(w: &Worker) -> (Vec<(String, i64)>, i64) {
    let tables: Vec<String> = w
        .query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .expect("tables")
        .iter()
        .filter_map(|r| r["name"].as_str().map(String::from))
        .collect();
    let rows = tables
        .into_iter()
        .map(|t| {
            let n = count(w, &format!("SELECT count(*) FROM \"{t}\""));
            (t, n)
        })
        .collect();
    let dir = w.persist.join("v3/kv/miniflare-KVNamespaceObject");
    let mut kv = 0;
    for entry in std::fs::read_dir(&dir).expect("kv dir").flatten() {
        let p = entry.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".sqlite") && name != "metadata.sqlite" {
            kv += rusqlite_count(&p);
        }
    }
    (rows, kv)
}

/// Entries of a miniflare KV namespace file.
fn rusqlite_count(path: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("kv file");
    conn.busy_timeout(Duration::from_secs(5)).expect("timeout");
    conn.query_row("SELECT count(*) FROM _mf_entries", [], |r| r.get(0))
        .expect("kv count")
}

/// Scenario: on a worker of its own (so that nothing else writes), with one real site,
/// 60 preflights from random origins, 60 beacons for random unknown site ids (from
/// random origins) and 10 unreadable bodies. Expected: 204 without
/// `Access-Control-Allow-Origin`, 404 `unknown_site`, 400 — and not one row of D1 or
/// entry of KV written: the directory of sites and origins in isolate memory answered
/// them all.
#[test]
fn unknown_sites_and_origins_cost_no_writes() {
    let w = Worker::start().expect("a worker of its own");
    let origin = "https://known.example";
    let site = w.create_site(&[origin]).expect("site");
    // the known site works (and the isolate has read the directory)
    let ok = send(
        &w,
        Some(origin),
        &batch(
            &site,
            "visitor-neg-0001",
            vec![pv("evt-ng-0001", "https://known.example/", now_ms() - 500)],
            now_ms(),
        ),
    );
    assert_eq!(statuses(&ok), ["accepted"], "{}", ok.text);
    let before = storage_counts(&w);
    let salt = now_ms() % 1_000_000;
    for i in 0..60 {
        let o = format!("https://r{i}x{salt}.example");
        let a = http::request(
            "OPTIONS",
            &w.url("/v1/collect"),
            &[
                ("Origin", o.as_str()),
                ("Access-Control-Request-Method", "POST"),
            ],
            None,
        )
        .expect("preflight");
        assert_eq!(a.status, 204);
        assert_eq!(a.header("access-control-allow-origin"), None);
        let unknown = json!({"site_id": format!("nosuch-{i}-{salt}"), "visitor_id": "visitor-neg-0002",
            "sent_at": now_ms(), "events": [pv(&format!("evt-ng-{i:04}"), &format!("{o}/"), now_ms())]});
        assert_error(&send(&w, Some(&o), &unknown), 404, "unknown_site");
    }
    for _ in 0..10 {
        let a = http::request(
            "POST",
            &w.url("/v1/collect"),
            &[
                ("Content-Type", "text/plain"),
                ("Origin", "https://junk.example"),
            ],
            Some("{\"site_id\": "),
        )
        .expect("junk");
        assert_error(&a, 400, "malformed_json");
    }
    assert_eq!(storage_counts(&w), before);
}

/// Sends `total` bytes to `path` as a chunked body that never ends (no final chunk), and
/// answers the status line and body the worker sends back within `wait`, if any: a
/// reader bounded while it streams answers 413 as soon as the limit has arrived, without
/// waiting for an end that never comes.
fn unterminated_chunked(
    w: &Worker,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    total: usize,
    wait: Duration,
) -> Option<(String, String)> {
    let addr = w.base.trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).expect("connect");
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("head");
    let chunk = vec![b'x'; 16 * 1024];
    let mut sent = 0;
    while sent < total {
        let piece = &chunk[..chunk.len().min(total - sent)];
        if s.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
            .is_err()
            || s.write_all(piece).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            break; // the server answered and closed: read what it said
        }
        sent += piece.len();
    }
    s.set_read_timeout(Some(wait)).expect("timeout");
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        match s.read(&mut tmp) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                let text = String::from_utf8_lossy(&buf);
                if text.contains("\r\n\r\n") && text.contains("}}") {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.lines().next()?.to_string();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Some((status, body))
}

/// Waits until the worker answers again after a refused body (see
/// `oversized_bodies_get_413_on_every_endpoint_even_while_streaming`).
fn absorb(w: &Worker) {
    closeloop_e2e::wait_for(
        "the local proxy to reconnect",
        Duration::from_secs(60),
        || quick_health(w).then_some(()),
    )
    .expect("health");
}

/// Request headers, (name, value).
type Headers<'a> = Vec<(&'a str, &'a str)>;

/// Whether `GET /v1/health` answers 200 within 3 s.
fn quick_health(w: &Worker) -> bool {
    let addr = w.base.trim_start_matches("http://").to_string();
    let Ok(mut s) = std::net::TcpStream::connect(&addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let req = format!("GET /v1/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200")
}

/// Scenario: a body over each endpoint's limit — 300 KB to `/v1/collect` (256 KB), 20 KB
/// to every admin endpoint (16 KB), 100 KB to the single-object write endpoints
/// (64 KB), 9 MB to the imports (8 MB) — with a declared `Content-Length`; then bodies
/// that never end (chunked, no last chunk) to the beacon, an admin and an import
/// endpoint. Expected: 413 `body_too_large` (JSON) from each, the unending ones answered
/// within 20 s (the reader stops at the limit rather than waiting for the end), and
/// nothing changed (no site created, no event, conversion, spend or webhook stored).
#[test]
fn oversized_bodies_get_413_on_every_endpoint_even_while_streaming() {
    // A worker of this test's own: `wrangler dev`'s local proxy drops the connection a
    // request was answered on before its body was read, so the next request through it
    // fails or stalls (Cloudflare's edge does not do this); that must not land on other
    // tests' requests. After each refused body, one health check absorbs it.
    let own = Worker::start().expect("a worker of its own");
    let w = &own;
    let origin = "https://big.example";
    let (site, answer) = new_site(w, origin, json!({}));
    let write = format!("Bearer {}", site.write_key);
    let manage = format!(
        "Bearer {}",
        answer["manage_key"].as_str().expect("manage_key")
    );
    let admin_auth = format!("Bearer {}", w.admin_token);
    let sites_before = admin(w, "GET", "/v1/admin/sites", None).json["sites"]
        .as_array()
        .map_or(0, Vec::len);
    let pad = |n: usize| format!("{{\"pad\": \"{}\"}}", "x".repeat(n));
    let cases: Vec<(&str, String, Headers<'_>, usize)> = vec![
        (
            "POST",
            "/v1/collect".into(),
            vec![("Origin", origin), ("Content-Type", "text/plain")],
            300 * 1024,
        ),
        (
            "POST",
            "/v1/admin/sites".into(),
            vec![("Authorization", &admin_auth)],
            20 * 1024,
        ),
        (
            "POST",
            format!("/v1/admin/sites/{}/keys", site.id),
            vec![("Authorization", &admin_auth)],
            20 * 1024,
        ),
        (
            "PUT",
            format!("/v1/admin/sites/{}/origins", site.id),
            vec![("Authorization", &admin_auth)],
            20 * 1024,
        ),
        (
            "PATCH",
            format!("/v1/admin/sites/{}", site.id),
            vec![("Authorization", &admin_auth)],
            20 * 1024,
        ),
        (
            "POST",
            format!("/v1/sites/{}/conversions", site.id),
            vec![("Authorization", &write)],
            100 * 1024,
        ),
        (
            "POST",
            format!("/v1/sites/{}/spend", site.id),
            vec![("Authorization", &write)],
            100 * 1024,
        ),
        (
            "POST",
            format!("/v1/sites/{}/webhooks", site.id),
            vec![("Authorization", &manage)],
            100 * 1024,
        ),
        (
            "POST",
            format!("/v1/sites/{}/events:import", site.id),
            vec![("Authorization", &write)],
            9 * 1024 * 1024,
        ),
        (
            "POST",
            format!("/v1/sites/{}/conversions:import", site.id),
            vec![("Authorization", &write)],
            9 * 1024 * 1024,
        ),
        (
            "POST",
            format!("/v1/sites/{}/spend:import", site.id),
            vec![("Authorization", &write)],
            9 * 1024 * 1024,
        ),
    ];
    for (method, path, headers, size) in &cases {
        let mut h = headers.clone();
        if !h.iter().any(|(k, _)| *k == "Content-Type") {
            h.push(("Content-Type", "application/json"));
        }
        let a = http::request(method, &w.url(path), &h, Some(&pad(*size))).expect("request");
        assert_eq!(
            (a.status, a.error_code()),
            (413, Some("body_too_large")),
            "{method} {path}: {}",
            a.text
        );
        absorb(w);
    }
    // bodies that never end
    let unending: Vec<(String, Headers<'_>, usize)> = vec![
        (
            "/v1/collect".into(),
            vec![("Origin", origin), ("Content-Type", "text/plain")],
            256 * 1024,
        ),
        (
            "/v1/admin/sites".into(),
            vec![("Authorization", &admin_auth)],
            16 * 1024,
        ),
        (
            format!("/v1/sites/{}/events:import", site.id),
            vec![("Authorization", &write)],
            8 * 1024 * 1024,
        ),
    ];
    for (path, headers, limit) in &unending {
        let started = std::time::Instant::now();
        let answer = unterminated_chunked(
            w,
            "POST",
            path,
            headers,
            limit + 64 * 1024,
            Duration::from_secs(20),
        );
        let (status, body) = answer.unwrap_or_else(|| panic!("{path}: no answer"));
        assert!(status.contains(" 413"), "{path}: {status} {body}");
        assert!(body.contains("body_too_large"), "{path}: {body}");
        assert!(started.elapsed() < Duration::from_secs(20));
        absorb(w);
    }
    let sites_after = admin(w, "GET", "/v1/admin/sites", None).json["sites"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(sites_after, sites_before);
    for table in ["events", "conversions", "spend", "webhooks"] {
        assert_eq!(
            count(
                w,
                &format!("SELECT count(*) FROM {table} WHERE site_id = '{}'", site.id)
            ),
            0,
            "{table}"
        );
    }
}

/// Scenario: site X is capped at 50 events a day and flooded by 4 clients sending 100
/// batches of 5 page views each (400 requests, 2 000 events, a new visitor each), while
/// site Y sends 10 one-page-view visits and a lead's identify, reads its sources report
/// and has its webhook deliver the new lead. Expected: every Y request answered 200 and
/// stored (11 events), Y's report counts 10 visitors, Y's receiver gets `lead.created`
/// for dave@flood-y.example; X stores 5 events per 200 answer, at least 50 and at most
/// 50 + 4 × 5 (a batch that starts under the cap is kept whole, 4 in flight), every other
/// X request is a 429, and X's health counts exactly those 429s.
#[test]
fn a_flood_of_one_site_leaves_the_others_working() {
    away_from_midnight();
    let w = Worker::shared().expect("worker");
    let (x_origin, y_origin) = ("https://flood-x.example", "https://flood-y.example");
    let (x, _) = new_site(w, x_origin, json!({"max_events_per_day": 50}));
    let (y, y_answer) = new_site(w, y_origin, json!({}));
    // webhooks take the manage key
    let y_manage = y_answer["manage_key"]
        .as_str()
        .expect("manage_key")
        .to_string();
    // Y's webhook receiver
    let server = tiny_http::Server::http("127.0.0.1:0").expect("receiver");
    let port = server.server_addr().to_ip().map(|a| a.port()).unwrap_or(0);
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        while let Ok(Some(mut req)) = server.recv_timeout(Duration::from_secs(120)) {
            let mut text = String::new();
            let _ = req.as_reader().read_to_string(&mut text);
            let _ = req.respond(tiny_http::Response::from_string("ok"));
            if tx
                .send(serde_json::from_str(&text).unwrap_or(Value::Null))
                .is_err()
            {
                break;
            }
        }
    });
    let hook = http::post_json(
        &w.url(&format!("/v1/sites/{}/webhooks", y.id)),
        &json!({"url": format!("http://127.0.0.1:{port}/hook"), "events": ["lead.created"]}),
        &[("Authorization", &format!("Bearer {y_manage}"))],
    )
    .expect("webhook");
    assert_eq!(hook.status, 201, "{}", hook.text);

    let flood: Vec<_> = (0..4)
        .map(|t| {
            let x = x.clone();
            std::thread::spawn(move || {
                let w = Worker::shared().expect("worker");
                let (mut ok, mut limited) = (0, 0);
                for i in 0..100 {
                    let now = now_ms();
                    let events = (0..5)
                        .map(|k| {
                            pv(
                                &format!("evt-fx-{t}-{i:03}-{k}"),
                                "https://flood-x.example/",
                                now - 1_000,
                            )
                        })
                        .collect();
                    let a = send(
                        w,
                        Some("https://flood-x.example"),
                        &batch(&x, &format!("visitor-fx-{t}-{i:03}"), events, now),
                    );
                    match a.status {
                        200 => ok += 1,
                        429 => limited += 1,
                        other => panic!("flood answer {other}: {}", a.text),
                    }
                }
                (ok, limited)
            })
        })
        .collect();

    let now = now_ms();
    for i in 0..10 {
        let mut events = vec![pv(
            &format!("evt-fy-{i:04}"),
            "https://flood-y.example/",
            now - 2_000,
        )];
        if i == 9 {
            events.push(
                json!({"id": "evt-fy-lead", "type": "identify", "created_at": now - 1_000,
                "url": "https://flood-y.example/", "email": "dave@flood-y.example"}),
            );
        }
        let a = send(
            w,
            Some(y_origin),
            &batch(&y, &format!("visitor-fy-{i:04}"), events, now),
        );
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.json["rejected"], 0, "{}", a.text);
    }
    let report = get(w, &y, "reports/sources?group_by=channel", Some(&y.read_key));
    assert_eq!(report.status, 200, "{}", report.text);
    assert_eq!(report.json["totals"]["visitors"], 10, "{}", report.text);
    let deliver = http::request(
        "POST",
        &w.url(&format!("/v1/sites/{}/webhooks:deliver", y.id)),
        &[("Authorization", &format!("Bearer {y_manage}"))],
        None,
    )
    .expect("deliver");
    assert_eq!(deliver.status, 200, "{}", deliver.text);
    let got = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("a delivery");
    assert_eq!(got["type"], "lead.created", "{got}");
    assert_eq!(got["lead"]["email"], "dave@flood-y.example", "{got}");

    let (mut ok, mut limited) = (0, 0);
    for f in flood {
        let (o, l) = f.join().expect("flood thread");
        ok += o;
        limited += l;
    }
    assert_eq!(ok + limited, 400);
    let x_stored = count(
        w,
        &format!("SELECT count(*) FROM events WHERE site_id = '{}'", x.id),
    );
    assert_eq!(
        x_stored,
        5 * ok,
        "X stored {x_stored} for {ok} accepted batches"
    );
    assert!((50..=70).contains(&x_stored), "X stored {x_stored}");
    assert_eq!(
        count(
            w,
            &format!("SELECT count(*) FROM events WHERE site_id = '{}'", y.id)
        ),
        11
    );
    let h = health(w, &x);
    assert_eq!(
        h["totals"]["refused_by_reason"]["site_quota_exceeded"], limited,
        "{h}"
    );
    assert_eq!(h["totals"]["accepted"], x_stored, "{h}");
}
