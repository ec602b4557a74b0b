//! Deduplication keys: the one value under which an event is stored exactly once,
//! however often it is sent (retries, `sendBeacon` plus `fetch` fallback, reloads).
//!
//! - An event with a client-made id (every event from the tracker) is keyed by that
//!   id: the id alone is the key, never its content.
//! - An event from a server that sends no id is keyed by a **content fingerprint**,
//!   `fp_` followed by 32 lowercase hex digits: the first 128 bits of the SHA-256 of
//!   a canonical encoding of its fields (as Snowplow's event-fingerprint enrichment
//!   does: a hash of sorted fields with the volatile ones left out). 35 characters,
//!   all in `[a-z0-9_]`, so it is a valid [`wire::ID_LEN`] id too, and it cannot be
//!   mistaken for an absent id. 128 bits make an accidental collision negligible
//!   (birthday bound ≈ 2⁻⁶⁴ per pair).
//!
//! ## Which fields, in which order
//!
//! In this order, each as a `name` then a value (see [`fingerprint`] for the byte
//! encoding): format version `v1`, `site_id`, `visitor_id`, `type`, `created_at`,
//! `url`, `referrer`, then the type's own fields:
//! - `pageview`: `title`;
//! - `form_submit`: `form.id`, `form.name`, `form.action`, `form.fields` (a list, in
//!   the form's own order, which is the page's), `form.values` (a map);
//! - `identify`: `email`, `traits` (a map);
//! - `track`: `name`, `props` (a map).
//!
//! Left out as volatile: the batch's `sent_at` and `dropped` (they change with every
//! retry), and everything the edge adds (receive time, `derived_ts`, geo, device, bot
//! flag, channel). An absent optional string and an empty one are the same value
//! (`referrer: ""` is what `document.referrer` says when there is none).
//!
//! ## Why the order is stable
//!
//! (As in vector's `dedupe` transform, where the cache key is built in a fixed field
//! order so that the same event always gives the same key.) The fingerprint never
//! follows the order of keys in the JSON the sender wrote — two servers that
//! serialise the same event with keys in different orders must get the same key.
//! It walks the typed [`wire::Event`] in the fixed order written above, and every map
//! is a `BTreeMap`, whose iteration is sorted by the keys' bytes, the same on every
//! platform and in every build. Each string is length-prefixed, so no two different
//! field lists encode to the same bytes (`"ab" + "c"` ≠ `"a" + "bc"`). Unknown JSON
//! fields are not part of the typed event, so a sender that adds a field does not
//! change old keys; adding a field to the schema would, and so bumps the version.
//!
//! ## Why SHA-256 (the `sha2` crate)
//!
//! It is the cheapest well-kept hash for the edge's wasm32: a probe `cdylib`
//! (release, LTO, wasm32-unknown-unknown) hashing one slice came to 9.8 KB of wasm /
//! 3.2 KB gzipped with `sha2` 0.11, against 13.1 KB / 5.9 KB with `blake3` 1.8 (whose
//! SIMD paths do not apply on wasm32 and whose build pulls in `cc`). Speed does not
//! matter at this size (a few hundred bytes per event). Both are MIT/Apache-2.0.

use crate::wire::{self, Event, EventKind};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The prefix of every content fingerprint key.
pub const FINGERPRINT_PREFIX: &str = "fp_";

/// The version of the canonical encoding, hashed first: bump it when the field list
/// changes, so old and new keys never mean different things.
const VERSION: &str = "v1";

/// The key under which `event` (from `visitor_id` on `site_id`) is stored: its own id
/// when it has one, otherwise its content [`fingerprint`].
///
/// ```
/// use closeloop_core::dedup::dedup_key;
/// use closeloop_core::wire::{Event, EventKind};
/// let mut e = Event {
///     id: "ev_0001abcd".into(),
///     created_at: 1_764_000_000_000,
///     url: "https://example.com/".into(),
///     referrer: None,
///     kind: EventKind::Pageview { title: None },
/// };
/// assert_eq!(dedup_key("demo", "visitor-1", &e), "ev_0001abcd");
/// e.id.clear();
/// assert!(dedup_key("demo", "visitor-1", &e).starts_with("fp_"));
/// ```
pub fn dedup_key(site_id: &str, visitor_id: &str, event: &Event) -> String {
    if event.id.is_empty() {
        fingerprint(site_id, visitor_id, event)
    } else {
        event.id.clone()
    }
}

