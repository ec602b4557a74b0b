//! The written closed-loop scenario (`tests/scenarios/closed_loop.json`), run natively: events →
//! core's entry parsing, channel classification and sessionisation → leads by email →
//! conversions from the API records and the CSV import → the report engine; every figure is
//! compared with the one worked out by hand in the file (within 1e-9).

use std::collections::BTreeMap;

use closeloop_core::attribution::Model;
use closeloop_core::channel::{classify, is_excluded_referrer};
use closeloop_core::costs::allocate_days;
use closeloop_core::entry::parse_entry;
use closeloop_core::identity::{normalize_email, Leads};
use closeloop_core::import::{parse_conversions, parse_spend, ImportOptions};
use closeloop_core::report::{
    journey, pages, sources, timeseries, Chains, ConversionRow, Filters, GroupBy, PageSort,
    PageViewRow, Query, ReportData, SessionRow, SpendRow,
};
use closeloop_core::session::{sessionize, Arrival, SessionEvent};
use closeloop_core::time::{parse_date, parse_rfc3339, Granularity, MS_PER_DAY};
use serde_json::Value;

const TOL: f64 = 1e-9;

fn scenario() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/scenarios/closed_loop.json"
    );
    let text = std::fs::read_to_string(path).expect("scenario file");
    serde_json::from_str(&text).expect("scenario JSON")
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn opt_s(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= TOL * b.abs().max(1.0)
}

fn check_f(what: &str, got: f64, want: &Value) {
    let want = want
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: expected a number, got {want}"));
    assert!(close(got, want), "{what}: got {got}, expected {want}");
}

fn check_opt(what: &str, got: Option<f64>, want: &Value) {
    match (got, want.as_f64()) {
        (None, None) => {}
        (Some(g), Some(w)) => assert!(close(g, w), "{what}: got {g}, expected {w}"),
        (g, _) => panic!("{what}: got {g:?}, expected {want}"),
    }
}

/// The session source key: two arrivals are the same source when all of these are equal.
#[derive(Debug, Clone, PartialEq)]
struct Source {
    channel: String,
    source: String,
    medium: String,
    campaign: Option<String>,
}

/// Everything built from the scenario's events and conversion inputs.
struct World {
    data: ReportData,
    leads: Leads,
}

