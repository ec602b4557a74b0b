//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of the whole HTTP surface
//! (`docs/openapi.json`, compiled in).

use crate::error::ApiResult;
use worker::Response;

/// The document, as written in `docs/openapi.json`.
pub const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

/// Handles `GET /v1/openapi.json`.
pub fn serve() -> ApiResult<Response> {
    let mut resp = Response::ok(DOCUMENT)?;
    resp.headers_mut().set("Content-Type", "application/json")?;
    resp.headers_mut().set("Access-Control-Allow-Origin", "*")?;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_json() {
        let v: serde_json::Value = serde_json::from_str(super::DOCUMENT).expect("valid JSON");
        assert_eq!(v["openapi"].as_str().map(|s| &s[..3]), Some("3.1"));
    }
}
