//! SQL of API keys: the key check, listing, adding, revoking and rotating (each write in
//! one transaction with its audit entry). Part of [`crate::store`], so that only the store
//! module knows SQL.
//!
//! Keys are never cached anywhere (not in the isolate, not in KV): every API request reads
//! its key row, so a revocation holds from the next request on. "Last used" costs no write
//! per request: [`Store::touch_key`] writes it only when the stored time is more than
//! [`LAST_USED_RESOLUTION_MS`] old (at most one write per key per hour).

use super::audit::AuditRecord;
use super::{n, s, Store};
use crate::auth::KeyKind;
use crate::error::ApiResult;
use serde::Deserialize;

/// How fresh "last used" is kept: written at most once per key per this many ms.
pub const LAST_USED_RESOLUTION_MS: i64 = 3_600_000;

/// A stored key's row, by the SHA-256 (hex) of the key.
const KEY_SQL: &str = "SELECT hash, id, site_id, kind, prefix, created_at, last_used_at, \
                       revoked_at, replaced_by FROM keys WHERE hash = ?1";

/// A stored key (never the key itself: only its hash and prefix are kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// SHA-256 (hex) of the key.
    pub hash: String,
    /// Public id (`key_` + 16 hex digits).
    pub id: String,
    /// The site it belongs to.
    pub site_id: String,
    /// Its scope.
    pub kind: KeyKind,
    /// Its first 12 characters (`None` for keys made before prefixes were kept).
    pub prefix: Option<String>,
    /// Creation time, ms.
    pub created_at: i64,
    /// When it was last used (to the hour), ms.
    pub last_used_at: Option<i64>,
    /// When it was revoked, ms.
    pub revoked_at: Option<i64>,
    /// The key a rotation replaced it with.
    pub replaced_by: Option<String>,
}

#[derive(Deserialize)]
struct KeyRow {
    hash: String,
    id: String,
    site_id: String,
    kind: String,
    prefix: Option<String>,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
    replaced_by: Option<String>,
}

impl KeyRow {
    /// The record, when the scope is one this worker knows.
    fn record(self) -> Option<KeyRecord> {
        Some(KeyRecord {
            kind: KeyKind::parse(&self.kind)?,
            hash: self.hash,
            id: self.id,
            site_id: self.site_id,
            prefix: self.prefix,
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            revoked_at: self.revoked_at,
            replaced_by: self.replaced_by,
        })
    }
}

/// A key to store: its hash, id, scope and prefix.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// SHA-256 (hex) of the key.
    pub hash: String,
    /// Public id.
    pub id: String,
    /// Scope.
    pub kind: KeyKind,
    /// First 12 characters.
    pub prefix: String,
}

impl Store {
    /// The key with this hash.
    pub async fn key(&self, hash: &str) -> ApiResult<Option<KeyRecord>> {
        let row: Option<KeyRow> = self.stmt(KEY_SQL, &[s(hash)])?.first(None).await?;
        Ok(row.and_then(KeyRow::record))
    }

    /// [`Store::key`] and whether `site_id` has visitors waiting for sessionisation, in
    /// one round trip (the reads that need sessions ask both before anything else).
    pub async fn key_and_queue(
        &self,
        hash: &str,
        site_id: &str,
    ) -> ApiResult<(Option<KeyRecord>, bool)> {
        #[derive(Deserialize)]
        struct Queued {
            #[allow(dead_code)]
            n: i64,
        }
        let results = self
            .db
            .batch(vec![
                self.stmt(KEY_SQL, &[s(hash)])?,
                self.stmt(
                    "SELECT 1 AS n FROM session_queue WHERE site_id = ?1 LIMIT 1",
                    &[s(site_id)],
                )?,
            ])
            .await?;
        let key: Vec<KeyRow> = Self::all(results.first())?;
        let queued: Vec<Queued> = Self::all(results.get(1))?;
        Ok((
            key.into_iter().next().and_then(KeyRow::record),
            !queued.is_empty(),
        ))
    }

    /// Records that a key was used at `now`, unless that was recorded less than
    /// [`LAST_USED_RESOLUTION_MS`] ago (the caller checks first, so most requests write
    /// nothing).
    pub async fn touch_key(&self, hash: &str, now: i64) -> ApiResult<()> {
        self.stmt(
            "UPDATE keys SET last_used_at = ?2 WHERE hash = ?1 \
             AND (last_used_at IS NULL OR last_used_at <= ?2 - ?3)",
            &[s(hash), n(now), n(LAST_USED_RESOLUTION_MS)],
        )?
        .run()
        .await?;
        Ok(())
    }

    /// The site's keys, newest first (revoked ones included).
    pub async fn list_keys(&self, site_id: &str) -> ApiResult<Vec<KeyRecord>> {
        let rows: Vec<KeyRow> = self
            .stmt(
                "SELECT hash, id, site_id, kind, prefix, created_at, last_used_at, revoked_at, \
                 replaced_by FROM keys WHERE site_id = ?1 ORDER BY created_at DESC, id",
                &[s(site_id)],
            )?
            .all()
            .await?
            .results()?;
        Ok(rows.into_iter().filter_map(KeyRow::record).collect())
    }

