//! The wire names the tracker writes and reads, spelled once.
//!
//! The schema itself lives in `closeloop_core::wire` (the only module that knows
//! it); the tracker builds its JavaScript objects with these names through
//! `Reflect` instead of linking serde, which would cost kilobytes in every
//! visitor's download. The tests below check that an object built with these
//! names deserializes into `closeloop_core::wire::Batch`, and that the edge's
//! answer is read with the names `CollectResponse` serializes to, and that the
//! limits are core's.

/// Largest number of events in one batch (`wire::MAX_EVENTS_PER_BATCH`).
pub const MAX_EVENTS_PER_BATCH: usize = 100;
/// Longest URL or referrer, in bytes (`wire::MAX_URL_LEN`).
pub const MAX_URL_LEN: usize = 2048;
/// Longest short text field, in bytes (`wire::MAX_FIELD_LEN`).
pub const MAX_FIELD_LEN: usize = 512;
/// Most fields, values, traits or props in one event (`wire::MAX_FIELDS`).
pub const MAX_FIELDS: usize = 64;

/// Batch: the site's public id.
pub const SITE_ID: &str = "site_id";
/// Batch: the visitor's id.
pub const VISITOR_ID: &str = "visitor_id";
/// Batch: when the device sent it.
pub const SENT_AT: &str = "sent_at";
/// Batch: events dropped from the bounded queue.
pub const DROPPED: &str = "dropped";
/// Batch: the events.
pub const EVENTS: &str = "events";
/// Event (and result): the client-made id.
pub const ID: &str = "id";
/// Event: its type.
pub const TYPE: &str = "type";
/// Event: when the device created it.
pub const CREATED_AT: &str = "created_at";
/// Event: the page URL.
pub const URL: &str = "url";
/// Event: the page's referrer.
pub const REFERRER: &str = "referrer";
/// Pageview: the document title.
pub const TITLE: &str = "title";
/// Form submit: the form object.
pub const FORM: &str = "form";
/// Form (and identify trait key): name.
pub const NAME: &str = "name";
/// Form: action.
pub const ACTION: &str = "action";
/// Form: the field names.
pub const FIELDS: &str = "fields";
/// Form: the captured values.
pub const VALUES: &str = "values";
/// Identify: the email.
pub const EMAIL: &str = "email";
/// Identify: the other identity fields.
pub const TRAITS: &str = "traits";
/// Track: the properties.
pub const PROPS: &str = "props";

/// Type of a page view.
pub const PAGEVIEW: &str = "pageview";
/// Type of a form submit.
pub const FORM_SUBMIT: &str = "form_submit";
/// Type of an identify call.
pub const IDENTIFY: &str = "identify";
/// Type of a custom event.
pub const TRACK: &str = "track";

/// Response: one result per event.
pub const RESULTS: &str = "results";
/// Result: accepted, duplicate or rejected.
pub const STATUS: &str = "status";
/// Response: the visitor's latest touch.
pub const TOUCH: &str = "touch";
/// Status of a stored event.
pub const ACCEPTED: &str = "accepted";
/// Status of an event stored before.
pub const DUPLICATE: &str = "duplicate";
/// Status of a refused event (it will never be accepted: it leaves the queue).
pub const REJECTED: &str = "rejected";
/// Touch: channel, source, medium, campaign.
pub const TOUCH_FIELDS: [&str; 4] = ["channel", "source", "medium", "campaign"];

#[cfg(test)]
mod tests {
    use super::*;
    use closeloop_core::wire::{Batch, CollectResponse, EventKind, EventResult, Status, TouchAck};
    use serde_json::{json, Map, Value};

    fn obj(pairs: &[(&str, Value)]) -> Value {
        let mut m = Map::new();
        for (k, v) in pairs {
            m.insert((*k).to_string(), v.clone());
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

    /// A batch built with the tracker's names, as the tracker builds it, is what the
    /// edge's schema reads: one event of each type.
    #[test]
    fn tracker_objects_deserialize_into_core_batch() {
        let page = obj(&[
            (ID, json!("e1-aaaaaaaa")),
            (TYPE, json!(PAGEVIEW)),
            (CREATED_AT, json!(1_764_000_000_000_i64)),
            (URL, json!("https://example.com/?utm_source=newsletter")),
            (REFERRER, json!("https://news.example.org/")),
            (TITLE, json!("Home")),
        ]);
        let form = obj(&[
            (ID, json!("e2-aaaaaaaa")),
            (TYPE, json!(FORM_SUBMIT)),
            (CREATED_AT, json!(1_764_000_000_400_i64)),
            (URL, json!("https://example.com/demo")),
            (
                FORM,
                obj(&[
                    (ID, json!("lead")),
                    (NAME, json!("lead-form")),
                    (ACTION, json!("/thanks")),
                    (FIELDS, json!(["email", "password"])),
                    (VALUES, obj(&[(EMAIL, json!("ann@example.com"))])),
                ]),
            ),
        ]);
        let ident = obj(&[
            (ID, json!("e3-aaaaaaaa")),
            (TYPE, json!(IDENTIFY)),
            (CREATED_AT, json!(1_764_000_000_500_i64)),
            (URL, json!("https://example.com/demo")),
            (EMAIL, json!("ann@example.com")),
            (TRAITS, obj(&[(NAME, json!("Ann"))])),
        ]);
        let track = obj(&[
            (ID, json!("e4-aaaaaaaa")),
            (TYPE, json!(TRACK)),
            (CREATED_AT, json!(1_764_000_000_600_i64)),
            (URL, json!("https://example.com/demo")),
            (NAME, json!("signup")),
            (PROPS, obj(&[("plan", json!("pro"))])),
        ]);
        let batch = obj(&[
            (SITE_ID, json!("demo")),
            (VISITOR_ID, json!("visitor-0001")),
            (SENT_AT, json!(1_764_000_001_000_i64)),
            (DROPPED, json!(3)),
            (EVENTS, json!([page, form, ident, track])),
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
        let results = v[RESULTS].as_array().expect("results array");
        let statuses: Vec<&str> = results.iter().filter_map(|r| r[STATUS].as_str()).collect();
        assert_eq!(statuses, vec![ACCEPTED, DUPLICATE, REJECTED]);
        assert_eq!(results[0][ID], "a");
        let touch = &v[TOUCH];
        let got: Vec<&str> = TOUCH_FIELDS
            .iter()
            .filter_map(|k| touch[*k].as_str())
            .collect();
        assert_eq!(got, vec!["Email", "newsletter", "email", "launch"]);
    }
}
