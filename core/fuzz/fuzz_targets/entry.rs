//! Fuzz target `entry`: arbitrary landing URLs and referrers (the bytes split at the
//! first newline) through `entry::parse_entry`, `channel::classify`,
//! `entry::referrer_host` and `entry::QueryTags::parse` — what the edge runs on every
//! page load a browser sends.
//!
//! Invariants besides "never panics": a touch always has a source and a medium and
//! classifies the same way twice; a referrer host is ASCII lower case with no scheme or path
//! left.
#![no_main]

use closeloop_core::channel::{classify, Channel};
use closeloop_core::entry::{parse_entry, percent_decode, referrer_host, QueryTags};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (landing, referrer) = match text.split_once('\n') {
        Some((l, r)) => (l, Some(r)),
        None => (text.as_ref(), None),
    };
    let entry = parse_entry(landing, referrer, &["example.com", "www.example.com"]);
    let touch = classify(&entry);
    assert!(!touch.source.is_empty() && !touch.medium.is_empty(), "{touch:?}");
    assert_eq!(Channel::from_name(touch.channel.as_str()), Some(touch.channel));
    // the same page load classifies the same way (no hidden state)
    assert_eq!(classify(&entry), touch);
    if let Some(r) = referrer {
        if let Some(host) = referrer_host(r) {
            assert!(!host.is_empty());
            assert_eq!(host, host.to_ascii_lowercase(), "{r:?}");
            assert!(!host.contains('/') && !host.contains("://"), "{host:?}");
        }
    }
    let _ = QueryTags::parse(landing);
    let _ = percent_decode(landing);
});
