//! The write and read API of issue 6 against the real worker: events:import per event,
//! conversions (idempotency, the 409 on a changed deal, currencies), the CSV imports with
//! bad rows and re-imports, spend replacement, a conversion that arrives before its
//! visitor identifies, every key error, and every answer checked against the schemas of
//! `docs/openapi.json` (a small structural checker: `$ref`, `type`, `required`,
//! `properties`, `additionalProperties: false`, `items`, `enum`, `allOf` / `oneOf` /
//! `anyOf`).

use closeloop_e2e::http::{self, Answer};
use closeloop_e2e::root;
use closeloop_e2e::worker::{Site, Worker};
use serde_json::{json, Value};
use std::sync::OnceLock;

fn openapi() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let text = std::fs::read_to_string(root().join("docs/openapi.json")).expect("openapi");
        serde_json::from_str(&text).expect("openapi JSON")
    })
}

/// Where `value` breaks `schema` (empty when it conforms).
fn check(schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let doc = openapi();
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let target = r
            .strip_prefix('#')
            .and_then(|p| doc.pointer(p))
            .unwrap_or(&Value::Null);
        if target.is_null() {
            return vec![format!("{at}: unresolved {r}")];
        }
        return check(target, value, at);
    }
    let mut out = Vec::new();
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            out.extend(check(s, value, at));
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(any) = schema.get(key).and_then(Value::as_array) {
            if !any.iter().any(|s| check(s, value, at).is_empty()) {
                out.push(format!("{at}: matches none of {key}: {value}"));
            }
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => true,
        });
        if !ok {
            out.push(format!("{at}: expected {types:?}, got {value}"));
            return out;
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(value) {
            out.push(format!("{at}: {value} is not one of {e:?}"));
        }
    }
    if let Some(obj) = value.as_object() {
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = r.as_str() {
                if !obj.contains_key(name) {
                    out.push(format!("{at}: missing required `{name}`"));
                }
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, v) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => out.extend(check(s, v, &format!("{at}.{k}"))),
                None if schema.get("additionalProperties") == Some(&json!(false)) => {
                    out.push(format!("{at}: unexpected member `{k}`"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, v) in list.iter().enumerate() {
            out.extend(check(items, v, &format!("{at}[{i}]")));
        }
    }
    out
}

/// Asserts that an answer's body conforms to `#/components/schemas/{name}`.
fn conforms(a: &Answer, name: &str) {
    let schema = json!({ "$ref": format!("#/components/schemas/{name}") });
    let errors = check(&schema, &a.json, name);
    assert!(
        errors.is_empty(),
        "{name}: {}\n{}",
        errors.join("\n"),
        a.text
    );
}

fn send(
    w: &Worker,
    site: &Site,
    key: Option<&str>,
    method: &str,
    path: &str,
    ct: &str,
    body: Option<&str>,
) -> Answer {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut h = vec![("Content-Type", ct)];
    if let Some(a) = auth.as_deref() {
        h.push(("Authorization", a));
    }
    http::request(
        method,
        &w.url(&format!("/v1/sites/{}/{path}", site.id)),
        &h,
        body,
    )
    .expect("request")
}

fn post_json(w: &Worker, site: &Site, path: &str, body: &Value) -> Answer {
    send(
        w,
        site,
        Some(&site.write_key),
        "POST",
        path,
        "application/json",
        Some(&body.to_string()),
    )
}

fn post_csv(w: &Worker, site: &Site, path: &str, body: &str) -> Answer {
    send(
        w,
        site,
        Some(&site.write_key),
        "POST",
        path,
        "text/csv",
        Some(body),
    )
}

fn read(w: &Worker, site: &Site, path: &str) -> Answer {
    send(
        w,
        site,
        Some(&site.read_key),
        "GET",
        path,
        "application/json",
        None,
    )
}

fn new_site() -> (&'static Worker, Site) {
    let w = Worker::shared().expect("worker");
    let site = w.create_site(&["https://api-test.example"]).expect("site");
    (w, site)
}

/// Scenario: every write endpoint (and erasure) without a key (401), with a key no site has (403),
/// with the site's read key (403) and with another site's write key (403); a report with
/// the write key (403) and without a key (401). Every answer is the JSON error.
#[test]
fn every_key_error() {
    let (w, site) = new_site();
    let other = w.create_site(&["https://other.example"]).expect("site");
    for path in [
        "events:import",
        "conversions",
        "conversions:import",
        "spend",
        "spend:import",
        "webhooks",
        "webhooks:deliver",
    ] {
        let cases = [
            (None, 401),
            (Some("no-such-key-0123456789"), 403),
            (Some(site.read_key.as_str()), 403),
            (Some(other.write_key.as_str()), 403),
        ];
        for (key, status) in cases {
            let a = send(w, &site, key, "POST", path, "application/json", Some("{}"));
            assert_eq!(a.status, status, "{path} with {key:?}: {}", a.text);
            conforms(&a, "Error");
        }
    }
    for path in [
        "reports/sources",
        "reports/pages",
        "reports/timeseries",
        "leads",
        "leads/x@example.com",
    ] {
        let a = send(w, &site, None, "GET", path, "application/json", None);
        assert_eq!(a.status, 401, "{path}: {}", a.text);
        let a = send(
            w,
            &site,
            Some(&site.write_key),
            "GET",
            path,
            "application/json",
            None,
        );
        assert_eq!(a.status, 403, "{path}: {}", a.text);
        conforms(&a, "Error");
    }
    // erasure needs the write key too
    let a = send(
        w,
        &site,
        None,
        "DELETE",
        "leads/x@example.com",
        "application/json",
        None,
    );
    assert_eq!(a.status, 401, "{}", a.text);
    let a = send(
        w,
        &site,
        Some(&site.read_key),
        "DELETE",
        "leads/x@example.com",
        "application/json",
        None,
    );
    assert_eq!(a.status, 403, "{}", a.text);
    // nothing was written
    let n = w
        .count(&format!(
            "SELECT count(*) FROM conversions WHERE site_id = '{}'",
            site.id
        ))
        .expect("count");
    assert_eq!(n, 0);
}

/// Scenario: deal `d-1` for ann@example.com, 100.00 USD closed 2026-10-01. Sent twice:
/// 201 created then 200 unchanged. Sent with 200.00: 409 `deal_conflict` whose error
/// carries the stored version (revenue 10000 cents) and the sent one (200.0); one row.
#[test]
fn a_changed_deal_is_a_409_with_both_versions() {
    let (w, site) = new_site();
    let deal = json!({"deal_id": "d-1", "email": "Ann@Example.com", "revenue": 100.0,
                      "currency": "USD", "closed_at": "2026-10-01T00:00:00Z"});
    let a = post_json(w, &site, "conversions", &deal);
    assert_eq!(a.status, 201, "{}", a.text);
    conforms(&a, "ConversionResult");
    assert_eq!(a.json["status"], "created");
    assert_eq!(a.json["conversion"]["revenue"], 10000);
    assert_eq!(a.json["conversion"]["email"], "ann@example.com");
    assert_eq!(a.json["conversion"]["kind"], "customer");
    let a = post_json(w, &site, "conversions", &deal);
    assert_eq!(
        (a.status, &a.json["status"]),
        (200, &json!("unchanged")),
        "{}",
        a.text
    );
    conforms(&a, "ConversionResult");
    let mut changed = deal.clone();
    changed["revenue"] = json!(200.0);
    let a = post_json(w, &site, "conversions", &changed);
    assert_eq!(a.status, 409, "{}", a.text);
    assert_eq!(a.error_code(), Some("deal_conflict"));
    assert_eq!(a.json["error"]["existing"]["revenue"], 10000);
    assert_eq!(a.json["error"]["sent"]["revenue"], 200.0);
    conforms(&a, "Error");
    // a stage of the same deal is another conversion
    let mut stage = deal.clone();
    stage["stage"] = json!("Opportunity");
    let a = post_json(w, &site, "conversions", &stage);
    assert_eq!(
        (a.status, &a.json["conversion"]["kind"]),
        (201, &json!("opportunity")),
        "{}",
        a.text
    );
    let rows = w
        .query(&format!(
            "SELECT kind, revenue FROM conversions WHERE site_id = '{}' ORDER BY kind",
            site.id
        ))
        .expect("rows");
    assert_eq!(
        rows,
        vec![
            json!({"kind": "customer", "revenue": 10000}),
            json!({"kind": "opportunity", "revenue": 10000})
        ]
    );
}

/// Scenario: the site reports in USD. 100.00 EUR without a rate: 400
/// `exchange_rate_required`, nothing stored. With `exchange_rate` 1.1: stored as
/// 100.00 × 1.1 = 110.00 USD = 11000 cents, the original 10000 EUR cents kept beside it.
#[test]
fn another_currency_needs_an_exchange_rate() {
    let (w, site) = new_site();
    let deal = json!({"deal_id": "eur-1", "email": "eve@example.com", "revenue": 100,
                      "currency": "EUR", "closed_at": "2026-10-01"});
    let a = post_json(w, &site, "conversions", &deal);
    assert_eq!(
        (a.status, a.error_code()),
        (400, Some("exchange_rate_required")),
        "{}",
        a.text
    );
    conforms(&a, "Error");
    let mut with_rate = deal.clone();
    with_rate["exchange_rate"] = json!(1.1);
    let a = post_json(w, &site, "conversions", &with_rate);
    assert_eq!(a.status, 201, "{}", a.text);
    let c = &a.json["conversion"];
    assert_eq!(
        (c["revenue"].as_i64(), c["currency"].as_str()),
        (Some(11000), Some("USD"))
    );
    assert_eq!(
        (
            c["original_revenue"].as_i64(),
            c["original_currency"].as_str()
        ),
        (Some(10000), Some("EUR"))
    );
    let spend =
        json!({"channel": "Paid Search", "amount": 50, "currency": "GBP", "date": "2026-10-01"});
    let a = post_json(w, &site, "spend", &spend);
    assert_eq!(
        (a.status, a.error_code()),
        (400, Some("exchange_rate_required")),
        "{}",
        a.text
    );
}

/// Scenario: a CSV of five rows: two good (created), a bad amount (`invalid_amount`), a
/// bad date (`invalid_date`), a EUR row without a rate (`exchange_rate_required`). The good
/// rows are kept. The same file again: the two good rows `unchanged`, nothing created, the
/// bad rows refused again; still two conversions stored.
#[test]
fn a_csv_with_bad_rows_keeps_the_good_ones_and_reimports_change_nothing() {
    let (w, site) = new_site();
    let csv = "deal_id,email,revenue,currency,closed_at\n\
               c-1,one@example.com,10.00,USD,2026-10-01\n\
               c-2,two@example.com,abc,USD,2026-10-01\n\
               c-3,three@example.com,5.00,USD,not a date\n\
               c-4,four@example.com,7.00,EUR,2026-10-01\n\
               c-5,five@example.com,\"1,250.50\",USD,2026-10-02\n";
    let a = post_csv(w, &site, "conversions:import", csv);
    assert_eq!(a.status, 200, "{}", a.text);
    conforms(&a, "ImportRowsResponse");
    let status = |a: &Answer, row: u64| -> (String, Option<String>) {
        let r = a.json["rows"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["row"] == json!(row)))
            .cloned()
            .unwrap_or(Value::Null);
        (
            r["status"].as_str().unwrap_or("").to_string(),
            r["error"]["code"].as_str().map(String::from),
        )
    };
    assert_eq!(status(&a, 2), ("created".into(), None));
    assert_eq!(
        status(&a, 3),
        ("rejected".into(), Some("invalid_amount".into()))
    );
    assert_eq!(
        status(&a, 4),
        ("rejected".into(), Some("invalid_date".into()))
    );
    assert_eq!(
        status(&a, 5),
        ("rejected".into(), Some("exchange_rate_required".into()))
    );
    assert_eq!(status(&a, 6), ("created".into(), None));
    assert_eq!(
        (a.json["created"].as_u64(), a.json["rejected"].as_u64()),
        (Some(2), Some(3))
    );
    let again = post_csv(w, &site, "conversions:import", csv);
    assert_eq!(
        (
            again.json["created"].as_u64(),
            again.json["unchanged"].as_u64(),
            again.json["rejected"].as_u64()
        ),
        (Some(0), Some(2), Some(3)),
        "{}",
        again.text
    );
    let rows = w
        .query(&format!(
            "SELECT deal_id, revenue FROM conversions WHERE site_id = '{}' ORDER BY deal_id",
            site.id
        ))
        .expect("rows");
    assert_eq!(
        rows,
        vec![
            json!({"deal_id": "c-1", "revenue": 1000}),
            json!({"deal_id": "c-5", "revenue": 125050})
        ]
    );
    // a file with no revenue column is refused whole
    let a = post_csv(
        w,
        &site,
        "conversions:import",
        "deal_id,email,closed_at\nx,a@example.com,2026-10-01\n",
    );
    assert_eq!(
        (a.status, a.error_code()),
        (400, Some("missing_column")),
        "{}",
        a.text
    );
}

