//! Identity: normalising emails and grouping visitor ids into leads by email.
//!
//! # Email normalisation
//!
//! [`normalize_email`] trims surrounding whitespace and lowercases the whole address, then
//! checks a minimal shape (one `@`, a non-empty local part, a domain with a dot, no whitespace
//! or control characters). Lowercasing the local part is technically beyond RFC 5321 (which
//! lets a server treat it case-sensitively) but every mail provider in practical use ignores
//! case, and `Ann@Example.com` typed on a phone must meet `ann@example.com` typed on a laptop.
//!
//! It does **not** strip Gmail dots or `+tags`: those rules are provider-specific (dots mean
//! nothing at Gmail but distinguish mailboxes elsewhere; Google Workspace domains cannot be
//! recognised from the address), and people use `+tags` on purpose to keep sign-ups apart.
//! A wrong merge silently moves credit between two people's journeys, while a missed merge only
//! leaves a journey shorter; so the normalisation stays conservative and predictable.
//!
//! # Leads
//!
//! A lead is one normalised email. Its visitors are every visitor id that was ever identified
//! with that email (a form submit or `identify` call on each device). [`Leads`] is not a
//! transitive closure: when one visitor id carries two emails (a shared computer, a colleague
//! filling the form for someone else), both leads get that visitor's sessions, but the two
//! leads are not merged into one, which would snowball into giant "people" on shared or kiosk
//! devices.
//!
//! # Identity verification
//!
//! A browser is untrusted: anyone who knows an email can send `identify` with it. A site
//! that knows who its visitors are (logged-in users) turns on identity verification, as
//! Intercom does: the site's server computes [`user_hash`] — lower-case hex of
//! HMAC-SHA256 keyed with the site's identity secret over the **normalised** email
//! ([`normalize_email`]: trimmed, lower-cased) — and the page passes it along
//! (`closeloop.identify(email, {user_hash})`). The edge checks it with
//! [`verify_user_hash`] (constant time) and refuses an `identify` without a valid one.
//!
//! # How a visitor became a lead's
//!
//! Every visitor↔lead link records its [`LinkMethod`]: a beacon's form submit or
//! `identify` (verified or not), a server's `events:import`, or the API.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::{BTreeMap, BTreeSet};

/// How a visitor id was linked to a lead (stored with the link, shown in the journey).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinkMethod {
    /// A beacon's form submit with an email field (unverified).
    Form,
    /// A beacon's `identify` on a site without identity verification (unverified).
    Identify,
    /// A beacon's `identify` carrying a valid `user_hash` (the site's server vouched).
    VerifiedIdentify,
    /// `POST /v1/sites/{site}/events:import` with the write key (a trusted server).
    Import,
    /// A management API call with a key (a trusted server).
    Api,
    /// Made before links recorded their method (migration 0009).
    Unknown,
}

impl LinkMethod {
    /// Every method.
    pub const ALL: [LinkMethod; 6] = [
        LinkMethod::Form,
        LinkMethod::Identify,
        LinkMethod::VerifiedIdentify,
        LinkMethod::Import,
        LinkMethod::Api,
        LinkMethod::Unknown,
    ];

    /// The stored and answered name (`form`, `identify`, `verified_identify`, `import`,
    /// `api`, `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            LinkMethod::Form => "form",
            LinkMethod::Identify => "identify",
            LinkMethod::VerifiedIdentify => "verified_identify",
            LinkMethod::Import => "import",
            LinkMethod::Api => "api",
            LinkMethod::Unknown => "unknown",
        }
    }

    /// The method named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        LinkMethod::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Whether a trusted party made the link (a verified `identify`, a server with a
    /// key): such a link may update the lead's traits and join an existing lead's
    /// journey whatever the site's settings.
    pub fn is_trusted(self) -> bool {
        matches!(
            self,
            LinkMethod::VerifiedIdentify | LinkMethod::Import | LinkMethod::Api
        )
    }
}