fn build(sc: &Value) -> World {
    let hosts: Vec<&str> = sc["site"]["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(s)
        .collect();
    let expected_sessions = sc["expected"]["sessions"].as_array().expect("sessions");
    let mut sessions: Vec<SessionRow> = Vec::new();
    let mut pageviews: Vec<PageViewRow> = Vec::new();
    let mut identifications: Vec<(String, String, i64, String)> = Vec::new(); // visitor, email, at, event id
    let mut event_session: BTreeMap<String, (String, String)> = BTreeMap::new(); // event id -> (session, path)

    for visitor in sc["visitors"].as_array().expect("visitors") {
        let vid = s(&visitor["visitor_id"]).to_owned();
        let ctx = &visitor["context"];
        let events: Vec<&Value> = visitor["events"]
            .as_array()
            .expect("events")
            .iter()
            .collect();
        let mut sevents: Vec<SessionEvent<Source>> = Vec::new();
        for e in &events {
            let url = s(&e["url"]);
            let referrer = Some(s(&e["referrer"])).filter(|r| !r.is_empty());
            let entry = parse_entry(url, referrer, &hosts);
            let touch = classify(&entry);
            let src = Source {
                channel: touch.channel.as_str().to_owned(),
                source: touch.source.clone(),
                medium: touch.medium.clone(),
                campaign: touch.campaign.clone(),
            };
            let arrival = if s(&e["type"]) != "pageview" || entry.same_site_referrer {
                Arrival::Internal
            } else if entry.tags.has_any() {
                Arrival::Tagged(src)
            } else if let Some(host) = entry.referrer_host.clone() {
                Arrival::Referral { host, source: src }
            } else {
                Arrival::Direct
            };
            sevents.push(SessionEvent {
                id: s(&e["id"]).to_owned(),
                at: e["created_at"].as_i64().expect("created_at"),
                path: entry.landing_path.clone(),
                arrival,
            });
            if s(&e["type"]) == "form_submit" {
                if let Some(email) = e["form"]["values"]["email"].as_str() {
                    identifications.push((
                        vid.clone(),
                        email.to_owned(),
                        e["created_at"].as_i64().unwrap_or_default(),
                        s(&e["id"]).to_owned(),
                    ));
                }
            }
        }
        let built = sessionize(&sevents, |h| is_excluded_referrer(h, &[]));
        for sess in built {
            // name the session as the scenario does: by visitor and start
            let exp = expected_sessions
                .iter()
                .find(|x| s(&x["visitor"]) == vid && x["started_at"].as_i64() == Some(sess.start))
                .unwrap_or_else(|| {
                    panic!("no expected session of {vid} starting at {}", sess.start)
                });
            let id = s(&exp["id"]).to_owned();
            let touch = sess.touch.clone().unwrap_or(Source {
                channel: "Direct".into(),
                source: "(direct)".into(),
                medium: "(none)".into(),
                campaign: None,
            });
            let mut views = 0;
            for &i in &sess.events {
                let ev = &sevents[i];
                let raw = events[i];
                event_session.insert(ev.id.clone(), (id.clone(), ev.path.clone()));
                if s(&raw["type"]) == "pageview" {
                    views += 1;
                    pageviews.push(PageViewRow {
                        session: id.clone(),
                        path: ev.path.clone(),
                        at: ev.at,
                    });
                }
            }
            sessions.push(SessionRow {
                id,
                visitor: vid.clone(),
                lead: None,
                started_at: sess.start,
                channel: touch.channel,
                source: touch.source,
                medium: touch.medium,
                campaign: touch.campaign,
                landing_page: sess.landing_path.clone(),
                pageviews: views,
                is_bot: ctx["is_bot"].as_bool().unwrap_or(false),
                country: opt_s(&ctx["country"]),
                device: opt_s(&ctx["device_type"]),
            });
        }
    }

    let leads = Leads::build(
        identifications
            .iter()
            .map(|(v, e, _, _)| (v.as_str(), e.as_str())),
    );
    for sess in &mut sessions {
        sess.lead = leads.leads_of(&sess.visitor).next().map(str::to_owned);
    }

    // lead conversions: the first identification of each email
    let mut conversions: Vec<ConversionRow> = Vec::new();
    let mut lead_at: BTreeMap<String, i64> = BTreeMap::new();
    let mut firsts: Vec<&(String, String, i64, String)> = identifications.iter().collect();
    firsts.sort_by_key(|x| x.2);
    for (_, email, at, event) in firsts {
        let lead = normalize_email(email).expect("email");
        if lead_at.contains_key(&lead) {
            continue;
        }
        lead_at.insert(lead.clone(), *at);
        let (session, page) = event_session.get(event).cloned().expect("event session");
        conversions.push(ConversionRow {
            id: format!("lead:{}", lead.split('@').next().unwrap_or_default()),
            lead,
            kind: "lead".into(),
            at: *at,
            revenue: 0,
            lead_at: Some(*at),
            opportunity_at: None,
            page: Some(page),
            session: Some(session),
        });
    }

    // deals: the API records, then the CSV import
    struct Deal {
        deal_id: String,
        email: String,
        stage: Option<String>,
        revenue: i64,
        at: i64,
    }
    let mut deals: Vec<Deal> = sc["conversions_api"]
        .as_array()
        .expect("conversions_api")
        .iter()
        .map(|d| Deal {
            deal_id: s(&d["deal_id"]).to_owned(),
            email: normalize_email(s(&d["email"])).expect("email"),
            stage: opt_s(&d["stage"]),
            revenue: (d["revenue"].as_f64().expect("revenue") * 100.0).round() as i64,
            at: parse_rfc3339(s(&d["closed_at"])).expect("closed_at"),
        })
        .collect();
    let opts = ImportOptions {
        default_currency: Some("USD".into()),
        ..ImportOptions::default()
    };
    let rows = parse_conversions(s(&sc["conversions_csv"]).as_bytes(), &opts).expect("csv");
    let expected_rows = sc["conversions_csv_expected"]
        .as_array()
        .expect("csv expected");
    assert_eq!(rows.len(), expected_rows.len(), "CSV rows");
    for (row, exp) in rows.iter().zip(expected_rows) {
        assert_eq!(Some(row.row), exp["row"].as_u64());
        match (&row.result, exp.get("ok")) {
            (Ok(rec), Some(ok)) => {
                assert_eq!(rec.deal_id, s(&ok["deal_id"]));
                assert_eq!(rec.email.as_deref(), ok["email"].as_str());
                assert_eq!(Some(rec.revenue), ok["revenue"].as_i64());
                assert_eq!(rec.currency, s(&ok["currency"]));
                assert_eq!(Some(rec.closed_at), ok["closed_at"].as_i64());
                assert_eq!(rec.stage.as_deref(), ok["stage"].as_str());
                deals.push(Deal {
                    deal_id: rec.deal_id.clone(),
                    email: rec.email.clone().unwrap_or_default(),
                    stage: rec.stage.clone(),
                    revenue: rec.revenue,
                    at: rec.closed_at,
                });
            }
            (Err(e), None) => assert_eq!(e.code, s(&exp["error"]), "CSV row {}", row.row),
            (got, _) => panic!("CSV row {}: got {got:?}, expected {exp}", row.row),
        }
    }
    for d in &deals {
        let opportunity_at = deals
            .iter()
            .filter(|o| o.deal_id == d.deal_id && o.stage.is_some())
            .map(|o| o.at)
            .min();
        conversions.push(ConversionRow {
            id: format!("{}:{}", d.deal_id, d.stage.as_deref().unwrap_or("customer")),
            lead: d.email.clone(),
            kind: d.stage.clone().unwrap_or_else(|| "customer".into()),
            at: d.at,
            revenue: d.revenue,
            lead_at: lead_at.get(&d.email).copied(),
            opportunity_at,
            page: None,
            session: None,
        });
    }

    // spend: the API period spread per day, and the CSV rows
    let mut spend: Vec<SpendRow> = Vec::new();
    for sp in sc["spend_api"].as_array().expect("spend_api") {
        let first = parse_date(s(&sp["start"])).expect("start") / MS_PER_DAY;
        let last = parse_date(s(&sp["end"])).expect("end") / MS_PER_DAY;
        let cents = (sp["amount"].as_f64().expect("amount") * 100.0).round() as i64;
        for (day, amount) in allocate_days(cents, first, last) {
            spend.push(SpendRow {
                day,
                channel: s(&sp["channel"]).to_owned(),
                source: opt_s(&sp["source"]),
                campaign: opt_s(&sp["campaign"]),
                amount,
            });
        }
    }
    let rows = parse_spend(s(&sc["spend_csv"]).as_bytes(), &opts).expect("spend csv");
    let expected_rows = sc["spend_csv_expected"]
        .as_array()
        .expect("spend csv expected");
    assert_eq!(rows.len(), expected_rows.len());
    for (row, exp) in rows.iter().zip(expected_rows) {
        let rec = row.result.as_ref().expect("spend row ok");
        let ok = &exp["ok"];
        assert_eq!(Some(rec.amount), ok["amount"].as_i64());
        assert_eq!(Some(rec.first_day), ok["first_day"].as_i64());
        assert_eq!(Some(rec.last_day), ok["last_day"].as_i64());
        assert_eq!(rec.channel, s(&ok["channel"]));
        assert_eq!(rec.source.as_deref(), ok["source"].as_str());
        assert_eq!(rec.campaign.as_deref(), ok["campaign"].as_str());
        for (day, amount) in allocate_days(rec.amount, rec.first_day, rec.last_day) {
            spend.push(SpendRow {
                day,
                channel: rec.channel.clone(),
                source: rec.source.clone(),
                campaign: rec.campaign.clone(),
                amount,
            });
        }
    }

    World {
        data: ReportData {
            sessions,
            conversions,
            pageviews,
            spend,
        },
        leads,
    }
}

fn range(sc: &Value) -> (i64, i64) {
    (
        sc["range"]["from_ms"].as_i64().expect("from"),
        sc["range"]["to_ms"].as_i64().expect("to"),
    )
}

#[test]
fn sessions_leads_and_conversions_are_built_as_written() {
    let sc = scenario();
    let w = build(&sc);
    let expected = sc["expected"]["sessions"].as_array().expect("sessions");
    assert_eq!(w.data.sessions.len(), expected.len(), "number of sessions");
    for exp in expected {
        let id = s(&exp["id"]);
        let got = w
            .data
            .sessions
            .iter()
            .find(|x| x.id == id)
            .expect("session built");
        assert_eq!(got.visitor, s(&exp["visitor"]), "{id} visitor");
        assert_eq!(got.lead.as_deref(), exp["lead"].as_str(), "{id} lead");
        assert_eq!(got.channel, s(&exp["channel"]), "{id} channel");
        assert_eq!(got.source, s(&exp["source"]), "{id} source");
        assert_eq!(got.medium, s(&exp["medium"]), "{id} medium");
        assert_eq!(
            got.campaign.as_deref(),
            exp["campaign"].as_str(),
            "{id} campaign"
        );
        assert_eq!(
            got.landing_page,
            s(&exp["landing_page"]),
            "{id} landing page"
        );
        assert_eq!(
            Some(got.pageviews),
            exp["pageviews"].as_u64(),
            "{id} pageviews"
        );
        assert_eq!(Some(got.is_bot), exp["is_bot"].as_bool(), "{id} bot");
    }
    for (email, exp) in sc["expected"]["leads"].as_object().expect("leads") {
        let visitors: Vec<&str> = w.leads.visitors_of(email).collect();
        let mut want: Vec<&str> = exp["visitors"]
            .as_array()
            .expect("visitors")
            .iter()
            .map(s)
            .collect();
        want.sort_unstable();
        assert_eq!(visitors, want, "visitors of {email}");
    }
    let expected = sc["expected"]["conversions"]
        .as_array()
        .expect("conversions");
    assert_eq!(
        w.data.conversions.len(),
        expected.len(),
        "number of conversions"
    );
    for exp in expected {
        let id = s(&exp["id"]);
        let got = w
            .data
            .conversions
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("conversion {id}"));
        assert_eq!(got.lead, s(&exp["lead"]), "{id}");
        assert_eq!(got.kind, s(&exp["kind"]), "{id}");
        assert_eq!(Some(got.at), exp["at"].as_i64(), "{id} at");
        assert_eq!(Some(got.revenue), exp["revenue"].as_i64(), "{id} revenue");
        assert_eq!(got.lead_at, exp["lead_at"].as_i64(), "{id} lead_at");
        assert_eq!(
            got.opportunity_at,
            exp["opportunity_at"].as_i64(),
            "{id} opportunity_at"
        );
        assert_eq!(got.page.as_deref(), exp["page"].as_str(), "{id} page");
        assert_eq!(
            got.session.as_deref(),
            exp["session"].as_str(),
            "{id} session"
        );
    }
}

