//! Rollups against the reference reports: random sites (visitors, their events sent in random
//! batches through the incremental sessioniser, leads, conversions, spend), every report
//! answered from the rollups (+ the leads' data for credited figures) equal to `report`'s
//! answer over every session, for random queries under every model.
//!
//! Also: the rollup kept up to date batch by batch (old sessions out, new ones in) equals the
//! rollup of the final sessions added from scratch; and over many visitors the day summaries'
//! sketches estimate visitors within their stated error and say so.

mod common;

use std::collections::BTreeMap;

use closeloop_core::arrival::SessionTouch;
use closeloop_core::attribution::Model;
use closeloop_core::report::{
    pages, sources, timeseries, ConversionRow, Filters, GroupBy, PageSort, PageViewRow, Query,
    ReportData, SessionRow, SourceRow, SpendRow,
};
use closeloop_core::resession::{VisitEvent, VisitSession};
use closeloop_core::rollup::credit::{self, CreditRollup, JourneySession, LeadJourney};
use closeloop_core::rollup::visitors::{visitor_hash, VisitorSet, RELATIVE_STANDARD_ERROR};
use closeloop_core::rollup::{answer, Rollup, RowKey, SessionFacts, DAY_MS, HOUR_MS};
use closeloop_core::session::Arrival;
use closeloop_core::time::Granularity;
use common::Shard;
use proptest::prelude::*;

const MIN: i64 = 60_000;

fn excluded(host: &str) -> bool {
    host == "pay.example"
}

fn touch(i: u8) -> SessionTouch {
    let (channel, source, medium, campaign) = match i % 4 {
        0 => ("Email", "newsletter", "email", Some("june")),
        1 => ("Paid Search", "google", "cpc", Some("brand")),
        2 => ("Organic Search", "google", "organic", None),
        _ => ("Referral", "news.example", "referral", None),
    };
    SessionTouch {
        channel: channel.into(),
        source: source.into(),
        medium: medium.into(),
        campaign: campaign.map(str::to_owned),
        ..SessionTouch::default()
    }
}

fn arrival(kind: u8) -> Arrival<SessionTouch> {
    match kind {
        0..=3 => Arrival::Internal,
        4 => Arrival::Direct,
        5..=7 => Arrival::Tagged(touch(kind - 5)),
        8 => Arrival::Referral {
            host: "news.example".into(),
            source: touch(3),
        },
        _ => Arrival::Referral {
            host: "pay.example".into(),
            source: touch(3),
        },
    }
}

#[derive(Debug, Clone)]
struct World {
    /// visitor -> its events
    visitors: Vec<(String, Vec<VisitEvent<SessionTouch>>)>,
    /// visitor index -> lead
    leads: BTreeMap<usize, String>,
    conversions: Vec<(usize, bool, i64, i64, u8)>, // lead index, customer?, minute, revenue, page
    spend: Vec<(i64, u8, i64)>,
    batches: Vec<Vec<usize>>, // per visitor: batch sizes
}

/// Visits spread over 3 days: each visit a few events minutes apart.
fn world_strategy() -> impl Strategy<Value = World> {
    let visit = (
        0i64..4320,
        proptest::collection::vec((0i64..40, 0u8..10, any::<bool>(), 0u8..3), 1..4),
        0u8..6,
    );
    let visitor = proptest::collection::vec(visit, 1..4);
    (
        proptest::collection::vec(visitor, 1..6),
        proptest::collection::vec(0usize..3, 0..4),
        proptest::collection::vec(
            (0usize..3, any::<bool>(), 0i64..4320, 0i64..50_000, 0u8..4),
            0..6,
        ),
        proptest::collection::vec((0i64..3, 0u8..4, 1i64..10_000), 0..3),
        proptest::collection::vec(proptest::collection::vec(1usize..4, 0..6), 6),
    )
        .prop_map(|(visitors, linked, conversions, spend, batches)| {
            let mut n = 0;
            let visitors: Vec<(String, Vec<VisitEvent<SessionTouch>>)> = visitors
                .into_iter()
                .enumerate()
                .map(|(v, visits)| {
                    let mut events = Vec::new();
                    for (start, steps, flags) in visits {
                        let mut at = start * MIN;
                        for (gap, kind, pageview, path) in steps {
                            at += gap * MIN;
                            n += 1;
                            events.push(VisitEvent {
                                // ids not in time order
                                id: format!("e{:03}", (n * 37) % 1000),
                                at,
                                path: format!("/p{path}"),
                                arrival: arrival(kind),
                                pageview,
                                is_bot: flags == 0,
                                country: Some(if flags % 2 == 0 { "DE" } else { "FR" }.into()),
                                device: Some(if flags < 3 { "desktop" } else { "mobile" }.into()),
                                session: None,
                            });
                        }
                    }
                    (format!("v{v}"), events)
                })
                .collect();
            // visitors 0 and `linked` belong to leads (lead i of visitor i, visitor 2 joins lead 0)
            let mut leads = BTreeMap::new();
            for v in linked {
                if v < visitors.len() {
                    leads.insert(v, format!("lead{}", if v == 2 { 0 } else { v }));
                }
            }
            World {
                visitors,
                leads,
                conversions,
                spend,
                batches,
            }
        })
}

