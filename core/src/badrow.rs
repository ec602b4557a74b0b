//! Bad rows (as Snowplow calls them): what the edge keeps of a rejected event or a
//! refused batch, so that nothing is dropped silently and a site owner whose tag is
//! misconfigured sees why.
//!
//! A bad row's `raw` is the event's (or the batch's) JSON as sent, with the values of
//! secret-looking keys replaced ([`crate::validate::is_sensitive_field`], and
//! [`wire::USER_HASH`]), cut to [`MAX_RAW_BYTES`] on a character boundary. A body that is
//! not JSON keeps only its first [`MAX_UNPARSED_BYTES`] bytes (nothing in it can be
//! redacted).

use crate::validate::{is_sensitive_field, valid_site_id};
use crate::wire;
use serde_json::Value;

/// Most bytes of JSON a bad row keeps.
pub const MAX_RAW_BYTES: usize = 2048;
/// Most bytes a bad row keeps of a body that is not JSON.
pub const MAX_UNPARSED_BYTES: usize = 256;
/// What replaces a secret value.
pub const REDACTED: &str = "[redacted]";

/// What a bad row is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// One event of a readable batch was rejected (the others went on).
    Event,
    /// A whole batch was refused.
    Batch,
}

impl Kind {
    /// `event` or `batch`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::Batch => "batch",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "event" => Some(Kind::Event),
            "batch" => Some(Kind::Batch),
            _ => None,
        }
    }
}

/// `value` with every secret-looking member's value replaced by [`REDACTED`], at any
/// depth.
pub fn redacted(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if k == wire::USER_HASH || is_sensitive_field(k) {
                        Value::String(REDACTED.to_string())
                    } else {
                        redacted(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(list) => Value::Array(list.iter().map(redacted).collect()),
        other => other.clone(),
    }
}

/// The text a bad row keeps of a JSON value: [`redacted`], serialised, cut to
/// [`MAX_RAW_BYTES`]; and whether it was cut.
pub fn raw_text(value: &Value) -> (String, bool) {
    let text = serde_json::to_string(&redacted(value)).unwrap_or_default();
    cut_owned(text, MAX_RAW_BYTES)
}

/// The text a bad row keeps of a whole request body: [`raw_text`] when it is JSON, else
/// its first [`MAX_UNPARSED_BYTES`] bytes (lossy UTF-8); and whether it was cut.
pub fn body_text(body: &[u8]) -> (String, bool) {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => raw_text(&v),
        Err(_) => {
            let head = body.get(..MAX_UNPARSED_BYTES).unwrap_or(body);
            let (text, cut) = cut_owned(
                String::from_utf8_lossy(head).into_owned(),
                MAX_UNPARSED_BYTES,
            );
            (text, cut || body.len() > MAX_UNPARSED_BYTES)
        }
    }
}

/// The events of a batch body as sent (empty when the body is not a batch), to find a
/// rejected event's raw JSON by its index. Only read when something was rejected.
pub fn raw_events(body: &[u8]) -> Vec<Value> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut o)) => match o.remove("events") {
            Some(Value::Array(list)) => list,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The `site_id` a body names, when it is JSON with a valid one: whom a refused batch is
/// filed under.
pub fn site_id_hint(body: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => match o.get("site_id") {
            Some(Value::String(s)) if valid_site_id(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn cut_owned(mut s: String, max: usize) -> (String, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    (s, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let v = json!({"type": "form_submit", "form": {"values": {"email": "a@b.co",
            "password": "hunter2", "cc-number": "4111"}}, "user_hash": "abc",
            "traits": [{"pin": "1234"}]});
        let (text, cut) = raw_text(&v);
        assert!(!cut);
        assert!(!text.contains("hunter2") && !text.contains("4111"));
        assert!(!text.contains("1234") && !text.contains("\"abc\""));
        assert!(text.contains("a@b.co"));
    }

    #[test]
    fn long_rows_are_cut_on_a_character_boundary() {
        let v = json!({"title": "é".repeat(3000)});
        let (text, cut) = raw_text(&v);
        assert!(cut);
        assert!(text.len() <= MAX_RAW_BYTES && text.len() > MAX_RAW_BYTES - 2);
        let (text, cut) = body_text(&vec![b'x'; 1000]);
        assert!(cut);
        assert_eq!(text.len(), MAX_UNPARSED_BYTES);
        assert_eq!(body_text(b"{\"a\":1}"), ("{\"a\":1}".to_string(), false));
    }

    #[test]
    fn hints_and_events() {
        assert_eq!(
            site_id_hint(br#"{"site_id":"demo","events":"x"}"#).as_deref(),
            Some("demo")
        );
        assert_eq!(site_id_hint(br#"{"site_id":"no spaces"}"#), None);
        assert_eq!(site_id_hint(b"{oops"), None);
        assert_eq!(raw_events(br#"{"events":[1,{"a":2}]}"#).len(), 2);
        assert!(raw_events(b"[]").is_empty());
    }
}
