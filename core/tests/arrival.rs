//! One function decides an arrival: the rules moved from the edge (`edge/src/touch.rs` and the
//! acknowledgement's touch of `edge/src/ingest.rs`), with the edge's own cases.

use closeloop_core::arrival::{ack_touch, arrival, is_excluded, AckAnchor, AckEvent, SiteRules};
use closeloop_core::session::Arrival;

const MIN: i64 = 60_000;

fn tagged(
    a: Arrival<closeloop_core::arrival::SessionTouch>,
) -> closeloop_core::arrival::SessionTouch {
    match a {
        Arrival::Tagged(t) => t,
        other => panic!("expected a tagged arrival, got {other:?}"),
    }
}

#[test]
fn utm_tags_make_the_touch() {
    let t = tagged(arrival(
        "https://example.com/?utm_source=newsletter&utm_medium=email&utm_campaign=launch",
        None,
        false,
        &[],
    ));
    assert_eq!(
        (t.channel.as_str(), t.source.as_str(), t.medium.as_str()),
        ("Email", "newsletter", "email")
    );
    assert_eq!(t.campaign.as_deref(), Some("launch"));
    // a tagged arrival is the same source whatever page linked to it
    let from_gmail = tagged(arrival(
        "https://example.com/?utm_source=newsletter&utm_medium=email&utm_campaign=launch",
        Some("https://mail.google.com/"),
        false,
        &[],
    ));
    assert_eq!(from_gmail, t);
    // utm_content alone (a site's own link decoration) is no campaign: the referrer decides
    assert_eq!(
        arrival("https://example.com/?utm_content=hero", None, false, &[]),
        Arrival::Direct
    );
}

#[test]
fn a_click_id_alone_implies_its_network() {
    let t = tagged(arrival("https://example.com/?gclid=abc", None, false, &[]));
    assert_eq!(
        (t.channel.as_str(), t.source.as_str(), t.medium.as_str()),
        ("Paid Search", "google", "cpc")
    );
    assert_eq!(t.click_id.as_deref(), Some("gclid=abc"));
}

#[test]
fn referrers() {
    match arrival(
        "https://example.com/",
        Some("https://www.google.com/"),
        false,
        &[],
    ) {
        Arrival::Referral { host, source } => {
            assert_eq!(host, "www.google.com");
            assert_eq!(source.channel, "Organic Search");
            assert_eq!(source.source, "google");
            assert_eq!(source.referrer_host.as_deref(), Some("www.google.com"));
        }
        other => panic!("expected a referral, got {other:?}"),
    }
    let same = arrival(
        "https://example.com/b",
        Some("https://example.com/a"),
        false,
        &[],
    );
    assert_eq!(same, Arrival::Internal);
    let own = arrival(
        "https://example.com/b",
        Some("https://shop.example.org/"),
        false,
        &["shop.example.org".to_string()],
    );
    assert_eq!(own, Arrival::Internal);
    assert!(is_excluded("www.paypal.com", &[], &[]));
    assert!(is_excluded(
        "pay.example.net",
        &[],
        &["example.net".to_string()]
    ));
    assert!(!is_excluded("news.ycombinator.com", &[], &[]));
    assert_eq!(
        arrival("https://example.com/", None, false, &[]),
        Arrival::Direct
    );
    assert_eq!(
        arrival("https://example.com/", Some(""), false, &[]),
        Arrival::Direct
    );
    assert_eq!(
        arrival("https://example.com/", None, true, &[]),
        Arrival::Internal
    );
    let rules = SiteRules::from_origins(
        &["https://Example.com".into(), "not a url".into()],
        &["bank.test".into()],
    );
    assert_eq!(rules.hosts, ["example.com"]);
    assert!(rules.excludes("secure.bank.test") && rules.excludes("www.example.com"));
    assert!(!rules.excludes("www.google.com"));
}

fn ev<'a>(id: &'a str, url: &'a str, referrer: Option<&'a str>, at: i64) -> AckEvent<'a> {
    AckEvent {
        id,
        at,
        path: "/",
        url,
        referrer,
        pageview: true,
    }
}

#[test]
fn the_answer_tells_the_touch_a_batch_starts() {
    let rules = SiteRules::from_origins(&["https://example.com".into()], &[]);
    let anchor = |at| AckAnchor { at, touch: None };
    let launch = "https://example.com/?utm_source=newsletter&utm_medium=email&utm_campaign=launch";
    // a first visit from the newsletter (nothing stored before): Email / launch
    let t = ack_touch([ev("ev-a1", launch, None, 10 * MIN)], None, &rules).expect("a touch");
    assert_eq!(
        (t.channel.as_str(), t.source.as_str(), t.campaign.as_deref()),
        ("Email", "newsletter", Some("launch"))
    );
    // a page read 5 minutes after the previous stored event, from the site itself: the
    // session goes on, nothing to tell
    let pricing = [ev(
        "ev-a2",
        "https://example.com/pricing",
        Some("https://example.com/"),
        15 * MIN,
    )];
    assert_eq!(ack_touch(pricing, Some(&anchor(10 * MIN)), &rules), None);
    // the same page 31 minutes after: a new direct session
    let late = [ev("ev-a3", "https://example.com/pricing", None, 41 * MIN)];
    let t = ack_touch(late, Some(&anchor(10 * MIN)), &rules).expect("a touch");
    assert_eq!(
        (t.channel.as_str(), t.source.as_str()),
        ("Direct", "(direct)")
    );
    // 2 minutes after, but from Google search: a new session from Organic Search
    let search = [ev(
        "ev-a4",
        "https://example.com/blog",
        Some("https://www.google.com/"),
        12 * MIN,
    )];
    let t = ack_touch(search, Some(&anchor(10 * MIN)), &rules).expect("a touch");
    assert_eq!(
        (t.channel.as_str(), t.source.as_str()),
        ("Organic Search", "google")
    );
    // a batch that goes on and then arrives from the newsletter: the last session's
    let batch = [
        ev(
            "ev-a5",
            "https://example.com/a",
            Some("https://example.com/"),
            11 * MIN,
        ),
        ev("ev-a6", launch, None, 13 * MIN),
        ev(
            "ev-a7",
            "https://example.com/b",
            Some("https://example.com/"),
            14 * MIN,
        ),
    ];
    let t = ack_touch(batch, Some(&anchor(10 * MIN)), &rules).expect("a touch");
    assert_eq!(t.campaign.as_deref(), Some("launch"));
    // nothing kept (all over the quota): nothing to tell
    assert_eq!(ack_touch([], Some(&anchor(10 * MIN)), &rules), None);
    // when the shard knows the current session's touch, a reload of the same campaign
    // goes on with it: nothing to tell; another campaign is told
    let known = AckAnchor {
        at: 10 * MIN,
        touch: Some(ack_source(launch, &rules)),
    };
    assert_eq!(
        ack_touch([ev("ev-a8", launch, None, 12 * MIN)], Some(&known), &rules),
        None
    );
    let other = "https://example.com/?utm_source=newsletter&utm_medium=email&utm_campaign=july";
    let t = ack_touch([ev("ev-a9", other, None, 12 * MIN)], Some(&known), &rules).expect("a touch");
    assert_eq!(t.campaign.as_deref(), Some("july"));
}

fn ack_source(url: &str, rules: &SiteRules) -> closeloop_core::arrival::SessionTouch {
    tagged(arrival(url, None, false, &rules.hosts))
}
