//! Runs every sessionisation case in `tests/cases/sessions/*.json`, and checks identity,
//! assists and costs against hand-worked scenarios.
//!
//! A session case lists one visitor's events (any order; `ms` since an arbitrary origin; the
//! source of a tagged or referred arrival is a string key) and the sessions expected by hand.
//! Each case is also run with its events reversed: the result must not change.

use std::path::Path;

use closeloop_core::assists::{pages_report, PageConversion, PageRow, PageView};
use closeloop_core::attribution::ConversionKind;
use closeloop_core::costs::{allocate_days, metrics, spend_in_range, CostMetrics};
use closeloop_core::identity::{normalize_email, Leads};
use closeloop_core::session::{sessionize, Arrival, Session, SessionEvent, SESSION_TIMEOUT_MS};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
struct CaseEvent {
    id: String,
    ms: i64,
    path: String,
    arrival: Arrival<String>,
}

#[derive(Debug, Deserialize)]
struct ExpectedSession {
    events: Vec<String>,
    touch: Option<String>,
    landing: String,
    start: i64,
    end: i64,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    why: Value,
    #[serde(default)]
    excluded_hosts: Vec<String>,
    events: Vec<CaseEvent>,
    expected: Vec<ExpectedSession>,
}

fn check(case: &Case, events: &[SessionEvent<String>], label: &str) {
    let sessions: Vec<Session<String>> =
        sessionize(events, |host| case.excluded_hosts.iter().any(|h| h == host));
    assert_eq!(
        sessions.len(),
        case.expected.len(),
        "{} ({label}): number of sessions: {sessions:?}",
        case.name
    );
    for (i, (got, want)) in sessions.iter().zip(&case.expected).enumerate() {
        let ids: Vec<&str> = got.events.iter().map(|&e| events[e].id.as_str()).collect();
        assert_eq!(
            ids, want.events,
            "{} ({label}) session {i}: events",
            case.name
        );
        assert_eq!(
            got.touch, want.touch,
            "{} ({label}) session {i}: touch",
            case.name
        );
        assert_eq!(got.is_direct(), want.touch.is_none());
        assert_eq!(
            got.landing_path, want.landing,
            "{} ({label}) session {i}: landing",
            case.name
        );
        assert_eq!(
            (got.start, got.end),
            (want.start, want.end),
            "{} ({label}) session {i}",
            case.name
        );
    }
}

#[test]
fn every_session_case_in_both_orders() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/sessions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("case dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 7,
        "expected the hand-written cases, found {}",
        files.len()
    );
    for f in &files {
        let text = std::fs::read_to_string(f).expect("readable");
        let case: Case =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(
            !case.why.is_null(),
            "{}: explain the case in `why`",
            case.name
        );
        let events: Vec<SessionEvent<String>> = case
            .events
            .iter()
            .map(|e| SessionEvent {
                id: e.id.clone(),
                at: e.ms,
                path: e.path.clone(),
                arrival: e.arrival.clone(),
            })
            .collect();
        check(&case, &events, "as given");
        let mut reversed = events.clone();
        reversed.reverse();
        check(&case, &reversed, "reversed");
    }
}

#[test]
fn timeout_constant_is_thirty_minutes() {
    assert_eq!(SESSION_TIMEOUT_MS, 1_800_000);
}

#[test]
fn no_events_no_sessions() {
    let events: Vec<SessionEvent<String>> = Vec::new();
    assert!(sessionize(&events, |_| false).is_empty());
}

#[test]
fn emails_are_trimmed_and_lowercased_but_not_rewritten() {
    assert_eq!(
        normalize_email("  Ann@Example.COM\t"),
        Some("ann@example.com".into())
    );
    // gmail dots and plus tags are kept: a.nn+x@gmail.com is not ann@gmail.com
    assert_eq!(
        normalize_email("A.nn+X@Gmail.com"),
        Some("a.nn+x@gmail.com".into())
    );
    for bad in [
        "",
        "ann",
        "@example.com",
        "ann@",
        "ann@example",
        "a b@example.com",
        "a@b@c.com",
        "ann@.com",
        "ann@example.",
    ] {
        assert_eq!(normalize_email(bad), None, "{bad:?}");
    }
}

