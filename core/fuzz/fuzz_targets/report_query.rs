//! Fuzz target `report_query`: arbitrary bytes as the query string of the report
//! endpoints, decoded as the edge decodes it (`application/x-www-form-urlencoded`, the
//! `url` crate's `query_pairs`), through `report::Query::from_pairs`.
//!
//! Invariants besides "never panics": an accepted query has a lookback of 1–3650 days,
//! a positive half-life and `from <= to`; a refusal names a parameter and says why.
#![no_main]

use closeloop_core::report::Query;
use libfuzzer_sys::fuzz_target;

/// The edge's clock for every run: 2026-11-24T12:00:00Z.
const NOW: i64 = 1_795_521_600_000;

fuzz_target!(|data: &[u8]| {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(data)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    match Query::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), NOW) {
        Ok(q) => {
            assert!((1..=3650).contains(&q.lookback_days), "{q:?}");
            assert!(q.half_life_days > 0.0 && q.half_life_days.is_finite(), "{q:?}");
            assert!(q.from <= q.to, "{q:?}");
        }
        Err(e) => assert!(!e.message.is_empty()),
    }
});
