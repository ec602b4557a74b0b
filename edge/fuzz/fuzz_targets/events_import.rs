//! Fuzz target `events_import`: arbitrary bytes as the body of
//! `POST /v1/sites/{site}/events:import` — one batch, a JSON array of batches or JSON
//! lines — through the edge's own splitter (`api::events_import::batches`), each batch's
//! `context` (geo and user agent given as fields, `EventContext::enrichment`) and core's
//! validation in import mode, as the handler runs them before it stores anything.
//!
//! Invariants besides "never panics": a refused body is a 400 with a stable code; an
//! accepted body has 1 to `MAX_BATCHES` batches; every event of a readable batch is
//! accepted, rejected or a repeat exactly once.
#![no_main]

use closeloop_core::validate::{validate, ValidateOptions};
use closeloop_edge::api::events_import::{batches, EventContext, MAX_BATCHES};
use libfuzzer_sys::fuzz_target;

/// The edge's clock for every run: 2025-11-24T16:00:01Z.
const NOW: i64 = 1_764_000_001_000;

fuzz_target!(|data: &[u8]| {
    let list = match batches(data) {
        Err(e) => {
            assert_eq!(e.status, 400, "{e:?}");
            assert!(
                ["malformed_json", "empty_batch", "too_many_batches"].contains(&e.code),
                "{e:?}"
            );
            return;
        }
        Ok(list) => list,
    };
    assert!((1..=MAX_BATCHES).contains(&list.len()));
    for mut batch in list {
        if let Some(ctx) = batch.as_object_mut().and_then(|o| o.remove("context")) {
            if let Ok(ctx) = serde_json::from_value::<EventContext>(ctx) {
                let (geo, agent) = ctx.enrichment();
                assert!(geo.latitude.is_none_or(f64::is_finite));
                assert!(!agent.device_type.is_empty());
            }
        }
        let Ok(bytes) = serde_json::to_vec(&batch) else {
            continue;
        };
        if let Ok(v) = validate(&bytes, &ValidateOptions::import(NOW)) {
            let n = batch["events"].as_array().map_or(0, Vec::len);
            assert_eq!(v.event_count, n);
            let answered = v.events.len() + v.rejected.len() + v.duplicates_in_batch.len();
            assert_eq!(answered, n, "every event answered once");
        }
    }
});
