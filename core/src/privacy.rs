//! What the edge keeps of a visitor: the privacy rules applied before anything is stored.
//! Pure functions, so `POST /v1/collect` and `events:import` apply the very same rules, and
//! so they are tested here natively.
//!
//! # URLs and referrers ([`clean_url`])
//! - The fragment (`#...`) is dropped: it can carry tokens (OAuth implicit flows put
//!   `#access_token=` there) and no report reads it (a page's path is the URL's path) —
//!   unless it is a hash route (`#/pricing`, `#!/pricing`): for a single-page app with hash
//!   routing that is the page itself, so it is kept, cleaned like the path and query are.
//! - The query keeps only the keys that attribution needs — the six UTM tags and the nine
//!   ad click ids of [`crate::entry`], matched ASCII-case-insensitively as
//!   [`crate::entry::QueryTags::parse`] matches them — and the keys the site allows
//!   ([`PrivacySettings::query_keys`]). Everything else (`?token=`, `?reset=`, `?email=`,
//!   search terms) is removed. Kept pairs keep their original spelling and encoding.
//! - User info (`https://user:password@host/`) is dropped.
//! - An email address anywhere in what is kept — a path segment
//!   (`/unsubscribe/ann@example.com`), a kept query value — is replaced by
//!   [`EMAIL_PLACEHOLDER`], also when it was percent-encoded (`ann%40example.com`).
//!
//! **Reports do not change.** Channel classification reads only the landing URL's UTM tags
//! and click ids and the referrer's host (`entry::parse_entry`), sessions the path, the
//! pages report the path: all of them survive cleaning. (A referrer's query — a search
//! engine's `q=` — is never read; its host is.) An email in a UTM value becomes the
//! placeholder, which is what a report should show anyway.
//!
//! # Text ([`redact_emails`])
//! Page titles pass through [`redact_emails`] too ("Welcome back, ann@example.com").
//! Form values and identify traits are not: an identity field's value is the one thing
//! the site asked to keep (the design contract's form rules decide what reaches the edge).
//!
//! # Geo ([`GeoField`])
//! Cloudflare's `request.cf` knows more than attribution needs. Kept always: country,
//! region (name and ISO code), city, continent and the EU flag — all coarse, and what the
//! reports segment by. Kept only when the site opts in ([`PrivacySettings::geo`]):
//! - `postal_code` — a postal code narrows a visitor to a few thousand households;
//! - `coordinates` — latitude/longitude (city-level estimates that look precise);
//! - `timezone` — usually implied by the region, but finer in some countries;
//! - `network` — the autonomous system number and organisation: for B2B sites this names
//!   the visitor's employer, which is exactly why it is opt-in;
//! - `colo` — the Cloudflare data centre that served the request (operational detail that
//!   also locates the visitor).
//!
//! # Tombstones ([`tombstone_hash`])
//! An erased lead leaves a salted hash of its email (and of its lead id and visitor ids),
//! so that no later beacon, import or conversion brings it back; see the edge's erasure.

use crate::entry::ClickIdKind;
use crate::validate::Validated;
use crate::wire::{CollectResponse, ErrorDetail, EventResult, Status};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// What an email address found in a kept URL part or a title becomes.
pub const EMAIL_PLACEHOLDER: &str = "[email]";

/// The query keys always kept: what channel classification and campaign reports read.
pub const ATTRIBUTION_QUERY_KEYS: [&str; 6] = [
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "utm_id",
];

/// Most query keys a site may add to the ones always kept.
pub const MAX_SITE_QUERY_KEYS: usize = 50;

/// A site's privacy settings (admin: `PUT /v1/admin/sites/{site}/privacy`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacySettings {
    /// Query keys kept in stored URLs besides the UTM tags and click ids (lower case).
    pub query_keys: Vec<String>,
    /// Geo fields kept besides country, region, city, continent and the EU flag.
    pub geo: Vec<GeoField>,
}

