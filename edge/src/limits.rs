//! Rate limits of `POST /v1/collect`: Cloudflare's rate-limit bindings, asked side by
//! side, per visitor, per client (a salted hash of the IP address) and per site. The
//! limits themselves, and the arithmetic that sized them, are in `wrangler.toml`.

use crate::error::{ApiError, ApiResult};
use crate::store::Store;
use closeloop_core::time::MS_PER_DAY;
use sha2::{Digest, Sha256};
use worker::{Env, Request};

/// Requests per 10 s a visitor, a client (IP address) and a whole site may send; the
/// limits live in `wrangler.toml`'s `[[ratelimits]]` (`RL_VISITOR`, `RL_CLIENT`,
/// `RL_SITE`). A missing binding limits nothing.
const RATE_LIMITS: [&str; 3] = ["RL_VISITOR", "RL_CLIENT", "RL_SITE"];

/// The same limits sized for local runs, where every request comes from 127.0.0.1 and
/// the bench drives one site: chosen by the `LOCAL_RATE_LIMITS` variable (`1`), which
/// the test harness, the bench and the demo pass to `wrangler dev`. Never set it in a
/// deployment.
const LOCAL_RATE_LIMITS: [&str; 3] = ["RL_VISITOR", "RL_CLIENT_LOCAL", "RL_SITE_LOCAL"];

/// The key a client is limited by: SHA-256 of a daily salt and its IP address, cut to
/// 16 hex digits. Kept only in the rate limiter's memory, never stored; the salt (the
/// `RATE_LIMIT_SALT` secret, or when none is set the deployment's random `ip_salt` made
/// at first use and kept in D1 — never empty — and the UTC day) rotates every day.
pub fn client_key(site_id: &str, ip: &str, salt: &str, now: i64) -> String {
    let day = now.div_euclid(MS_PER_DAY);
    let digest = hex::encode(Sha256::digest(format!("{salt}\n{day}\n{ip}").as_bytes()));
    format!("{site_id}|{}", digest.get(..16).unwrap_or(&digest))
}

/// Refuses with 429 `rate_limited` (and `Retry-After`) when the visitor, the client or
/// the site is over its limit.
pub async fn rate_limit(
    env: &Env,
    store: &Store,
    req: &Request,
    site_id: &str,
    visitor: &str,
    now: i64,
) -> ApiResult<()> {
    let ip = req.headers().get("CF-Connecting-IP").ok().flatten();
    let salt = match (&ip, env.var("RATE_LIMIT_SALT").map(|v| v.to_string())) {
        (None, _) => String::new(),
        (Some(_), Ok(v)) if !v.trim().is_empty() => v,
        (Some(_), _) => {
            store
                .deployment_secret(crate::store::tombstones::IP_SALT)
                .await?
        }
    };
    let keys = [
        Some(format!("{site_id}|{visitor}")),
        ip.map(|ip| client_key(site_id, &ip, &salt, now)),
        Some(site_id.to_string()),
    ];
    let local = env
        .var("LOCAL_RATE_LIMITS")
        .is_ok_and(|v| v.to_string() == "1");
    let bindings = if local {
        LOCAL_RATE_LIMITS
    } else {
        RATE_LIMITS
    };
    // the limiters are asked side by side: one wait instead of three
    let checks = bindings
        .iter()
        .zip(keys)
        .filter_map(|(binding, key)| Some((env.rate_limiter(binding).ok()?, key?)))
        .map(|(limiter, key)| async move { limiter.limit(key).await });
    for outcome in futures_util::future::join_all(checks).await {
        if !outcome?.success {
            let mut e = ApiError::new(
                429,
                "rate_limited",
                "too many requests: slow down and retry later",
            );
            e.retry_after = Some(10);
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_key_hides_the_ip_and_rotates_daily() {
        let day = 86_400_000;
        let k1 = client_key("demo", "203.0.113.7", "salt", 10 * day + 5);
        assert!(k1.starts_with("demo|"));
        assert!(!k1.contains("203.0.113.7"));
        assert_eq!(k1.len(), "demo|".len() + 16);
        assert_eq!(
            k1,
            client_key("demo", "203.0.113.7", "salt", 10 * day + 80_000_000)
        );
        assert_ne!(k1, client_key("demo", "203.0.113.7", "salt", 11 * day));
        assert_ne!(k1, client_key("demo", "203.0.113.8", "salt", 10 * day + 5));
    }
}
