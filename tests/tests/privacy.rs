//! What is kept of a visitor, against the real worker: a request with `Sec-GPC: 1` stores
//! nothing; URLs and referrers lose fragments, every query key but UTM tags, click ids and
//! the site's own, and email addresses; titles lose email addresses; geo keeps country,
//! region and city unless the site opts in to more; the IP-hash salt is the deployment's
//! own random value.

use closeloop_e2e::http;
use closeloop_e2e::now_ms;
use closeloop_e2e::openapi::conforms;
use closeloop_e2e::worker::{Site, Worker};
use serde_json::{json, Value};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

fn beacon(w: &Worker, origin: &str, body: &Value, gpc: bool) -> http::Answer {
    let mut headers = vec![
        ("Content-Type", "text/plain;charset=UTF-8"),
        ("Origin", origin),
        ("User-Agent", CHROME),
    ];
    if gpc {
        headers.push(("Sec-GPC", "1"));
    }
    http::request(
        "POST",
        &w.url("/v1/collect"),
        &headers,
        Some(&body.to_string()),
    )
    .expect("collect")
}

fn set_privacy(w: &Worker, site: &Site, privacy: Value) -> http::Answer {
    let a = w
        .admin(
            "PUT",
            &format!("/v1/admin/sites/{}/privacy", site.id),
            Some(&privacy),
        )
        .expect("privacy");
    assert_eq!(a.status, 200, "{}", a.text);
    conforms(&a, "SitePrivacy");
    a
}

fn count(w: &Worker, table: &str, site: &str) -> i64 {
    w.count(&format!(
        "SELECT count(*) FROM {table} WHERE site_id = '{site}'"
    ))
    .expect("count")
}

/// Scenario: a browser with Global Privacy Control sends a batch (a page view and an
/// `identify`) to /v1/collect, and a server relays the same under `Sec-GPC: 1` to
/// events:import. Expected: both answer 200 with every event `rejected` with code `gpc`
/// (the beacon's answer with the CORS header, so the tracker reads it and drops them);
/// nothing of the site is stored — no event, visitor, lead or queue mark. The same batch
/// without the header is stored (2 events, 1 lead).
#[test]
fn a_request_with_sec_gpc_stores_nothing() {
    let w = Worker::shared().expect("worker");
    let origin = "https://gpc.example";
    let site = w.create_site(&[origin]).expect("site");
    let now = now_ms();
    let events = json!([
        {"id": "gpc-ev-0001", "type": "pageview", "created_at": now - 1000, "url": "https://gpc.example/"},
        {"id": "gpc-ev-0002", "type": "identify", "created_at": now - 500, "url": "https://gpc.example/",
         "email": "gpc@example.com"}]);
    let batch = json!({"site_id": site.id, "visitor_id": "gpc-visitor-1", "sent_at": now, "events": events});
    let a = beacon(w, origin, &batch, true);
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.header("access-control-allow-origin"), Some(origin));
    assert_eq!(
        (a.json["accepted"].as_u64(), a.json["rejected"].as_u64()),
        (Some(0), Some(2)),
        "{}",
        a.text
    );
    for r in a.json["results"].as_array().expect("results") {
        assert_eq!(r["status"], "rejected");
        assert_eq!(r["error"]["code"], "gpc");
    }
    let import = http::request(
        "POST",
        &w.url(&format!("/v1/sites/{}/events:import", site.id)),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &format!("Bearer {}", site.write_key)),
            ("Sec-GPC", "1"),
        ],
        Some(&json!({"visitor_id": "gpc-visitor-2", "events": events}).to_string()),
    )
    .expect("import");
    assert_eq!(
        (import.status, import.json["rejected"].as_u64()),
        (200, Some(2)),
        "{}",
        import.text
    );
    assert_eq!(import.json["results"][1]["error"]["code"], "gpc");
    for table in [
        "events",
        "visitors",
        "leads",
        "lead_visitors",
        "session_queue",
    ] {
        assert_eq!(count(w, table, &site.id), 0, "{table}");
    }
    let a = beacon(w, origin, &batch, false);
    assert_eq!(a.json["accepted"], 2, "{}", a.text);
    assert_eq!(
        (count(w, "events", &site.id), count(w, "leads", &site.id)),
        (2, 1)
    );
}

