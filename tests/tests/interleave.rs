//! The interleaving property (issue 13): ingest batches, late events and session
//! flushes in random orders give the same sessions and the same reports as one flush
//! at the end.
//!
//! Against the real worker, with few cases: the property is about the deferred
//! sessionisation as the worker carries it out — which stored events a flush reads back
//! (from the start of the session holding the earliest queued event), which sessions it
//! replaces, the queue's version protocol and the session markers — and all of that is
//! SQL in `edge/src/store.rs`, not a pure function one could call natively. So each case
//! sends the same batches, in the same random order, to two fresh sites of one worker:
//! site A is flushed (`POST /v1/admin/sessions:flush?site=A`) at random points between
//! batches, site B only once at the end. Then A's and B's sessions (every column), each
//! event's session, and the reports (sources under four models and three groupings,
//! pages, daily timeseries) must be the same.
//!
//! The two sites receive each batch a few milliseconds apart, so their `derived_ts`
//! (received time less the device's send delay) differ by that much: times are compared
//! within 5 s, and the generated gaps between a visitor's events stay away from the
//! 30-minute session timeout (under 25 or over 35 minutes) so that this cannot move a
//! session boundary.

use closeloop_e2e::worker::{Site, Worker};
use closeloop_e2e::{http, now_ms};
use proptest::prelude::*;
use serde_json::{json, Value};

const ORIGIN: &str = "https://interleave.example";
const MIN: i64 = 60_000;
/// Times within this are the same (the two sites' `received_at` differ by ms).
const TOLERANCE_MS: i64 = 5_000;

/// One generated event of a visitor.
#[derive(Debug, Clone)]
struct Ev {
    /// Minutes after the visitor's first event.
    at_min: i64,
    /// 0 page view, 1 page view from Google, 2 page view with UTM tags, 3 track,
    /// 4 form with email.
    kind: u8,
    page: u8,
}

/// One case: per visitor, its events (time order) split into batches; the order the
/// batches are sent in; after which of them site A is flushed.
#[derive(Debug, Clone)]
struct Case {
    visitors: Vec<Vec<Ev>>,
    /// (visitor, indices of its events) in sending order.
    batches: Vec<(usize, Vec<usize>)>,
    flush_after: Vec<bool>,
}

/// Gaps that are never close to the 30-minute timeout.
fn gap() -> impl Strategy<Value = i64> {
    prop_oneof![3 => 1i64..25, 1 => 35i64..400]
}

fn visitor() -> impl Strategy<Value = Vec<Ev>> {
    prop::collection::vec((gap(), 0u8..5, 0u8..4), 3..9).prop_map(|raw| {
        let mut t = 0;
        raw.into_iter()
            .enumerate()
            .map(|(i, (g, kind, page))| {
                if i > 0 {
                    t += g;
                }
                // the first event is a page view (an arrival)
                let kind = if i == 0 { kind % 3 } else { kind };
                Ev {
                    at_min: t,
                    kind,
                    page,
                }
            })
            .collect()
    })
}

fn case() -> impl Strategy<Value = Case> {
    prop::collection::vec(visitor(), 2..4)
        .prop_flat_map(|visitors| {
            // each event goes to one of up to 3 batches of its visitor (batches are not
            // contiguous in time: later batches carry earlier events, as a tracker
            // coming back online does)
            let assign: Vec<_> = visitors
                .iter()
                .map(|v| prop::collection::vec(0usize..3, v.len()))
                .collect();
            (
                Just(visitors),
                assign,
                any::<u64>(),
                prop::collection::vec(any::<bool>(), 12),
            )
        })
        .prop_map(|(visitors, assign, order_seed, flushes)| {
            let mut batches: Vec<(usize, Vec<usize>)> = Vec::new();
            for (v, a) in assign.iter().enumerate() {
                for b in 0..3 {
                    let ids: Vec<usize> = (0..a.len()).filter(|i| a[*i] == b).collect();
                    if !ids.is_empty() {
                        batches.push((v, ids));
                    }
                }
            }
            // a seeded shuffle of the sending order
            let mut s = order_seed | 1;
            for i in (1..batches.len()).rev() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                batches.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let flush_after = (0..batches.len())
                .map(|i| flushes[i % flushes.len()])
                .collect();
            Case {
                visitors,
                batches,
                flush_after,
            }
        })
}