impl PrivacySettings {
    /// Checks and normalises settings sent by an admin: query keys trimmed and lower-cased
    /// (1–64 visible ASCII characters, no `&`, `=` or `#`), duplicates dropped, at most
    /// [`MAX_SITE_QUERY_KEYS`]. `Err` says what is wrong.
    pub fn normalised(mut self) -> Result<PrivacySettings, String> {
        let mut keys: Vec<String> = Vec::new();
        for k in &self.query_keys {
            let k = k.trim().to_ascii_lowercase();
            let ok = (1..=64).contains(&k.len())
                && k.bytes()
                    .all(|b| b.is_ascii_graphic() && !matches!(b, b'&' | b'=' | b'#'));
            if !ok {
                return Err(format!(
                    "query key `{k}` must be 1 to 64 visible ASCII characters without &, = or #"
                ));
            }
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        if keys.len() > MAX_SITE_QUERY_KEYS {
            return Err(format!(
                "at most {MAX_SITE_QUERY_KEYS} query keys (got {})",
                keys.len()
            ));
        }
        keys.sort();
        self.query_keys = keys;
        self.geo.sort();
        self.geo.dedup();
        Ok(self)
    }

    /// Whether the site opted in to keeping `field`.
    pub fn keeps(&self, field: GeoField) -> bool {
        self.geo.contains(&field)
    }
}

/// Geo fields a site may opt in to keeping (see the module docs for why each is opt-in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeoField {
    /// Postal code.
    PostalCode,
    /// Latitude and longitude.
    Coordinates,
    /// IANA time zone.
    Timezone,
    /// Autonomous system number and organisation.
    Network,
    /// Cloudflare data centre.
    Colo,
}

impl GeoField {
    /// Every field, in the order of the docs.
    pub const ALL: [GeoField; 5] = [
        GeoField::PostalCode,
        GeoField::Coordinates,
        GeoField::Timezone,
        GeoField::Network,
        GeoField::Colo,
    ];

    /// The name in settings (`postal_code`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            GeoField::PostalCode => "postal_code",
            GeoField::Coordinates => "coordinates",
            GeoField::Timezone => "timezone",
            GeoField::Network => "network",
            GeoField::Colo => "colo",
        }
    }

    /// Parses a name in settings.
    pub fn parse(s: &str) -> Option<GeoField> {
        GeoField::ALL.into_iter().find(|f| f.as_str() == s.trim())
    }
}

/// Whether a query key is always kept (a UTM tag or a click id), ASCII-case-insensitively.
pub fn is_attribution_key(key: &str) -> bool {
    ATTRIBUTION_QUERY_KEYS
        .iter()
        .any(|k| k.eq_ignore_ascii_case(key))
        || ClickIdKind::from_param(key).is_some()
}

/// The URL (or referrer) as it may be stored: no fragment, only the attribution query keys
/// and `site_keys` (lower case), emails replaced by [`EMAIL_PLACEHOLDER`]. See the module
/// docs. Never fails: text that is not a URL is treated as a path (and an empty string
/// stays empty).
///
/// ```
/// use closeloop_core::privacy::clean_url;
/// assert_eq!(
///     clean_url("https://example.com/reset?token=s3cr3t&utm_source=nl&email=ann%40example.com#x", &[]),
///     "https://example.com/reset?utm_source=nl"
/// );
/// assert_eq!(
///     clean_url("https://example.com/u/ann@example.com?page=2", &["page".into()]),
///     "https://example.com/u/[email]?page=2"
/// );
/// ```
pub fn clean_url(raw: &str, site_keys: &[String]) -> String {
    let (no_fragment, fragment) = match raw.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (raw, None),
    };
    let mut out = clean_part(no_fragment, site_keys, true);
    // a hash route (`#/pricing`, `#!/pricing`) is the page itself for a single-page app
    // with hash routing: kept, cleaned as a path and query are; any other fragment goes
    if let Some(f) = fragment.filter(|f| f.starts_with('/') || f.starts_with("!/")) {
        out.push('#');
        out.push_str(&clean_part(f, site_keys, false));
    }
    out
}