/// Whether `key` has the shape of a content fingerprint (`fp_` + 32 lowercase hex).
pub fn is_fingerprint(key: &str) -> bool {
    key.strip_prefix(FINGERPRINT_PREFIX).is_some_and(|hex| {
        hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The content fingerprint of `event`: `fp_` + the first 32 hex digits of SHA-256
/// over the canonical encoding described in the [module docs](self). The event's own
/// `id` is not part of it.
///
/// Encoding: for every field in the fixed order, its name, a `0x00` byte, then the
/// value: a string is its byte length as a little-endian `u64` and its bytes; an
/// absent optional string is encoded as an empty string; an integer is its decimal
/// text as a string; a list is its element count (`u64` LE) and each element as a
/// string; a map is its entry count and each key and value as strings, in key order.
pub fn fingerprint(site_id: &str, visitor_id: &str, event: &Event) -> String {
    let mut h = Canonical(Sha256::new());
    h.str("version", VERSION);
    h.str("site_id", site_id);
    h.str("visitor_id", visitor_id);
    h.str("type", event.kind.name());
    h.str("created_at", &event.created_at.to_string());
    h.str("url", &event.url);
    h.opt("referrer", event.referrer.as_deref());
    match &event.kind {
        EventKind::Pageview { title } => h.opt("title", title.as_deref()),
        EventKind::FormSubmit { form } => {
            h.opt("form.id", form.id.as_deref());
            h.opt("form.name", form.name.as_deref());
            h.opt("form.action", form.action.as_deref());
            h.list("form.fields", &form.fields);
            h.map("form.values", &form.values);
        }
        EventKind::Identify { email, traits } => {
            h.str("email", email);
            h.map("traits", traits);
        }
        EventKind::Track { name, props } => {
            h.str("name", name);
            h.map("props", props);
        }
    }
    let digest = h.0.finalize();
    let mut key = String::with_capacity(FINGERPRINT_PREFIX.len() + 32);
    key.push_str(FINGERPRINT_PREFIX);
    for byte in digest.iter().take(16) {
        key.push(hex_digit(byte >> 4));
        key.push(hex_digit(byte & 0x0f));
    }
    debug_assert!(wire::ID_LEN.contains(&key.len()));
    key
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0x0f)])
}

/// Feeds fields to the hash in the canonical encoding.
struct Canonical(Sha256);

impl Canonical {
    fn raw(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    fn name(&mut self, name: &str) {
        self.0.update(name.as_bytes());
        self.0.update([0u8]);
    }

    fn str(&mut self, name: &str, value: &str) {
        self.name(name);
        self.raw(value.as_bytes());
    }

    fn opt(&mut self, name: &str, value: Option<&str>) {
        self.str(name, value.unwrap_or(""));
    }

    fn list(&mut self, name: &str, items: &[String]) {
        self.name(name);
        self.0.update((items.len() as u64).to_le_bytes());
        for item in items {
            self.raw(item.as_bytes());
        }
    }

    fn map(&mut self, name: &str, map: &BTreeMap<String, String>) {
        self.name(name);
        self.0.update((map.len() as u64).to_le_bytes());
        for (k, v) in map {
            self.raw(k.as_bytes());
            self.raw(v.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::FormSubmit;

    fn form_event() -> Event {
        Event {
            id: String::new(),
            created_at: 1_764_000_000_000,
            url: "https://example.com/demo".into(),
            referrer: Some(String::new()),
            kind: EventKind::FormSubmit {
                form: FormSubmit {
                    id: Some("lead".into()),
                    name: None,
                    action: Some("/thanks".into()),
                    fields: vec!["email".into(), "name".into()],
                    values: [("email", "ann@example.com"), ("name", "Ann")]
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                },
            },
        }
    }

    #[test]
    fn fingerprint_is_shaped_like_an_id() {
        let key = fingerprint("demo", "visitor-1", &form_event());
        assert!(is_fingerprint(&key), "{key}");
        assert_eq!(key.len(), 35);
        assert!(!is_fingerprint("fp_XYZ"));
        assert!(!is_fingerprint("ev_0001abcd"));
    }

    #[test]
    fn json_key_order_does_not_matter() {
        let a: Event = serde_json::from_str(
            r#"{"id":"","type":"track","name":"signup","props":{"a":"1","b":"2"},
                "created_at":5,"url":"https://x.io/"}"#,
        )
        .unwrap();
        let b: Event = serde_json::from_str(
            r#"{"url":"https://x.io/","props":{"b":"2","a":"1"},"created_at":5,"id":"",
                "name":"signup","type":"track"}"#,
        )
        .unwrap();
        assert_eq!(fingerprint("s", "v", &a), fingerprint("s", "v", &b));
    }

    #[test]
    fn every_kept_field_changes_the_key_and_the_id_does_not() {
        let base = form_event();
        let key = fingerprint("demo", "visitor-1", &base);
        assert_ne!(key, fingerprint("demo2", "visitor-1", &base));
        assert_ne!(key, fingerprint("demo", "visitor-2", &base));
        let mut e = base.clone();
        e.created_at += 1;
        assert_ne!(key, fingerprint("demo", "visitor-1", &e));
        let mut e = base.clone();
        e.url.push('x');
        assert_ne!(key, fingerprint("demo", "visitor-1", &e));
        let mut e = base.clone();
        e.referrer = Some("https://google.com/".into());
        assert_ne!(key, fingerprint("demo", "visitor-1", &e));
        let mut e = base.clone();
        if let EventKind::FormSubmit { form } = &mut e.kind {
            form.values.insert("company".into(), "Acme".into());
        }
        assert_ne!(key, fingerprint("demo", "visitor-1", &e));
        // Absent and empty referrer are the same; the id is not hashed.
        let mut e = base.clone();
        e.referrer = None;
        e.id = "anything-at-all".into();
        assert_eq!(key, fingerprint("demo", "visitor-1", &e));
    }

    #[test]
    fn length_prefix_separates_fields() {
        let mut a = form_event();
        let mut b = form_event();
        if let (EventKind::FormSubmit { form: fa }, EventKind::FormSubmit { form: fb }) =
            (&mut a.kind, &mut b.kind)
        {
            fa.fields = vec!["ab".into(), "c".into()];
            fb.fields = vec!["a".into(), "bc".into()];
        }
        assert_ne!(fingerprint("s", "v", &a), fingerprint("s", "v", &b));
    }
}
