//! The site shard's ingest over rusqlite (issue 14), against a written scenario whose
//! sessions and traffic are worked out by hand below (not by calling the code under test).
//!
//! Scenario (site `s1`, one shard, hosts `example.com`; T = 2026-01-01 10:00 UTC):
//!
//! | visitor | event | at      | url                                           | referrer             |
//! |---------|-------|---------|-----------------------------------------------|----------------------|
//! | v1      | a1    | T       | /?utm_source=google&utm_medium=cpc            | —                    |
//! | v1      | a2    | T+1m    | /pricing                                      | https://example.com/ |
//! | v1      | b1    | T+2h    | /blog?utm_source=newsletter&utm_medium=email  | —                    |
//! | v1      | c1    | T+20m   | /docs (late: sent after b1)                   | https://example.com/ |
//! | v2      | d1    | T+3h    | /?utm_source=google&utm_medium=cpc            | —                    |
//!
//! By hand (a session ends after 30 minutes without an event; a new campaign starts one):
//! - after a1, a2: v1 has one session from `google` with 2 page views;
//! - after b1 (T+2h, 119 minutes after a2): a second session, `newsletter`, 1 page view;
//! - b1 again (a retry): a duplicate, nothing changes;
//! - c1 (late, 19 minutes after a2, internal referrer): it joins the `google` session,
//!   which now has 3 page views; still 2 sessions;
//! - d1: v2's own `google` session, 1 page view.
//!
//! So over T..T+4h grouped by source: `google` 2 visitors, 2 sessions, 4 page views;
//! `newsletter` 1 visitor, 1 session, 1 page view; 2 distinct visitors in all; 5 events
//! stored and queued for the archive.
#![cfg(not(target_arch = "wasm32"))]

use closeloop_core::report::{Filters, GroupBy};
use closeloop_edge::shard::msg::{
    BatchEvent, Outcome, RequestContext, ShardBatch, ShardSettings, TrafficQuery,
};
use closeloop_edge::shard::ShardEngine;
use closeloop_edge::sqlite::native::NativeSql;

const T: i64 = 1_767_261_600_000; // 2026-01-01T10:00:00Z
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn settings() -> ShardSettings {
    ShardSettings::new("s1", 0, 1, vec!["example.com".to_owned()])
}

fn pageview(id: &str, at: i64, path_query: &str, referrer: Option<&str>) -> BatchEvent {
    let path = path_query.split('?').next().unwrap_or("/").to_owned();
    BatchEvent {
        event_id: id.to_owned(),
        kind: "pageview".to_owned(),
        url: format!("https://example.com{path_query}"),
        path,
        referrer: referrer.map(str::to_owned),
        title: None,
        name: None,
        props: None,
        form_fields: None,
        form_values: None,
        form_id: None,
        created_at: at,
        sent_at: at,
        derived_ts: at,
    }
}

fn batch(settings: &ShardSettings, visitor: &str, events: Vec<BatchEvent>) -> ShardBatch {
    let received_at = events.iter().map(|e| e.derived_ts).max().unwrap_or(T) + 1_000;
    ShardBatch {
        settings: settings.clone(),
        visitor: visitor.to_owned(),
        received_at,
        context: RequestContext {
            device_type: "desktop".to_owned(),
            ..RequestContext::default()
        },
        events,
        links: Vec::new(),
    }
}

fn by_source(from: i64, to: i64) -> TrafficQuery {
    TrafficQuery {
        from,
        to,
        group_by: GroupBy::Source,
        filters: Filters::default(),
        include_bots: false,
        pages: false,
        granularity: None,
        max_buckets: 0,
    }
}

/// (key, visitors, sessions, page views) per row, and the distinct visitors.
fn figures(shard: &ShardEngine<NativeSql>) -> (Vec<(String, u64, u64, u64)>, u64) {
    let a = shard.traffic(&by_source(T, T + 4 * HOUR)).expect("traffic");
    let rows = a
        .traffic
        .counted
        .rows
        .iter()
        .map(|r| (r.key.clone(), r.visitors, r.sessions, r.pageviews))
        .collect();
    (rows, a.traffic.counted.visitors)
}

fn outcomes(ing: &closeloop_edge::shard::Ingested) -> Vec<(String, Outcome)> {
    ing.answer.results.clone()
}

