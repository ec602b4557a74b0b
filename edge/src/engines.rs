//! Issue 14's storage engines as the worker sees them: what they answer when they fail
//! ([`EngineError`]), and (in the worker) the client that routes a visitor's batch to its
//! shard, asks every shard of a site for a report's traffic and merges the answers
//! ([`client`]), plus the admin routes that exercise them before the public routes are
//! wired to them.

use crate::sqlite::SqlError;

/// Why an engine refused or failed a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// Its storage failed (an internal error; the request changed nothing).
    Sql(SqlError),
    /// The request is not one the engine can act on (a client error).
    Invalid(String),
    /// The engine's state forbids it (e.g. a rebuild into a shard that holds events).
    Conflict(String),
}

impl EngineError {
    /// An invalid request.
    pub fn invalid(message: impl Into<String>) -> Self {
        EngineError::Invalid(message.into())
    }

    /// The HTTP status, the error code and the message an engine's answer carries.
    pub fn parts(&self) -> (u16, &'static str, String) {
        match self {
            EngineError::Sql(e) => (500, "storage_failed", e.message.clone()),
            EngineError::Invalid(m) => (400, "invalid_request", m.clone()),
            EngineError::Conflict(m) => (409, "conflict", m.clone()),
        }
    }
}

impl From<SqlError> for EngineError {
    fn from(e: SqlError) -> Self {
        EngineError::Sql(e)
    }
}

impl From<serde_json::Error> for EngineError {
    fn from(e: serde_json::Error) -> Self {
        EngineError::Sql(SqlError::new(format!(
            "a stored value does not read back: {e}"
        )))
    }
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (_, code, message) = self.parts();
        write!(f, "{code}: {message}")
    }
}

impl std::error::Error for EngineError {}
