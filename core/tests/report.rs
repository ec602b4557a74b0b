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
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/scenarios/closed_loop.json");
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
    let want = want.as_f64().unwrap_or_else(|| panic!("{what}: expected a number, got {want}"));
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
        let events: Vec<&Value> = visitor["events"].as_array().expect("events").iter().collect();
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
                .unwrap_or_else(|| panic!("no expected session of {vid} starting at {}", sess.start));
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

    let leads = Leads::build(identifications.iter().map(|(v, e, _, _)| (v.as_str(), e.as_str())));
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
    let expected_rows = sc["conversions_csv_expected"].as_array().expect("csv expected");
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
    let expected_rows = sc["spend_csv_expected"].as_array().expect("spend csv expected");
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
        let got = w.data.sessions.iter().find(|x| x.id == id).expect("session built");
        assert_eq!(got.visitor, s(&exp["visitor"]), "{id} visitor");
        assert_eq!(got.lead.as_deref(), exp["lead"].as_str(), "{id} lead");
        assert_eq!(got.channel, s(&exp["channel"]), "{id} channel");
        assert_eq!(got.source, s(&exp["source"]), "{id} source");
        assert_eq!(got.medium, s(&exp["medium"]), "{id} medium");
        assert_eq!(got.campaign.as_deref(), exp["campaign"].as_str(), "{id} campaign");
        assert_eq!(got.landing_page, s(&exp["landing_page"]), "{id} landing page");
        assert_eq!(Some(got.pageviews), exp["pageviews"].as_u64(), "{id} pageviews");
        assert_eq!(Some(got.is_bot), exp["is_bot"].as_bool(), "{id} bot");
    }
    for (email, exp) in sc["expected"]["leads"].as_object().expect("leads") {
        let visitors: Vec<&str> = w.leads.visitors_of(email).collect();
        let mut want: Vec<&str> = exp["visitors"].as_array().expect("visitors").iter().map(s).collect();
        want.sort_unstable();
        assert_eq!(visitors, want, "visitors of {email}");
    }
    let expected = sc["expected"]["conversions"].as_array().expect("conversions");
    assert_eq!(w.data.conversions.len(), expected.len(), "number of conversions");
    for exp in expected {
        let id = s(&exp["id"]);
        let got = w.data.conversions.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("conversion {id}"));
        assert_eq!(got.lead, s(&exp["lead"]), "{id}");
        assert_eq!(got.kind, s(&exp["kind"]), "{id}");
        assert_eq!(Some(got.at), exp["at"].as_i64(), "{id} at");
        assert_eq!(Some(got.revenue), exp["revenue"].as_i64(), "{id} revenue");
        assert_eq!(got.lead_at, exp["lead_at"].as_i64(), "{id} lead_at");
        assert_eq!(got.opportunity_at, exp["opportunity_at"].as_i64(), "{id} opportunity_at");
        assert_eq!(got.page.as_deref(), exp["page"].as_str(), "{id} page");
        assert_eq!(got.session.as_deref(), exp["session"].as_str(), "{id} session");
    }
}

fn query_of(sc: &Value, q: &Value) -> Query {
    let (from, to) = range(sc);
    let mut query = Query::new(from, to);
    query.group_by = GroupBy::Channel;
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
    assert_eq!(Some(got.visitors), want["visitors"].as_u64(), "{what} visitors");
    assert_eq!(Some(got.sessions), want["sessions"].as_u64(), "{what} sessions");
    check_f(&format!("{what} leads"), got.leads, &want["leads"]);
    check_f(&format!("{what} customers"), got.customers, &want["customers"]);
    check_f(&format!("{what} revenue"), got.revenue, &want["revenue"]);
    check_f(&format!("{what} conversions"), got.conversions, &want["conversions"]);
    check_f(&format!("{what} conversion_revenue"), got.conversion_revenue, &want["conversion_revenue"]);
    assert_eq!(got.spend, want["spend"].as_i64(), "{what} spend");
    check_opt(&format!("{what} cac"), got.cac, &want["cac"]);
    check_opt(&format!("{what} revenue_per_customer"), got.revenue_per_customer, &want["revenue_per_customer"]);
    check_opt(&format!("{what} roi"), got.roi, &want["roi"]);
}

