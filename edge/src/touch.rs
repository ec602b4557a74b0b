//! The entry source of a page load (a session's touch) and how it arrived, as
//! sessionisation needs it.
//!
//! Interim: the channel grouping here is a small stand-in for
//! `closeloop_core::channel::classify` (GA4's default channel group with the maintained
//! referrer lists), which is being written; when it lands, [`touch_of`] calls it and
//! this file keeps only the glue. Everything else (tags, click ids, same-site and
//! excluded referrers) stays.

use closeloop_core::session::Arrival;
use url::Url;

/// A session's entry source, as stored in `sessions`.
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
    /// The external referrer's host.
    pub referrer_host: Option<String>,
    /// The ad click id, as `name=value`.
    pub click_id: Option<String>,
}

impl Touch {
    /// The touch of a session with no referrer and no tags.
    pub fn direct() -> Self {
        Touch {
            channel: "Direct".into(),
            source: "(direct)".into(),
            medium: "(none)".into(),
            ..Touch::default()
        }
    }
}

/// Ad click ids and the paid network each implies (source, medium, channel).
const CLICK_IDS: &[(&str, &str, &str, &str)] = &[
    ("gclid", "google", "cpc", "Paid Search"),
    ("gbraid", "google", "cpc", "Paid Search"),
    ("wbraid", "google", "cpc", "Paid Search"),
    ("dclid", "google", "display", "Display"),
    ("msclkid", "bing", "cpc", "Paid Search"),
    ("fbclid", "facebook", "paid", "Paid Social"),
    ("ttclid", "tiktok", "paid", "Paid Social"),
    ("li_fat_id", "linkedin", "paid", "Paid Social"),
    ("twclid", "twitter", "paid", "Paid Social"),
];

/// Referrer hosts that never start a session: payment and sign-in round trips.
const DEFAULT_EXCLUDED: &[&str] = &[
    "paypal.com",
    "checkout.stripe.com",
    "stripe.com",
    "accounts.google.com",
    "login.microsoftonline.com",
    "appleid.apple.com",
    "github.com/login",
    "auth0.com",
    "okta.com",
    "3dsecure.io",
    "cardinalcommerce.com",
    "arcot.com",
];

fn host_matches(host: &str, pattern: &str) -> bool {
    host == pattern || host.ends_with(&format!(".{pattern}"))
}

/// Whether a referrer host must not start a session: the site's own hosts, the default
/// payment and sign-in list, and the site's exclusion list.
pub fn is_excluded(host: &str, site_hosts: &[String], site_excluded: &[String]) -> bool {
    let host = host.trim_start_matches("www.");
    site_hosts
        .iter()
        .any(|h| host_matches(host, h.trim_start_matches("www.")))
        || DEFAULT_EXCLUDED.iter().any(|p| host_matches(host, p))
        || site_excluded.iter().any(|p| host_matches(host, p))
}

/// A small stand-in for GA4's default channel grouping (see the module docs).
fn channel_for(source: &str, medium: &str, campaign: Option<&str>) -> &'static str {
    let m = medium.to_ascii_lowercase();
    let s = source.to_ascii_lowercase();
    let search = [
        "google",
        "bing",
        "duckduckgo",
        "yahoo",
        "baidu",
        "yandex",
        "ecosia",
        "qwant",
    ]
    .iter()
    .any(|e| s.contains(e));
    let social = [
        "facebook",
        "instagram",
        "linkedin",
        "twitter",
        "t.co",
        "x.com",
        "reddit",
        "tiktok",
        "pinterest",
        "youtube",
    ]
    .iter()
    .any(|e| s.contains(e));
    let paid = m.contains("cp") || m == "ppc" || m == "retargeting" || m.starts_with("paid");
    let shopping = campaign.is_some_and(|c| c.to_ascii_lowercase().contains("shop"));
    match () {
        _ if s == "(direct)" && (m == "(none)" || m == "(not set)") => "Direct",
        _ if paid && shopping => "Paid Shopping",
        _ if paid && search => "Paid Search",
        _ if paid && social => "Paid Social",
        _ if m == "display" || m == "banner" || m == "cpm" => "Display",
        _ if paid => "Paid Other",
        _ if m == "email" || m == "e-mail" || m == "e_mail" || s.contains("mail") => "Email",
        _ if m == "affiliate" => "Affiliates",
        _ if m == "organic" || (m == "referral" && search) => "Organic Search",
        _ if social || m == "social" => "Organic Social",
        _ if m == "referral" => "Referral",
        _ => "Unassigned",
    }
}

fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
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
    let Ok(page) = Url::parse(url) else {
        return Arrival::Direct;
    };
    let ref_host = referrer
        .filter(|r| !r.is_empty())
        .and_then(|r| Url::parse(r).ok())
        .and_then(|r| r.host_str().map(|h| h.to_ascii_lowercase()));
    let utm_source = param(&page, "utm_source");
    let utm_medium = param(&page, "utm_medium");
    let click = CLICK_IDS.iter().find_map(|(name, src, med, ch)| {
        param(&page, name).map(|v| (format!("{name}={v}"), *src, *med, *ch))
    });
    let campaign = param(&page, "utm_campaign");
    if utm_source.is_some() || utm_medium.is_some() || click.is_some() {
        let (source, medium, channel) = match (&utm_source, &utm_medium, &click) {
            (None, None, Some((_, src, med, ch))) => {
                (src.to_string(), med.to_string(), ch.to_string())
            }
            _ => {
                let source = utm_source
                    .clone()
                    .or_else(|| ref_host.clone())
                    .unwrap_or_else(|| "(not set)".into());
                let medium = utm_medium.clone().unwrap_or_else(|| "(not set)".into());
                let channel = channel_for(&source, &medium, campaign.as_deref()).to_string();
                (source, medium, channel)
            }
        };
        return Arrival::Tagged(Touch {
            channel,
            source,
            medium,
            campaign,
            term: param(&page, "utm_term"),
            content: param(&page, "utm_content"),
            referrer_host: ref_host,
            click_id: click.map(|c| c.0),
        });
    }
    match ref_host {
        None => Arrival::Direct,
        Some(host) => {
            let page_host = page.host_str().unwrap_or("").to_ascii_lowercase();
            if host == page_host || site_hosts.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
                return Arrival::Internal;
            }
            let source = host.trim_start_matches("www.").to_string();
            let is_search = channel_for(&source, "referral", None) == "Organic Search";
            let medium = if is_search { "organic" } else { "referral" };
            let channel = channel_for(&source, medium, None).to_string();
            Arrival::Referral {
                host: host.clone(),
                source: Touch {
                    channel,
                    source,
                    medium: medium.into(),
                    referrer_host: Some(host),
                    ..Touch::default()
                },
            }
        }
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
            arrival("https://example.com/", None, true, &[]),
            Arrival::Internal
        );
    }
}
