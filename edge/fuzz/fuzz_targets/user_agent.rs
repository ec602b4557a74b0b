//! Fuzz target `user_agent`: arbitrary text as a `User-Agent` header through the edge's
//! parser (`enrich::agent`: woothee's data set and the isbot list), and arbitrary JSON
//! as Cloudflare's `request.cf` through `enrich::geo_from_cf` and `enrich::cf_says_bot`
//! (the bytes split at the first newline: user agent, then `cf`).
//!
//! Invariants besides "never panics": the device type is one of those the reports know
//! (`closeloop_core::agent::DEVICE_TYPES`: a PlayStation is a `tv`, found by this target
//! after issue 16 added the TV and console classes); a bot's device type is `bot`; the same user agent parses the same way twice.
#![no_main]

use closeloop_edge::enrich;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (ua, cf) = text.split_once('\n').unwrap_or((text.as_ref(), ""));
    let agent = enrich::agent(ua);
    assert!(closeloop_core::agent::DEVICE_TYPES.contains(&agent.device_type.as_str()), "{agent:?}");
    if agent.is_bot {
        assert_eq!(agent.device_type, "bot", "{agent:?}");
    }
    assert_eq!(enrich::agent(ua), agent);
    if let Ok(cf) = serde_json::from_str::<serde_json::Value>(cf) {
        let geo = enrich::geo_from_cf(&cf);
        assert!(geo.latitude.is_none_or(f64::is_finite));
        let _ = enrich::cf_says_bot(&cf);
    }
});