/// Scenario: a site allows the query key `page`. A beacon's page view has the URL
/// `https://urls.example/u/ann@example.com?token=s3cr3t&utm_source=google&utm_medium=cpc&utm_campaign=spring&gclid=abc&page=2&email=bob%40example.com#reset`,
/// the referrer `https://www.google.com/search?q=ann%40example.com&hl=en#x`, the title
/// `Welcome back, Ann.Lee@Example.com`. Expected stored: URL
/// `https://urls.example/u/[email]?utm_source=google&utm_medium=cpc&utm_campaign=spring&gclid=abc&page=2`,
/// path `/u/[email]`, referrer `https://www.google.com/search`, title
/// `Welcome back, [email]`; the session is still Paid Search / google / cpc / spring (the
/// tags stayed), and neither address, `s3cr3t` nor `#` is stored anywhere.
#[test]
fn urls_keep_only_what_attribution_and_the_site_need_and_no_email() {
    let w = Worker::shared().expect("worker");
    let origin = "https://urls.example";
    let site = w.create_site(&[origin]).expect("site");
    set_privacy(w, &site, json!({"query_keys": ["Page"]}));
    let now = now_ms();
    let batch = json!({"site_id": site.id, "visitor_id": "urls-visitor-1", "sent_at": now, "events": [
        {"id": "urls-ev-0001", "type": "pageview", "created_at": now - 1000,
         "url": "https://urls.example/u/ann@example.com?token=s3cr3t&utm_source=google&utm_medium=cpc&utm_campaign=spring&gclid=abc&page=2&email=bob%40example.com#reset",
         "referrer": "https://www.google.com/search?q=ann%40example.com&hl=en#x",
         "title": "Welcome back, Ann.Lee@Example.com"}]});
    let a = beacon(w, origin, &batch, false);
    assert_eq!(a.json["accepted"], 1, "{}", a.text);
    let rows = w
        .query(&format!(
            "SELECT url, path, referrer, title FROM events WHERE site_id = '{}'",
            site.id
        ))
        .expect("rows");
    assert_eq!(
        rows,
        vec![json!({
            "url": "https://urls.example/u/[email]?utm_source=google&utm_medium=cpc&utm_campaign=spring&gclid=abc&page=2",
            "path": "/u/[email]",
            "referrer": "https://www.google.com/search",
            "title": "Welcome back, [email]"})]
    );
    w.flush_sessions(Some(&site.id)).expect("flush");
    let session = w
        .query(&format!(
            "SELECT channel, source, medium, campaign, landing_path FROM sessions WHERE site_id = '{}'",
            site.id
        ))
        .expect("session");
    assert_eq!(
        session,
        vec![
            json!({"channel": "Paid Search", "source": "google", "medium": "cpc",
                    "campaign": "spring", "landing_path": "/u/[email]"})
        ]
    );
    let all = serde_json::to_string(
        &w.query(&format!(
            "SELECT * FROM events WHERE site_id = '{}'",
            site.id
        ))
        .expect("events"),
    )
    .unwrap_or_default()
    .to_lowercase();
    for trace in [
        "ann@example.com",
        "ann%40example.com",
        "ann.lee@",
        "bob",
        "s3cr3t",
        "#",
    ] {
        assert!(!all.contains(trace), "`{trace}` stored: {all}");
    }
}