fn event_json(case_id: &str, v: usize, i: usize, e: &Ev, base: i64) -> Value {
    let url = format!("{ORIGIN}/p{}", e.page);
    let id = format!("ev-{case_id}-v{v}-{i:02}");
    let at = base + e.at_min * MIN;
    match e.kind {
        0 => json!({"id": id, "type": "pageview", "created_at": at, "url": url,
                    "referrer": format!("{ORIGIN}/p0")}),
        1 => json!({"id": id, "type": "pageview", "created_at": at, "url": url,
                    "referrer": "https://www.google.com/"}),
        2 => json!({"id": id, "type": "pageview", "created_at": at,
                    "url": format!("{url}?utm_source=news&utm_medium=email&utm_campaign=c{}", e.page)}),
        3 => json!({"id": id, "type": "track", "name": "click", "created_at": at, "url": url}),
        _ => json!({"id": id, "type": "form_submit", "created_at": at, "url": url,
                    "form": {"id": "signup", "fields": ["email"],
                             "values": {"email": format!("v{v}-{case_id}@example.com")}}}),
    }
}

fn send(w: &Worker, site: &Site, visitor: &str, events: &[Value], sent_at: i64) {
    let body =
        json!({"site_id": site.id, "visitor_id": visitor, "sent_at": sent_at, "events": events});
    let a = w.collect(ORIGIN, &body.to_string()).expect("collect");
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        a.json["accepted"].as_u64().unwrap_or(0) as usize
            + a.json["duplicates"].as_u64().unwrap_or(0) as usize,
        events.len(),
        "{}",
        a.text
    );
}

/// Every column of the site's sessions, the site id left out, in session id order.
fn sessions(w: &Worker, site: &Site) -> Vec<Value> {
    let rows = w
        .query(&format!(
            "SELECT * FROM sessions WHERE site_id = '{}' ORDER BY session_id",
            site.id
        ))
        .expect("sessions");
    rows.into_iter()
        .map(|mut r| {
            if let Some(o) = r.as_object_mut() {
                o.remove("site_id");
            }
            r
        })
        .collect()
}

fn event_sessions(w: &Worker, site: &Site) -> Vec<Value> {
    w.query(&format!(
        "SELECT event_id, session_id, entrance, session_bot FROM events WHERE site_id = '{}' ORDER BY event_id",
        site.id
    ))
    .expect("events")
}

/// Equal, but integers that look like times (ms since 2020) may differ by the tolerance,
/// and the site's own id is ignored.
fn same(a: &Value, b: &Value, a_site: &str, b_site: &str, at: &str) -> Result<(), String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                same(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    a_site,
                    b_site,
                    &format!("{at}.{k}"),
                )?;
            }
            Ok(())
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Err(format!("{at}: {} vs {} items", x.len(), y.len()));
            }
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                same(p, q, a_site, b_site, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(p), Some(q)) if p > 1_577_836_800_000 && q > 1_577_836_800_000 => {
                if (p - q).abs() <= TOLERANCE_MS {
                    Ok(())
                } else {
                    Err(format!("{at}: time {p} vs {q}"))
                }
            }
            _ => match (x.as_f64(), y.as_f64()) {
                (Some(p), Some(q)) if (p - q).abs() <= 1e-9 * p.abs().max(1.0) => Ok(()),
                _ => Err(format!("{at}: {x} vs {y}")),
            },
        },
        (Value::String(x), Value::String(y))
            if x.replace(a_site, "S") == y.replace(b_site, "S") =>
        {
            Ok(())
        }
        _ if a == b => Ok(()),
        _ => Err(format!("{at}: {a} vs {b}")),
    }
}