fn query_of(sc: &Value, q: &Value) -> Query {
    let (from, to) = range(sc);
    let mut query = Query::new(from, to);
    query.group_by = q["group_by"]
        .as_str()
        .unwrap_or("channel")
        .parse()
        .expect("group_by");
    query.model = s(&q["model"]).parse::<Model>().expect("model");
    query.lookback_days = q["lookback_days"].as_i64().expect("lookback");
    query.half_life_days = q["half_life_days"].as_f64().expect("half life");
    query.conversion = s(&q["conversion"]).to_owned();
    query.filters = Filters {
        country: opt_s(&q["country"]),
        channel: opt_s(&q["channel"]),
        ..Filters::default()
    };
    query
}

fn check_row(what: &str, got: &closeloop_core::report::SourceRow, want: &Value) {
    assert_eq!(
        Some(got.visitors),
        want["visitors"].as_u64(),
        "{what} visitors"
    );
    assert_eq!(
        Some(got.sessions),
        want["sessions"].as_u64(),
        "{what} sessions"
    );
    check_f(&format!("{what} leads"), got.leads, &want["leads"]);
    check_f(
        &format!("{what} customers"),
        got.customers,
        &want["customers"],
    );
    check_f(&format!("{what} revenue"), got.revenue, &want["revenue"]);
    check_f(
        &format!("{what} conversions"),
        got.conversions,
        &want["conversions"],
    );
    check_f(
        &format!("{what} conversion_revenue"),
        got.conversion_revenue,
        &want["conversion_revenue"],
    );
    assert_eq!(got.spend, want["spend"].as_i64(), "{what} spend");
    check_opt(&format!("{what} cac"), got.cac, &want["cac"]);
    check_opt(
        &format!("{what} revenue_per_customer"),
        got.revenue_per_customer,
        &want["revenue_per_customer"],
    );
    check_opt(&format!("{what} roi"), got.roi, &want["roi"]);
}

#[test]
fn sources_reports_match_the_hand_worked_figures() {
    let sc = scenario();
    let w = build(&sc);
    let reports = sc["expected"]["reports"].as_array().expect("reports");
    assert!(
        reports.len() >= 9 + 4 + 2 + 8 + 2,
        "every model, filters, lookback, stage"
    );
    for exp in reports {
        let name = s(&exp["name"]);
        let query = query_of(&sc, &exp["query"]);
        let report = sources(&w.data, &query);
        let want_rows = exp["rows"].as_object().expect("rows");
        let got_keys: Vec<&str> = report.rows.iter().map(|r| r.key.as_str()).collect();
        let mut want_keys: Vec<&str> = want_rows.keys().map(String::as_str).collect();
        let mut sorted_got = got_keys.clone();
        sorted_got.sort_unstable();
        want_keys.sort_unstable();
        assert_eq!(sorted_got, want_keys, "{name}: row keys");
        for row in &report.rows {
            check_row(&format!("{name} [{}]", row.key), row, &want_rows[&row.key]);
        }
        check_row(&format!("{name} [totals]"), &report.totals, &exp["totals"]);
        // the spend reconciliation, where the file works it out
        if let Some(want) = exp.get("spend_reconciliation") {
            let got = serde_json::to_value(&report.spend_reconciliation).expect("json");
            for (k, v) in want.as_object().expect("object") {
                if k != "why" {
                    assert_eq!(&got[k], v, "{name} spend_reconciliation.{k}");
                }
            }
        }
        let rec = &report.spend_reconciliation;
        assert_eq!(
            rec.rows + rec.unallocated,
            rec.total,
            "{name}: spend adds up"
        );
        assert_eq!(
            report.totals.spend,
            Some(rec.total),
            "{name}: totals' spend"
        );
        let rows_spend: i64 = report.rows.iter().filter_map(|r| r.spend).sum();
        assert_eq!(rows_spend, rec.rows, "{name}: rows' spend");
        // page views per row: the hand-written page views of the row's sessions
        let segment = &query.filters;
        let field = exp["query"]["group_by"].as_str().unwrap_or("channel");
        for row in &report.rows {
            let want: u64 = sc["expected"]["sessions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|x| {
                    x[field].as_str().unwrap_or("(not set)") == row.key
                        && x["is_bot"] == Value::Bool(false)
                        && segment
                            .country
                            .as_deref()
                            .is_none_or(|c| s(&x["country"]) == c)
                        && segment
                            .channel
                            .as_deref()
                            .is_none_or(|c| s(&x["channel"]) == c)
                })
                .filter_map(|x| x["pageviews"].as_u64())
                .sum();
            assert_eq!(row.pageviews, want, "{name} [{}] pageviews", row.key);
        }
        // rows add up to the totals
        let sum: f64 = report.rows.iter().map(|r| r.revenue).sum();
        assert!(
            close(sum, report.totals.revenue),
            "{name}: rows sum to totals"
        );
    }
}

