//! The admin endpoints (`Authorization: Bearer $ADMIN_TOKEN`): create and list sites,
//! add keys, replace a site's allowed origins, change its beacon settings (extra hosts,
//! daily caps, bad rows kept) and its identity secret. Keys and secrets are shown once.
//! Bodies are read with [`crate::body::read`] up to [`crate::body::ADMIN_MAX_BYTES`].

use crate::auth::{self, KeyKind};
use crate::error::{ApiError, ApiResult};
use crate::store::trust::{TrustSettings, TrustUpdate, MAX_BAD_ROWS_KEPT};
use crate::store::{SiteConfig, Store};
use closeloop_core::validate::valid_site_id;
use serde::{Deserialize, Serialize};
use worker::{Request, Response};

/// Body of `POST /v1/admin/sites`.
#[derive(Debug, Deserialize)]
pub struct NewSite {
    /// Public id (1–64 of `A-Za-z0-9_.-`).
    pub id: String,
    /// Name for people (defaults to the id).
    #[serde(default)]
    pub name: Option<String>,
    /// Allowed origins.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Reporting currency (default `USD`).
    #[serde(default)]
    pub currency: Option<String>,
    /// Referrer hosts that never start a session.
    #[serde(default)]
    pub excluded_referrers: Vec<String>,
    /// Most events one visitor may send per UTC day (default 5 000).
    #[serde(default)]
    pub max_events_per_visitor_day: Option<i64>,
    /// The site's beacon settings (see [`Settings`]).
    #[serde(flatten)]
    pub settings: Settings,
    /// Turn identity verification on: a secret is made and shown once.
    #[serde(default)]
    pub identity_verification: bool,
}

/// Body of `PATCH /v1/admin/sites/{site}` (and part of a new site's): every member
/// optional, absent ones unchanged.
#[derive(Debug, Default, Deserialize)]
pub struct Settings {
    /// Hosts besides the allowed origins' that events may be recorded on.
    #[serde(default)]
    pub extra_hosts: Option<Vec<String>>,
    /// Events the site's beacons may store per UTC day.
    #[serde(default)]
    pub max_events_per_day: Option<i64>,
    /// Bad rows kept (1 to 10 000).
    #[serde(default)]
    pub bad_rows_kept: Option<i64>,
}

/// Most extra hosts a site may list.
const MAX_EXTRA_HOSTS: usize = 50;

/// A site as the admin endpoints show it.
#[derive(Debug, Serialize)]
pub struct SiteView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Allowed origins.
    pub allowed_origins: Vec<String>,
    /// Reporting currency.
    pub currency: String,
    /// Excluded referrer hosts.
    pub excluded_referrers: Vec<String>,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Most events one visitor may send per UTC day.
    pub max_events_per_visitor_day: i64,
    /// Hosts besides the allowed origins' that events may be recorded on.
    pub extra_hosts: Vec<String>,
    /// Most events the site's beacons may store per UTC day.
    pub max_events_per_day: i64,
    /// Bad rows kept.
    pub bad_rows_kept: i64,
    /// Whether `identify` must carry a valid `user_hash` (the secret is never shown again).
    pub identity_verification: bool,
}

impl From<SiteConfig> for SiteView {
    fn from(s: SiteConfig) -> Self {
        SiteView {
            id: s.id,
            name: s.name,
            allowed_origins: s.allowed_origins,
            currency: s.currency,
            excluded_referrers: s.excluded_referrers,
            created_at: closeloop_core::time::format_rfc3339(s.created_at),
            max_events_per_visitor_day: s.max_events_per_visitor_day,
            extra_hosts: s.trust.extra_hosts,
            max_events_per_day: s.trust.max_events_per_day,
            bad_rows_kept: s.trust.bad_rows_kept,
            identity_verification: s.trust.identity_secret.is_some(),
        }
    }
}

/// Normalises extra hosts: lower-case host names or IP addresses, no scheme, port or path
/// (400 `invalid_host` otherwise), without repeats.
pub fn normalise_hosts(list: &[String]) -> ApiResult<Vec<String>> {
    if list.len() > MAX_EXTRA_HOSTS {
        return Err(ApiError::bad_request(
            "invalid_host",
            format!("at most {MAX_EXTRA_HOSTS} extra hosts"),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for h in list {
        let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
        let ok = !h.is_empty()
            && h.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
            })
            && url::Url::parse(&format!("https://{h}/"))
                .ok()
                .and_then(|u| u.host_str().map(|x| x == h && u.port().is_none()))
                .unwrap_or(false);
        if !ok {
            return Err(ApiError::bad_request(
                "invalid_host",
                format!(
                    "`{}` is not a host name like shop.example.com",
                    h.chars().take(100).collect::<String>()
                ),
            ));
        }
        if !out.contains(&h) {
            out.push(h);
        }
    }
    Ok(out)
}

/// Checks a numeric setting's range (400 `invalid_parameter`).
fn in_range(name: &str, v: Option<i64>, min: i64, max: i64) -> ApiResult<Option<i64>> {
    match v {
        Some(n) if !(min..=max).contains(&n) => Err(ApiError::bad_request(
            "invalid_parameter",
            format!("`{name}` must be from {min} to {max}"),
        )),
        other => Ok(other),
    }
}

/// A new identity secret: `cls_` and 64 hex digits (32 random bytes).
fn new_identity_secret() -> ApiResult<String> {
    Ok(format!("cls_{}", auth::random_hex(32)?))
}

/// Normalises an origin to `scheme://host[:port]` (http or https, no path).
pub fn normalise_origin(o: &str) -> ApiResult<String> {
    let bad = || {
        ApiError::bad_request(
            "invalid_origin",
            format!("`{o}` is not an origin like https://example.com or http://127.0.0.1:8080"),
        )
    };
    let url = url::Url::parse(o.trim()).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad());
    }
    if !(url.path() == "/" || url.path().is_empty()) || url.query().is_some() {
        return Err(bad());
    }
    Ok(url.origin().ascii_serialization())
}

