//! Validation of ingestion bodies: the bytes of a `POST /v1/collect` (or
//! `POST /v1/sites/{site}/events:import`) body become accepted events and typed
//! rejections, so that one bad event never loses the good ones.
//!
//! It runs in two stages, like Snowplow's payload → raw event → bad row pipeline:
//!
//! 1. **The envelope** (`site_id`, `visitor_id`, `sent_at`, `dropped`, `events` as a
//!    list of raw JSON values). If it is unreadable the whole batch is refused with
//!    one [`BatchError`] (HTTP 4xx, `{"error": {"code", "message"}}`).
//! 2. **Each event on its own**: typed parsing into [`wire::Event`], then the limits
//!    of [`wire`] (id, URL, lengths, counts, times, email). A bad event becomes a
//!    [`Rejection`] with its index; a second event with an id already seen in the same
//!    batch becomes a [`Duplicate`]; the rest are [`ValidEvent`]s.
//!
//! Nothing here panics on any input (the `batch` fuzz target in `core/fuzz` checks
//! it), and every event of a readable envelope ends up in exactly one of the three
//! lists.
//!
//! ## Leniencies and decisions (the schema's fine print)
//! - A JSON `null` in an event (or in its `form`) counts as an absent field: optional
//!   fields become empty, required ones give `invalid_event` "missing field".
//! - An event with no `id` (or `"id": null`), as servers may send, is keyed by its
//!   content fingerprint (`fp_…`, see [`crate::dedup`]): that key becomes its id and
//!   is what [`Validated::results`] reports for it. An `id` that is present but
//!   malformed (`""`, too short or long, other characters) is `invalid_id`.
//! - A referrer may use any scheme (`android-app://…` is real) but must be an
//!   absolute URL or empty; the page URL must be absolute `http`/`https`.
//! - Property, trait and form values must be JSON strings (no numbers or booleans).
//! - `identify` emails are trimmed of surrounding whitespace, then must be a valid
//!   email address as a browser's `<input type=email>` defines it (WHATWG HTML,
//!   "valid e-mail address"), with at least one dot in the domain.
//! - **Secrets are never stored**: values whose key looks like a password, one-time
//!   code or payment-card field (see [`is_sensitive_field`]) are removed from
//!   `form.values`, `traits` and `props` before the event is accepted (the field
//!   *name* stays in `form.fields`, as names are always recorded). The tracker never
//!   sends them; this protects against servers and hand-written calls. The names
//!   removed are listed in [`ValidEvent::redacted`].
//! - Within one batch the first valid event with an id wins; later valid events with
//!   the same id are duplicates even if their content differs (the id alone is the
//!   deduplication key).
//!
//! ## Modes
//! - [`Mode::Collect`] (`/v1/collect`, the tracker's times): `sent_at` is required (a
//!   time between 1970 and JavaScript's largest safe integer); events older than
//!   `sent_at −` [`wire::MAX_EVENT_AGE_MS`] (72 hours) or newer than `sent_at +`
//!   [`wire::MAX_FUTURE_MS`] are refused; `derived_ts` corrects the device's clock
//!   skew with [`wire::derived_ts`] (so never more than 72 hours before, nor after,
//!   `received_at`). A device clock more than [`wire::MAX_CLOCK_SKEW_MS`] away from
//!   the edge's does not refuse the batch (the offsets still hold): it is flagged
//!   ([`Validated::clock_skewed`]) for the edge to count.
//!   After the envelope, the edge applies the site's own rules with
//!   [`Validated::apply_site_rules`]: events on foreign hosts, and `identify` events
//!   without a valid `user_hash` on a site that verifies identities, are rejected.
//! - [`Mode::Import`] (`events:import`, a server's recorded times taken as they are):
//!   `site_id` and `sent_at` may be left out (the site comes from the path; the edge
//!   compares a given `site_id` with it), there is no skew check and no age limit,
//!   `derived_ts` is `created_at`; only times before 1970 or more than
//!   [`wire::MAX_FUTURE_MS`] after `received_at` are refused.
//!
//! ```
//! use closeloop_core::validate::{validate, ValidateOptions};
//! use std::collections::HashSet;
//! let body = br#"{"site_id":"demo","visitor_id":"v-12345678","sent_at":1764000000500,
//!   "events":[
//!     {"id":"ev-00000001","type":"pageview","created_at":1764000000000,"url":"https://example.com/"},
//!     {"id":"ev-00000002","type":"pageview","created_at":1764000000100,"url":"ftp://example.com/"}]}"#;
//! let v = validate(body, &ValidateOptions::collect(1_764_000_001_000)).unwrap();
//! assert_eq!(v.events.len(), 1);
//! assert_eq!(v.events[0].derived_ts, 1_764_000_000_500); // received_at − 500 ms
//! assert_eq!(v.rejected[0].error.code, "invalid_url");
//! let results = v.results(&HashSet::new());
//! assert_eq!(results.len(), 2);
//! ```