#[test]
fn markov_chains_match_the_worked_chain() {
    let sc = scenario();
    let w = build(&sc);
    let (from, to) = range(&sc);
    let chains = Chains::fit(&w.data, &Query::new(from, to));
    for kind in ["lead", "customer"] {
        let exp = &sc["expected"]["markov"][kind];
        let chain = chains.get(kind).expect("chain");
        check_f(
            &format!("{kind} P"),
            chain.conversion_probability(),
            &exp["conversion_probability"],
        );
        for (channel, effect) in exp["removal_effects"].as_object().expect("effects") {
            check_f(
                &format!("{kind} removal {channel}"),
                chain.removal_effect(channel),
                effect,
            );
        }
        for (channel, share) in chain.normalised_removal_effects() {
            check_f(
                &format!("{kind} normalised {channel}"),
                share,
                &exp["normalised"][channel],
            );
        }
    }
}

#[test]
fn pages_report_matches() {
    let sc = scenario();
    let w = build(&sc);
    let (from, to) = range(&sc);
    let exp = &sc["expected"]["pages"];
    let rows = pages(&w.data, &Query::new(from, to), PageSort::Views, true);
    let order: Vec<&str> = rows.iter().map(|r| r.path.as_str()).collect();
    let want_order: Vec<&str> = exp["order"]
        .as_array()
        .expect("order")
        .iter()
        .map(s)
        .collect();
    assert_eq!(order, want_order, "pages sorted by views, descending");
    for r in &rows {
        let want = &exp["rows"][&r.path];
        assert_eq!(Some(r.views), want["views"].as_u64(), "{} views", r.path);
        assert_eq!(
            Some(r.entrances),
            want["entrances"].as_u64(),
            "{} entrances",
            r.path
        );
        assert_eq!(Some(r.exits), want["exits"].as_u64(), "{} exits", r.path);
        assert_eq!(
            Some(r.assisted_leads),
            want["assisted_leads"].as_u64(),
            "{} assisted leads",
            r.path
        );
        assert_eq!(
            Some(r.assisted_customers),
            want["assisted_customers"].as_u64(),
            "{} assisted customers",
            r.path
        );
        check_f(
            &format!("{} assisted revenue", r.path),
            r.assisted_revenue,
            &want["assisted_revenue"],
        );
        assert_eq!(
            Some(r.direct_conversions),
            want["direct_conversions"].as_u64(),
            "{} direct",
            r.path
        );
    }
    // sorting by path ascending gives the paths in order
    let by_path: Vec<String> = pages(&w.data, &Query::new(from, to), PageSort::Path, false)
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(by_path, ["/", "/blog/attribution", "/demo", "/pricing"]);
}

#[test]
fn pages_report_of_a_segment_matches() {
    let sc = scenario();
    let w = build(&sc);
    let (from, to) = range(&sc);
    let exp = &sc["expected"]["pages_country_de"];
    let mut query = Query::new(from, to);
    query.filters.country = Some("DE".into());
    let rows = pages(&w.data, &query, PageSort::Path, false);
    let order: Vec<&str> = rows.iter().map(|r| r.path.as_str()).collect();
    let want_order: Vec<&str> = exp["order"]
        .as_array()
        .expect("order")
        .iter()
        .map(s)
        .collect();
    assert_eq!(order, want_order);
    check_page_rows("country=DE", &rows, &exp["rows"]);
}

/// Each page row's figures against the scenario's `expected` rows (by path).
fn check_page_rows(name: &str, rows: &[closeloop_core::assists::PageRow], expected: &Value) {
    for r in rows {
        let want = &expected[&r.path];
        let got = [
            r.views,
            r.entrances,
            r.exits,
            r.assisted_leads,
            r.assisted_customers,
            r.direct_conversions,
        ];
        let want_counts: Vec<u64> = [
            "views",
            "entrances",
            "exits",
            "assisted_leads",
            "assisted_customers",
            "direct_conversions",
        ]
        .iter()
        .map(|k| want[*k].as_u64().unwrap_or(u64::MAX))
        .collect();
        assert_eq!(
            got.to_vec(),
            want_counts,
            "{name} {} (views, entrances, exits, assisted leads, customers, direct)",
            r.path
        );
        check_f(
            &format!("{name} {} assisted revenue", r.path),
            r.assisted_revenue,
            &want["assisted_revenue"],
        );
    }
}

/// The pages reports whose range starts inside a session (`pages_from_mid_session`, and
/// its country=DE segment): a view counts by its own time, whenever its session started.
#[test]
fn pages_reports_from_inside_a_session_match() {
    let sc = scenario();
    let w = build(&sc);
    for name in ["pages_from_mid_session", "pages_from_mid_session_de"] {
        let exp = &sc["expected"][name];
        let q = &exp["query"];
        let pairs: Vec<(String, String)> = q
            .as_object()
            .expect("query")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_owned)))
            .collect();
        let query = Query::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), 0)
            .expect("query");
        let sort: PageSort = s(&q["sort"]).parse().expect("sort");
        let rows = pages(&w.data, &query, sort, s(&q["order"]) == "desc");
        let order: Vec<&str> = rows.iter().map(|r| r.path.as_str()).collect();
        let want_order: Vec<&str> = exp["order"]
            .as_array()
            .expect("order")
            .iter()
            .map(s)
            .collect();
        assert_eq!(order, want_order, "{name} order");
        check_page_rows(name, &rows, &exp["rows"]);
    }
}

