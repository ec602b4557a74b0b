//! Fuzz target `batch`: arbitrary bytes through `validate::validate` in both modes.
//!
//! Invariants checked (besides "never panics"):
//! - a batch error always has a batch-level code, an event rejection never does;
//! - when the envelope is readable, every event of `events` ends up in exactly one of
//!   accepted / rejected / duplicates, with indices `0..n` each used once, and `n` is
//!   the length of the body's own `events` list;
//! - accepted events have valid ids (client-made or `fp_` fingerprints) that are
//!   unique in the batch, and `derived_ts` follows the mode's rule;
//! - `results()` answers every event once, in order.
#![no_main]

use closeloop_core::dedup;
use closeloop_core::validate::{valid_id, validate, Mode, ValidateOptions};
use closeloop_core::wire::{self, Status};
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;

/// The edge's clock for every run: 2025-11-24T16:00:01Z, near the seed corpus' times.
const RECEIVED_AT: i64 = 1_764_000_001_000;

fuzz_target!(|data: &[u8]| {
    for options in [
        ValidateOptions::collect(RECEIVED_AT),
        ValidateOptions::import(RECEIVED_AT),
    ] {
        check(data, &options);
    }
});

fn check(data: &[u8], options: &ValidateOptions) {
    let v = match validate(data, options) {
        Err(e) => {
            assert!(e.code.is_batch_level(), "event code at batch level: {e}");
            assert!(!e.message.is_empty());
            return;
        }
        Ok(v) => v,
    };
    // The envelope parsed, so the body is a JSON object with an `events` list.
    let root: serde_json::Value = serde_json::from_slice(data).expect("validated body is JSON");
    let n = root
        .get("events")
        .and_then(|e| e.as_array())
        .map(|a| a.len())
        .expect("validated body has an events list");
    assert_eq!(v.event_count, n);
    assert!((1..=wire::MAX_EVENTS_PER_BATCH).contains(&n));
    assert_eq!(
        v.events.len() + v.rejected.len() + v.duplicates_in_batch.len(),
        n,
        "every event is accepted, rejected or a duplicate"
    );
    let mut indices = HashSet::new();
    let mut ids = HashSet::new();
    for e in &v.events {
        assert!(indices.insert(e.index));
        assert!(ids.insert(e.event.id.clone()), "accepted ids are unique");
        assert!(valid_id(&e.event.id), "accepted id {:?}", e.event.id);
        if e.id_from_content {
            assert!(
                dedup::is_fingerprint(&e.event.id),
                "fingerprint {:?}",
                e.event.id
            );
        }
        match options.mode {
            Mode::Collect => assert_eq!(
                e.derived_ts,
                wire::derived_ts(e.event.created_at, v.sent_at, options.received_at)
            ),
            Mode::Import => assert_eq!(e.derived_ts, e.event.created_at),
        }
    }
    for r in &v.rejected {
        assert!(indices.insert(r.index));
        assert!(
            !r.code.is_batch_level(),
            "batch code on an event: {}",
            r.code
        );
        assert_eq!(r.error.code, r.code.as_str());
        assert!(r.id.len() <= wire::MAX_FIELD_LEN);
    }
    for d in &v.duplicates_in_batch {
        assert!(indices.insert(d.index));
        assert!(d.first_index < d.index);
        assert!(ids.contains(&d.id));
    }
    assert!(indices.iter().all(|&i| i < n));

    let fresh = v.results(&HashSet::new());
    assert_eq!(fresh.len(), n);
    let all_present: HashSet<String> = ids;
    let again = v.results(&all_present);
    assert_eq!(again.len(), n);
    assert!(
        again.iter().all(|r| r.status != Status::Accepted),
        "a resend is never accepted"
    );
    let resp = v.response(&HashSet::new(), None);
    assert_eq!(
        (resp.accepted + resp.duplicates + resp.rejected) as usize,
        n
    );
    assert_eq!(resp.accepted as usize, v.events.len());
}
