//! The admin endpoints (`Authorization: Bearer $ADMIN_TOKEN`): create and list sites,
//! add keys, replace a site's allowed origins. Keys are shown once, stored hashed.

use crate::auth::{self, KeyKind};
use crate::error::{ApiError, ApiResult};
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
    /// Most events one visitor may send in 24 hours (default 5 000).
    #[serde(default)]
    pub max_events_per_visitor_day: Option<i64>,
}

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
    /// Most events one visitor may send in 24 hours.
    pub max_events_per_visitor_day: i64,
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
        }
    }
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
    let bytes = req.bytes().await?;
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
    };
    if site.max_events_per_visitor_day < 1 {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "`max_events_per_visitor_day` must be at least 1",
        ));
    }
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
    let answer = serde_json::json!({
        "site": SiteView::from(site),
        "read_key": read_key,
        "write_key": write_key,
    });
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
}
