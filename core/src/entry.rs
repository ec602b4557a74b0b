//! Entry sources: what a visitor arrived with (UTM tags, ad click ids, referrer, landing page).
//!
//! Two layers:
//! - always compiled, tiny and dependency-free (the browser tracker links it):
//!   [`QueryTags::parse`] reads the six UTM tags and the nine ad click ids from a query
//!   string; [`referrer_host`] pulls the host out of a referrer; [`is_same_site`] compares
//!   two hosts. No `url`, no regex, no serde_json.
//! - with the `full` feature (the edge): `parse_entry` builds a normalised [`Entry`]
//!   from the landing URL and the referrer with the `url` crate, ready for
//!   `channel::classify`.
//!
//! Choices written down here, so the tracker, the edge and the tests agree:
//! - Query parameter *names* are matched ASCII-case-insensitively (`UTM_Source` counts);
//!   values are percent-decoded, `+` is a space, surrounding whitespace is trimmed and an
//!   empty value counts as absent. When a parameter repeats, the first non-empty value
//!   wins. The fragment (`#...`) is ignored, as GA4 does by default.
//! - Hosts are lower case, without a trailing dot. Internationalised hosts are kept in
//!   their ASCII (punycode, `xn--`) form: it is what browsers put in `document.referrer`,
//!   it is canonical, and the referrer lists are written in ASCII.
//! - Same site: strip a leading `www.` from both hosts and compare ASCII-case-insensitively;
//!   they are the same site when equal, or when one ends with `"." + other`
//!   (`blog.example.com` and `example.com` are the same site; `blog.example.com` and
//!   `shop.example.com` are not, unless the site lists `example.com` among its hosts).

use std::borrow::Cow;

/// An ad network's click identifier, appended to landing URLs by the network.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum ClickIdKind {
    /// Google Ads (`gclid`).
    #[serde(rename = "gclid")]
    Gclid,
    /// Google Ads on iOS app-to-web (`gbraid`).
    #[serde(rename = "gbraid")]
    Gbraid,
    /// Google Ads on iOS web-to-app (`wbraid`).
    #[serde(rename = "wbraid")]
    Wbraid,
    /// Google Campaign Manager 360 / Display & Video 360 (`dclid`).
    #[serde(rename = "dclid")]
    Dclid,
    /// Microsoft Advertising (`msclkid`).
    #[serde(rename = "msclkid")]
    Msclkid,
    /// Meta / Facebook (`fbclid`), also added to organic outbound links.
    #[serde(rename = "fbclid")]
    Fbclid,
    /// TikTok Ads (`ttclid`).
    #[serde(rename = "ttclid")]
    Ttclid,
    /// LinkedIn Ads (`li_fat_id`).
    #[serde(rename = "li_fat_id")]
    LiFatId,
    /// X / Twitter Ads (`twclid`).
    #[serde(rename = "twclid")]
    Twclid,
}

impl ClickIdKind {
    /// All kinds, in the priority used when a URL carries several: the paid-only ids
    /// first (Google, Microsoft, TikTok, LinkedIn, X), `fbclid` last because Facebook also
    /// adds it to organic links.
    pub const ALL: [ClickIdKind; 9] = [
        ClickIdKind::Gclid,
        ClickIdKind::Gbraid,
        ClickIdKind::Wbraid,
        ClickIdKind::Dclid,
        ClickIdKind::Msclkid,
        ClickIdKind::Ttclid,
        ClickIdKind::LiFatId,
        ClickIdKind::Twclid,
        ClickIdKind::Fbclid,
    ];

