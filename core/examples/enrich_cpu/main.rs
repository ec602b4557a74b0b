//! CPU of enrichment before and after issue 16, side by side in one process (release):
//! `cargo run --release -p closeloop-core --example enrich_cpu -- FILE` with one user
//! agent per line; prints JSON. Run by `cargo xtask bench --only enrich`.

use closeloop_core::agent::memo::{key as memo_key, Memo};
use closeloop_core::agent::{self, ClientHints};
use std::collections::HashMap;
use std::hint::black_box;
use std::rc::Rc;
use std::time::Instant;

mod before {
    include!("before.rs");
}

fn per_call(uas: &[&str], f: &mut dyn FnMut(&str)) -> f64 {
    let t = Instant::now();
    for u in uas {
        f(u);
    }
    t.elapsed().as_nanos() as f64 / uas.len().max(1) as f64
}

/// The edge's hint headers when a request sends none.
const NO_HINTS: [Option<String>; 6] = [None, None, None, None, None, None];

/// The median of the rounds' after / before ratios: each round measures both one
/// after the other, so a load that comes and goes on a shared machine moves both.
fn paired(before: &[f64], after: &[f64]) -> f64 {
    let mut r: Vec<f64> = before.iter().zip(after).map(|(b, a)| a / b).collect();
    r.sort_by(f64::total_cmp);
    r.get(r.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The fastest round: on a shared machine the others are the same work plus noise.
fn best(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn main() {
    let path = std::env::args().nth(1).expect("a file of user agents");
    let text = std::fs::read_to_string(&path).expect("readable");
    let uas: Vec<&str> = text.lines().collect();

    let t = Instant::now();
    before::warm();
    let start_before = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    agent::warm();
    let start_after = t.elapsed().as_secs_f64() * 1e3;

    let (mut ub, mut ua) = (Vec::new(), Vec::new());
    for _ in 0..9 {
        ub.push(per_call(&uas, &mut |u| {
            black_box(before::agent_full(u));
        }));
        ua.push(per_call(&uas, &mut |u| {
            black_box(agent::parse(u, &ClientHints::default()));
        }));
    }

    // Events through the edge's memo (512 user agents per isolate, emptied when full):
    // 20 browser builds send 90 % of the events.
    let mut events: Vec<&str> = Vec::new();
    for (i, u) in uas.iter().enumerate() {
        for _ in 0..9 {
            events.push(uas[i % 20.min(uas.len())]);
        }
        events.push(u);
    }
    let (mut mb, mut ma) = (Vec::new(), Vec::new());
    for _ in 0..9 {
        let mut m: HashMap<String, before::OldAgent> = HashMap::new();
        mb.push(per_call(&events, &mut |u| {
            if let Some(v) = m.get(u) {
                black_box(v.clone());
                return;
            }
            if m.len() >= 512 {
                m.clear();
            }
            m.insert(u.to_string(), before::agent_full(u));
        }));
        // as `edge/src/enrich.rs` remembers them now: by a hash of the user agent and its
        // hints, checked against the entry; a hit shares the answer (`Rc`), allocating
        // nothing
        let mut m: Memo<(String, Rc<agent::Agent>)> = Memo::default();
        ma.push(per_call(&events, &mut |u| {
            let key = memo_key(u, &NO_HINTS);
            if let Some((_, v)) = m.get(&key).filter(|(s, _)| s == u) {
                black_box(Rc::clone(v));
                return;
            }
            if m.len() >= 512 {
                m.clear();
            }
            let a = Rc::new(agent::parse(u, &ClientHints::default()));
            m.insert(key, (u.to_string(), Rc::clone(&a)));
            black_box(a);
        }));
    }
    println!(
        "{{\"uas\": {}, \"events\": {}, \"start_before_ms\": {start_before:.3}, \"start_after_ms\": {start_after:.3}, \
         \"uncached_before_ns\": {:.1}, \"uncached_after_ns\": {:.1}, \"memo_before_ns\": {:.1}, \"memo_after_ns\": {:.1}, \
         \"uncached_ratio\": {:.3}, \"memo_ratio\": {:.3}}}",
        uas.len(),
        events.len(),
        best(&ub),
        best(&ua),
        best(&mb),
        best(&ma),
        paired(&ub, &ua),
        paired(&mb, &ma)
    );
}
