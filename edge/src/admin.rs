//! The admin endpoints (`Authorization: Bearer $ADMIN_TOKEN`): create and list sites;
//! list, add, revoke and rotate keys; replace a site's allowed origins and privacy
//! settings; change its beacon settings (extra hosts, daily caps, bad rows kept) and its
//! identity secret; read the audit log; run the cron's work now. Keys and secrets are
//! shown once, keys stored hashed. Every change of keys, origins and privacy is written
//! with its audit entry in one transaction. Bodies are read with [`crate::body::read`] up
//! to [`crate::body::ADMIN_MAX_BYTES`].

use crate::auth::{self, KeyKind};
use crate::error::{ApiError, ApiResult};
use crate::store::audit::{Actor, AuditRecord};
use crate::store::keys::{KeyRecord, NewKey};
use crate::store::trust::{TrustSettings, TrustUpdate, MAX_BAD_ROWS_KEPT};
use crate::store::{SiteConfig, Store};
use closeloop_core::privacy::PrivacySettings;
use closeloop_core::time::format_rfc3339;
use closeloop_core::validate::valid_site_id;
use serde::{Deserialize, Serialize};
use serde_json::json;
use worker::{Env, Method, Request, Response};

/// Dispatches `/v1/admin/{rest}` once the admin token was checked.
pub async fn route(req: &mut Request, env: &Env, rest: &[&str], now: i64) -> ApiResult<Response> {
    let store = Store::from_env(env)?;
    let method = req.method();
    match (rest, &method) {
        (["sites"], Method::Post) => create_site(req, &store, now).await,
        (["sites"], Method::Get) => list_sites(&store).await,
        (["sites", site, "keys"], Method::Post) => add_key(req, &store, site, now).await,
        (["sites", site, "keys"], Method::Get) => list_keys(&store, site).await,
        (["sites", site, "keys", key], Method::Delete) => revoke_key(&store, site, key, now).await,
        (["sites", site, "keys", key], Method::Post) if is_rotate(key) => {
            rotate_key(&store, site, key.trim_end_matches(":rotate"), now).await
        }
        (["sites", site, "origins"], Method::Put) => set_origins(req, &store, site, now).await,
        (["sites", site, "privacy"], Method::Put) => set_privacy(req, &store, site, now).await,
        (["sites", site], Method::Patch) => update_settings(req, env, &store, site).await,
        (["sites", site, "identity_secret"], Method::Post) => {
            identity_secret(&store, site, true).await
        }
        (["sites", site, "identity_secret"], Method::Delete) => {
            identity_secret(&store, site, false).await
        }
        (["sites", site, "shards"], Method::Get) => shards_status(env, &store, site).await,
        (["sites", site, "reclassify"], Method::Post) => {
            crate::reclassify::step(req, &store, site).await
        }
        (["audit"], Method::Get) => {
            let url = req.url()?;
            let site = url
                .query_pairs()
                .find(|(k, v)| k == "site" && !v.is_empty())
                .map(|(_, v)| v.into_owned());
            crate::api::audit::page(req, &store, site.as_deref()).await
        }
        // what the cron trigger does first, now (operators, tests); `?site=`
        // limits it to one site
        (["sessions:flush"], Method::Post) => {
            let url = req.url()?;
            let site = match url.query_pairs().find(|(k, _)| k == "site") {
                Some((_, id)) => Some(store.site(&id).await?.ok_or_else(|| site_not_found(&id))?),
                None => None,
            };
            let done =
                crate::ingest::flush_sessions(&store, site.as_ref(), crate::CRON_FLUSH_ROUNDS)
                    .await?;
            Ok(Response::from_json(&done)?)
        }
        // the whole of the cron trigger's work, now, with what it did and the D1 statements
        // it used
        (["cron:run"], Method::Post) => {
            let summary = crate::cron::run(&store, env, now).await?;
            Ok(Response::from_json(&summary)?)
        }
        (
            ["sites"]
            | ["sites", _]
            | ["sites", _, "keys" | "origins" | "privacy" | "identity_secret" | "reclassify" | "shards"]
            | ["sites", _, "keys", _]
            | ["audit"]
            | ["sessions:flush"]
            | ["cron:run"],
            _,
        ) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::no_route()),
    }
}

