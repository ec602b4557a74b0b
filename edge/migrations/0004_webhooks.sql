-- Webhooks (issue 6): a site's registered URLs and the outbox of their deliveries. Only
-- edge/src/store/webhooks.rs reads and writes these tables.

-- A registered URL. `secret` signs the deliveries (HMAC-SHA256), so it is kept as is.
-- `lead_cursor` / `customer_cursor`: the highest rowid of `leads` / `conversions` already
-- turned into deliveries (set to the current highest at registration: only what happens
-- after it is sent).
CREATE TABLE webhooks (
  site_id          TEXT NOT NULL,
  id               TEXT NOT NULL,
  url              TEXT NOT NULL,
  events           TEXT NOT NULL,              -- JSON array: lead.created, customer.created
  secret           TEXT NOT NULL,
  created_at       INTEGER NOT NULL,
  lead_cursor      INTEGER NOT NULL DEFAULT 0,
  customer_cursor  INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (site_id, id)
);

-- One delivery per (webhook, event); `id` is the receiver's idempotency key. Retried with
-- backoff (`next_at`) until delivered or `attempts` reaches the limit (`failed_at`).
CREATE TABLE webhook_outbox (
  id            TEXT PRIMARY KEY,
  site_id       TEXT NOT NULL,
  webhook_id    TEXT NOT NULL,
  type          TEXT NOT NULL,                 -- lead.created | customer.created
  lead_id       TEXT NOT NULL,
  deal_id       TEXT,
  created_at    INTEGER NOT NULL,
  attempts      INTEGER NOT NULL DEFAULT 0,
  next_at       INTEGER NOT NULL,
  delivered_at  INTEGER,
  failed_at     INTEGER,
  last_error    TEXT
);
CREATE INDEX webhook_outbox_due ON webhook_outbox(next_at) WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX webhook_outbox_lead ON webhook_outbox(site_id, lead_id);