#[test]
fn leads_group_visitors_by_email_without_transitive_merges() {
    // laptop and phone identify as Ann (different spellings); kiosk is used by Ann and Bob;
    // bob-phone is Bob's; junk has an invalid email.
    let leads = Leads::build([
        ("phone", " ann@example.com"),
        ("laptop", "ANN@example.com"),
        ("kiosk", "ann@example.com"),
        ("kiosk", "bob@example.com"),
        ("bob-phone", "Bob@Example.com"),
        ("junk", "not-an-email"),
    ]);
    assert_eq!(
        leads.emails().collect::<Vec<_>>(),
        ["ann@example.com", "bob@example.com"]
    );
    assert_eq!(
        leads.visitors_of("Ann@Example.com").collect::<Vec<_>>(),
        ["kiosk", "laptop", "phone"]
    );
    // the shared kiosk belongs to both, but Bob's phone never joins Ann's lead
    assert_eq!(
        leads.visitors_of("bob@example.com").collect::<Vec<_>>(),
        ["bob-phone", "kiosk"]
    );
    assert_eq!(
        leads.leads_of("kiosk").collect::<Vec<_>>(),
        ["ann@example.com", "bob@example.com"]
    );
    assert_eq!(leads.leads_of("junk").count(), 0);
    assert_eq!(leads.visitors_of("nobody@example.com").count(), 0);
}

fn row<'a>(rows: &'a [PageRow], path: &str) -> &'a PageRow {
    rows.iter()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("no row {path}"))
}

#[test]
fn pages_report_counts_views_entrances_assists_and_direct_conversions() {
    // Range [1000, 10000), lookback 5000 ms.
    // Ann: / (entrance, t=500, before the range: not a view in the range, but within Ann's
    // lookback), /pricing at 1500 (entrance) and 1600, /demo at 2000 where she converts as a
    // lead at 2000 (the form). Her customer conversion closes at 6000 for 300 (no page).
    // Bob (anonymous): /pricing at 3000 (entrance).
    // Cy: /blog at 100 (entrance), converts as a lead on /demo at 7000: /blog is 6900 ms
    // before, outside the 5000 ms lookback -> no assist.
    let ann: &[&str] = &["ann"];
    let cy: &[&str] = &["cy"];
    let views = [
        PageView {
            path: "/",
            at: 500,
            entrance: true,
            exit: true,
            leads: ann,
        },
        PageView {
            path: "/pricing",
            at: 1500,
            entrance: true,
            exit: false,
            leads: ann,
        },
        PageView {
            path: "/pricing",
            at: 1600,
            entrance: false,
            exit: false,
            leads: ann,
        },
        PageView {
            path: "/demo",
            at: 2000,
            entrance: false,
            exit: true,
            leads: ann,
        },
        PageView {
            path: "/pricing",
            at: 3000,
            entrance: true,
            exit: true,
            leads: &[],
        },
        PageView {
            path: "/blog",
            at: 100,
            entrance: true,
            exit: false,
            leads: cy,
        },
        PageView {
            path: "/demo",
            at: 7000,
            entrance: false,
            exit: true,
            leads: cy,
        },
    ];
    let conversions = [
        PageConversion {
            lead: "ann",
            at: 2000,
            kind: ConversionKind::Lead,
            page: Some("/demo"),
            revenue: 0.0,
        },
        PageConversion {
            lead: "ann",
            at: 6000,
            kind: ConversionKind::Customer,
            page: None,
            revenue: 300.0,
        },
        PageConversion {
            lead: "cy",
            at: 7000,
            kind: ConversionKind::Lead,
            page: Some("/demo"),
            revenue: 0.0,
        },
    ];
    let rows = pages_report(&views, &conversions, 1000, 10_000, 5000);
    // Views in range: /pricing 1500, 1600, 3000 -> 3 views, 2 entrances; /demo 2000, 7000 ->
    // 2 views; / and /blog were viewed before the range -> 0 views.
    // Ann's lead (T=2000, window [-3000, 2000)): / and /pricing (twice, counted once) assist;
    // /demo is the conversion page. Ann's customer (T=6000, window [1000, 6000)): /pricing and
    // /demo (the form page: a customer has no page) assist, / (500) is outside -> not.
    // Cy's lead (T=7000, window [2000, 7000)): /blog at 100 is outside -> nothing.
    // Direct conversions: /demo 2 (Ann's and Cy's lead forms).
    let home = row(&rows, "/");
    assert_eq!(
        (
            home.views,
            home.entrances,
            home.assisted_leads,
            home.assisted_customers
        ),
        (0, 0, 1, 0)
    );
    let pricing = row(&rows, "/pricing");
    assert_eq!((pricing.views, pricing.entrances), (3, 2));
    // Exits (a session's last page view, in the range): Ann's first session left from /
    // at 500 (before the range), her second from /demo at 2000, Bob's from /pricing at
    // 3000, Cy's from /demo at 7000.
    assert_eq!(
        (home.exits, pricing.exits, row(&rows, "/demo").exits),
        (0, 1, 2)
    );
    assert_eq!(
        (
            pricing.assisted_leads,
            pricing.assisted_customers,
            pricing.assisted_revenue
        ),
        (1, 1, 300.0)
    );
    assert_eq!(pricing.direct_conversions, 0);
    let demo = row(&rows, "/demo");
    assert_eq!(
        (
            demo.views,
            demo.entrances,
            demo.assisted_leads,
            demo.assisted_customers
        ),
        (2, 0, 0, 1)
    );
    assert_eq!((demo.assisted_revenue, demo.direct_conversions), (300.0, 2));
    // /blog has nothing in the range (no view, no assist, no conversion): no row
    assert_eq!(
        rows.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        ["/", "/demo", "/pricing"]
    );
}