    /// The statement that stores a key of an existing site (nothing when there is no
    /// such site).
    pub(crate) fn insert_key_stmt(
        &self,
        site_id: &str,
        key: &NewKey,
        now: i64,
    ) -> ApiResult<worker::D1PreparedStatement> {
        self.stmt(
            "INSERT INTO keys (hash, id, site_id, kind, prefix, created_at) \
             SELECT ?1, ?2, id, ?4, ?5, ?6 FROM sites WHERE id = ?3",
            &[
                s(&key.hash),
                s(&key.id),
                s(site_id),
                s(key.kind.as_str()),
                s(&key.prefix),
                n(now),
            ],
        )
    }

    /// Adds a key to an existing site, with its audit entry. `false` when there is no
    /// such site.
    pub async fn add_key(
        &self,
        site_id: &str,
        key: &NewKey,
        now: i64,
        audit: &AuditRecord,
    ) -> ApiResult<bool> {
        let results = self
            .db
            .batch(vec![
                self.insert_key_stmt(site_id, key, now)?,
                self.audit_stmt_when(
                    audit,
                    "EXISTS (SELECT 1 FROM keys WHERE hash = ?7)",
                    &[s(&key.hash)],
                )?,
            ])
            .await?;
        Ok(Self::changes(results.first())? == 1)
    }

    /// The site's key with this id.
    pub async fn key_by_id(&self, site_id: &str, id: &str) -> ApiResult<Option<KeyRecord>> {
        let row: Option<KeyRow> = self
            .stmt(
                "SELECT hash, id, site_id, kind, prefix, created_at, last_used_at, revoked_at, \
                 replaced_by FROM keys WHERE site_id = ?1 AND id = ?2",
                &[s(site_id), s(id)],
            )?
            .first(None)
            .await?;
        Ok(row.and_then(KeyRow::record))
    }

    /// Revokes a live key of the site (from now on), with its audit entry, in one
    /// transaction. `true` when it was live and is revoked now.
    pub async fn revoke_key(
        &self,
        site_id: &str,
        id: &str,
        now: i64,
        audit: &AuditRecord,
    ) -> ApiResult<bool> {
        let results = self
            .db
            .batch(vec![
                self.stmt(
                    "UPDATE keys SET revoked_at = ?3 WHERE site_id = ?1 AND id = ?2 \
                     AND revoked_at IS NULL",
                    &[s(site_id), s(id), n(now)],
                )?,
                self.audit_stmt_when(
                    audit,
                    "EXISTS (SELECT 1 FROM keys WHERE site_id = ?1 AND id = ?7 \
                     AND revoked_at = ?8 AND replaced_by IS NULL)",
                    &[s(id), n(now)],
                )?,
            ])
            .await?;
        Ok(Self::changes(results.first())? == 1)
    }

    /// Rotates a live key of the site: stores `new` (of the same scope: the caller made
    /// it from the old key's record) and revokes the old one from now on, with the audit
    /// entry, in one transaction. `false` (nothing changed) when the old key is no longer
    /// live or has another scope.
    pub async fn rotate_key(
        &self,
        site_id: &str,
        old_id: &str,
        new: &NewKey,
        now: i64,
        audit: &AuditRecord,
    ) -> ApiResult<bool> {
        let results = self
            .db
            .batch(vec![
                self.stmt(
                    "INSERT INTO keys (hash, id, site_id, kind, prefix, created_at) \
                     SELECT ?1, ?2, site_id, kind, ?5, ?6 FROM keys \
                     WHERE site_id = ?3 AND id = ?4 AND kind = ?7 AND revoked_at IS NULL",
                    &[
                        s(&new.hash),
                        s(&new.id),
                        s(site_id),
                        s(old_id),
                        s(&new.prefix),
                        n(now),
                        s(new.kind.as_str()),
                    ],
                )?,
                self.stmt(
                    "UPDATE keys SET revoked_at = ?3, replaced_by = ?4 WHERE site_id = ?1 \
                     AND id = ?2 AND revoked_at IS NULL \
                     AND EXISTS (SELECT 1 FROM keys WHERE hash = ?5)",
                    &[s(site_id), s(old_id), n(now), s(&new.id), s(&new.hash)],
                )?,
                self.audit_stmt_when(
                    audit,
                    "EXISTS (SELECT 1 FROM keys WHERE site_id = ?1 AND id = ?7 \
                     AND replaced_by = ?8 AND revoked_at = ?9)",
                    &[s(old_id), s(&new.id), n(now)],
                )?,
            ])
            .await?;
        Ok(Self::changes(results.first())? == 1)
    }

    /// The number of rows the statement of `result` changed.
    pub(crate) fn changes(result: Option<&worker::D1Result>) -> ApiResult<i64> {
        Ok(match result {
            Some(r) => r.meta()?.and_then(|m| m.changes).unwrap_or(0) as i64,
            None => 0,
        })
    }
}