#[test]
fn a_written_scenario_gives_the_hand_worked_sessions_and_traffic() {
    let s = settings();
    let shard = ShardEngine::open(NativeSql::memory().expect("sqlite")).expect("open");

    let first = shard
        .ingest(&batch(
            &s,
            "v1",
            vec![
                pageview("a1", T, "/?utm_source=google&utm_medium=cpc", None),
                pageview("a2", T + MIN, "/pricing", Some("https://example.com/")),
            ],
        ))
        .expect("batch 1");
    assert_eq!(
        outcomes(&first),
        vec![
            ("a1".to_owned(), Outcome::Accepted),
            ("a2".to_owned(), Outcome::Accepted)
        ]
    );
    assert_eq!(figures(&shard), (vec![("google".to_owned(), 1, 1, 2)], 1));

    let b = batch(
        &s,
        "v1",
        vec![pageview(
            "b1",
            T + 2 * HOUR,
            "/blog?utm_source=newsletter&utm_medium=email",
            None,
        )],
    );
    let second = shard.ingest(&b).expect("batch 2");
    assert_eq!(
        outcomes(&second),
        vec![("b1".to_owned(), Outcome::Accepted)]
    );
    let after_b = (
        vec![
            ("google".to_owned(), 1, 1, 2),
            ("newsletter".to_owned(), 1, 1, 1),
        ],
        1,
    );
    assert_eq!(figures(&shard), after_b);
    let status_before_retry = shard.status().expect("status");

    // A retry of the same batch: a duplicate, and nothing changes.
    let retry = shard.ingest(&b).expect("retry");
    assert_eq!(
        outcomes(&retry),
        vec![("b1".to_owned(), Outcome::Duplicate)]
    );
    assert_eq!(figures(&shard), after_b);
    let status_after_retry = shard.status().expect("status");
    assert_eq!(status_after_retry.events, status_before_retry.events);
    assert_eq!(status_after_retry.sessions, status_before_retry.sessions);
    assert_eq!(status_after_retry.pending, status_before_retry.pending);

    // A late event joins the first session: the rollups follow.
    let late = shard
        .ingest(&batch(
            &s,
            "v1",
            vec![pageview(
                "c1",
                T + 20 * MIN,
                "/docs",
                Some("https://example.com/"),
            )],
        ))
        .expect("late");
    assert_eq!(outcomes(&late), vec![("c1".to_owned(), Outcome::Accepted)]);
    assert_eq!(
        figures(&shard),
        (
            vec![
                ("google".to_owned(), 1, 1, 3),
                ("newsletter".to_owned(), 1, 1, 1),
            ],
            1
        )
    );

    let v2 = shard
        .ingest(&batch(
            &s,
            "v2",
            vec![pageview(
                "d1",
                T + 3 * HOUR,
                "/?utm_source=google&utm_medium=cpc",
                None,
            )],
        ))
        .expect("v2");
    assert_eq!(outcomes(&v2), vec![("d1".to_owned(), Outcome::Accepted)]);
    assert_eq!(
        figures(&shard),
        (
            vec![
                ("google".to_owned(), 2, 2, 4),
                ("newsletter".to_owned(), 1, 1, 1),
            ],
            2
        )
    );

    let status = shard.status().expect("status");
    assert_eq!(status.events, 5);
    assert_eq!(status.sessions, 3);
    assert_eq!(status.visitors, 2);
    assert_eq!(
        status.pending, 5,
        "every accepted event waits for the archive"
    );
}

#[test]
fn the_visitor_quota_refuses_what_is_over_it_and_stores_the_rest() {
    let mut s = settings();
    s.max_events_per_visitor_day = 2;
    let shard = ShardEngine::open(NativeSql::memory().expect("sqlite")).expect("open");
    let got = shard
        .ingest(&batch(
            &s,
            "v1",
            vec![
                pageview("q1", T, "/", None),
                pageview("q2", T + MIN, "/a", Some("https://example.com/")),
                pageview("q3", T + 2 * MIN, "/b", Some("https://example.com/")),
            ],
        ))
        .expect("batch");
    // By hand: a quota of 2 per visitor and day, 3 events on one day → the third is refused.
    assert_eq!(
        outcomes(&got),
        vec![
            ("q1".to_owned(), Outcome::Accepted),
            ("q2".to_owned(), Outcome::Accepted),
            ("q3".to_owned(), Outcome::VisitorQuotaExceeded),
        ]
    );
    // A later batch the same day: still over.
    let more = shard
        .ingest(&batch(
            &s,
            "v1",
            vec![pageview("q4", T + 3 * MIN, "/c", None)],
        ))
        .expect("batch");
    assert_eq!(
        outcomes(&more),
        vec![("q4".to_owned(), Outcome::VisitorQuotaExceeded)]
    );
    assert_eq!(shard.status().expect("status").events, 2);
}