#[test]
fn sources_reports_match_the_hand_worked_figures() {
    let sc = scenario();
    let w = build(&sc);
    let reports = sc["expected"]["reports"].as_array().expect("reports");
    assert!(reports.len() >= 9 + 4 + 2 + 8 + 2, "every model, filters, lookback, stage");
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
        // rows add up to the totals
        let sum: f64 = report.rows.iter().map(|r| r.revenue).sum();
        assert!(close(sum, report.totals.revenue), "{name}: rows sum to totals");
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
        check_f(&format!("{kind} P"), chain.conversion_probability(), &exp["conversion_probability"]);
        for (channel, effect) in exp["removal_effects"].as_object().expect("effects") {
            check_f(&format!("{kind} removal {channel}"), chain.removal_effect(channel), effect);
        }
        for (channel, share) in chain.normalised_removal_effects() {
            check_f(&format!("{kind} normalised {channel}"), share, &exp["normalised"][channel]);
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
    let want_order: Vec<&str> = exp["order"].as_array().expect("order").iter().map(s).collect();
    assert_eq!(order, want_order, "pages sorted by views, descending");
    for r in &rows {
        let want = &exp["rows"][&r.path];
        assert_eq!(Some(r.views), want["views"].as_u64(), "{} views", r.path);
        assert_eq!(Some(r.entrances), want["entrances"].as_u64(), "{} entrances", r.path);
        assert_eq!(Some(r.assisted_leads), want["assisted_leads"].as_u64(), "{} assisted leads", r.path);
        assert_eq!(Some(r.assisted_customers), want["assisted_customers"].as_u64(), "{} assisted customers", r.path);
        check_f(&format!("{} assisted revenue", r.path), r.assisted_revenue, &want["assisted_revenue"]);
        assert_eq!(Some(r.direct_conversions), want["direct_conversions"].as_u64(), "{} direct", r.path);
    }
    // sorting by path ascending gives the paths in order
    let by_path: Vec<String> = pages(&w.data, &Query::new(from, to), PageSort::Path, false)
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(by_path, ["/", "/blog/attribution", "/demo", "/pricing"]);
}

#[test]
fn weekly_timeseries_matches() {
    let sc = scenario();
    let w = build(&sc);
    let (from, to) = range(&sc);
    let mut query = Query::new(from, to);
    query.model = Model::FirstTouch;
    let points = timeseries(&w.data, &query, Granularity::Week, 100);
    let exp = sc["expected"]["timeseries"]["buckets"].as_object().expect("buckets");
    let labels: Vec<&str> = points.iter().map(|p| p.bucket.as_str()).collect();
    let want: Vec<&str> = exp.keys().map(String::as_str).collect();
    assert_eq!(labels, want);
    for p in &points {
        let e = &exp[&p.bucket];
        let f = &p.figures;
        assert_eq!(Some(f.visitors), e["visitors"].as_u64(), "{} visitors", p.bucket);
        assert_eq!(Some(f.sessions), e["sessions"].as_u64(), "{} sessions", p.bucket);
        check_f(&format!("{} leads", p.bucket), f.leads, &e["leads"]);
        check_f(&format!("{} customers", p.bucket), f.customers, &e["customers"]);
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
        let want: Vec<&str> = exp["visitors"].as_array().expect("v").iter().map(s).collect();
        assert_eq!(j.visitors, want, "{lead} visitors");
        let sessions: Vec<&str> = j.sessions.iter().map(|x| x.id.as_str()).collect();
        let want: Vec<&str> = exp["sessions"].as_array().expect("s").iter().map(s).collect();
        assert_eq!(sessions, want, "{lead} sessions");
        let pages: Vec<(&str, i64, &str)> = j.pages.iter().map(|p| (p.path.as_str(), p.at, p.session.as_str())).collect();
        let want: Vec<(&str, i64, &str)> = exp["pages"]
            .as_array()
            .expect("pages")
            .iter()
            .map(|p| (s(&p["path"]), p["at"].as_i64().unwrap_or_default(), s(&p["session"])))
            .collect();
        assert_eq!(pages, want, "{lead} pages");
        let convs = exp["conversions"].as_array().expect("conversions");
        assert_eq!(j.conversions.len(), convs.len(), "{lead} conversions");
        for (got, want) in j.conversions.iter().zip(convs) {
            let cid = s(&want["id"]);
            assert_eq!(got.conversion.id, cid, "{lead} conversion order");
            for (model, shares) in want["credits"].as_object().expect("credits") {
                let m: Model = model.parse().expect("model");
                let mc = got.credits.iter().find(|c| c.model == m).expect("model credit");
                let shares = shares.as_object().expect("shares");
                for tc in &mc.touches {
                    let want = shares.get(&tc.session).and_then(Value::as_f64).unwrap_or(0.0);
                    assert!(close(tc.share, want), "{lead} {cid} {model} {}: got {}, expected {want}", tc.session, tc.share);
                    assert!(close(tc.revenue, want * got.conversion.revenue as f64), "{lead} {cid} {model} revenue");
                }
                for sid in shares.keys() {
                    assert!(mc.touches.iter().any(|t| &t.session == sid), "{lead} {cid} {model}: {sid} credited");
                }
            }
        }
    }
    assert!(journey(&w.data, "nobody@example.com", &query, &chains).is_none());
}
