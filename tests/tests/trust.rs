//! Hostile traffic on the beacon side (issue 12) and bad rows (issue 13) against the real
//! worker under wrangler local mode: what a forged or broken beacon can no longer do, and
//! what the site owner sees of every refusal. Each scenario names its expected figures,
//! worked out by hand from the events it sends.
//!
//! Each test creates its own site, so tests share one worker and run in parallel (the
//! negative-caching test starts its own worker: it counts every row the worker writes).

use closeloop_e2e::http::{self, Answer};
use closeloop_e2e::openapi::conforms;
use closeloop_e2e::worker::{Site, Worker};
use closeloop_e2e::{now_ms, root};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::Duration;

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// A page view made at `created_at` (device clock).
fn pv(id: &str, url: &str, created_at: i64) -> Value {
    json!({"id": id, "type": "pageview", "created_at": created_at, "url": url, "referrer": ""})
}

/// A batch of `visitor` sent at `sent_at` (device clock).
fn batch(site: &Site, visitor: &str, events: Vec<Value>, sent_at: i64) -> Value {
    json!({"site_id": site.id, "visitor_id": visitor, "sent_at": sent_at, "events": events})
}

/// POSTs a beacon as a browser would (text/plain, as sendBeacon), with `origin` as its
/// `Origin` header when given.
fn send(w: &Worker, origin: Option<&str>, body: &Value) -> Answer {
    let mut headers = vec![
        ("Content-Type", "text/plain;charset=UTF-8"),
        ("User-Agent", CHROME),
    ];
    if let Some(o) = origin {
        headers.push(("Origin", o));
    }
    http::request(
        "POST",
        &w.url("/v1/collect"),
        &headers,
        Some(&body.to_string()),
    )
    .expect("collect")
}

