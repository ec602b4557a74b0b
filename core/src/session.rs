//! Sessions: cutting one visitor's events into sessions, each with its touch (entry source).
//!
//! # The rules
//!
//! A visitor's events are put in time order (by `derived_ts`, ties broken by event id, so the
//! result never depends on the order in which events arrived). A new session starts:
//!
//! - at the visitor's first event;
//! - when more than [`SESSION_TIMEOUT_MS`] (30 minutes) passed since the previous event. The
//!   bound is **exclusive**: a gap of exactly 30 minutes (1 800 000 ms) continues the session, a
//!   gap of 30 minutes + 1 ms starts a new one (Matomo's rule: a visit ends when the last
//!   action is *more than* 30 minutes old);
//! - when the visitor arrives again from an external source ([`Arrival::Tagged`] or a
//!   non-excluded [`Arrival::Referral`]) that differs from the current session's source (a new
//!   UTM tag set, a new click id, a new external referrer host). Arriving again from the same
//!   source continues the session. A session that began as `direct` is ended by any external
//!   arrival: the campaign that brings the visitor back deserves its touch.
//!
//! Never a new session (before the timeout): an internal navigation ([`Arrival::Internal`]:
//! single-page-app navigations, form submits, custom events, page loads with a same-site
//! referrer), a page load with no referrer and no tags ([`Arrival::Direct`]: a bookmark, a
//! reload, a typed URL), and a page load whose referrer host is **excluded** (payment and
//! sign-in round trips: Stripe Checkout, PayPal, 3-D Secure pages, OAuth providers, and the
//! site's own exclusion list). The caller decides exclusion through the predicate given to
//! [`sessionize`] (the edge passes `channel::is_excluded_referrer` together with a same-site
//! check), so a checkout redirect never steals the credit from the campaign that brought the
//! buyer.
//!
//! # The touch
//!
//! A session's touch is the source of its first event. After a timeout the new session's touch
//! is the entry of its own first event: when that event has no external source (an internal
//! navigation after 30 idle minutes, a return from an excluded payment page that took too long,
//! a direct load) the new session is **direct**. It does not inherit the previous session's
//! campaign: Google Analytics 4 does not either, and an analytics engineer reading the report
//! expects "what brought this session" to be the session's own entry. (`last_non_direct`
//! attribution is the model that looks past direct sessions.)
//!
//! The session logic is generic over the source type `S`: two arrivals are "the same source"
//! when their `S` values are equal, so `S` must carry everything that distinguishes a source
//! (UTM tags, click id, referrer host) as well as whatever the caller wants to keep for the
//! touch (its channel).

use serde::{Deserialize, Serialize};

/// The inactivity after which a session ends: 30 minutes, in milliseconds. A gap strictly
/// greater than this starts a new session; a gap of exactly this much does not.
pub const SESSION_TIMEOUT_MS: i64 = 30 * 60 * 1000;

/// How an event says the visitor got to it: the part of an event's entry information that
/// sessionisation needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrival<S> {
    /// Not an arrival from outside: a single-page-app navigation, a form submit, a custom
    /// event, or a page load whose referrer is the site itself.
    Internal,
    /// A page load with no referrer, no UTM tags and no click id.
    Direct,
    /// A page load with UTM tags or an ad click id (they win over any referrer).
    Tagged(S),
    /// A page load from another site's page, without tags or click id.
    Referral {
        /// The referrer's host, checked against the exclusion predicate.
        host: String,
        /// The source this referral stands for.
        source: S,
    },
}

/// One event of one visitor, as sessionisation sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEvent<S> {
    /// The event's unique id: the tie-breaker between events at the same time.
    pub id: String,
    /// The event's time (`derived_ts`, ms since the epoch).
    pub at: i64,
    /// The page path the event happened on.
    pub path: String,
    /// How the visitor got to it.
    pub arrival: Arrival<S>,
}

/// One session of one visitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session<S> {
    /// Time of its first event (ms since the epoch).
    pub start: i64,
    /// Time of its last event.
    pub end: i64,
    /// Its touch: the entry source, `None` for a direct session.
    pub touch: Option<S>,
    /// The page path of its first event (the entrance page).
    pub landing_path: String,
    /// Its events, as indices into the slice given to [`sessionize`], in time order.
    pub events: Vec<usize>,
}

impl<S> Session<S> {
    /// Whether this session is a `direct` touch (no referrer, no tags at its entry).
    pub fn is_direct(&self) -> bool {
        self.touch.is_none()
    }
}

