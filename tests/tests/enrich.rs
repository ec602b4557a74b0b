//! Enrichment you can trust (issue 16) against the real worker under wrangler local mode:
//! each flagged event's reason stored and shown by `GET .../reports/bots`, Client Hints
//! taking precedence over the user agent, in-app browsers counted as people, and
//! `POST /v1/admin/sites/{site}/reclassify` bringing stored events, sessions and reports
//! in line with the lists the worker has.
//!
//! Each test creates its own site, so tests share one worker and run in parallel.

use closeloop_e2e::http::{self, Answer};
use closeloop_e2e::now_ms;
use closeloop_e2e::worker::{Site, Worker};
use serde_json::{json, Value};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const CHROME_ANDROID: &str = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36";
const SAFARI_IOS: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const GOOGLE_OTHER: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 (compatible; GoogleOther)";
const SNAPCHAT: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Snapchat/12.63.0.40 (like Safari/8617.2.4.10.8, panda)";

/// Extra request headers.
type Headers<'a> = Vec<(&'a str, &'a str)>;

/// One page view `ago_ms` before now, on `url`, arriving from `referrer`.
fn view(site: &str, visitor: &str, id: &str, url: &str, referrer: &str, ago_ms: i64) -> String {
    let now = now_ms();
    json!({"site_id": site, "visitor_id": visitor, "sent_at": now, "events": [
        {"id": id, "type": "pageview", "created_at": now - ago_ms, "url": url, "referrer": referrer, "title": "T"}
    ]})
    .to_string()
}

/// POSTs a batch as a browser on `origin` would, with these extra headers.
fn send(worker: &Worker, origin: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut h = vec![
        ("Content-Type", "text/plain;charset=UTF-8"),
        ("Origin", origin),
    ];
    h.extend_from_slice(headers);
    let a = http::request("POST", &worker.url("/v1/collect"), &h, Some(body)).expect("collect");
    assert_eq!(
        a.status,
        200,
        "{headers:?}: {}\n{}",
        a.text,
        worker.log_tail()
    );
    assert_eq!(a.json["accepted"], 1, "{}", a.text);
    a
}

fn event_row(worker: &Worker, site: &Site, id: &str) -> Value {
    worker
        .query(&format!(
            "SELECT device_type, browser, os, is_bot, bot_reason, agent_id FROM events \
             WHERE site_id = '{}' AND event_id = '{id}'",
            site.id
        ))
        .expect("row")
        .into_iter()
        .next()
        .expect("the event is stored")
}

fn bots_report(worker: &Worker, site: &str, key: Option<&str>, query: &str) -> Answer {
    http::get(
        &worker.url(&format!("/v1/sites/{site}/reports/bots{query}")),
        key,
    )
    .expect("bots report")
}

