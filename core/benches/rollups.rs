//! Benchmarks of issue 14's core: the incremental sessioniser (a batch appended to a
//! visitor's open session; a late event re-cutting a visitor's day), `Rollup::add` of one
//! session, `Rollup::merge` of a day of hour rollups, the day summary with sketches, and a
//! lead's journey delta in the credit rollups.

use std::hint::black_box;

use closeloop_core::arrival::SessionTouch;
use closeloop_core::attribution::Params;
use closeloop_core::report::ConversionRow;
use closeloop_core::resession::{resessionize, VisitEvent, VisitSession, Window};
use closeloop_core::rollup::credit::{CreditRollup, JourneySession, LeadJourney};
use closeloop_core::rollup::{Rollup, RowKey, SessionFacts, HOUR_MS};
use closeloop_core::session::Arrival;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const MIN: i64 = 60_000;
const CHANNELS: [&str; 5] = [
    "Email",
    "Paid Search",
    "Organic Search",
    "Referral",
    "Direct",
];

fn touch(i: usize) -> SessionTouch {
    SessionTouch {
        channel: CHANNELS[i % CHANNELS.len()].into(),
        source: format!("source{}", i % 7),
        medium: "cpc".into(),
        campaign: Some(format!("campaign{}", i % 11)),
        ..SessionTouch::default()
    }
}

fn event(id: usize, at: i64, arrival: Arrival<SessionTouch>) -> VisitEvent<SessionTouch> {
    VisitEvent {
        id: format!("ev-{id:06}"),
        at,
        path: format!("/page/{}", id % 13),
        arrival,
        pageview: true,
        is_bot: false,
        country: Some("DE".into()),
        device: Some("desktop".into()),
        session: None,
    }
}

/// A visitor's day: 40 events in 8 sessions (a campaign arrival every 5 events, 50 minutes
/// apart), stored, with their sessions.
fn stored_day() -> (
    Vec<VisitSession<SessionTouch>>,
    Vec<VisitEvent<SessionTouch>>,
) {
    let events: Vec<VisitEvent<SessionTouch>> = (0..40)
        .map(|i| {
            let arrival = if i % 5 == 0 {
                Arrival::Tagged(touch(i / 5))
            } else {
                Arrival::Internal
            };
            event(i, (i as i64 / 5) * 50 * MIN + (i as i64 % 5) * MIN, arrival)
        })
        .collect();
    let changes = resessionize(&Window::Empty, &events, |_| false).expect("first batch");
    let sessions: Vec<VisitSession<SessionTouch>> =
        changes.sessions.into_iter().filter_map(|c| c.new).collect();
    let mut stored = events;
    for e in &mut stored {
        e.session = changes
            .assigned
            .iter()
            .find(|(id, _)| *id == e.id)
            .map(|(_, s)| s.clone());
    }
    (sessions, stored)
}

fn facts(i: usize) -> (SessionFacts, Vec<(i64, String)>) {
    let key = RowKey {
        channel: CHANNELS[i % 5].into(),
        source: format!("source{}", i % 7),
        medium: "cpc".into(),
        campaign: Some(format!("campaign{}", i % 11)),
        landing_page: format!("/page/{}", i % 13),
        country: Some(["DE", "FR", "US"][i % 3].into()),
        device: Some("desktop".into()),
        is_bot: false,
    };
    let hour = (i / 50) as i64;
    let f = SessionFacts {
        visitor: (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        hour,
        key: key.clone(),
        pageviews: 3,
        new_visitor: i.is_multiple_of(4),
        entrance: Some((hour, key.landing_page.clone())),
        exit: Some((hour, "/pricing".into())),
        steps: vec![],
    };
    let views = (0..3)
        .map(|k| {
            (
                hour * HOUR_MS + k * MIN,
                format!("/page/{}", (i + k as usize) % 13),
            )
        })
        .collect();
    (f, views)
}

fn bench(c: &mut Criterion) {
    let (sessions, stored) = stored_day();
    let latest = sessions.last().cloned().expect("a session");
    let append: Vec<VisitEvent<SessionTouch>> = (0..5)
        .map(|i| {
            event(
                100 + i,
                latest.end + (i as i64 + 1) * MIN,
                Arrival::Internal,
            )
        })
        .collect();
    let mut g = c.benchmark_group("resession");
    g.throughput(Throughput::Elements(append.len() as u64));
    g.bench_function("append 5 events to the open session", |b| {
        let w = Window::Append(Box::new(latest.clone()));
        b.iter(|| resessionize(black_box(&w), black_box(&append), |_| false))
    });
    // a late event in the middle of the day joins two sessions: re-cut to the next silence
    let late = vec![event(999, 3 * 50 * MIN + 20 * MIN, Arrival::Internal)];
    let w = Window::Recut {
        sessions: sessions[2..].to_vec(),
        events: stored
            .iter()
            .filter(|e| e.at >= 2 * 50 * MIN)
            .cloned()
            .collect(),
        complete: true,
    };
    g.throughput(Throughput::Elements(1));
    g.bench_function("a late event re-cuts a visitor's day", |b| {
        b.iter(|| resessionize(black_box(&w), black_box(&late), |_| false))
    });
    g.finish();

    let sessions: Vec<(SessionFacts, Vec<(i64, String)>)> = (0..1200).map(facts).collect();
    let mut g = c.benchmark_group("rollup");
    g.throughput(Throughput::Elements(sessions.len() as u64));
    g.bench_function("add 1200 sessions (24 hours)", |b| {
        b.iter(|| {
            let mut r = Rollup::new();
            for (f, v) in &sessions {
                r.add(f, v);
            }
            r
        })
    });
    let hours: Vec<Rollup> = sessions
        .chunks(50)
        .map(|chunk| {
            let mut r = Rollup::new();
            for (f, v) in chunk {
                r.add(f, v);
            }
            r
        })
        .collect();
    g.throughput(Throughput::Elements(hours.len() as u64));
    g.bench_function("merge 24 hour rollups", |b| {
        b.iter(|| {
            let mut all = Rollup::new();
            for h in &hours {
                all.merge(black_box(h));
            }
            all
        })
    });
    let mut day = Rollup::new();
    for h in &hours {
        day.merge(h);
    }
    g.throughput(Throughput::Elements(1));
    g.bench_function("day summary of 24 hours (visitor sets)", |b| {
        b.iter(|| black_box(&day).days())
    });
    g.finish();

    // a lead with 30 sessions over two devices and 3 conversions: one late session in
    let journey = |n: usize| LeadJourney {
        lead: "ann".into(),
        sessions: (0..n)
            .map(|i| JourneySession {
                id: format!("s_{i:03}"),
                visitor: format!("v{}", i % 2),
                start: i as i64 * 20 * HOUR_MS,
                key: facts(i).0.key,
            })
            .collect(),
        conversions: (1..=3)
            .map(|k| ConversionRow {
                id: format!("c{k}"),
                lead: "ann".into(),
                kind: if k == 1 { "lead" } else { "customer" }.into(),
                at: k * 200 * HOUR_MS,
                revenue: 10_000 * k,
                ..ConversionRow::default()
            })
            .collect(),
    };
    let (old, new) = (journey(29), journey(30));
    let mut g = c.benchmark_group("credit");
    g.throughput(Throughput::Elements(1));
    g.bench_function(
        "journey delta (30 sessions, 3 conversions, 8 models)",
        |b| {
            b.iter(|| {
                CreditRollup::delta(
                    Some(black_box(&old)),
                    Some(black_box(&new)),
                    Params::default(),
                )
            })
        },
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
