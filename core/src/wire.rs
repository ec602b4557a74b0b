//! The wire schema of `POST /v1/collect`: what the tracker sends and what the edge
//! answers. This module is the only place that knows these field names; the
//! tracker and the edge both use these types (or the constants below).
//!
//! Times on the wire are milliseconds since the Unix epoch (UTC), as JavaScript's
//! `Date.now()` gives them.
//!
//! A batch looks like this:
//!
//! ```json
//! {
//!   "site_id": "demo",
//!   "visitor_id": "9b2f6c1e-2f0b-4a7e-9d65-0c8f1f3f2a10",
//!   "sent_at": 1764000000500,
//!   "dropped": 0,
//!   "events": [
//!     {"id": "0b7c…", "type": "pageview", "created_at": 1764000000000,
//!      "url": "https://example.com/?utm_source=newsletter", "referrer": "", "title": "Home"},
//!     {"id": "1c8d…", "type": "form_submit", "created_at": 1764000000400,
//!      "url": "https://example.com/demo", "referrer": "",
//!      "form": {"id": "lead", "action": "/thanks", "fields": ["email", "name", "password"],
//!               "values": {"email": "ann@example.com", "name": "Ann"}}}
//!   ]
//! }
//! ```
//!
//! Unknown fields are ignored (the schema may grow; names never silently change).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest number of events in one batch.
pub const MAX_EVENTS_PER_BATCH: usize = 100;
/// Largest request body the edge reads, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Longest URL or referrer, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// Longest short text field (title, form id/name, field name, value, event name), in bytes.
pub const MAX_FIELD_LEN: usize = 512;
/// Most fields, values, traits or props in one event.
pub const MAX_FIELDS: usize = 64;
/// Shortest and longest client-made id (visitor and event ids), in bytes.
pub const ID_LEN: std::ops::RangeInclusive<usize> = 8..=64;
/// Oldest event `/v1/collect` accepts, measured back from the batch's `sent_at` on the
/// device's own clock: 72 hours. The tracker keeps unacknowledged events in
/// `localStorage` and sends them at the next page load of the site, so a legitimate event
/// can be days old; but a browser cannot prove when an event happened, and every hour
/// accepted is an hour a forged beacon can backdate a session towards first-touch
/// position. 72 hours is the bound GA4's Measurement Protocol and Firebase Analytics
/// apply to client times; older events are rejected (`event_too_old`, kept as bad rows
/// and counted), and servers send history through `events:import` with the write key.
pub const MAX_EVENT_AGE_MS: i64 = 72 * 60 * 60 * 1000;
/// How far a device clock may be from the edge's clock (`sent_at` vs. `received_at`)
/// before the batch is flagged as coming from a skewed clock: 24 hours. Such a batch is
/// not refused: its times are derived from its own offsets ([`derived_ts`]), which no
/// clock skew affects, and the edge counts it (`clock_skew` in the site's health).
///
/// [`derived_ts`]: crate::wire::derived_ts
pub const MAX_CLOCK_SKEW_MS: i64 = 24 * 60 * 60 * 1000;
/// The key of an `identify` event (or of its `traits`) that carries the identity
/// verification hash: `user_hash = hex(HMAC-SHA256(site identity secret, normalised
/// email))`. Required when the site has an identity secret; never stored.
pub const USER_HASH: &str = "user_hash";
/// How far after `sent_at` an event may claim to have been created (it cannot be,
/// beyond rounding): 1 minute.
pub const MAX_FUTURE_MS: i64 = 60 * 1000;

