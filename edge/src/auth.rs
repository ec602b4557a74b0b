//! Keys: made from 24 random bytes, shown once, stored only as their SHA-256 (hex), and
//! compared in constant time. The admin token comes from the `ADMIN_TOKEN` secret.

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
}

impl KeyKind {
    /// The name stored in D1 (`read` / `write`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Read => "read",
            KeyKind::Write => "write",
        }
    }

    /// Parses a stored or requested kind.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(KeyKind::Read),
            "write" => Some(KeyKind::Write),
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

/// A new key of `kind`: `clr_` or `clw_` and 48 hex digits.
pub fn new_key(kind: KeyKind) -> Result<String, ApiError> {
    let prefix = match kind {
        KeyKind::Read => "clr_",
        KeyKind::Write => "clw_",
    };
    Ok(format!("{prefix}{}", random_hex(24)?))
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
    fn admin_check() {
        let ok = check_admin(Some("Bearer s3cret".into()), Some("s3cret".into()));
        assert_eq!(ok, Ok(()));
        let wrong = check_admin(Some("Bearer nope".into()), Some("s3cret".into()));
        assert_eq!(wrong.map_err(|e| e.status), Err(403));
        let unset = check_admin(Some("Bearer x".into()), None);
        assert_eq!(unset.map_err(|e| e.status), Err(503));
    }
}
