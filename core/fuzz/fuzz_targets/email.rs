//! Fuzz target `email`: arbitrary text through `identity::normalize_email` (form values,
//! `identify` calls, CRM rows).
//!
//! Invariants besides "never panics": normalising is idempotent; a normalised email has
//! exactly one `@` with text on both sides, a dotted domain, no whitespace or control
//! character, and is its own lower case.
#![no_main]

use closeloop_core::identity::normalize_email;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Some(email) = normalize_email(&text) else {
        return;
    };
    assert_eq!(normalize_email(&email).as_deref(), Some(email.as_str()), "not idempotent");
    assert_eq!(email, email.to_lowercase());
    assert_eq!(email.matches('@').count(), 1, "{email:?}");
    let (local, domain) = email.split_once('@').expect("one @");
    assert!(!local.is_empty() && domain.contains('.'), "{email:?}");
    assert!(!email.chars().any(|c| c.is_whitespace() || c.is_control()));
});
