//! SQL of webhooks: registration, the outbox filled from new leads and won deals, and the
//! deliveries due. Part of [`crate::store`], so that only the store module knows SQL.
//!
//! The outbox is filled without touching ingestion: each webhook keeps the highest rowid
//! of `leads` and `conversions` it has turned into deliveries, and [`Store::enqueue_webhooks`]
//! (run by the cron trigger and after each conversion write) inserts one delivery per newer
//! lead / won deal and moves the cursors, in one transaction.

use super::reporting::ConversionEntry;
use super::{n, opt, s, Store};
use crate::error::ApiResult;
use serde::Deserialize;

/// A registered webhook.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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

/// A delivery that is due, with its webhook's URL and secret.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DueDelivery {
    /// Delivery id.
    pub id: String,
    /// Site.
    pub site_id: String,
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
}

impl Store {
    /// Registers a webhook; its cursors start at the current highest rows, so only leads
    /// and deals from now on are sent.
    pub async fn create_webhook(&self, site_id: &str, w: &WebhookRow) -> ApiResult<()> {
        self.stmt(
            "INSERT INTO webhooks (site_id, id, url, events, secret, created_at, lead_cursor, \
             customer_cursor) VALUES (?1, ?2, ?3, ?4, ?5, ?6, \
             coalesce((SELECT max(rowid) FROM leads), 0), \
             coalesce((SELECT max(rowid) FROM conversions), 0))",
            &[
                s(site_id),
                s(&w.id),
                s(&w.url),
                s(&w.events),
                s(&w.secret),
                n(w.created_at),
            ],
        )?
        .run()
        .await?;
        Ok(())
    }

    /// Turns leads and won deals newer than each webhook's cursors into deliveries (all
    /// sites, or one), and moves the cursors, in one transaction.
    pub async fn enqueue_webhooks(&self, site_id: Option<&str>, now: i64) -> ApiResult<()> {
        let args = [opt(site_id), n(now)];
        let stmts = vec![
            self.stmt(
                "INSERT INTO webhook_outbox (id, site_id, webhook_id, type, lead_id, deal_id, \
                 created_at, next_at) \
                 SELECT 'wd_' || w.id || '_l_' || l.lead_id, w.site_id, w.id, 'lead.created', \
                   l.lead_id, NULL, ?2, ?2 \
                 FROM webhooks w JOIN leads l ON l.site_id = w.site_id AND l.rowid > w.lead_cursor \
                 WHERE (?1 IS NULL OR w.site_id = ?1) \
                   AND EXISTS (SELECT 1 FROM json_each(w.events) e WHERE e.value = 'lead.created') \
                 ON CONFLICT (id) DO NOTHING",
                &args,
            )?,
            self.stmt(
                "INSERT INTO webhook_outbox (id, site_id, webhook_id, type, lead_id, deal_id, \
                 created_at, next_at) \
                 SELECT 'wd_' || w.id || '_c_' || c.deal_id, w.site_id, w.id, 'customer.created', \
                   c.lead_id, c.deal_id, ?2, ?2 \
                 FROM webhooks w JOIN conversions c ON c.site_id = w.site_id \
                   AND c.rowid > w.customer_cursor AND c.kind = 'customer' \
                 WHERE (?1 IS NULL OR w.site_id = ?1) \
                   AND EXISTS (SELECT 1 FROM json_each(w.events) e WHERE e.value = 'customer.created') \
                 ON CONFLICT (id) DO NOTHING",
                &args,
            )?,
            self.stmt(
                "UPDATE webhooks SET \
                   lead_cursor = max(lead_cursor, coalesce((SELECT max(rowid) FROM leads), 0)), \
                   customer_cursor = max(customer_cursor, \
                     coalesce((SELECT max(rowid) FROM conversions), 0)) \
                 WHERE (?1 IS NULL OR site_id = ?1) AND ?2 IS NOT NULL",
                &args,
            )?,
        ];
        self.db.batch(stmts).await?;
        Ok(())
    }

    /// Deliveries due at `now` (all sites, or one), oldest first, at most `limit`.
    pub async fn due_deliveries(
        &self,
        site_id: Option<&str>,
        now: i64,
        limit: i64,
    ) -> ApiResult<Vec<DueDelivery>> {
        Ok(self
            .stmt(
                "SELECT o.id, o.site_id, o.type, o.lead_id, o.deal_id, o.created_at, o.attempts, \
                   w.url, w.secret \
                 FROM webhook_outbox o JOIN webhooks w ON w.site_id = o.site_id AND w.id = o.webhook_id \
                 WHERE o.delivered_at IS NULL AND o.failed_at IS NULL AND o.next_at <= ?2 \
                   AND (?1 IS NULL OR o.site_id = ?1) \
                 ORDER BY o.next_at, o.id LIMIT ?3",
                &[opt(site_id), n(now), n(limit)],
            )?
            .all()
            .await?
            .results()?)
    }

    /// Records an attempt: delivered, or failed with `error` and retried at `retry_at`
    /// (`None`: given up).
    pub async fn record_attempt(
        &self,
        id: &str,
        now: i64,
        error: Option<&str>,
        retry_at: Option<i64>,
    ) -> ApiResult<()> {
        let stmt = match error {
            None => self.stmt(
                "UPDATE webhook_outbox SET attempts = attempts + 1, delivered_at = ?2, \
                 last_error = NULL WHERE id = ?1",
                &[s(id), n(now)],
            )?,
            Some(e) => self.stmt(
                "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = ?3, \
                 next_at = coalesce(?4, next_at), \
                 failed_at = CASE WHEN ?4 IS NULL THEN ?2 ELSE NULL END WHERE id = ?1",
                &[
                    s(id),
                    n(now),
                    s(e),
                    retry_at.map(n).unwrap_or(wasm_bindgen::JsValue::NULL),
                ],
            )?,
        };
        stmt.run().await?;
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

    /// Drops the undelivered deliveries of a lead (after its erasure).
    pub async fn forget_lead_deliveries(&self, site_id: &str, lead_id: &str) -> ApiResult<()> {
        self.stmt(
            "DELETE FROM webhook_outbox WHERE site_id = ?1 AND lead_id = ?2",
            &[s(site_id), s(lead_id)],
        )?
        .run()
        .await?;
        Ok(())
    }
}
