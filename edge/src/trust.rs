//! What a beacon may do (issue 12, the beacon side): the rules `POST /v1/collect`
//! applies to an untrusted browser's batch once its site is known, as plain functions.
//!
//! - **Origin**: required, and one of the site's allowed origins (`origin_required`,
//!   `origin_not_allowed`, 403). Browsers always send `Origin` on these cross-origin
//!   POSTs (fetch and `sendBeacon` alike); a server has no business here and sends its
//!   events to `events:import` with the write key.
//! - **Hosts and identities**: core's [`Validated::apply_site_rules`] rejects events on
//!   foreign hosts and, when the site verifies identities, `identify` events without a
//!   valid `user_hash`.
//! - **Leads**: [`LeadSource`] says how a batch's leads are linked and what they may
//!   change (see `Store::insert_batch_queued`): a beacon fills a lead's missing traits but
//!   never overwrites one; on a site that verifies identities, an (unverifiable) form
//!   submit only creates a lead that has no visitor yet — it never joins an existing
//!   lead's journey.
//! - **Bad rows**: what is kept of each refusal ([`refused_row`], [`rejected_rows`]).

use crate::error::ApiError;
use crate::store::trust::NewBadRow;
use crate::store::SiteConfig;
use closeloop_core::badrow::{self, Kind};
use closeloop_core::identity::LinkMethod;
use closeloop_core::validate::{SiteRules, ValidEvent, Validated};
use closeloop_core::wire::EventKind;

/// Checks the request's `Origin` against the site's allowed origins; answers the origin
/// to echo in CORS headers.
pub fn check_origin(origin: Option<&str>, site: &SiteConfig) -> Result<String, ApiError> {
    let Some(o) = origin else {
        return Err(ApiError::new(
            403,
            "origin_required",
            "beacons must come from a browser page on an allowed origin (an Origin header); \
             servers send events to POST /v1/sites/{site}/events:import with the write key",
        ));
    };
    if !crate::cors::origin_allowed(o, &site.allowed_origins) {
        return Err(ApiError::new(
            403,
            "origin_not_allowed",
            format!(
                "site `{}` does not accept events from {}",
                site.id,
                o.chars().take(200).collect::<String>()
            ),
        ));
    }
    Ok(o.to_string())
}

/// Hosts a site's events may be recorded on (lower case): those of its allowed origins
/// and its extra hosts. They are its own pages too: a referrer from them is never a
/// referral.
pub fn site_hosts(site: &SiteConfig) -> Vec<String> {
    let mut hosts: Vec<String> = site
        .allowed_origins
        .iter()
        .filter_map(|o| url::Url::parse(o).ok())
        .filter_map(|u| u.host_str().map(|h| h.to_ascii_lowercase()))
        .collect();
    for h in &site.trust.extra_hosts {
        let h = h.trim().to_ascii_lowercase();
        if !h.is_empty() && !hosts.contains(&h) {
            hosts.push(h);
        }
    }
    hosts
}

/// Applies the site's rules (hosts, identity verification) to a beacon's batch.
pub fn apply_rules(v: &mut Validated, site: &SiteConfig) {
    let hosts = site_hosts(site);
    v.apply_site_rules(&SiteRules {
        hosts: &hosts,
        identity_secret: site.trust.identity_secret.as_deref(),
    });
}

/// Who sent a batch's identities, which decides how its leads are linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadSource {
    /// A browser's beacon; `verifies`: the site verifies identities.
    Beacon {
        /// Whether the site has an identity secret.
        verifies: bool,
    },
    /// `events:import` with the write key.
    Import,
}

impl LeadSource {
    /// The link method of an identifying event, and whether its link may join a lead that
    /// already has visitors.
    pub fn link(self, e: &ValidEvent) -> (LinkMethod, bool) {
        match self {
            LeadSource::Import => (LinkMethod::Import, true),
            LeadSource::Beacon { verifies } => match &e.event.kind {
                EventKind::Identify { .. } if e.verified => (LinkMethod::VerifiedIdentify, true),
                EventKind::Identify { .. } => (LinkMethod::Identify, !verifies),
                _ => (LinkMethod::Form, !verifies),
            },
        }
    }
}

/// How much a method is trusted, to pick the strongest of a batch's identifying events
/// of one email.
pub fn rank(m: LinkMethod) -> u8 {
    match m {
        LinkMethod::Unknown => 0,
        LinkMethod::Form => 1,
        LinkMethod::Identify => 2,
        LinkMethod::VerifiedIdentify => 3,
        LinkMethod::Import => 4,
        LinkMethod::Api => 5,
    }
}

/// The bad row of a refused batch of `site` (its body as sent, redacted and cut).
pub fn refused_row(
    site: &SiteConfig,
    at: i64,
    e: &ApiError,
    body: &[u8],
    visitor_id: Option<String>,
) -> NewBadRow {
    let (raw, truncated) = badrow::body_text(body);
    NewBadRow {
        site_id: site.id.clone(),
        kept: site.trust.bad_rows_kept,
        at,
        kind: Kind::Batch,
        reason: e.code.to_string(),
        message: e.message.clone(),
        event_id: None,
        visitor_id,
        raw,
        truncated,
    }
}

/// The bad rows of a batch's rejected events (each event's JSON as sent, redacted and
/// cut), in batch order. The body is parsed again only when something was rejected.
pub fn rejected_rows(site: &SiteConfig, v: &Validated, body: &[u8], at: i64) -> Vec<NewBadRow> {
    if v.rejected.is_empty() {
        return Vec::new();
    }
    let raw_events = badrow::raw_events(body);
    v.rejected
        .iter()
        .map(|r| {
            let (raw, truncated) = raw_events
                .get(r.index)
                .map(badrow::raw_text)
                .unwrap_or_default();
            NewBadRow {
                site_id: site.id.clone(),
                kept: site.trust.bad_rows_kept,
                at,
                kind: Kind::Event,
                reason: r.code.as_str().to_string(),
                message: r.error.message.clone(),
                event_id: Some(r.id.clone()).filter(|id| !id.is_empty()),
                visitor_id: Some(v.visitor_id.clone()),
                raw,
                truncated,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::trust::TrustSettings;

    fn site() -> SiteConfig {
        SiteConfig {
            id: "demo".into(),
            name: "Demo".into(),
            allowed_origins: vec![
                "https://www.example.com".into(),
                "http://127.0.0.1:8080".into(),
            ],
            currency: "EUR".into(),
            excluded_referrers: vec![],
            created_at: 0,
            max_events_per_visitor_day: 5_000,
            privacy: Default::default(),
            trust: TrustSettings {
                extra_hosts: vec!["Example.com".into(), "www.example.com".into()],
                ..TrustSettings::default()
            },
            shards: 0,
        }
    }

    #[test]
    fn origins_are_required_and_checked() {
        let s = site();
        assert_eq!(
            check_origin(None, &s).map_err(|e| (e.status, e.code)),
            Err((403, "origin_required"))
        );
        assert_eq!(
            check_origin(Some("https://evil.example"), &s).map_err(|e| e.code),
            Err("origin_not_allowed")
        );
        assert_eq!(
            check_origin(Some("null"), &s).map_err(|e| e.code),
            Err("origin_not_allowed")
        );
        assert_eq!(
            check_origin(Some("http://127.0.0.1:8080"), &s).as_deref(),
            Ok("http://127.0.0.1:8080")
        );
    }

    #[test]
    fn hosts_come_from_origins_and_extra_hosts() {
        assert_eq!(
            site_hosts(&site()),
            ["www.example.com", "127.0.0.1", "example.com"]
        );
    }
}