#[test]
fn cost_metrics_by_hand_and_nulls() {
    // spend 1200, 1.5 credited customers, 4800 credited revenue:
    // CAC 1200 / 1.5 = 800; revenue per customer 4800 / 1.5 = 3200; ROI (4800 - 1200) / 1200 = 3
    assert_eq!(
        metrics(1200.0, 1.5, 4800.0),
        CostMetrics {
            cac: Some(800.0),
            revenue_per_customer: Some(3200.0),
            roi: Some(3.0)
        }
    );
    // no spend recorded (organic): CAC and ROI unknown, revenue per customer 900 / 3 = 300
    assert_eq!(
        metrics(0.0, 3.0, 900.0),
        CostMetrics {
            cac: None,
            revenue_per_customer: Some(300.0),
            roi: None
        }
    );
    // spend but no customer: CAC and revenue per customer unknown, ROI (0 - 500) / 500 = -1
    assert_eq!(
        metrics(500.0, 0.0, 0.0),
        CostMetrics {
            cac: None,
            revenue_per_customer: None,
            roi: Some(-1.0)
        }
    );
    assert_eq!(metrics(f64::NAN, 1.0, 1.0), CostMetrics::default());
    assert_eq!(metrics(1.0, f64::INFINITY, 1.0), CostMetrics::default());
}

#[test]
fn spend_is_spread_over_days_without_losing_a_cent() {
    // 1000 cents over 3 days: 333 each, remainder 1 to the first day -> 334, 333, 333
    assert_eq!(
        allocate_days(1000, 100, 102),
        [(100, 334), (101, 333), (102, 333)]
    );
    // 1001 over 3: 333 r 2 -> 334, 334, 333
    assert_eq!(allocate_days(1001, 0, 2), [(0, 334), (1, 334), (2, 333)]);
    // 2 cents over 5 days: 0 r 2 -> 1, 1, 0, 0, 0
    assert_eq!(
        allocate_days(2, 0, 4),
        [(0, 1), (1, 1), (2, 0), (3, 0), (4, 0)]
    );
    // a correction of -1000 over 3: floor(-1000/3) = -334 r 2 -> -333, -333, -334
    assert_eq!(
        allocate_days(-1000, 0, 2),
        [(0, -333), (1, -333), (2, -334)]
    );
    // one day; a reversed period is one day long
    assert_eq!(allocate_days(5, 7, 7), [(7, 5)]);
    assert_eq!(allocate_days(5, 7, 3), [(7, 5)]);
    // a 30-day month of 100000 cents: 3333 r 10 -> first 10 days 3334
    let month = allocate_days(100_000, 0, 29);
    assert_eq!(month.iter().map(|d| d.1).sum::<i64>(), 100_000);
    assert_eq!(month.iter().filter(|d| d.1 == 3334).count(), 10);
    assert_eq!(month.first(), Some(&(0, 3334)));
    assert_eq!(month.last(), Some(&(29, 3333)));
}

