//! Data-driven tests of `validate`: every case in `tests/cases/validate/*.json` is a
//! written scenario (a body, the edge's `received_at`, the mode) with the expected
//! outcome worked out by hand: a batch error code, or each event's status and code.
//!
//! Case file format: `{"cases": [case, ...]}`, a case being
//!
//! ```json
//! {
//!   "name": "what it pins",
//!   "scenario": "the story, with the arithmetic behind the expected values",
//!   "mode": "collect" | "import",            // default collect
//!   "received_at": 1764000001000,
//!   "body": { ... }  |  "raw_body": "text",  // raw_body is sent byte for byte
//!   "raw_repeat": 3,                         // optional: raw_body repeated
//!   "already_present": ["id", ...],          // optional: ids the store holds
//!   "site_rules": {"hosts": [...], "identity_secret": "..."},  // optional: applied
//!                                            // with `apply_site_rules` after validation
//!   "expect": {"error": "code"}
//!         | {"results": [{"status": "accepted", "id"?, "code"?, "derived_ts"?,
//!                         "redacted"?, "kept_values"?, "email"?, "verified"?}, ...],
//!            "clock_skewed"?: bool}
//!         | {"all": "accepted", "count": 100}
//! }
//! ```
//!
//! To keep big boundary cases readable, bodies may use three generators (expanded
//! by the harness before sending, never computing an expected value):
//! - in any string, `{rep:N:TEXT}` is TEXT repeated N times;
//! - `{"$list": {"count": N, "item": X}}` is a list of N copies of X, where in X's
//!   strings `{i}` is the copy's index and `{i8}` the index zero-padded to 8 digits;
//! - `{"$map": {"count": N, "key": "k{i}", "value": "v"}}` is an object of N entries.

use closeloop_core::validate::{validate, ErrorCode, Mode, SiteRules, ValidateOptions, Validated};
use closeloop_core::wire::Status;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashSet};
use std::path::Path;

fn expand_str(s: &str, i: Option<usize>) -> String {
    let mut s = s.to_string();
    if let Some(i) = i {
        s = s
            .replace("{i8}", &format!("{i:08}"))
            .replace("{i}", &i.to_string());
    }
    while let Some(start) = s.find("{rep:") {
        let rest = &s[start + 5..];
        let colon = rest.find(':').expect("{rep:N:TEXT}");
        let n: usize = rest[..colon].parse().expect("{rep:N:...} count");
        let close = rest[colon + 1..].find('}').expect("{rep:..} closing brace");
        let text = &rest[colon + 1..colon + 1 + close];
        let end = start + 5 + colon + 1 + close + 1;
        s = format!("{}{}{}", &s[..start], text.repeat(n), &s[end..]);
    }
    s
}