struct Built {
    data: ReportData,
    leads: ReportData,
    rollup: Rollup,
}

fn build(w: &World) -> Result<Built, TestCaseError> {
    let mut data = ReportData::default();
    let mut rollup = Rollup::new();
    let mut scratch = Rollup::new();
    for (vi, (visitor, events)) in w.visitors.iter().enumerate() {
        // the events in batches of the given sizes, sent in reverse when the visitor is odd
        let mut sizes = w.batches.get(vi).cloned().unwrap_or_default().into_iter();
        let mut rest: &[VisitEvent<SessionTouch>] = events;
        let mut sent = Vec::new();
        while !rest.is_empty() {
            let k = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
            let (a, b) = rest.split_at(k);
            sent.push(a.to_vec());
            rest = b;
        }
        if vi % 2 == 1 {
            sent.reverse();
        }
        let mut shard: Shard<SessionTouch> = Shard::default();
        for b in &sent {
            let changes = shard.ingest(b, 2, excluded);
            rollup.apply(visitor, &changes);
        }
        let lead = w.leads.get(&vi).cloned();
        for s in shard.sessions.values() {
            let views: Vec<(i64, String)> = shard
                .events
                .values()
                .filter(|e| e.pageview && e.session.as_deref() == Some(&s.id))
                .map(|e| (e.at, e.path.clone()))
                .collect();
            scratch.add(&SessionFacts::of(visitor, s), &views);
            data.sessions.push(session_row(visitor, lead.clone(), s));
        }
        for e in shard.events.values().filter(|e| e.pageview) {
            data.pageviews.push(PageViewRow {
                session: e.session.clone().unwrap_or_default(),
                path: e.path.clone(),
                at: e.at,
            });
        }
    }
    prop_assert_eq!(
        &rollup,
        &scratch,
        "the rollup kept batch by batch is the rollup from scratch"
    );
    for (i, &(lead, customer, minute, revenue, page)) in w.conversions.iter().enumerate() {
        let lead = format!("lead{lead}");
        let session = data
            .sessions
            .iter()
            .rfind(|s| s.lead.as_deref() == Some(&lead) && s.started_at <= minute * MIN)
            .map(|s| s.id.clone());
        data.conversions.push(ConversionRow {
            id: format!("c{i}"),
            lead,
            kind: if customer { "customer" } else { "lead" }.into(),
            at: minute * MIN,
            revenue: if customer { revenue } else { 0 },
            lead_at: customer.then_some(minute * MIN / 2),
            opportunity_at: None,
            page: (page < 3).then(|| format!("/p{page}")),
            session: if customer { None } else { session },
        });
    }
    for &(day, ch, amount) in &w.spend {
        let t = touch(ch);
        data.spend.push(SpendRow {
            day,
            channel: t.channel,
            source: Some(t.source),
            campaign: t.campaign,
            amount,
        });
    }
    let lead_sessions: Vec<&SessionRow> =
        data.sessions.iter().filter(|s| s.lead.is_some()).collect();
    let ids: Vec<&str> = lead_sessions.iter().map(|s| s.id.as_str()).collect();
    let leads = ReportData {
        sessions: lead_sessions.iter().map(|s| (*s).clone()).collect(),
        conversions: data.conversions.clone(),
        pageviews: data
            .pageviews
            .iter()
            .filter(|v| ids.contains(&v.session.as_str()))
            .cloned()
            .collect(),
        spend: data.spend.clone(),
    };
    Ok(Built {
        data,
        leads,
        rollup,
    })
}