fn report(w: &Worker, site: &Site, path: &str, from: i64, to: i64) -> Value {
    let sep = if path.contains('?') { '&' } else { '?' };
    let url = w.url(&format!(
        "/v1/sites/{}/{path}{sep}from={}&to={}",
        site.id,
        closeloop_core::time::format_rfc3339(from),
        closeloop_core::time::format_rfc3339(to)
    ));
    let a = http::get(&url, Some(&site.read_key)).expect("report");
    assert_eq!(a.status, 200, "{path}: {}", a.text);
    let mut v = a.json;
    if let Some(o) = v.as_object_mut() {
        o.remove("site");
        o.remove("query");
    }
    v
}

fn run_case(w: &Worker, n: u64, case: &Case) -> Result<(), String> {
    let case_id = format!("{}x{n}", now_ms() % 1_000_000_000);
    let a = w.create_site(&[ORIGIN]).map_err(|e| e.to_string())?;
    let b = w.create_site(&[ORIGIN]).map_err(|e| e.to_string())?;
    // the visitors' first events two days ago (within the 7-day age limit, mid-day)
    let base = (now_ms() / 86_400_000 - 2) * 86_400_000 + 9 * 3_600_000;
    for (k, (v, ids)) in case.batches.iter().enumerate() {
        let events: Vec<Value> = ids
            .iter()
            .map(|i| event_json(&case_id, *v, *i, &case.visitors[*v][*i], base))
            .collect();
        let visitor = format!("v{v}-{case_id}");
        let sent_at = now_ms();
        send(w, &a, &visitor, &events, sent_at);
        send(w, &b, &visitor, &events, sent_at);
        if case.flush_after[k] {
            w.flush_sessions(Some(&a.id)).map_err(|e| e.to_string())?;
            // the interleaving is real: A has sessions built from part of its events,
            // B none yet
            let count = |s: &Site| {
                w.count(&format!(
                    "SELECT COUNT(*) FROM sessions WHERE site_id = '{}'",
                    s.id
                ))
            };
            let (na, nb) = (count(&a)?, count(&b)?);
            if na == 0 || nb != 0 {
                return Err(format!("after a flush of A: {na} sessions in A, {nb} in B"));
            }
        }
    }
    w.flush_sessions(Some(&a.id)).map_err(|e| e.to_string())?;
    w.flush_sessions(Some(&b.id)).map_err(|e| e.to_string())?;
    same(
        &Value::Array(sessions(w, &a)),
        &Value::Array(sessions(w, &b)),
        &a.id,
        &b.id,
        "sessions",
    )?;
    same(
        &Value::Array(event_sessions(w, &a)),
        &Value::Array(event_sessions(w, &b)),
        &a.id,
        &b.id,
        "events",
    )?;
    let (from, to) = (base - 86_400_000, now_ms() + 86_400_000);
    for path in [
        "reports/sources?group_by=channel&model=first_touch",
        "reports/sources?group_by=source&model=linear",
        "reports/sources?group_by=campaign&model=position_based",
        "reports/sources?group_by=channel&model=data_driven&conversion=lead",
        "reports/pages",
        "reports/timeseries?granularity=day",
    ] {
        same(
            &report(w, &a, path, from, to),
            &report(w, &b, path, from, to),
            &a.id,
            &b.id,
            path,
        )?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 6,
        max_shrink_iters: 16,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Property: for any split of the visitors' events into batches, any sending order
    /// (late events included) and any flush points, site A (flushed between batches)
    /// ends with the same sessions, event-to-session links and reports as site B
    /// (flushed once at the end).
    #[test]
    fn flushes_between_batches_change_nothing(case in case()) {
        let w = Worker::shared().expect("worker");
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let flushes = case.flush_after.iter().filter(|f| **f).count();
        prop_assume!(flushes > 0);
        if let Err(e) = run_case(w, n, &case) {
            prop_assert!(false, "{e}\n{case:?}");
        }
    }
}