#[test]
fn weekly_timeseries_matches() {
    let sc = scenario();
    let w = build(&sc);
    let (from, to) = range(&sc);
    let mut query = Query::new(from, to);
    query.model = Model::FirstTouch;
    let points = timeseries(&w.data, &query, Granularity::Week, 100);
    let exp = sc["expected"]["timeseries"]["buckets"]
        .as_object()
        .expect("buckets");
    let labels: Vec<&str> = points.iter().map(|p| p.bucket.as_str()).collect();
    let want: Vec<&str> = exp.keys().map(String::as_str).collect();
    assert_eq!(labels, want);
    for p in &points {
        let e = &exp[&p.bucket];
        let f = &p.figures;
        assert_eq!(
            Some(f.visitors),
            e["visitors"].as_u64(),
            "{} visitors",
            p.bucket
        );
        assert_eq!(
            Some(f.sessions),
            e["sessions"].as_u64(),
            "{} sessions",
            p.bucket
        );
        check_f(&format!("{} leads", p.bucket), f.leads, &e["leads"]);
        check_f(
            &format!("{} customers", p.bucket),
            f.customers,
            &e["customers"],
        );
        check_f(&format!("{} revenue", p.bucket), f.revenue, &e["revenue"]);
        assert_eq!(f.spend, e["spend"].as_i64(), "{} spend", p.bucket);
        check_opt(&format!("{} cac", p.bucket), f.cac, &e["cac"]);
        check_opt(&format!("{} roi", p.bucket), f.roi, &e["roi"]);
    }
}

#[test]
fn journeys_match() {
    let sc = scenario();
    let w = build(&sc);
    let (from, to) = range(&sc);
    let query = Query::new(from, to);
    let chains = Chains::fit(&w.data, &query);
    for (lead, exp) in sc["expected"]["journeys"].as_object().expect("journeys") {
        let j = journey(&w.data, lead, &query, &chains).expect("journey");
        let want: Vec<&str> = exp["visitors"]
            .as_array()
            .expect("v")
            .iter()
            .map(s)
            .collect();
        assert_eq!(j.visitors, want, "{lead} visitors");
        let sessions: Vec<&str> = j.sessions.iter().map(|x| x.id.as_str()).collect();
        let want: Vec<&str> = exp["sessions"]
            .as_array()
            .expect("s")
            .iter()
            .map(s)
            .collect();
        assert_eq!(sessions, want, "{lead} sessions");
        let pages: Vec<(&str, i64, &str)> = j
            .pages
            .iter()
            .map(|p| (p.path.as_str(), p.at, p.session.as_str()))
            .collect();
        let want: Vec<(&str, i64, &str)> = exp["pages"]
            .as_array()
            .expect("pages")
            .iter()
            .map(|p| {
                (
                    s(&p["path"]),
                    p["at"].as_i64().unwrap_or_default(),
                    s(&p["session"]),
                )
            })
            .collect();
        assert_eq!(pages, want, "{lead} pages");
        let convs = exp["conversions"].as_array().expect("conversions");
        assert_eq!(j.conversions.len(), convs.len(), "{lead} conversions");
        for (got, want) in j.conversions.iter().zip(convs) {
            let cid = s(&want["id"]);
            assert_eq!(got.conversion.id, cid, "{lead} conversion order");
            for (model, shares) in want["credits"].as_object().expect("credits") {
                let m: Model = model.parse().expect("model");
                let mc = got
                    .credits
                    .iter()
                    .find(|c| c.model == m)
                    .expect("model credit");
                let shares = shares.as_object().expect("shares");
                for tc in &mc.touches {
                    let want = shares
                        .get(&tc.session)
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0);
                    assert!(
                        close(tc.share, want),
                        "{lead} {cid} {model} {}: got {}, expected {want}",
                        tc.session,
                        tc.share
                    );
                    assert!(
                        close(tc.revenue, want * got.conversion.revenue as f64),
                        "{lead} {cid} {model} revenue"
                    );
                }
                for sid in shares.keys() {
                    assert!(
                        mc.touches.iter().any(|t| &t.session == sid),
                        "{lead} {cid} {model}: {sid} credited"
                    );
                }
            }
        }
    }
    assert!(journey(&w.data, "nobody@example.com", &query, &chains).is_none());
}

// ---------------------------------------------------------------------------------------------
// Engine rules on tiny hand-made data
// ---------------------------------------------------------------------------------------------

const D: i64 = 86_400_000;

fn session(
    id: &str,
    visitor: &str,
    lead: Option<&str>,
    day: i64,
    channel: &str,
    source: &str,
    campaign: Option<&str>,
) -> SessionRow {
    SessionRow {
        id: id.into(),
        visitor: visitor.into(),
        lead: lead.map(str::to_owned),
        started_at: day * D,
        channel: channel.into(),
        source: source.into(),
        medium: if channel == "Direct" {
            "(none)".into()
        } else {
            "cpc".into()
        },
        campaign: campaign.map(str::to_owned),
        landing_page: "/".into(),
        pageviews: 1,
        is_bot: false,
        country: Some("FR".into()),
        device: Some("desktop".into()),
    }
}

fn customer(lead: &str, day: i64, revenue: i64) -> ConversionRow {
    ConversionRow {
        id: format!("{lead}:{day}"),
        lead: lead.into(),
        kind: "customer".into(),
        at: day * D,
        revenue,
        ..ConversionRow::default()
    }
}

fn spend_row(
    day: i64,
    channel: &str,
    source: Option<&str>,
    campaign: Option<&str>,
    amount: i64,
) -> SpendRow {
    SpendRow {
        day,
        channel: channel.into(),
        source: source.map(str::to_owned),
        campaign: campaign.map(str::to_owned),
        amount,
    }
}

/// Ann: one Paid Search session (google, campaign brand) on day 10, won on day 12 (10000).
/// Old Bob: his only session is on day 1, he is won on day 200 (5000): outside a 90-day
/// lookback, so unattributed. A bot session on day 11. Spend: google/brand 300 on day 10,
/// google without campaign 200 on day 11, bing 100 on day 11, google 999 on day 50 (out of
/// range [0, 30 days) for the first report).
fn tiny() -> ReportData {
    let mut bot = session("s3", "v3", None, 11, "Organic Search", "google", None);
    bot.is_bot = true;
    ReportData {
        sessions: vec![
            session(
                "s1",
                "v1",
                Some("ann"),
                10,
                "Paid Search",
                "google",
                Some("brand"),
            ),
            session("s2", "v2", Some("bob"), 1, "Direct", "(direct)", None),
            bot,
        ],
        conversions: vec![customer("ann", 12, 10_000), customer("bob", 200, 5_000)],
        pageviews: vec![],
        spend: vec![
            spend_row(10, "Paid Search", Some("google"), Some("brand"), 300),
            spend_row(11, "Paid Search", Some("google"), None, 200),
            spend_row(11, "Paid Search", Some("bing"), None, 100),
            spend_row(50, "Paid Search", Some("google"), None, 999),
        ],
    }
}

fn row<'a>(
    r: &'a closeloop_core::report::SourcesReport,
    key: &str,
) -> &'a closeloop_core::report::SourceRow {
    r.rows
        .iter()
        .find(|x| x.key == key)
        .unwrap_or_else(|| panic!("row {key}: {:?}", r.rows))
}