    /// The query parameter name (`"gclid"`, `"li_fat_id"`...).
    pub fn param(self) -> &'static str {
        match self {
            ClickIdKind::Gclid => "gclid",
            ClickIdKind::Gbraid => "gbraid",
            ClickIdKind::Wbraid => "wbraid",
            ClickIdKind::Dclid => "dclid",
            ClickIdKind::Msclkid => "msclkid",
            ClickIdKind::Fbclid => "fbclid",
            ClickIdKind::Ttclid => "ttclid",
            ClickIdKind::LiFatId => "li_fat_id",
            ClickIdKind::Twclid => "twclid",
        }
    }

    /// The kind for a query parameter name (ASCII-case-insensitive).
    pub fn from_param(name: &str) -> Option<ClickIdKind> {
        ClickIdKind::ALL
            .into_iter()
            .find(|k| k.param().eq_ignore_ascii_case(name))
    }

    /// The source and medium a click id implies when the URL has no UTM tags, or `None`
    /// when it implies nothing paid.
    ///
    /// - `gclid`, `gbraid`, `wbraid`, `dclid` → `google` / `cpc` (Paid Search). `dclid`
    ///   is Campaign Manager 360 / DV360's click id and may come from a display ad; with
    ///   no Google Ads link we cannot tell, so it follows `gclid` (tag display campaigns
    ///   with `utm_medium=display` to get Display);
    /// - `msclkid` → `bing` / `cpc` (Paid Search);
    /// - `ttclid` → `tiktok` / `cpc`, `li_fat_id` → `linkedin` / `cpc`, `twclid` →
    ///   `twitter` / `cpc` (Paid Social);
    /// - `fbclid` → `None`: Facebook appends it to every outbound link, organic posts
    ///   included, so it proves a click from Facebook but not an ad. GA4 ignores it (the
    ///   visit keeps its referrer, usually `l.facebook.com` → Organic Social); we do the
    ///   same, and when the in-app browser dropped the referrer we credit
    ///   `facebook` / `social` (Organic Social) instead of Direct. Tag paid Meta
    ///   campaigns with UTM tags (`utm_medium=paid_social` or `cpc`).
    pub fn implied_source_medium(self) -> Option<(&'static str, &'static str)> {
        match self {
            ClickIdKind::Gclid | ClickIdKind::Gbraid | ClickIdKind::Wbraid | ClickIdKind::Dclid => {
                Some(("google", "cpc"))
            }
            ClickIdKind::Msclkid => Some(("bing", "cpc")),
            ClickIdKind::Ttclid => Some(("tiktok", "cpc")),
            ClickIdKind::LiFatId => Some(("linkedin", "cpc")),
            ClickIdKind::Twclid => Some(("twitter", "cpc")),
            ClickIdKind::Fbclid => None,
        }
    }
}

/// The campaign tags and click ids of one landing URL's query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryTags {
    /// `utm_source`.
    pub utm_source: Option<String>,
    /// `utm_medium`.
    pub utm_medium: Option<String>,
    /// `utm_campaign`.
    pub utm_campaign: Option<String>,
    /// `utm_term`.
    pub utm_term: Option<String>,
    /// `utm_content`.
    pub utm_content: Option<String>,
    /// `utm_id`.
    pub utm_id: Option<String>,
    /// Click ids present, at most one per kind, in [`ClickIdKind::ALL`] priority order.
    pub click_ids: Vec<(ClickIdKind, String)>,
}

impl QueryTags {
    /// Parses a query string (with or without its leading `?`; anything from `#` on is
    /// ignored). Pairs are separated by `&` only, as `URLSearchParams` does. Never fails: unknown parameters are skipped, malformed percent escapes
    /// are kept literally, invalid UTF-8 becomes U+FFFD.
    pub fn parse(query: &str) -> QueryTags {
        let query = query.strip_prefix('?').unwrap_or(query);
        let query = query.split('#').next().unwrap_or("");
        let mut tags = QueryTags::default();
        for pair in query.split('&') {
            if pair.is_empty() {
                continue;
            }
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(raw_name);
            let name = name.trim();
            let utm = name
                .get(..4)
                .filter(|p| p.eq_ignore_ascii_case("utm_"))
                .and_then(|_| name.get(4..));
            let slot = if let Some(tag) = utm {
                let is = |want: &str| tag.eq_ignore_ascii_case(want);
                if is("source") {
                    &mut tags.utm_source
                } else if is("medium") {
                    &mut tags.utm_medium
                } else if is("campaign") {
                    &mut tags.utm_campaign
                } else if is("term") {
                    &mut tags.utm_term
                } else if is("content") {
                    &mut tags.utm_content
                } else if is("id") {
                    &mut tags.utm_id
                } else {
                    continue;
                }
            } else if let Some(kind) = ClickIdKind::from_param(name) {
                if tags.click_ids.iter().any(|(k, _)| *k == kind) {
                    continue;
                }
                let value = percent_decode(raw_value);
                let value = value.trim();
                if !value.is_empty() {
                    tags.click_ids.push((kind, value.to_string()));
                }
                continue;
            } else {
                continue;
            };
            if slot.is_none() {
                let value = percent_decode(raw_value);
                let value = value.trim();
                if !value.is_empty() {
                    *slot = Some(value.to_string());
                }
            }
        }
        tags.click_ids
            .sort_by_key(|(k, _)| ClickIdKind::ALL.iter().position(|x| x == k));
        tags
    }