fn origins(list: &[String]) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    for o in list {
        let o = normalise_origin(o)?;
        if !out.contains(&o) {
            out.push(o);
        }
    }
    Ok(out)
}

async fn json_body<T: for<'de> Deserialize<'de>>(req: &mut Request) -> ApiResult<T> {
    let bytes = crate::body::read(req, crate::body::ADMIN_MAX_BYTES).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("malformed_json", format!("the body is not valid: {e}")))
}

fn site_not_found(id: &str) -> ApiError {
    ApiError::new(404, "unknown_site", format!("no site `{id}`"))
}

/// `POST /v1/admin/sites` → 201 with the site, a read key and a write key (shown once).
pub async fn create_site(req: &mut Request, store: &Store, now: i64) -> ApiResult<Response> {
    let body: NewSite = json_body(req).await?;
    if !valid_site_id(&body.id) {
        return Err(ApiError::bad_request(
            "invalid_site_id",
            "`id` must be 1 to 64 characters of A-Z, a-z, 0-9, `_`, `.` or `-`",
        ));
    }
    let currency = body
        .currency
        .unwrap_or_else(|| "USD".into())
        .to_ascii_uppercase();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(ApiError::bad_request(
            "invalid_currency",
            "`currency` must be an ISO 4217 code such as EUR",
        ));
    }
    let site = SiteConfig {
        name: body
            .name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| body.id.clone()),
        id: body.id,
        allowed_origins: origins(&body.allowed_origins)?,
        currency,
        excluded_referrers: body
            .excluded_referrers
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect(),
        created_at: now,
        max_events_per_visitor_day: body
            .max_events_per_visitor_day
            .unwrap_or(crate::store::DEFAULT_VISITOR_QUOTA),
        trust: TrustSettings {
            extra_hosts: normalise_hosts(&body.settings.extra_hosts.unwrap_or_default())?,
            identity_secret: if body.identity_verification {
                Some(new_identity_secret()?)
            } else {
                None
            },
            max_events_per_day: in_range(
                "max_events_per_day",
                body.settings.max_events_per_day,
                1,
                1 << 40,
            )?
            .unwrap_or(crate::store::trust::DEFAULT_SITE_DAILY_EVENTS),
            bad_rows_kept: in_range(
                "bad_rows_kept",
                body.settings.bad_rows_kept,
                1,
                MAX_BAD_ROWS_KEPT,
            )?
            .unwrap_or(crate::store::trust::DEFAULT_BAD_ROWS_KEPT),
        },
    };
    in_range(
        "max_events_per_visitor_day",
        Some(site.max_events_per_visitor_day),
        1,
        1 << 40,
    )?;
    let read_key = auth::new_key(KeyKind::Read)?;
    let write_key = auth::new_key(KeyKind::Write)?;
    let keys = [
        (auth::hash_key(&read_key), KeyKind::Read),
        (auth::hash_key(&write_key), KeyKind::Write),
    ];
    if !store.create_site(&site, &keys).await? {
        return Err(ApiError::new(
            409,
            "site_exists",
            format!("site `{}` already exists", site.id),
        ));
    }
    let secret = site.trust.identity_secret.clone();
    let mut answer = serde_json::json!({
        "site": SiteView::from(site),
        "read_key": read_key,
        "write_key": write_key,
    });
    if let Some(secret) = secret {
        answer["identity_secret"] = serde_json::Value::String(secret);
    }
    Ok(Response::from_json(&answer)?.with_status(201))
}

/// `GET /v1/admin/sites`.
pub async fn list_sites(store: &Store) -> ApiResult<Response> {
    let sites: Vec<SiteView> = store
        .sites()
        .await?
        .into_iter()
        .map(SiteView::from)
        .collect();
    Ok(Response::from_json(&serde_json::json!({ "sites": sites }))?)
}

