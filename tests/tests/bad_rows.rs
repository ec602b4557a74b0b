//! Nothing dropped silently (issue 13's bad rows, issue 12's `dropped`) against the real
//! worker under wrangler local mode: the tracker's dropped count in the site's health, bad
//! rows kept in a bounded ring, counted by reason, redacted, filtered and paged, readable
//! with the write key only, and sampled under a flood. Each test creates its own site.

use closeloop_e2e::beacon::{
    admin, assert_error, away_from_midnight, batch, get, health, new_site, pv, send, statuses, DAY,
};
use closeloop_e2e::http::Answer;
use closeloop_e2e::now_ms;
use closeloop_e2e::openapi::conforms;
use closeloop_e2e::worker::Worker;
use serde_json::json;

/// Scenario: a tracker reports `dropped: 7` with a new event, then its request is retried
/// as is (all duplicates), then a later batch reports `dropped: 2` with a new event.
/// Expected: health shows 7 + 2 = 9 dropped by trackers (the retry is not counted
/// again), 2 accepted, and `last_seen` set to a time within the test's run.
#[test]
fn dropped_events_are_recorded_and_shown_by_health() {
    away_from_midnight();
    let w = Worker::shared().expect("worker");
    let origin = "https://dropped.example";
    let (site, _) = new_site(w, origin, json!({}));
    let started = now_ms();
    let mut first = batch(
        &site,
        "visitor-drop-001",
        vec![pv(
            "evt-dr-0001",
            "https://dropped.example/",
            started - 1_000,
        )],
        started,
    );
    first["dropped"] = json!(7);
    assert_eq!(statuses(&send(w, Some(origin), &first)), ["accepted"]);
    assert_eq!(statuses(&send(w, Some(origin), &first)), ["duplicate"]);
    let mut second = batch(
        &site,
        "visitor-drop-001",
        vec![pv(
            "evt-dr-0002",
            "https://dropped.example/p",
            started - 500,
        )],
        started,
    );
    second["dropped"] = json!(2);
    assert_eq!(statuses(&send(w, Some(origin), &second)), ["accepted"]);
    let h = health(w, &site);
    assert_eq!(h["totals"]["dropped_by_trackers"], 9, "{h}");
    assert_eq!(h["totals"]["accepted"], 2, "{h}");
    let seen = closeloop_core::time::parse_rfc3339(h["last_seen"].as_str().expect("last_seen"))
        .expect("RFC 3339");
    assert!((started - 1_000..=now_ms() + 1_000).contains(&seen), "{h}");
}