/// A URL without its fragment (`absolute`: it may start with `scheme://authority`), or a
/// hash route: the path redacted, the query filtered.
fn clean_part(no_fragment: &str, site_keys: &[String], absolute: bool) -> String {
    let (before_query, query) = match no_fragment.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (no_fragment, None),
    };
    // scheme://authority/path: user info (credentials) is dropped, the host kept as is
    let mut out = match before_query.split_once("://") {
        Some((scheme, rest)) if absolute && !scheme.contains('/') => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{}", redact_encoded(path))
        }
        _ => redact_encoded(before_query).into_owned(),
    };
    if let Some(q) = query {
        let kept: Vec<Cow<'_, str>> = q
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter(|pair| {
                let raw_key = pair.split_once('=').map_or(*pair, |(k, _)| k);
                let key = crate::entry::percent_decode(raw_key);
                let key = key.trim();
                is_attribution_key(key) || site_keys.iter().any(|k| k.eq_ignore_ascii_case(key))
            })
            .map(redact_encoded)
            .collect();
        if !kept.is_empty() {
            out.push('?');
            out.push_str(&kept.join("&"));
        }
    }
    out
}

/// `text` with every email replaced by [`EMAIL_PLACEHOLDER`], looking through percent
/// escapes: a part whose decoded form holds an email is replaced as a whole run of the
/// address (`ann%40example.com` included).
fn redact_encoded(text: &str) -> Cow<'_, str> {
    if !text.contains('@') && !text.to_ascii_lowercase().contains("%40") {
        return Cow::Borrowed(text);
    }
    // Work on the decoded text of each `/`-separated segment (and `=`-separated side of
    // a pair), so that an encoded `@` is seen; segments without an email stay as they
    // were written.
    let mut out = String::with_capacity(text.len());
    for (i, seg) in text.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let mut first = true;
        for part in seg.split('=') {
            if !first {
                out.push('=');
            }
            first = false;
            let decoded = crate::entry::percent_decode(part);
            if contains_email(&decoded) {
                out.push_str(&redact_emails(&decoded));
            } else {
                out.push_str(part);
            }
        }
    }
    Cow::Owned(out)
}

/// Characters an email's local part may hold here (RFC 5322 atoms, the common subset).
fn local_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b".!#$%&'*+-/=?^_`{|}~".contains(&c)
}

/// Characters a domain may hold.
fn domain_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'-'
}

/// The byte ranges of the email addresses in `text`: a non-empty local part, `@`, and a
/// domain of at least two labels whose last label has two or more letters.
pub fn email_spans(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'@' {
            i += 1;
            continue;
        }
        let mut start = i;
        while start > 0 && local_char(b[start - 1]) {
            start -= 1;
        }
        // a local part does not start or end with a dot
        while start < i && b[start] == b'.' {
            start += 1;
        }
        let mut end = i + 1;
        while end < b.len() && domain_char(b[end]) {
            end += 1;
        }
        while end > i + 1 && matches!(b[end - 1], b'.' | b'-') {
            end -= 1;
        }
        let domain = &text[i + 1..end];
        let tld = domain.rsplit('.').next().unwrap_or("");
        let ok = start < i
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.contains("..")
            && tld.len() >= 2
            && tld.bytes().all(|c| c.is_ascii_alphabetic());
        if ok {
            spans.push((start, end));
            i = end;
        } else {
            i += 1;
        }
    }
    spans
}

/// Whether `text` holds an email address.
pub fn contains_email(text: &str) -> bool {
    !email_spans(text).is_empty()
}

/// `text` with every email address replaced by [`EMAIL_PLACEHOLDER`].
///
/// ```
/// use closeloop_core::privacy::redact_emails;
/// assert_eq!(redact_emails("Welcome back, Ann.Lee+x@Example.co.uk!"), "Welcome back, [email]!");
/// assert_eq!(redact_emails("no address @ here"), "no address @ here");
/// ```
pub fn redact_emails(text: &str) -> Cow<'_, str> {
    let spans = email_spans(text);
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (s, e) in spans {
        out.push_str(&text[at..s]);
        out.push_str(EMAIL_PLACEHOLDER);
        at = e;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

/// What a tombstone stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TombstoneKind {
    /// A normalised email.
    Email,
    /// A lead id.
    Lead,
    /// A visitor id.
    Visitor,
}

impl TombstoneKind {
    /// The name stored beside the hash.
    pub fn as_str(self) -> &'static str {
        match self {
            TombstoneKind::Email => "email",
            TombstoneKind::Lead => "lead",
            TombstoneKind::Visitor => "visitor",
        }
    }
}

