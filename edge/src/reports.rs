//! What the API's handlers share: `from` / `to` parsing and the key check of
//! `Authorization: Bearer <key>`.

use crate::auth::{self, KeyKind};
use crate::error::{ApiError, ApiResult};
use crate::store::keys::{KeyRecord, LAST_USED_RESOLUTION_MS};
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

/// Checks `Authorization: Bearer <key>` against the site's keys (see [`check_key`]) and
/// records its use (at most once an hour per key).
pub async fn require_key(
    req: &Request,
    store: &Store,
    site: &str,
    kind: KeyKind,
    now: i64,
) -> ApiResult<KeyRecord> {
    let hash = key_hash(req)?;
    let key = check_key(store.key(&hash).await?, &hash, site, kind)?;
    record_use(store, &key, now).await?;
    Ok(key)
}

/// Writes the key's "last used" time when the stored one is more than an hour old: one
/// write per key per hour, not one per request.
pub async fn record_use(store: &Store, key: &KeyRecord, now: i64) -> ApiResult<()> {
    if key
        .last_used_at
        .is_none_or(|at| at <= now - LAST_USED_RESOLUTION_MS)
    {
        store.touch_key(&key.hash, now).await?;
    }
    Ok(())
}

/// The SHA-256 (hex) of the request's bearer key: 401 `missing_key` without one, 403
/// `malformed_key` when the token does not have a key's shape (no D1 read then; 403 like
/// any token that is no key of this site).
pub fn key_hash(req: &Request) -> ApiResult<String> {
    let token = auth::bearer(req.headers().get("Authorization")?)?;
    if !auth::looks_like_key(&token) {
        return Err(ApiError::new(
            403,
            "malformed_key",
            "a key is clr_, clw_ or clm_ followed by 48 hex digits",
        ));
    }
    Ok(auth::hash_key(&token))
}

/// Whether the stored key `found` for `hash` may be used for a `kind` endpoint of the
/// site: 403 `forbidden` when it is no key of this site, 403 `key_revoked` when it was
/// revoked (or rotated), 403 `insufficient_scope` when its scope is another. Scopes do not
/// nest (see [`crate::auth`]).
pub fn check_key(
    found: Option<KeyRecord>,
    hash: &str,
    site: &str,
    kind: KeyKind,
) -> ApiResult<KeyRecord> {
    let forbidden = || {
        ApiError::new(
            403,
            "forbidden",
            format!("this key is not a key of site `{site}`"),
        )
    };
    let key = found.ok_or_else(forbidden)?;
    if !(auth::constant_time_eq(&key.site_id, site) && auth::constant_time_eq(&key.hash, hash)) {
        return Err(forbidden());
    }
    if key.revoked_at.is_some() {
        return Err(ApiError::new(
            403,
            "key_revoked",
            format!("this key ({}) was revoked", key.id),
        ));
    }
    if key.kind != kind {
        return Err(ApiError::new(
            403,
            "insufficient_scope",
            format!(
                "this is a {} key; this endpoint needs a {} key of site `{site}`",
                key.kind.as_str(),
                kind.as_str()
            ),
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: KeyKind, revoked: bool) -> KeyRecord {
        KeyRecord {
            hash: "h".into(),
            id: "key_1".into(),
            site_id: "s".into(),
            kind,
            prefix: None,
            created_at: 0,
            last_used_at: None,
            revoked_at: revoked.then_some(5),
            replaced_by: None,
        }
    }

    #[test]
    fn every_refusal_has_its_code() {
        let code = |r: ApiResult<KeyRecord>| r.map(|_| "ok").unwrap_or_else(|e| e.code);
        let k = || Some(key(KeyKind::Write, false));
        assert_eq!(code(check_key(k(), "h", "s", KeyKind::Write)), "ok");
        assert_eq!(code(check_key(None, "h", "s", KeyKind::Write)), "forbidden");
        assert_eq!(code(check_key(k(), "h", "t", KeyKind::Write)), "forbidden");
        assert_eq!(code(check_key(k(), "x", "s", KeyKind::Write)), "forbidden");
        assert_eq!(
            code(check_key(k(), "h", "s", KeyKind::Manage)),
            "insufficient_scope"
        );
        assert_eq!(
            code(check_key(k(), "h", "s", KeyKind::Read)),
            "insufficient_scope"
        );
        assert_eq!(
            code(check_key(
                Some(key(KeyKind::Manage, true)),
                "h",
                "s",
                KeyKind::Manage
            )),
            "key_revoked"
        );
    }
}
