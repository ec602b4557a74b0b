//! The written scenario `tests/scenarios/closed_loop.json` replayed through the real worker:
//! its visitors' events through `events:import` (times as recorded, geo and user agent as
//! given fields), its deals through `POST /conversions` and `POST /conversions:import`
//! (CSV), its spend through `POST /spend` and `POST /spend:import`; then every figure the
//! file works out by hand is asked of the read API: the stored sessions, the sources report
//! of every model (with and without filters and lookback), the pages reports, the weekly
//! timeseries and each lead's journey. Expected values are read from the file, never
//! computed here.

use closeloop_core::report::{self, ConversionRow, Query, ReportData, SessionRow};
use closeloop_e2e::http::{self, Answer};
use closeloop_e2e::root;
use closeloop_e2e::worker::{Site, Worker};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

/// Figures are compared to this absolute tolerance (shares and money are f64 sums).
const EPS: f64 = 1e-6;

/// The replayed scenario: its site, and the worker's session id of each named session.
struct Loaded {
    worker: &'static Worker,
    site: Site,
    scenario: Value,
    /// `s01` → the worker's session id.
    sessions: BTreeMap<String, String>,
}

fn scenario() -> Value {
    let path = root().join("tests/scenarios/closed_loop.json");
    let text = std::fs::read_to_string(&path).expect("scenario file");
    serde_json::from_str(&text).expect("scenario JSON")
}

fn write_headers(site: &Site, content_type: &'static str) -> Vec<(&'static str, String)> {
    vec![
        ("Content-Type", content_type.to_string()),
        ("Authorization", format!("Bearer {}", site.write_key)),
    ]
}

fn post(
    worker: &Worker,
    site: &Site,
    path: &str,
    content_type: &'static str,
    body: &str,
) -> Answer {
    let headers = write_headers(site, content_type);
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    http::request(
        "POST",
        &worker.url(&format!("/v1/sites/{}/{path}", site.id)),
        &h,
        Some(body),
    )
    .expect("POST")
}

fn load() -> Result<Loaded, String> {
    let worker = Worker::shared()?;
    let sc = scenario();
    let origin = sc["site"]["origin"].as_str().ok_or("site.origin")?;
    let site = worker.create_site(&[origin])?;

    // 1. events: one import request with every visitor's batch
    let batches: Vec<Value> = sc["visitors"]
        .as_array()
        .ok_or("visitors")?
        .iter()
        .map(|v| {
            json!({"visitor_id": v["visitor_id"], "events": v["events"], "context": v["context"]})
        })
        .collect();
    let total: usize = batches
        .iter()
        .map(|b| b["events"].as_array().map_or(0, Vec::len))
        .sum();
    let a = post(
        worker,
        &site,
        "events:import",
        "application/json",
        &Value::Array(batches).to_string(),
    );
    if a.status != 200 || a.json["accepted"] != json!(total) || a.json["rejected"] != json!(0) {
        return Err(format!("events:import: {} {}", a.status, a.text));
    }

    // 2. deals through the API, in the file's order
    for c in sc["conversions_api"].as_array().ok_or("conversions_api")? {
        let a = post(
            worker,
            &site,
            "conversions",
            "application/json",
            &c.to_string(),
        );
        if a.status != 201 {
            return Err(format!("conversion {c}: {} {}", a.status, a.text));
        }
    }
    // 3. the CRM's CSV
    let csv = sc["conversions_csv"].as_str().ok_or("conversions_csv")?;
    let a = post(worker, &site, "conversions:import", "text/csv", csv);
    if a.status != 200 {
        return Err(format!("conversions:import: {} {}", a.status, a.text));
    }
    check_rows(&a, &sc["conversions_csv_expected"])?;
    // 4. spend
    for s in sc["spend_api"].as_array().ok_or("spend_api")? {
        let a = post(worker, &site, "spend", "application/json", &s.to_string());
        if a.status != 201 {
            return Err(format!("spend {s}: {} {}", a.status, a.text));
        }
    }
    let csv = sc["spend_csv"].as_str().ok_or("spend_csv")?;
    let a = post(worker, &site, "spend:import", "text/csv", csv);
    if a.status != 200 {
        return Err(format!("spend:import: {} {}", a.status, a.text));
    }
    check_rows(&a, &sc["spend_csv_expected"])?;

    // the worker's session ids, by visitor and start time (imports queue their visitors;
    // the cron, or any read, sessionises them: here, the flush it runs)
    worker.flush_sessions(Some(&site.id))?;
    let rows = worker.query(&format!(
        "SELECT session_id, visitor_id, started_at FROM sessions WHERE site_id = '{}'",
        site.id
    ))?;
    let mut sessions = BTreeMap::new();
    for s in sc["expected"]["sessions"]
        .as_array()
        .ok_or("expected.sessions")?
    {
        let found = rows.iter().find(|r| {
            r["visitor_id"] == s["visitor"] && r["started_at"].as_i64() == s["started_at"].as_i64()
        });
        if let (Some(name), Some(r)) = (s["id"].as_str(), found) {
            sessions.insert(
                name.to_string(),
                r["session_id"].as_str().unwrap_or_default().to_string(),
            );
        }
    }
    Ok(Loaded {
        worker,
        site,
        scenario: sc,
        sessions,
    })
}