fn session_row(visitor: &str, lead: Option<String>, s: &VisitSession<SessionTouch>) -> SessionRow {
    let t = s.touch.clone().unwrap_or_else(SessionTouch::direct);
    SessionRow {
        id: s.id.clone(),
        visitor: visitor.into(),
        lead,
        started_at: s.start,
        channel: t.channel,
        source: t.source,
        medium: t.medium,
        campaign: t.campaign,
        landing_page: s.landing_path.clone(),
        pageviews: s.pageviews,
        is_bot: s.is_bot,
        country: s.country.clone(),
        device: s.device.clone(),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

fn same_row(what: &str, got: &SourceRow, want: &SourceRow) -> Result<(), TestCaseError> {
    prop_assert_eq!(&got.key, &want.key, "{} key", what);
    prop_assert_eq!(
        (got.visitors, got.sessions, got.pageviews, got.spend),
        (want.visitors, want.sessions, want.pageviews, want.spend),
        "{} {} traffic",
        what,
        want.key
    );
    for (name, g, w) in [
        ("leads", got.leads, want.leads),
        ("customers", got.customers, want.customers),
        ("revenue", got.revenue, want.revenue),
        ("conversions", got.conversions, want.conversions),
        (
            "conversion_revenue",
            got.conversion_revenue,
            want.conversion_revenue,
        ),
    ] {
        prop_assert!(
            close(g, w),
            "{} {} {}: {} vs {}",
            what,
            want.key,
            name,
            g,
            w
        );
    }
    for (name, g, w) in [
        ("cac", got.cac, want.cac),
        (
            "revenue_per_customer",
            got.revenue_per_customer,
            want.revenue_per_customer,
        ),
        ("roi", got.roi, want.roi),
    ] {
        prop_assert!(
            match (g, w) {
                (Some(g), Some(w)) => close(g, w),
                (None, None) => true,
                _ => false,
            },
            "{} {} {}: {:?} vs {:?}",
            what,
            want.key,
            name,
            g,
            w
        );
    }
    Ok(())
}

fn query_strategy() -> impl Strategy<Value = (Query, u8)> {
    (
        0i64..72,
        1i64..80,
        0usize..5,
        0usize..Model::ALL.len(),
        any::<bool>(),
        0u8..6,
        prop_oneof![Just(90i64), 1i64..3],
        0u8..3,
    )
        .prop_map(|(from, len, g, m, bots, filter, lookback, conversion)| {
            let mut q = Query::new(from * HOUR_MS, (from + len) * HOUR_MS);
            q.group_by = [
                GroupBy::Channel,
                GroupBy::Source,
                GroupBy::Medium,
                GroupBy::Campaign,
                GroupBy::LandingPage,
            ][g];
            q.model = Model::ALL[m];
            q.include_bots = bots;
            q.lookback_days = lookback;
            q.conversion = ["customer", "lead", "opportunity"][conversion as usize].into();
            q.filters = match filter {
                0 => Filters {
                    country: Some("de".into()),
                    ..Filters::default()
                },
                1 => Filters {
                    channel: Some("Email".into()),
                    ..Filters::default()
                },
                2 => Filters {
                    landing_page: Some("/p1".into()),
                    ..Filters::default()
                },
                _ => Filters::default(),
            };
            (q, filter)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn reports_from_rollups_equal_the_reference(
        w in world_strategy(),
        queries in proptest::collection::vec(query_strategy(), 1..4),
    ) {
        let b = build(&w)?;
        let days = b.rollup.days();
        for (q, _) in &queries {
            // sources
            let want = sources(&b.data, q);
            let got = answer::sources(&b.rollup, &b.leads, q).expect("hour-aligned");
            prop_assert!(got.visitors_exact, "hour rollups are exact");
            prop_assert_eq!(got.report.rows.len(), want.rows.len(), "rows of {:?}", q);
            for (g, wr) in got.report.rows.iter().zip(&want.rows) {
                same_row("sources", g, wr)?;
            }
            same_row("totals", &got.report.totals, &want.totals)?;
            // pages
            let want = pages(&b.data, q, PageSort::Views, true);
            let got = answer::pages(&b.rollup, &b.leads, q, PageSort::Views, true).expect("aligned");
            prop_assert_eq!(got, want, "pages of {:?}", q);
            // a day-aligned range: the timeseries by day, and the day summaries
            let mut dq = q.clone();
            dq.from = (q.from / DAY_MS) * DAY_MS;
            dq.to = dq.from + DAY_MS * (1 + (q.to - q.from) / DAY_MS).min(3);
            let want = timeseries(&b.data, &dq, Granularity::Day, 10);
            let (got, exact) = answer::timeseries(&b.rollup, &b.leads, &dq, Granularity::Day, 10).expect("aligned");
            prop_assert!(exact);
            prop_assert_eq!(got.len(), want.len());
            for (g, wp) in got.iter().zip(&want) {
                prop_assert_eq!((&g.bucket, g.from, g.to), (&wp.bucket, wp.from, wp.to));
                same_row("timeseries", &g.figures, &wp.figures)?;
            }
            let want = sources(&b.data, &dq);
            let got = answer::sources(&days, &b.leads, &dq).expect("day-aligned");
            prop_assert!(got.visitors_exact, "small days stay exact");
            for (g, wr) in got.report.rows.iter().zip(&want.rows) {
                same_row("days", g, wr)?;
            }
            same_row("days totals", &got.report.totals, &want.totals)?;
            let want = pages(&b.data, &dq, PageSort::Path, false);
            let got = answer::pages(&days, &b.leads, &dq, PageSort::Path, false).expect("aligned");
            prop_assert_eq!(got, want);
        }
    }
}

/// The leads' journeys as the lead directory keeps them: each lead's visitors' sessions and
/// its conversions.
fn journeys(data: &ReportData) -> Vec<LeadJourney> {
    let mut by_lead: BTreeMap<String, LeadJourney> = BTreeMap::new();
    for s in &data.sessions {
        let Some(lead) = &s.lead else { continue };
        let j = by_lead.entry(lead.clone()).or_insert_with(|| LeadJourney {
            lead: lead.clone(),
            ..LeadJourney::default()
        });
        j.sessions.push(JourneySession {
            id: s.id.clone(),
            visitor: s.visitor.clone(),
            start: s.started_at,
            key: RowKey {
                channel: s.channel.clone(),
                source: s.source.clone(),
                medium: s.medium.clone(),
                campaign: s.campaign.clone(),
                landing_page: s.landing_page.clone(),
                country: s.country.clone(),
                device: s.device.clone(),
                is_bot: s.is_bot,
            },
        });
    }
    for c in &data.conversions {
        let j = by_lead
            .entry(c.lead.clone())
            .or_insert_with(|| LeadJourney {
                lead: c.lead.clone(),
                ..LeadJourney::default()
            });
        j.conversions.push(c.clone());
    }
    by_lead.into_values().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Credit rollups, kept by journey deltas (each lead's journey first half known, then
    /// whole), equal the rollup of the final journeys, and answer the sources report under
    /// every model over day-aligned ranges with the default lookback and half-life.
    #[test]
    fn credit_rollups_equal_the_reference(
        w in world_strategy(),
        queries in proptest::collection::vec(query_strategy(), 1..4),
    ) {
        let b = build(&w)?;
        let params = Query::new(0, 0).params();
        let all = journeys(&b.data);
        let mut kept = CreditRollup::new(params);
        let mut scratch = CreditRollup::new(params);
        for j in &all {
            let half = LeadJourney {
                lead: j.lead.clone(),
                sessions: j.sessions.iter().step_by(2).cloned().collect(),
                conversions: j.conversions.iter().skip(1).cloned().collect(),
            };
            kept.merge(&CreditRollup::delta(None, Some(&half), params));
            kept.merge(&CreditRollup::delta(Some(&half), Some(j), params));
            scratch.merge(&CreditRollup::of(j, params));
        }
        prop_assert_eq!(&kept, &scratch, "deltas add up to the final journeys");
        for (q, _) in &queries {
            let mut q = q.clone();
            q.lookback_days = 90;
            q.from = (q.from / DAY_MS) * DAY_MS;
            q.to = q.from + DAY_MS * (1 + (q.to - q.from) / DAY_MS).min(3);
            let converting: Vec<LeadJourney> = all
                .iter()
                .filter(|j| j.conversions.iter().any(|c| c.at >= q.from && c.at < q.to))
                .cloned()
                .collect();
            let want = sources(&b.data, &q);
            let got = credit::sources(&b.rollup, &kept, &converting, &b.data.spend, &q)
                .expect("answerable");
            prop_assert_eq!(got.report.rows.len(), want.rows.len(), "rows of {:?}: {:?} vs {:?}", q, got.report.rows, want.rows);
            for (g, wr) in got.report.rows.iter().zip(&want.rows) {
                same_row("credits", g, wr)?;
            }
            same_row("credits totals", &got.report.totals, &want.totals)?;
        }
    }
}

#[test]
fn credit_rollups_answer_only_their_own_parameters_and_days() {
    let params = Query::new(0, 0).params();
    let credits = CreditRollup::new(params);
    let mut q = Query::new(0, DAY_MS);
    q.lookback_days = 30;
    assert_eq!(
        credit::sources(&Rollup::new(), &credits, &[], &[], &q).err(),
        Some(credit::CannotAnswer::OtherParams)
    );
    let q = Query::new(HOUR_MS, DAY_MS);
    assert!(matches!(
        credit::sources(&Rollup::new(), &credits, &[], &[], &q),
        Err(credit::CannotAnswer::NotAligned(_))
    ));
}

#[test]
fn a_range_off_the_buckets_is_refused() {
    let q = Query::new(HOUR_MS + 1, 2 * HOUR_MS);
    let e = answer::traffic(&Rollup::new(), &q).expect_err("not aligned");
    assert_eq!(e.bucket_ms, HOUR_MS);
    assert!(answer::traffic(&Rollup::new().days(), &Query::new(0, HOUR_MS)).is_err());
}

/// 30 000 visitors over 3 days, each with one session a day on one of 3 channels: the day
/// summaries hold sketches (more than 1 024 visitors per day and row), the answer says its
/// visitors are estimates and they fall within 4 standard errors of the truth (by
/// construction: 30 000 distinct visitors in all, 10 000 per channel).
#[test]
fn sketched_visitors_are_estimates_within_the_stated_error() {
    let mut rollup = Rollup::new();
    for v in 0..30_000u32 {
        let visitor = format!("visitor-{v}");
        for day in 0..3i64 {
            let s = VisitSession {
                id: format!("s_{v}_{day}"),
                start: day * DAY_MS + i64::from(v % 1000) * MIN,
                first_event: format!("{v}_{day}"),
                end: day * DAY_MS + i64::from(v % 1000) * MIN,
                last_event: format!("{v}_{day}"),
                touch: Some(touch((v % 3) as u8)),
                landing_path: "/".into(),
                events: 1,
                pageviews: 1,
                is_bot: false,
                country: None,
                device: None,
                entrance: None,
                exit: None,
                prev_any: None,
                prev_human: None,
            };
            rollup.add(&SessionFacts::of(&visitor, &s), &[]);
        }
    }
    let days = rollup.days();
    let q = Query::new(0, 3 * DAY_MS);
    let t = answer::traffic(&days, &q).expect("aligned");
    assert!(!t.visitors_exact);
    let tolerance = |truth: f64| 4.0 * RELATIVE_STANDARD_ERROR * truth;
    let total = t.counted.visitors as f64;
    assert!((total - 30_000.0).abs() <= tolerance(30_000.0), "{total}");
    for row in &t.counted.rows {
        assert_eq!(row.sessions, 30_000, "{}: sessions stay exact", row.key);
        let v = row.visitors as f64;
        assert!(
            (v - 10_000.0).abs() <= tolerance(10_000.0),
            "{}: {v}",
            row.key
        );
    }
    // the hour rollup itself is exact
    let t = answer::traffic(&rollup, &q).expect("aligned");
    assert!(t.visitors_exact);
    assert_eq!(t.counted.visitors, 30_000);
    // a stored set reads back the same
    let mut set = VisitorSet::of((0..5000u32).map(|v| visitor_hash(&v.to_string())));
    let bytes = set.to_bytes();
    assert!(
        bytes.len() < 4096,
        "a sketch of 4096 registers packs into {} bytes",
        bytes.len()
    );
    let back = VisitorSet::from_bytes(&bytes).expect("readable");
    assert_eq!(back.count(), set.count());
    set.merge(&VisitorSet::of([visitor_hash("one more")]));
    assert!(!set.count().exact);
    let small = VisitorSet::of([1, 2, 3]);
    assert_eq!(
        VisitorSet::from_bytes(&small.to_bytes()).map(|s| s.count().count),
        Some(3)
    );
    assert!(VisitorSet::from_bytes(&[7, 1]).is_none());
}

/// New visitors and exits, figures the reports do not show yet: one visitor, two sessions
/// (10:00 from the newsletter, /a then /b; 12:00 direct, /c). Worked by hand: the first
/// session is a new visitor's, the second is not; entrances /a and /c, exits /b and /c.
#[test]
fn new_visitors_and_exits_by_hand() {
    let ev = |id: &str, minute: i64, path: &str, arrival| VisitEvent {
        id: id.into(),
        at: minute * MIN,
        path: path.into(),
        arrival,
        pageview: true,
        is_bot: false,
        country: None,
        device: None,
        session: None,
    };
    let mut shard: Shard<SessionTouch> = Shard::default();
    let mut rollup = Rollup::new();
    let batch = [
        ev("a", 600, "/a", Arrival::Tagged(touch(0))),
        ev("b", 605, "/b", Arrival::Internal),
        ev("c", 720, "/c", Arrival::Direct),
    ];
    rollup.apply("ann", &shard.ingest(&batch, 5, excluded));
    let q = Query::new(0, DAY_MS);
    let rows: Vec<(i64, i64, i64)> = rollup
        .hours
        .values()
        .flat_map(|h| h.rows.values())
        .map(|r| (r.sessions, r.pageviews, r.new_visitors))
        .collect();
    assert_eq!(rows, [(1, 2, 1), (1, 1, 0)]);
    let pages = answer::page_traffic(&rollup, &q).expect("aligned");
    let got: Vec<(&str, i64, i64, i64)> = pages
        .iter()
        .map(|(p, f)| (p.as_str(), f.views, f.entrances, f.exits))
        .collect();
    assert_eq!(got, [("/a", 1, 1, 0), ("/b", 1, 0, 1), ("/c", 1, 1, 1)]);
    // the steps: (none -> Email), (Email -> Direct), with and without bots
    let t = answer::traffic(&rollup, &q).expect("aligned");
    let steps: Vec<(Option<&str>, &str, u64)> = t
        .counted
        .steps
        .iter()
        .map(|s| (s.previous.as_deref(), s.channel.as_str(), s.sessions))
        .collect();
    assert_eq!(steps, [(None, "Email", 1), (Some("Email"), "Direct", 1)]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// A site split into shards by visitor (issue 14): the traffic of each shard's rollup,
    /// summed with `Traffic::merge_disjoint`, is the traffic of the site's whole rollup (rows,
    /// distinct visitors, journey steps), over hours and day summaries; page figures too.
    #[test]
    fn shards_traffic_sums_to_the_site_traffic(
        w in world_strategy(),
        queries in proptest::collection::vec(query_strategy(), 1..4),
        n in 1u64..4,
    ) {
        let mut whole = Rollup::new();
        let mut shards: Vec<Rollup> = (0..n).map(|_| Rollup::new()).collect();
        for (visitor, events) in &w.visitors {
            let mut shard: Shard<SessionTouch> = Shard::default();
            let changes = shard.ingest(events, 3, excluded);
            whole.apply(visitor, &changes);
            let i = (visitor_hash(visitor) % n) as usize;
            shards[i].apply(visitor, &changes);
        }
        let days: Vec<_> = shards.iter().map(Rollup::days).collect();
        let whole_days = whole.days();
        for (q, _) in &queries {
            let parts: Vec<answer::Traffic> = shards
                .iter()
                .map(|r| answer::traffic(r, q).expect("aligned"))
                .collect();
            let want = answer::traffic(&whole, q).expect("aligned");
            prop_assert_eq!(answer::Traffic::merge_disjoint(&parts), want);
            let pages: Vec<_> = shards
                .iter()
                .map(|r| answer::page_traffic(r, q).expect("aligned"))
                .collect();
            prop_assert_eq!(
                answer::merge_page_traffic(&pages),
                answer::page_traffic(&whole, q).expect("aligned")
            );
            let mut dq = q.clone();
            dq.from = (q.from / DAY_MS) * DAY_MS;
            dq.to = dq.from + DAY_MS * (1 + (q.to - q.from) / DAY_MS).min(3);
            let parts: Vec<answer::Traffic> = days
                .iter()
                .map(|r| answer::traffic(r, &dq).expect("aligned"))
                .collect();
            prop_assert_eq!(
                answer::Traffic::merge_disjoint(&parts),
                answer::traffic(&whole_days, &dq).expect("aligned")
            );
        }
    }
}