/// Cuts one visitor's events into sessions with the default 30-minute timeout.
///
/// `is_excluded(host)` says whether a referrer host must not start a session (same-site hosts
/// and payment or sign-in providers). Events may come in any order; sessions come out in time
/// order. Event ids are expected to be unique (the edge deduplicates by id); two events with
/// the same time and the same id keep their input order. See the [module docs](self) for the
/// rules.
///
/// ```
/// use closeloop_core::session::{sessionize, Arrival, SessionEvent};
/// let ev = |id: &str, at: i64, arrival| SessionEvent { id: id.into(), at, path: "/".into(), arrival };
/// let events = vec![
///     ev("a", 0, Arrival::Tagged("newsletter")),
///     ev("b", 60_000, Arrival::Referral { host: "checkout.stripe.com".into(), source: "stripe" }),
///     ev("c", 120_000, Arrival::Tagged("google-ads")),
/// ];
/// let sessions = sessionize(&events, |host| host.ends_with("stripe.com"));
/// assert_eq!(sessions.len(), 2);
/// assert_eq!(sessions[0].touch, Some("newsletter"));
/// assert_eq!(sessions[0].events, vec![0, 1]);
/// assert_eq!(sessions[1].touch, Some("google-ads"));
/// ```
pub fn sessionize<S, F>(events: &[SessionEvent<S>], is_excluded: F) -> Vec<Session<S>>
where
    S: Clone + PartialEq,
    F: Fn(&str) -> bool,
{
    sessionize_with_timeout(events, SESSION_TIMEOUT_MS, is_excluded)
}

/// [`sessionize`] with another inactivity timeout (ms; a gap strictly greater ends the session).
pub fn sessionize_with_timeout<S, F>(
    events: &[SessionEvent<S>],
    timeout_ms: i64,
    is_excluded: F,
) -> Vec<Session<S>>
where
    S: Clone + PartialEq,
    F: Fn(&str) -> bool,
{
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by(|&a, &b| {
        let (ea, eb) = (&events[a], &events[b]);
        ea.at.cmp(&eb.at).then_with(|| ea.id.cmp(&eb.id))
    });

    let mut sessions: Vec<Session<S>> = Vec::new();
    let mut cursor: Option<Cursor<S>> = None;
    for idx in order {
        let Some(event) = events.get(idx) else {
            continue;
        };
        let source = event.arrival.source(&is_excluded);
        let starts = cursor
            .as_ref()
            .is_none_or(|c| c.starts_session(event.at, source, timeout_ms));
        match sessions.last_mut() {
            Some(current) if !starts => {
                current.end = event.at;
                current.events.push(idx);
            }
            _ => {
                sessions.push(Session {
                    start: event.at,
                    end: event.at,
                    touch: source.cloned(),
                    landing_path: event.path.clone(),
                    events: vec![idx],
                });
                cursor = Some(Cursor {
                    last_at: event.at,
                    touch: source.cloned(),
                });
            }
        }
        if let Some(c) = cursor.as_mut() {
            c.last_at = event.at;
        }
    }
    sessions
}

/// Where a left-to-right scan over one visitor's events stands: the time of the latest event
/// and the touch of the session it is in. This and [`Cursor::starts_session`] are the whole
/// state and the whole rule of sessionisation: [`sessionize`], the incremental sessioniser of
/// the shards ([`crate::resession`]) and the acknowledgement ([`crate::arrival::ack_touch`])
/// all decide with them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor<S> {
    /// The time of the latest event (ms).
    pub last_at: i64,
    /// The current session's touch (`None`: direct).
    pub touch: Option<S>,
}

impl<S: PartialEq> Cursor<S> {
    /// Whether an event at `at` whose external source is `source` (after exclusion:
    /// [`Arrival::source`]) starts a new session: more than `timeout_ms` after the latest
    /// event, or an external source other than the current session's. The first event of a
    /// visitor (no cursor yet) always starts one.
    pub fn starts_session(&self, at: i64, source: Option<&S>, timeout_ms: i64) -> bool {
        let timed_out = at.saturating_sub(self.last_at) > timeout_ms;
        let new_source = source.is_some_and(|src| self.touch.as_ref() != Some(src));
        timed_out || new_source
    }
}

impl<S> Arrival<S> {
    /// The external source this arrival stands for, if any: tags always; a referral unless
    /// `is_excluded(host)`; nothing for internal navigations and direct loads.
    pub fn source<F>(&self, is_excluded: F) -> Option<&S>
    where
        F: Fn(&str) -> bool,
    {
        match self {
            Arrival::Internal | Arrival::Direct => None,
            Arrival::Tagged(source) => Some(source),
            Arrival::Referral { host, source } => {
                if is_excluded(host) {
                    None
                } else {
                    Some(source)
                }
            }
        }
    }
}

/// The adapter from a parsed entry (`entry::parse_entry` of the event's URL and referrer) to
/// an [`Arrival`], as [`crate::arrival::arrival_of_entry`] decides it for the edge.
pub fn arrival_from_entry(entry: &crate::entry::Entry) -> Arrival<crate::arrival::SessionTouch> {
    crate::arrival::arrival_of_entry(entry)
}

/// [`sessionize`] for the edge: arrivals made by [`crate::arrival::arrival`], exclusion by
/// [`crate::arrival::SiteRules::excludes`].
pub fn sessionize_entries(
    events: &[SessionEvent<crate::arrival::SessionTouch>],
    rules: &crate::arrival::SiteRules,
) -> Vec<Session<crate::arrival::SessionTouch>> {
    sessionize(events, |host| rules.excludes(host))
}

impl Session<crate::arrival::SessionTouch> {
    /// The session's stored touch: its entry source's, or the direct touch.
    pub fn touch_or_direct(&self) -> crate::arrival::SessionTouch {
        self.touch
            .clone()
            .unwrap_or_else(crate::arrival::SessionTouch::direct)
    }
}