/// Scenario: Paid Search spend of 10.00 USD on 2026-10-01: created (201); the same again:
/// unchanged; 20.00: replaced. One period stored with 2000 cents; the sources report of
/// that day gives the Paid Search row 2000 spend. A 3-day period of 10.00 spreads as
/// 334 + 333 + 333 (core's rule: the remainder cent to the first day): the report of its
/// second day shows 333.
#[test]
fn spend_is_replaced_on_resend_and_spread_over_its_days() {
    let (w, site) = new_site();
    let day = json!({"channel": "Paid Search", "source": "google", "amount": 10, "currency": "USD", "date": "2026-10-01"});
    let a = post_json(w, &site, "spend", &day);
    assert_eq!(
        (a.status, &a.json["status"]),
        (201, &json!("created")),
        "{}",
        a.text
    );
    conforms(&a, "SpendResult");
    assert_eq!(a.json["spend"]["start"], "2026-10-01");
    let a = post_json(w, &site, "spend", &day);
    assert_eq!(
        (a.status, &a.json["status"]),
        (200, &json!("unchanged")),
        "{}",
        a.text
    );
    let mut more = day.clone();
    more["amount"] = json!(20);
    let a = post_json(w, &site, "spend", &more);
    assert_eq!(
        (a.status, &a.json["status"]),
        (200, &json!("replaced")),
        "{}",
        a.text
    );
    let n = w
        .count(&format!(
            "SELECT count(*) FROM spend WHERE site_id = '{}'",
            site.id
        ))
        .expect("count");
    assert_eq!(n, 1);
    let r = read(
        w,
        &site,
        "reports/sources?from=2026-10-01&to=2026-10-02&model=first_touch",
    );
    assert_eq!(r.status, 200, "{}", r.text);
    conforms(&r, "SourcesReport");
    let paid = r.json["rows"]
        .as_array()
        .and_then(|rows| rows.iter().find(|x| x["key"] == "Paid Search"))
        .cloned();
    assert_eq!(
        paid.map(|p| p["spend"].clone()),
        Some(json!(2000)),
        "{}",
        r.text
    );
    let csv = "start,end,channel,amount,currency\n2026-11-01,2026-11-03,Display,10.00,USD\n";
    let a = post_csv(w, &site, "spend:import", csv);
    assert_eq!(a.json["created"].as_u64(), Some(1), "{}", a.text);
    conforms(&a, "ImportRowsResponse");
    let r = read(w, &site, "reports/sources?from=2026-11-02&to=2026-11-03");
    assert_eq!(r.json["totals"]["spend"], 333, "{}", r.text);
}