use crate::dedup;
use crate::time::format_rfc3339;
use crate::wire::{self, CollectResponse, ErrorBody, ErrorDetail, Event, EventKind, EventResult};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// Every error code the ingestion endpoints answer with. The edge and the OpenAPI
/// document use [`ErrorCode::as_str`] / [`ErrorCode::ALL`], so the strings live only
/// here.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    // ---- batch level: the whole body is refused ----
    /// `body_too_large`: the body is longer than [`wire::MAX_BODY_BYTES`] (HTTP 413).
    BodyTooLarge,
    /// `malformed_json`: the body is not JSON (or not UTF-8, or nested too deep).
    MalformedJson,
    /// `invalid_batch`: the body is JSON but not a batch (not an object, a field of
    /// the wrong type).
    InvalidBatch,
    /// `missing_field`: a required batch field (`site_id`, `visitor_id`, `sent_at`,
    /// `events`) is absent or `null`.
    MissingField,
    /// `invalid_site_id`: `site_id` is empty, too long or has other characters than
    /// `[A-Za-z0-9_.-]`.
    InvalidSiteId,
    /// `invalid_visitor_id`: `visitor_id` is not [`wire::ID_LEN`] bytes of `[A-Za-z0-9_-]`.
    InvalidVisitorId,
    /// `empty_batch`: `events` is an empty list.
    EmptyBatch,
    /// `too_many_events`: more than [`wire::MAX_EVENTS_PER_BATCH`] events.
    TooManyEvents,
    // ---- event level: one event is rejected, the others go on ----
    /// `invalid_event`: not an object, a missing or mistyped field, an unknown
    /// `type`, an empty `track` name.
    InvalidEvent,
    /// `invalid_id`: the event's `id` is not [`wire::ID_LEN`] bytes of `[A-Za-z0-9_-]`.
    InvalidId,
    /// `invalid_url`: `url` is not an absolute `http` or `https` URL.
    InvalidUrl,
    /// `url_too_long`: `url` is longer than [`wire::MAX_URL_LEN`].
    UrlTooLong,
    /// `invalid_referrer`: `referrer` is neither empty nor an absolute URL.
    InvalidReferrer,
    /// `referrer_too_long`: `referrer` is longer than [`wire::MAX_URL_LEN`].
    ReferrerTooLong,
    /// `field_too_long`: a text field is longer than [`wire::MAX_FIELD_LEN`]
    /// (`form.action`: [`wire::MAX_URL_LEN`]).
    FieldTooLong,
    /// `too_many_fields`: more than [`wire::MAX_FIELDS`] form fields, values, traits
    /// or props.
    TooManyFields,
    /// `event_too_old`: created more than [`wire::MAX_EVENT_AGE_MS`] before `sent_at`
    /// (import: before 1970).
    EventTooOld,
    /// `event_in_future`: created more than [`wire::MAX_FUTURE_MS`] after `sent_at`
    /// (import: after `received_at`).
    EventInFuture,
    /// `invalid_email`: an `identify` event's email is not a valid address.
    InvalidEmail,
    /// `foreign_host`: the event's `url` is not on one of the site's hosts (the hosts of
    /// its allowed origins and its `extra_hosts`); see [`Validated::apply_site_rules`].
    ForeignHost,
    /// `user_hash_required`: the site verifies identities and this `identify` carries no
    /// [`wire::USER_HASH`].
    UserHashRequired,
    /// `invalid_user_hash`: the `identify`'s [`wire::USER_HASH`] is not the site's
    /// HMAC of its email ([`crate::identity::verify_user_hash`]).
    InvalidUserHash,
}

impl ErrorCode {
    /// Every code, batch-level ones first.
    pub const ALL: [ErrorCode; 22] = [
        ErrorCode::BodyTooLarge,
        ErrorCode::MalformedJson,
        ErrorCode::InvalidBatch,
        ErrorCode::MissingField,
        ErrorCode::InvalidSiteId,
        ErrorCode::InvalidVisitorId,
        ErrorCode::EmptyBatch,
        ErrorCode::TooManyEvents,
        ErrorCode::InvalidEvent,
        ErrorCode::InvalidId,
        ErrorCode::InvalidUrl,
        ErrorCode::UrlTooLong,
        ErrorCode::InvalidReferrer,
        ErrorCode::ReferrerTooLong,
        ErrorCode::FieldTooLong,
        ErrorCode::TooManyFields,
        ErrorCode::EventTooOld,
        ErrorCode::EventInFuture,
        ErrorCode::InvalidEmail,
        ErrorCode::ForeignHost,
        ErrorCode::UserHashRequired,
        ErrorCode::InvalidUserHash,
    ];

