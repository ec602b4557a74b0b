//! The quick fault run (issue 13): a few hundred events from real Chromium visits,
//! through the fault-injecting proxy (`closeloop_e2e::proxy`), against a worker of its
//! own that is stopped and started again once; every event the pages created must be
//! stored exactly once. `cargo xtask soak` runs the same with 10,000+ events.
//!
//! The seed is random each run and printed; replay one with
//! `CLOSELOOP_FAULT_SEED=<seed> cargo test -p closeloop-e2e --test faults`.

use closeloop_e2e::faults::{self, Options};

/// Scenario: three visitors at a time browse the demo site (SPA and full loads, forms,
/// reloads, offline spells, tabs closed mid-send) while the proxy drops, delays, stalls,
/// refuses (500/503/429), cuts after the write and duplicates requests by its seeded
/// plan, and the worker is taken down and up once. Expected (by the contract, not by
/// the code): every id in the tracker's log stored exactly once, nothing else stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_created_event_is_stored_exactly_once_whatever_the_network_does() {
    let seed = std::env::var("CLOSELOOP_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(faults::random_seed);
    println!("fault run seed {seed}");
    let outcome = faults::run(&Options::quick(seed))
        .await
        .unwrap_or_else(|e| panic!("the fault run did not run (seed {seed}): {e}"));
    println!("{}", outcome.table());
    assert!(
        outcome.created >= 100,
        "seed {seed}: only {} events were created\n{}",
        outcome.created,
        outcome.examples.join("\n")
    );
    assert_eq!(
        outcome.restarts, 1,
        "seed {seed}: the worker was not restarted"
    );
    // the run met every fault (stalls are rare by design: 2 % of the requests)
    let unmet: Vec<&str> = outcome
        .by_fault
        .iter()
        .filter(|r| r.requests.is_some() && r.created == 0)
        .map(|r| r.name.as_str())
        .filter(|n| !n.starts_with("stalled"))
        .collect();
    assert!(
        outcome.ok(),
        "seed {seed}: not exactly once (replay: CLOSELOOP_FAULT_SEED={seed}):\n{}\n{}",
        outcome.table(),
        outcome.examples.join("\n")
    );
    assert!(
        unmet.is_empty(),
        "seed {seed}: no event met {unmet:?}:\n{}",
        outcome.table()
    );
}
