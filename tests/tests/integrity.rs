//! Integrity against the real worker: an import cut off half-way leaves no event without a
//! session (the visitor is queued in the same transaction as its events); a refused event
//! makes no lead; an erasure scrubs the email from every stored field, leaves a tombstone
//! that no late beacon, import or conversion gets past, and is lifted only explicitly.

use closeloop_e2e::http::Answer;
use closeloop_e2e::openapi::conforms;
use closeloop_e2e::receiver::{Receiver, Reply};
use closeloop_e2e::worker::{Site, Worker};
use closeloop_e2e::{now_ms, wait_for};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn import(w: &Worker, site: &Site, body: &Value) -> Answer {
    w.call(
        "POST",
        &format!("/v1/sites/{}/events:import", site.id),
        Some(&site.write_key),
        Some(body),
    )
    .expect("import")
}

/// 100 batches of 5 page views each (800 D1 statements: one request's most).
fn big_import(tag: &str, t: i64) -> Value {
    Value::Array(
        (0..100)
            .map(|b| {
                json!({"visitor_id": format!("cut-{tag}-visitor-{b:03}"), "events": (0..5).map(|e| json!({
                    "id": format!("cut-{tag}-{b:03}-{e}"), "type": "pageview",
                    "created_at": t + e * 60_000, "url": format!("https://cut.example/p{e}")})).collect::<Vec<_>>()})
            })
            .collect(),
    )
}

/// Events stored without a session whose visitor is not queued for sessionisation: what a
/// flush would never repair.
fn orphans(w: &Worker, site: &str) -> i64 {
    w.count(&format!(
        "SELECT count(*) FROM events e WHERE e.site_id = '{site}' AND e.session_id IS NULL \
         AND NOT EXISTS (SELECT 1 FROM session_queue q WHERE q.site_id = e.site_id \
           AND q.visitor_id = e.visitor_id)"
    ))
    .expect("orphans")
}

/// Scenario: an import of 100 visitors' batches (500 events) is cut off half-way: the worker
/// is killed while it stores them (the delay is half of what a whole import took). Expected:
/// some but not all events are stored, and every stored event without a session has its
/// visitor queued; after a restart, one flush gives every stored event a session. (Before
/// the fix the import stored events, then sessionised in a second step: a cut between left
/// events that no flush would ever see.)
#[test]
fn an_import_cut_off_leaves_no_event_without_a_session() {
    let mut w = Worker::start().expect("worker");
    let t = now_ms() - 3_600_000;
    // how long a whole import takes, warm
    let warm = w.create_site(&["https://cut.example"]).expect("site");
    assert_eq!(import(&w, &warm, &big_import("warm0", t)).status, 200);
    let started = Instant::now();
    let a = import(&w, &warm, &big_import("warm1", t));
    assert_eq!(a.json["accepted"], 500, "{}", a.text);
    let whole = started.elapsed();
    let mut delay = whole / 2;
    for attempt in 0..5 {
        let site = w.create_site(&["https://cut.example"]).expect("site");
        let body = big_import(&format!("a{attempt}"), t);
        let base = w.base.clone();
        let key = site.write_key.clone();
        let id = site.id.clone();
        let job = std::thread::spawn(move || {
            closeloop_e2e::http::request(
                "POST",
                &format!("{base}/v1/sites/{id}/events:import"),
                &[
                    ("Content-Type", "application/json"),
                    ("Authorization", &format!("Bearer {key}")),
                ],
                Some(&body.to_string()),
            )
        });
        std::thread::sleep(delay);
        w.stop();
        let _ = job.join();
        w.restart().expect("restart");
        let stored = w
            .count(&format!(
                "SELECT count(*) FROM events WHERE site_id = '{}'",
                site.id
            ))
            .expect("count");
        if stored == 0 {
            delay += whole / 4;
            continue;
        }
        if stored == 500 {
            delay /= 2;
            continue;
        }
        assert_eq!(orphans(&w, &site.id), 0, "events no flush would sessionise");
        w.flush_sessions(Some(&site.id)).expect("flush");
        let unsessioned = w
            .count(&format!(
                "SELECT count(*) FROM events WHERE site_id = '{}' AND session_id IS NULL",
                site.id
            ))
            .expect("count");
        assert_eq!(unsessioned, 0, "{stored} stored");
        return;
    }
    panic!("no attempt cut the import half-way (a whole import took {whole:?})");
}