    /// The stable wire string, e.g. `"invalid_url"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::InvalidBatch => "invalid_batch",
            ErrorCode::MissingField => "missing_field",
            ErrorCode::InvalidSiteId => "invalid_site_id",
            ErrorCode::InvalidVisitorId => "invalid_visitor_id",
            ErrorCode::EmptyBatch => "empty_batch",
            ErrorCode::TooManyEvents => "too_many_events",
            ErrorCode::InvalidEvent => "invalid_event",
            ErrorCode::InvalidId => "invalid_id",
            ErrorCode::InvalidUrl => "invalid_url",
            ErrorCode::UrlTooLong => "url_too_long",
            ErrorCode::InvalidReferrer => "invalid_referrer",
            ErrorCode::ReferrerTooLong => "referrer_too_long",
            ErrorCode::FieldTooLong => "field_too_long",
            ErrorCode::TooManyFields => "too_many_fields",
            ErrorCode::EventTooOld => "event_too_old",
            ErrorCode::EventInFuture => "event_in_future",
            ErrorCode::InvalidEmail => "invalid_email",
            ErrorCode::ForeignHost => "foreign_host",
            ErrorCode::UserHashRequired => "user_hash_required",
            ErrorCode::InvalidUserHash => "invalid_user_hash",
        }
    }

    /// The code whose wire string is `s`.
    pub fn parse(s: &str) -> Option<Self> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether this code refuses a whole batch (as opposed to one event).
    pub fn is_batch_level(self) -> bool {
        matches!(
            self,
            ErrorCode::BodyTooLarge
                | ErrorCode::MalformedJson
                | ErrorCode::InvalidBatch
                | ErrorCode::MissingField
                | ErrorCode::InvalidSiteId
                | ErrorCode::InvalidVisitorId
                | ErrorCode::EmptyBatch
                | ErrorCode::TooManyEvents
        )
    }

    /// The HTTP status of a batch answered with this code: 413 for
    /// `body_too_large`, 400 for the rest. (Event-level codes travel inside a 200
    /// answer's `results`.)
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BodyTooLarge => 413,
            _ => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The whole batch was refused: nothing of it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    /// What kind of problem.
    pub code: ErrorCode,
    /// A sentence for the human reading the answer.
    pub message: String,
}

impl BatchError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        BatchError {
            code,
            message: message.into(),
        }
    }

    /// As the wire's `{"code", "message"}`.
    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.code.as_str().to_string(),
            message: self.message.clone(),
        }
    }

    /// As the full answer body `{"error": {"code", "message"}}`.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.detail(),
        }
    }

    /// The HTTP status to answer with (see [`ErrorCode::http_status`]).
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for BatchError {}

/// Which endpoint's rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `POST /v1/collect`: device times, clock-skew corrected, age-limited.
    Collect,
    /// `POST /v1/sites/{site}/events:import`: recorded times taken as they are.
    Import,
}

/// What the validator needs to know besides the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidateOptions {
    /// When the edge received the body (ms since the epoch, the edge's clock).
    pub received_at: i64,
    /// Which endpoint's rules apply.
    pub mode: Mode,
}

impl ValidateOptions {
    /// Options for `POST /v1/collect`.
    pub fn collect(received_at: i64) -> Self {
        ValidateOptions {
            received_at,
            mode: Mode::Collect,
        }
    }

    /// Options for `POST /v1/sites/{site}/events:import`.
    pub fn import(received_at: i64) -> Self {
        ValidateOptions {
            received_at,
            mode: Mode::Import,
        }
    }
}

/// An event that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidEvent {
    /// An `identify`'s [`wire::USER_HASH`] as sent (taken out of the event and its
    /// traits: never stored).
    pub user_hash: Option<String>,
    /// Whether [`Validated::apply_site_rules`] verified this `identify`'s `user_hash`.
    pub verified: bool,
    /// Its position in the batch's `events` (0-based).
    pub index: usize,
    /// The event, with its id filled in (the content fingerprint when it came
    /// without one), secret values removed and the identify email trimmed.
    pub event: Event,
    /// When it happened by the edge's clock (collect: [`wire::derived_ts`]; import:
    /// `created_at`).
    pub derived_ts: i64,
    /// Whether `event.id` is a content fingerprint made here (the sender gave no id).
    pub id_from_content: bool,
    /// The keys whose values were removed as secrets (see [`is_sensitive_field`]).
    pub redacted: Vec<String>,
}

/// An event that was refused. Nothing of it may be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Its position in the batch's `events` (0-based).
    pub index: usize,
    /// Its `id` as sent when that was a string (cut to [`wire::MAX_FIELD_LEN`]
    /// bytes), otherwise empty.
    pub id: String,
    /// Why, as a code.
    pub code: ErrorCode,
    /// Why, as the wire's `{"code", "message"}`.
    pub error: ErrorDetail,
}

/// A valid event whose id an earlier valid event of the same batch already had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// Its position in the batch's `events` (0-based).
    pub index: usize,
    /// The id (or fingerprint) it shares.
    pub id: String,
    /// The position of the event that is kept.
    pub first_index: usize,
}

/// A batch whose envelope was readable, split into accepted, rejected and
/// duplicate events. Every index `0..event_count` is in exactly one of the lists.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    /// The site's public id (import: empty when the body left it out).
    pub site_id: String,
    /// The visitor's id.
    pub visitor_id: String,
    /// When the device sent the batch (import: `received_at` when left out).
    pub sent_at: i64,
    /// Events the tracker dropped from its queue since its last batch.
    pub dropped: u32,
    /// The options the batch was validated with.
    pub options: ValidateOptions,
    /// How many events the envelope had.
    pub event_count: usize,
    /// The accepted events, in batch order.
    pub events: Vec<ValidEvent>,
    /// The refused events, in batch order.
    pub rejected: Vec<Rejection>,
    /// Repeats of an accepted event within this batch, in batch order.
    pub duplicates_in_batch: Vec<Duplicate>,
    /// How far the device clock is ahead of the edge's (`sent_at − received_at`, ms;
    /// 0 in import mode).
    pub clock_skew_ms: i64,
}

/// What a site allows of its beacons: [`Validated::apply_site_rules`].
#[derive(Debug, Clone, Copy)]
pub struct SiteRules<'a> {
    /// The hosts events may be recorded on (lower case): the hosts of the site's
    /// allowed origins and its extra hosts.
    pub hosts: &'a [String],
    /// The site's identity secret, when it verifies identities.
    pub identity_secret: Option<&'a str>,
}