/// One batch of events from one visitor of one site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The site's public id, as in the tag's `data-site`.
    pub site_id: String,
    /// The visitor's random id, made in the browser and kept in first-party storage.
    pub visitor_id: String,
    /// When the device sent this batch (ms since the epoch, device clock).
    pub sent_at: i64,
    /// Events the tracker had to drop from its bounded queue since its last batch.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u32,
    /// The events, oldest first.
    pub events: Vec<Event>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One event, as the device made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Client-made unique id: the deduplication key.
    pub id: String,
    /// When the device created the event (ms since the epoch, device clock).
    pub created_at: i64,
    /// The full URL of the page the event happened on.
    pub url: String,
    /// `document.referrer` at the time of the page load ("" or absent when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// The type and its own fields (`"type": "pageview"`, ...).
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The event types and their own fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A page view (a load, or a single-page-app navigation).
    Pageview {
        /// `document.title`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
    /// A form was submitted.
    FormSubmit {
        /// What was submitted.
        form: FormSubmit,
    },
    /// The site said who the visitor is (`closeloop.identify(email, traits)`). A site
    /// with identity verification on also sends [`USER_HASH`], as a member of the event
    /// or of its traits (`closeloop.identify(email, {user_hash})`); the edge takes it out
    /// before anything is stored.
    Identify {
        /// The visitor's email.
        email: String,
        /// Other identity fields (name, company, phone, ...).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        traits: BTreeMap<String, String>,
    },
    /// A custom event (`closeloop.track(name, props)`).
    Track {
        /// The event's name.
        name: String,
        /// Its properties.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        props: BTreeMap<String, String>,
    },
}

impl EventKind {
    /// The wire name of this type (`"pageview"`, `"form_submit"`, `"identify"`, `"track"`).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Pageview { .. } => "pageview",
            EventKind::FormSubmit { .. } => "form_submit",
            EventKind::Identify { .. } => "identify",
            EventKind::Track { .. } => "track",
        }
    }
}

/// A submitted form: what it is, which fields it had, and the values the privacy
/// rules let the tracker keep (identity fields and fields the site marked).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FormSubmit {
    /// The form's `id` attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The form's `name` attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The form's `action` (as the page wrote it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The names of all fields the form had (never their values).
    #[serde(default)]
    pub fields: Vec<String>,
    /// Values of identity fields (email, name, company, phone) and marked fields.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
}

/// How the edge answered one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Stored now.
    Accepted,
    /// Already stored before (a retry): nothing changed.
    Duplicate,
    /// Refused: see the result's `error`. Nothing of it was stored.
    Rejected,
}

/// A typed error: `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_url`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// The body of every 4xx/5xx answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The answer for one event of a batch, in the batch's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventResult {
    /// The event's id as sent (empty when the event had none).
    pub id: String,
    /// Accepted, duplicate or rejected.
    pub status: Status,
    /// Why it was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// The entry source of the visitor's current session, as the edge classified it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TouchAck {
    /// GA4 default channel group, e.g. `Organic Search`.
    pub channel: String,
    /// Source (`google`, `newsletter`, `(direct)`).
    pub source: String,
    /// Medium (`organic`, `email`, `(none)`).
    pub medium: String,
    /// Campaign, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
}

/// The answer to a batch (HTTP 200 whenever the batch itself was readable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectResponse {
    /// One result per event, in order.
    pub results: Vec<EventResult>,
    /// How many were accepted.
    pub accepted: u32,
    /// How many were duplicates.
    pub duplicates: u32,
    /// How many were rejected.
    pub rejected: u32,
    /// The touch (entry source) of the session the batch's last event belongs to, when
    /// that session starts in this batch; absent when the batch goes on with the
    /// visitor's current session (whose touch an earlier answer told).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub touch: Option<TouchAck>,
}

/// The edge's estimate of when an event really happened, safe from device clock skew
/// (as Snowplow derives it): `received_at - (sent_at - created_at)`, clamped to
/// `received_at` (an event the device says it made after sending the batch — at most
/// [`MAX_FUTURE_MS`] later, rounding — happened no later than its arrival). Only the
/// batch's own offset counts, so a device clock off by days changes nothing; with the
/// offset bounded by [`MAX_EVENT_AGE_MS`], no event lands more than 72 hours before it
/// arrived.
///
/// ```
/// use closeloop_core::wire::derived_ts;
/// // the device clock is 1 hour behind; the event was made 2 s before sending
/// let received_at = 1_000_000_000_000;
/// let sent_at = received_at - 3_600_000;
/// assert_eq!(derived_ts(sent_at - 2_000, sent_at, received_at), received_at - 2_000);
/// // made "30 s after sending": it arrived when it arrived
/// assert_eq!(derived_ts(sent_at + 30_000, sent_at, received_at), received_at);
/// ```
pub fn derived_ts(created_at: i64, sent_at: i64, received_at: i64) -> i64 {
    received_at.saturating_sub(sent_at.saturating_sub(created_at).max(0))
}