#[test]
fn spend_follows_the_grouping() {
    let data = tiny();
    let mut q = Query::new(0, 30 * D);
    q.group_by = GroupBy::Source;
    let r = sources(&data, &q);
    // google: 300 + 200 (999 is out of range); bing 100 with no traffic still gets a row
    assert_eq!(row(&r, "google").spend, Some(500));
    assert_eq!(row(&r, "bing").spend, Some(100));
    assert_eq!(row(&r, "bing").sessions, 0);
    assert_eq!(r.totals.spend, Some(600));
    // google: 1 customer, 10000 revenue, 500 spend -> cac 500, roi (10000-500)/500 = 19
    assert_eq!(row(&r, "google").cac, Some(500.0));
    assert_eq!(row(&r, "google").roi, Some(19.0));
    assert_eq!(row(&r, "bing").roi, Some(-1.0));

    assert_eq!(
        (
            r.spend_reconciliation.rows,
            r.spend_reconciliation.unallocated
        ),
        (600, 0),
        "every record names a source"
    );

    // Recorded without a campaign, google's 200 and bing's 100 name no campaign row: they
    // are the unallocated line, never a "(not set)" campaign that spent and lost money.
    q.group_by = GroupBy::Campaign;
    let r = sources(&data, &q);
    assert_eq!(row(&r, "brand").spend, Some(300));
    assert_eq!(
        row(&r, "(not set)").spend,
        Some(0),
        "the untagged traffic's row holds no spend"
    );
    let rec = &r.spend_reconciliation;
    assert_eq!((rec.rows, rec.unallocated, rec.total), (300, 300, 600));
    assert_eq!(r.totals.spend, Some(600), "rows 300 + unallocated 300");
    let by: Vec<(Option<&str>, i64)> = rec
        .unallocated_by
        .iter()
        .map(|k| (k.source.as_deref(), k.spend))
        .collect();
    assert_eq!(by, [(Some("google"), 200), (Some("bing"), 100)]);
    assert_eq!(rec.basis, closeloop_core::report::SpendBasis::Exact);

    // Spend has no medium: every record is unallocated, the rows' spend is unknown.
    q.group_by = GroupBy::Medium;
    let r = sources(&data, &q);
    assert!(r.rows.iter().all(|x| x.spend.is_none() && x.cac.is_none()));
    assert_eq!(r.totals.spend, Some(600), "the totals still carry it");
    assert_eq!(r.spend_reconciliation.unallocated, 600);
    assert_eq!(r.spend_reconciliation.unallocated_by.len(), 3);

    // A device segment: each Paid Search record is split by its sessions' share on
    // desktop. google/brand and google (no campaign) cover s1 only (desktop): whole,
    // 300 + 200; bing covers no session in the range: it cannot be split, so it is left
    // out and reported, not dropped silently.
    q.group_by = GroupBy::Channel;
    q.filters.device = Some("Desktop".into());
    let r = sources(&data, &q);
    assert_eq!(r.totals.spend, Some(500));
    assert_eq!(row(&r, "Paid Search").spend, Some(500));
    assert_eq!(row(&r, "Paid Search").cac, Some(500.0), "500 / 1 customer");
    let rec = &r.spend_reconciliation;
    assert_eq!(rec.basis, closeloop_core::report::SpendBasis::Estimated);
    assert_eq!(rec.not_estimated, 100);
    assert_eq!(rec.not_estimated_by[0].source.as_deref(), Some("bing"));

    // A mobile segment: s1 is desktop, so Paid Search's google records have 0 of their 1
    // session in it: no spend.
    q.filters.device = Some("mobile".into());
    let r = sources(&data, &q);
    assert_eq!(r.totals.spend, Some(0));
    assert!(r.rows.iter().all(|x| x.key != "Paid Search"));

    q.filters = Filters {
        source: Some("bing".into()),
        ..Filters::default()
    };
    let r = sources(&data, &q);
    assert_eq!(r.totals.spend, Some(100));
    assert_eq!(r.totals.customers, 0.0);
}

#[test]
fn conversions_without_touches_are_unattributed_not_lost() {
    let data = tiny();
    let q = Query::new(0, 300 * D);
    let r = sources(&data, &q);
    let un = row(&r, closeloop_core::report::UNATTRIBUTED);
    assert_eq!(
        (un.customers, un.revenue, un.sessions, un.spend),
        (1.0, 5_000.0, 0, None)
    );
    assert_eq!(
        r.rows.last().map(|x| x.key.as_str()),
        Some(closeloop_core::report::UNATTRIBUTED)
    );
    assert_eq!((r.totals.customers, r.totals.revenue), (2.0, 15_000.0));
    // with a filter the unattributed conversion is in no segment
    let mut q = q;
    q.filters.channel = Some("Paid Search".into());
    let r = sources(&data, &q);
    assert!(r
        .rows
        .iter()
        .all(|x| x.key != closeloop_core::report::UNATTRIBUTED));
    assert_eq!(r.totals.customers, 1.0);
}

#[test]
fn bots_only_when_asked() {
    let data = tiny();
    let mut q = Query::new(0, 30 * D);
    let r = sources(&data, &q);
    assert_eq!((r.totals.sessions, r.totals.visitors), (2, 2));
    q.include_bots = true;
    let r = sources(&data, &q);
    assert_eq!((r.totals.sessions, r.totals.visitors), (3, 3));
    assert_eq!(row(&r, "Organic Search").sessions, 1);
}

#[test]
fn daily_timeseries_clips_the_range() {
    let data = tiny();
    // from day 9 12:00 to day 12 12:00: buckets day 9 (clipped), 10, 11, 12 (clipped)
    let q = Query::new(9 * D + D / 2, 12 * D + D / 2);
    let points = timeseries(&data, &q, Granularity::Day, 100);
    let spans: Vec<(i64, i64)> = points.iter().map(|p| (p.from, p.to)).collect();
    assert_eq!(
        spans,
        [
            (9 * D + D / 2, 10 * D),
            (10 * D, 11 * D),
            (11 * D, 12 * D),
            (12 * D, 12 * D + D / 2)
        ]
    );
    let sessions: Vec<u64> = points.iter().map(|p| p.figures.sessions).collect();
    assert_eq!(
        sessions,
        [0, 1, 0, 0],
        "the bot's day-11 session is left out"
    );
    let spend: Vec<Option<i64>> = points.iter().map(|p| p.figures.spend).collect();
    assert_eq!(
        spend,
        [Some(0), Some(300), Some(300), Some(0)],
        "day 9 12:00 does not hold day 9's start"
    );
    assert_eq!(points[3].figures.customers, 1.0, "ann won on day 12 00:00");
    assert_eq!(points[1].bucket, "1970-01-11");
}

