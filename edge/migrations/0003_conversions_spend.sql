-- Closing the loop: CRM conversions and marketing spend (issue 6). Only edge/src/store/
-- reads and writes these tables. Money is in integer minor units; times in ms (UTC).

-- One row per deal and stage: `kind` is `customer` (won) or the CRM stage's normalised
-- name (`opportunity`...). (site_id, deal_id, kind) is the idempotency key. `lead_id` is
-- the given lead id, or the id the lead of `email` has (or will have: a conversion for an
-- email no visitor has given yet is kept and attributed once the visitor is identified).
CREATE TABLE conversions (
  site_id           TEXT NOT NULL,
  deal_id           TEXT NOT NULL,
  kind              TEXT NOT NULL,
  lead_id           TEXT NOT NULL,
  email             TEXT,
  revenue           INTEGER NOT NULL,  -- reporting currency (after the exchange rate)
  currency          TEXT NOT NULL,     -- the site's reporting currency
  original_revenue  INTEGER NOT NULL,  -- as sent
  original_currency TEXT NOT NULL,
  exchange_rate     REAL,
  closed_at         INTEGER NOT NULL,
  received_at       INTEGER NOT NULL,
  PRIMARY KEY (site_id, deal_id, kind)
);
CREATE INDEX conversions_site_time ON conversions(site_id, closed_at);
CREATE INDEX conversions_lead ON conversions(site_id, lead_id);

-- Spend per period (days since 1970-01-01 UTC, both ends inclusive), spread evenly over
-- its days when read (core::costs::allocate_days). A re-send of the same period, channel,
-- source and campaign replaces the amount. Missing source / campaign are ''.
CREATE TABLE spend (
  site_id           TEXT NOT NULL,
  first_day         INTEGER NOT NULL,
  last_day          INTEGER NOT NULL,
  channel           TEXT NOT NULL,
  source            TEXT NOT NULL DEFAULT '',
  campaign          TEXT NOT NULL DEFAULT '',
  amount            INTEGER NOT NULL,  -- reporting currency
  currency          TEXT NOT NULL,
  original_amount   INTEGER NOT NULL,
  original_currency TEXT NOT NULL,
  exchange_rate     REAL,
  received_at       INTEGER NOT NULL,
  PRIMARY KEY (site_id, first_day, last_day, channel, source, campaign)
);
CREATE INDEX spend_site_days ON spend(site_id, last_day);

-- Reports select leads created in a range.
CREATE INDEX leads_site_first_seen ON leads(site_id, first_seen);
