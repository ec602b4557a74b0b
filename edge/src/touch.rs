//! The entry source of a page load (a session's touch) and how it arrived, as
//! sessionisation needs it. Parsing and classification are core's
//! (`closeloop_core::entry::parse_entry`, `closeloop_core::channel::classify`: GA4's
//! default channel group with Matomo's referrer lists); this module only maps core's
//! answer onto the session rules' [`Arrival`] and the row the store keeps.

use closeloop_core::channel::{self, classify};
use closeloop_core::entry::parse_entry;
use closeloop_core::session::Arrival;

/// A session's entry source, as stored in `sessions`. Two arrivals are the same source
/// (the session goes on) when these fields are equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touch {
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
    /// The external referrer's host (for referrals).
    pub referrer_host: Option<String>,
    /// The ad click id, as `name=value`.
    pub click_id: Option<String>,
}

impl Touch {
    /// The touch of a session with no referrer and no tags.
    pub fn direct() -> Self {
        Touch {
            channel: channel::Channel::Direct.as_str().into(),
            source: "(direct)".into(),
            medium: "(none)".into(),
            ..Touch::default()
        }
    }
}

/// Whether a referrer host must not start a session: the site's own hosts, core's
/// default payment and sign-in list, and the site's exclusion list.
pub fn is_excluded(host: &str, site_hosts: &[String], site_excluded: &[String]) -> bool {
    let host = host.trim_start_matches("www.");
    let own = site_hosts
        .iter()
        .any(|h| closeloop_core::entry::is_same_site(host, h.trim_start_matches("www.")));
    let excluded: Vec<&str> = site_excluded.iter().map(String::as_str).collect();
    own || channel::is_excluded_referrer(host, &excluded)
}

/// How a page load at `url` with `referrer` arrived. `internal` is true for events
/// that are not page loads (form submits, custom events).
pub fn arrival(
    url: &str,
    referrer: Option<&str>,
    internal: bool,
    site_hosts: &[String],
) -> Arrival<Touch> {
    if internal {
        return Arrival::Internal;
    }
    let hosts: Vec<&str> = site_hosts.iter().map(String::as_str).collect();
    let entry = parse_entry(url, referrer.filter(|r| !r.is_empty()), &hosts);
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
    let t = classify(&entry);
    let touch = Touch {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(a: Arrival<Touch>) -> Touch {
        match a {
            Arrival::Tagged(t) => t,
            other => panic!("expected a tagged arrival, got {other:?}"),
        }
    }

    #[test]
    fn utm_tags_make_the_touch() {
        let t = tagged(arrival(
            "https://example.com/?utm_source=newsletter&utm_medium=email&utm_campaign=launch",
            None,
            false,
            &[],
        ));
        assert_eq!(
            (t.channel.as_str(), t.source.as_str(), t.medium.as_str()),
            ("Email", "newsletter", "email")
        );
        assert_eq!(t.campaign.as_deref(), Some("launch"));
    }

    #[test]
    fn a_click_id_alone_implies_its_network() {
        let t = tagged(arrival("https://example.com/?gclid=abc", None, false, &[]));
        assert_eq!(
            (t.channel.as_str(), t.source.as_str(), t.medium.as_str()),
            ("Paid Search", "google", "cpc")
        );
        assert_eq!(t.click_id.as_deref(), Some("gclid=abc"));
    }

    #[test]
    fn referrers() {
        let a = arrival(
            "https://example.com/",
            Some("https://www.google.com/"),
            false,
            &[],
        );
        match a {
            Arrival::Referral { host, source } => {
                assert_eq!(host, "www.google.com");
                assert_eq!(source.channel, "Organic Search");
                assert_eq!(source.source, "google");
            }
            other => panic!("expected a referral, got {other:?}"),
        }
        let same = arrival(
            "https://example.com/b",
            Some("https://example.com/a"),
            false,
            &[],
        );
        assert_eq!(same, Arrival::Internal);
        let own = arrival(
            "https://example.com/b",
            Some("https://shop.example.org/"),
            false,
            &["shop.example.org".to_string()],
        );
        assert_eq!(own, Arrival::Internal);
        assert!(is_excluded("www.paypal.com", &[], &[]));
        assert!(is_excluded(
            "pay.example.net",
            &[],
            &["example.net".to_string()]
        ));
        assert!(!is_excluded("news.ycombinator.com", &[], &[]));
        assert_eq!(
            arrival("https://example.com/", None, false, &[]),
            Arrival::Direct
        );
        assert_eq!(
            arrival("https://example.com/", Some(""), false, &[]),
            Arrival::Direct
        );
        assert_eq!(
            arrival("https://example.com/", None, true, &[]),
            Arrival::Internal
        );
    }
}