/// `GET /v1/admin/sites/{site}/shards`: each shard's counts (events, sessions, visitors,
/// what waits for the archive, objects written, its database size and the rows its
/// storage read and wrote since it started); an empty list for a site in D1.
async fn shards_status(env: &Env, store: &Store, site: &str) -> ApiResult<Response> {
    let cfg = store
        .site(site)
        .await?
        .ok_or_else(|| site_not_found(site))?;
    let status = if cfg.shards > 0 {
        crate::shard::client::status(env, &cfg).await?
    } else {
        Vec::new()
    };
    Ok(Response::from_json(&json!({
        "site": cfg.id,
        "shards": cfg.shards,
        "status": status,
    }))?)
}

/// Whether a key segment is `{key}:rotate`.
pub(crate) fn is_rotate(segment: &str) -> bool {
    segment.len() > ":rotate".len() && segment.ends_with(":rotate")
}

fn audit(site: &str, now: i64, action: &'static str, target: Option<String>) -> AuditRecord {
    AuditRecord {
        site_id: site.to_string(),
        at: now,
        actor: Actor::Admin,
        action,
        target,
        detail: json!({}),
    }
}

/// A new key of `kind`: the secret (shown once) and what is stored of it.
fn make_key(kind: KeyKind) -> ApiResult<(String, NewKey)> {
    let key = auth::new_key(kind)?;
    let hash = auth::hash_key(&key);
    let stored = NewKey {
        id: auth::key_id(&hash),
        prefix: auth::key_prefix(&key),
        hash,
        kind,
    };
    Ok((key, stored))
}

/// A key as the admin endpoints show it (never the key, never its hash).
pub fn key_json(k: &KeyRecord) -> serde_json::Value {
    json!({
        "id": k.id,
        "scope": k.kind.as_str(),
        "prefix": k.prefix,
        "status": if k.revoked_at.is_some() { "revoked" } else { "active" },
        "created_at": format_rfc3339(k.created_at),
        "last_used_at": k.last_used_at.map(format_rfc3339),
        "revoked_at": k.revoked_at.map(format_rfc3339),
        "replaced_by": k.replaced_by,
    })
}

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
    /// What is kept of a visitor (query keys of URLs, geo fields).
    #[serde(default)]
    pub privacy: PrivacySettings,
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
    /// Where the site's events live: 0 this D1 database, `N` (1 to 64) per-site shards
    /// ([`SiteConfig::shards`]). Set when the site is made, or later while it has stored
    /// no event; then fixed (a new `N` moves visitors between shards: a rebuild from the
    /// archive).
    #[serde(default)]
    pub shards: Option<i64>,
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
    /// What is kept of a visitor.
    pub privacy: PrivacySettings,
    /// Hosts besides the allowed origins' that events may be recorded on.
    pub extra_hosts: Vec<String>,
    /// Most events the site's beacons may store per UTC day.
    pub max_events_per_day: i64,
    /// Bad rows kept.
    pub bad_rows_kept: i64,
    /// Whether `identify` must carry a valid `user_hash` (the secret is never shown again).
    pub identity_verification: bool,
    /// Where the site's events live (0: D1; `N`: `N` shards).
    pub shards: u32,
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
            privacy: s.privacy,
            extra_hosts: s.trust.extra_hosts,
            max_events_per_day: s.trust.max_events_per_day,
            bad_rows_kept: s.trust.bad_rows_kept,
            identity_verification: s.trust.identity_secret.is_some(),
            shards: s.shards,
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
/// The `shards` setting, read (400 `invalid_parameter` outside 0 to
/// [`crate::shard::client::MAX_SHARDS`]).
fn shards_setting(v: Option<i64>) -> ApiResult<Option<u32>> {
    Ok(
        in_range("shards", v, 0, i64::from(crate::shard::client::MAX_SHARDS))?
            .map(|n| u32::try_from(n).unwrap_or(0)),
    )
}

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

