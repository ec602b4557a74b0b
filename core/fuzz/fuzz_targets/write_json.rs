//! Fuzz target `write_json`: arbitrary bytes as the JSON body of `POST .../conversions`
//! and `POST .../spend` through `import::conversion_from_json` and
//! `import::spend_from_json` (the same rules as a CSV row).
//!
//! Invariants besides "never panics": what is accepted has a three-letter upper-case
//! currency, conversions an identity, spend `first_day <= last_day`; a refusal has a code.
#![no_main]

use closeloop_core::import::{conversion_from_json, spend_from_json, ImportOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let opts = ImportOptions::default();
    match conversion_from_json(&value, &opts) {
        Ok(c) => {
            assert!(c.currency.len() == 3 && c.currency.bytes().all(|b| b.is_ascii_uppercase()));
            assert!(c.email.is_some() || c.lead_id.is_some(), "{c:?}");
        }
        Err(e) => assert!(!e.code.is_empty()),
    }
    match spend_from_json(&value, &opts) {
        Ok(s) => {
            assert!(s.currency.len() == 3 && s.currency.bytes().all(|b| b.is_ascii_uppercase()));
            assert!(s.first_day <= s.last_day, "{s:?}");
        }
        Err(e) => assert!(!e.code.is_empty()),
    }
});
