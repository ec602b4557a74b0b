//! SQL of webhooks: registration, listing, deletion, secret rotation, and the outbox of
//! deliveries. Part of [`crate::store`], so that only the store module knows SQL.
//!
//! The outbox is filled by triggers (migration 0011) in the very transaction that writes a
//! new lead or a won deal, wherever that happens: an announcement can neither be skipped
//! nor made twice (its id, `wd_<webhook>_l_<lead>` / `wd_<webhook>_c_<deal>`, is unique).
//! A delivery run first *claims* what it will send ([`Store::claim_deliveries`]: a lease
//! id and an expiry on the rows, in one statement), so two runs at once (the cron trigger
//! and `webhooks:deliver`, or two cron invocations) never send the same delivery; an
//! attempt is recorded only under the lease that claimed it. A run that dies leaves its
//! leases to expire ([`LEASE_MS`]), after which the deliveries are claimed again (the
//! receiver dedupes on `Closeloop-Delivery`).

use super::audit::AuditRecord;
use super::reporting::ConversionEntry;
use super::{n, opt, s, Store};
use crate::error::ApiResult;
use serde::Deserialize;
use wasm_bindgen::JsValue;

/// How long a claim holds: longer than any run (a run sends at most a few deliveries per
/// site, each bounded by its timeout).
pub const LEASE_MS: i64 = 10 * 60 * 1000;

/// A webhook to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    /// Its id.
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// Event types as a JSON array.
    pub events: String,
    /// HMAC key.
    pub secret: String,
    /// Registration time, ms.
    pub created_at: i64,
}

/// A registered webhook as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WebhookListed {
    /// Its id.
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// Event types as a JSON array.
    pub events: String,
    /// Registration time, ms.
    pub created_at: i64,
    /// Until when the previous secret still signs (after a rotation), ms.
    pub previous_secret_until: Option<i64>,
    /// Deliveries waiting (or being retried).
    pub pending: i64,
    /// Deliveries sent.
    pub delivered: i64,
    /// Deliveries given up.
    pub failed: i64,
}

/// A claimed delivery, with its webhook's URL and secrets.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DueDelivery {
    /// Delivery id.
    pub id: String,
    /// Site.
    pub site_id: String,
    /// The webhook.
    pub webhook_id: String,
    /// `lead.created` or `customer.created`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The lead.
    pub lead_id: String,
    /// The won deal (customer.created).
    pub deal_id: Option<String>,
    /// When the delivery was made, ms.
    pub created_at: i64,
    /// Attempts so far.
    pub attempts: i64,
    /// Target URL.
    pub url: String,
    /// HMAC key.
    pub secret: String,
    /// The previous HMAC key, while it still signs.
    pub previous_secret: Option<String>,
    /// Until when it signs, ms.
    pub previous_secret_until: Option<i64>,
}