    /// Whether any of the six UTM tags is present.
    pub fn has_utm(&self) -> bool {
        [
            &self.utm_source,
            &self.utm_medium,
            &self.utm_campaign,
            &self.utm_term,
            &self.utm_content,
            &self.utm_id,
        ]
        .iter()
        .any(|t| t.is_some())
    }

    /// Whether the URL is manually tagged: `utm_source`, `utm_medium` or `utm_campaign`
    /// is present. Only then do the tags replace the referrer (a lone `utm_term`,
    /// `utm_content` or `utm_id` does not say where the visit came from).
    pub fn has_campaign_tags(&self) -> bool {
        self.utm_source.is_some() || self.utm_medium.is_some() || self.utm_campaign.is_some()
    }

    /// Whether the URL carries any UTM tag or click id: such an arrival is an external
    /// source, which starts a new session when it differs from the current session's
    /// source (see `session`; reloading the same tagged URL does not).
    pub fn has_any(&self) -> bool {
        self.has_utm() || !self.click_ids.is_empty()
    }

    /// The highest-priority click id, if any.
    pub fn click_id(&self) -> Option<&(ClickIdKind, String)> {
        self.click_ids.first()
    }
}

/// Decodes `%XX` escapes and `+` (as a space) of a query-string component. Malformed
/// escapes are kept as they are; invalid UTF-8 becomes U+FFFD.
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = |j: usize| bytes.get(j).and_then(|c| (*c as char).to_digit(16));
                match (hex(i + 1), hex(i + 2)) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

