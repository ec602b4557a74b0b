//! Runs the channel cases of `tests/cases/channels.json` (the referer-parser style spec)
//! and reports every failing case at once.
//!
//! Each case: `spec` (what it pins), `url` (landing URL), `referrer` (`""` = none),
//! optional `site_hosts` (default: none; the landing host is always the site), and the
//! expected `channel`, `source`, `medium` and optionally `campaign`. The expected values
//! were written by hand from the GA4 rules (`core/data/ga4-channel-rules.json`) and the
//! source lists, never produced by the code under test.

use closeloop_core::channel::{classify, Channel};
use closeloop_core::entry::parse_entry;
use serde_json::Value;

fn field<'a>(case: &'a Value, name: &str) -> &'a str {
    case.get(name).and_then(Value::as_str).unwrap_or_default()
}

#[test]
fn channel_cases() {
    let text = include_str!("cases/channels.json");
    let cases: Vec<Value> = serde_json::from_str(text).expect("channels.json is a JSON array");
    assert!(
        cases.len() >= 200,
        "want at least 200 cases, have {}",
        cases.len()
    );

    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let spec = field(case, "spec");
        let referrer = field(case, "referrer");
        let site_hosts: Vec<&str> = case
            .get("site_hosts")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let entry = parse_entry(
            field(case, "url"),
            Some(referrer).filter(|r| !r.is_empty()),
            &site_hosts,
        );
        let touch = classify(&entry);

        let Some(want_channel) = Channel::from_name(field(case, "channel")) else {
            failures.push(format!(
                "#{i} {spec}: unknown channel name {:?} in the case",
                field(case, "channel")
            ));
            continue;
        };
        let mut diffs = Vec::new();
        if touch.channel != want_channel {
            diffs.push(format!(
                "channel {:?} != expected {:?}",
                touch.channel.as_str(),
                want_channel.as_str()
            ));
        }
        if touch.source != field(case, "source") {
            diffs.push(format!(
                "source {:?} != expected {:?}",
                touch.source,
                field(case, "source")
            ));
        }
        if touch.medium != field(case, "medium") {
            diffs.push(format!(
                "medium {:?} != expected {:?}",
                touch.medium,
                field(case, "medium")
            ));
        }
        if let Some(want) = case.get("campaign").and_then(Value::as_str) {
            if touch.campaign.as_deref() != Some(want) {
                diffs.push(format!(
                    "campaign {:?} != expected {want:?}",
                    touch.campaign
                ));
            }
        }
        if !diffs.is_empty() {
            failures.push(format!(
                "#{i} {spec}\n    url={:?} referrer={referrer:?}\n    {}",
                field(case, "url"),
                diffs.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} channel cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_channel_has_a_case() {
    let cases: Vec<Value> =
        serde_json::from_str(include_str!("cases/channels.json")).expect("JSON array");
    let missing: Vec<&str> = Channel::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|name| !cases.iter().any(|c| field(c, "channel") == *name))
        .collect();
    assert!(missing.is_empty(), "channels without a case: {missing:?}");
}