/// Scenario: events:import with two batches. Batch 1 (visitor imp-visitor-1, from 2019,
/// far older than collect accepts): a newsletter page view, a page view with a bad URL, a
/// form submit with an email a minute later. Expected: accepted 2, rejected 1
/// (`invalid_url`); times stored as given. The same body again: 2 duplicates, 1 rejected.
/// A batch naming another site refuses the whole request (400) and stores nothing.
#[test]
fn events_import_answers_per_event_and_takes_times_as_given() {
    let (w, site) = new_site();
    let t = 1_556_668_800_000_i64; // 2019-05-01T00:00:00Z
    let body = json!([{
        "visitor_id": "imp-visitor-1",
        "context": {"country": "fr", "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"},
        "events": [
            {"id": "imp-ev-0001", "type": "pageview", "created_at": t, "url": "https://api-test.example/?utm_source=nl&utm_medium=email"},
            {"id": "imp-ev-0002", "type": "pageview", "created_at": t + 1000, "url": "ftp://nope"},
            {"id": "imp-ev-0003", "type": "form_submit", "created_at": t + 60_000, "url": "https://api-test.example/demo",
             "form": {"fields": ["email"], "values": {"email": "imp@example.com"}}}
        ]
    }]);
    let a = post_json(w, &site, "events:import", &body);
    assert_eq!(a.status, 200, "{}", a.text);
    conforms(&a, "ImportEventsResponse");
    assert_eq!(
        (a.json["accepted"].as_u64(), a.json["rejected"].as_u64()),
        (Some(2), Some(1)),
        "{}",
        a.text
    );
    assert_eq!(a.json["results"][1]["error"]["code"], "invalid_url");
    let rows = w
        .query(&format!(
            "SELECT event_id, derived_ts, country, device_type FROM events WHERE site_id = '{}' ORDER BY event_id",
            site.id
        ))
        .expect("events");
    assert_eq!(
        rows,
        vec![
            json!({"event_id": "imp-ev-0001", "derived_ts": t, "country": "FR", "device_type": "desktop"}),
            json!({"event_id": "imp-ev-0003", "derived_ts": t + 60_000, "country": "FR", "device_type": "desktop"}),
        ]
    );
    let again = post_json(w, &site, "events:import", &body);
    assert_eq!(
        (
            again.json["duplicates"].as_u64(),
            again.json["rejected"].as_u64()
        ),
        (Some(2), Some(1)),
        "{}",
        again.text
    );
    let wrong = json!([{"site_id": "someone-else", "visitor_id": "imp-visitor-2",
        "events": [{"id": "imp-ev-0009", "type": "pageview", "created_at": t, "url": "https://api-test.example/"}]}]);
    let a = post_json(w, &site, "events:import", &wrong);
    assert_eq!(
        (a.status, a.error_code()),
        (400, Some("site_mismatch")),
        "{}",
        a.text
    );
    let n = w
        .count(&format!(
            "SELECT count(*) FROM events WHERE site_id = '{}'",
            site.id
        ))
        .expect("count");
    assert_eq!(n, 2);
}

