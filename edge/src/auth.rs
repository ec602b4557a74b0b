//! Keys: made from 24 random bytes, shown once, stored only as their SHA-256 (hex), and
//! compared in constant time. The admin token comes from the `ADMIN_TOKEN` secret.
//!
//! # Scopes
//! A key has exactly one scope, and scopes do not nest: `manage` does not imply `write`,
//! nor `write` `read`. Each integration holds the one it needs — the dashboard a read key,
//! the CRM a write key, the privacy or operations tool a manage key — so a leaked key
//! gives only its own door: a leaked CRM key cannot erase leads or register a webhook
//! that would receive every future lead, and a leaked manage key cannot forge conversions
//! or read the reports. Keys themselves are managed only with the admin token (a manage
//! key cannot mint keys).
//!
//! | scope | prefix | endpoints |
//! | --- | --- | --- |
//! | `read` | `clr_` | reports, leads and journeys |
//! | `write` | `clw_` | events:import, conversions (+ import), spend (+ import) |
//! | `manage` | `clm_` | erasure, tombstones, webhooks (list, create, delete, rotate, deliver), the site's audit log |
//!
//! A key's public id is `key_` + the first 16 hex digits of its hash (so keys made before
//! ids existed have one too); its first 12 characters are kept as its `prefix` for people
//! to recognise it. Keys are never cached: each API request reads its key row from D1, so
//! a revoked or rotated key is refused from the very next request.

use crate::error::ApiError;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Ask the reports (`GET /v1/sites/{site}/...`).
    Read,
    /// Send conversions, spend and server-side events.
    Write,
    /// Erase leads, manage webhooks and tombstones, read the site's audit log.
    Manage,
}

impl KeyKind {
    /// The name stored in D1 (`read` / `write`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Read => "read",
            KeyKind::Write => "write",
            KeyKind::Manage => "manage",
        }
    }

    /// Parses a stored or requested kind.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(KeyKind::Read),
            "write" => Some(KeyKind::Write),
            "manage" => Some(KeyKind::Manage),
            _ => None,
        }
    }
}

/// SHA-256 of `key`, lower-case hex: the form a key is stored in.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Whether two strings are equal, in time that does not depend on where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// `n` random bytes from the platform (`crypto.getRandomValues`), hex-encoded.
pub fn random_hex(n: usize) -> Result<String, ApiError> {
    let mut buf = vec![0u8; n];
    getrandom::getrandom(&mut buf).map_err(ApiError::internal)?;
    Ok(hex::encode(buf))
}

impl KeyKind {
    /// The first characters of every key of this scope.
    pub fn key_prefix(self) -> &'static str {
        match self {
            KeyKind::Read => "clr_",
            KeyKind::Write => "clw_",
            KeyKind::Manage => "clm_",
        }
    }
}

/// A new key of `kind`: `clr_`, `clw_` or `clm_` and 48 hex digits.
pub fn new_key(kind: KeyKind) -> Result<String, ApiError> {
    Ok(format!("{}{}", kind.key_prefix(), random_hex(24)?))
}

/// Whether a token has the shape of a key (`cl[rwm]_` and 48 lower-case hex digits):
/// anything else is refused without a D1 read.
pub fn looks_like_key(token: &str) -> bool {
    token.len() == 52
        && ["clr_", "clw_", "clm_"]
            .iter()
            .any(|p| token.starts_with(p))
        && token
            .bytes()
            .skip(4)
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The public id of the key whose hash is `hash`.
pub fn key_id(hash: &str) -> String {
    format!("key_{}", hash.get(..16).unwrap_or(hash))
}

/// What is kept of a key for people to recognise it: its first 12 characters.
pub fn key_prefix(key: &str) -> String {
    key.chars().take(12).collect()
}

/// The token of an `Authorization: Bearer <token>` header: 401 `missing_key` when there
/// is none.
pub fn bearer(header: Option<String>) -> Result<String, ApiError> {
    let missing = || {
        ApiError::new(
            401,
            "missing_key",
            "send the key as Authorization: Bearer <key>",
        )
    };
    let header = header.ok_or_else(missing)?;
    let (scheme, token) = header.trim().split_once(' ').ok_or_else(missing)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(missing());
    }
    Ok(token.to_string())
}

/// Checks an admin request against the `ADMIN_TOKEN` secret: 401 without a token,
/// 403 with a wrong one, 503 when the worker has no token configured.
pub fn check_admin(header: Option<String>, admin_token: Option<String>) -> Result<(), ApiError> {
    let token = bearer(header)?;
    let Some(expected) = admin_token.filter(|t| !t.is_empty()) else {
        return Err(ApiError::new(
            503,
            "admin_disabled",
            "the admin endpoints are off: set the ADMIN_TOKEN secret",
        ));
    };
    if constant_time_eq(&hash_key(&token), &hash_key(&expected)) {
        Ok(())
    } else {
        Err(ApiError::new(403, "forbidden", "wrong admin token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_sha256_hex() {
        // SHA-256("abc") from FIPS 180-2, appendix B.1
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(Some("Bearer abc".into())), Ok("abc".to_string()));
        assert_eq!(bearer(Some("bearer  abc ".into())), Ok("abc".to_string()));
        assert_eq!(bearer(None).map_err(|e| e.status), Err(401));
        assert_eq!(
            bearer(Some("Basic abc".into())).map_err(|e| e.status),
            Err(401)
        );
        assert_eq!(
            bearer(Some("Bearer ".into())).map_err(|e| e.status),
            Err(401)
        );
    }

    #[test]
    fn key_shapes() {
        for kind in [KeyKind::Read, KeyKind::Write, KeyKind::Manage] {
            let k = format!("{}{}", kind.key_prefix(), "0a".repeat(24));
            assert!(looks_like_key(&k), "{k}");
            assert_eq!(KeyKind::parse(kind.as_str()), Some(kind));
        }
        assert!(!looks_like_key(
            "clx_000000000000000000000000000000000000000000000000"
        ));
        assert!(!looks_like_key(
            "clr_00000000000000000000000000000000000000000000000G"
        ));
        assert!(!looks_like_key("clr_0000"));
        assert!(!looks_like_key("no-such-key-0123456789"));
        assert_eq!(key_id(&"ab".repeat(32)), "key_abababababababab");
        assert_eq!(key_prefix("clw_0123456789abcdef"), "clw_01234567");
    }

    #[test]
    fn admin_check() {
        let ok = check_admin(Some("Bearer s3cret".into()), Some("s3cret".into()));
        assert_eq!(ok, Ok(()));
        let wrong = check_admin(Some("Bearer nope".into()), Some("s3cret".into()));
        assert_eq!(wrong.map_err(|e| e.status), Err(403));
        let unset = check_admin(Some("Bearer x".into()), None);
        assert_eq!(unset.map_err(|e| e.status), Err(503));
    }
}