/// Whether `url`'s host is one of `hosts` (ASCII case-insensitive; ports and schemes
/// are not compared: `http://127.0.0.1:8080` and `http://127.0.0.1:9000` share a host).
///
/// ```
/// use closeloop_core::validate::host_allowed;
/// let hosts = vec!["www.example.com".to_string()];
/// assert!(host_allowed("https://WWW.example.com/pricing?x=1", &hosts));
/// assert!(!host_allowed("https://example.com/", &hosts));
/// assert!(!host_allowed("https://evil.example/?utm_source=spam", &hosts));
/// ```
pub fn host_allowed(url: &str, hosts: &[String]) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    let Some(host) = u.host_str() else {
        return false;
    };
    hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
}

impl Validated {
    /// Whether the device clock was more than [`wire::MAX_CLOCK_SKEW_MS`] away from the
    /// edge's (the batch is kept; its times come from its own offsets).
    pub fn clock_skewed(&self) -> bool {
        self.clock_skew_ms.unsigned_abs() > wire::MAX_CLOCK_SKEW_MS.unsigned_abs()
    }

    /// Applies a site's rules to the accepted events, moving the ones that break them
    /// to [`Validated::rejected`] (and their repeats within the batch with them):
    /// - `foreign_host`: the event's URL is not on one of `rules.hosts`;
    /// - with an identity secret, an `identify` without [`wire::USER_HASH`] is
    ///   `user_hash_required`, one whose hash is not the secret's HMAC of its email is
    ///   `invalid_user_hash`, and one that passes is marked [`ValidEvent::verified`].
    ///
    /// Only for `/v1/collect` (a browser is untrusted); `events:import` comes with the
    /// write key.
    pub fn apply_site_rules(&mut self, rules: &SiteRules<'_>) {
        let mut kept = Vec::with_capacity(self.events.len());
        for mut e in std::mem::take(&mut self.events) {
            let problem = if !host_allowed(&e.event.url, rules.hosts) {
                Some((
                    ErrorCode::ForeignHost,
                    format!(
                        "`url` is on `{}`, which is not one of this site's hosts",
                        cut(
                            url::Url::parse(&e.event.url)
                                .ok()
                                .and_then(|u| u.host_str().map(String::from))
                                .as_deref()
                                .unwrap_or(""),
                            100
                        )
                    ),
                ))
            } else {
                match (&e.event.kind, rules.identity_secret) {
                    (EventKind::Identify { email, .. }, Some(secret)) => {
                        match e.user_hash.as_deref() {
                            None => Some((
                                ErrorCode::UserHashRequired,
                                "this site verifies identities: `identify` needs the \
                                 `user_hash` its server computes"
                                    .to_string(),
                            )),
                            Some(h) if !crate::identity::verify_user_hash(secret, email, h) => {
                                Some((
                                    ErrorCode::InvalidUserHash,
                                    "`user_hash` is not the site's HMAC-SHA256 of this email"
                                        .to_string(),
                                ))
                            }
                            Some(_) => {
                                e.verified = true;
                                None
                            }
                        }
                    }
                    _ => None,
                }
            };
            match problem {
                None => kept.push(e),
                Some((code, message)) => {
                    let id = if e.id_from_content {
                        String::new()
                    } else {
                        e.event.id.clone()
                    };
                    for d in self
                        .duplicates_in_batch
                        .iter()
                        .filter(|d| d.first_index == e.index)
                    {
                        self.rejected.push(Rejection {
                            index: d.index,
                            id: id.clone(),
                            code,
                            error: ErrorDetail {
                                code: code.as_str().to_string(),
                                message: message.clone(),
                            },
                        });
                    }
                    self.duplicates_in_batch
                        .retain(|d| d.first_index != e.index);
                    self.rejected.push(Rejection {
                        index: e.index,
                        id,
                        code,
                        error: ErrorDetail {
                            code: code.as_str().to_string(),
                            message,
                        },
                    });
                }
            }
        }
        self.events = kept;
        self.rejected.sort_by_key(|r| r.index);
    }

    /// The ids of the accepted events, for the store to look up which it already
    /// holds.
    pub fn ids(&self) -> Vec<&str> {
        self.events.iter().map(|e| e.event.id.as_str()).collect()
    }

    /// One [`EventResult`] per event of the batch, in order. `already_present` holds
    /// the ids the store found already stored: those accepted events are answered
    /// `duplicate`, as are repeats within the batch.
    pub fn results(&self, already_present: &HashSet<String>) -> Vec<EventResult> {
        let mut slots: Vec<Option<EventResult>> = vec![None; self.event_count];
        for e in &self.events {
            let status = if already_present.contains(&e.event.id) {
                wire::Status::Duplicate
            } else {
                wire::Status::Accepted
            };
            put(&mut slots, e.index, e.event.id.clone(), status, None);
        }
        for d in &self.duplicates_in_batch {
            put(
                &mut slots,
                d.index,
                d.id.clone(),
                wire::Status::Duplicate,
                None,
            );
        }
        for r in &self.rejected {
            put(
                &mut slots,
                r.index,
                r.id.clone(),
                wire::Status::Rejected,
                Some(r.error.clone()),
            );
        }
        slots.into_iter().flatten().collect()
    }

