//! What the API's handlers share: `from` / `to` parsing and the key check of
//! `Authorization: Bearer <key>`.

use crate::auth::{self, KeyKind};
use crate::error::{ApiError, ApiResult};
use crate::store::Store;
use closeloop_core::time::{parse_date, parse_rfc3339};
use worker::Request;

/// Parses `from` / `to`: RFC 3339, or a date (`YYYY-MM-DD`, the day's start in UTC).
pub fn parse_time(name: &str, value: &str) -> ApiResult<i64> {
    parse_rfc3339(value)
        .or_else(|_| parse_date(value))
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_parameter",
                format!("`{name}` must be an RFC 3339 time or a YYYY-MM-DD date"),
            )
        })
}

/// Checks `Authorization: Bearer <key>` against the site's keys: 401 without one,
/// 403 when it is not a read key of this site.
pub async fn require_key(req: &Request, store: &Store, site: &str, kind: KeyKind) -> ApiResult<()> {
    let hash = key_hash(req)?;
    check_key(store.key(&hash).await?, &hash, site, kind)
}

/// The SHA-256 (hex) of the request's bearer key (401 without one).
pub fn key_hash(req: &Request) -> ApiResult<String> {
    let token = auth::bearer(req.headers().get("Authorization")?)?;
    Ok(auth::hash_key(&token))
}

/// Whether the stored key `found` for `hash` (`Store::key`'s answer) may `kind` the site
/// (403 when not).
pub fn check_key(
    found: Option<(String, KeyKind, String)>,
    hash: &str,
    site: &str,
    kind: KeyKind,
) -> ApiResult<()> {
    match found {
        Some((key_site, key_kind, stored))
            if key_kind == kind
                && auth::constant_time_eq(&key_site, site)
                && auth::constant_time_eq(&stored, hash) =>
        {
            Ok(())
        }
        _ => Err(ApiError::new(
            403,
            "forbidden",
            format!(
                "this key may not {} site `{site}`",
                match kind {
                    KeyKind::Read => "read",
                    KeyKind::Write => "write to",
                }
            ),
        )),
    }
}