/// Scenario: a site lets a visitor send 2 events a day. The visitor sends two page views
/// (accepted), then an `identify` (quota@example.com) and a form with another email
/// (form@example.com): both rejected `visitor_quota_exceeded`. Expected: no lead and no
/// visitor↔lead link was made.
#[test]
fn a_refused_event_makes_no_lead() {
    let w = Worker::shared().expect("worker");
    let origin = "https://refused.example";
    let id = format!("refused{}x{}", std::process::id(), now_ms() % 1_000_000_000);
    let a = w
        .admin(
            "POST",
            "/v1/admin/sites",
            Some(&json!({"id": id, "allowed_origins": [origin], "max_events_per_visitor_day": 2})),
        )
        .expect("site");
    assert_eq!(a.status, 201, "{}", a.text);
    let now = now_ms();
    let batch = |events: Value| {
        json!({"site_id": id, "visitor_id": "refused-visitor-1", "sent_at": now, "events": events})
            .to_string()
    };
    let first = w
        .collect(
            origin,
            &batch(json!([
                {"id": "refused-ev-1", "type": "pageview", "created_at": now - 2000, "url": "https://refused.example/"},
                {"id": "refused-ev-2", "type": "pageview", "created_at": now - 1000, "url": "https://refused.example/a"}])),
        )
        .expect("collect");
    assert_eq!(first.json["accepted"], 2, "{}", first.text);
    let second = w
        .collect(
            origin,
            &batch(json!([
                {"id": "refused-ev-3", "type": "identify", "created_at": now - 500, "url": "https://refused.example/a",
                 "email": "quota@example.com"},
                {"id": "refused-ev-4", "type": "form_submit", "created_at": now - 400, "url": "https://refused.example/a",
                 "form": {"fields": ["email"], "values": {"email": "form@example.com"}}}])),
        )
        .expect("collect");
    assert_eq!(second.json["rejected"], 2, "{}", second.text);
    assert_eq!(
        second.json["results"][0]["error"]["code"],
        "visitor_quota_exceeded"
    );
    for table in ["leads", "lead_visitors"] {
        let n = w
            .count(&format!(
                "SELECT count(*) FROM {table} WHERE site_id = '{id}'"
            ))
            .expect("count");
        assert_eq!(n, 0, "{table}");
    }
}

/// Every row of the site, as lower-case JSON text.
fn everything(w: &Worker, site: &str) -> String {
    let mut out = String::new();
    for table in [
        "events",
        "sessions",
        "visitors",
        "leads",
        "lead_visitors",
        "conversions",
        "webhook_outbox",
        "session_queue",
        "audit_log",
        "tombstones",
        "webhooks",
    ] {
        let rows = w
            .query(&format!("SELECT * FROM {table} WHERE site_id = '{site}'"))
            .expect("rows");
        out.push_str(&serde_json::to_string(&rows).unwrap_or_default());
    }
    out.to_lowercase()
}