#[test]
fn query_strings() {
    let q = Query::from_pairs(
        [
            ("from", "2026-09-07"),
            ("to", "2026-10-19T00:00:00Z"),
            ("group_by", "landing_page"),
            ("model", "time_decay"),
            ("lookback_days", "14"),
            ("half_life_days", "3.5"),
            ("conversion", "Opportunity"),
            ("include_bots", "true"),
            ("campaign", "(not set)"),
            ("granularity", "week"),
            ("device", ""),
        ],
        0,
    )
    .expect("query");
    assert_eq!(
        (q.from, q.to),
        (1_788_739_200_000, 1_788_739_200_000 + 42 * D)
    );
    assert_eq!(
        (q.group_by, q.model, q.lookback_days),
        (GroupBy::LandingPage, Model::TimeDecay, 14)
    );
    assert_eq!(q.params().half_life_ms, 302_400_000);
    assert_eq!(q.conversion, "opportunity");
    assert!(q.include_bots);
    assert_eq!(q.filters.campaign.as_deref(), Some("(not set)"));
    assert_eq!(q.filters.device, None);
    // defaults: the 30 days before now, last_non_direct, customer
    let q = Query::from_pairs([], 100 * D).expect("defaults");
    assert_eq!(
        (q.from, q.to, q.model, q.conversion.as_str()),
        (70 * D, 100 * D, Model::LastNonDirect, "customer")
    );
    for (name, value) in [
        ("group_by", "country"),
        ("model", "magic"),
        ("lookback_days", "0"),
        ("lookback_days", "3651"),
        ("lookback_days", "1.5"),
        ("half_life_days", "0"),
        ("half_life_days", "NaN"),
        ("from", "yesterday"),
        ("include_bots", "yes"),
    ] {
        let e = Query::from_pairs([(name, value)], 100 * D).expect_err(value);
        assert_eq!(e.parameter, name);
        assert!(e.message.starts_with(&format!("`{name}`")), "{}", e.message);
    }
    let e = Query::from_pairs([("from", "2026-10-02"), ("to", "2026-10-01")], 0)
        .expect_err("from > to");
    assert_eq!(e.parameter, "from");
    assert!("views".parse::<PageSort>().is_ok() && "clicks".parse::<PageSort>().is_err());
}

#[test]
fn answers_serialise_times_as_rfc3339() {
    let data = tiny();
    let q = Query::new(0, 30 * D);
    let r = serde_json::to_value(sources(&data, &q)).expect("json");
    assert_eq!(r["query"]["from"], "1970-01-01T00:00:00.000Z");
    assert_eq!(r["query"]["to"], "1970-01-31T00:00:00.000Z");
    assert_eq!(r["query"]["model"], "last_non_direct");
    assert_eq!(r["query"]["group_by"], "channel");
    let j = journey(&data, "ann", &q, &Chains::default()).expect("journey");
    let j = serde_json::to_value(j).expect("json");
    assert_eq!(j["sessions"][0]["started_at"], "1970-01-11T00:00:00.000Z");
    assert_eq!(
        j["conversions"][0]["conversion"]["at"],
        "1970-01-13T00:00:00.000Z"
    );
    assert_eq!(j["conversions"][0]["conversion"]["lead_at"], Value::Null);
    assert_eq!(j["conversions"][0]["credits"][0]["model"], "first_touch");
}

#[test]
fn every_scenario_batch_passes_import_validation() {
    use closeloop_core::validate::{validate, ValidateOptions};
    let sc = scenario();
    let received_at = sc["range"]["to_ms"].as_i64().expect("to") + 60 * D;
    for visitor in sc["visitors"].as_array().expect("visitors") {
        let batch = serde_json::json!({
            "site_id": sc["site"]["id"],
            "visitor_id": visitor["visitor_id"],
            "sent_at": received_at,
            "events": visitor["events"],
        });
        let body = serde_json::to_vec(&batch).expect("json");
        let v = validate(&body, &ValidateOptions::import(received_at))
            .unwrap_or_else(|e| panic!("{}: {e}", visitor["visitor_id"]));
        assert!(
            v.rejected.is_empty(),
            "{}: {:?}",
            visitor["visitor_id"],
            v.rejected
        );
        assert_eq!(
            v.events.len(),
            visitor["events"].as_array().map_or(0, Vec::len)
        );
    }
}

/// The OpenAPI document (docs/openapi.json) describes the engine's output types field for
/// field: every field the engine writes is a property of the schema, and every required
/// property is written.
#[test]
fn openapi_schemas_match_the_engine_output() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("openapi")).expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    let data = tiny();
    let q = Query::new(0, 30 * D);
    let report = sources(&data, &q);
    let j = journey(&data, "ann", &q, &Chains::default()).expect("journey");
    let page = closeloop_core::assists::PageRow::default();
    let point = &timeseries(&data, &q, Granularity::Day, 1)[0];
    let cases: Vec<(&str, Value)> = vec![
        (
            "SourceRow",
            serde_json::to_value(&report.totals).expect("row"),
        ),
        (
            "ReportQuery",
            serde_json::to_value(&report.query).expect("query"),
        ),
        (
            "Filters",
            serde_json::to_value(&report.query.filters).expect("filters"),
        ),
        ("PageRow", serde_json::to_value(&page).expect("page")),
        (
            "SpendReconciliation",
            serde_json::to_value(&report.spend_reconciliation).expect("reconciliation"),
        ),
        (
            "TimeseriesPoint",
            serde_json::to_value(point).expect("point"),
        ),
        ("Journey", serde_json::to_value(&j).expect("journey")),
        (
            "Session",
            serde_json::to_value(&j.sessions[0]).expect("session"),
        ),
    ];
    for (name, value) in cases {
        let schema = &doc["components"]["schemas"][name];
        let props = schema["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("schema {name}"));
        let written = value.as_object().expect("object");
        for key in written.keys() {
            assert!(
                props.contains_key(key),
                "{name}: the engine writes `{key}`, the document does not have it"
            );
        }
        for req in schema["required"].as_array().into_iter().flatten() {
            let req = req.as_str().unwrap_or_default();
            assert!(
                written.contains_key(req),
                "{name}: `{req}` is required by the document but not written"
            );
        }
    }
}