/// `POST /v1/admin/sites/{site}/keys` with `{"kind": "read" | "write"}` → 201 with the key.
pub async fn add_key(
    req: &mut Request,
    store: &Store,
    site: &str,
    now: i64,
) -> ApiResult<Response> {
    #[derive(Deserialize)]
    struct Body {
        kind: String,
    }
    let body: Body = json_body(req).await?;
    let kind = KeyKind::parse(&body.kind)
        .ok_or_else(|| ApiError::bad_request("invalid_key_kind", "`kind` must be read or write"))?;
    let key = auth::new_key(kind)?;
    if !store
        .add_key(site, &auth::hash_key(&key), kind, now)
        .await?
    {
        return Err(site_not_found(site));
    }
    let answer = serde_json::json!({ "site": site, "kind": kind.as_str(), "key": key });
    Ok(Response::from_json(&answer)?.with_status(201))
}

/// `PUT /v1/admin/sites/{site}/origins` with `{"allowed_origins": [...]}`.
pub async fn set_origins(req: &mut Request, store: &Store, site: &str) -> ApiResult<Response> {
    #[derive(Deserialize)]
    struct Body {
        allowed_origins: Vec<String>,
    }
    let body: Body = json_body(req).await?;
    let list = origins(&body.allowed_origins)?;
    if !store.set_origins(site, &list).await? {
        return Err(site_not_found(site));
    }
    Ok(Response::from_json(
        &serde_json::json!({ "site": site, "allowed_origins": list }),
    )?)
}

/// `PATCH /v1/admin/sites/{site}` with [`Settings`] (and `max_events_per_visitor_day`):
/// the site as it now is.
pub async fn update_settings(req: &mut Request, store: &Store, site: &str) -> ApiResult<Response> {
    #[derive(Deserialize)]
    struct Body {
        #[serde(flatten)]
        settings: Settings,
        #[serde(default)]
        max_events_per_visitor_day: Option<i64>,
    }
    let body: Body = json_body(req).await?;
    let update = TrustUpdate {
        extra_hosts: match &body.settings.extra_hosts {
            Some(h) => Some(normalise_hosts(h)?),
            None => None,
        },
        max_events_per_day: in_range(
            "max_events_per_day",
            body.settings.max_events_per_day,
            1,
            1 << 40,
        )?,
        max_events_per_visitor_day: in_range(
            "max_events_per_visitor_day",
            body.max_events_per_visitor_day,
            1,
            1 << 40,
        )?,
        bad_rows_kept: in_range(
            "bad_rows_kept",
            body.settings.bad_rows_kept,
            1,
            MAX_BAD_ROWS_KEPT,
        )?,
        identity_secret: None,
    };
    if !store.update_trust(site, &update).await? {
        return Err(site_not_found(site));
    }
    let now = store
        .site(site)
        .await?
        .ok_or_else(|| site_not_found(site))?;
    Ok(Response::from_json(
        &serde_json::json!({ "site": SiteView::from(now) }),
    )?)
}

/// `POST /v1/admin/sites/{site}/identity_secret`: turns identity verification on with a
/// new secret (replacing any previous one at once), shown once; `DELETE` turns it off.
pub async fn identity_secret(store: &Store, site: &str, on: bool) -> ApiResult<Response> {
    let secret = if on {
        Some(new_identity_secret()?)
    } else {
        None
    };
    let update = TrustUpdate {
        identity_secret: Some(secret.clone()),
        ..TrustUpdate::default()
    };
    if !store.update_trust(site, &update).await? {
        return Err(site_not_found(site));
    }
    Ok(match secret {
        Some(secret) => Response::from_json(&serde_json::json!({
            "site": site, "identity_verification": true, "identity_secret": secret,
        }))?
        .with_status(201),
        None => Response::from_json(&serde_json::json!({
            "site": site, "identity_verification": false,
        }))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised() {
        assert_eq!(
            normalise_origin("https://Example.com/").as_deref(),
            Ok("https://example.com")
        );
        assert_eq!(
            normalise_origin("http://127.0.0.1:8080").as_deref(),
            Ok("http://127.0.0.1:8080")
        );
        assert_eq!(
            normalise_origin("https://example.com:443").as_deref(),
            Ok("https://example.com")
        );
        assert!(normalise_origin("https://example.com/path").is_err());
        assert!(normalise_origin("ftp://example.com").is_err());
        assert!(normalise_origin("example.com").is_err());
    }

    #[test]
    fn extra_hosts_are_host_names() {
        assert_eq!(
            normalise_hosts(&["Shop.Example.com.".into(), "shop.example.com".into()]).ok(),
            Some(vec!["shop.example.com".to_string()])
        );
        assert_eq!(
            normalise_hosts(&["127.0.0.1".into()]).ok(),
            Some(vec!["127.0.0.1".to_string()])
        );
        for bad in [
            "https://x.example",
            "x.example:8080",
            "x.example/p",
            "",
            "a b",
        ] {
            assert!(normalise_hosts(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