/// Per-row answers of an import against the file's `*_csv_expected`: `ok` rows created,
/// `error` rows rejected with that code.
fn check_rows(a: &Answer, expected: &Value) -> Result<(), String> {
    for e in expected.as_array().ok_or("expected rows")? {
        let row = a.json["rows"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["row"] == e["row"]))
            .ok_or_else(|| format!("no answer for row {} in {}", e["row"], a.text))?;
        let ok = match e.get("error") {
            Some(code) => row["status"] == "rejected" && row["error"]["code"] == *code,
            None => row["status"] == "created",
        };
        if !ok {
            return Err(format!("row {}: expected {e}, got {row}", e["row"]));
        }
    }
    Ok(())
}

fn loaded() -> &'static Loaded {
    static L: OnceLock<Result<Loaded, String>> = OnceLock::new();
    match L.get_or_init(load) {
        Ok(l) => l,
        Err(e) => panic!("replaying the scenario failed: {e}"),
    }
}

impl Loaded {
    fn get(&self, path: &str, params: &[(String, String)]) -> Answer {
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        let url = self.worker.url(&format!(
            "/v1/sites/{}/{path}?{}",
            self.site.id,
            query.join("&")
        ));
        let a = http::get(&url, Some(&self.site.read_key)).expect("GET");
        assert_eq!(a.status, 200, "GET {url}: {}", a.text);
        a
    }

    fn range(&self) -> Vec<(String, String)> {
        let r = &self.scenario["range"];
        vec![
            ("from".into(), r["from"].as_str().unwrap_or_default().into()),
            ("to".into(), r["to"].as_str().unwrap_or_default().into()),
        ]
    }

    /// The scenario name of a worker session id.
    fn name_of(&self, id: &str) -> String {
        self.sessions
            .iter()
            .find(|(_, v)| v.as_str() == id)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| format!("?{id}"))
    }
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The query parameters of an expected report's `query` object (numbers as text).
fn params_of(query: &Value) -> Vec<(String, String)> {
    query
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Compares one figure: numbers within [`EPS`], `null` with `null`.
fn same(expected: &Value, got: &Value) -> bool {
    match (expected, got) {
        (Value::Null, Value::Null) => true,
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => (a - b).abs() <= EPS * a.abs().max(1.0),
            _ => false,
        },
        (a, b) => a == b,
    }
}

/// Checks every field of `expected` (but `why`) against `got`; returns the differences.
fn diff(what: &str, expected: &Value, got: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(fields) = expected.as_object() {
        for (k, v) in fields {
            if k == "why" {
                continue;
            }
            let g = got.get(k).unwrap_or(&Value::Null);
            if !same(v, g) {
                out.push(format!("{what}.{k}: expected {v}, got {g}"));
            }
        }
    }
    out
}

