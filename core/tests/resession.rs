//! Sessions at ingest: the incremental sessioniser of the shards (`resession`) against the
//! reference, `session::sessionize` over all of a visitor's events at once.
//!
//! A small in-memory shard keeps exactly what the module docs say a shard keeps (events with
//! their session id, session summaries) and reads exactly what `plan` asks, a few sessions at
//! a time (so `NeedMore` is exercised). Any interleaving, chunking and order of batches must
//! leave the same sessions — boundaries, touches, counts, entrance and exit, markers — and the
//! same session per event as `sessionize` over every event.

use std::collections::BTreeMap;

mod common;

use closeloop_core::resession::{Marker, PageRef, VisitEvent, VisitSession};
use closeloop_core::session::{sessionize, Arrival, SessionEvent};
use common::Shard;
use proptest::prelude::*;

const MIN: i64 = 60_000;
type Src = u8;

fn excluded(host: &str) -> bool {
    host == "pay.example"
}

/// The reference: every event at once through `sessionize`, summarised here.
fn reference(events: &[VisitEvent<Src>]) -> (Vec<VisitSession<Src>>, BTreeMap<String, String>) {
    let input: Vec<SessionEvent<Src>> = events
        .iter()
        .map(|e| SessionEvent {
            id: e.id.clone(),
            at: e.at,
            path: e.path.clone(),
            arrival: e.arrival.clone(),
        })
        .collect();
    let mut out: Vec<VisitSession<Src>> = Vec::new();
    let mut of = BTreeMap::new();
    let mut prev_any: Option<Marker<Src>> = None;
    let mut prev_human: Option<Marker<Src>> = None;
    for s in sessionize(&input, excluded) {
        let members: Vec<&VisitEvent<Src>> = s.events.iter().map(|&i| &events[i]).collect();
        let first = members[0];
        let last = members[members.len() - 1];
        let pages: Vec<PageRef> = members
            .iter()
            .filter(|e| e.pageview)
            .map(|e| PageRef {
                id: e.id.clone(),
                at: e.at,
                path: e.path.clone(),
            })
            .collect();
        let v = VisitSession {
            id: format!("s_{}", first.id),
            start: s.start,
            first_event: first.id.clone(),
            end: s.end,
            last_event: last.id.clone(),
            touch: s.touch,
            landing_path: s.landing_path.clone(),
            events: members.len() as u64,
            pageviews: pages.len() as u64,
            is_bot: first.is_bot,
            country: first.country.clone(),
            device: first.device.clone(),
            entrance: pages.first().cloned(),
            exit: pages.last().cloned(),
            prev_any: prev_any.clone(),
            prev_human: prev_human.clone(),
        };
        let me = Marker {
            start: v.start,
            id: v.id.clone(),
            touch: v.touch,
        };
        prev_any = Some(me.clone());
        if !v.is_bot {
            prev_human = Some(me);
        }
        for e in &members {
            of.insert(e.id.clone(), v.id.clone());
        }
        out.push(v);
    }
    (out, of)
}

fn arrival(kind: u8) -> Arrival<Src> {
    match kind {
        0..=2 => Arrival::Internal,
        3 => Arrival::Direct,
        4 | 5 => Arrival::Tagged(kind - 4),
        6 => Arrival::Referral {
            host: "ref.example".into(),
            source: 7,
        },
        _ => Arrival::Referral {
            host: "pay.example".into(),
            source: 9,
        },
    }
}

/// Events of one visitor: minutes over 10 hours (gaps above and below 30 minutes, ties at a
/// millisecond), ids in a random order so that they do not follow time.
fn events_strategy() -> impl Strategy<Value = Vec<VisitEvent<Src>>> {
    (1usize..28)
        .prop_flat_map(|n| {
            (
                Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
                proptest::collection::vec(
                    (0i64..600, 0i64..2, 0u8..8, any::<bool>(), 0u8..5, 0u8..3),
                    n,
                ),
            )
        })
        .prop_map(|(ids, raw)| {
            raw.into_iter()
                .zip(ids)
                .map(|((minute, ms, kind, pageview, bot, path), id)| VisitEvent {
                    id: format!("e{id:02}"),
                    at: minute * MIN / 3 + ms,
                    path: format!("/p{path}"),
                    arrival: arrival(kind),
                    pageview,
                    is_bot: bot == 0,
                    country: Some(if bot == 1 { "DE" } else { "FR" }.into()),
                    device: Some("desktop".into()),
                    session: None,
                })
                .collect()
        })
}

/// The events cut into batches (sizes from `cuts`) sent in the order `order` gives.
fn batches(
    events: &[VisitEvent<Src>],
    cuts: &[usize],
    order: &[usize],
) -> Vec<Vec<VisitEvent<Src>>> {
    let mut out: Vec<Vec<VisitEvent<Src>>> = Vec::new();
    let mut rest = events;
    for &c in cuts {
        if rest.is_empty() {
            break;
        }
        let (a, b) = rest.split_at(c.clamp(1, rest.len()));
        out.push(a.to_vec());
        rest = b;
    }
    if !rest.is_empty() {
        out.push(rest.to_vec());
    }
    let mut sent: Vec<Vec<VisitEvent<Src>>> = Vec::new();
    let mut left: Vec<Option<Vec<VisitEvent<Src>>>> = out.into_iter().map(Some).collect();
    for &o in order {
        let n = left.len();
        if let Some(b) = left.get_mut(o % n.max(1)).and_then(Option::take) {
            sent.push(b);
        }
    }
    sent.extend(left.into_iter().flatten());
    sent
}