/// Scenario: five visitors of one site send one page view each — Chrome on Windows; a
/// crawler whose user agent says `GoogleOther` (crawler-user-agents' pattern
/// `GoogleOther`); Chrome whose `Sec-CH-UA` brand list says `HeadlessChrome`; a person in
/// Snapchat's in-app browser; and Chrome on a reduced Android user agent that says
/// "Mobile" while its hints say `Sec-CH-UA-Mobile: ?0` on `"Android"` (a tablet).
/// Expected, worked out by hand: 2 flagged events, with reasons
/// `crawler-user-agents:GoogleOther` and `client-hints:HeadlessChrome`, 1 event, visitor
/// and session each; Snapchat is a person, browser `Snapchat`; the Android one a tablet;
/// the bots report says 5 events, 2 flagged, and names the three lists.
#[test]
fn bot_reasons_are_stored_and_shown_in_the_bots_report() {
    let worker = Worker::shared().expect("worker");
    let origin = "https://bots.example";
    let site = worker.create_site(&[origin]).expect("site");
    let page = format!("{origin}/");
    let sends: [(&str, &str, Headers<'_>); 5] = [
        ("evt-bot-chrome", "visitor-bot-0001", vec![("User-Agent", CHROME)]),
        ("evt-bot-gother", "visitor-bot-0002", vec![("User-Agent", GOOGLE_OTHER)]),
        (
            "evt-bot-headls",
            "visitor-bot-0003",
            vec![
                ("User-Agent", CHROME),
                ("Sec-CH-UA", "\"HeadlessChrome\";v=\"131\", \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\""),
                ("Sec-CH-UA-Mobile", "?0"),
                ("Sec-CH-UA-Platform", "\"Windows\""),
            ],
        ),
        ("evt-bot-snapch", "visitor-bot-0004", vec![("User-Agent", SNAPCHAT)]),
        (
            "evt-bot-tablet",
            "visitor-bot-0005",
            vec![
                ("User-Agent", CHROME_ANDROID),
                ("Sec-CH-UA", "\"Google Chrome\";v=\"131\", \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\""),
                ("Sec-CH-UA-Mobile", "?0"),
                ("Sec-CH-UA-Platform", "\"Android\""),
            ],
        ),
    ];
    for (id, visitor, headers) in &sends {
        send(
            worker,
            origin,
            headers,
            &view(&site.id, visitor, id, &page, "", 1_000),
        );
    }
    let r = event_row(worker, &site, "evt-bot-chrome");
    assert_eq!(
        (r["is_bot"].clone(), r["bot_reason"].clone()),
        (json!(0), Value::Null),
        "{r}"
    );
    let r = event_row(worker, &site, "evt-bot-gother");
    assert_eq!(r["bot_reason"], "crawler-user-agents:GoogleOther", "{r}");
    assert_eq!(
        (r["is_bot"].clone(), r["device_type"].clone()),
        (json!(1), json!("bot")),
        "{r}"
    );
    let r = event_row(worker, &site, "evt-bot-headls");
    assert_eq!(r["bot_reason"], "client-hints:HeadlessChrome", "{r}");
    let r = event_row(worker, &site, "evt-bot-snapch");
    assert_eq!(
        (
            r["is_bot"].clone(),
            r["browser"].clone(),
            r["device_type"].clone()
        ),
        (json!(0), json!("Snapchat"), json!("mobile")),
        "{r}"
    );
    let r = event_row(worker, &site, "evt-bot-tablet");
    assert_eq!(
        (r["device_type"].clone(), r["is_bot"].clone()),
        (json!("tablet"), json!(0)),
        "{r}"
    );
    // the user agent and hints are kept once per site, for re-classification
    let agent = r["agent_id"].as_str().expect("an agent id").to_string();
    let stored = worker
        .query(&format!(
            "SELECT user_agent, hints FROM agents WHERE site_id = '{}' AND agent_id = '{agent}'",
            site.id
        ))
        .expect("agent");
    assert_eq!(stored[0]["user_agent"], CHROME_ANDROID);
    let hints: Value =
        serde_json::from_str(stored[0]["hints"].as_str().expect("hints")).expect("JSON");
    assert_eq!(hints["sec-ch-ua-mobile"], "?0");
    assert_eq!(hints["sec-ch-ua-platform"], "\"Android\"");
    // five requests, five agents: the two Chrome-on-Windows ones differ by their hints
    let agents = worker
        .count(&format!(
            "SELECT count(*) FROM agents WHERE site_id = '{}'",
            site.id
        ))
        .expect("count");
    assert_eq!(agents, 5);

    let a = bots_report(worker, &site.id, Some(&site.read_key), "");
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        (a.json["events"].clone(), a.json["bot_events"].clone()),
        (json!(5), json!(2)),
        "{}",
        a.text
    );
    let rows = a.json["rows"].as_array().expect("rows");
    let mut got: Vec<(String, i64, i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["reason"].as_str().unwrap_or_default().to_string(),
                r["events"].as_i64().unwrap_or(-1),
                r["visitors"].as_i64().unwrap_or(-1),
                r["sessions"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("client-hints:HeadlessChrome".to_string(), 1, 1, 1),
            ("crawler-user-agents:GoogleOther".to_string(), 1, 1, 1),
        ],
        "{}",
        a.text
    );
    let gother = rows
        .iter()
        .find(|r| r["reason"] == "crawler-user-agents:GoogleOther")
        .expect("row");
    assert_eq!(gother["list"], "crawler-user-agents");
    assert_eq!(gother["pattern"], "GoogleOther");
    assert_eq!(gother["user_agent"], GOOGLE_OTHER);
    let lists: Vec<&str> = a.json["lists"]
        .as_array()
        .expect("lists")
        .iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    assert_eq!(lists, ["crawler-user-agents", "closeloop", "isbot"]);

    // attacked: no key, another site's key, a bad range
    let other = worker
        .create_site(&["https://other-bots.example"])
        .expect("site");
    assert_eq!(bots_report(worker, &site.id, None, "").status, 401);
    let a = bots_report(worker, &site.id, Some(&other.read_key), "");
    assert_eq!(
        (a.status, a.error_code()),
        (403, Some("forbidden")),
        "{}",
        a.text
    );
    let a = bots_report(worker, &site.id, Some(&site.read_key), "?from=yesterday");
    assert_eq!(
        (a.status, a.error_code()),
        (400, Some("invalid_parameter")),
        "{}",
        a.text
    );
    let a = bots_report(
        worker,
        &site.id,
        Some(&site.read_key),
        "?from=2026-02-01&to=2026-01-01",
    );
    assert_eq!(
        (a.status, a.error_code()),
        (400, Some("invalid_parameter")),
        "{}",
        a.text
    );
}