/// What the store ships with its counts: the sessions of leads that started in
/// `[from - lookback, to)`, their page views in that span, every conversion and the spend.
fn leads_only(data: &ReportData, query: &Query) -> ReportData {
    let since = query.from - query.params().lookback_ms;
    let sessions: Vec<SessionRow> = data
        .sessions
        .iter()
        .filter(|s| s.lead.is_some() && s.started_at >= since && s.started_at < query.to)
        .cloned()
        .collect();
    let ids: std::collections::BTreeSet<&str> = sessions.iter().map(|s| s.id.as_str()).collect();
    let pageviews = data
        .pageviews
        .iter()
        .filter(|v| ids.contains(v.session.as_str()) && v.at >= since && v.at < query.to)
        .cloned()
        .collect();
    ReportData {
        sessions,
        conversions: data.conversions.clone(),
        pageviews,
        spend: data.spend.clone(),
    }
}

/// The queries of the equivalence tests: every report of the scenario, under every grouping,
/// with and without bots, and more segments.
fn equivalence_queries(sc: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for exp in sc["expected"]["reports"].as_array().expect("reports") {
        let base = query_of(sc, &exp["query"]);
        for group_by in [
            GroupBy::Channel,
            GroupBy::Source,
            GroupBy::Medium,
            GroupBy::Campaign,
            GroupBy::LandingPage,
        ] {
            for include_bots in [false, true] {
                let mut q = base.clone();
                q.group_by = group_by;
                q.include_bots = include_bots;
                out.push(q);
            }
        }
    }
    let (from, to) = range(sc);
    for model in Model::ALL {
        for filters in [
            Filters {
                device: Some("MOBILE".into()),
                ..Filters::default()
            },
            Filters {
                source: Some("google".into()),
                campaign: Some("(not set)".into()),
                ..Filters::default()
            },
            Filters {
                landing_page: Some("/pricing".into()),
                ..Filters::default()
            },
        ] {
            let mut q = Query::new(from, to);
            q.model = model;
            q.filters = filters;
            out.push(q);
        }
        // a range that starts in the middle of the scenario (touches before `from`)
        let mut q = Query::new(from + 20 * MS_PER_DAY, to);
        q.model = model;
        q.lookback_days = 30;
        out.push(q);
    }
    out
}

#[test]
fn sources_from_counts_equal_sources_from_every_session() {
    use closeloop_core::report::{sources_counted, Counted};
    let sc = scenario();
    let w = build(&sc);
    for q in equivalence_queries(&sc) {
        let full = sources(&w.data, &q);
        let counted = sources_counted(&leads_only(&w.data, &q), &Counted::of(&w.data, &q), &q);
        assert_eq!(full, counted, "{q:?}");
    }
}

#[test]
fn pages_from_counts_equal_pages_from_every_view() {
    use closeloop_core::report::{pages_counted, PageCount};
    let sc = scenario();
    let w = build(&sc);
    for q in equivalence_queries(&sc) {
        let counted = PageCount::of(&w.data, &q);
        for (sort, descending) in [(PageSort::Views, true), (PageSort::Path, false)] {
            let full = pages(&w.data, &q, sort, descending);
            assert_eq!(full, pages_counted(&counted, sort, descending), "{q:?}");
        }
    }
}

/// `data_driven_global` in the sources report: the journeys of the attribution case
/// `15_data_driven_global_worked.json` as stored sessions. Ann (lead) came from Paid Social on
/// day 0 and by Email on day 3 and became a lead on day 4; Bea (lead) came from Paid Social
/// on day 1 and became a lead on day 2; two anonymous visitors came by Email (days 1 and 2)
/// and did not convert. The lead chain is the case's (J1 S, E -> conversion; J2 S ->
/// conversion; J3, J4 E -> null): removal effects S 2/3, E 1/2, normalised 4/7, 3/7.
/// Global allocation of the 2 leads: Paid Social 8/7, Email 6/7 (the case's arithmetic);
/// per conversion (`data_driven`): Ann 4/7 S + 3/7 E, Bea 1 S -> Paid Social 11/7, Email 3/7.
#[test]
fn data_driven_global_allocates_the_range_like_anderl() {
    let lead = |id: &str, who: &str, day: i64| ConversionRow {
        id: id.into(),
        lead: who.into(),
        kind: "lead".into(),
        at: day * D,
        ..ConversionRow::default()
    };
    let data = ReportData {
        sessions: vec![
            session("a1", "va", Some("ann"), 0, "Paid Social", "facebook", None),
            session("a2", "va", Some("ann"), 3, "Email", "newsletter", None),
            session("b1", "vb", Some("bea"), 1, "Paid Social", "instagram", None),
            session("c1", "vc", None, 1, "Email", "newsletter", None),
            session("d1", "vd", None, 2, "Email", "newsletter", None),
        ],
        conversions: vec![lead("ann:lead", "ann", 4), lead("bea:lead", "bea", 2)],
        ..ReportData::default()
    };
    let mut q = Query::new(0, 10 * D);
    q.model = Model::DataDrivenGlobal;
    let r = sources(&data, &q);
    assert!(close(row(&r, "Paid Social").leads, 8.0 / 7.0));
    assert!(close(row(&r, "Email").leads, 6.0 / 7.0));
    assert!(close(r.totals.leads, 2.0));
    // by source: Paid Social's 8/7 is shared by its two touches, 4/7 each
    q.group_by = GroupBy::Source;
    let r = sources(&data, &q);
    assert!(close(row(&r, "facebook").leads, 4.0 / 7.0));
    assert!(close(row(&r, "instagram").leads, 4.0 / 7.0));
    assert!(close(row(&r, "newsletter").leads, 6.0 / 7.0));
    // data_driven splits each conversion among its own touches
    q.group_by = GroupBy::Channel;
    q.model = Model::DataDriven;
    let r = sources(&data, &q);
    assert!(close(row(&r, "Paid Social").leads, 11.0 / 7.0));
    assert!(close(row(&r, "Email").leads, 3.0 / 7.0));
    // a lead's journey lists the global shares too: Ann's S 4/7 and E 6/7
    let chains = Chains::fit(&data, &q);
    let j = journey(&data, "ann", &q, &chains).expect("ann's journey");
    let global = j.conversions[0]
        .credits
        .iter()
        .find(|c| c.model == Model::DataDrivenGlobal)
        .expect("data_driven_global credit");
    let shares: Vec<f64> = global.touches.iter().map(|t| t.share).collect();
    assert!(
        close(shares[0], 4.0 / 7.0) && close(shares[1], 6.0 / 7.0),
        "{shares:?}"
    );
}