    /// The whole `/v1/collect` answer: [`Validated::results`] with its counts and
    /// the visitor's touch.
    pub fn response(
        &self,
        already_present: &HashSet<String>,
        touch: Option<wire::TouchAck>,
    ) -> CollectResponse {
        let results = self.results(already_present);
        let count = |s: wire::Status| results.iter().filter(|r| r.status == s).count() as u32;
        CollectResponse {
            accepted: count(wire::Status::Accepted),
            duplicates: count(wire::Status::Duplicate),
            rejected: count(wire::Status::Rejected),
            results,
            touch,
        }
    }
}

fn put(
    slots: &mut [Option<EventResult>],
    index: usize,
    id: String,
    status: wire::Status,
    error: Option<ErrorDetail>,
) {
    if let Some(slot) = slots.get_mut(index) {
        *slot = Some(EventResult { id, status, error });
    }
}

/// Parses and validates one ingestion body. `Err` refuses the whole batch; `Ok`
/// holds every event's fate.
pub fn validate(body: &[u8], options: &ValidateOptions) -> Result<Validated, BatchError> {
    use ErrorCode as C;
    let import = options.mode == Mode::Import;
    if body.len() > wire::MAX_BODY_BYTES {
        return Err(BatchError::new(
            C::BodyTooLarge,
            format!(
                "the body is {} bytes; the limit is {} bytes",
                body.len(),
                wire::MAX_BODY_BYTES
            ),
        ));
    }
    let root: Value = serde_json::from_slice(body).map_err(|e| {
        BatchError::new(
            C::MalformedJson,
            format!("the body is not valid JSON: {}", tidy(&e.to_string())),
        )
    })?;
    let Value::Object(mut obj) = root else {
        return Err(BatchError::new(
            C::InvalidBatch,
            format!(
                "the body must be a JSON object (a batch), not {}",
                kind_of(&root)
            ),
        ));
    };

    let site_id = match take(&mut obj, "site_id") {
        None if import => String::new(),
        None => return Err(missing("site_id")),
        Some(Value::String(s)) => {
            if !valid_site_id(&s) {
                return Err(BatchError::new(
                    C::InvalidSiteId,
                    "`site_id` must be 1 to 64 characters of A-Z, a-z, 0-9, `_`, `.` or `-`",
                ));
            }
            s
        }
        Some(other) => return Err(wrong_type("site_id", "a string", &other)),
    };
    let visitor_id = match take(&mut obj, "visitor_id") {
        None => return Err(missing("visitor_id")),
        Some(Value::String(s)) => {
            if !valid_id(&s) {
                return Err(BatchError::new(
                    C::InvalidVisitorId,
                    id_rule_message("`visitor_id`"),
                ));
            }
            s
        }
        Some(other) => return Err(wrong_type("visitor_id", "a string", &other)),
    };
    let sent_at = match take(&mut obj, "sent_at") {
        None if import => options.received_at,
        None => return Err(missing("sent_at")),
        Some(v) => v.as_i64().ok_or_else(|| {
            wrong_type("sent_at", "an integer (milliseconds since the epoch)", &v)
        })?,
    };
    let dropped = match take(&mut obj, "dropped") {
        None => 0,
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| wrong_type("dropped", "a non-negative integer", &v))?,
    };
    let raw_events = match take(&mut obj, "events") {
        None => return Err(missing("events")),
        Some(Value::Array(list)) => list,
        Some(other) => return Err(wrong_type("events", "a list", &other)),
    };
    if raw_events.is_empty() {
        return Err(BatchError::new(
            C::EmptyBatch,
            "`events` is empty: send at least one event",
        ));
    }
    if raw_events.len() > wire::MAX_EVENTS_PER_BATCH {
        return Err(BatchError::new(
            C::TooManyEvents,
            format!(
                "the batch has {} events; the limit is {}",
                raw_events.len(),
                wire::MAX_EVENTS_PER_BATCH
            ),
        ));
    }
    if !(0..=MAX_SAFE_MS).contains(&sent_at) {
        return Err(BatchError::new(
            C::InvalidBatch,
            "`sent_at` must be a time in milliseconds since 1970 (at most 2^53 - 1)",
        ));
    }
    let clock_skew_ms = if import {
        0
    } else {
        sent_at.saturating_sub(options.received_at)
    };

    let event_count = raw_events.len();
    let ctx = Ctx {
        site_id: &site_id,
        visitor_id: &visitor_id,
        sent_at,
        options,
    };
    let mut events: Vec<ValidEvent> = Vec::with_capacity(event_count);
    let mut rejected = Vec::new();
    let mut duplicates_in_batch = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, raw) in raw_events.into_iter().enumerate() {
        match check_event(index, raw, &ctx) {
            Ok(valid) => {
                if let Some(&first_index) = seen.get(&valid.event.id) {
                    duplicates_in_batch.push(Duplicate {
                        index,
                        id: valid.event.id,
                        first_index,
                    });
                } else {
                    seen.insert(valid.event.id.clone(), index);
                    events.push(valid);
                }
            }
            Err(r) => rejected.push(r),
        }
    }
    Ok(Validated {
        site_id,
        visitor_id,
        sent_at,
        dropped,
        options: *options,
        event_count,
        events,
        rejected,
        duplicates_in_batch,
        clock_skew_ms,
    })
}

