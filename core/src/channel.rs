//! Channel classification: GA4's default channel group, driven by data.
//!
//! [`classify`] turns an [`Entry`] into a [`Touch`]: source and medium as GA4 derives
//! them, then the channel from the rules of Google's help article "\[GA4\] Default channel
//! group" (answer 9756891), copied into `core/data/ga4-channel-rules.json` with the
//! article's date and compiled by `build.rs` into one function that evaluates them in the
//! article's order. The three regular expressions the article uses are matched by
//! hand-written functions (private module `matchers`), cross-checked against the `regex` crate in the
//! tests; a changed regex in the data file fails the build until a matcher exists.
//!
//! Source categories (search, social, video, shopping, AI assistant) come from Matomo's
//! searchengine-and-social-list (`core/data/matomo/`, CC0) plus a short hand-kept file
//! for what Matomo lacks (`core/data/source-categories.txt`: video and shopping sites,
//! newer social networks), compiled into a perfect-hash map. See `core/data/README.md`.
//!
//! How source and medium are derived (first that applies):
//! 1. Manual tags: `utm_source`, `utm_medium` or `utm_campaign` present → source and
//!    medium are the tags as given (`(not set)` when one is missing); campaign, term,
//!    content and id come from the tags too.
//! 2. A click id that implies a paid network ([`ClickIdKind::implied_source_medium`]),
//!    e.g. `gclid` → `google` / `cpc`.
//! 3. An external referrer: a search engine → its name (`google`) / `organic`; an AI
//!    assistant → its host / `ai-assistant` (GA4's medium for its AI Assistant channel);
//!    anything else → the referrer host without `www.` / `referral` (its category still
//!    makes `facebook.com` Organic Social, `youtube.com` Organic Video...). An
//!    `android-app://` referrer's package is looked up as its network's web host
//!    (`core/data/android-apps.txt`: `com.reddit.frontpage` → `reddit.com`) and keeps
//!    the package as its source.
//! 4. `fbclid` without a referrer → `facebook` / `social` (see `ClickIdKind`).
//! 5. Otherwise (no referrer, or a same-site one) → `(direct)` / `(none)`.
//!
//! Matching is case-insensitive: source, medium and campaign are lower-cased before the
//! rules run (the reported values keep their case).

use std::borrow::Cow;
use std::fmt;

pub use crate::entry::ClickIdKind;
use crate::entry::{strip_www, Entry};

/// A channel of GA4's default channel group.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Channel {
    /// No referrer and no tags (or a same-site referrer).
    #[serde(rename = "Direct")]
    Direct,
    /// Ads across several networks (campaign name contains `cross-network`).
    #[serde(rename = "Cross-network")]
    CrossNetwork,
    /// Paid traffic from shopping sites or shopping campaigns.
    #[serde(rename = "Paid Shopping")]
    PaidShopping,
    /// Paid traffic from search engines.
    #[serde(rename = "Paid Search")]
    PaidSearch,
    /// Paid traffic from social networks.
    #[serde(rename = "Paid Social")]
    PaidSocial,
    /// Paid traffic from video sites.
    #[serde(rename = "Paid Video")]
    PaidVideo,
    /// Display advertising (`display`, `banner`, `cpm`...).
    #[serde(rename = "Display")]
    Display,
    /// Other paid traffic (a paid medium from an uncategorised source).
    #[serde(rename = "Paid Other")]
    PaidOther,
    /// Non-ad links from shopping sites.
    #[serde(rename = "Organic Shopping")]
    OrganicShopping,
    /// Non-ad links from social networks.
    #[serde(rename = "Organic Social")]
    OrganicSocial,
    /// Non-ad links from video sites.
    #[serde(rename = "Organic Video")]
    OrganicVideo,
    /// Non-ad search results.
    #[serde(rename = "Organic Search")]
    OrganicSearch,
    /// Links from AI assistants (ChatGPT, Gemini, Claude, Copilot, Perplexity...): GA4's
    /// channel since May 2026 (medium `ai-assistant`).
    #[serde(rename = "AI Assistant")]
    AiAssistant,
    /// Links from other sites.
    #[serde(rename = "Referral")]
    Referral,
    /// Links in email.
    #[serde(rename = "Email")]
    Email,
    /// Affiliate links.
    #[serde(rename = "Affiliates")]
    Affiliates,
    /// Ads on audio platforms.
    #[serde(rename = "Audio")]
    Audio,
    /// Links in text messages.
    #[serde(rename = "SMS")]
    Sms,
    /// Links in mobile push notifications.
    #[serde(rename = "Mobile Push Notifications")]
    MobilePushNotifications,
    /// Nothing matched.
    #[serde(rename = "Unassigned")]
    Unassigned,
}