/// `user_hash` for `email` under a site's identity `secret`: lower-case hex of
/// HMAC-SHA256(secret, normalised email). `None` when `email` does not normalise.
///
/// ```
/// use closeloop_core::identity::user_hash;
/// // the email is normalised (trimmed, lower-cased) before it is signed
/// let h = user_hash("Jefe", " Ann@Example.com ").unwrap();
/// assert_eq!(h, user_hash("Jefe", "ann@example.com").unwrap());
/// assert_eq!(h.len(), 64);
/// ```
pub fn user_hash(secret: &str, email: &str) -> Option<String> {
    let email = normalize_email(email)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(email.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    Some(out)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whether `hash` (hex, either case, surrounding whitespace ignored) is the
/// [`user_hash`] of `email` under `secret`. Compared in constant time.
pub fn verify_user_hash(secret: &str, email: &str, hash: &str) -> bool {
    let Some(email) = normalize_email(email) else {
        return false;
    };
    let Some(given) = decode_hex(hash.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(email.as_bytes());
    mac.verify_slice(&given).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    let digit = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    s.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
            _ => None,
        })
        .collect()
}

/// Normalises an email for identity matching: trimmed and lowercased; `None` when it does not
/// look like an email. See the [module docs](self) for what is deliberately not done.
///
/// ```
/// use closeloop_core::identity::normalize_email;
/// assert_eq!(normalize_email("  Ann.Lee+Promo@Example.COM "), Some("ann.lee+promo@example.com".into()));
/// assert_eq!(normalize_email("not an email"), None);
/// ```
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let valid = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    valid.then_some(email)
}

/// Visitor ids grouped into leads (one per normalised email).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leads {
    by_email: BTreeMap<String, BTreeSet<String>>,
    by_visitor: BTreeMap<String, BTreeSet<String>>,
}

impl Leads {
    /// Builds the leads from `(visitor_id, email)` identifications, in any order. Emails that
    /// do not normalise are skipped.
    ///
    /// ```
    /// use closeloop_core::identity::Leads;
    /// let leads = Leads::build([("laptop", "Ann@Example.com"), ("phone", " ann@example.com")]);
    /// let visitors: Vec<&str> = leads.visitors_of("ANN@example.com").collect();
    /// assert_eq!(visitors, ["laptop", "phone"]);
    /// ```
    pub fn build<'a, I>(identifications: I) -> Leads
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut leads = Leads::default();
        for (visitor, raw_email) in identifications {
            let Some(email) = normalize_email(raw_email) else {
                continue;
            };
            leads
                .by_visitor
                .entry(visitor.to_owned())
                .or_default()
                .insert(email.clone());
            leads
                .by_email
                .entry(email)
                .or_default()
                .insert(visitor.to_owned());
        }
        leads
    }

    /// The leads' emails (normalised), sorted.
    pub fn emails(&self) -> impl Iterator<Item = &str> {
        self.by_email.keys().map(String::as_str)
    }

    /// The visitor ids of the lead with this email (normalised first), sorted; empty when
    /// unknown.
    pub fn visitors_of(&self, email: &str) -> impl Iterator<Item = &str> {
        normalize_email(email)
            .and_then(|e| self.by_email.get(&e))
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// The leads (normalised emails) a visitor id belongs to, sorted; usually zero or one.
    pub fn leads_of(&self, visitor: &str) -> impl Iterator<Item = &str> {
        self.by_visitor
            .get(visitor)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_hash_matches_an_independent_hmac() {
        // Computed with Python, not with this crate:
        //   hmac.new(b"s3cret", b"ann@example.com", hashlib.sha256).hexdigest()
        let want = "6541858d6a92be63c5d8a74f1dca8c83979f4319c976a9be53da95e1ea508c29";
        let h = user_hash("s3cret", "Ann@Example.com").expect("hash");
        assert_eq!(h, want);
        assert!(verify_user_hash("s3cret", "ann@example.com", &h));
        assert!(verify_user_hash(
            "s3cret",
            " ANN@example.com",
            &h.to_uppercase()
        ));
        assert!(!verify_user_hash("other", "ann@example.com", &h));
        assert!(!verify_user_hash("s3cret", "bob@example.com", &h));
        assert!(!verify_user_hash("s3cret", "ann@example.com", &h[..63]));
        assert!(!verify_user_hash("s3cret", "ann@example.com", "zz"));
        assert_eq!(user_hash("s3cret", "not an email"), None);
    }

    #[test]
    fn link_methods_round_trip() {
        for m in LinkMethod::ALL {
            assert_eq!(LinkMethod::parse(m.as_str()), Some(m));
        }
        assert!(LinkMethod::VerifiedIdentify.is_trusted());
        assert!(!LinkMethod::Form.is_trusted());
        assert!(!LinkMethod::Identify.is_trusted());
    }
}
