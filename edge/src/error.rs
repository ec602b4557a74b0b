//! One error type for every endpoint: [`ApiError`] becomes `{"error": {"code", "message"}}`
//! with its HTTP status. Internal failures are logged here and answered with a generic
//! message, so no SQL, binding name or stack reaches a client.

use closeloop_core::wire::{ErrorBody, ErrorDetail};
use worker::Response;

/// An error answered to the client: an HTTP status, a stable code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status (4xx for the client's mistakes, 5xx for ours).
    pub status: u16,
    /// Stable machine-readable code, e.g. `unknown_site`.
    pub code: &'static str,
    /// Human-readable explanation (never internal detail).
    pub message: String,
    /// Seconds to wait before retrying (sent as `Retry-After`), for 429.
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 with this code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// 404 `not_found` for a path that names nothing.
    pub fn no_route() -> Self {
        Self::new(404, "not_found", "no such endpoint")
    }

    /// 405 `method_not_allowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "method_not_allowed",
            "this endpoint does not take that method",
        )
    }

    /// 500 `internal`: logs `detail` and hides it from the client.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        worker::console_error!("internal error: {detail}");
        Self::new(500, "internal", "internal error")
    }

    /// The JSON body of this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
            },
        }
    }

    /// The HTTP response for this error.
    pub fn into_response(self) -> worker::Result<Response> {
        let mut resp = Response::from_json(&self.body())?.with_status(self.status);
        if let Some(secs) = self.retry_after {
            resp.headers_mut().set("Retry-After", &secs.to_string())?;
        }
        Ok(resp)
    }
}

impl From<worker::Error> for ApiError {
    fn from(e: worker::Error) -> Self {
        Self::internal(e)
    }
}

impl From<worker::kv::KvError> for ApiError {
    fn from(e: worker::kv::KvError) -> Self {
        Self::internal(e)
    }
}

/// What a handler returns.
pub type ApiResult<T = Response> = Result<T, ApiError>;