impl Channel {
    /// Every channel, in the article's evaluation order (Unassigned last).
    pub const ALL: [Channel; 20] = EVALUATION_ORDER;

    /// GA4's name for the channel ("Organic Search").
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Direct => "Direct",
            Channel::CrossNetwork => "Cross-network",
            Channel::PaidShopping => "Paid Shopping",
            Channel::PaidSearch => "Paid Search",
            Channel::PaidSocial => "Paid Social",
            Channel::PaidVideo => "Paid Video",
            Channel::Display => "Display",
            Channel::PaidOther => "Paid Other",
            Channel::OrganicShopping => "Organic Shopping",
            Channel::OrganicSocial => "Organic Social",
            Channel::OrganicVideo => "Organic Video",
            Channel::OrganicSearch => "Organic Search",
            Channel::AiAssistant => "AI Assistant",
            Channel::Referral => "Referral",
            Channel::Email => "Email",
            Channel::Affiliates => "Affiliates",
            Channel::Audio => "Audio",
            Channel::Sms => "SMS",
            Channel::MobilePushNotifications => "Mobile Push Notifications",
            Channel::Unassigned => "Unassigned",
        }
    }

    /// The channel with GA4's name `name` (exact spelling, as [`Channel::as_str`]).
    pub fn from_name(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Whether this is the Direct channel (what `last_non_direct` attribution skips).
    pub fn is_direct(self) -> bool {
        self == Channel::Direct
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// GA4's source categories (`SOURCE_CATEGORY_SEARCH`...) as the rules use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceCategory {
    /// A search engine.
    Search,
    /// A social network.
    Social,
    /// A video site.
    Video,
    /// A shopping site.
    Shopping,
    /// An AI assistant (`chatgpt.com`, `gemini.google.com`, `claude.ai`...): GA4 groups
    /// its referrals as the AI Assistant channel.
    AiAssistant,
    /// None of these.
    None,
}

/// One key of the compiled source map.
#[derive(Debug)]
pub(crate) struct SourceEntry {
    category: SourceCategory,
    /// Source name to report for a search engine ("google"); empty otherwise.
    name: &'static str,
    /// Whether subdomains of the key match too.
    suffix: bool,
}

include!(concat!(env!("OUT_DIR"), "/sources.rs"));
include!(concat!(env!("OUT_DIR"), "/android_apps.rs"));

/// The web host of the network an Android app belongs to (`android-app://` referrers:
/// `com.reddit.frontpage` → `reddit.com`), from `core/data/android-apps.txt`.
pub fn android_app_host(package: &str) -> Option<&'static str> {
    ANDROID_APPS.get(lower(package).as_ref()).copied()
}

/// What the rules look at: lower-cased source, medium, campaign and the source's category.
pub(crate) struct RuleInput<'a> {
    source: &'a str,
    medium: &'a str,
    campaign: &'a str,
    category: SourceCategory,
}

/// The compiled GA4 rules (from `core/data/ga4-channel-rules.json`).
mod rules {
    use super::{Channel, RuleInput, SourceCategory};
    include!(concat!(env!("OUT_DIR"), "/ga4_rules.rs"));
}
pub use rules::{EVALUATION_ORDER, RULES_RETRIEVED, RULES_SOURCE_URL};

/// Hand-written matchers for the article's regular expressions, on lower-cased input.
/// Each is exact, newline handling included (`.` does not match `\n`), and is
/// cross-checked against the `regex` crate in the tests.
pub(crate) mod matchers {
    /// `haystack.contains(needle)` for the short strings of source, medium and campaign:
    /// a plain window scan, cheaper here than `str::contains`'s searcher set-up.
    pub(crate) fn contains(haystack: &str, needle: &str) -> bool {
        let (h, n) = (haystack.as_bytes(), needle.as_bytes());
        match n.first() {
            None => true,
            Some(first) => h
                .windows(n.len())
                .any(|w| w.first() == Some(first) && w == n),
        }
    }

