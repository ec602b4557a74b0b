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
    let mut last_at: Option<i64> = None;
    for idx in order {
        let Some(event) = events.get(idx) else {
            continue;
        };
        let source = external_source(&event.arrival, &is_excluded);
        let timed_out = last_at.is_none_or(|last| event.at.saturating_sub(last) > timeout_ms);
        let new_source = match (sessions.last(), source) {
            (Some(current), Some(src)) => current.touch.as_ref() != Some(src),
            _ => false,
        };
        match sessions.last_mut() {
            Some(current) if !timed_out && !new_source => {
                current.end = event.at;
                current.events.push(idx);
            }
            _ => sessions.push(Session {
                start: event.at,
                end: event.at,
                touch: source.cloned(),
                landing_path: event.path.clone(),
                events: vec![idx],
            }),
        }
        last_at = Some(event.at);
    }
    sessions
}

/// The external source an arrival stands for, if any: tags always; a referral unless its host
/// is excluded; nothing for internal navigations and direct loads.
fn external_source<'a, S, F>(arrival: &'a Arrival<S>, is_excluded: &F) -> Option<&'a S>
where
    F: Fn(&str) -> bool,
{
    match arrival {
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

/// An external source as the edge sessionises it: the key that says whether two arrivals
/// come from the same source, and the classified touch stored for the session.
///
/// Two `EntrySource`s are equal when their keys are equal (the touch is derived from the
/// same entry, apart from the landing path, which is not part of the source).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntrySource {
    /// What makes the source distinct: `t:` + every UTM tag and click id (and the external
    /// referrer host when the URL has no `utm_source`/`utm_medium`/`utm_campaign`), or `r:` +
    /// the referrer host without `www.`.
    pub key: String,
    /// The touch as `channel::classify` gives it.
    pub touch: crate::channel::Touch,
}

impl PartialEq for EntrySource {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

/// The adapter from a parsed entry (`entry::parse_entry` of the event's URL and referrer) to
/// an [`Arrival`]: UTM tags or a click id → [`Arrival::Tagged`]; an external referrer →
/// [`Arrival::Referral`]; a same-site referrer → [`Arrival::Internal`]; neither →
/// [`Arrival::Direct`]. The tracker sends the previous page's URL as the referrer of a
/// single-page-app navigation, so those come out as internal.
pub fn arrival_from_entry(entry: &crate::entry::Entry) -> Arrival<EntrySource> {
    let tags = &entry.tags;
    let external_host = entry
        .referrer_host
        .as_deref()
        .filter(|_| !entry.same_site_referrer)
        .map(|h| crate::entry::strip_www(h).to_owned());
    if tags.has_any() {
        let mut key = String::from("t:");
        for value in [
            &tags.utm_source,
            &tags.utm_medium,
            &tags.utm_campaign,
            &tags.utm_term,
            &tags.utm_content,
            &tags.utm_id,
        ] {
            key.push_str(value.as_deref().unwrap_or(""));
            key.push('\u{1f}');
        }
        for (kind, value) in &tags.click_ids {
            key.push_str(kind.param());
            key.push('=');
            key.push_str(value);
            key.push('\u{1f}');
        }
        if !tags.has_campaign_tags() {
            key.push_str(external_host.as_deref().unwrap_or(""));
        }
        return Arrival::Tagged(EntrySource {
            key,
            touch: crate::channel::classify(entry),
        });
    }
    match (external_host, entry.referrer_host.is_some()) {
        (Some(host), _) => Arrival::Referral {
            source: EntrySource {
                key: format!("r:{host}"),
                touch: crate::channel::classify(entry),
            },
            host: entry.referrer_host.clone().unwrap_or(host),
        },
        (None, true) => Arrival::Internal,
        (None, false) => Arrival::Direct,
    }
}

/// [`sessionize`] for the edge: arrivals made by [`arrival_from_entry`], exclusion by
/// `channel::is_excluded_referrer` with the site's own exclusion list.
pub fn sessionize_entries(
    events: &[SessionEvent<EntrySource>],
    site_exclusions: &[&str],
) -> Vec<Session<EntrySource>> {
    sessionize(events, |host| {
        crate::channel::is_excluded_referrer(host, site_exclusions)
    })
}

impl Session<EntrySource> {
    /// The session's classified touch: its entry source's, or a `Direct` touch landing on
    /// the session's first page.
    pub fn classified_touch(&self) -> crate::channel::Touch {
        match &self.touch {
            Some(source) => source.touch.clone(),
            None => crate::channel::classify(&crate::entry::Entry {
                landing_path: self.landing_path.clone(),
                ..crate::entry::Entry::default()
            }),
        }
    }
}
