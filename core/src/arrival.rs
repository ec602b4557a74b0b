//! One function decides an arrival: how an event got to the site ([`arrival`]), whether a
//! referrer host may start a session ([`is_excluded`]), the stored touch of a session
//! ([`SessionTouch`]) and the touch the edge's answer tells the tracker ([`ack_touch`]).
//!
//! These were the edge's (`edge/src/touch.rs` and the ack's touch in `edge/src/ingest.rs`);
//! they live here so that the D1 flush of today, the per-site shards of issue 14 (which build
//! sessions at ingest with [`crate::resession`]) and the acknowledgement all decide an arrival
//! the same way. The session rules themselves (30 minutes, a new external source) are
//! [`crate::session`]'s: [`crate::session::Cursor::starts_session`] is the one place that
//! says whether an event starts a session.
//!
//! # What counts as an external source
//!
//! - **Tagged**: the URL carries `utm_source`, `utm_medium` or `utm_campaign`, or an ad click
//!   id. Tags win over any referrer, and a tagged arrival is the same source whatever page
//!   linked to it (its touch keeps no referrer host). `utm_term`, `utm_content` or `utm_id`
//!   alone do not make an arrival tagged: sites put them on their own links, and GA4 needs a
//!   source, medium or campaign for a manual campaign too.
//! - **Referral**: no tags, and a referrer whose host is not one of the site's own hosts (nor a
//!   subdomain of one). Whether it may start a session is [`is_excluded`]'s to say (payment and
//!   sign-in round trips, the site's exclusion list).
//! - **Internal**: an event that is not a page load (form submit, `identify`, custom event), or
//!   a page load with a same-site referrer (single-page-app navigations send the previous URL).
//! - **Direct**: a page load with neither tags nor referrer.
//!
//! Two arrivals are the same source when their [`SessionTouch`]es are equal (every field).

use serde::{Deserialize, Serialize};

use crate::channel::{self, classify};
use crate::entry::{is_same_site, parse_entry, Entry};
use crate::session::{sessionize, Arrival, SessionEvent};
use crate::wire::TouchAck;

/// A session's entry source as the edge stores it (table `sessions`). Two arrivals are the
/// same source (the session goes on) when these fields are all equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionTouch {
    /// Channel group, e.g. `Email`, `Organic Search`, `Direct`.
    pub channel: String,
    /// Source (`newsletter`, `google`, `(direct)`).
    pub source: String,
    /// Medium (`email`, `organic`, `(none)`).
    pub medium: String,
    /// `utm_campaign`.
    pub campaign: Option<String>,
    /// `utm_term`.
    pub term: Option<String>,
    /// `utm_content`.
    pub content: Option<String>,
    /// The external referrer's host (referrals only; `None` for a tagged arrival).
    pub referrer_host: Option<String>,
    /// The ad click id, as `name=value`.
    pub click_id: Option<String>,
}

impl SessionTouch {
    /// The touch of a session with no referrer and no tags.
    pub fn direct() -> Self {
        SessionTouch {
            channel: channel::Channel::Direct.as_str().into(),
            source: "(direct)".into(),
            medium: "(none)".into(),
            ..SessionTouch::default()
        }
    }

    /// Whether this is the touch of a direct session.
    pub fn is_direct(&self) -> bool {
        self.channel == channel::Channel::Direct.as_str()
    }
}

/// What a site says about its own referrers: its hosts (never a referral) and the hosts it
/// excludes from starting a session on top of core's payment and sign-in list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRules {
    /// The site's own hosts (those of its allowed origins), lower case.
    pub hosts: Vec<String>,
    /// The site's exclusion list (hosts; a subdomain matches too).
    pub excluded: Vec<String>,
}

impl SiteRules {
    /// The rules of a site with these allowed origins (`scheme://host[:port]`; the ones that
    /// do not parse are skipped) and this exclusion list.
    pub fn from_origins(origins: &[String], excluded: &[String]) -> SiteRules {
        SiteRules {
            hosts: origins
                .iter()
                .filter_map(|o| url::Url::parse(o).ok())
                .filter_map(|u| u.host_str().map(|h| h.to_ascii_lowercase()))
                .collect(),
            excluded: excluded.to_vec(),
        }
    }

    /// Whether `host` must not start a session ([`is_excluded`]).
    pub fn excludes(&self, host: &str) -> bool {
        is_excluded(host, &self.hosts, &self.excluded)
    }
}

/// Whether a referrer host must not start a session: the site's own hosts (and their
/// subdomains), core's default payment and sign-in list, and the site's exclusion list.
pub fn is_excluded(host: &str, site_hosts: &[String], site_excluded: &[String]) -> bool {
    let host = host.trim_start_matches("www.");
    let own = site_hosts
        .iter()
        .any(|h| is_same_site(host, h.trim_start_matches("www.")));
    let excluded: Vec<&str> = site_excluded.iter().map(String::as_str).collect();
    own || channel::is_excluded_referrer(host, &excluded)
}