/// Scenario: miniflare's placeholder `request.cf` (Austin, Texas (TX), US, NA, 78701,
/// America/Chicago, 30.27130 / -97.74260, AS395747, colo DFW). A site with default settings
/// stores country, region, region code, city and continent only; after the site opts in to
/// every geo field (`postal_code`, `coordinates`, `timezone`, `network`, `colo`), the next
/// event stores all of them. An unknown field (`street`) is 400 `invalid_privacy`, a body that
/// is not one JSON object (`[]`) 400 `invalid_body`, and the
/// change is in the audit log (`privacy.changed`).
#[test]
fn geo_is_kept_to_country_region_and_city_unless_the_site_opts_in() {
    let w = Worker::shared().expect("worker");
    let origin = "https://geo-min.example";
    let site = w.create_site(&[origin]).expect("site");
    let send = |id: &str| {
        let now = now_ms();
        let batch = json!({"site_id": site.id, "visitor_id": "geo-min-visitor", "sent_at": now,
            "events": [{"id": id, "type": "pageview", "created_at": now - 100, "url": "https://geo-min.example/"}]});
        let a = beacon(w, origin, &batch, false);
        assert_eq!(a.json["accepted"], 1, "{}", a.text);
    };
    let geo = |id: &str| {
        w.query(&format!(
            "SELECT country, region, region_code, city, continent, postal_code, timezone, latitude, \
             longitude, asn, as_org, colo, is_eu FROM events WHERE site_id = '{}' AND event_id = '{id}'",
            site.id
        ))
        .expect("geo")
    };
    send("geo-min-ev-0001");
    assert_eq!(
        geo("geo-min-ev-0001"),
        vec![
            json!({"country": "US", "region": "Texas", "region_code": "TX", "city": "Austin",
            "continent": "NA", "postal_code": null, "timezone": null, "latitude": null,
            "longitude": null, "asn": null, "as_org": null, "colo": null, "is_eu": 0})
        ]
    );
    let bad = w
        .admin(
            "PUT",
            &format!("/v1/admin/sites/{}/privacy", site.id),
            Some(&json!({"geo": ["street"]})),
        )
        .expect("bad");
    assert_eq!(
        (bad.status, bad.error_code()),
        (400, Some("invalid_privacy")),
        "{}",
        bad.text
    );
    // serde reads a struct from an array as well: every body that is not one object is
    // refused before it is read (the schema fuzz's `PUT .../privacy` with `[]`, which
    // answered 200 and reset the settings)
    for body in [
        json!([]),
        json!([["postal_code"], []]),
        json!("geo"),
        json!(null),
    ] {
        let a = w
            .admin(
                "PUT",
                &format!("/v1/admin/sites/{}/privacy", site.id),
                Some(&body),
            )
            .expect("not an object");
        assert_eq!(
            (a.status, a.error_code()),
            (400, Some("invalid_body")),
            "{body}: {}",
            a.text
        );
    }
    let a = set_privacy(
        w,
        &site,
        json!({"geo": ["postal_code", "coordinates", "timezone", "network", "colo"]}),
    );
    assert_eq!(
        a.json["privacy"]["geo"],
        json!(["postal_code", "coordinates", "timezone", "network", "colo"])
    );
    send("geo-min-ev-0002");
    let row = &geo("geo-min-ev-0002")[0];
    assert_eq!(
        (
            &row["postal_code"],
            &row["timezone"],
            &row["latitude"],
            &row["longitude"],
            &row["asn"],
            &row["colo"]
        ),
        (
            &json!("78701"),
            &json!("America/Chicago"),
            &json!(30.2713),
            &json!(-97.7426),
            &json!(395747),
            &json!("DFW")
        )
    );
    let audit = w
        .admin("GET", &format!("/v1/admin/audit?site={}", site.id), None)
        .expect("audit");
    assert_eq!(audit.json["entries"][0]["action"], "privacy.changed");
}

/// Scenario: the deployment's salts. Expected: the IP-hash salt and the tombstone salt are
/// each 64 hex digits of random, different from each other (migration 0011 made them; the
/// worker makes a missing one at first use), so a client's rate-limit key is never the hash
/// of a bare IP address.
#[test]
fn the_ip_hash_salt_is_random_and_never_empty() {
    let w = Worker::shared().expect("worker");
    let rows = w
        .query("SELECT name, value FROM deployment_secrets ORDER BY name")
        .expect("secrets");
    let names: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, vec!["ip_salt", "tombstone_salt"]);
    let values: Vec<&str> = rows.iter().filter_map(|r| r["value"].as_str()).collect();
    for v in &values {
        assert_eq!(v.len(), 64, "{v}");
        assert!(v.bytes().all(|b| b.is_ascii_hexdigit()), "{v}");
    }
    assert_ne!(values[0], values[1]);
}
