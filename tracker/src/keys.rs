//! Every name the tracker uses with JavaScript, spelled once: the wire's field
//! names and values, the DOM's properties and methods, the storage keys and the
//! profile's fields.
//!
//! The wire's schema lives in `closeloop_core::wire` (the only module that knows
//! it); the tracker builds its JavaScript objects with these names instead of
//! linking serde, which would cost kilobytes in every visitor's download. The tests
//! below check that an object built with these names deserializes into
//! `closeloop_core::wire::Batch`, that the edge's answer is read with the names
//! `CollectResponse` serializes to, and that the limits are core's.
//!
//! The names form one table, [`ALL`], which the download build puts in the wasm's
//! custom section `n` (see [`crate::js`]): the loader reads it once into its value
//! table, so a name is a small integer in the wasm's code ([`N`]) instead of a
//! string literal, a pointer and a length, a decoding call and a release at every
//! use.

/// Largest number of events in one batch (`wire::MAX_EVENTS_PER_BATCH`).
pub const MAX_EVENTS_PER_BATCH: usize = 100;
/// Longest URL or referrer, in bytes (`wire::MAX_URL_LEN`).
pub const MAX_URL_LEN: usize = 2048;
/// Longest short text field, in bytes (`wire::MAX_FIELD_LEN`).
pub const MAX_FIELD_LEN: usize = 512;
/// Most fields, values, traits or props in one event (`wire::MAX_FIELDS`).
pub const MAX_FIELDS: usize = 64;