fn statuses(a: &Answer) -> Vec<String> {
    a.json["results"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|e| {
                    let s = e["status"].as_str().unwrap_or("?");
                    match e["error"]["code"].as_str() {
                        Some(code) => format!("{s}:{code}"),
                        None => s.to_string(),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn assert_error(a: &Answer, status: u16, code: &str) {
    assert_eq!(
        (a.status, a.error_code()),
        (status, Some(code)),
        "{}",
        a.text
    );
    assert!(
        a.json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        a.text
    );
    assert!(a
        .header("content-type")
        .is_some_and(|c| c.contains("application/json")));
}

fn admin(w: &Worker, method: &str, path: &str, body: Option<&Value>) -> Answer {
    let auth = format!("Bearer {}", w.admin_token);
    let text = body.map(Value::to_string);
    http::request(
        method,
        &w.url(path),
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        text.as_deref(),
    )
    .expect("admin request")
}

/// Creates a site allowing `origin` with extra members in the creation body (settings);
/// answers the site and the creation answer.
fn new_site(w: &Worker, origin: &str, extra: Value) -> (Site, Value) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let id = format!(
        "tr{}x{}x{}",
        std::process::id(),
        now_ms() % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    );
    let mut body = json!({"id": id, "allowed_origins": [origin], "currency": "USD"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let a = admin(w, "POST", "/v1/admin/sites", Some(&body));
    assert_eq!(a.status, 201, "{}", a.text);
    let key = |k: &str| a.json[k].as_str().unwrap_or_default().to_string();
    (
        Site {
            id,
            read_key: key("read_key"),
            write_key: key("write_key"),
        },
        a.json,
    )
}

fn get(w: &Worker, site: &Site, path: &str, key: Option<&str>) -> Answer {
    http::get(&w.url(&format!("/v1/sites/{}/{path}", site.id)), key).expect("get")
}

fn health(w: &Worker, site: &Site) -> Value {
    let a = get(w, site, "health", Some(&site.read_key));
    assert_eq!(a.status, 200, "{}", a.text);
    conforms(&a, "SiteHealth");
    a.json
}

fn count(w: &Worker, sql: &str) -> i64 {
    w.count(sql).expect("count")
}

/// Waits, if needed, until the UTC day has more than a minute left (the daily counters
/// of a test must not straddle midnight).
fn away_from_midnight() {
    let left = DAY - now_ms().rem_euclid(DAY);
    if left < 60_000 {
        std::thread::sleep(Duration::from_millis(left as u64 + 1_000));
    }
}

/// `user_hash` as a site's server computes it, with the Node.js snippet of the README
/// ("Identity verification") run as written: an implementation independent of the
/// worker's (which uses RustCrypto's HMAC).
fn documented_user_hash(secret: &str, email: &str) -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let start = readme
        .find("const crypto = require('crypto');")
        .expect("the README's Node.js user_hash snippet");
    let snippet = &readme[start..];
    let snippet = &snippet[..snippet.find("```").expect("end of the snippet")];
    let out = std::process::Command::new("node")
        .arg("-e")
        .arg(format!(
            "{snippet}\nprocess.stdout.write(userHash(process.argv[1], process.argv[2]));"
        ))
        .arg(secret)
        .arg(email)
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("hex")
}

/// Scenario: a script POSTs a well-formed batch for an existing site with no `Origin`
/// header (curl, a server). Expected: 403 `origin_required` (JSON), nothing stored (no
/// event, no visitor); the refusal is counted in the site's health
/// (`refused_by_reason.origin_required` = 1) and kept as a bad row of kind `batch` whose
/// raw text holds the event id.
#[test]
fn a_beacon_without_origin_is_refused_and_stores_nothing() {
    away_from_midnight();
    let w = Worker::shared().expect("worker");
    let origin = "https://no-origin.example";
    let (site, _) = new_site(w, origin, json!({}));
    let now = now_ms();
    let body = batch(
        &site,
        "visitor-noorigin-1",
        vec![pv("evt-no-0001", "https://no-origin.example/", now - 1_000)],
        now,
    );
    assert_error(&send(w, None, &body), 403, "origin_required");
    assert_eq!(
        count(
            w,
            &format!("SELECT count(*) FROM events WHERE site_id = '{}'", site.id)
        ),
        0
    );
    assert_eq!(
        count(
            w,
            &format!(
                "SELECT count(*) FROM visitors WHERE site_id = '{}'",
                site.id
            )
        ),
        0
    );
    let h = health(w, &site);
    assert_eq!(
        h["totals"]["refused_by_reason"]["origin_required"], 1,
        "{h}"
    );
    assert_eq!(h["totals"]["accepted"], 0, "{h}");
    let rows = get(w, &site, "rejected", Some(&site.write_key));
    assert_eq!(rows.status, 200, "{}", rows.text);
    let row = &rows.json["rows"][0];
    assert_eq!(
        (row["kind"].as_str(), row["reason"].as_str()),
        (Some("batch"), Some("origin_required"))
    );
    assert!(
        row["raw"]
            .as_str()
            .is_some_and(|r| r.contains("evt-no-0001")),
        "{row}"
    );
    // the same batch from the page's origin is taken
    let ok = send(w, Some(origin), &body);
    assert_eq!(statuses(&ok), ["accepted"], "{}", ok.text);
}

/// Scenario: from the site's own origin https://shop-fh.example, visitor V1 sends a page
/// view of https://shop-fh.example/ (its own host), a page view of
/// https://evil.example/?utm_source=spam&utm_medium=cpc and a form submit on
/// https://evil.example/win with an email (a forged beacon crediting a spam campaign).
/// Then the admin adds `blog.shop-fh.example` as an extra host and visitor V2 reads
/// https://blog.shop-fh.example/post. Expected: V1's answers accepted,
/// rejected `foreign_host`, rejected `foreign_host`; V2's accepted; stored: the two own
/// page views only, no lead; the sources report by source has one row, `(direct)`, with
/// 2 visitors and 2 sessions (no `spam`); health counts `foreign_host` 2, and the two bad
/// rows are listed newest first (the form, then the page view).
#[test]
fn events_on_foreign_hosts_are_rejected_and_store_nothing() {
    away_from_midnight();
    let w = Worker::shared().expect("worker");
    let origin = "https://shop-fh.example";
    let (site, _) = new_site(w, origin, json!({}));
    let now = now_ms();
    let form = json!({"id": "evt-fh-0003", "type": "form_submit", "created_at": now - 1_000,
        "url": "https://evil.example/win", "form": {"fields": ["email"], "values": {"email": "mark@evil.example"}}});
    let a = send(
        w,
        Some(origin),
        &batch(
            &site,
            "visitor-fh-0001",
            vec![
                pv("evt-fh-0001", "https://shop-fh.example/", now - 3_000),
                pv(
                    "evt-fh-0002",
                    "https://evil.example/?utm_source=spam&utm_medium=cpc",
                    now - 2_000,
                ),
                form,
            ],
            now,
        ),
    );
    assert_eq!(
        statuses(&a),
        ["accepted", "rejected:foreign_host", "rejected:foreign_host"],
        "{}",
        a.text
    );
    let patch = admin(
        w,
        "PATCH",
        &format!("/v1/admin/sites/{}", site.id),
        Some(&json!({"extra_hosts": ["Blog.Shop-FH.example"]})),
    );
    assert_eq!(patch.status, 200, "{}", patch.text);
    assert_eq!(
        patch.json["site"]["extra_hosts"],
        json!(["blog.shop-fh.example"])
    );
    let b = send(
        w,
        Some(origin),
        &batch(
            &site,
            "visitor-fh-0002",
            vec![pv(
                "evt-fh-0004",
                "https://blog.shop-fh.example/post",
                now - 500,
            )],
            now,
        ),
    );
    assert_eq!(statuses(&b), ["accepted"], "{}", b.text);
    let ids: Vec<String> = w
        .query(&format!(
            "SELECT event_id FROM events WHERE site_id = '{}' ORDER BY event_id",
            site.id
        ))
        .expect("ids")
        .iter()
        .filter_map(|r| r["event_id"].as_str().map(String::from))
        .collect();
    assert_eq!(ids, ["evt-fh-0001", "evt-fh-0004"]);
    assert_eq!(
        count(
            w,
            &format!("SELECT count(*) FROM leads WHERE site_id = '{}'", site.id)
        ),
        0
    );
    let report = get(
        w,
        &site,
        "reports/sources?group_by=source",
        Some(&site.read_key),
    );
    assert_eq!(report.status, 200, "{}", report.text);
    let rows: Vec<(String, i64, i64)> = report.json["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap_or("?").to_string(),
                r["visitors"].as_i64().unwrap_or(-1),
                r["sessions"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(rows, [("(direct)".to_string(), 2, 2)], "{}", report.text);
    let h = health(w, &site);
    assert_eq!(h["totals"]["rejected_by_reason"]["foreign_host"], 2, "{h}");
    assert_eq!(h["totals"]["accepted"], 2, "{h}");
    let bad = get(
        w,
        &site,
        "rejected?reason=foreign_host",
        Some(&site.write_key),
    );
    let listed: Vec<&str> = bad.json["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["event_id"].as_str())
        .collect();
    assert_eq!(listed, ["evt-fh-0003", "evt-fh-0002"], "{}", bad.text);
}

/// Scenario: a device with a correct clock sends, at `sent_at` = S, events made at
/// S − 80 h, S − 70 h and S + 30 s (an event "made after sending": rounding, or a forged
/// claim). The bound is 72 h (what the tracker's offline queue can hold and GA4's
/// Measurement Protocol accepts). Expected: rejected `event_too_old`; accepted with
/// `derived_ts` = received_at − 70 h exactly; accepted with `derived_ts` = received_at
/// (clamped: nothing is dated after it arrived).
#[test]
fn backdating_is_bounded_to_72_hours_and_the_future_clamped() {
    away_from_midnight();
    let w = Worker::shared().expect("worker");
    let origin = "https://backdate.example";
    let (site, _) = new_site(w, origin, json!({}));
    let s = now_ms();
    let a = send(
        w,
        Some(origin),
        &batch(
            &site,
            "visitor-back-001",
            vec![
                pv("evt-bd-0001", "https://backdate.example/a", s - 80 * HOUR),
                pv("evt-bd-0002", "https://backdate.example/b", s - 70 * HOUR),
                pv("evt-bd-0003", "https://backdate.example/c", s + 30_000),
            ],
            s,
        ),
    );
    assert_eq!(
        statuses(&a),
        ["rejected:event_too_old", "accepted", "accepted"],
        "{}",
        a.text
    );
    let rows = w
        .query(&format!(
            "SELECT event_id, received_at, derived_ts FROM events WHERE site_id = '{}' ORDER BY event_id",
            site.id
        ))
        .expect("rows");
    assert_eq!(rows.len(), 2);
    let received = rows[0]["received_at"].as_i64().expect("received_at");
    assert_eq!(rows[0]["derived_ts"].as_i64(), Some(received - 70 * HOUR));
    assert_eq!(rows[1]["derived_ts"].as_i64(), Some(received));
}

/// Scenario: a site created with identity verification on (its secret shown once).
/// Ann's laptop (V1) lands from the `launch` newsletter and her page calls
/// `closeloop.identify("ann@verified.example", {user_hash})` with the HMAC her server
/// computed (the README's snippet); her phone (V3) identifies with the hash as the
/// event's own `user_hash`. An attacker's fresh visitor (V2) tries `identify` with her
/// email and no hash, then with Bob's hash, then sends a page view backdated 70 h from
/// `?utm_source=spam&utm_medium=cpc` and a form submit with her email. Expected: V1's
/// and V3's events accepted; V2's identifies rejected `user_hash_required` and
/// `invalid_user_hash`; V2's page view and form stored but linked to nobody. Ann's
/// journey: visitors V1 and V3 only, both links `verified_identify`; the lead conversion's
/// `first_touch` credit goes wholly to V1's Email session (the spam session, 70 h
/// earlier, is not hers).
#[test]
fn identity_verification_keeps_a_fresh_visitor_out_of_a_verified_lead() {
    away_from_midnight();
    let w = Worker::shared().expect("worker");
    let origin = "https://verified.example";
    let (site, created) = new_site(w, origin, json!({"identity_verification": true}));
    assert_eq!(created["site"]["identity_verification"], true, "{created}");
    let secret = created["identity_secret"]
        .as_str()
        .expect("the secret is shown once")
        .to_string();
    assert!(secret.starts_with("cls_") && secret.len() == 68, "{secret}");
    let listed = admin(w, "GET", "/v1/admin/sites", None);
    assert!(
        !listed.text.contains(&secret),
        "the secret is never shown again"
    );
    let ann = "ann@verified.example";
    let ann_hash = documented_user_hash(&secret, " Ann@Verified.example ");
    assert_eq!(ann_hash.len(), 64);
    assert_eq!(ann_hash, documented_user_hash(&secret, ann));
    let bob_hash = documented_user_hash(&secret, "bob@verified.example");
    let now = now_ms();
    let identify = |id: &str, at: i64, hash: Option<&str>, top_level: bool| {
        let mut e = json!({"id": id, "type": "identify", "created_at": at,
            "url": "https://verified.example/app", "email": ann});
        if let Some(h) = hash {
            if top_level {
                e["user_hash"] = json!(h);
            } else {
                e["traits"] = json!({"name": "Ann", "user_hash": h});
            }
        }
        e
    };
    let v1 = send(
        w,
        Some(origin),
        &batch(
            &site,
            "visitor-ver-ann1",
            vec![
                pv(
                    "evt-vr-0001",
                    "https://verified.example/?utm_source=newsletter&utm_medium=email&utm_campaign=launch",
                    now - 10 * 60_000,
                ),
                identify("evt-vr-0002", now - 9 * 60_000, Some(&ann_hash), false),
            ],
            now,
        ),
    );
    assert_eq!(statuses(&v1), ["accepted", "accepted"], "{}", v1.text);
    let v2 = send(
        w,
        Some(origin),
        &batch(
            &site,
            "visitor-ver-evil",
            vec![
                identify("evt-vr-0003", now - 5 * 60_000, None, false),
                identify("evt-vr-0004", now - 4 * 60_000, Some(&bob_hash), true),
                pv(
                    "evt-vr-0005",
                    "https://verified.example/?utm_source=spam&utm_medium=cpc",
                    now - 70 * HOUR,
                ),
                json!({"id": "evt-vr-0006", "type": "form_submit", "created_at": now - 60_000,
                    "url": "https://verified.example/demo",
                    "form": {"fields": ["email"], "values": {"email": ann}}}),
            ],
            now,
        ),
    );
    assert_eq!(
        statuses(&v2),
        [
            "rejected:user_hash_required",
            "rejected:invalid_user_hash",
            "accepted",
            "accepted"
        ],
        "{}",
        v2.text
    );
    let v3 = send(
        w,
        Some(origin),
        &batch(
            &site,
            "visitor-ver-ann2",
            vec![identify("evt-vr-0007", now - 30_000, Some(&ann_hash), true)],
            now,
        ),
    );
    assert_eq!(statuses(&v3), ["accepted"], "{}", v3.text);
    // no hash is stored anywhere
    assert_eq!(
        count(
            w,
            &format!(
                "SELECT count(*) FROM events WHERE site_id = '{}' AND (props LIKE '%{}%' OR props LIKE '%user_hash%')",
                site.id,
                &ann_hash[..16]
            )
        ),
        0
    );
    let j = get(
        w,
        &site,
        "leads/ann%40verified.example",
        Some(&site.read_key),
    );
    assert_eq!(j.status, 200, "{}", j.text);
    conforms(&j, "Journey");
    let mut visitors: Vec<&str> = j.json["visitors"]
        .as_array()
        .expect("visitors")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    visitors.sort_unstable();
    assert_eq!(
        visitors,
        ["visitor-ver-ann1", "visitor-ver-ann2"],
        "{}",
        j.text
    );
    let links: Vec<(&str, &str)> = j.json["links"]
        .as_array()
        .expect("links")
        .iter()
        .map(|l| {
            (
                l["visitor"].as_str().unwrap_or("?"),
                l["method"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(
        links,
        [
            ("visitor-ver-ann1", "verified_identify"),
            ("visitor-ver-ann2", "verified_identify")
        ],
        "{}",
        j.text
    );
    let lead = j.json["conversions"]
        .as_array()
        .expect("conversions")
        .iter()
        .find(|c| c["conversion"]["kind"] == "lead")
        .expect("the lead conversion");
    let first_touch = lead["credits"]
        .as_array()
        .expect("credits")
        .iter()
        .find(|c| c["model"] == "first_touch")
        .expect("first_touch");
    let touches = first_touch["touches"].as_array().expect("touches");
    let credited: Vec<(&str, f64)> = touches
        .iter()
        .filter(|t| t["share"].as_f64().unwrap_or(0.0) > 0.0)
        .map(|t| {
            (
                t["channel"].as_str().unwrap_or("?"),
                t["share"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    assert_eq!(credited, [("Email", 1.0)], "{}", j.text);
    assert_eq!(
        count(
            w,
            &format!(
                "SELECT count(*) FROM lead_visitors WHERE site_id = '{}' AND visitor_id = 'visitor-ver-evil'",
                site.id
            )
        ),
        0
    );
    let h = health(w, &site);
    assert_eq!(
        h["totals"]["rejected_by_reason"]["user_hash_required"], 1,
        "{h}"
    );
    assert_eq!(
        h["totals"]["rejected_by_reason"]["invalid_user_hash"], 1,
        "{h}"
    );
    assert_eq!(h["limits"]["identity_verification"], true, "{h}");
}

/// Scenario: the CRM's server imports Ann (write key) with name "Ann Lee" and phone
/// "+1 555 0100"; then a beacon identifies her with traits name "Mallory" and company
/// "Acme"; then the server imports her again as "Ann B. Lee". Expected: after the beacon,
/// name "Ann Lee" (a beacon never overwrites a trait), company "Acme" (it may fill a
/// missing one), phone kept; after the second import, name "Ann B. Lee" (a server with
/// the key does overwrite).
#[test]
fn a_beacon_never_overwrites_lead_traits() {
    away_from_midnight();
    let w = Worker::shared().expect("worker");
    let origin = "https://traits.example";
    let (site, _) = new_site(w, origin, json!({}));
    let now = now_ms();
    let import = |id: &str, name: &str| {
        let a = http::post_json(
            &w.url(&format!("/v1/sites/{}/events:import", site.id)),
            &json!({"visitor_id": "crm-ann-0001", "events": [{"id": id, "type": "identify",
                "created_at": now - 60_000, "url": "https://traits.example/crm",
                "email": "ann@traits.example", "traits": {"name": name, "phone": "+1 555 0100"}}]}),
            &[("Authorization", &format!("Bearer {}", site.write_key))],
        )
        .expect("import");
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.json["accepted"], 1, "{}", a.text);
    };
    let lead = || {
        let rows = w
            .query(&format!(
                "SELECT name, company, phone FROM leads WHERE site_id = '{}'",
                site.id
            ))
            .expect("lead");
        assert_eq!(rows.len(), 1, "{rows:?}");
        (
            rows[0]["name"].as_str().map(String::from),
            rows[0]["company"].as_str().map(String::from),
            rows[0]["phone"].as_str().map(String::from),
        )
    };
    import("evt-tr-0001", "Ann Lee");
    let beacon = send(
        w,
        Some(origin),
        &batch(
            &site,
            "visitor-traits-1",
            vec![
                json!({"id": "evt-tr-0002", "type": "identify", "created_at": now - 1_000,
                "url": "https://traits.example/app", "email": "ann@traits.example",
                "traits": {"name": "Mallory", "company": "Acme"}}),
            ],
            now,
        ),
    );
    assert_eq!(statuses(&beacon), ["accepted"], "{}", beacon.text);
    assert_eq!(
        lead(),
        (
            Some("Ann Lee".into()),
            Some("Acme".into()),
            Some("+1 555 0100".into())
        )
    );
    import("evt-tr-0003", "Ann B. Lee");
    assert_eq!(lead().0.as_deref(), Some("Ann B. Lee"));
}

/// Scenario: on a site without identity verification, carol@links.example is given by a
/// form submit on V1, an `identify` on V2 and a server's import for V3. Expected: her
/// journey lists three links, in link order, with methods `form`, `identify` and
/// `import`, each with its identifying event and the time it was received.
#[test]
fn every_link_records_how_it_was_made() {
    away_from_midnight();
    let w = Worker::shared().expect("worker");
    let origin = "https://links.example";
    let (site, _) = new_site(w, origin, json!({}));
    let now = now_ms();
    let form = send(
        w,
        Some(origin),
        &batch(
            &site,
            "visitor-link-v1",
            vec![
                json!({"id": "evt-lk-0001", "type": "form_submit", "created_at": now - 30_000,
                "url": "https://links.example/demo",
                "form": {"fields": ["email"], "values": {"email": "carol@links.example"}}}),
            ],
            now,
        ),
    );
    assert_eq!(statuses(&form), ["accepted"], "{}", form.text);
    let ident = send(
        w,
        Some(origin),
        &batch(
            &site,
            "visitor-link-v2",
            vec![
                json!({"id": "evt-lk-0002", "type": "identify", "created_at": now - 20_000,
                "url": "https://links.example/app", "email": "carol@links.example"}),
            ],
            now,
        ),
    );
    assert_eq!(statuses(&ident), ["accepted"], "{}", ident.text);
    let import = http::post_json(
        &w.url(&format!("/v1/sites/{}/events:import", site.id)),
        &json!({"visitor_id": "visitor-link-v3", "events": [{"id": "evt-lk-0003",
            "type": "identify", "created_at": now - 10_000, "url": "https://links.example/crm",
            "email": "carol@links.example"}]}),
        &[("Authorization", &format!("Bearer {}", site.write_key))],
    )
    .expect("import");
    assert_eq!(import.json["accepted"], 1, "{}", import.text);
    let j = get(
        w,
        &site,
        "leads/carol%40links.example",
        Some(&site.read_key),
    );
    assert_eq!(j.status, 200, "{}", j.text);
    conforms(&j, "Journey");
    let links: Vec<(&str, &str, &str)> = j.json["links"]
        .as_array()
        .expect("links")
        .iter()
        .map(|l| {
            assert!(l["received_at"].as_str().is_some(), "{l}");
            assert!(l["linked_at"].as_str().is_some(), "{l}");
            (
                l["visitor"].as_str().unwrap_or("?"),
                l["method"].as_str().unwrap_or("?"),
                l["event_id"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(
        links,
        [
            ("visitor-link-v1", "form", "evt-lk-0001"),
            ("visitor-link-v2", "identify", "evt-lk-0002"),
            ("visitor-link-v3", "import", "evt-lk-0003"),
        ],
        "{}",
        j.text
    );
}

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
/// health counts `visitor_quota_exceeded` 1.
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
    let b = send(
        w,
        Some(origin),
        &batch(
            &site,
            "visitor-rq-0001",
            vec![pv("evt-rq-0009", "https://recv-quota.example/", now - 500)],
            now,
        ),
    );
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
/// nothing changed (no site created, no event, conversion or spend stored).
#[test]
fn oversized_bodies_get_413_on_every_endpoint_even_while_streaming() {
    let w = Worker::shared().expect("worker");
    let origin = "https://big.example";
    let (site, _) = new_site(w, origin, json!({}));
    let write = format!("Bearer {}", site.write_key);
    let admin_auth = format!("Bearer {}", w.admin_token);
    let sites_before = admin(w, "GET", "/v1/admin/sites", None).json["sites"]
        .as_array()
        .map_or(0, Vec::len);
    let pad = |n: usize| format!("{{\"pad\": \"{}\"}}", "x".repeat(n));
    let cases: Vec<(&str, String, Vec<(&str, &str)>, usize)> = vec![
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
            vec![("Authorization", &write)],
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
    }
    // Bodies that never end go to a worker of this test's own: `wrangler dev`'s local
    // proxy drops the connection a request was answered on before its body was read, so
    // the next request through it answers 503 (Cloudflare's edge does not do this); that
    // must not land on the other tests' requests.
    let own = Worker::start().expect("a worker of its own");
    let (own_site, _) = new_site(&own, origin, json!({}));
    let own_write = format!("Bearer {}", own_site.write_key);
    let own_admin = format!("Bearer {}", own.admin_token);
    let unending: Vec<(String, Vec<(&str, &str)>, usize)> = vec![
        (
            "/v1/collect".into(),
            vec![("Origin", origin), ("Content-Type", "text/plain")],
            256 * 1024,
        ),
        (
            "/v1/admin/sites".into(),
            vec![("Authorization", &own_admin)],
            16 * 1024,
        ),
        (
            format!("/v1/sites/{}/events:import", own_site.id),
            vec![("Authorization", &own_write)],
            8 * 1024 * 1024,
        ),
    ];
    for (path, headers, limit) in &unending {
        let started = std::time::Instant::now();
        let answer = unterminated_chunked(
            &own,
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
        // the proxy's dropped connection (see above) fails or stalls one request
        closeloop_e2e::wait_for(
            "the local proxy to reconnect",
            Duration::from_secs(60),
            || quick_health(&own).then_some(()),
        )
        .expect("health");
    }
    assert_eq!(
        count(
            &own,
            &format!(
                "SELECT count(*) FROM events WHERE site_id = '{}'",
                own_site.id
            )
        ),
        0
    );
    let sites_after = admin(w, "GET", "/v1/admin/sites", None).json["sites"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(sites_after >= sites_before);
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
    let (y, _) = new_site(w, y_origin, json!({}));
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
        &[("Authorization", &format!("Bearer {}", y.write_key))],
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
        &[("Authorization", &format!("Bearer {}", y.write_key))],
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

/// Scenario: one device's clock is 3 days behind (sent_at = now − 72 h), another's 2 days
/// ahead; each sends a page view made 2 s before sending. Expected: both accepted (no
/// more 400 `clock_skew` with the tracker retrying forever), each `derived_ts` =
/// received_at − 2 000 exactly (the batch's own offset), and health counts 2 skewed
/// batches.
#[test]
fn a_skewed_clock_is_accepted_and_flagged() {
    away_from_midnight();
    let w = Worker::shared().expect("worker");
    let origin = "https://skewed.example";
    let (site, _) = new_site(w, origin, json!({}));
    for (visitor, offset) in [
        ("visitor-skew-behind", -72 * HOUR),
        ("visitor-skew-ahead", 48 * HOUR),
    ] {
        let sent = now_ms() + offset;
        let a = send(
            w,
            Some(origin),
            &batch(
                &site,
                visitor,
                vec![pv(
                    &format!("evt-{visitor}"),
                    "https://skewed.example/",
                    sent - 2_000,
                )],
                sent,
            ),
        );
        assert_eq!(statuses(&a), ["accepted"], "{}", a.text);
    }
    for r in w
        .query(&format!(
            "SELECT received_at, derived_ts FROM events WHERE site_id = '{}'",
            site.id
        ))
        .expect("rows")
    {
        assert_eq!(
            r["derived_ts"].as_i64(),
            r["received_at"].as_i64().map(|t| t - 2_000),
            "{r}"
        );
    }
    let h = health(w, &site);
    assert_eq!(h["totals"]["clock_skewed_batches"], 2, "{h}");
    assert_eq!(h["totals"]["accepted"], 2, "{h}");
}

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
/// by cursor give the expected slices; and the list is refused without a key (401), with
/// a malformed key, the read key or another site's write key (403).
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
    assert_error(&list("", Some("clw_not-a-real-key")), 403, "forbidden");
    assert_error(&list("", Some(&site.read_key)), 403, "forbidden");
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
