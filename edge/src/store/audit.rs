//! SQL of the audit log: one row per management action, written in the same D1 batch
//! (transaction) as the action, so an action is never without its entry nor an entry
//! without its action. Part of [`crate::store`], so that only the store module knows SQL.

use super::{n, opt, s, Store};
use crate::error::{ApiError, ApiResult};
use serde::Deserialize;
use serde_json::Value;
use wasm_bindgen::JsValue;
use worker::D1PreparedStatement;

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The holder of the `ADMIN_TOKEN`.
    Admin,
    /// A manage key (its public id).
    Key(String),
}

impl Actor {
    /// As stored: `admin` or `key:<id>`.
    pub fn as_string(&self) -> String {
        match self {
            Actor::Admin => "admin".into(),
            Actor::Key(id) => format!("key:{id}"),
        }
    }
}

/// One management action to record. `detail` must never hold a secret, a key or an
/// email (an erasure is recorded by its tombstone's hash).
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// The site acted on.
    pub site_id: String,
    /// When, ms.
    pub at: i64,
    /// Who.
    pub actor: Actor,
    /// What: `site.created`, `key.created`, `key.revoked`, `key.rotated`,
    /// `origins.changed`, `privacy.changed`, `webhook.created`, `webhook.deleted`,
    /// `webhook.secret_rotated`, `lead.erased`, `tombstone.lifted`.
    pub action: &'static str,
    /// The key, webhook or tombstone acted on.
    pub target: Option<String>,
    /// More, as a JSON object.
    pub detail: Value,
}

/// A stored entry.
#[derive(Debug, Clone, Deserialize)]
pub struct AuditEntry {
    /// Its sequence number (increasing; the list's cursor).
    pub seq: i64,
    /// The site.
    pub site_id: String,
    /// When, ms.
    pub at: i64,
    /// `admin` or `key:<id>`.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: Option<String>,
    /// More (JSON text).
    pub detail: String,
}

impl Store {
    /// The statement that records `a` when `condition` (SQL over the parameters `?7` and
    /// on, `?1` being the site) holds: so that an action that changed nothing (a key
    /// already revoked) leaves no entry.
    pub(crate) fn audit_stmt_when(
        &self,
        a: &AuditRecord,
        condition: &str,
        condition_args: &[JsValue],
    ) -> ApiResult<D1PreparedStatement> {
        let detail = serde_json::to_string(&a.detail).map_err(ApiError::internal)?;
        let mut args = vec![
            s(&a.site_id),
            n(a.at),
            s(&a.actor.as_string()),
            s(a.action),
            opt(a.target.as_deref()),
            s(&detail),
        ];
        args.extend_from_slice(condition_args);
        self.stmt(
            &format!(
                "INSERT INTO audit_log (site_id, at, actor, action, target, detail) \
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE {condition}"
            ),
            &args,
        )
    }

    /// The statement that records `a` unconditionally.
    pub(crate) fn audit_stmt(&self, a: &AuditRecord) -> ApiResult<D1PreparedStatement> {
        self.audit_stmt_when(a, "true", &[])
    }

    /// Entries of one site (or of every site), newest first, with `seq` below `before`
    /// when given, at most `limit`.
    pub async fn audit_log(
        &self,
        site_id: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> ApiResult<Vec<AuditEntry>> {
        Ok(self
            .stmt(
                "SELECT seq, site_id, at, actor, action, target, detail FROM audit_log \
                 WHERE (?1 IS NULL OR site_id = ?1) AND (?2 IS NULL OR seq < ?2) \
                 ORDER BY seq DESC LIMIT ?3",
                &[
                    opt(site_id),
                    before.map(n).unwrap_or(JsValue::NULL),
                    n(limit),
                ],
            )?
            .all()
            .await?
            .results()?)
    }
}