/// Whether `scheme` is a syntactically valid URL scheme (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`).
fn is_scheme(scheme: &str) -> bool {
    let mut chars = scheme.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Position of the first `"://"`, by a byte scan (cheaper than `str::find` on short input).
fn find_scheme_separator(s: &str) -> Option<usize> {
    s.as_bytes().windows(3).position(|w| w == b"://")
}

/// The host of a referrer, lower case, without port, user info or trailing dot.
///
/// Accepts `scheme://host[:port]/...` (any scheme, so `android-app://com.example.app`
/// gives the package name), `//host/...`, and a scheme-less `host/path` (then the host
/// must contain a dot, so `about:blank` gives `None`). Bracketed IPv6 hosts keep their
/// brackets. Non-ASCII hosts are returned as given (lower-cased ASCII letters only); the
/// `full` layer converts them to punycode. Returns `None` for an empty or unusable host.
pub fn referrer_host(referrer: &str) -> Option<String> {
    let r = referrer.trim();
    let (rest, had_scheme) = match find_scheme_separator(r) {
        Some(i) if is_scheme(&r[..i]) => (&r[i + 3..], true),
        _ => match r.strip_prefix("//") {
            Some(rest) => (rest, true),
            None => (r, false),
        },
    };
    let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        match host_port.find(']') {
            Some(i) => &host_port[..=i],
            None => return None,
        }
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    let host = host.trim_end_matches('.');
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    if !had_scheme && !host.contains('.') {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

/// Strips one leading `www.` (ASCII-case-insensitively) and a trailing dot.
pub fn strip_www(host: &str) -> &str {
    let host = host.trim().trim_end_matches('.');
    match host.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("www.") && host.len() > 4 => &host[4..],
        _ => host,
    }
}

/// Whether `a` ends with `"." + b`, ASCII-case-insensitively.
fn is_subdomain_of(a: &str, b: &str) -> bool {
    a.len() > b.len() + 1
        && a.as_bytes().get(a.len() - b.len() - 1) == Some(&b'.')
        && a.get(a.len() - b.len()..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(b))
}

/// Whether two hosts belong to the same site (see the module docs for the rule):
/// after stripping a leading `www.`, equal or one a subdomain of the other, ASCII
/// case-insensitively. Empty hosts are never the same site.
pub fn is_same_site(a: &str, b: &str) -> bool {
    let (a, b) = (strip_www(a), strip_www(b));
    if a.is_empty() || b.is_empty() {
        return false;
    }
    a.eq_ignore_ascii_case(b) || is_subdomain_of(a, b) || is_subdomain_of(b, a)
}

/// A visitor's arrival, normalised: the input of `channel::classify`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// UTM tags and click ids of the landing URL.
    pub tags: QueryTags,
    /// The referrer's host (lower case, punycode), `None` when there was no usable referrer.
    pub referrer_host: Option<String>,
    /// Whether the referrer is the site itself (same-site rule in the module docs).
    pub same_site_referrer: bool,
    /// The landing page's path (percent-encoded as in the URL), `/` at least.
    pub landing_path: String,
    /// The landing page's host, when the landing URL had one.
    pub landing_host: Option<String>,
}

#[cfg(feature = "full")]
mod full {
    use super::{find_scheme_separator, is_same_site, referrer_host, strip_www, Entry, QueryTags};

    /// Whether a host is already normal: non-empty lower-case ASCII letters, digits, `.-_`.
    fn is_simple_host(host: &str) -> bool {
        !host.is_empty()
            && host.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
            })
    }

    /// Normalises a host to lower-case ASCII (punycode for IDN), or `None` if invalid.
    pub(super) fn normalize_host(host: &str) -> Option<String> {
        if is_simple_host(host) {
            return Some(host.to_string());
        }
        if host.starts_with('[') {
            return url::Host::parse(host).ok().map(|h| h.to_string());
        }
        match url::Host::parse(host) {
            Ok(url::Host::Domain(d)) => {
                Some(d.trim_end_matches('.').to_string()).filter(|d| !d.is_empty())
            }
            Ok(other) => Some(other.to_string()),
            // Hosts with characters a URL host forbids but a package name or opaque
            // host may carry: keep them lower-cased rather than losing the referrer.
            Err(_) => Some(host.to_lowercase()).filter(|h| !h.is_empty()),
        }
    }

    /// Bytes the fast path accepts anywhere after the scheme: ASCII letters, digits and
    /// `-._~!$&'()*+,;=:@/?#%`, which the URL parser leaves as they are.
    const FAST_URL_BYTES: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            t[b] = c.is_ascii_alphanumeric();
            b += 1;
        }
        let extra = b"-._~!$&'()*+,;=:@/?#%";
        let mut i = 0;
        while i < extra.len() {
            t[extra[i] as usize] = true;
            i += 1;
        }
        t
    };

    /// Fast path for the common landing URL, `http(s)://host[:port]/path?query#frag` in
    /// plain ASCII with nothing the URL parser would rewrite (no dot segments, no
    /// backslash, no user info, a simple lower-case host): the same result as the `url`
    /// crate, without its allocation-heavy parse. Anything else returns `None`.
    fn split_landing_fast(landing: &str) -> Option<(String, Option<String>, Option<String>)> {
        let rest = landing
            .strip_prefix("https://")
            .or_else(|| landing.strip_prefix("http://"))?;
        if !rest.bytes().all(|b| FAST_URL_BYTES[usize::from(b)]) {
            return None;
        }
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let host = authority.split(':').next().unwrap_or("");
        let port = authority.get(host.len() + 1..).unwrap_or("");
        let port_ok = authority.len() == host.len()
            || (!port.is_empty()
                && port.len() <= 5
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u32>().is_ok_and(|p| p <= 65535));
        let host_ok = !host.is_empty()
            && !host.starts_with('.')
            && !host.ends_with('.')
            && !host.as_bytes().windows(2).any(|w| w == b"..")
            && host.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            // A last label that starts with a digit may be read as IPv4 by the parser.
            && host.rsplit('.').next().is_some_and(|l| l.starts_with(|c: char| c.is_ascii_lowercase()));
        if !host_ok || !port_ok || authority.contains('@') {
            return None;
        }
        let after = &rest[end..];
        let no_frag = after.split('#').next().unwrap_or("");
        let (path, query) = match no_frag.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (no_frag, None),
        };
        // Dot segments ("/./", "/../", "/%2e%2e/") are rewritten by the parser; any "%2x"
        // escape takes the slow path.
        if path.as_bytes().windows(2).any(|w| w == b"/." || w == b"%2") {
            return None;
        }
        let path = if path.is_empty() { "/" } else { path };
        Some((
            path.to_string(),
            query.map(str::to_string),
            Some(host.to_string()),
        ))
    }

    /// Path, query and host of a landing URL. Tolerates a missing scheme and a bare path.
    fn split_landing(landing: &str) -> (String, Option<String>, Option<String>) {
        let landing = landing.trim();
        split_landing_fast(landing).unwrap_or_else(|| split_landing_url(landing))
    }

    /// [`split_landing`] through the `url` crate (IDN, dot segments, odd characters).
    fn split_landing_url(landing: &str) -> (String, Option<String>, Option<String>) {
        let parsed = url::Url::parse(landing).ok().or_else(|| {
            let first = landing.split(['/', '?', '#']).next().unwrap_or("");
            if first.contains('.') && !landing.starts_with('/') {
                url::Url::parse(&format!("http://{landing}")).ok()
            } else {
                None
            }
        });
        match parsed {
            Some(u) if u.has_host() => {
                let host = u.host_str().and_then(normalize_host);
                (u.path().to_string(), u.query().map(str::to_string), host)
            }
            _ => {
                // A bare path ("/pricing?utm_source=x") or something unparsable.
                let no_frag = landing.split('#').next().unwrap_or("");
                let (path, query) = match no_frag.split_once('?') {
                    Some((p, q)) => (p, Some(q.to_string())),
                    None => (no_frag, None),
                };
                let path = if path.starts_with('/') {
                    path.to_string()
                } else {
                    "/".to_string()
                };
                (path, query, None)
            }
        }
    }

    /// Parses a visitor's arrival.
    ///
    /// - `landing_url`: the page URL (absolute; a scheme-less `example.com/x` or a bare
    ///   `/path?query` is tolerated).
    /// - `referrer`: `document.referrer` (`None` or `""` when there was none). Any scheme
    ///   is accepted (`android-app://com.google.android.googlequicksearchbox/` gives the
    ///   package name as host), and a missing scheme (`google.com/search`) too.
    /// - `site_hosts`: the site's own hosts; a referrer on one of them, or on the landing
    ///   page's host, is same-site. Entries may be bare hosts or URLs.
    ///
    /// Never panics; what cannot be read is left empty.
    pub fn parse_entry(landing_url: &str, referrer: Option<&str>, site_hosts: &[&str]) -> Entry {
        let (landing_path, query, landing_host) = split_landing(landing_url);
        let tags = query.as_deref().map(QueryTags::parse).unwrap_or_default();
        let ref_host = referrer.and_then(referrer_host).and_then(|h| {
            if is_simple_host(&h) {
                Some(h)
            } else {
                normalize_host(&h)
            }
        });
        let same_site_referrer = ref_host.as_deref().is_some_and(|r| {
            landing_host.as_deref().is_some_and(|l| is_same_site(r, l))
                || site_hosts.iter().any(|s| {
                    let s = s.trim();
                    let is_url = find_scheme_separator(s).is_some();
                    if !is_url {
                        let bare = s.split(['/', ':']).next().unwrap_or("");
                        // Common case: a plain ASCII host, compared without allocating.
                        if bare.is_ascii() {
                            return is_same_site(r, bare);
                        }
                    }
                    let host = if is_url {
                        referrer_host(s)
                    } else {
                        Some(s.to_string())
                    };
                    host.and_then(|h| normalize_host(strip_www(&h)))
                        .is_some_and(|h| is_same_site(r, &h))
                })
        });
        Entry {
            tags,
            referrer_host: ref_host,
            same_site_referrer,
            landing_path,
            landing_host,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn fast_landing_split_agrees_with_url_crate(
                u in "https?://[a-z0-9.-]{1,10}(:[0-9]{1,5})?(/[a-zA-Z0-9._~%-]{0,5}){0,3}(\\?[a-zA-Z0-9=&%+_.;-]{0,10})?(#[a-z?]{0,3})?"
            ) {
                if let Some(fast) = split_landing_fast(&u) {
                    prop_assert_eq!(fast, split_landing_url(&u));
                }
            }
        }

        #[test]
        fn fast_path_declines_what_the_parser_rewrites() {
            for u in [
                "https://example.com/a/../b",
                "https://Example.com/",
                "https://u@example.com/",
                "https://1.2.3.4/",
                "https://bücher.de/",
                "https://example.com/a b",
                "https://example.com:x/",
            ] {
                assert_eq!(split_landing_fast(u), None, "{u}");
            }
            assert_eq!(
                split_landing_fast("https://example.com:8443?utm_source=x#f"),
                Some((
                    "/".into(),
                    Some("utm_source=x".into()),
                    Some("example.com".into())
                ))
            );
        }
    }
}

