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

use std::collections::{BTreeMap, BTreeSet};

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