/// Scenario: a site keeping 5 bad rows receives, from its origin, one batch of a good
/// page view (e1), four events with an `ftp:` URL (e2..e5, `invalid_url`), a form submit
/// on a foreign host whose values hold a password (e6, `foreign_host`) and an event made
/// 4 days before sending (e7, `event_too_old`); then one batch from an origin it does not
/// allow (`origin_not_allowed`). Expected: the ring keeps the 5 newest — the refused
/// batch, e7, e6, e5, e4 — listed newest first; the counts say invalid_url 4,
/// foreign_host 1, event_too_old 1 and origin_not_allowed 1 (all 7 counted though only 5
/// kept); e6's raw text has the password redacted; filters by kind and reason and paging
/// by cursor give the expected slices; the list is refused without a key (401), with a
/// malformed key, the read key or another site's write key (403). Then the admin shrinks
/// the ring to 3: the 3 newest stay (the batch, e7, e6); one more refused batch (e9)
/// replaces the oldest of them: the new batch, the first batch, e7.
#[test]
fn bad_rows_are_kept_bounded_counted_and_readable_with_the_write_key_only() {
    away_from_midnight();
    let w = Worker::shared().expect("worker");
    let origin = "https://bad.example";
    let (site, created) = new_site(w, origin, json!({"bad_rows_kept": 5}));
    assert_eq!(created["site"]["bad_rows_kept"], 5);
    let (other, _) = new_site(w, "https://bad-other.example", json!({}));
    let now = now_ms();
    let mut events = vec![pv("evt-br-0001", "https://bad.example/", now - 1_000)];
    for i in 2..=5 {
        events.push(pv(
            &format!("evt-br-000{i}"),
            "ftp://bad.example/file",
            now - 1_000,
        ));
    }
    events.push(json!({"id": "evt-br-0006", "type": "form_submit", "created_at": now - 900,
        "url": "https://phish.example/login",
        "form": {"fields": ["email", "password"], "values": {"email": "eve@bad.example", "password": "hunter2"}}}));
    events.push(pv("evt-br-0007", "https://bad.example/old", now - 4 * DAY));
    let a = send(
        w,
        Some(origin),
        &batch(&site, "visitor-bad-0001", events, now),
    );
    assert_eq!(
        statuses(&a),
        [
            "accepted",
            "rejected:invalid_url",
            "rejected:invalid_url",
            "rejected:invalid_url",
            "rejected:invalid_url",
            "rejected:foreign_host",
            "rejected:event_too_old"
        ],
        "{}",
        a.text
    );
    let refused = send(
        w,
        Some("https://not-allowed.example"),
        &batch(
            &site,
            "visitor-bad-0002",
            vec![pv("evt-br-0008", "https://bad.example/", now)],
            now,
        ),
    );
    assert_error(&refused, 403, "origin_not_allowed");

    let list = |query: &str, key: Option<&str>| get(w, &site, &format!("rejected{query}"), key);
    let all = list("", Some(&site.write_key));
    assert_eq!(all.status, 200, "{}", all.text);
    conforms(&all, "RejectedList");
    let ids = |a: &Answer| -> Vec<String> {
        a.json["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| {
                r["event_id"]
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| format!("batch:{}", r["reason"].as_str().unwrap_or("?")))
            })
            .collect()
    };
    assert_eq!(
        ids(&all),
        [
            "batch:origin_not_allowed",
            "evt-br-0007",
            "evt-br-0006",
            "evt-br-0005",
            "evt-br-0004"
        ],
        "{}",
        all.text
    );
    assert_eq!(all.json["kept"], 5);
    assert_eq!(
        all.json["counts"]["events"],
        json!({"event_too_old": 1, "foreign_host": 1, "invalid_url": 4}),
        "{}",
        all.text
    );
    assert_eq!(
        all.json["counts"]["batches"],
        json!({"origin_not_allowed": 1})
    );
    let e6 = all.json["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["event_id"] == "evt-br-0006")
        .expect("e6");
    let raw = e6["raw"].as_str().expect("raw");
    assert!(
        raw.contains("eve@bad.example") && raw.contains("[redacted]"),
        "{raw}"
    );
    assert!(!raw.contains("hunter2"), "{raw}");
    assert_eq!(e6["visitor_id"], "visitor-bad-0001");
    assert_eq!(
        ids(&list("?kind=event", Some(&site.write_key))),
        ["evt-br-0007", "evt-br-0006", "evt-br-0005", "evt-br-0004"]
    );
    assert_eq!(
        ids(&list("?reason=invalid_url", Some(&site.write_key))),
        ["evt-br-0005", "evt-br-0004"]
    );
    let page1 = list("?limit=2", Some(&site.write_key));
    assert_eq!(ids(&page1), ["batch:origin_not_allowed", "evt-br-0007"]);
    let cursor = page1.json["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_string();
    let page2 = list(&format!("?limit=2&cursor={cursor}"), Some(&site.write_key));
    assert_eq!(ids(&page2), ["evt-br-0006", "evt-br-0005"]);
    assert_error(&list("", None), 401, "missing_key");
    assert_error(&list("", Some("clw_not-a-real-key")), 403, "malformed_key");
    assert_error(&list("", Some(&site.read_key)), 403, "insufficient_scope");
    assert_error(&list("", Some(&other.write_key)), 403, "forbidden");
    assert_error(
        &list("?kind=nonsense", Some(&site.write_key)),
        400,
        "invalid_parameter",
    );
    // the health endpoint takes the read key, and not another site's
    assert_error(
        &get(w, &site, "health", Some(&other.read_key)),
        403,
        "forbidden",
    );
    assert_error(&get(w, &site, "health", None), 401, "missing_key");
    // a smaller ring keeps the newest rows, and goes on replacing the oldest
    let patch = admin(
        w,
        "PATCH",
        &format!("/v1/admin/sites/{}", site.id),
        Some(&json!({"bad_rows_kept": 3})),
    );
    assert_eq!(patch.status, 200, "{}", patch.text);
    assert_eq!(
        ids(&list("", Some(&site.write_key))),
        ["batch:origin_not_allowed", "evt-br-0007", "evt-br-0006"]
    );
    let again = send(
        w,
        Some("https://not-allowed.example"),
        &batch(
            &site,
            "visitor-bad-0003",
            vec![pv("evt-br-0009", "https://bad.example/", now)],
            now,
        ),
    );
    assert_error(&again, 403, "origin_not_allowed");
    let ring = list("", Some(&site.write_key));
    let visitors: Vec<&str> = ring.json["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["visitor_id"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        ids(&ring),
        [
            "batch:origin_not_allowed",
            "batch:origin_not_allowed",
            "evt-br-0007"
        ]
    );
    assert_eq!(
        visitors,
        ["visitor-bad-0003", "visitor-bad-0002", "visitor-bad-0001"]
    );
}

/// Scenario: 130 batches from an origin the site does not allow, back to back (a
/// misconfigured tag on a busy page, or a flood). Expected: all 130 counted
/// (`refused_by_reason.origin_not_allowed` = 130), but bad rows kept for at most 60 a
/// minute per isolate — so at least 60 and at most 120 of them (should the run straddle
/// a minute), never all 130: a flood of refusals costs bounded writes.
#[test]
fn a_flood_of_refusals_is_counted_but_sampled() {
    away_from_midnight();
    let w = Worker::shared().expect("worker");
    let (site, _) = new_site(w, "https://sampled.example", json!({}));
    let now = now_ms();
    for i in 0..130 {
        let a = send(
            w,
            Some("https://spoofed.example"),
            &batch(
                &site,
                "visitor-sample-01",
                vec![pv(
                    &format!("evt-sm-{i:04}"),
                    "https://sampled.example/",
                    now,
                )],
                now,
            ),
        );
        assert_error(&a, 403, "origin_not_allowed");
    }
    let h = health(w, &site);
    assert_eq!(
        h["totals"]["refused_by_reason"]["origin_not_allowed"], 130,
        "{h}"
    );
    let rows = get(w, &site, "rejected?limit=500", Some(&site.write_key));
    let kept = rows.json["rows"].as_array().map_or(0, Vec::len);
    assert!((60..=120).contains(&kept), "{kept} bad rows kept");
}
