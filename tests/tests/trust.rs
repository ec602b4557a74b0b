//! Hostile beacons (issue 12, the beacon side) against the real worker under wrangler
//! local mode: what a forged or broken beacon can no longer do — come without an `Origin`,
//! record another host, backdate a session past 72 hours, be refused for a skewed clock,
//! claim a verified lead's identity, overwrite a lead's traits — and how every link says
//! how it was made. Each scenario names its expected figures, worked out by hand from the
//! events it sends. Each test creates its own site, so tests share one worker.

use closeloop_e2e::beacon::{
    admin, assert_error, away_from_midnight, batch, count, get, health, new_site, pv, send,
    statuses, HOUR,
};
use closeloop_e2e::openapi::conforms;
use closeloop_e2e::worker::Worker;
use closeloop_e2e::{http, now_ms, root};
use serde_json::{json, Value};

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