#[test]
fn a_batch_for_the_wrong_shard_is_refused_and_changes_nothing() {
    let s = ShardSettings::new("s1", 0, 4, vec!["example.com".to_owned()]);
    let shard = ShardEngine::open(NativeSql::memory().expect("sqlite")).expect("open");
    // Find a visitor that does not live in shard 0 of 4.
    let visitor = (0..64)
        .map(|i| format!("v{i}"))
        .find(|v| closeloop_edge::shard::msg::shard_of(v, 4) != 0)
        .expect("a visitor of another shard");
    let err = shard
        .ingest(&batch(&s, &visitor, vec![pageview("x1", T, "/", None)]))
        .expect_err("refused");
    assert_eq!(err.parts().0, 400);
    assert_eq!(shard.status().expect("status").events, 0);
}

/// Runs a future that never waits (the in-memory archive and directory answer at once).
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("an in-memory future waited"),
    }
}

/// A directory that knows no lead (anonymous visitors).
struct NoLeads;
impl closeloop_edge::shard::archive::DirectoryLink for NoLeads {
    async fn sync(
        &self,
        msg: &closeloop_edge::shard::msg::VisitorSync,
    ) -> Result<closeloop_edge::shard::msg::SyncAnswer, String> {
        Ok(closeloop_edge::shard::msg::SyncAnswer {
            lead: None,
            version: Some(msg.version),
            need_full: false,
        })
    }
}

#[test]
fn events_reach_the_archive_only_once_written_and_a_rebuild_replays_them() {
    use closeloop_edge::archive::MemoryArchive;
    use closeloop_edge::shard::archive::{flush_archive, rebuild_step};
    let s = settings();
    let shard = ShardEngine::open(NativeSql::memory().expect("sqlite")).expect("open");
    shard
        .ingest(&batch(
            &s,
            "v1",
            vec![
                pageview("a1", T, "/?utm_source=google&utm_medium=cpc", None),
                pageview("a2", T + MIN, "/pricing", Some("https://example.com/")),
            ],
        ))
        .expect("batch 1");
    shard
        .ingest(&batch(
            &s,
            "v2",
            vec![pageview(
                "d1",
                T + 3 * HOUR,
                "/?utm_source=google&utm_medium=cpc",
                None,
            )],
        ))
        .expect("batch 2");

    // The archive is down: nothing leaves the queue.
    let sink = MemoryArchive::default();
    sink.failing.set(true);
    assert_eq!(
        ready(flush_archive(&shard, &sink, T + 4 * HOUR, 10)).expect("flush"),
        0
    );
    assert_eq!(shard.pending().expect("pending"), 3);
    assert!(sink.objects.borrow().is_empty());

    // Back up: the 3 events of the one day land in one object under the site's day.
    sink.failing.set(false);
    assert_eq!(
        ready(flush_archive(&shard, &sink, T + 4 * HOUR, 10)).expect("flush"),
        3
    );
    assert_eq!(shard.pending().expect("pending"), 0);
    {
        let objects = sink.objects.borrow();
        assert_eq!(objects.len(), 1);
        let (key, body) = objects.iter().next().expect("one object");
        assert!(key.starts_with("site=s1/day=2026-01-01/0of1-"), "{key}");
        assert!(key.ends_with(".ndjson"), "{key}");
        let ids: Vec<String> = body
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
                v["event_id"].as_str().expect("event_id").to_owned()
            })
            .collect();
        assert_eq!(ids, vec!["a1", "a2", "d1"]);
    }

    // A rebuild into an empty shard replays them through the same ingest: same traffic.
    let rebuilt = ShardEngine::open(NativeSql::memory().expect("sqlite")).expect("open");
    rebuilt.rebuild_begin(&s, false).expect("begin");
    let state = ready(rebuild_step(&rebuilt, &sink, &NoLeads)).expect("step");
    assert!(state.done);
    assert_eq!((state.objects, state.lines, state.accepted), (1, 3, 3));
    // By hand: google 2 visitors, 2 sessions, 3 page views (a1, a2 | d1).
    assert_eq!(figures(&rebuilt), (vec![("google".to_owned(), 2, 2, 3)], 2));
    assert_eq!(figures(&rebuilt), figures(&shard));
    assert_eq!(
        rebuilt.pending().expect("pending"),
        0,
        "replayed events are not archived again"
    );
    // A shard that holds events refuses a fresh rebuild.
    assert_eq!(
        shard
            .rebuild_begin(&s, false)
            .expect_err("refused")
            .parts()
            .0,
        409
    );
}