/// Scenario: every session of the file, as the worker stored it (touch, landing page,
/// page views, bot flag), found by visitor and start time.
#[test]
fn sessions_are_stored_as_the_scenario_says() {
    let l = loaded();
    let mut errors = Vec::new();
    let rows = l
        .worker
        .query(&format!(
            "SELECT s.session_id, s.channel, s.source, s.medium, s.campaign, s.landing_path, \
             s.pageviews, s.is_bot, lv.lead_id FROM sessions s LEFT JOIN lead_visitors lv \
             ON lv.site_id = s.site_id AND lv.visitor_id = s.visitor_id WHERE s.site_id = '{}'",
            l.site.id
        ))
        .expect("sessions");
    let expected = l.scenario["expected"]["sessions"]
        .as_array()
        .expect("sessions");
    assert_eq!(rows.len(), expected.len(), "session count: {rows:?}");
    for e in expected {
        let name = e["id"].as_str().unwrap_or_default();
        let Some(id) = l.sessions.get(name) else {
            errors.push(format!(
                "{name}: no session of {} at {}",
                e["visitor"], e["started_at"]
            ));
            continue;
        };
        let Some(r) = rows.iter().find(|r| r["session_id"] == json!(id)) else {
            errors.push(format!("{name}: gone"));
            continue;
        };
        let got = json!({
            "channel": r["channel"], "source": r["source"], "medium": r["medium"],
            "campaign": r["campaign"], "landing_page": r["landing_path"],
            "pageviews": r["pageviews"], "is_bot": r["is_bot"].as_i64() == Some(1),
        });
        let want = json!({
            "channel": e["channel"], "source": e["source"], "medium": e["medium"],
            "campaign": e["campaign"], "landing_page": e["landing_page"],
            "pageviews": e["pageviews"], "is_bot": e["is_bot"],
        });
        errors.extend(diff(name, &want, &got));
        assert_eq!(
            r["lead_id"].is_null(),
            e["lead"].is_null(),
            "{name}: lead link"
        );
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// Scenario: the sources report of every written query (all nine models; country=DE;
/// channel=Email; lookback_days=14; conversion=opportunity; by campaign): each row's
/// visitors, sessions, credited leads / customers / revenue, conversions, spend, CAC,
/// revenue per customer, ROI, the totals row, the spend reconciliation where the file
/// works it out, and no row the file does not list.
#[test]
fn every_sources_report_of_the_scenario() {
    let l = loaded();
    let mut errors = Vec::new();
    let mut timings = Vec::new();
    for report in l.scenario["expected"]["reports"]
        .as_array()
        .expect("reports")
    {
        let name = report["name"].as_str().unwrap_or("?");
        let mut params = l.range();
        params.extend(params_of(&report["query"]));
        let started = Instant::now();
        let a = l.get("reports/sources", &params);
        timings.push(started.elapsed());
        let rows = a.json["rows"].as_array().cloned().unwrap_or_default();
        let expected = report["rows"].as_object().cloned().unwrap_or_default();
        for (key, want) in &expected {
            match rows.iter().find(|r| r["key"] == json!(key)) {
                Some(got) => errors.extend(diff(&format!("{name} [{key}]"), want, got)),
                None => errors.push(format!("{name}: no row {key} in {}", a.text)),
            }
        }
        for r in &rows {
            let key = r["key"].as_str().unwrap_or("?");
            if !expected.contains_key(key) {
                errors.push(format!("{name}: unexpected row {r}"));
            }
        }
        errors.extend(diff(
            &format!("{name} [totals]"),
            &report["totals"],
            &a.json["totals"],
        ));
        if let Some(want) = report.get("spend_reconciliation") {
            errors.extend(diff(
                &format!("{name} [spend_reconciliation]"),
                want,
                &a.json["spend_reconciliation"],
            ));
        }
    }
    timings.sort();
    println!(
        "sources report latency over {} queries: median {:?}, max {:?}",
        timings.len(),
        timings.get(timings.len() / 2).copied().unwrap_or_default(),
        timings.last().copied().unwrap_or_default()
    );
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// Every stored row of the site in the shape core's report engine reads (spend left out):
/// the reference data of `report::sources`.
fn stored_data(l: &Loaded) -> ReportData {
    let site = &l.site.id;
    let rows = |sql: String| l.worker.query(&sql).expect("stored rows");
    let sessions = rows(format!(
        "SELECT s.session_id AS id, s.visitor_id AS visitor, lv.lead_id AS lead, \
         s.started_at AS started_at, s.channel AS channel, s.source AS source, \
         s.medium AS medium, s.campaign AS campaign, coalesce(s.landing_path, '/') AS \
         landing_page, s.pageviews AS pageviews, s.is_bot AS is_bot, s.country AS country, \
         s.device_type AS device FROM sessions s LEFT JOIN lead_visitors lv \
         ON lv.site_id = s.site_id AND lv.visitor_id = s.visitor_id WHERE s.site_id = '{site}'"
    ))
    .into_iter()
    .map(|mut v| {
        v["is_bot"] = json!(v["is_bot"].as_i64() == Some(1));
        serde_json::from_value::<SessionRow>(v).expect("a session row")
    })
    .collect();
    let mut conversions = rows(format!(
        "SELECT 'lead:' || lead_id AS id, lead_id AS lead, 'lead' AS kind, first_seen AS at, \
         0 AS revenue, first_seen AS lead_at FROM leads WHERE site_id = '{site}'"
    ));
    conversions.extend(rows(format!(
        "SELECT c.deal_id || ':' || c.kind AS id, c.lead_id AS lead, c.kind AS kind, \
         c.closed_at AS at, c.revenue AS revenue, l.first_seen AS lead_at, \
         (SELECT min(c2.closed_at) FROM conversions c2 WHERE c2.site_id = c.site_id \
           AND c2.deal_id = c.deal_id AND c2.kind <> 'customer') AS opportunity_at \
         FROM conversions c LEFT JOIN leads l ON l.site_id = c.site_id AND l.lead_id = c.lead_id \
         WHERE c.site_id = '{site}'"
    )));
    ReportData {
        sessions,
        conversions: conversions
            .into_iter()
            .map(|v| serde_json::from_value::<ConversionRow>(v).expect("a conversion row"))
            .collect(),
        pageviews: Vec::new(),
        spend: Vec::new(),
    }
}

/// The worker counts a sources report's traffic in SQL two ways: one pass over the
/// session markers (bots left out, no segment) or distinct visitors per row and overall
/// with `data_driven`'s steps from each visitor's sessions in order (bots in, or a
/// segment). Every expected report's query, under every grouping, over the scenario's range
/// and one that starts inside it, with and without bots:
/// each row's visitors, sessions, page views, leads, customers and revenue equal core's
/// reference `report::sources` over every stored row (an equivalence check; the hand-worked
/// figures are `every_sources_report_of_the_scenario`'s).
#[test]
fn both_counting_paths_equal_the_reference_over_every_stored_row() {
    const FIGURES: [&str; 6] = [
        "visitors",
        "sessions",
        "pageviews",
        "leads",
        "customers",
        "revenue",
    ];
    let l = loaded();
    // a report first: the sessions are flushed
    l.get("reports/sources", &l.range());
    let data = stored_data(l);
    let mut errors = Vec::new();
    let mut compared = 0;
    for report in l.scenario["expected"]["reports"]
        .as_array()
        .expect("reports")
    {
        let name = report["name"].as_str().unwrap_or("?");
        // the scenario's range, and one that starts inside it (sessions before `from`)
        let ranges = [
            l.range(),
            vec![
                ("from".to_string(), "2026-09-27T12:00:00Z".to_string()),
                ("to".to_string(), "2026-10-19T00:00:00Z".to_string()),
            ],
        ];
        for (group_by, range) in ["channel", "source", "medium", "campaign", "landing_page"]
            .into_iter()
            .flat_map(|g| ranges.iter().map(move |r| (g, r)))
        {
            for bots in [false, true] {
                let mut params = range.clone();
                params.extend(
                    params_of(&report["query"])
                        .into_iter()
                        .filter(|(k, _)| k != "group_by"),
                );
                params.push(("group_by".into(), group_by.into()));
                if bots {
                    params.push(("include_bots".into(), "true".into()));
                }
                let got = l.get("reports/sources", &params);
                let query =
                    Query::from_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())), 0)
                        .expect("the query");
                let want = serde_json::to_value(report::sources(&data, &query)).expect("json");
                let what = format!(
                    "{name} by {group_by} from {}, include_bots={bots}",
                    range[0].1
                );
                // (rows of spend alone are not the reference's: it has no spend)
                let figures = |rows: &Value| -> BTreeMap<String, Value> {
                    rows.as_array()
                        .into_iter()
                        .flatten()
                        .filter(|r| {
                            ["visitors", "sessions", "leads", "customers", "revenue"]
                                .iter()
                                .any(|k| r[*k].as_f64().unwrap_or(0.0) != 0.0)
                        })
                        .map(|r| {
                            let mut f = serde_json::Map::new();
                            for k in FIGURES {
                                f.insert(k.into(), r[k].clone());
                            }
                            (
                                r["key"].as_str().unwrap_or("?").to_string(),
                                Value::Object(f),
                            )
                        })
                        .collect()
                };
                let (w, g) = (figures(&want["rows"]), figures(&got.json["rows"]));
                if w.keys().ne(g.keys()) || w.is_empty() {
                    errors.push(format!(
                        "{what}: rows {:?}, the worker's {:?}",
                        w.keys(),
                        g.keys()
                    ));
                    continue;
                }
                for (key, row) in &w {
                    errors.extend(diff(&format!("{what} [{key}]"), row, &g[key]));
                }
                for k in FIGURES {
                    if !same(&want["totals"][k], &got.json["totals"][k]) {
                        errors.push(format!(
                            "{what} [totals].{k}: expected {}, got {}",
                            want["totals"][k], got.json["totals"][k]
                        ));
                    }
                }
                compared += 1;
            }
        }
    }
    assert!(compared >= 400, "only {compared} reports compared");
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// Scenario: the pages report (all sessions, sorted by views) and the country=DE segment
/// (sorted by path), and both again from inside a session (d2 12:02): every page's views,
/// entrances, assists and direct conversions, and the order.
#[test]
fn pages_reports_of_the_scenario() {
    let l = loaded();
    let mut errors = Vec::new();
    for name in [
        "pages",
        "pages_country_de",
        "pages_from_mid_session",
        "pages_from_mid_session_de",
    ] {
        let e = &l.scenario["expected"][name];
        let a = l.get("reports/pages", &params_of(&e["query"]));
        let rows = a.json["rows"].as_array().cloned().unwrap_or_default();
        let order: Vec<&Value> = rows.iter().map(|r| &r["path"]).collect();
        let want: Vec<&Value> = e["order"]
            .as_array()
            .map(|o| o.iter().collect())
            .unwrap_or_default();
        if order != want {
            errors.push(format!("{name}: order {order:?}, expected {want:?}"));
        }
        for (path, want) in e["rows"].as_object().cloned().unwrap_or_default() {
            match rows.iter().find(|r| r["path"] == json!(path)) {
                Some(got) => errors.extend(diff(&format!("{name} [{path}]"), &want, got)),
                None => errors.push(format!("{name}: no row {path}")),
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// Scenario: weekly totals (first_touch) over the range, bucket by ISO week.
#[test]
fn weekly_timeseries_of_the_scenario() {
    let l = loaded();
    let e = &l.scenario["expected"]["timeseries"];
    let mut params = l.range();
    params.extend(params_of(&e["query"]));
    let a = l.get("reports/timeseries", &params);
    let points = a.json["points"].as_array().cloned().unwrap_or_default();
    let buckets = e["buckets"].as_object().cloned().unwrap_or_default();
    assert_eq!(points.len(), buckets.len(), "{}", a.text);
    let mut errors = Vec::new();
    for (label, want) in &buckets {
        match points.iter().find(|p| p["bucket"] == json!(label)) {
            Some(p) => errors.extend(diff(label, want, &p["figures"])),
            None => errors.push(format!("no bucket {label} in {}", a.text)),
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// Scenario: each lead's journey (by email): its visitors in order, its sessions, its
/// pages in order with their sessions, and each conversion's share per touch for every
/// model the file works out.
#[test]
fn every_lead_journey_of_the_scenario() {
    let l = loaded();
    let mut errors = Vec::new();
    for (email, want) in l.scenario["expected"]["journeys"]
        .as_object()
        .cloned()
        .unwrap_or_default()
    {
        let a = l.get(&format!("leads/{}", encode(&email)), &l.range());
        let j = &a.json;
        if j["email"] != json!(email) {
            errors.push(format!("{email}: email {}", j["email"]));
        }
        if j["visitors"] != want["visitors"] {
            errors.push(format!(
                "{email}: visitors {} vs {}",
                j["visitors"], want["visitors"]
            ));
        }
        let sessions: Vec<String> = j["sessions"]
            .as_array()
            .map(|s| {
                s.iter()
                    .map(|s| l.name_of(s["id"].as_str().unwrap_or("")))
                    .collect()
            })
            .unwrap_or_default();
        let want_sessions: Vec<String> = want["sessions"]
            .as_array()
            .map(|s| {
                s.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if sessions != want_sessions {
            errors.push(format!(
                "{email}: sessions {sessions:?} vs {want_sessions:?}"
            ));
        }
        let pages: Vec<(Value, i64, String)> = j["pages"]
            .as_array()
            .map(|p| {
                p.iter()
                    .map(|p| {
                        let at = p["at"]
                            .as_str()
                            .and_then(|t| closeloop_core::time::parse_rfc3339(t).ok())
                            .unwrap_or(-1);
                        (
                            p["path"].clone(),
                            at,
                            l.name_of(p["session"].as_str().unwrap_or("")),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let want_pages: Vec<(Value, i64, String)> = want["pages"]
            .as_array()
            .map(|p| {
                p.iter()
                    .map(|p| {
                        (
                            p["path"].clone(),
                            p["at"].as_i64().unwrap_or(-2),
                            p["session"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if pages != want_pages {
            errors.push(format!("{email}: pages {pages:?} vs {want_pages:?}"));
        }
        let convs = j["conversions"].as_array().cloned().unwrap_or_default();
        let want_convs = want["conversions"].as_array().cloned().unwrap_or_default();
        if convs.len() != want_convs.len() {
            errors.push(format!(
                "{email}: {} conversions, expected {}",
                convs.len(),
                want_convs.len()
            ));
        }
        for wc in &want_convs {
            let at = wc["at"].as_i64().unwrap_or(-1);
            let found = convs.iter().find(|c| {
                c["conversion"]["kind"] == wc["kind"]
                    && c["conversion"]["at"]
                        .as_str()
                        .and_then(|t| closeloop_core::time::parse_rfc3339(t).ok())
                        == Some(at)
            });
            let Some(c) = found else {
                errors.push(format!("{email}: no conversion {} at {at}", wc["id"]));
                continue;
            };
            let what = format!("{email} {}", wc["id"]);
            if !same(&wc["revenue"], &c["conversion"]["revenue"]) {
                errors.push(format!("{what}: revenue {}", c["conversion"]["revenue"]));
            }
            for (model, shares) in wc["credits"].as_object().cloned().unwrap_or_default() {
                let got: BTreeMap<String, f64> = c["credits"]
                    .as_array()
                    .and_then(|cr| cr.iter().find(|m| m["model"] == json!(model)))
                    .and_then(|m| m["touches"].as_array())
                    .map(|t| {
                        t.iter()
                            .map(|t| {
                                (
                                    l.name_of(t["session"].as_str().unwrap_or("")),
                                    t["share"].as_f64().unwrap_or(f64::NAN),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let want: BTreeMap<String, f64> = shares
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(f64::NAN)))
                            .collect()
                    })
                    .unwrap_or_default();
                // the file lists the touches with a share; the answer lists every touch
                // of the window (those without credit at 0)
                let values_match = want
                    .iter()
                    .all(|(k, v)| got.get(k).is_some_and(|g| (g - v).abs() <= 1e-9))
                    && got
                        .iter()
                        .all(|(k, g)| want.contains_key(k) || g.abs() <= 1e-9);
                if !values_match {
                    errors.push(format!("{what} {model}: {got:?} vs {want:?}"));
                }
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// Scenario: the leads list finds each lead by email, with the number of its devices
/// (from `expected.leads`) and, for Ann, her won deal (5000.00 USD = 500000 cents,
/// `conversions_api`); the channel search finds the leads with an email session.
#[test]
fn the_leads_list_searches_by_email_and_channel() {
    let l = loaded();
    for (email, want) in l.scenario["expected"]["leads"]
        .as_object()
        .cloned()
        .unwrap_or_default()
    {
        let a = l.get("leads", &[("email".into(), email.clone())]);
        let leads = a.json["leads"].as_array().cloned().unwrap_or_default();
        assert_eq!(leads.len(), 1, "{email}: {}", a.text);
        assert_eq!(leads[0]["email"], json!(email));
        assert_eq!(
            leads[0]["visitors"].as_u64(),
            want["visitors"].as_array().map(|v| v.len() as u64),
            "{email}"
        );
    }
    let ann = l.get("leads", &[("email".into(), "ann@".into())]);
    assert_eq!(ann.json["leads"][0]["customer"], json!(true));
    assert_eq!(ann.json["leads"][0]["revenue"], json!(500000));
    // Email sessions: s01 (ann), s08 (dan), s14 (anonymous): two leads
    let email = l.get("leads", &[("channel".into(), "Email".into())]);
    let mut found: Vec<String> = email.json["leads"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|x| x["email"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    assert_eq!(
        found,
        vec!["ann@example.com", "dan@example.com"],
        "{}",
        email.text
    );
}

/// Scenario: replaying the same imports again changes nothing: every event a duplicate,
/// every deal and CSV row unchanged, spend unchanged; the totals of the first report stay.
#[test]
fn replaying_the_scenario_changes_nothing() {
    let l = loaded();
    let sc = &l.scenario;
    let batches: Vec<Value> = sc["visitors"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|v| json!({"visitor_id": v["visitor_id"], "events": v["events"], "context": v["context"]}))
                .collect()
        })
        .unwrap_or_default();
    let ndjson: Vec<String> = batches.iter().map(Value::to_string).collect();
    let a = post(
        l.worker,
        &l.site,
        "events:import",
        "application/x-ndjson",
        &ndjson.join("\n"),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        (a.json["accepted"].as_u64(), a.json["rejected"].as_u64()),
        (Some(0), Some(0)),
        "{}",
        a.text
    );
    for c in sc["conversions_api"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let a = post(
            l.worker,
            &l.site,
            "conversions",
            "application/json",
            &c.to_string(),
        );
        assert_eq!(
            (a.status, &a.json["status"]),
            (200, &json!("unchanged")),
            "{}",
            a.text
        );
    }
    let a = post(
        l.worker,
        &l.site,
        "conversions:import",
        "text/csv",
        sc["conversions_csv"].as_str().unwrap_or(""),
    );
    assert_eq!(
        (a.json["created"].as_u64(), a.json["unchanged"].as_u64()),
        (Some(0), Some(1)),
        "{}",
        a.text
    );
    let a = post(
        l.worker,
        &l.site,
        "spend:import",
        "text/csv",
        sc["spend_csv"].as_str().unwrap_or(""),
    );
    assert_eq!(
        (a.json["created"].as_u64(), a.json["unchanged"].as_u64()),
        (Some(0), Some(1)),
        "{}",
        a.text
    );
    let first = &sc["expected"]["reports"][0];
    let mut params = l.range();
    params.extend(params_of(&first["query"]));
    let r = l.get("reports/sources", &params);
    let errors = diff("replayed totals", &first["totals"], &r.json["totals"]);
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}