/// The largest time a JavaScript number holds exactly (2^53 − 1 ms): what D1 and the
/// tracker can carry.
const MAX_SAFE_MS: i64 = (1 << 53) - 1;

/// Removes `key` from `obj`; a `null` counts as absent.
fn take(obj: &mut Map<String, Value>, key: &str) -> Option<Value> {
    obj.remove(key).filter(|v| !v.is_null())
}

fn missing(field: &str) -> BatchError {
    BatchError::new(
        ErrorCode::MissingField,
        format!("the batch has no `{field}`"),
    )
}

fn wrong_type(field: &str, want: &str, got: &Value) -> BatchError {
    BatchError::new(
        ErrorCode::InvalidBatch,
        format!("`{field}` must be {want}, not {}", kind_of(got)),
    )
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a fractional or out-of-range number",
        Value::Number(n) if n.is_i64() && n.as_i64().is_some_and(|n| n < 0) => "a negative number",
        Value::Number(_) => "a number out of range",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Whether `s` is a valid client-made id (visitor or event): [`wire::ID_LEN`] bytes
/// of `[A-Za-z0-9_-]`.
pub fn valid_id(s: &str) -> bool {
    wire::ID_LEN.contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `s` is a valid site id: 1 to 64 bytes of `[A-Za-z0-9_.-]`.
pub fn valid_site_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

fn id_rule_message(what: &str) -> String {
    format!(
        "{what} must be {} to {} characters of A-Z, a-z, 0-9, `_` or `-`",
        wire::ID_LEN.start(),
        wire::ID_LEN.end()
    )
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// A serde message made fit for a human answer: no position suffix, bounded length
/// (serde quotes the offending value, which may be huge).
fn tidy(message: &str) -> String {
    let message = match message.rfind(" at line ") {
        Some(at) if message.get(at..).is_some_and(|t| t.contains(" column ")) => {
            message.get(..at).unwrap_or(message)
        }
        _ => message,
    };
    let short = cut(message, 200);
    if short.len() < message.len() {
        format!("{short}…")
    } else {
        short.to_string()
    }
}

struct Ctx<'a> {
    site_id: &'a str,
    visitor_id: &'a str,
    sent_at: i64,
    options: &'a ValidateOptions,
}

type Problem = (ErrorCode, String);

fn check_event(index: usize, raw: Value, ctx: &Ctx<'_>) -> Result<ValidEvent, Rejection> {
    let mut sent_id = String::new();
    let reject = |sent_id: &str, (code, message): Problem| Rejection {
        index,
        id: cut(sent_id, wire::MAX_FIELD_LEN).to_string(),
        code,
        error: ErrorDetail {
            code: code.as_str().to_string(),
            message,
        },
    };
    let Value::Object(mut obj) = raw else {
        return Err(reject(
            &sent_id,
            (
                ErrorCode::InvalidEvent,
                format!("an event must be a JSON object, not {}", kind_of(&raw)),
            ),
        ));
    };
    strip_nulls(&mut obj);
    if let Some(Value::Object(form)) = obj.get_mut("form") {
        strip_nulls(form);
    }
    // the identity hash travels beside the event's fields, never into a stored one
    let mut user_hash = match obj.remove(wire::USER_HASH) {
        Some(Value::String(h)) => Some(h),
        _ => None,
    };
    let id_from_content = match obj.get("id") {
        None => {
            obj.insert("id".to_string(), Value::String(String::new()));
            true
        }
        Some(Value::String(s)) => {
            sent_id = s.clone();
            if !valid_id(s) {
                return Err(reject(
                    &sent_id,
                    (ErrorCode::InvalidId, id_rule_message("the event's `id`")),
                ));
            }
            false
        }
        Some(other) => {
            let msg = format!("`id` must be a string, not {}", kind_of(other));
            return Err(reject(&sent_id, (ErrorCode::InvalidEvent, msg)));
        }
    };
    let mut event: Event = serde_json::from_value(Value::Object(obj)).map_err(|e| {
        reject(
            &sent_id,
            (
                ErrorCode::InvalidEvent,
                format!(
                    "the event does not fit the schema: {}",
                    tidy(&e.to_string())
                ),
            ),
        )
    })?;
    if let EventKind::Identify { traits, .. } = &mut event.kind {
        if let Some(h) = traits.remove(wire::USER_HASH) {
            user_hash.get_or_insert(h);
        }
    }
    check_limits(&mut event).map_err(|p| reject(&sent_id, p))?;
    let derived_ts = check_times(&event, ctx).map_err(|p| reject(&sent_id, p))?;
    let redacted = redact(&mut event.kind);
    if id_from_content {
        event.id = dedup::fingerprint(ctx.site_id, ctx.visitor_id, &event);
    }
    Ok(ValidEvent {
        user_hash,
        verified: false,
        index,
        event,
        derived_ts,
        id_from_content,
        redacted,
    })
}

fn strip_nulls(obj: &mut Map<String, Value>) {
    obj.retain(|_, v| !v.is_null());
}

/// `value` may be at most `max` bytes; `code` says which limit it broke.
fn check_len(code: ErrorCode, what: &str, value: &str, max: usize) -> Result<(), Problem> {
    if value.len() > max {
        Err((
            code,
            format!(
                "{what} is {} bytes long; the limit is {max} bytes",
                value.len()
            ),
        ))
    } else {
        Ok(())
    }
}

/// A text field of the event's own: at most `max` bytes, else `field_too_long`.
fn check_field(what: &str, value: &str, max: usize) -> Result<(), Problem> {
    check_len(ErrorCode::FieldTooLong, what, value, max)
}

fn check_map(what: &str, map: &BTreeMap<String, String>) -> Result<(), Problem> {
    if map.len() > wire::MAX_FIELDS {
        return Err((
            ErrorCode::TooManyFields,
            format!(
                "{what} has {} entries; the limit is {}",
                map.len(),
                wire::MAX_FIELDS
            ),
        ));
    }
    for (k, v) in map {
        check_field(&format!("a key of {what}"), k, wire::MAX_FIELD_LEN)?;
        check_field(
            &format!("{what}[\"{}\"]", cut(k, 40)),
            v,
            wire::MAX_FIELD_LEN,
        )?;
    }
    Ok(())
}

fn check_limits(event: &mut Event) -> Result<(), Problem> {
    check_len(
        ErrorCode::UrlTooLong,
        "`url`",
        &event.url,
        wire::MAX_URL_LEN,
    )?;
    match url::Url::parse(&event.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        Ok(u) => {
            return Err((
                ErrorCode::InvalidUrl,
                format!(
                    "`url` must be an http or https URL, not `{}:`",
                    cut(u.scheme(), 20)
                ),
            ))
        }
        Err(e) => {
            return Err((
                ErrorCode::InvalidUrl,
                format!("`url` is not an absolute URL: {e}"),
            ))
        }
    }
    if let Some(r) = event.referrer.as_deref().filter(|r| !r.is_empty()) {
        check_len(
            ErrorCode::ReferrerTooLong,
            "`referrer`",
            r,
            wire::MAX_URL_LEN,
        )?;
        if let Err(e) = url::Url::parse(r) {
            return Err((
                ErrorCode::InvalidReferrer,
                format!("`referrer` must be empty or an absolute URL: {e}"),
            ));
        }
    }
    let field = wire::MAX_FIELD_LEN;
    match &mut event.kind {
        EventKind::Pageview { title } => {
            if let Some(t) = title {
                check_field("`title`", t, field)?;
            }
        }
        EventKind::FormSubmit { form } => {
            if let Some(v) = &form.id {
                check_field("`form.id`", v, field)?;
            }
            if let Some(v) = &form.name {
                check_field("`form.name`", v, field)?;
            }
            if let Some(v) = &form.action {
                check_field("`form.action`", v, wire::MAX_URL_LEN)?;
            }
            if form.fields.len() > wire::MAX_FIELDS {
                return Err((
                    ErrorCode::TooManyFields,
                    format!(
                        "`form.fields` has {} names; the limit is {}",
                        form.fields.len(),
                        wire::MAX_FIELDS
                    ),
                ));
            }
            for f in &form.fields {
                check_field("a name in `form.fields`", f, field)?;
            }
            check_map("`form.values`", &form.values)?;
        }
        EventKind::Identify { email, traits } => {
            let trimmed = email.trim();
            check_field("`email`", trimmed, field)?;
            if !valid_email(trimmed) {
                return Err((
                    ErrorCode::InvalidEmail,
                    format!("`{}` is not a valid email address", cut(trimmed, 80)),
                ));
            }
            if trimmed.len() != email.len() {
                *email = trimmed.to_string();
            }
            check_map("`traits`", traits)?;
        }
        EventKind::Track { name, props } => {
            if name.trim().is_empty() {
                return Err((
                    ErrorCode::InvalidEvent,
                    "a `track` event needs a non-empty `name`".to_string(),
                ));
            }
            check_field("`name`", name, field)?;
            check_map("`props`", props)?;
        }
    }
    Ok(())
}

/// Checks `created_at` against the mode's window and gives the derived time.
fn check_times(event: &Event, ctx: &Ctx<'_>) -> Result<i64, Problem> {
    let created = event.created_at;
    match ctx.options.mode {
        Mode::Collect => {
            let oldest = ctx.sent_at.saturating_sub(wire::MAX_EVENT_AGE_MS);
            let newest = ctx.sent_at.saturating_add(wire::MAX_FUTURE_MS);
            if created < oldest {
                return Err((
                    ErrorCode::EventTooOld,
                    format!(
                        "`created_at` ({}) is more than 72 hours before `sent_at` ({}): \
                         older events go through events:import",
                        format_rfc3339(created),
                        format_rfc3339(ctx.sent_at)
                    ),
                ));
            }
            if created > newest {
                return Err((
                    ErrorCode::EventInFuture,
                    format!(
                        "`created_at` ({}) is after `sent_at` ({})",
                        format_rfc3339(created),
                        format_rfc3339(ctx.sent_at)
                    ),
                ));
            }
            Ok(wire::derived_ts(
                created,
                ctx.sent_at,
                ctx.options.received_at,
            ))
        }
        Mode::Import => {
            if created < 0 {
                return Err((
                    ErrorCode::EventTooOld,
                    format!(
                        "`created_at` ({}) is before 1970-01-01",
                        format_rfc3339(created)
                    ),
                ));
            }
            if created > ctx.options.received_at.saturating_add(wire::MAX_FUTURE_MS) {
                return Err((
                    ErrorCode::EventInFuture,
                    format!(
                        "`created_at` ({}) is in the future (now is {})",
                        format_rfc3339(created),
                        format_rfc3339(ctx.options.received_at)
                    ),
                ));
            }
            Ok(created)
        }
    }
}

/// Whether `s` is a valid email address: WHATWG HTML's "valid e-mail address" (what
/// `<input type=email>` accepts: `local@label(.label)*`, local part of
/// ``A-Za-z0-9.!#$%&'*+/=?^_`{|}~-``, labels of 1–63 letters, digits and inner
/// hyphens), with at least two labels in the domain (`ann@localhost` is no lead).
pub fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&b));
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        (1..=63).contains(&b.len())
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            && b.first().is_some_and(u8::is_ascii_alphanumeric)
            && b.last().is_some_and(u8::is_ascii_alphanumeric)
    };
    local_ok && domain.split('.').count() >= 2 && domain.split('.').all(label_ok)
}