macro_rules! names {
    ($($(#[$m:meta])* $id:ident = $s:literal,)*) => {
        /// A name: its position in [`ALL`]. `js::V::from(name)` is the JavaScript
        /// string itself (see [`crate::js`]).
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        #[repr(u32)]
        pub enum N {
            $($(#[$m])* $id,)*
        }

        /// Every name, in [`N`]'s order, each followed by a space.
        pub const ALL: &str = concat!($($s, " ",)*);
    };
}

names! {
    // The wire (closeloop_core::wire): batch.
    /// Batch: the site's public id.
    SiteId = "site_id",
    /// Batch: the visitor's id.
    VisitorId = "visitor_id",
    /// Batch: when the device sent it.
    SentAt = "sent_at",
    /// Batch: events the tracker had to drop and had not reported yet.
    Dropped = "dropped",
    /// Batch: the events.
    Events = "events",
    // Event.
    /// Event (and result): the client-made id.
    Id = "id",
    /// Event: its type (also `PerformanceNavigationTiming.type`, an input's `type`).
    Type = "type",
    /// Event: when the device created it.
    CreatedAt = "created_at",
    /// Event: the page URL (also the loader's landing URL).
    Url = "url",
    /// Event: the page's referrer (also `document.referrer`).
    Referrer = "referrer",
    /// Pageview: the document title (also `document.title`).
    Title = "title",
    /// Form submit: the form object.
    Form = "form",
    /// Form (and identify trait key): name.
    Name = "name",
    /// Form: action.
    Action = "action",
    /// Form: the field names.
    Fields = "fields",
    /// Form: the captured values.
    Values = "values",
    /// Identify: the email.
    Email = "email",
    /// Identify: the other identity fields.
    Traits = "traits",
    /// Track: the properties.
    Props = "props",
    /// Type of a page view.
    Pageview = "pageview",
    /// Type of a form submit.
    FormSubmit = "form_submit",
    /// Type of an identify call.
    Identify = "identify",
    /// Type of a custom event.
    Track = "track",
    // The edge's answer.
    /// Response: one result per event.
    Results = "results",
    /// Result: accepted, duplicate or rejected.
    Status = "status",
    /// Response: the visitor's latest touch.
    Touch = "touch",
    /// Status of a stored event.
    Accepted = "accepted",
    /// Status of an event stored before.
    Duplicate = "duplicate",
    /// Status of a refused event (it will never be accepted: it leaves the queue).
    Rejected = "rejected",
    /// Touch: the channel.
    Channel = "channel",
    /// Touch: the source.
    Source = "source",
    /// Touch: the medium.
    Medium = "medium",
    /// Touch: the campaign.
    Campaign = "campaign",

    // The loader's settings object (tracker/js/loader.js `cfg`).
    /// `data-site`.
    Site = "site",
    /// `data-endpoint`, or the loader's origin + `/v1/collect`.
    Endpoint = "endpoint",
    /// `data-consent="required"` (a boolean).
    Consent = "consent",
    /// `data-capture`, as an array of field names.
    Capture = "capture",
    /// `data-ignore-paths`, as an array of globs.
    Ignore = "ignore",
    /// `data-hash-routing` (a boolean); also `location.hash`.
    Hash = "hash",

    // The browser.
    /// `navigator`.
    Navigator = "navigator",
    /// `navigator.globalPrivacyControl`.
    GlobalPrivacyControl = "globalPrivacyControl",
    /// `navigator.onLine`.
    OnLine = "onLine",
    /// `navigator.sendBeacon`.
    SendBeacon = "sendBeacon",
    /// `localStorage`.
    LocalStorage = "localStorage",
    /// `Storage.getItem`.
    GetItem = "getItem",
    /// `Storage.setItem`.
    SetItem = "setItem",
    /// `Storage.removeItem`.
    RemoveItem = "removeItem",
    /// `document`.
    Document = "document",
    /// `document.cookie`.
    Cookie = "cookie",
    /// `location`.
    Location = "location",
    /// `location.href`.
    Href = "href",
    /// `location.pathname`.
    Pathname = "pathname",
    /// `location.search`.
    Search = "search",
    /// `location.protocol`.
    Protocol = "protocol",
    /// The protocol of a secure page.
    Https = "https:",
    /// `performance`.
    Performance = "performance",
    /// `performance.getEntriesByType`.
    GetEntriesByType = "getEntriesByType",
    /// The entry type of the page's navigation timing.
    Navigation = "navigation",
    /// The navigation type of a reload.
    Reload = "reload",
    /// `length` of arrays and strings.
    Length = "length",
    /// The `Object` constructor.
    Object = "Object",
    /// `Object.keys`.
    Keys = "keys",
    /// `String.prototype.startsWith`.
    StartsWith = "startsWith",
    /// `String.prototype.concat`.
    Concat = "concat",
    /// `Array.prototype.includes`.
    Includes = "includes",
    /// `Array.prototype.push`.
    Push = "push",
    /// `Element.tagName`.
    TagName = "tagName",
    /// The tag name of a form.
    FormTag = "FORM",
    /// `HTMLFormElement.elements`.
    Elements = "elements",
    /// `Element.getAttribute`.
    GetAttribute = "getAttribute",
    /// `Element.hasAttribute`.
    HasAttribute = "hasAttribute",
    /// A form or field the tracker must not record.
    IgnoreAttr = "data-closeloop-ignore",
    /// A field whose value the site wants kept.
    CaptureAttr = "data-closeloop-capture",
    /// An input's `autocomplete` attribute.
    Autocomplete = "autocomplete",
    /// `HTMLInputElement.checked`.
    Checked = "checked",
    /// An input's `value`.
    Value = "value",

    // First-party storage keys (see crate::store).
    /// Visitor id (localStorage and cookie).
    KeyVid = "_cl_vid",
    /// Prefix of the unsent events: `_cl_e.<event id>` = the wire event as JSON.
    KeyEvent = "_cl_e.",
    /// Events dropped and not yet reported to the edge (a decimal count).
    KeyDropped = "_cl_d",
    /// The send lock tabs share: `"<tab id> <expiry ms>"`.
    KeyLock = "_cl_l",
    /// The profile (see crate::profile).
    KeyProfile = "_cl_p",
    /// The visitor's consent answer: `"1"` granted, `"0"` refused.
    KeyConsent = "_cl_c",
    /// Consecutive batches the edge refused for good (a decimal count).
    KeyRefused = "_cl_r",
    /// The prefix of every key the tracker writes.
    KeyPrefix = "_cl_",
    /// Yes.
    One = "1",
    /// No.
    Zero = "0",

    // The profile's fields (see crate::profile).
    /// First entry.
    F = "f",
    /// Latest entry.
    L = "l",
    /// An entry's landing URL.
    U = "u",
    /// An entry's referrer.
    R = "r",
    /// An entry's time.
    T = "t",
    /// Views per path.
    Pg = "pg",
    /// The last page view's URL.
    Lu = "lu",
    /// The last page view's time.
    Lv = "lv",
    /// The last activity's time.
    La = "la",
    /// Whether the visitor became a lead.
    Lead = "lead",
    /// The first touch, as the edge classified it.
    Ft = "ft",
    /// The latest touch, as the edge classified it.
    Lt = "lt",
    /// `profile()`'s visitor id; also the state's (see `js::ST`).
    Vid = "vid",

    // The tracker's state between calls (`js::ST`), besides `vid`, `url`,
    // `referrer` and `form`.
    /// This tab's random id (for the send lock).
    Tab = "tab",
    /// The page's path (plus hash with hash routing).
    Path = "path",
    /// The page's path and query (plus hash with hash routing).
    Full = "full",
    /// The ids of the events in the request in flight.
    Inflight = "inflight",
    /// The landing page's path, until `settle` counts it in the profile.
    Landed = "landed",
}

/// Touch: channel, source, medium, campaign.
pub const TOUCH_FIELDS: [N; 4] = [N::Channel, N::Source, N::Medium, N::Campaign];

/// The string of `n` (for tests; the download reads names from the table).
#[cfg(test)]
pub fn name(n: N) -> &'static str {
    ALL.split(' ').nth(n as usize).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::N::*;
    use super::*;
    use closeloop_core::wire::{Batch, CollectResponse, EventKind, EventResult, Status, TouchAck};
    use serde_json::{json, Map, Value};

    fn obj(pairs: &[(N, Value)]) -> Value {
        let mut m = Map::new();
        for (k, v) in pairs {
            m.insert(name(*k).to_string(), v.clone());
        }
        Value::Object(m)
    }

    #[test]
    fn limits_are_cores() {
        use closeloop_core::wire;
        assert_eq!(MAX_EVENTS_PER_BATCH, wire::MAX_EVENTS_PER_BATCH);
        assert_eq!(MAX_URL_LEN, wire::MAX_URL_LEN);
        assert_eq!(MAX_FIELD_LEN, wire::MAX_FIELD_LEN);
        assert_eq!(MAX_FIELDS, wire::MAX_FIELDS);
    }

    /// The table has one entry per name, none empty or with a space, none twice
    /// (a name found twice would still work, but it is bytes for nothing).
    #[test]
    fn the_table_matches_the_enum() {
        let all: Vec<&str> = ALL.split(' ').collect();
        assert_eq!(all.last(), Some(&""), "a space after each name");
        let names = &all[..all.len() - 1];
        assert_eq!(names.len(), Landed as usize + 1);
        assert_eq!(name(SiteId), "site_id");
        assert_eq!(name(FormTag), "FORM");
        assert_eq!(name(Landed), "landed");
        for (i, n) in names.iter().enumerate() {
            assert!(!n.is_empty());
            assert!(!names[..i].contains(n), "{n} twice");
        }
    }

    /// A batch built with the tracker's names, as the tracker builds it, is what the
    /// edge's schema reads: one event of each type.
    #[test]
    fn tracker_objects_deserialize_into_core_batch() {
        let page = obj(&[
            (Id, json!("e1-aaaaaaaa")),
            (Type, json!(name(Pageview))),
            (CreatedAt, json!(1_764_000_000_000_i64)),
            (Url, json!("https://example.com/?utm_source=newsletter")),
            (Referrer, json!("https://news.example.org/")),
            (Title, json!("Home")),
        ]);
        let form = obj(&[
            (Id, json!("e2-aaaaaaaa")),
            (Type, json!(name(FormSubmit))),
            (CreatedAt, json!(1_764_000_000_400_i64)),
            (Url, json!("https://example.com/demo")),
            (
                Form,
                obj(&[
                    (Id, json!("lead")),
                    (Name, json!("lead-form")),
                    (Action, json!("/thanks")),
                    (Fields, json!(["email", "password"])),
                    (Values, obj(&[(Email, json!("ann@example.com"))])),
                ]),
            ),
        ]);
        let ident = obj(&[
            (Id, json!("e3-aaaaaaaa")),
            (Type, json!(name(Identify))),
            (CreatedAt, json!(1_764_000_000_500_i64)),
            (Url, json!("https://example.com/demo")),
            (Email, json!("ann@example.com")),
            (Traits, obj(&[(Name, json!("Ann"))])),
        ]);
        let track = obj(&[
            (Id, json!("e4-aaaaaaaa")),
            (Type, json!(name(Track))),
            (CreatedAt, json!(1_764_000_000_600_i64)),
            (Url, json!("https://example.com/demo")),
            (Name, json!("signup")),
            (Props, json!({"plan": "pro"})),
        ]);
        let batch = obj(&[
            (SiteId, json!("demo")),
            (VisitorId, json!("visitor-0001")),
            (SentAt, json!(1_764_000_001_000_i64)),
            (Dropped, json!(3)),
            (Events, json!([page, form, ident, track])),
        ]);
        let b: Batch = serde_json::from_value(batch).expect("the tracker's batch shape");
        assert_eq!(b.site_id, "demo");
        assert_eq!(b.visitor_id, "visitor-0001");
        assert_eq!(b.sent_at, 1_764_000_001_000);
        assert_eq!(b.dropped, 3);
        assert_eq!(b.events.len(), 4);
        assert_eq!(
            b.events[0].referrer.as_deref(),
            Some("https://news.example.org/")
        );
        assert!(matches!(&b.events[0].kind, EventKind::Pageview { title: Some(t) } if t == "Home"));
        match &b.events[1].kind {
            EventKind::FormSubmit { form } => {
                assert_eq!(form.id.as_deref(), Some("lead"));
                assert_eq!(form.name.as_deref(), Some("lead-form"));
                assert_eq!(form.action.as_deref(), Some("/thanks"));
                assert_eq!(form.fields, vec!["email", "password"]);
                assert_eq!(
                    form.values.get("email").map(String::as_str),
                    Some("ann@example.com")
                );
            }
            other => panic!("expected a form submit, got {other:?}"),
        }
        match &b.events[2].kind {
            EventKind::Identify { email, traits } => {
                assert_eq!(email, "ann@example.com");
                assert_eq!(traits.get("name").map(String::as_str), Some("Ann"));
            }
            other => panic!("expected identify, got {other:?}"),
        }
        match &b.events[3].kind {
            EventKind::Track { name, props } => {
                assert_eq!(name, "signup");
                assert_eq!(props.get("plan").map(String::as_str), Some("pro"));
            }
            other => panic!("expected track, got {other:?}"),
        }
    }

    /// The edge's answer, serialized by core, carries the names the tracker reads.
    #[test]
    fn core_response_has_the_names_the_tracker_reads() {
        let resp = CollectResponse {
            results: vec![
                EventResult {
                    id: "a".into(),
                    status: Status::Accepted,
                    error: None,
                },
                EventResult {
                    id: "b".into(),
                    status: Status::Duplicate,
                    error: None,
                },
                EventResult {
                    id: "c".into(),
                    status: Status::Rejected,
                    error: None,
                },
            ],
            accepted: 1,
            duplicates: 1,
            rejected: 1,
            touch: Some(TouchAck {
                channel: "Email".into(),
                source: "newsletter".into(),
                medium: "email".into(),
                campaign: Some("launch".into()),
            }),
        };
        let v = serde_json::to_value(&resp).expect("serializes");
        let results = v[name(Results)].as_array().expect("results array");
        let statuses: Vec<&str> = results
            .iter()
            .filter_map(|r| r[name(Status)].as_str())
            .collect();
        assert_eq!(
            statuses,
            vec![name(Accepted), name(Duplicate), name(Rejected)]
        );
        assert_eq!(results[0][name(Id)], "a");
        let touch = &v[name(Touch)];
        let got: Vec<&str> = TOUCH_FIELDS
            .iter()
            .filter_map(|k| touch[name(*k)].as_str())
            .collect();
        assert_eq!(got, vec!["Email", "newsletter", "email", "launch"]);
    }
}