/// Scenario (distinct visitors from the session markers, after a rebuild): one visitor
/// comes from the newsletter (Email) on 2019-06-01 and 2019-06-03, 10:00 UTC; a second one
/// from the newsletter on 2019-06-03 only. Then an event of the first visitor's that was
/// sent late arrives: a direct visit on 2019-06-02 10:00, which puts a Direct session between
/// its two Email sessions (the flush rebuilds both). By hand, channel rows
/// (visitors / sessions):
/// - 06-01 to 06-04: Email 2 / 3 (first visitor twice), Direct 1 / 1; 2 visitors in all.
/// - 06-02 to 06-04: Email 2 / 2 (the first visitor's Email session of 06-01 is before the
///   range), Direct 1 / 1; 2 visitors.
/// - 06-03 to 06-04: Email 2 / 2, no Direct row; 2 visitors.
/// - 06-02 to 06-03: Direct 1 / 1 only; 1 visitor.
#[test]
fn distinct_visitors_per_row_survive_a_rebuild() {
    let (w, site) = new_site();
    let day = 86_400_000_i64;
    let t = 1_559_383_200_000_i64; // 2019-06-01T10:00:00Z
    let ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    let email = "https://api-test.example/?utm_source=newsletter&utm_medium=email";
    let visit = |visitor: &str, id: &str, at: i64, url: &str| {
        json!({"visitor_id": visitor, "context": {"country": "fr", "user_agent": ua},
            "events": [{"id": id, "type": "pageview", "created_at": at, "url": url}]})
    };
    let a = post_json(
        w,
        &site,
        "events:import",
        &json!([
            visit("mk-visitor-1", "mk-event-1", t, email),
            visit("mk-visitor-1", "mk-event-3", t + 2 * day, email),
            visit("mk-visitor-2", "mk-event-4", t + 2 * day, email),
        ]),
    );
    assert_eq!(a.json["accepted"].as_u64(), Some(3), "{}", a.text);
    // the first report builds the sessions; the late event comes after
    let before = read(w, &site, "reports/sources?from=2019-06-01&to=2019-06-04");
    assert_eq!(before.status, 200, "{}", before.text);
    let a = post_json(
        w,
        &site,
        "events:import",
        &json!([visit(
            "mk-visitor-1",
            "mk-event-2",
            t + day,
            "https://api-test.example/"
        )]),
    );
    assert_eq!(a.json["accepted"].as_u64(), Some(1), "{}", a.text);
    let rows_of = |from: &str, to: &str| {
        let a = read(
            w,
            &site,
            &format!("reports/sources?group_by=channel&from={from}&to={to}"),
        );
        assert_eq!(a.status, 200, "{}", a.text);
        let mut rows: Vec<(String, u64, u64)> = a.json["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .filter(|r| r["sessions"].as_u64().unwrap_or(0) > 0)
            .map(|r| {
                (
                    r["key"].as_str().unwrap_or_default().to_string(),
                    r["visitors"].as_u64().unwrap_or(0),
                    r["sessions"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        rows.sort();
        (rows, a.json["totals"]["visitors"].as_u64())
    };
    let row = |k: &str, v: u64, s: u64| (k.to_string(), v, s);
    assert_eq!(
        rows_of("2019-06-01", "2019-06-04"),
        (vec![row("Direct", 1, 1), row("Email", 2, 3)], Some(2))
    );
    assert_eq!(
        rows_of("2019-06-02", "2019-06-04"),
        (vec![row("Direct", 1, 1), row("Email", 2, 2)], Some(2))
    );
    assert_eq!(
        rows_of("2019-06-03", "2019-06-04"),
        (vec![row("Email", 2, 2)], Some(2))
    );
    assert_eq!(
        rows_of("2019-06-02", "2019-06-03"),
        (vec![row("Direct", 1, 1)], Some(1))
    );
    // the markers themselves: the first visitor's sessions point back as written above
    let marks = w
        .query(&format!(
            "SELECT channel, started_at, prev_at, prev_channel, prev_channel_at FROM sessions \
             WHERE site_id = '{}' AND visitor_id = 'mk-visitor-1' ORDER BY started_at",
            site.id
        ))
        .expect("sessions");
    assert_eq!(
        marks,
        vec![
            json!({"channel": "Email", "started_at": t, "prev_at": null, "prev_channel": null, "prev_channel_at": null}),
            json!({"channel": "Direct", "started_at": t + day, "prev_at": t, "prev_channel": "Email", "prev_channel_at": null}),
            json!({"channel": "Email", "started_at": t + 2 * day, "prev_at": t + day, "prev_channel": "Direct", "prev_channel_at": t}),
        ]
    );
}

/// Scenario: a deal for late@example.com (30.00 USD, closed 2026-03-10) arrives before any
/// visitor gave that email. Then a visitor's history is imported: an email-campaign visit
/// on 2026-03-01 10:00 and the form with that email a minute later. The deal is kept and,
/// once the visitor is identified, credited to the Email touch: March's sources report
/// (first_touch) has one customer and 3000 cents of revenue on its Email row, and the
/// lead's journey lists the deal.
#[test]
fn a_deal_before_its_visitor_identifies_is_attributed_later() {
    let (w, site) = new_site();
    let deal = json!({"deal_id": "late-1", "email": "late@example.com", "revenue": 30,
                      "currency": "USD", "closed_at": "2026-03-10T00:00:00Z"});
    assert_eq!(post_json(w, &site, "conversions", &deal).status, 201);
    let t = 1_772_359_200_000_i64; // 2026-03-01T10:00:00Z
    let body = json!({"visitor_id": "late-visitor-1", "events": [
        {"id": "late-ev-01", "type": "pageview", "created_at": t, "url": "https://api-test.example/?utm_source=nl&utm_medium=email&utm_campaign=march"},
        {"id": "late-ev-02", "type": "form_submit", "created_at": t + 60_000, "url": "https://api-test.example/",
         "form": {"fields": ["email"], "values": {"email": "Late@Example.com"}}}]});
    let a = post_json(w, &site, "events:import", &body);
    assert_eq!(a.json["accepted"].as_u64(), Some(2), "{}", a.text);
    let r = read(
        w,
        &site,
        "reports/sources?from=2026-03-01&to=2026-04-01&model=first_touch",
    );
    let email = r.json["rows"]
        .as_array()
        .and_then(|rows| rows.iter().find(|x| x["key"] == "Email"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        (
            email["customers"].as_f64(),
            email["revenue"].as_f64(),
            email["leads"].as_f64()
        ),
        (Some(1.0), Some(3000.0), Some(1.0)),
        "{}",
        r.text
    );
    let j = read(
        w,
        &site,
        "leads/late%40example.com?from=2026-03-01&to=2026-04-01",
    );
    assert_eq!(j.status, 200, "{}", j.text);
    conforms(&j, "Journey");
    let kinds: Vec<&str> = j.json["conversions"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|c| c["conversion"]["kind"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(kinds, vec!["lead", "customer"]);
    let list = read(w, &site, "leads?email=late");
    conforms(&list, "LeadList");
    assert_eq!(
        list.json["leads"][0]["first_touch"]["channel"], "Email",
        "{}",
        list.text
    );
    let pages = read(w, &site, "reports/pages?from=2026-03-01&to=2026-04-01");
    conforms(&pages, "PagesReport");
    let series = read(
        w,
        &site,
        "reports/timeseries?from=2026-03-01&to=2026-03-15&granularity=week",
    );
    conforms(&series, "TimeseriesReport");
    // 2026-03-01 is a Sunday: its ISO week's bucket, then two full weeks and a clipped one
    assert_eq!(
        series.json["points"].as_array().map(Vec::len),
        Some(3),
        "{}",
        series.text
    );
}

/// One page's figures in a pages report answer: views, entrances, assisted leads, assisted
/// customers, direct conversions (`None` when the page has no row).
fn page_figures(answer: &Answer, path: &str) -> Option<[u64; 5]> {
    let row = answer.json["rows"]
        .as_array()?
        .iter()
        .find(|r| r["path"] == path)?;
    let n = |k: &str| row[k].as_u64().unwrap_or(u64::MAX);
    Some([
        n("views"),
        n("entrances"),
        n("assisted_leads"),
        n("assisted_customers"),
        n("direct_conversions"),
    ])
}

/// Scenario: the pages report follows a session that a late batch rebuilds. Visitor
/// pg-visitor-1's first batch: a page view of /b at 2026-04-01 10:05 and the form with
/// pages@example.com on /b at 10:06. April's pages report: /b 1 view, 1 entrance, 1 direct
/// conversion (the lead was created on /b). A second batch, sent later, holds the visitor's
/// earlier events: a page view of /a at 10:00 and the same form on /a at 10:01. The session
/// now starts at /a (10:00) and the lead at 10:01 on /a: /a 1 view, 1 entrance, 1 direct
/// conversion and no assist (its own page); /b 1 view, no entrance, no direct conversion,
/// no assist (viewed after the lead's creation). A crawler (Googlebot's user agent) views
/// /a at 10:30: left out, and with `include_bots=true` /a has 2 views and 2 entrances.
#[test]
fn the_pages_report_follows_a_session_rebuilt_by_a_late_batch() {
    let (w, site) = new_site();
    let t = 1_775_037_600_000_i64; // 2026-04-01T10:00:00Z
    let min = 60_000;
    let form = |id: &str, at: i64, path: &str| {
        json!({"id": id, "type": "form_submit", "created_at": at,
               "url": format!("https://api-test.example{path}"),
               "form": {"fields": ["email"], "values": {"email": "pages@example.com"}}})
    };
    let view = |id: &str, at: i64, path: &str| {
        json!({"id": id, "type": "pageview", "created_at": at,
               "url": format!("https://api-test.example{path}")})
    };
    let april = "reports/pages?from=2026-04-01&to=2026-05-01";
    let first = json!({"visitor_id": "pg-visitor-1", "events": [
        view("pg-ev-03", t + 5 * min, "/b"), form("pg-ev-04", t + 6 * min, "/b")]});
    assert_eq!(
        post_json(w, &site, "events:import", &first).json["accepted"],
        2
    );
    let r = read(w, &site, april);
    assert_eq!(page_figures(&r, "/b"), Some([1, 1, 0, 0, 1]), "{}", r.text);

    let late = json!({"visitor_id": "pg-visitor-1", "events": [
        view("pg-ev-01", t, "/a"), form("pg-ev-02", t + min, "/a")]});
    assert_eq!(
        post_json(w, &site, "events:import", &late).json["accepted"],
        2
    );
    let crawler = json!({"visitor_id": "pg-crawler-1",
        "context": {"user_agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
        "events": [view("pg-ev-09", t + 30 * min, "/a")]});
    assert_eq!(
        post_json(w, &site, "events:import", &crawler).json["accepted"],
        1
    );
    let r = read(w, &site, april);
    conforms(&r, "PagesReport");
    assert_eq!(page_figures(&r, "/a"), Some([1, 1, 0, 0, 1]), "{}", r.text);
    assert_eq!(page_figures(&r, "/b"), Some([1, 0, 0, 0, 0]), "{}", r.text);
    let r = read(w, &site, &format!("{april}&include_bots=true"));
    assert_eq!(page_figures(&r, "/a"), Some([2, 2, 0, 0, 1]), "{}", r.text);
}

/// Scenario: bad report parameters are 400 `invalid_parameter`; an unknown lead is 404;
/// `GET /v1/openapi.json` serves the document of `docs/openapi.json` itself.
#[test]
fn bad_parameters_unknown_leads_and_the_document() {
    let (w, site) = new_site();
    for q in [
        "model=magic",
        "group_by=planet",
        "lookback_days=0",
        "from=yesterday",
        "from=2026-02-01&to=2026-01-01",
    ] {
        let a = read(w, &site, &format!("reports/sources?{q}"));
        assert_eq!(
            (a.status, a.error_code()),
            (400, Some("invalid_parameter")),
            "{q}: {}",
            a.text
        );
        conforms(&a, "Error");
    }
    let a = read(w, &site, "reports/pages?sort=size");
    assert_eq!(a.status, 400, "{}", a.text);
    let a = read(w, &site, "leads/nobody%40example.com");
    assert_eq!(
        (a.status, a.error_code()),
        (404, Some("unknown_lead")),
        "{}",
        a.text
    );
    let doc = http::get(&w.url("/v1/openapi.json"), None).expect("openapi");
    assert_eq!(doc.status, 200);
    assert_eq!(&doc.json, openapi());
}

/// Scenario: erase@example.com browses twice on one device (a newsletter visit with two
/// page views and the form: 3 events, 1 session) and wins a deal of 40.00 USD; an
/// anonymous visitor also visits. `DELETE .../leads/erase@example.com` with the read key is
/// 403; with the write key it answers what it erased (1 visitor, 3 events, 1 session, 1
/// conversion). Afterwards the email is nowhere in the database, the journey is 404, the
/// report counts only the anonymous visitor (1 visitor, 1 session, 0 leads, 0 customers),
/// and a second erasure is 404.
#[test]
fn erasing_a_lead_removes_it_everywhere() {
    let (w, site) = new_site();
    let t = 1_772_359_200_000_i64; // 2026-03-01T10:00:00Z
    let body = json!([
        {"visitor_id": "erase-visitor-1", "events": [
            {"id": "erase-ev-01", "type": "pageview", "created_at": t, "url": "https://api-test.example/?utm_source=nl&utm_medium=email"},
            {"id": "erase-ev-02", "type": "pageview", "created_at": t + 30_000, "url": "https://api-test.example/pricing"},
            {"id": "erase-ev-03", "type": "form_submit", "created_at": t + 60_000, "url": "https://api-test.example/pricing",
             "form": {"fields": ["email", "name"], "values": {"email": "erase@example.com", "name": "Era Se"}}}]},
        {"visitor_id": "keep-visitor-1", "events": [
            {"id": "keep-ev-01", "type": "pageview", "created_at": t, "url": "https://api-test.example/"}]}
    ]);
    let a = post_json(w, &site, "events:import", &body);
    assert_eq!(a.json["accepted"].as_u64(), Some(4), "{}", a.text);
    let deal = json!({"deal_id": "erase-deal", "email": "erase@example.com", "revenue": 40,
                      "currency": "USD", "closed_at": "2026-03-05T00:00:00Z"});
    assert_eq!(post_json(w, &site, "conversions", &deal).status, 201);
    let path = "leads/erase%40example.com";
    let denied = send(
        w,
        &site,
        Some(&site.read_key),
        "DELETE",
        path,
        "application/json",
        None,
    );
    assert_eq!(denied.status, 403, "{}", denied.text);
    let a = send(
        w,
        &site,
        Some(&site.write_key),
        "DELETE",
        path,
        "application/json",
        None,
    );
    assert_eq!(a.status, 200, "{}", a.text);
    conforms(&a, "Erasure");
    assert_eq!(
        a.json["erased"],
        json!({"visitors": 1, "events": 3, "sessions": 1, "conversions": 1})
    );
    for table in [
        "events",
        "sessions",
        "visitors",
        "leads",
        "lead_visitors",
        "conversions",
    ] {
        let rows = w
            .query(&format!(
                "SELECT * FROM {table} WHERE site_id = '{}'",
                site.id
            ))
            .expect("rows");
        let text = serde_json::to_string(&rows).unwrap_or_default();
        assert!(!text.contains("erase"), "{table} still has: {text}");
    }
    let j = read(
        w,
        &site,
        "leads/erase%40example.com?from=2026-03-01&to=2026-04-01",
    );
    assert_eq!(j.status, 404, "{}", j.text);
    let r = read(
        w,
        &site,
        "reports/sources?from=2026-03-01&to=2026-04-01&model=first_touch",
    );
    let totals = &r.json["totals"];
    assert_eq!(
        (
            totals["visitors"].as_u64(),
            totals["sessions"].as_u64(),
            totals["leads"].as_f64(),
            totals["customers"].as_f64()
        ),
        (Some(1), Some(1), Some(0.0), Some(0.0)),
        "{}",
        r.text
    );
    let again = send(
        w,
        &site,
        Some(&site.write_key),
        "DELETE",
        path,
        "application/json",
        None,
    );
    assert_eq!(
        (again.status, again.error_code()),
        (404, Some("unknown_lead")),
        "{}",
        again.text
    );
}

/// One request the local webhook receiver got.
#[derive(Debug, Clone)]
struct Received {
    delivery: String,
    event: String,
    signature: String,
    body: Value,
}

/// A local receiver that answers 500 to its first request and 200 to the others.
fn receiver() -> (String, std::sync::mpsc::Receiver<Received>) {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("receiver");
    let port = server.server_addr().to_ip().map(|a| a.port()).unwrap_or(0);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut n = 0;
        while let Ok(Some(mut req)) = server.recv_timeout(std::time::Duration::from_secs(120)) {
            let header = |name: &str| {
                req.headers()
                    .iter()
                    .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
                    .map(|h| h.value.as_str().to_string())
                    .unwrap_or_default()
            };
            let (delivery, event, signature) = (
                header("Closeloop-Delivery"),
                header("Closeloop-Event"),
                header("Closeloop-Signature"),
            );
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(req.as_reader(), &mut text);
            let status = if n == 0 { 500 } else { 200 };
            n += 1;
            let _ = req.respond(tiny_http::Response::from_string("ok").with_status_code(status));
            let body = serde_json::from_str(&text).unwrap_or(Value::Null);
            if tx
                .send(Received {
                    delivery,
                    event,
                    signature,
                    body,
                })
                .is_err()
            {
                break;
            }
        }
    });
    (format!("http://127.0.0.1:{port}/hook"), rx)
}

/// Scenario: a site registers a local receiver for both event types. Visitor
/// hook-visitor-1 arrives from the newsletter (`/`), reads `/pricing` and leaves
/// hook@example.com in a form; the CRM then posts a won deal of 25.00 USD. A delivery run
/// sends two signed POSTs: the receiver refuses the first (500), takes the second; 10
/// seconds later (the first backoff) the next run sends the refused one again with the same
/// delivery id, and it is taken. Each payload follows the `WebhookPayload` schema: the
/// lead's email, first and latest touch (Email), pages read (`/`, `/pricing`), and for the
/// customer the conversion (2500 cents). A third run sends nothing.
#[test]
fn webhooks_are_signed_and_retried_after_a_failed_attempt() {
    let (w, site) = new_site();
    let (url, rx) = receiver();
    let a = post_json(w, &site, "webhooks", &json!({ "url": url }));
    assert_eq!(a.status, 201, "{}", a.text);
    conforms(&a, "Webhook");
    assert!(a.json["secret"]
        .as_str()
        .is_some_and(|s| s.starts_with("whsec_")));
    let bad = post_json(
        w,
        &site,
        "webhooks",
        &json!({ "url": "http://crm.example.com/x" }),
    );
    assert_eq!((bad.status, bad.error_code()), (400, Some("invalid_url")));
    let t = 1_772_359_200_000_i64; // 2026-03-01T10:00:00Z
    let body = json!({"visitor_id": "hook-visitor-1", "events": [
        {"id": "hook-ev-01", "type": "pageview", "created_at": t, "url": "https://api-test.example/?utm_source=nl&utm_medium=email"},
        {"id": "hook-ev-02", "type": "pageview", "created_at": t + 30_000, "url": "https://api-test.example/pricing"},
        {"id": "hook-ev-03", "type": "form_submit", "created_at": t + 60_000, "url": "https://api-test.example/pricing",
         "form": {"fields": ["email"], "values": {"email": "hook@example.com"}}}]});
    assert_eq!(
        post_json(w, &site, "events:import", &body).json["accepted"],
        3
    );
    let deal = json!({"deal_id": "hook-deal", "email": "hook@example.com", "revenue": 25,
                      "currency": "USD", "closed_at": "2026-03-05T00:00:00Z"});
    assert_eq!(post_json(w, &site, "conversions", &deal).status, 201);

    let run = post_json(w, &site, "webhooks:deliver", &json!({}));
    assert_eq!(run.status, 200, "{}", run.text);
    assert_eq!(
        (run.json["delivered"].as_u64(), run.json["failed"].as_u64()),
        (Some(1), Some(1)),
        "{}",
        run.text
    );
    let wait = std::time::Duration::from_secs(5);
    let first = rx.recv_timeout(wait).expect("first request");
    let second = rx.recv_timeout(wait).expect("second request");
    std::thread::sleep(std::time::Duration::from_millis(10_500));
    let retry = post_json(w, &site, "webhooks:deliver", &json!({}));
    assert_eq!(
        (
            retry.json["delivered"].as_u64(),
            retry.json["failed"].as_u64()
        ),
        (Some(1), Some(0)),
        "{}",
        retry.text
    );
    let third = rx.recv_timeout(wait).expect("the retry");
    assert_eq!(
        third.delivery, first.delivery,
        "a retry repeats the delivery id"
    );
    assert_ne!(first.delivery, second.delivery);
    let idle = post_json(w, &site, "webhooks:deliver", &json!({}));
    assert_eq!(
        (
            idle.json["delivered"].as_u64(),
            idle.json["failed"].as_u64()
        ),
        (Some(0), Some(0)),
        "{}",
        idle.text
    );

    let schema = json!({"$ref": "#/components/schemas/WebhookPayload"});
    for r in [&second, &third] {
        let errors = check(&schema, &r.body, "WebhookPayload");
        assert!(errors.is_empty(), "{}\n{}", errors.join("\n"), r.body);
        assert_eq!(r.body["type"], json!(r.event));
        let sig = r
            .signature
            .split_once(",v1=")
            .map(|(t, v)| (t.starts_with("t="), v.len()));
        assert_eq!(sig, Some((true, 64)), "{}", r.signature);
        let lead = &r.body["lead"];
        assert_eq!(lead["email"], "hook@example.com");
        assert_eq!(lead["first_touch"]["channel"], "Email");
        assert_eq!(lead["latest_touch"]["channel"], "Email");
        assert_eq!(lead["pages"], json!(["/", "/pricing"]));
    }
    let mut kinds = vec![second.event.clone(), third.event.clone()];
    kinds.sort();
    assert_eq!(kinds, vec!["customer.created", "lead.created"]);
    let customer = if second.event == "customer.created" {
        &second
    } else {
        &third
    };
    assert_eq!(customer.body["conversion"]["revenue"], 2500);
}

/// Scenario: `model=data_driven_global` through the worker, on the journeys of core's
/// hand-worked case `15_data_driven_global_worked.json`. Ann arrives from a Facebook ad
/// (Paid Social) on 2026-05-01 and from the newsletter (Email) on 05-04, where she leaves
/// her email a minute later; Bea arrives from a Facebook ad on 05-02 and leaves hers a
/// minute later; two anonymous visitors come by Email on 05-02 and 05-03. The lead chain
/// (S, E -> conversion; S -> conversion; E -> null twice) has removal effects S 2/3, E 1/2,
/// normalised 4/7 and 3/7: the global allocation of the 2 leads gives Paid Social 8/7 and
/// Email 6/7 (Anderl et al.), where `data_driven` splits each conversion among its own
/// touches: Ann 4/7 S + 3/7 E, Bea 1 S -> Paid Social 11/7, Email 3/7.
#[test]
fn the_global_data_driven_allocation_is_offered() {
    let (w, site) = new_site();
    let day = 86_400_000_i64;
    let t = 1_777_629_600_000_i64; // 2026-05-01T10:00:00Z
    let ad = "https://api-test.example/?utm_source=facebook&utm_medium=cpc";
    let news = "https://api-test.example/?utm_source=nl&utm_medium=email";
    let form = |id: &str, at: i64, email: &str| {
        json!({"id": id, "type": "form_submit", "created_at": at, "url": "https://api-test.example/",
               "form": {"fields": ["email"], "values": {"email": email}}})
    };
    let page = |id: &str, at: i64, url: &str| json!({"id": id, "type": "pageview", "created_at": at, "url": url});
    for (visitor, events) in [
        (
            "ddg-visitor-ann",
            vec![
                page("ddg-ev-a1", t, ad),
                page("ddg-ev-a2", t + 3 * day, news),
                form("ddg-ev-a3", t + 3 * day + 60_000, "ann@ddg.example"),
            ],
        ),
        (
            "ddg-visitor-bea",
            vec![
                page("ddg-ev-b1", t + day, ad),
                form("ddg-ev-b2", t + day + 60_000, "bea@ddg.example"),
            ],
        ),
        ("ddg-visitor-anon-1", vec![page("ddg-ev-c1", t + day, news)]),
        (
            "ddg-visitor-anon-2",
            vec![page("ddg-ev-d1", t + 2 * day, news)],
        ),
    ] {
        let a = post_json(
            w,
            &site,
            "events:import",
            &json!({"visitor_id": visitor, "events": events}),
        );
        assert_eq!(a.json["rejected"].as_u64(), Some(0), "{}", a.text);
    }
    let leads_by_channel = |model: &str| -> Vec<(String, f64)> {
        let r = read(
            w,
            &site,
            &format!("reports/sources?from=2026-05-01&to=2026-05-11&model={model}&conversion=lead"),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        conforms(&r, "SourcesReport");
        let mut rows: Vec<(String, f64)> = r.json["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| {
                (
                    x["key"].as_str().unwrap_or("").to_owned(),
                    x["leads"].as_f64().unwrap_or(-1.0),
                )
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    };
    let close = |got: &[(String, f64)], want: &[(&str, f64)]| {
        got.len() == want.len()
            && got
                .iter()
                .zip(want)
                .all(|((k, v), (wk, wv))| k == wk && (v - wv).abs() < 1e-9)
    };
    let global = leads_by_channel("data_driven_global");
    assert!(
        close(&global, &[("Email", 6.0 / 7.0), ("Paid Social", 8.0 / 7.0)]),
        "{global:?}"
    );
    let local = leads_by_channel("data_driven");
    assert!(
        close(&local, &[("Email", 3.0 / 7.0), ("Paid Social", 11.0 / 7.0)]),
        "{local:?}"
    );
    // Ann's journey lists both models' credits
    let j = read(
        w,
        &site,
        "leads/ann%40ddg.example?from=2026-05-01&to=2026-05-11",
    );
    assert_eq!(j.status, 200, "{}", j.text);
    conforms(&j, "Journey");
    let shares: Vec<f64> = j.json["conversions"][0]["credits"]
        .as_array()
        .and_then(|c| c.iter().find(|m| m["model"] == "data_driven_global"))
        .and_then(|m| m["touches"].as_array())
        .map(|t| t.iter().filter_map(|x| x["share"].as_f64()).collect())
        .unwrap_or_default();
    assert_eq!(shares.len(), 2, "{}", j.text);
    assert!(
        (shares[0] - 4.0 / 7.0).abs() < 1e-9 && (shares[1] - 6.0 / 7.0).abs() < 1e-9,
        "{shares:?}"
    );
}