#[test]
fn spend_in_a_range_sums_the_covered_days() {
    // 1000 over days 10..=12 = 334, 333, 333
    assert_eq!(spend_in_range(1000, 10, 12, 0, 100), 1000);
    assert_eq!(spend_in_range(1000, 10, 12, 10, 10), 334);
    assert_eq!(spend_in_range(1000, 10, 12, 11, 12), 666);
    assert_eq!(spend_in_range(1000, 10, 12, 12, 20), 333);
    assert_eq!(spend_in_range(1000, 10, 12, 13, 20), 0);
    assert_eq!(spend_in_range(1000, 10, 12, 5, 9), 0);
    // 100000 over 30 days (3334 x 10, 3333 x 20): days 5..=14 = 5 x 3334 + 5 x 3333 = 33335
    assert_eq!(spend_in_range(100_000, 0, 29, 5, 14), 33_335);
    // the whole period split in two parts adds up to the amount
    assert_eq!(
        spend_in_range(-1000, 0, 2, 0, 0) + spend_in_range(-1000, 0, 2, 1, 2),
        -1000
    );
}

#[test]
fn entry_adapter_end_to_end_with_real_urls() {
    use closeloop_core::arrival::SiteRules;
    use closeloop_core::attribution::TouchRef;
    use closeloop_core::entry::parse_entry;
    use closeloop_core::session::{arrival_from_entry, sessionize_entries};

    let site: &[&str] = &["www.example.com"];
    let tagged =
        "https://www.example.com/?utm_source=newsletter&utm_medium=email&utm_campaign=june";
    // (id, minutes, URL, referrer)
    let raw: [(&str, i64, &str, Option<&str>); 7] = [
        // the newsletter link opened from Gmail: tags win over the referrer -> Email
        ("e1", 0, tagged, Some("https://mail.google.com/")),
        // an SPA navigation: the tracker sends the previous URL as referrer -> internal
        ("e2", 1, "https://www.example.com/pricing", Some(tagged)),
        // back from Stripe Checkout (default exclusion list) -> same session
        (
            "e3",
            5,
            "https://www.example.com/thanks",
            Some("https://checkout.stripe.com/c/pay/cs_test_1"),
        ),
        // from a Google search -> a new external source -> new session, Organic Search
        (
            "e4",
            10,
            "https://www.example.com/",
            Some("https://www.google.com/"),
        ),
        // an ad click (gclid, no UTM) -> new session, Paid Search
        ("e5", 12, "https://www.example.com/?gclid=abc", None),
        // the same URL reloaded: same click id -> same session
        ("e6", 13, "https://www.example.com/?gclid=abc", None),
        // two hours later, a bookmark -> timeout -> a direct session
        ("e7", 133, "https://www.example.com/blog", None),
    ];
    let events: Vec<SessionEvent<_>> = raw
        .iter()
        .map(|&(id, min, url, referrer)| {
            let entry = parse_entry(url, referrer, site);
            SessionEvent {
                id: id.into(),
                at: min * 60_000,
                path: entry.landing_path.clone(),
                arrival: arrival_from_entry(&entry),
            }
        })
        .collect();
    assert!(matches!(events[1].arrival, Arrival::Internal));
    assert!(matches!(events[6].arrival, Arrival::Direct));
    let rules = SiteRules {
        hosts: site.iter().map(|h| h.to_string()).collect(),
        excluded: vec![],
    };
    let sessions = sessionize_entries(&events, &rules);
    let got: Vec<(Vec<&str>, String)> = sessions
        .iter()
        .map(|s| {
            let ids = s.events.iter().map(|&i| events[i].id.as_str()).collect();
            (ids, s.touch_or_direct().channel)
        })
        .collect();
    assert_eq!(
        got,
        [
            (vec!["e1", "e2", "e3"], "Email".to_string()),
            (vec!["e4"], "Organic Search".to_string()),
            (vec!["e5", "e6"], "Paid Search".to_string()),
            (vec!["e7"], "Direct".to_string()),
        ]
    );
    // the ad click's touch keeps its click id, the search its referrer host
    assert_eq!(
        sessions[2].touch_or_direct().click_id.as_deref(),
        Some("gclid=abc")
    );
    assert_eq!(
        sessions[1].touch_or_direct().referrer_host.as_deref(),
        Some("www.google.com")
    );
    // a site exclusion: the Google search return is treated as a round trip
    let excluded = sessionize_entries(
        &events,
        &SiteRules {
            excluded: vec!["google.com".into()],
            ..rules.clone()
        },
    );
    assert_eq!(excluded.len(), 3);
    // the attribution adapter
    let touch = sessions[3].touch_or_direct();
    let r = TouchRef {
        at: 7,
        channel: &touch.channel,
        direct: touch.is_direct(),
    };
    assert_eq!((r.at, r.channel, r.direct), (7, "Direct", true));
    assert!(!sessions[0].touch_or_direct().is_direct());
}