/// An admin body: one JSON object (400 `malformed_json` or `invalid_body` otherwise), read
/// into `T`. serde would read a struct from an array too (`[]` as every field left out),
/// so the object is checked first (the schema fuzz found `PUT .../privacy` taking `[]`).
async fn json_body<T: for<'de> Deserialize<'de>>(req: &mut Request) -> ApiResult<T> {
    let bytes = crate::body::read(req, crate::body::ADMIN_MAX_BYTES).await?;
    let sent: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request("malformed_json", format!("the body is not valid: {e}"))
    })?;
    if !sent.is_object() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object",
        ));
    }
    serde_json::from_value(sent)
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
        privacy: body
            .privacy
            .normalised()
            .map_err(|m| ApiError::bad_request("invalid_privacy", m))?,
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
        shards: shards_setting(body.settings.shards)?.unwrap_or(0),
    };
    if site.max_events_per_visitor_day < 1 {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "`max_events_per_visitor_day` must be at least 1",
        ));
    }
    let (read_key, read) = make_key(KeyKind::Read)?;
    let (write_key, write) = make_key(KeyKind::Write)?;
    let (manage_key, manage) = make_key(KeyKind::Manage)?;
    let record = audit(&site.id, now, "site.created", None);
    if !store
        .create_site(&site, &[read, write, manage], &record)
        .await?
    {
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
        "manage_key": manage_key,
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

/// `POST /v1/admin/sites/{site}/keys` with `{"scope": "read" | "write" | "manage"}` (or
/// the older `"kind"`) → 201 with the key, shown once.
pub async fn add_key(
    req: &mut Request,
    store: &Store,
    site: &str,
    now: i64,
) -> ApiResult<Response> {
    #[derive(Deserialize)]
    struct Body {
        scope: Option<String>,
        kind: Option<String>,
    }
    let body: Body = json_body(req).await?;
    let invalid =
        || ApiError::bad_request("invalid_scope", "`scope` must be read, write or manage");
    // each name given must be a scope, and both the same one (an invalid `kind` beside a
    // valid `scope` was taken: found by the schema fuzz)
    let given: Vec<KeyKind> = [body.scope, body.kind]
        .iter()
        .flatten()
        .map(|v| KeyKind::parse(v).ok_or_else(invalid))
        .collect::<ApiResult<_>>()?;
    let kind = match given.as_slice() {
        [k] => *k,
        [a, b] if a == b => *a,
        _ => return Err(invalid()),
    };
    let (key, stored) = make_key(kind)?;
    let mut record = audit(site, now, "key.created", Some(stored.id.clone()));
    record.detail = json!({ "scope": kind.as_str() });
    if !store.add_key(site, &stored, now, &record).await? {
        return Err(site_not_found(site));
    }
    let answer = json!({
        "site": site, "id": stored.id, "scope": kind.as_str(), "kind": kind.as_str(),
        "key": key, "prefix": stored.prefix, "created_at": format_rfc3339(now),
    });
    Ok(Response::from_json(&answer)?.with_status(201))
}

/// `GET /v1/admin/sites/{site}/keys`: every key of the site, newest first, revoked ones
/// included (never the keys themselves).
pub async fn list_keys(store: &Store, site: &str) -> ApiResult<Response> {
    if store.site(site).await?.is_none() {
        return Err(site_not_found(site));
    }
    let keys = store.list_keys(site).await?;
    Ok(Response::from_json(&json!({
        "site": site,
        "keys": keys.iter().map(key_json).collect::<Vec<_>>(),
    }))?)
}

fn key_not_found(site: &str, id: &str) -> ApiError {
    ApiError::new(
        404,
        "unknown_key",
        format!("site `{site}` has no key `{id}`"),
    )
}

/// `DELETE /v1/admin/sites/{site}/keys/{key}`: revokes the key from the next request on
/// (keys are never cached). Revoking a revoked key changes nothing.
pub async fn revoke_key(store: &Store, site: &str, id: &str, now: i64) -> ApiResult<Response> {
    let record = audit(site, now, "key.revoked", Some(id.to_string()));
    store.revoke_key(site, id, now, &record).await?;
    let key = store
        .key_by_id(site, id)
        .await?
        .ok_or_else(|| key_not_found(site, id))?;
    Ok(Response::from_json(
        &json!({ "site": site, "key": key_json(&key) }),
    )?)
}

/// `POST /v1/admin/sites/{site}/keys/{key}:rotate`: a new key of the same scope (shown
/// once), and the old one revoked from the next request on, in one transaction. 409
/// `key_revoked` when the old key is no longer live.
pub async fn rotate_key(store: &Store, site: &str, id: &str, now: i64) -> ApiResult<Response> {
    let old = store
        .key_by_id(site, id)
        .await?
        .ok_or_else(|| key_not_found(site, id))?;
    let revoked = || {
        ApiError::new(
            409,
            "key_revoked",
            format!("key `{id}` is revoked: add a new key instead"),
        )
    };
    if old.revoked_at.is_some() {
        return Err(revoked());
    }
    let (key, stored) = make_key(old.kind)?;
    let mut record = audit(site, now, "key.rotated", Some(id.to_string()));
    record.detail = json!({ "scope": old.kind.as_str(), "replaced_by": stored.id });
    if !store.rotate_key(site, id, &stored, now, &record).await? {
        return Err(revoked());
    }
    let answer = json!({
        "site": site, "id": stored.id, "scope": old.kind.as_str(), "kind": old.kind.as_str(),
        "key": key, "prefix": stored.prefix, "created_at": format_rfc3339(now),
        "replaces": id,
    });
    Ok(Response::from_json(&answer)?.with_status(201))
}

/// `PUT /v1/admin/sites/{site}/privacy` with `{"query_keys": [...], "geo": [...]}`: what
/// is kept of a visitor from now on (see `closeloop_core::privacy`).
pub async fn set_privacy(
    req: &mut Request,
    store: &Store,
    site: &str,
    now: i64,
) -> ApiResult<Response> {
    let body: serde_json::Value = json_body(req).await?;
    let privacy = serde_json::from_value::<PrivacySettings>(body)
        .map_err(|e| e.to_string())
        .and_then(PrivacySettings::normalised)
        .map_err(|m| ApiError::bad_request("invalid_privacy", m))?;
    let mut record = audit(site, now, "privacy.changed", None);
    record.detail = serde_json::to_value(&privacy).map_err(ApiError::internal)?;
    if !store.set_privacy(site, &privacy, &record).await? {
        return Err(site_not_found(site));
    }
    Ok(Response::from_json(
        &json!({ "site": site, "privacy": privacy }),
    )?)
}

/// `PUT /v1/admin/sites/{site}/origins` with `{"allowed_origins": [...]}`.
pub async fn set_origins(
    req: &mut Request,
    store: &Store,
    site: &str,
    now: i64,
) -> ApiResult<Response> {
    #[derive(Deserialize)]
    struct Body {
        allowed_origins: Vec<String>,
    }
    let body: Body = json_body(req).await?;
    let list = origins(&body.allowed_origins)?;
    let mut record = audit(site, now, "origins.changed", None);
    record.detail = json!({ "allowed_origins": list });
    if !store.set_origins(site, &list, &record).await? {
        return Err(site_not_found(site));
    }
    Ok(Response::from_json(
        &serde_json::json!({ "site": site, "allowed_origins": list }),
    )?)
}

/// `PATCH /v1/admin/sites/{site}` with [`Settings`] (and `max_events_per_visitor_day`):
/// the site as it now is.
pub async fn update_settings(
    req: &mut Request,
    env: &Env,
    store: &Store,
    site: &str,
) -> ApiResult<Response> {
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
        shards: shards_setting(body.settings.shards)?,
    };
    if let Some(n) = update.shards {
        let current = store
            .site(site)
            .await?
            .ok_or_else(|| site_not_found(site))?;
        let stored = if current.shards == 0 {
            store.has_events(site).await?
        } else {
            crate::shard::client::status(env, &current)
                .await?
                .iter()
                .any(|s| s.events > 0 || s.objects > 0)
        };
        if current.shards != n && stored {
            return Err(ApiError::new(
                409,
                "shards_fixed",
                "the site has stored events (or erased some): its storage and number of shards are fixed \
                 (another number moves visitors between shards, which is a rebuild from \
                 the archive)",
            ));
        }
    }
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