fn check(
    events: &[VisitEvent<Src>],
    sent: &[Vec<VisitEvent<Src>>],
    page: usize,
) -> Result<(), TestCaseError> {
    let mut shard: Shard<Src> = Shard::default();
    for (i, b) in sent.iter().enumerate() {
        let changes = shard.ingest(b, page, excluded);
        // the acknowledgement: the visitor's latest session, when this batch started it
        let latest = shard.sessions.values().next_back().expect("a session");
        let started = b.iter().any(|e| e.id == latest.first_event)
            && changes
                .sessions
                .iter()
                .any(|c| c.new.as_ref().is_some_and(|n| n.id == latest.id));
        prop_assert_eq!(
            changes.told.as_ref().map(|t| t.touch),
            started.then_some(latest.touch),
            "batch {} told",
            i
        );
        // a retry of the same batch changes nothing
        let again = shard.ingest(b, page, excluded);
        prop_assert!(
            again.sessions.is_empty() && again.assigned.is_empty(),
            "a retry changes nothing"
        );
    }
    let (want, of) = reference(events);
    let got: Vec<VisitSession<Src>> = shard.sessions.values().cloned().collect();
    prop_assert_eq!(&got, &want);
    let got_of: BTreeMap<String, String> = shard
        .events
        .values()
        .map(|e| (e.id.clone(), e.session.clone().unwrap_or_default()))
        .collect();
    prop_assert_eq!(got_of, of);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn any_batching_gives_the_sessions_of_sessionize(
        events in events_strategy(),
        cuts in proptest::collection::vec(1usize..6, 0..10),
        order in proptest::collection::vec(0usize..12, 0..12),
        page in 1usize..4,
    ) {
        let sent = batches(&events, &cuts, &order);
        check(&events, &sent, page)?;
    }

    #[test]
    fn events_one_at_a_time_in_any_order(
        events in events_strategy(),
        order in proptest::collection::vec(0usize..40, 0..40),
    ) {
        let cuts = vec![1; events.len()];
        let sent = batches(&events, &cuts, &order);
        check(&events, &sent, 2)?;
    }
}

/// A written case: a late event falls into the gap between two sessions and joins them; the
/// re-cut stops at the next half hour of silence, and the session after it is only re-marked.
#[test]
fn a_late_event_joins_two_sessions_and_stops_at_the_next_silence() {
    let ev = |id: &str, minute: i64, kind: u8| VisitEvent {
        id: id.into(),
        at: minute * MIN,
        path: "/".into(),
        arrival: arrival(kind),
        pageview: true,
        is_bot: false,
        country: None,
        device: None,
        session: None,
    };
    let mut shard: Shard<Src> = Shard::default();
    // 10:00 from campaign 0, 10:40 internal (40 > 30 minutes: a new direct session),
    // 13:00 from campaign 1 (a third session after a long silence)
    shard.ingest(
        &[ev("a", 600, 4), ev("b", 640, 0), ev("c", 780, 5)],
        10,
        excluded,
    );
    assert_eq!(shard.sessions.len(), 3);
    // a late page view at 10:20, internal: 20 minutes after a and 20 before b, it joins both
    let changes = shard.ingest(&[ev("late", 620, 0)], 10, excluded);
    let ids: Vec<&str> = shard.sessions.values().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["s_a", "s_c"]);
    let joined = &shard.sessions.values().next().unwrap();
    assert_eq!(
        (joined.events, joined.touch, joined.end),
        (3, Some(0), 640 * MIN)
    );
    // s_a rewritten, s_b deleted, s_c only re-marked (its previous session is now s_a)
    let touched: Vec<(Option<&str>, Option<&str>)> = changes
        .sessions
        .iter()
        .map(|c| {
            (
                c.old.as_ref().map(|s| s.id.as_str()),
                c.new.as_ref().map(|s| s.id.as_str()),
            )
        })
        .collect();
    assert_eq!(
        touched,
        [
            (Some("s_a"), Some("s_a")),
            (Some("s_b"), None),
            (Some("s_c"), Some("s_c"))
        ]
    );
    let c = &changes.sessions[2];
    assert_eq!(c.new.as_ref().unwrap().prev_any.as_ref().unwrap().id, "s_a");
    assert!(c.views_in.is_empty() && c.views_out.is_empty());
    // b's page view moved from s_b to s_a; the late one joined s_a
    let moved: Vec<&str> = changes.sessions[0]
        .views_in
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(moved, ["late", "b"]);
    assert_eq!(changes.sessions[1].views_out[0].id, "b");
    // a late batch is told nothing: the tracker's current session is s_c
    assert_eq!(changes.told, None);
}