fn expand(v: &Value, i: Option<usize>) -> Value {
    match v {
        Value::String(s) => Value::String(expand_str(s, i)),
        Value::Array(a) => Value::Array(a.iter().map(|x| expand(x, i)).collect()),
        Value::Object(o) => {
            if let Some(spec) = o.get("$list") {
                let n = spec["count"].as_u64().expect("$list count") as usize;
                return Value::Array((0..n).map(|k| expand(&spec["item"], Some(k))).collect());
            }
            if let Some(spec) = o.get("$map") {
                let n = spec["count"].as_u64().expect("$map count") as usize;
                let key = spec["key"].as_str().expect("$map key");
                let mut m = Map::new();
                for k in 0..n {
                    m.insert(expand_str(key, Some(k)), expand(&spec["value"], Some(k)));
                }
                return Value::Object(m);
            }
            Value::Object(
                o.iter()
                    .map(|(k, x)| (expand_str(k, i), expand(x, i)))
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

fn body_of(case: &Value) -> Vec<u8> {
    if let Some(raw) = case.get("raw_body") {
        let raw = expand_str(raw.as_str().expect("raw_body is a string"), None);
        let times = case.get("raw_repeat").and_then(Value::as_u64).unwrap_or(1) as usize;
        return raw.repeat(times).into_bytes();
    }
    serde_json::to_vec(&expand(&case["body"], None)).expect("body serialises")
}

fn options_of(case: &Value) -> ValidateOptions {
    let received_at = case["received_at"].as_i64().expect("received_at");
    match case
        .get("mode")
        .and_then(Value::as_str)
        .unwrap_or("collect")
    {
        "collect" => ValidateOptions::collect(received_at),
        "import" => ValidateOptions::import(received_at),
        other => panic!("unknown mode {other}"),
    }
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Accepted => "accepted",
        Status::Duplicate => "duplicate",
        Status::Rejected => "rejected",
    }
}

/// Runs one case; returns the codes it exercised, or a description of the mismatch.
fn run_case(case: &Value) -> Result<Vec<String>, String> {
    let body = body_of(case);
    let options = options_of(case);
    let expect = &case["expect"];
    let outcome = validate(&body, &options);
    if let Some(code) = expect.get("error").and_then(Value::as_str) {
        return match outcome {
            Err(e) if e.code.as_str() == code => {
                if e.message.is_empty() {
                    return Err("empty message".into());
                }
                let body = serde_json::to_value(e.body()).map_err(|e| e.to_string())?;
                if body["error"]["code"] != code {
                    return Err(format!("error body {body}"));
                }
                Ok(vec![code.to_string()])
            }
            Err(e) => Err(format!("expected batch error {code}, got {e}")),
            Ok(v) => Err(format!(
                "expected batch error {code}, got Ok with {} events",
                v.event_count
            )),
        };
    }
    let mut v = outcome.map_err(|e| format!("unexpected batch error {e}"))?;
    if let Some(rules) = case.get("site_rules") {
        let hosts: Vec<String> = rules["hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.as_str().map(String::from))
            .collect();
        v.apply_site_rules(&SiteRules {
            hosts: &hosts,
            identity_secret: rules.get("identity_secret").and_then(Value::as_str),
        });
    }
    if let Some(skewed) = expect.get("clock_skewed").and_then(Value::as_bool) {
        if v.clock_skewed() != skewed {
            return Err(format!(
                "clock_skewed {} != expected {skewed} (skew {} ms)",
                v.clock_skewed(),
                v.clock_skew_ms
            ));
        }
    }
    let present: HashSet<String> = case
        .get("already_present")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let results = v.results(&present);
    if results.len() != v.event_count
        || v.events.len() + v.rejected.len() + v.duplicates_in_batch.len() != v.event_count
    {
        return Err("results do not cover every event exactly once".into());
    }
    let mut codes = Vec::new();
    if let Some(all) = expect.get("all").and_then(Value::as_str) {
        let count = expect["count"].as_u64().expect("count") as usize;
        if results.len() != count {
            return Err(format!("expected {count} results, got {}", results.len()));
        }
        if let Some(bad) = results.iter().find(|r| status_name(r.status) != all) {
            return Err(format!("expected all {all}, got {bad:?}"));
        }
        return Ok(codes);
    }
    let wanted = expect["results"].as_array().expect("expect.results");
    if wanted.len() != results.len() {
        return Err(format!(
            "expected {} results, got {}: {results:?}",
            wanted.len(),
            results.len()
        ));
    }
    for (i, (want, got)) in wanted.iter().zip(&results).enumerate() {
        let fail = |what: String| format!("event {i}: {what}; result {got:?}");
        if want["status"] != status_name(got.status) {
            return Err(fail(format!("expected status {}", want["status"])));
        }
        let got_code = got.error.as_ref().map(|e| e.code.as_str());
        match (want.get("code").and_then(Value::as_str), got_code) {
            (Some(w), Some(g)) if w == g => codes.push(w.to_string()),
            (None, None) => {}
            (w, g) => return Err(fail(format!("expected code {w:?}, got {g:?}"))),
        }
        if let Some(e) = &got.error {
            if e.message.is_empty() || e.message.len() > 400 {
                return Err(fail(format!("message of {} bytes", e.message.len())));
            }
        }
        if let Some(id) = want.get("id").and_then(Value::as_str) {
            if got.id != id {
                return Err(fail(format!("expected id {id}")));
            }
        }
        check_valid_event(&v, i, want).map_err(fail)?;
    }
    Ok(codes)
}

/// Checks the accepted event at `index` against the optional expectations.
fn check_valid_event(v: &Validated, index: usize, want: &Value) -> Result<(), String> {
    let keys = [
        "derived_ts",
        "redacted",
        "kept_values",
        "email",
        "id_prefix",
        "verified",
    ];
    if !keys.iter().any(|k| want.get(*k).is_some()) {
        return Ok(());
    }
    let e = v
        .events
        .iter()
        .find(|e| e.index == index)
        .ok_or("expected an accepted event")?;
    if let Some(ts) = want.get("derived_ts").and_then(Value::as_i64) {
        if e.derived_ts != ts {
            return Err(format!("derived_ts {} != expected {ts}", e.derived_ts));
        }
    }
    if let Some(prefix) = want.get("id_prefix").and_then(Value::as_str) {
        if !e.event.id.starts_with(prefix) || !e.id_from_content {
            return Err(format!("id {} does not start with {prefix}", e.event.id));
        }
    }
    if let Some(r) = want.get("redacted") {
        let want: BTreeSet<&str> = r
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let got: BTreeSet<&str> = e.redacted.iter().map(String::as_str).collect();
        if want != got {
            return Err(format!("redacted {got:?} != expected {want:?}"));
        }
    }
    let stored = serde_json::to_value(&e.event).map_err(|e| e.to_string())?;
    if let Some(kept) = want.get("kept_values") {
        let values = stored
            .get("form")
            .and_then(|f| f.get("values"))
            .or_else(|| stored.get("traits"))
            .or_else(|| stored.get("props"))
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        if &values != kept {
            return Err(format!("kept values {values} != expected {kept}"));
        }
    }
    if let Some(verified) = want.get("verified").and_then(Value::as_bool) {
        if e.verified != verified {
            return Err(format!("verified {} != expected {verified}", e.verified));
        }
    }
    if stored
        .get("traits")
        .is_some_and(|t| t.get("user_hash").is_some())
    {
        return Err("user_hash left in the stored traits".into());
    }
    if let Some(email) = want.get("email") {
        if stored.get("email") != Some(email) {
            return Err(format!("stored email {:?} != {email}", stored.get("email")));
        }
    }
    Ok(())
}

#[test]
fn validate_cases_from_data_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/validate");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("cases dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    let mut seen_codes = BTreeSet::new();
    let mut count = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read case file");
        let doc: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for case in doc["cases"].as_array().expect("cases list") {
            count += 1;
            let name = case["name"].as_str().unwrap_or("?");
            assert!(
                case.get("scenario").is_some(),
                "{name}: every case explains its scenario"
            );
            match run_case(case) {
                Ok(codes) => seen_codes.extend(codes),
                Err(e) => failures.push(format!(
                    "{} / {name}: {e}",
                    file.file_name().unwrap_or_default().to_string_lossy()
                )),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every error code is pinned by at least one case.
    let missing: Vec<&str> = ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !seen_codes.contains(*c))
        .collect();
    assert!(missing.is_empty(), "codes with no case: {missing:?}");
}

#[test]
fn resend_of_an_accepted_batch_is_all_duplicates() {
    // Scenario: the tracker sends the same two events again (its first POST timed
    // out after the edge stored them). The store reports both ids present.
    let body = br#"{"site_id":"demo","visitor_id":"visitor-0001","sent_at":1764000000500,
      "events":[{"id":"ev-00000001","type":"pageview","created_at":1764000000000,"url":"https://example.com/"},
                {"id":"ev-00000002","type":"track","created_at":1764000000100,"url":"https://example.com/","name":"x"}]}"#;
    let v = validate(body, &ValidateOptions::collect(1_764_000_001_000)).expect("readable");
    let present: HashSet<String> = ["ev-00000001", "ev-00000002"]
        .into_iter()
        .map(String::from)
        .collect();
    let resp = v.response(&present, None);
    assert_eq!((resp.accepted, resp.duplicates, resp.rejected), (0, 2, 0));
    assert_eq!(v.ids(), vec!["ev-00000001", "ev-00000002"]);
    assert_eq!(v.options.mode, Mode::Collect);
}

#[test]
fn every_code_has_a_distinct_snake_case_string() {
    let all: BTreeSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(all.len(), ErrorCode::ALL.len());
    for c in &all {
        assert!(
            c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{c}"
        );
    }
    assert_eq!(ErrorCode::BodyTooLarge.http_status(), 413);
    assert_eq!(ErrorCode::InvalidBatch.http_status(), 400);
}

/// The fingerprint keys below were computed by an independent implementation of
/// the encoding documented in `closeloop_core::dedup` (Python's hashlib), not by
/// this crate:
///
/// ```python
/// import hashlib, struct
/// h = hashlib.sha256()
/// def name(n): h.update(n.encode() + b"\0")
/// def raw(b): h.update(struct.pack("<Q", len(b)) + b)
/// def s(n, v): name(n); raw(v.encode())
/// s("version", "v1"); s("site_id", "demo"); s("visitor_id", "visitor-0001")
/// s("type", "track"); s("created_at", "1764000000000")
/// s("url", "https://example.com/"); s("referrer", ""); s("name", "invoice_paid")
/// name("props"); h.update(struct.pack("<Q", 2))
/// raw(b"plan"); raw(b"pro"); raw(b"seats"); raw(b"5")
/// print("fp_" + h.hexdigest()[:32])
/// ```
///
/// and likewise for the form (fields `form.id`, `form.name` (absent → ""),
/// `form.action`, `form.fields` as a counted list, `form.values` sorted by key).
#[test]
fn fingerprint_matches_an_independent_implementation_of_the_documented_encoding() {
    use closeloop_core::dedup::fingerprint;
    use closeloop_core::wire::{Event, EventKind, FormSubmit};

    // Through the validator: a server event with no id (and a null referrer, which
    // hashes as "").
    let body = br#"{"site_id":"demo","visitor_id":"visitor-0001","sent_at":1764000000500,
      "events":[{"type":"track","created_at":1764000000000,"url":"https://example.com/",
                 "referrer":null,"name":"invoice_paid","props":{"seats":"5","plan":"pro"}}]}"#;
    let v = validate(body, &ValidateOptions::collect(1_764_000_001_000)).expect("readable");
    let results = v.results(&HashSet::new());
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].id, "fp_d983e2f6b76dcf8fe11ae440a49b92ba");
    assert_eq!(results[0].status, Status::Accepted);

    let form = Event {
        id: String::new(),
        created_at: -5,
        url: "https://example.com/é".into(),
        referrer: Some("https://google.com/".into()),
        kind: EventKind::FormSubmit {
            form: FormSubmit {
                id: Some("lead".into()),
                name: None,
                action: Some("/thanks".into()),
                fields: vec!["email".into(), "name".into()],
                values: [("name", "Ann"), ("email", "ann@example.com")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
        },
    };
    assert_eq!(
        fingerprint("demo", "visitor-0001", &form),
        "fp_4febc6d08b05280665d4bd4501572b23"
    );
}