/// One step of `POST /v1/admin/sites/{site}/reclassify`.
fn reclassify_step(worker: &Worker, site: &str, cursor: Option<&str>, token: &str) -> Answer {
    let url = match cursor {
        Some(c) => worker.url(&format!(
            "/v1/admin/sites/{site}/reclassify?cursor={}",
            c.replace(':', "%3A")
        )),
        None => worker.url(&format!("/v1/admin/sites/{site}/reclassify")),
    };
    let auth = format!("Bearer {token}");
    http::request("POST", &url, &[("Authorization", &auth)], Some("")).expect("reclassify")
}

/// Writes to the worker's local D1 file: what an older list would have stored (the
/// worker is idle meanwhile: the test waits for every answer first).
fn stale(worker: &Worker, sql: &str) {
    let path = worker.db_path().expect("db");
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .expect("timeout");
    conn.execute_batch(sql).expect("stale write");
}

fn channels(worker: &Worker, site: &Site) -> (Vec<(String, i64)>, i64) {
    let a = http::get(
        &worker.url(&format!(
            "/v1/sites/{}/reports/sources?group_by=channel",
            site.id
        )),
        Some(&site.read_key),
    )
    .expect("report");
    assert_eq!(a.status, 200, "{}", a.text);
    let mut rows: Vec<(String, i64)> = a.json["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap_or_default().to_string(),
                r["visitors"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    rows.sort();
    (rows, a.json["totals"]["visitors"].as_i64().unwrap_or(-1))
}

/// Scenario: three visitors — V1 arrives on a mobile Chrome from the Reddit app
/// (`android-app://com.reddit.frontpage/`), V2 on an iPhone from chatgpt.com, V3 is the
/// `GoogleOther` crawler with no referrer. Stored as the lists of this worker classify
/// them: V1 Organic Social, V2 AI Assistant, V3 a bot (not in reports). Then the rows are
/// made to say what the lists before issue 16 said (written straight into D1): V1 and V2
/// Referral (their sessions), V1's events `tablet` (the old "Android without Mobile"
/// rule applied to the app's user agent), V3 a person on a desktop, agents rows included.
/// Expected by hand: before re-classifying, the channel report shows Direct 1 (V3) and
/// Referral 2; after `reclassify` (every step until done) and nothing else, it shows AI
/// Assistant 1 and Organic Social 1, 2 visitors in all; V1's event is `mobile` again and
/// V3's flagged with its reason.
#[test]
fn reclassify_brings_stored_events_sessions_and_reports_in_line_with_the_lists() {
    // its own worker: the test writes into the D1 file, which other tests' requests to
    // a shared worker must not meet
    let own = Worker::start().expect("worker");
    let worker = &own;
    let origin = "https://reclassify.example";
    let site = worker.create_site(&[origin]).expect("site");
    let page = format!("{origin}/pricing");
    let reddit_ua = "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36";
    send(
        worker,
        origin,
        &[("User-Agent", reddit_ua)],
        &view(
            &site.id,
            "visitor-rc-00001",
            "evt-rc-reddit",
            &page,
            "android-app://com.reddit.frontpage/",
            3_000,
        ),
    );
    send(
        worker,
        origin,
        &[("User-Agent", SAFARI_IOS)],
        &view(
            &site.id,
            "visitor-rc-00002",
            "evt-rc-chatgpt",
            &page,
            "https://chatgpt.com/",
            2_000,
        ),
    );
    send(
        worker,
        origin,
        &[("User-Agent", GOOGLE_OTHER)],
        &view(
            &site.id,
            "visitor-rc-00003",
            "evt-rc-gother",
            &page,
            "",
            1_000,
        ),
    );
    assert_eq!(
        channels(worker, &site),
        (
            vec![
                ("AI Assistant".to_string(), 1),
                ("Organic Social".to_string(), 1)
            ],
            2
        )
    );

    let s = &site.id;
    stale(
        worker,
        &format!(
            "UPDATE sessions SET channel = 'Referral', medium = 'referral' WHERE site_id = '{s}' \
               AND visitor_id IN ('visitor-rc-00001', 'visitor-rc-00002');
             UPDATE events SET device_type = 'tablet' WHERE site_id = '{s}' AND event_id = 'evt-rc-reddit';
             UPDATE sessions SET device_type = 'tablet' WHERE site_id = '{s}' AND visitor_id = 'visitor-rc-00001';
             UPDATE agents SET device_type = 'tablet' WHERE site_id = '{s}' AND agent_id = \
               (SELECT agent_id FROM events WHERE site_id = '{s}' AND event_id = 'evt-rc-reddit');
             UPDATE events SET is_bot = 0, bot_reason = NULL, device_type = 'desktop', session_bot = 0 \
               WHERE site_id = '{s}' AND event_id = 'evt-rc-gother';
             UPDATE sessions SET is_bot = 0, bot_reason = NULL, device_type = 'desktop' \
               WHERE site_id = '{s}' AND visitor_id = 'visitor-rc-00003';
             UPDATE agents SET is_bot = 0, bot_reason = NULL, device_type = 'desktop' WHERE site_id = '{s}' \
               AND agent_id = (SELECT agent_id FROM events WHERE site_id = '{s}' AND event_id = 'evt-rc-gother');"
        ),
    );
    assert_eq!(
        channels(worker, &site),
        (
            vec![("Direct".to_string(), 1), ("Referral".to_string(), 2)],
            3
        ),
        "the stale rows are what the report reads"
    );

    // attacked first: no token, a wrong token, a bad cursor, an unknown site, GET
    let a = http::request(
        "POST",
        &worker.url(&format!("/v1/admin/sites/{s}/reclassify")),
        &[],
        Some(""),
    )
    .expect("no token");
    assert_eq!(a.status, 401, "{}", a.text);
    let a = reclassify_step(worker, s, None, "not-the-token");
    assert_eq!(
        (a.status, a.error_code()),
        (403, Some("forbidden")),
        "{}",
        a.text
    );
    let a = reclassify_step(worker, s, Some("events:soon"), &worker.admin_token);
    assert_eq!(
        (a.status, a.error_code()),
        (400, Some("invalid_cursor")),
        "{}",
        a.text
    );
    let a = reclassify_step(worker, s, Some("whatever"), &worker.admin_token);
    assert_eq!(
        (a.status, a.error_code()),
        (400, Some("invalid_cursor")),
        "{}",
        a.text
    );
    let a = reclassify_step(worker, "no-such-site-rc", None, &worker.admin_token);
    assert_eq!(
        (a.status, a.error_code()),
        (404, Some("unknown_site")),
        "{}",
        a.text
    );
    let a = http::request(
        "GET",
        &worker.url(&format!("/v1/admin/sites/{s}/reclassify")),
        &[("Authorization", &format!("Bearer {}", worker.admin_token))],
        None,
    )
    .expect("GET");
    assert_eq!(a.status, 405, "{}", a.text);

    // every step until done
    let mut cursor: Option<String> = None;
    let (mut changed, mut events, mut queued) = (0, 0, 0);
    for _ in 0..50 {
        let a = reclassify_step(worker, s, cursor.as_deref(), &worker.admin_token);
        assert_eq!(a.status, 200, "{}", a.text);
        changed += a.json["agents_changed"].as_i64().expect("agents_changed");
        events += a.json["events_updated"].as_i64().expect("events_updated");
        queued += a.json["visitors_queued"].as_i64().expect("visitors_queued");
        if a.json["done"] == true {
            cursor = None;
            break;
        }
        cursor = Some(a.json["cursor"].as_str().expect("cursor").to_string());
    }
    assert!(cursor.is_none(), "reclassify never finished");
    // two agents were stale (the Android one, GoogleOther), and their two events
    assert_eq!((changed, events, queued), (2, 2, 3));
    let r = event_row(worker, &site, "evt-rc-reddit");
    assert_eq!(r["device_type"], "mobile", "{r}");
    let r = event_row(worker, &site, "evt-rc-gother");
    assert_eq!(
        (r["is_bot"].clone(), r["bot_reason"].clone()),
        (json!(1), json!("crawler-user-agents:GoogleOther")),
        "{r}"
    );
    // the report flushes the queued visitors first: sessions rebuilt with today's lists
    assert_eq!(
        channels(worker, &site),
        (
            vec![
                ("AI Assistant".to_string(), 1),
                ("Organic Social".to_string(), 1)
            ],
            2
        )
    );
    let sessions = worker
        .query(&format!(
            "SELECT visitor_id, source, medium, device_type, is_bot, bot_reason FROM sessions \
             WHERE site_id = '{s}' ORDER BY visitor_id"
        ))
        .expect("sessions");
    assert_eq!(sessions.len(), 3, "{sessions:?}");
    assert_eq!(sessions[0]["source"], "com.reddit.frontpage");
    assert_eq!(sessions[0]["device_type"], "mobile");
    assert_eq!(sessions[1]["medium"], "ai-assistant");
    assert_eq!(sessions[2]["is_bot"], 1);
    assert_eq!(sessions[2]["bot_reason"], "crawler-user-agents:GoogleOther");
}
