//! SQL of tombstones (what an erasure leaves so that nothing brings the lead back) and of
//! the deployment's own random salts. Part of [`crate::store`], so that only the store
//! module knows SQL.
//!
//! Salts are made once per deployment (migration 0011 makes them, and a missing one is
//! made at first use), kept in D1 and remembered by each isolate once read: a request
//! costs at most one D1 round trip for them per isolate lifetime.

use super::audit::AuditRecord;
use super::{n, s, Store};
use crate::error::{ApiError, ApiResult};
use closeloop_core::privacy::{tombstone_hash, TombstoneKind};
use serde::Deserialize;
use std::collections::HashMap;

/// The salt of tombstone hashes.
pub const TOMBSTONE_SALT: &str = "tombstone_salt";
/// The salt of the per-client rate-limit key when no `RATE_LIMIT_SALT` secret is set.
pub const IP_SALT: &str = "ip_salt";

thread_local! {
    /// Deployment secrets this isolate has read: name → value.
    static SECRETS: std::cell::RefCell<HashMap<String, String>> = Default::default();
}

impl Store {
    /// The deployment's random secret `name` (64 hex digits), made at first use when
    /// missing; never empty.
    pub async fn deployment_secret(&self, name: &str) -> ApiResult<String> {
        if let Some(v) = SECRETS.with(|m| m.borrow().get(name).cloned()) {
            return Ok(v);
        }
        #[derive(Deserialize)]
        struct Row {
            value: String,
        }
        let fresh = crate::auth::random_hex(32)?;
        let results = self
            .db
            .batch(vec![
                self.stmt(
                    "INSERT INTO deployment_secrets (name, value, created_at) \
                     VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING",
                    &[
                        s(name),
                        s(&fresh),
                        n(worker::Date::now().as_millis() as i64),
                    ],
                )?,
                self.stmt(
                    "SELECT value FROM deployment_secrets WHERE name = ?1",
                    &[s(name)],
                )?,
            ])
            .await?;
        let value = Self::all::<Row>(results.get(1))?
            .into_iter()
            .next()
            .map(|r| r.value)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::internal(format!("deployment secret {name} missing")))?;
        SECRETS.with(|m| m.borrow_mut().insert(name.to_string(), value.clone()));
        Ok(value)
    }

    /// The tombstone hash of `value` of `kind` in a site.
    pub async fn tombstone_of(
        &self,
        site_id: &str,
        kind: TombstoneKind,
        value: &str,
    ) -> ApiResult<String> {
        let salt = self.deployment_secret(TOMBSTONE_SALT).await?;
        Ok(tombstone_hash(&salt, kind, site_id, value))
    }

    /// Which of `hashes` are tombstones of the site.
    pub async fn tombstoned(
        &self,
        site_id: &str,
        hashes: &[String],
    ) -> ApiResult<std::collections::HashSet<String>> {
        #[derive(Deserialize)]
        struct Row {
            hash: String,
        }
        if hashes.is_empty() {
            return Ok(Default::default());
        }
        let list = serde_json::to_string(hashes).map_err(ApiError::internal)?;
        let rows: Vec<Row> = self
            .stmt(
                "SELECT hash FROM tombstones WHERE site_id = ?1 \
                 AND hash IN (SELECT value FROM json_each(?2))",
                &[s(site_id), s(&list)],
            )?
            .all()
            .await?
            .results()?;
        Ok(rows.into_iter().map(|r| r.hash).collect())
    }

    /// Lifts the tombstones of an email and its lead id (the hashes given), with the audit
    /// entry, in one transaction. `true` when there was one.
    pub async fn lift_tombstones(
        &self,
        site_id: &str,
        hashes: &[String],
        audit: &AuditRecord,
    ) -> ApiResult<bool> {
        let list = serde_json::to_string(hashes).map_err(ApiError::internal)?;
        let results = self
            .db
            .batch(vec![
                self.audit_stmt_when(
                    audit,
                    "EXISTS (SELECT 1 FROM tombstones WHERE site_id = ?1 \
                     AND hash IN (SELECT value FROM json_each(?7)))",
                    &[s(&list)],
                )?,
                self.stmt(
                    "DELETE FROM tombstones WHERE site_id = ?1 AND kind IN ('email', 'lead') \
                     AND hash IN (SELECT value FROM json_each(?2))",
                    &[s(site_id), s(&list)],
                )?,
            ])
            .await?;
        Ok(Self::changes(results.get(1))? > 0)
    }
}