/// Scenario (emails written in mixed case on purpose):
/// - Erase.Me@Example.com's device V1 reads a page and sends the form (name Era); the CRM
///   closes her deal (12.00 USD); a webhook is registered just before, so her `lead.created`
///   waits in the outbox.
/// - Another person on V2 identifies as other@example.com with the trait `assistant:
///   ERASE.ME@example.com` and tracks `invite` with `invitee: erase.me%40example.com`.
/// - A third lead (third@example.com) has the company `Erase.Me@Example.com's team`.
///
/// `DELETE .../leads/erase.me%40example.com` with the manage key erases 1 visitor, 2 events,
/// 1 session, 1 deal, and scrubs 4 rows of others (V2's two events; the third lead's
/// `identify`, whose traits hold the company, and her lead row).
/// Afterwards the email — in any case, plain or percent-encoded — is in no row of the site;
/// V2's events and the third lead remain; her delivery is gone; the audit log has
/// `lead.erased` naming a 64-hex tombstone, not her.
///
/// Then nothing brings her back: a late beacon from V1 made before the erasure (a page
/// view and the form with her email) is rejected `erased` and stores nothing; a new page
/// view from V1 made after the erasure is accepted (a new, anonymous visit); an import of
/// her `identify` from a new device is rejected `erased`; a deal by email or by her lead id
/// is 409 `lead_erased`, a CSV row `rejected`; her journey stays 404 and no webhook is sent
/// about her. Lifting the tombstone (manage key) lets a new `identify` make her lead again;
/// lifting it twice is 404.
#[test]
fn an_erasure_scrubs_every_field_and_nothing_brings_the_lead_back() {
    let w = Worker::shared().expect("worker");
    let origin = "https://erase.example";
    let (site, manage) = w.create_managed_site(&[origin]).expect("site");
    let receiver = Receiver::start(|_| Reply::Ok).expect("receiver");
    let t = now_ms() - 2 * 3_600_000;
    let hook = w
        .call(
            "POST",
            &format!("/v1/sites/{}/webhooks", site.id),
            Some(&manage),
            Some(&json!({"url": receiver.url("/hook")})),
        )
        .expect("webhook");
    assert_eq!(hook.status, 201, "{}", hook.text);
    let a = import(
        w,
        &site,
        &json!([
            {"visitor_id": "erase-v1-device", "events": [
                {"id": "erase-v1-e1", "type": "pageview", "created_at": t, "url": "https://erase.example/pricing"},
                {"id": "erase-v1-e2", "type": "form_submit", "created_at": t + 60_000, "url": "https://erase.example/pricing",
                 "form": {"fields": ["email", "name"], "values": {"email": "Erase.Me@Example.com", "name": "Era"}}}]},
            {"visitor_id": "erase-v2-device", "events": [
                {"id": "erase-v2-e1", "type": "identify", "created_at": t, "url": "https://erase.example/",
                 "email": "other@example.com", "traits": {"assistant": "ERASE.ME@example.com"}},
                {"id": "erase-v2-e2", "type": "track", "created_at": t + 1000, "url": "https://erase.example/",
                 "name": "invite", "props": {"invitee": "erase.me%40example.com"}}]},
            {"visitor_id": "erase-v3-device", "events": [
                {"id": "erase-v3-e1", "type": "identify", "created_at": t, "url": "https://erase.example/",
                 "email": "third@example.com", "traits": {"company": "Erase.Me@Example.com's team"}}]}
        ]),
    );
    assert_eq!(a.json["accepted"], 5, "{}", a.text);
    let deal = |body: Value| {
        w.call(
            "POST",
            &format!("/v1/sites/{}/conversions", site.id),
            Some(&site.write_key),
            Some(&body),
        )
        .expect("deal")
    };
    let d = deal(
        json!({"deal_id": "erase-deal-1", "email": "erase.me@example.com",
                        "revenue": 12, "currency": "USD", "closed_at": "2026-03-05T00:00:00Z"}),
    );
    assert_eq!(d.status, 201, "{}", d.text);
    let lead_id = d.json["conversion"]["lead_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    w.flush_sessions(Some(&site.id)).expect("flush");
    let pending = w
        .count(&format!(
            "SELECT count(*) FROM webhook_outbox WHERE site_id = '{}' AND lead_id = '{lead_id}'",
            site.id
        ))
        .expect("outbox");
    assert_eq!(pending, 2, "her lead.created and customer.created wait");

    let erased = w
        .call(
            "DELETE",
            &format!("/v1/sites/{}/leads/erase.me%40example.com", site.id),
            Some(&manage),
            None,
        )
        .expect("erase");
    assert_eq!(erased.status, 200, "{}", erased.text);
    conforms(&erased, "Erasure");
    assert_eq!(
        erased.json["erased"],
        json!({"visitors": 1, "events": 2, "sessions": 1, "conversions": 1, "scrubbed": 4})
    );
    let all = everything(w, &site.id);
    for trace in ["erase.me@example.com", "erase.me%40example.com"] {
        assert!(!all.contains(trace), "`{trace}` is still stored: {all}");
    }
    for (table, n) in [("events", 3), ("leads", 2)] {
        let got = w
            .count(&format!(
                "SELECT count(*) FROM {table} WHERE site_id = '{}'",
                site.id
            ))
            .expect("count");
        assert_eq!(got, n, "{table}");
    }
    let deliveries = w
        .count(&format!(
            "SELECT count(*) FROM webhook_outbox WHERE site_id = '{}' AND lead_id = '{lead_id}'",
            site.id
        ))
        .expect("outbox");
    assert_eq!(deliveries, 0, "her deliveries went with her");
    let audit = w
        .call(
            "GET",
            &format!("/v1/sites/{}/audit", site.id),
            Some(&manage),
            None,
        )
        .expect("audit");
    let entry = &audit.json["entries"][0];
    assert_eq!(entry["action"], "lead.erased");
    assert!(entry["target"].as_str().is_some_and(|t| t.len() == 64));

    // a late beacon of hers, made before the erasure: refused, nothing stored
    let now = now_ms();
    let late = json!({"site_id": site.id, "visitor_id": "erase-v1-device", "sent_at": now, "events": [
        {"id": "erase-late-1", "type": "pageview", "created_at": now - 60_000, "url": "https://erase.example/again"},
        {"id": "erase-late-2", "type": "form_submit", "created_at": now - 50_000, "url": "https://erase.example/again",
         "form": {"fields": ["email"], "values": {"email": "erase.me@example.com"}}}]});
    let a = w.collect(origin, &late.to_string()).expect("late beacon");
    assert_eq!(a.status, 200, "{}", a.text);
    let codes: Vec<&str> = a.json["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["error"]["code"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(codes, vec!["erased", "erased"], "{}", a.text);
    let v1 = |table: &str| {
        w.count(&format!(
            "SELECT count(*) FROM {table} WHERE site_id = '{}' AND visitor_id = 'erase-v1-device'",
            site.id
        ))
        .expect("count")
    };
    assert_eq!(
        (v1("events"), v1("visitors"), v1("lead_visitors")),
        (0, 0, 0)
    );
    // a new visit from the same device after the erasure is a new, anonymous visitor
    std::thread::sleep(Duration::from_millis(10));
    let later = now_ms();
    let fresh = json!({"site_id": site.id, "visitor_id": "erase-v1-device", "sent_at": later, "events": [
        {"id": "erase-fresh-1", "type": "pageview", "created_at": later, "url": "https://erase.example/blog"}]});
    let a = w.collect(origin, &fresh.to_string()).expect("new visit");
    assert_eq!(a.json["accepted"], 1, "{}", a.text);
    // her identify from a new device, imported: refused
    let a = import(
        w,
        &site,
        &json!({"visitor_id": "erase-v9-device", "events": [
            {"id": "erase-v9-e1", "type": "identify", "created_at": t, "url": "https://erase.example/",
             "email": "ERASE.ME@example.com"}]}),
    );
    assert_eq!(
        a.json["results"][0]["error"]["code"], "erased",
        "{}",
        a.text
    );
    // her deals: refused by email and by lead id, in JSON and CSV
    let by_email = deal(
        json!({"deal_id": "erase-deal-2", "email": "Erase.Me@Example.com",
                               "revenue": 5, "currency": "USD", "closed_at": "2026-03-06T00:00:00Z"}),
    );
    assert_eq!(
        (by_email.status, by_email.error_code()),
        (409, Some("lead_erased"))
    );
    let by_lead = deal(json!({"deal_id": "erase-deal-3", "lead_id": lead_id,
                              "revenue": 5, "currency": "USD", "closed_at": "2026-03-06T00:00:00Z"}));
    assert_eq!(
        (by_lead.status, by_lead.error_code()),
        (409, Some("lead_erased"))
    );
    let csv = closeloop_e2e::http::request(
        "POST",
        &w.url(&format!("/v1/sites/{}/conversions:import", site.id)),
        &[
            ("Content-Type", "text/csv"),
            ("Authorization", &format!("Bearer {}", site.write_key)),
        ],
        Some("deal_id,email,revenue,currency,closed_at\nerase-deal-4,erase.me@example.com,5,USD,2026-03-06\n"),
    )
    .expect("csv");
    assert_eq!(
        csv.json["rows"][0]["error"]["code"], "lead_erased",
        "{}",
        csv.text
    );
    let all = everything(w, &site.id);
    assert!(!all.contains("erase.me@example.com"), "{all}");
    let journey = w
        .call(
            "GET",
            &format!("/v1/sites/{}/leads/erase.me%40example.com", site.id),
            Some(&site.read_key),
            None,
        )
        .expect("journey");
    assert_eq!(journey.status, 404, "{}", journey.text);
    let run = w
        .call(
            "POST",
            &format!("/v1/sites/{}/webhooks:deliver", site.id),
            Some(&manage),
            Some(&json!({})),
        )
        .expect("deliver");
    assert_eq!(run.status, 200, "{}", run.text);
    let hits = receiver.wait_for(2, Duration::from_secs(5));
    let emails: Vec<&str> = hits
        .iter()
        .filter_map(|h| h.body["lead"]["email"].as_str())
        .collect();
    assert!(!emails.iter().any(|e| e.contains("erase")), "{emails:?}");

    // lifted explicitly: she can be recorded again
    let lift = w
        .call(
            "DELETE",
            &format!("/v1/sites/{}/tombstones/Erase.Me%40example.com", site.id),
            Some(&manage),
            None,
        )
        .expect("lift");
    assert_eq!(lift.status, 200, "{}", lift.text);
    conforms(&lift, "TombstoneLifted");
    let again = w
        .call(
            "DELETE",
            &format!("/v1/sites/{}/tombstones/erase.me%40example.com", site.id),
            Some(&manage),
            None,
        )
        .expect("lift again");
    assert_eq!(
        (again.status, again.error_code()),
        (404, Some("unknown_tombstone"))
    );
    let a = import(
        w,
        &site,
        &json!({"visitor_id": "erase-v9-device", "events": [
            {"id": "erase-v9-e2", "type": "identify", "created_at": now, "url": "https://erase.example/",
             "email": "erase.me@example.com"}]}),
    );
    assert_eq!(a.json["accepted"], 1, "{}", a.text);
    wait_for("her journey", Duration::from_secs(10), || {
        let j = w
            .call(
                "GET",
                &format!("/v1/sites/{}/leads/erase.me%40example.com", site.id),
                Some(&site.read_key),
                None,
            )
            .ok()?;
        (j.status == 200).then_some(())
    })
    .expect("the lead again");
}