/// Whether a form field, trait or property named `name` must not have its value
/// stored: it looks like a password, a one-time code, or payment-card data.
///
/// The name is split into lowercase words (at non-alphanumerics and camelCase
/// humps: `newPassword` → `new`, `password`). It is sensitive when a word is one of
/// `pass`, `password`, `passwd`, `pwd`, `passphrase`, `passcode`, `pin`, `secret`,
/// `otp`, `cc` (the `autocomplete="cc-*"` family), `cvv`, `cvc`, `cvv2`, `cvc2`,
/// `csc`, `iban`, `ssn`, or when the name's letters and digits run together contain
/// `password`, `passwd`, `creditcard`, `cardnumber`, `ccnumber`, `cardcvc`,
/// `cardcvv`, `cardexp`, `securitycode` or `cardholder`. It errs on the side of
/// dropping (`email_cc` is dropped too).
///
/// ```
/// use closeloop_core::validate::is_sensitive_field;
/// assert!(is_sensitive_field("password"));
/// assert!(is_sensitive_field("newPassword"));
/// assert!(is_sensitive_field("cc-number"));
/// assert!(is_sensitive_field("card_number"));
/// assert!(!is_sensitive_field("email"));
/// assert!(!is_sensitive_field("company"));
/// assert!(!is_sensitive_field("shipping"));
/// ```
pub fn is_sensitive_field(name: &str) -> bool {
    const WORDS: &[&str] = &[
        "pass",
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "passcode",
        "pin",
        "secret",
        "otp",
        "cc",
        "cvv",
        "cvc",
        "cvv2",
        "cvc2",
        "csc",
        "iban",
        "ssn",
    ];
    const PARTS: &[&str] = &[
        "password",
        "passwd",
        "creditcard",
        "cardnumber",
        "ccnumber",
        "cardcvc",
        "cardcvv",
        "cardexp",
        "securitycode",
        "cardholder",
    ];
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for ch in name.chars() {
        if ch.is_alphanumeric() {
            if ch.is_uppercase() && prev_lower && !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            prev_lower = ch.is_lowercase() || ch.is_numeric();
            word.extend(ch.to_lowercase());
        } else {
            prev_lower = false;
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    if words.iter().any(|w| WORDS.contains(&w.as_str())) {
        return true;
    }
    let joined: String = words.concat();
    PARTS.iter().any(|p| joined.contains(p))
}

/// Removes secret values from an event's maps; returns the keys removed.
fn redact(kind: &mut EventKind) -> Vec<String> {
    let map = match kind {
        EventKind::FormSubmit { form } => &mut form.values,
        EventKind::Identify { traits, .. } => traits,
        EventKind::Track { props, .. } => props,
        EventKind::Pageview { .. } => return Vec::new(),
    };
    let removed: Vec<String> = map
        .keys()
        .filter(|k| is_sensitive_field(k))
        .cloned()
        .collect();
    for k in &removed {
        map.remove(k);
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()));
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
        }
        assert_eq!(ErrorCode::parse("nope"), None);
        assert_eq!(
            ErrorCode::ALL.iter().filter(|c| c.is_batch_level()).count(),
            8
        );
    }

    #[test]
    fn tidy_strips_position_and_bounds_length() {
        assert_eq!(tidy("expected value at line 1 column 5"), "expected value");
        let long = "x".repeat(1000);
        assert!(tidy(&long).len() <= 200 + '…'.len_utf8());
        assert_eq!(cut("héllo", 2), "h");
    }

    #[test]
    fn emails() {
        for ok in ["ann@example.com", "a.b+tag@sub.example.co.uk", "x_y@a-b.io"] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@localhost",
            "ann@@example.com",
            "ann@-example.com",
            "ann@example-.com",
            "ann@example..com",
            "an n@example.com",
            "jöhn@example.com",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn sensitive_names() {
        for s in [
            "pwd",
            "user[password]",
            "current-password",
            "PASSWORD",
            "cc-exp-month",
            "cc-csc",
            "creditCardNumber",
            "card-cvc",
            "pin",
            "otp_code",
        ] {
            assert!(is_sensitive_field(s), "{s}");
        }
        for s in ["email", "name", "phone", "className", "spinner", "topic"] {
            assert!(!is_sensitive_field(s), "{s}");
        }
    }
}