/// How a page load at `url` with `referrer` arrived (see the [module docs](self)). `internal`
/// is true for events that are not page loads (form submits, custom events, `identify`).
pub fn arrival(
    url: &str,
    referrer: Option<&str>,
    internal: bool,
    site_hosts: &[String],
) -> Arrival<SessionTouch> {
    if internal {
        return Arrival::Internal;
    }
    let hosts: Vec<&str> = site_hosts.iter().map(String::as_str).collect();
    let entry = parse_entry(url, referrer.filter(|r| !r.is_empty()), &hosts);
    arrival_of_entry(&entry)
}

/// [`arrival`] of an already parsed page load (`entry::parse_entry` of its URL and referrer).
pub fn arrival_of_entry(entry: &Entry) -> Arrival<SessionTouch> {
    let tagged = entry.tags.has_campaign_tags() || entry.tags.click_id().is_some();
    let external = entry
        .referrer_host
        .clone()
        .filter(|_| !entry.same_site_referrer);
    if !tagged && external.is_none() {
        return if entry.same_site_referrer {
            Arrival::Internal
        } else {
            Arrival::Direct
        };
    }
    let t = classify(entry);
    let touch = SessionTouch {
        channel: t.channel.as_str().to_string(),
        source: t.source,
        medium: t.medium,
        campaign: t.campaign,
        term: t.term,
        content: t.content,
        // a tagged arrival is the same source whatever page linked to it
        referrer_host: if tagged { None } else { external.clone() },
        click_id: t
            .click_id
            .map(|(kind, value)| format!("{}={value}", kind.param())),
    };
    match (tagged, external) {
        (false, Some(host)) => Arrival::Referral {
            host,
            source: touch,
        },
        _ => Arrival::Tagged(touch),
    }
}

/// One event of a batch as the acknowledgement sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckEvent<'a> {
    /// The event id.
    pub id: &'a str,
    /// Its `derived_ts`.
    pub at: i64,
    /// Its page path.
    pub path: &'a str,
    /// Its URL.
    pub url: &'a str,
    /// Its referrer.
    pub referrer: Option<&'a str>,
    /// Whether it is a page load (`pageview`).
    pub pageview: bool,
}

/// What the visitor's stored history says before a batch, as far as the acknowledgement
/// knows it: the time of its latest stored event and, when known, its current session's touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckAnchor {
    /// The time of the visitor's latest stored event before the batch.
    pub at: i64,
    /// The touch of the session that event is in (`None`: direct, or not known, as with
    /// today's D1 store, which only reads the time; then any external arrival in the batch is
    /// told, which is harmless: the tracker only replaces its touch by the one told).
    pub touch: Option<SessionTouch>,
}

/// The touch the answer to a batch tells the tracker: the touch of the batch's last session
/// when that session starts inside the batch (a new arrival, or a return after the inactivity
/// timeout), `None` when the batch only goes on with the visitor's current session (the
/// tracker keeps the touch it has). `anchor` is the visitor's latest stored event before the
/// batch. Computed from the batch alone, so a retry gets the same answer as the first send
/// and nothing waits for sessionisation. A batch older than what is stored also answers
/// `None`.
pub fn ack_touch<'a>(
    events: impl IntoIterator<Item = AckEvent<'a>>,
    anchor: Option<&AckAnchor>,
    rules: &SiteRules,
) -> Option<TouchAck> {
    let mut input: Vec<SessionEvent<SessionTouch>> = Vec::new();
    if let Some(a) = anchor {
        // the anchor stands for the current session: an empty id sorts first at its time
        input.push(SessionEvent {
            id: String::new(),
            at: a.at,
            path: String::new(),
            arrival: match &a.touch {
                Some(t) => Arrival::Tagged(t.clone()),
                None => Arrival::Internal,
            },
        });
    }
    input.extend(events.into_iter().map(|e| SessionEvent {
        id: e.id.to_owned(),
        at: e.at,
        path: e.path.to_owned(),
        arrival: arrival(e.url, e.referrer, !e.pageview, &rules.hosts),
    }));
    let sessions = sessionize(&input, |host| rules.excludes(host));
    let last = sessions.last()?;
    let first = input.get(*last.events.first()?)?;
    if anchor.is_some() && first.id.is_empty() {
        return None;
    }
    let t = last.touch.clone().unwrap_or_else(SessionTouch::direct);
    Some(TouchAck {
        channel: t.channel,
        source: t.source,
        medium: t.medium,
        campaign: t.campaign,
    })
}
