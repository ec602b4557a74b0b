//! The one way a handler reads a request body: [`read`], bounded while it streams.
//!
//! A declared `Content-Length` over the limit is refused before anything is read; a body
//! without one (chunked) is read chunk by chunk from the request's stream and refused as
//! soon as it passes the limit, so no request makes the worker hold more than the limit
//! plus one chunk, whatever it claims. The limits live beside the handlers that use
//! them: [`closeloop_core::wire::MAX_BODY_BYTES`] for beacons,
//! [`crate::api::MAX_WRITE_BODY_BYTES`] for imports, [`ADMIN_MAX_BYTES`] for the admin
//! endpoints.

use crate::error::{ApiError, ApiResult};
use futures_util::StreamExt;
use worker::Request;

/// Largest body an admin endpoint reads (a site's settings are a few hundred bytes).
pub const ADMIN_MAX_BYTES: usize = 16 * 1024;

/// 413 `body_too_large` for `limit`.
pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        413,
        "body_too_large",
        format!("the body is larger than {limit} bytes"),
    )
}

/// Whether a declared length is over `limit` (an unparsable one is left to the stream).
pub fn declared_over(content_length: Option<&str>, limit: usize) -> bool {
    content_length
        .and_then(|l| l.trim().parse::<u64>().ok())
        .is_some_and(|l| l > limit as u64)
}

/// Reads the whole body, refusing with 413 `body_too_large` (JSON) as soon as more than
/// `limit` bytes are declared or have arrived. No body reads as empty.
pub async fn read(req: &mut Request, limit: usize) -> ApiResult<Vec<u8>> {
    if declared_over(req.headers().get("Content-Length")?.as_deref(), limit) {
        return Err(too_large(limit));
    }
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    let mut stream = req.stream()?;
    let mut out: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > limit {
            // the answer goes now: dropping the stream leaves the rest unread
            return Err(too_large(limit));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_lengths() {
        assert!(declared_over(Some("1025"), 1024));
        assert!(!declared_over(Some("1024"), 1024));
        assert!(!declared_over(Some(" 10 "), 1024));
        assert!(!declared_over(Some("99999999999999999999"), 1024));
        assert!(!declared_over(None, 1024));
        assert!(!declared_over(Some("x"), 1024));
    }
}