#[cfg(feature = "full")]
pub use full::parse_entry;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utm_and_click_ids() {
        let t =
            QueryTags::parse("?utm_source=News+Letter&utm_medium=e%2Dmail&gclid=abc&fbclid=f&x=1");
        assert_eq!(t.utm_source.as_deref(), Some("News Letter"));
        assert_eq!(t.utm_medium.as_deref(), Some("e-mail"));
        assert_eq!(
            t.click_ids,
            vec![
                (ClickIdKind::Gclid, "abc".into()),
                (ClickIdKind::Fbclid, "f".into())
            ]
        );
        assert!(t.has_campaign_tags() && t.has_any());
    }

    #[test]
    fn first_non_empty_value_wins_and_names_ignore_case() {
        let t =
            QueryTags::parse("utm_source=&UTM_SOURCE=b&utm_source=c&utm_campaign=%zz#utm_medium=x");
        assert_eq!(t.utm_source.as_deref(), Some("b"));
        assert_eq!(t.utm_campaign.as_deref(), Some("%zz"));
        assert_eq!(t.utm_medium, None);
    }

    #[test]
    fn click_id_priority_puts_fbclid_last() {
        let t = QueryTags::parse("fbclid=1&msclkid=2");
        assert_eq!(t.click_id().map(|c| c.0), Some(ClickIdKind::Msclkid));
        assert!(!t.has_utm());
    }

    #[test]
    fn lone_term_is_not_campaign_tagging() {
        let t = QueryTags::parse("utm_term=shoes");
        assert!(t.has_utm() && !t.has_campaign_tags());
    }

    #[test]
    fn percent_decode_handles_bad_input() {
        assert_eq!(percent_decode("a%"), "a%");
        assert_eq!(percent_decode("%C3%A9"), "é");
        assert_eq!(percent_decode("%FF"), "\u{FFFD}");
    }

    #[test]
    fn referrer_hosts() {
        assert_eq!(
            referrer_host("https://User@WWW.Google.COM:443/search?q=x").as_deref(),
            Some("www.google.com")
        );
        assert_eq!(
            referrer_host("google.com/search").as_deref(),
            Some("google.com")
        );
        assert_eq!(
            referrer_host("android-app://com.google.android.googlequicksearchbox/").as_deref(),
            Some("com.google.android.googlequicksearchbox")
        );
        assert_eq!(
            referrer_host("//cdn.example.org/x").as_deref(),
            Some("cdn.example.org")
        );
        assert_eq!(
            referrer_host("http://[::1]:8080/").as_deref(),
            Some("[::1]")
        );
        assert_eq!(
            referrer_host("example.com./").as_deref(),
            Some("example.com")
        );
        assert_eq!(referrer_host(""), None);
        assert_eq!(referrer_host("about:blank"), None);
        assert_eq!(referrer_host("https:///nohost"), None);
        assert_eq!(
            referrer_host("google.com/?u=http://evil.example").as_deref(),
            Some("google.com")
        );
    }

    #[test]
    fn same_site_rule() {
        assert!(is_same_site("www.Example.com", "example.COM"));
        assert!(is_same_site("blog.example.com", "example.com"));
        assert!(is_same_site("example.com", "shop.example.com"));
        assert!(!is_same_site("blog.example.com", "shop.example.com"));
        assert!(!is_same_site("notexample.com", "example.com"));
        assert!(!is_same_site("", "example.com"));
    }

    #[cfg(feature = "full")]
    #[test]
    fn parse_entry_basics() {
        let e = parse_entry(
            "https://Shop.Example.com/p/1?utm_source=x#frag",
            Some("https://www.example.com/"),
            &["example.com"],
        );
        assert_eq!(e.landing_path, "/p/1");
        assert_eq!(e.landing_host.as_deref(), Some("shop.example.com"));
        assert!(e.same_site_referrer);
        assert_eq!(e.tags.utm_source.as_deref(), Some("x"));

        let idn = parse_entry("/", Some("https://BÜCHER.de/x"), &[]);
        assert_eq!(idn.referrer_host.as_deref(), Some("xn--bcher-kva.de"));
        assert!(!idn.same_site_referrer);
        assert_eq!(idn.landing_path, "/");

        let none = parse_entry("not a url", Some("   "), &[]);
        assert_eq!(none.referrer_host, None);
        assert_eq!(none.landing_path, "/");
    }
}