    fn has_newline(s: &str) -> bool {
        s.as_bytes().contains(&b'\n')
    }

    /// `^(.*cp.*|ppc|retargeting|paid.*)$`
    pub(crate) fn paid_medium(s: &str) -> bool {
        s == "ppc"
            || s == "retargeting"
            || (!has_newline(s) && (contains(s, "cp") || s.starts_with("paid")))
    }

    /// `^(.*video.*)$`
    pub(crate) fn video_medium(s: &str) -> bool {
        !has_newline(s) && contains(s, "video")
    }

    /// `^(.*(([^a-df-z]|^)shop|shopping).*)$`: "shopping" anywhere, or "shop" at the
    /// start or after a character other than `a`–`d`, `f`–`z` (so "eshop", "e-shop",
    /// "my_shop" match, "workshop" does not). The leading and trailing `.*` cannot cross
    /// a newline, but the `[^a-df-z]` character itself may be one.
    pub(crate) fn shopping_campaign(s: &str) -> bool {
        if !has_newline(s) && contains(s, "shopping") {
            return true;
        }
        let mut from = 0;
        while let Some(off) = s.get(from..).and_then(|t| t.find("shop")) {
            let i = from + off;
            let after_ok = s.get(i + 4..).is_some_and(|t| !t.contains('\n'));
            let before_ok = if i == 0 {
                true
            } else {
                let prev = s[..i].chars().next_back();
                let prefix_len = prev.map_or(0, char::len_utf8);
                let class_ok =
                    prev.is_some_and(|c| !(('a'..='d').contains(&c) || ('f'..='z').contains(&c)));
                class_ok && s.get(..i - prefix_len).is_some_and(|p| !p.contains('\n'))
            };
            if after_ok && before_ok {
                return true;
            }
            from = i + 1;
        }
        false
    }
}

/// Second-level labels that Matomo's `name.{}` wildcard accepts before a country code
/// (`google.co.uk`, `google.com.br`): its README's list.
const WILDCARD_SLDS: [&str; 6] = ["com", "org", "net", "co", "it", "edu"];

/// Finds the entry for a lower-case host or source name (leading `www.` already stripped).
fn lookup(key: &str) -> Option<&'static SourceEntry> {
    if let Some(e) = SOURCES.get(key) {
        return Some(e);
    }
    if !key.contains('.') {
        return None;
    }
    // Parent domains, for entries that cover their subdomains (m.facebook.com).
    let mut rest = key;
    while let Some(i) = rest.find('.') {
        rest = &rest[i + 1..];
        if !rest.contains('.') {
            break;
        }
        if let Some(e) = SOURCES.get(rest) {
            if e.suffix {
                return Some(e);
            }
        }
    }
    lookup_tld_wildcard(key).or_else(|| lookup_word(key))
}

/// Matches `*word*` entries: a host whose name, its labels but the top-level domain,
/// contains the word (`incisozluk.com.tr`, `eksisozluk.com` → `*sozluk*`).
fn lookup_word(host: &str) -> Option<&'static SourceEntry> {
    let name = host.rsplit_once('.').map_or(host, |(name, _)| name);
    HOST_WORDS
        .iter()
        .find(|(w, _)| name.contains(w))
        .map(|(_, e)| e)
}

/// Matches `name.{}` entries: `google.de`, `google.co.uk` → `google.{}`; for entries that
/// cover subdomains also `smile.amazon.co.uk` → `amazon.{}`.
fn lookup_tld_wildcard(host: &str) -> Option<&'static SourceEntry> {
    let labels: Vec<&str> = host.split('.').collect();
    let n = labels.len();
    let mut bases: [Option<usize>; 2] = [None, None];
    if n >= 2 {
        bases[0] = Some(n - 1);
    }
    if n >= 3 && WILDCARD_SLDS.contains(&labels[n - 2]) {
        bases[1] = Some(n - 2);
    }
    let mut key = String::with_capacity(host.len() + 3);
    for end in bases.into_iter().flatten() {
        for start in 0..end {
            key.clear();
            for (i, l) in labels[start..end].iter().enumerate() {
                if i > 0 {
                    key.push('.');
                }
                key.push_str(l);
            }
            key.push_str(".{}");
            if let Some(e) = SOURCES.get(key.as_str()) {
                if start == 0 || e.suffix {
                    return Some(e);
                }
            }
        }
    }
    None
}