impl Store {
    /// Registers a webhook, with its audit entry. Only leads and deals stored from now
    /// on are announced to it.
    pub async fn create_webhook(
        &self,
        site_id: &str,
        w: &WebhookRow,
        audit: &AuditRecord,
    ) -> ApiResult<()> {
        self.db
            .batch(vec![
                self.stmt(
                    "INSERT INTO webhooks (site_id, id, url, events, secret, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    &[
                        s(site_id),
                        s(&w.id),
                        s(&w.url),
                        s(&w.events),
                        s(&w.secret),
                        n(w.created_at),
                    ],
                )?,
                self.audit_stmt(audit)?,
            ])
            .await?;
        Ok(())
    }

    /// The site's webhooks, oldest first, with their deliveries counted.
    pub async fn list_webhooks(&self, site_id: &str) -> ApiResult<Vec<WebhookListed>> {
        Ok(self
            .stmt(
                "SELECT w.id, w.url, w.events, w.created_at, \
                   CASE WHEN w.previous_secret_until > ?2 THEN w.previous_secret_until END \
                     AS previous_secret_until, \
                   (SELECT count(*) FROM webhook_outbox o WHERE o.site_id = w.site_id \
                     AND o.webhook_id = w.id AND o.delivered_at IS NULL AND o.failed_at IS NULL) \
                     AS pending, \
                   (SELECT count(*) FROM webhook_outbox o WHERE o.site_id = w.site_id \
                     AND o.webhook_id = w.id AND o.delivered_at IS NOT NULL) AS delivered, \
                   (SELECT count(*) FROM webhook_outbox o WHERE o.site_id = w.site_id \
                     AND o.webhook_id = w.id AND o.failed_at IS NOT NULL) AS failed \
                 FROM webhooks w WHERE w.site_id = ?1 ORDER BY w.created_at, w.id",
                &[s(site_id), n(worker::Date::now().as_millis() as i64)],
            )?
            .all()
            .await?
            .results()?)
    }

    /// Deletes a webhook and its deliveries, with the audit entry, in one transaction.
    /// `false` when the site has no such webhook.
    pub async fn delete_webhook(
        &self,
        site_id: &str,
        id: &str,
        audit: &AuditRecord,
    ) -> ApiResult<bool> {
        let results = self
            .db
            .batch(vec![
                self.audit_stmt_when(
                    audit,
                    "EXISTS (SELECT 1 FROM webhooks WHERE site_id = ?1 AND id = ?7)",
                    &[s(id)],
                )?,
                self.stmt(
                    "DELETE FROM webhook_outbox WHERE site_id = ?1 AND webhook_id = ?2",
                    &[s(site_id), s(id)],
                )?,
                self.stmt(
                    "DELETE FROM webhooks WHERE site_id = ?1 AND id = ?2",
                    &[s(site_id), s(id)],
                )?,
            ])
            .await?;
        Ok(Self::changes(results.get(2))? == 1)
    }

    /// Gives a webhook a new secret; the old one keeps signing beside it until
    /// `previous_until` (ms; `now` or earlier: not at all). With the audit entry, in one
    /// transaction. `false` when the site has no such webhook.
    pub async fn rotate_webhook_secret(
        &self,
        site_id: &str,
        id: &str,
        secret: &str,
        previous_until: i64,
        audit: &AuditRecord,
    ) -> ApiResult<bool> {
        let results = self
            .db
            .batch(vec![
                self.audit_stmt_when(
                    audit,
                    "EXISTS (SELECT 1 FROM webhooks WHERE site_id = ?1 AND id = ?7)",
                    &[s(id)],
                )?,
                self.stmt(
                    "UPDATE webhooks SET previous_secret = secret, previous_secret_until = ?4, \
                     secret = ?3 WHERE site_id = ?1 AND id = ?2",
                    &[s(site_id), s(id), s(secret), n(previous_until)],
                )?,
            ])
            .await?;
        Ok(Self::changes(results.get(1))? == 1)
    }

    /// Claims the deliveries due at `now` for one run (of one site, or of every site):
    /// at most `per_site` per site, oldest first within a site, sites taking turns (every
    /// site's first, then every site's second, ...), `total` in all. A claimed delivery is
    /// leased to `lease` until `now + LEASE_MS`; one claimed by a live lease is skipped.
    pub async fn claim_deliveries(
        &self,
        site_id: Option<&str>,
        now: i64,
        lease: &str,
        per_site: i64,
        total: i64,
    ) -> ApiResult<Vec<DueDelivery>> {
        let results = self
            .db
            .batch(vec![
                self.stmt(
                    "UPDATE webhook_outbox SET lease_id = ?3, lease_until = ?2 + ?6 \
                     WHERE id IN (SELECT id FROM (SELECT o.id, o.next_at, \
                       row_number() OVER (PARTITION BY o.site_id ORDER BY o.next_at, o.id) AS rn \
                       FROM webhook_outbox o \
                       WHERE o.delivered_at IS NULL AND o.failed_at IS NULL AND o.next_at <= ?2 \
                         AND (o.lease_until IS NULL OR o.lease_until <= ?2) \
                         AND (?1 IS NULL OR o.site_id = ?1)) \
                       WHERE rn <= ?4 ORDER BY rn, next_at, id LIMIT ?5)",
                    &[
                        opt(site_id),
                        n(now),
                        s(lease),
                        n(per_site),
                        n(total),
                        n(LEASE_MS),
                    ],
                )?,
                self.stmt(
                    "SELECT o.id, o.site_id, o.webhook_id, o.type, o.lead_id, o.deal_id, \
                       o.created_at, o.attempts, w.url, w.secret, \
                       CASE WHEN w.previous_secret_until > ?2 THEN w.previous_secret END \
                         AS previous_secret, \
                       CASE WHEN w.previous_secret_until > ?2 THEN w.previous_secret_until END \
                         AS previous_secret_until \
                     FROM webhook_outbox o JOIN webhooks w ON w.site_id = o.site_id \
                       AND w.id = o.webhook_id \
                     WHERE o.lease_id = ?1 ORDER BY o.site_id, o.next_at, o.id",
                    &[s(lease), n(now)],
                )?,
            ])
            .await?;
        Self::all(results.get(1))
    }

    /// Records an attempt of a delivery claimed by `lease`: delivered, or failed with
    /// `error` and retried at `retry_at` (`None`: given up); the lease ends.
    pub async fn record_attempt(
        &self,
        id: &str,
        lease: &str,
        now: i64,
        error: Option<&str>,
        retry_at: Option<i64>,
    ) -> ApiResult<()> {
        let stmt = match error {
            None => self.stmt(
                "UPDATE webhook_outbox SET attempts = attempts + 1, delivered_at = ?3, \
                 last_error = NULL, lease_id = NULL, lease_until = NULL \
                 WHERE id = ?1 AND lease_id = ?2",
                &[s(id), s(lease), n(now)],
            )?,
            Some(e) => self.stmt(
                "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = ?4, \
                 next_at = coalesce(?5, next_at), \
                 failed_at = CASE WHEN ?5 IS NULL THEN ?3 ELSE NULL END, \
                 lease_id = NULL, lease_until = NULL WHERE id = ?1 AND lease_id = ?2",
                &[
                    s(id),
                    s(lease),
                    n(now),
                    s(e),
                    retry_at.map(n).unwrap_or(JsValue::NULL),
                ],
            )?,
        };
        stmt.run().await?;
        Ok(())
    }

    /// Gives claimed deliveries back (a run that will not send them now): they are due
    /// again for the next run.
    pub async fn release_deliveries(&self, ids: &[String], lease: &str) -> ApiResult<()> {
        let list = serde_json::to_string(ids).map_err(crate::error::ApiError::internal)?;
        self.stmt(
            "UPDATE webhook_outbox SET lease_id = NULL, lease_until = NULL \
             WHERE lease_id = ?1 AND id IN (SELECT value FROM json_each(?2))",
            &[s(lease), s(&list)],
        )?
        .run()
        .await?;
        Ok(())
    }

    /// One stored deal conversion.
    pub async fn stored_conversion(
        &self,
        site_id: &str,
        deal_id: &str,
        kind: &str,
    ) -> ApiResult<Option<ConversionEntry>> {
        Ok(self
            .stmt(
                "SELECT deal_id, kind, lead_id, email, revenue, currency, original_revenue, \
                 original_currency, exchange_rate, closed_at, received_at FROM conversions \
                 WHERE site_id = ?1 AND deal_id = ?2 AND kind = ?3",
                &[s(site_id), s(deal_id), s(kind)],
            )?
            .first(None)
            .await?)
    }
}