/// The hash a tombstone keeps: SHA-256 (hex) of a fixed label, the deployment's secret
/// salt, the kind, the site and the value. Without the salt (kept in D1, never sent
/// anywhere) a list of candidate emails cannot be checked against the tombstones.
pub fn tombstone_hash(salt: &str, kind: TombstoneKind, site: &str, value: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"closeloop-tombstone\n");
    h.update(salt.as_bytes());
    h.update(b"\n");
    h.update(kind.as_str().as_bytes());
    h.update(b"\n");
    h.update(site.as_bytes());
    h.update(b"\n");
    h.update(value.as_bytes());
    let digest = h.finalize();
    let mut hex = String::with_capacity(64);
    for b in digest.iter() {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// The answer to a batch none of whose events may be stored: every event, accepted or
/// not, `rejected` with `code` (for `Sec-GPC: 1`: `gpc`). The tracker drops rejected
/// events from its queue, so it neither keeps nor resends them.
pub fn refuse_all(v: &Validated, code: &str, message: &str) -> CollectResponse {
    let mut ids: Vec<(usize, String)> = Vec::with_capacity(v.event_count);
    ids.extend(v.events.iter().map(|e| (e.index, e.event.id.clone())));
    ids.extend(v.rejected.iter().map(|r| (r.index, r.id.clone())));
    ids.extend(
        v.duplicates_in_batch
            .iter()
            .map(|d| (d.index, d.id.clone())),
    );
    ids.sort_by_key(|(i, _)| *i);
    let results: Vec<EventResult> = ids
        .into_iter()
        .map(|(_, id)| EventResult {
            id,
            status: Status::Rejected,
            error: Some(ErrorDetail {
                code: code.to_string(),
                message: message.to_string(),
            }),
        })
        .collect();
    CollectResponse {
        accepted: 0,
        duplicates: 0,
        rejected: results.len() as u32,
        results,
        touch: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fragments_and_unknown_keys_go() {
        assert_eq!(
            clean_url("https://example.com/a#section", &[]),
            "https://example.com/a"
        );
        assert_eq!(
            clean_url("https://example.com/cb#access_token=abc&state=1", &[]),
            "https://example.com/cb"
        );
        assert_eq!(
            clean_url("https://example.com/reset?token=abc", &[]),
            "https://example.com/reset"
        );
        assert_eq!(
            clean_url("https://example.com/?", &[]),
            "https://example.com/"
        );
        assert_eq!(clean_url("", &[]), "");
        // hash routes stay, cleaned
        assert_eq!(
            clean_url("https://example.com/app#/pricing", &[]),
            "https://example.com/app#/pricing"
        );
        assert_eq!(
            clean_url(
                "https://example.com/app?x=1#!/u/ann@example.com?token=1&utm_source=nl",
                &[]
            ),
            "https://example.com/app#!/u/[email]?utm_source=nl"
        );
        assert_eq!(
            clean_url("https://example.com/app#section/2", &[]),
            "https://example.com/app"
        );
    }

    #[test]
    fn attribution_keys_stay_in_their_spelling() {
        let url = "https://example.com/?UTM_Source=News%20Letter&x=1&utm_medium=email&gclid=Cj0&fbclid=IwA&li_fat_id=9&q=shoes";
        assert_eq!(
            clean_url(url, &[]),
            "https://example.com/?UTM_Source=News%20Letter&utm_medium=email&gclid=Cj0&fbclid=IwA&li_fat_id=9"
        );
        // a site key, matched whatever its case
        assert_eq!(
            clean_url(url, &keys(&["q"])),
            "https://example.com/?UTM_Source=News%20Letter&utm_medium=email&gclid=Cj0&fbclid=IwA&li_fat_id=9&q=shoes"
        );
        // every click id kind survives
        for k in ClickIdKind::ALL {
            let u = format!("https://example.com/?{}=v&drop=1", k.param());
            assert_eq!(
                clean_url(&u, &[]),
                format!("https://example.com/?{}=v", k.param())
            );
        }
    }

    #[test]
    fn emails_in_urls_are_redacted() {
        assert_eq!(
            clean_url("https://example.com/u/ann@example.com/settings", &[]),
            "https://example.com/u/[email]/settings"
        );
        assert_eq!(
            clean_url("https://example.com/u/ann%40example.com", &[]),
            "https://example.com/u/[email]"
        );
        assert_eq!(
            clean_url("https://example.com/?utm_content=ann%40Example.com", &[]),
            "https://example.com/?utm_content=[email]"
        );
        // user info (credentials, or an address) is dropped
        assert_eq!(
            clean_url("https://ann@example.com:pw@example.com/", &[]),
            "https://example.com/"
        );
        // an @ that is no email stays
        assert_eq!(
            clean_url("https://example.com/@handle/post", &[]),
            "https://example.com/@handle/post"
        );
    }

    #[test]
    fn the_channel_of_a_cleaned_url_is_the_channel_of_the_raw_one() {
        use crate::channel::classify;
        use crate::entry::parse_entry;
        let cases = [
            (
                "https://example.com/?utm_source=google&utm_medium=cpc&utm_campaign=x&q=1#f",
                None,
            ),
            ("https://example.com/p?gclid=abc&token=1", None),
            (
                "https://example.com/p?fbclid=abc",
                Some("https://m.facebook.com/x?y=1"),
            ),
            (
                "https://example.com/p?session=1",
                Some("https://www.google.com/search?q=ann%40example.com"),
            ),
            (
                "https://example.com/p",
                Some("https://news.ycombinator.com/item?id=1#c"),
            ),
        ];
        for (url, referrer) in cases {
            let raw = classify(&parse_entry(url, referrer, &["example.com"]));
            let clean = classify(&parse_entry(
                &clean_url(url, &[]),
                referrer.map(|r| clean_url(r, &[])).as_deref(),
                &["example.com"],
            ));
            assert_eq!(raw, clean, "{url} {referrer:?}");
            let p = |u: &str| parse_entry(u, None, &[]).landing_path;
            assert_eq!(p(url), p(&clean_url(url, &[])), "{url}");
        }
    }

    #[test]
    fn email_spans_find_addresses_only() {
        assert_eq!(redact_emails("a@b.co"), "[email]");
        assert_eq!(redact_emails("x a@b.c y"), "x a@b.c y"); // one-letter TLD
        assert_eq!(redact_emails("x@localhost"), "x@localhost");
        assert_eq!(
            redact_emails("two: a@b.io, c.d@e-f.example.org."),
            "two: [email], [email]."
        );
        assert_eq!(redact_emails("@@@"), "@@@");
        assert_eq!(redact_emails("é@é.fr"), "é@é.fr");
    }

    #[test]
    fn settings_are_normalised() {
        let s = PrivacySettings {
            query_keys: keys(&[" Page ", "page", "q"]),
            geo: vec![GeoField::Colo, GeoField::PostalCode, GeoField::Colo],
        }
        .normalised()
        .expect("valid");
        assert_eq!(s.query_keys, keys(&["page", "q"]));
        assert_eq!(s.geo, vec![GeoField::PostalCode, GeoField::Colo]);
        assert!(PrivacySettings {
            query_keys: keys(&["a=b"]),
            geo: vec![]
        }
        .normalised()
        .is_err());
        let parsed: PrivacySettings =
            serde_json::from_str(r#"{"geo": ["network", "coordinates"]}"#).expect("json");
        assert!(parsed.keeps(GeoField::Network) && !parsed.keeps(GeoField::Colo));
        assert!(serde_json::from_str::<PrivacySettings>(r#"{"geo": ["street"]}"#).is_err());
        assert!(serde_json::from_str::<PrivacySettings>(r#"{"geos": []}"#).is_err());
    }

    #[test]
    fn tombstones_depend_on_salt_kind_and_site() {
        let a = tombstone_hash("s", TombstoneKind::Email, "site", "ann@example.com");
        assert_eq!(a.len(), 64);
        assert_ne!(
            a,
            tombstone_hash("t", TombstoneKind::Email, "site", "ann@example.com")
        );
        assert_ne!(
            a,
            tombstone_hash("s", TombstoneKind::Lead, "site", "ann@example.com")
        );
        assert_ne!(
            a,
            tombstone_hash("s", TombstoneKind::Email, "other", "ann@example.com")
        );
        assert_eq!(
            a,
            tombstone_hash("s", TombstoneKind::Email, "site", "ann@example.com")
        );
    }
}