/// Lower-cases only when needed.
fn lower(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_uppercase) {
        Cow::Owned(s.to_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// The GA4 source category of a source value: a name (`google`, `facebook`, `youtube`)
/// or a host (`m.facebook.com`, `google.co.uk`); case-insensitive, `www.` ignored. A
/// URL is reduced to its host first.
pub fn source_category(source: &str) -> SourceCategory {
    let source = source.trim();
    let from_url;
    let source = if source.contains("://") {
        from_url = crate::entry::referrer_host(source).unwrap_or_default();
        from_url.as_str()
    } else {
        source
    };
    let l = lower(source);
    lookup(strip_www(&l)).map_or(SourceCategory::None, |e| e.category)
}

/// A session's entry source, classified: what the edge stores for each session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Touch {
    /// The default channel group.
    pub channel: Channel,
    /// Source as GA4 reports it: the `utm_source`, `google` for a Google search,
    /// `facebook.com` for a referral from facebook.com, `(direct)`...
    pub source: String,
    /// Medium: the `utm_medium`, `organic`, `referral`, `cpc` (click id), `(none)`...
    pub medium: String,
    /// `utm_campaign`, when manually tagged.
    pub campaign: Option<String>,
    /// `utm_term`, when manually tagged.
    pub term: Option<String>,
    /// `utm_content`, when manually tagged.
    pub content: Option<String>,
    /// `utm_id`, when manually tagged.
    pub campaign_id: Option<String>,
    /// The referrer's host (also for same-site and tagged arrivals), if any.
    pub referrer_host: Option<String>,
    /// The landing page's path.
    pub landing_path: String,
    /// The highest-priority click id of the landing URL, if any.
    pub click_id: Option<(ClickIdKind, String)>,
}

/// Classifies an arrival (see the module docs for how source and medium are derived).
pub fn classify(entry: &Entry) -> Touch {
    let tags = &entry.tags;
    let click_id = tags.click_id().cloned();
    let manual = tags.has_campaign_tags();
    let paid_click = tags
        .click_ids
        .iter()
        .find_map(|(k, _)| k.implied_source_medium());
    let external_referrer = entry
        .referrer_host
        .as_deref()
        .filter(|_| !entry.same_site_referrer);

    let (source, medium, category): (String, &str, Option<SourceCategory>) = if manual {
        let source = tags
            .utm_source
            .clone()
            .unwrap_or_else(|| "(not set)".to_string());
        let medium = tags.utm_medium.as_deref().unwrap_or("(not set)");
        (source, medium, None)
    } else if let Some((source, medium)) = paid_click {
        (source.to_string(), medium, None)
    } else if let Some(host) = external_referrer {
        let host = strip_www(host);
        // an Android app's package is classified as its network's web host, and keeps
        // its own name as the source (as GA4 reports `android-app://` referrers)
        let entry = lookup(host).or_else(|| android_app_host(host).and_then(lookup));
        match entry {
            Some(e) if e.category == SourceCategory::Search && !e.name.is_empty() => {
                (e.name.to_string(), "organic", Some(SourceCategory::Search))
            }
            Some(e) if e.category == SourceCategory::AiAssistant => {
                (host.to_string(), "ai-assistant", Some(e.category))
            }
            Some(e) => (host.to_string(), "referral", Some(e.category)),
            None => (host.to_string(), "referral", Some(SourceCategory::None)),
        }
    } else if tags
        .click_ids
        .iter()
        .any(|(k, _)| *k == ClickIdKind::Fbclid)
    {
        (
            "facebook".to_string(),
            "social",
            Some(SourceCategory::Social),
        )
    } else {
        ("(direct)".to_string(), "(none)", Some(SourceCategory::None))
    };

    let campaign = if manual {
        tags.utm_campaign.clone()
    } else {
        None
    };
    let channel = {
        let source_l = lower(&source);
        let medium_l = lower(medium);
        let campaign_l = lower(campaign.as_deref().unwrap_or(""));
        let category = category.unwrap_or_else(|| source_category(&source_l));
        rules::evaluate(&RuleInput {
            source: &source_l,
            medium: &medium_l,
            campaign: &campaign_l,
            category,
        })
    };
    Touch {
        channel,
        source,
        medium: medium.to_string(),
        campaign,
        term: if manual { tags.utm_term.clone() } else { None },
        content: if manual {
            tags.utm_content.clone()
        } else {
            None
        },
        campaign_id: if manual { tags.utm_id.clone() } else { None },
        referrer_host: entry.referrer_host.clone(),
        landing_path: entry.landing_path.clone(),
        click_id,
    }
}

include!(concat!(env!("OUT_DIR"), "/excluded_referrers.rs"));

/// Glob match over a whole host: `*` matches any run of characters (dots included).
fn glob(pattern: &str, host: &str) -> bool {
    let (p, h) = (pattern.as_bytes(), host.as_bytes());
    let (mut pi, mut hi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while hi < h.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, hi));
                pi += 1;
            }
            Some(c) if *c == h[hi] => {
                pi += 1;
                hi += 1;
            }
            _ => match star {
                Some((sp, sh)) => {
                    pi = sp + 1;
                    hi = sh + 1;
                    star = Some((sp, sh + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

/// Whether one exclusion pattern matches a (lower-case, `www.`-less) host.
fn excluded_by(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim();
    if pattern.is_empty() {
        return false;
    }
    let pattern = lower(pattern);
    if pattern.contains('*') {
        return glob(&pattern, host);
    }
    let pattern = strip_www(&pattern);
    host == pattern
        || host
            .strip_suffix(pattern)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// Whether a referrer host is a payment or sign-in round trip that must not start a
/// session: it matches [`DEFAULT_EXCLUDED_REFERRERS`] (`core/data/excluded-referrers.txt`:
/// PayPal, Stripe Checkout, Adyen, Klarna, bank 3-D Secure pages, Google / Apple /
/// Microsoft / Okta / Auth0 sign-in...) or one of the site's own `site_exclusions`.
///
/// Patterns: a plain host matches itself and its subdomains; a pattern with `*` is a
/// glob over the whole host. Comparison is case-insensitive and ignores a leading `www.`.
pub fn is_excluded_referrer(host: &str, site_exclusions: &[&str]) -> bool {
    let host = lower(host.trim());
    let host = strip_www(&host);
    if host.is_empty() {
        return false;
    }
    DEFAULT_EXCLUDED_REFERRERS
        .iter()
        .chain(site_exclusions.iter())
        .any(|p| excluded_by(p, host))
}

/// Number of host keys and source names compiled from the lists (for diagnostics).
pub fn source_key_count() -> usize {
    SOURCE_KEYS
}

#[cfg(test)]
mod tests {
    use super::matchers::*;
    use super::*;
    use proptest::prelude::*;

    fn re(s: &str) -> regex::Regex {
        regex::Regex::new(s).expect("valid regex")
    }

    proptest! {
        #[test]
        fn paid_medium_equals_regex(s in "[a-z_ .\n-]{0,3}(cp|pp|ppc|paid|retargeting)?[a-z_ .\n-]{0,3}") {
            prop_assert_eq!(paid_medium(&s), re("^(.*cp.*|ppc|retargeting|paid.*)$").is_match(&s));
        }

        #[test]
        fn video_medium_equals_regex(s in "[a-z \n]{0,3}(video|vide)?[a-z \n]{0,3}") {
            prop_assert_eq!(video_medium(&s), re("^(.*video.*)$").is_match(&s));
        }

        #[test]
        fn shopping_campaign_equals_regex(s in "[a-gz0-9_ \né-]{0,3}(shop|shopping|shp)?[a-z \n-]{0,2}(shop)?[a-z\n]{0,2}") {
            prop_assert_eq!(shopping_campaign(&s), re("^(.*(([^a-df-z]|^)shop|shopping).*)$").is_match(&s));
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_input(landing in ".{0,80}", referrer in ".{0,80}", site in ".{0,12}") {
            let entry = crate::entry::parse_entry(&landing, Some(&referrer), &[&site]);
            let touch = classify(&entry);
            prop_assert!(!touch.source.is_empty() && !touch.medium.is_empty());
            let _ = is_excluded_referrer(&referrer, &[&site]);
        }

        #[test]
        fn never_panics_on_url_like_input(
            landing in "(https?://)?[a-zA-Z0-9.\\u{e9}\\u{4e2d}-]{0,12}(:[0-9]{0,6})?(/[^?#]{0,8})?(\\?[^#]{0,30})?(#.{0,5})?",
            referrer in "([a-z-]{1,12}:)?(//)?[a-zA-Z0-9.@:\\[\\]\\u{fc}-]{0,20}(/.{0,10})?",
        ) {
            let touch = classify(&crate::entry::parse_entry(&landing, Some(&referrer), &["example.com"]));
            prop_assert!(Channel::ALL.contains(&touch.channel));
        }
    }

    #[test]
    fn shopping_regex_examples() {
        for yes in [
            "shop",
            "eshop",
            "e-shop",
            "summer_shop",
            "shopping",
            "workshopping",
            "1shop",
            "a\nshop",
        ] {
            assert!(shopping_campaign(yes), "{yes:?}");
        }
        for no in ["workshop", "bishop", "shp", "", "a\nb\nshop", "shop\n"] {
            assert!(!shopping_campaign(no), "{no:?}");
        }
    }

    #[test]
    fn evaluation_order_matches_article() {
        let names: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "Direct",
                "Cross-network",
                "Paid Shopping",
                "Paid Search",
                "Paid Social",
                "Paid Video",
                "Display",
                "Paid Other",
                "Organic Shopping",
                "Organic Social",
                "Organic Video",
                "Organic Search",
                "AI Assistant",
                "Referral",
                "Email",
                "Affiliates",
                "Audio",
                "SMS",
                "Mobile Push Notifications",
                "Unassigned"
            ]
        );
        for c in Channel::ALL {
            assert_eq!(Channel::from_name(c.as_str()), Some(c));
        }
    }

    #[test]
    fn categories_from_lists() {
        assert_eq!(source_category("google"), SourceCategory::Search);
        assert_eq!(source_category("Google.co.uk"), SourceCategory::Search);
        assert_eq!(source_category("www.bing.com"), SourceCategory::Search);
        assert_eq!(
            source_category("de.search.yahoo.com"),
            SourceCategory::Search
        );
        assert_eq!(source_category("mail.google.com"), SourceCategory::None);
        assert_eq!(source_category("m.facebook.com"), SourceCategory::Social);
        // a genre named in the host (`*sozluk*`), in any TLD and subdomain; not in the TLD
        for host in [
            "eksisozluk.com",
            "www.incisozluk.com.tr",
            "m.uludagsozluk.com",
        ] {
            assert_eq!(source_category(host), SourceCategory::Social, "{host}");
        }
        assert_eq!(source_category("bsky"), SourceCategory::Social);
        assert_eq!(source_category("example.com"), SourceCategory::None);
        assert_eq!(
            source_category("business.facebook.com"),
            SourceCategory::Social
        );
        assert_eq!(source_category("facebook"), SourceCategory::Social);
        assert_eq!(source_category("youtube.com"), SourceCategory::Video);
        assert_eq!(
            source_category("smile.amazon.co.uk"),
            SourceCategory::Shopping
        );
        assert_eq!(source_category("cnn.com"), SourceCategory::None);
        assert_eq!(
            source_category("https://www.reddit.com/r/rust"),
            SourceCategory::Social
        );
        assert!(source_key_count() > 1000);
    }

    #[test]
    fn exclusions() {
        assert!(is_excluded_referrer("www.paypal.com", &[]));
        assert!(is_excluded_referrer("checkout.stripe.com", &[]));
        assert!(is_excluded_referrer("acs.3dsecure.bank.example", &[]));
        assert!(is_excluded_referrer("ACCOUNTS.GOOGLE.COM", &[]));
        assert!(!is_excluded_referrer("stripe.com", &[]));
        assert!(!is_excluded_referrer("notpaypal.com", &[]));
        assert!(!is_excluded_referrer("github.com", &[]));
        assert!(is_excluded_referrer("github.com", &["GitHub.com"]));
        assert!(is_excluded_referrer("pay.example.org", &["*.example.org"]));
        assert!(!is_excluded_referrer("", &["*"]));
    }

    #[test]
    fn glob_examples() {
        assert!(glob("*.3dsecure.*", "a.3dsecure.b"));
        assert!(!glob("*.3dsecure.*", "3dsecure.b"));
        assert!(glob("a*b*c", "aXbYc"));
        assert!(!glob("a*b", "ac"));
    }
}
