//! CORS for `POST /v1/collect`: the `Access-Control-Allow-Origin` header echoes the
//! request's origin only when the site allows it; preflights are answered the same way.

use worker::{Headers, Response};

/// How long a browser may cache a preflight answer, in seconds.
const MAX_AGE: &str = "86400";

/// Whether `origin` is one of `allowed` (exact match of `scheme://host[:port]`,
/// ignoring a trailing slash and ASCII case).
pub fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    let origin = origin.trim_end_matches('/');
    allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

/// Adds the CORS headers that let `origin` read the answer.
pub fn allow(resp: &mut Response, origin: &str) -> worker::Result<()> {
    let h: &mut Headers = resp.headers_mut();
    h.set("Access-Control-Allow-Origin", origin)?;
    h.append("Vary", "Origin")?;
    Ok(())
}

/// The answer to a preflight (`OPTIONS`): 204, with the allow headers when `origin`
/// is allowed, without them otherwise (the browser then refuses the request).
pub fn preflight(origin: Option<&str>) -> worker::Result<Response> {
    let mut resp = Response::empty()?.with_status(204);
    resp.headers_mut().append("Vary", "Origin")?;
    if let Some(origin) = origin {
        let h = resp.headers_mut();
        h.set("Access-Control-Allow-Origin", origin)?;
        h.set("Access-Control-Allow-Methods", "POST, OPTIONS")?;
        h.set("Access-Control-Allow-Headers", "Content-Type")?;
        h.set("Access-Control-Max-Age", MAX_AGE)?;
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_exactly_up_to_case_and_trailing_slash() {
        let allowed = vec![
            "https://example.com".to_string(),
            "http://localhost:8080/".into(),
        ];
        assert!(origin_allowed("https://example.com", &allowed));
        assert!(origin_allowed("HTTPS://EXAMPLE.COM/", &allowed));
        assert!(origin_allowed("http://localhost:8080", &allowed));
        assert!(!origin_allowed("https://evil.example.com", &allowed));
        assert!(!origin_allowed("http://example.com", &allowed));
        assert!(!origin_allowed("null", &allowed));
    }
}
