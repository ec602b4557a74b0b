//! What the edge keeps of a visitor, applied by both `POST /v1/collect` and
//! `events:import` before anything is stored (the rules themselves are core's:
//! `closeloop_core::privacy`, documented there):
//!
//! - **Global Privacy Control**: a request with `Sec-GPC: 1` stores nothing. Its answer is
//!   a 200 whose every event is `rejected` with code `gpc` ([`gpc_answer`]): the tracker
//!   drops rejected events from its queue, so it neither keeps nor resends them.
//! - **URLs and referrers** lose their fragment, every query key but the UTM tags, click
//!   ids and the site's own allowed keys, and any email address; page titles lose email
//!   addresses ([`clean_rows`]).
//! - **Geo** keeps country, region, city, continent and the EU flag; postal code,
//!   coordinates, time zone, network (ASN) and data centre only when the site opts in
//!   ([`minimise_geo`]).

use crate::enrich::Geo;
use crate::store::{EventRow, SiteConfig};
use closeloop_core::privacy::{clean_url, redact_emails, refuse_all, GeoField, PrivacySettings};
use closeloop_core::validate::Validated;
use closeloop_core::wire::{CollectResponse, ErrorDetail, Status};
use std::collections::HashSet;
use worker::Request;

/// The code of events refused for Global Privacy Control.
pub const GPC_CODE: &str = "gpc";
/// The code of events refused by a tombstone (an erased visitor or email).
pub const ERASED_CODE: &str = "erased";

/// Whether the request carries `Sec-GPC: 1` (the Global Privacy Control header).
pub fn gpc(req: &Request) -> bool {
    req.headers()
        .get("Sec-GPC")
        .ok()
        .flatten()
        .is_some_and(|v| v.trim() == "1")
}

/// The answer to a batch sent under Global Privacy Control: nothing stored, every event
/// rejected with `gpc`.
pub fn gpc_answer(v: &Validated) -> CollectResponse {
    refuse_all(
        v,
        GPC_CODE,
        "the browser sent Sec-GPC: 1 (Global Privacy Control): nothing was stored",
    )
}

/// Applies the URL, referrer and title rules to rows about to be stored.
pub fn clean_rows(rows: &mut [EventRow], site: &SiteConfig) {
    let keys = &site.privacy.query_keys;
    for r in rows {
        let url = clean_url(&r.url, keys);
        if url != r.url {
            r.path = url::Url::parse(&url)
                .map(|u| u.path().to_string())
                .unwrap_or_else(|_| "/".into());
            r.url = url;
        }
        if let Some(referrer) = r.referrer.as_mut() {
            *referrer = clean_url(referrer, keys);
        }
        r.referrer = r.referrer.take().filter(|x| !x.is_empty());
        if let Some(title) = r.title.as_mut() {
            if let std::borrow::Cow::Owned(t) = redact_emails(title) {
                *title = t;
            }
        }
    }
}

/// `geo` with only the fields the site keeps.
pub fn minimise_geo(mut geo: Geo, settings: &PrivacySettings) -> Geo {
    if !settings.keeps(GeoField::PostalCode) {
        geo.postal_code = None;
    }
    if !settings.keeps(GeoField::Coordinates) {
        geo.latitude = None;
        geo.longitude = None;
    }
    if !settings.keeps(GeoField::Timezone) {
        geo.timezone = None;
    }
    if !settings.keeps(GeoField::Network) {
        geo.asn = None;
        geo.as_org = None;
    }
    if !settings.keeps(GeoField::Colo) {
        geo.colo = None;
    }
    geo
}

/// Marks the accepted events `ids` as rejected with `code` and recounts.
pub fn refuse(
    mut answer: CollectResponse,
    ids: &HashSet<String>,
    code: &str,
    message: &str,
) -> CollectResponse {
    if ids.is_empty() {
        return answer;
    }
    for r in answer.results.iter_mut() {
        if r.status == Status::Accepted && ids.contains(&r.id) {
            r.status = Status::Rejected;
            r.error = Some(ErrorDetail {
                code: code.into(),
                message: message.into(),
            });
        }
    }
    let count = |s: Status| answer.results.iter().filter(|r| r.status == s).count() as u32;
    answer.accepted = count(Status::Accepted);
    answer.duplicates = count(Status::Duplicate);
    answer.rejected = count(Status::Rejected);
    answer
}

/// The message of events refused by a tombstone.
pub const ERASED_MESSAGE: &str =
    "this visitor or email was erased: nothing was stored (a manage key can lift an email's tombstone)";

#[cfg(test)]
mod tests {
    use super::*;

    fn austin() -> Geo {
        Geo {
            country: Some("US".into()),
            region: Some("Texas".into()),
            region_code: Some("TX".into()),
            city: Some("Austin".into()),
            continent: Some("NA".into()),
            postal_code: Some("78701".into()),
            timezone: Some("America/Chicago".into()),
            latitude: Some(30.2713),
            longitude: Some(-97.7426),
            asn: Some(395_747),
            as_org: Some("Cloudflare".into()),
            colo: Some("DFW".into()),
            is_eu: false,
        }
    }

    #[test]
    fn geo_keeps_the_coarse_fields_unless_the_site_opts_in() {
        let g = minimise_geo(austin(), &PrivacySettings::default());
        assert_eq!(
            g,
            Geo {
                country: Some("US".into()),
                region: Some("Texas".into()),
                region_code: Some("TX".into()),
                city: Some("Austin".into()),
                continent: Some("NA".into()),
                is_eu: false,
                ..Geo::default()
            }
        );
        let all = PrivacySettings {
            query_keys: vec![],
            geo: GeoField::ALL.to_vec(),
        };
        assert_eq!(minimise_geo(austin(), &all), austin());
        let some = PrivacySettings {
            query_keys: vec![],
            geo: vec![GeoField::Network],
        };
        let g = minimise_geo(austin(), &some);
        assert_eq!((g.asn, g.postal_code, g.colo), (Some(395_747), None, None));
    }
}
