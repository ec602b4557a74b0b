-- Issue 12, the management side: key scopes and life cycle, the audit log, an outbox
-- that cannot skip or repeat, tombstones of erased leads, per-site privacy settings and
-- the deployment's own random salts. Only edge/src/store* reads and writes these tables.

-- Keys get a public id (`key_` + the first 16 hex digits of the hash: an existing key
-- keeps working and gets an id without anyone knowing the key), the key's first 12
-- characters for people to recognise it (NULL for keys made before this migration: only
-- their hash was ever kept), a third scope `manage` (erasure, webhooks, the site's audit
-- log), when they were last used (written at most once an hour per key), and when they
-- were revoked. SQLite cannot change a CHECK constraint in place: the table is rebuilt.
CREATE TABLE keys_new (
  hash          TEXT PRIMARY KEY,                 -- SHA-256 (hex) of the key
  id            TEXT NOT NULL UNIQUE,
  site_id       TEXT NOT NULL REFERENCES sites(id),
  kind          TEXT NOT NULL CHECK (kind IN ('read', 'write', 'manage')),
  prefix        TEXT,
  created_at    INTEGER NOT NULL,
  last_used_at  INTEGER,
  revoked_at    INTEGER,
  replaced_by   TEXT                              -- the id of the key a rotation made
);
INSERT INTO keys_new (hash, id, site_id, kind, prefix, created_at)
  SELECT hash, 'key_' || substr(hash, 1, 16), site_id, kind, NULL, created_at FROM keys;
DROP TABLE keys;
ALTER TABLE keys_new RENAME TO keys;
CREATE INDEX keys_site ON keys(site_id, created_at);

-- Every management action, in the same transaction as the action itself. `actor` is
-- `admin` (the ADMIN_TOKEN) or `key:<id>` (a manage key); `target` the key, webhook or
-- tombstone acted on; `detail` a JSON object (never a secret, a key or an email).
CREATE TABLE audit_log (
  seq      INTEGER PRIMARY KEY AUTOINCREMENT,
  site_id  TEXT NOT NULL,
  at       INTEGER NOT NULL,
  actor    TEXT NOT NULL,
  action   TEXT NOT NULL,
  target   TEXT,
  detail   TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_site ON audit_log(site_id, seq);

-- What an erasure leaves: salted hashes (core's `privacy::tombstone_hash`) of the lead's
-- email, its lead id and its visitor ids. A beacon, import or conversion carrying a
-- tombstoned email or lead is refused; an event of a tombstoned visitor made before the
-- erasure (`derived_ts <= erased_at`: a queued beacon arriving late) is refused. Lifted
-- only explicitly (`DELETE /v1/sites/{site}/tombstones/{email}`).
CREATE TABLE tombstones (
  site_id    TEXT NOT NULL,
  hash       TEXT NOT NULL,
  kind       TEXT NOT NULL CHECK (kind IN ('email', 'lead', 'visitor')),
  erased_at  INTEGER NOT NULL,
  PRIMARY KEY (site_id, hash)
) WITHOUT ROWID;

-- Random values made once per deployment: `tombstone_salt` (tombstone hashes) and
-- `ip_salt` (the per-client rate-limit key when no RATE_LIMIT_SALT secret is set). The
-- worker inserts any that is missing at first use as well.
CREATE TABLE deployment_secrets (
  name        TEXT PRIMARY KEY,
  value       TEXT NOT NULL,
  created_at  INTEGER NOT NULL
);
INSERT INTO deployment_secrets (name, value, created_at) VALUES
  ('tombstone_salt', lower(hex(randomblob(32))), CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
  ('ip_salt', lower(hex(randomblob(32))), CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));

-- A site's privacy settings (core's `privacy::PrivacySettings`): the query keys kept in
-- stored URLs besides UTM tags and click ids, and the geo fields kept besides country,
-- region, city, continent and the EU flag.
ALTER TABLE sites ADD COLUMN privacy TEXT NOT NULL DEFAULT '{}';

-- Webhooks: a secret rotation keeps the previous secret signing beside the new one until
-- `previous_secret_until`, so a receiver can switch without losing deliveries.
ALTER TABLE webhooks ADD COLUMN previous_secret TEXT;
ALTER TABLE webhooks ADD COLUMN previous_secret_until INTEGER;

-- Deliveries are claimed before they are sent (`lease_id`, until `lease_until`), so two
-- runs at once (cron, `webhooks:deliver`) never send the same delivery.
ALTER TABLE webhook_outbox ADD COLUMN lease_id TEXT;
ALTER TABLE webhook_outbox ADD COLUMN lease_until INTEGER;
CREATE INDEX webhook_outbox_site_due ON webhook_outbox(site_id, next_at)
  WHERE delivered_at IS NULL AND failed_at IS NULL;

-- Until now the cron filled the outbox from `rowid > cursor`; those tables have no
-- AUTOINCREMENT, so erasing the newest lead let the next lead reuse its rowid and never be
-- announced. First the deliveries the old cursors had not made yet ...
INSERT INTO webhook_outbox (id, site_id, webhook_id, type, lead_id, deal_id, created_at, next_at)
  SELECT 'wd_' || w.id || '_l_' || l.lead_id, w.site_id, w.id, 'lead.created', l.lead_id, NULL,
    CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
    CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
  FROM webhooks w JOIN leads l ON l.site_id = w.site_id AND l.rowid > w.lead_cursor
  WHERE EXISTS (SELECT 1 FROM json_each(w.events) e WHERE e.value = 'lead.created')
  ON CONFLICT (id) DO NOTHING;
INSERT INTO webhook_outbox (id, site_id, webhook_id, type, lead_id, deal_id, created_at, next_at)
  SELECT 'wd_' || w.id || '_c_' || c.deal_id, w.site_id, w.id, 'customer.created', c.lead_id,
    c.deal_id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
    CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
  FROM webhooks w JOIN conversions c ON c.site_id = w.site_id AND c.rowid > w.customer_cursor
    AND c.kind = 'customer'
  WHERE EXISTS (SELECT 1 FROM json_each(w.events) e WHERE e.value = 'customer.created')
  ON CONFLICT (id) DO NOTHING;

-- ... then the outbox is filled in the very transaction that writes the lead or the won
-- deal, wherever that happens (a beacon, an import, the conversions API): a new lead or
-- deal is announced exactly once to every webhook registered at that moment, and no
-- cursor is left to skip anything. (`lead_cursor` / `customer_cursor` are no longer read.)
CREATE TRIGGER leads_announce AFTER INSERT ON leads
BEGIN
  INSERT OR IGNORE INTO webhook_outbox (id, site_id, webhook_id, type, lead_id, deal_id, created_at, next_at)
    SELECT 'wd_' || w.id || '_l_' || NEW.lead_id, w.site_id, w.id, 'lead.created', NEW.lead_id, NULL,
      CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
      CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM webhooks w
    WHERE w.site_id = NEW.site_id
      AND EXISTS (SELECT 1 FROM json_each(w.events) e WHERE e.value = 'lead.created');
END;

CREATE TRIGGER conversions_announce AFTER INSERT ON conversions
WHEN NEW.kind = 'customer'
BEGIN
  INSERT OR IGNORE INTO webhook_outbox (id, site_id, webhook_id, type, lead_id, deal_id, created_at, next_at)
    SELECT 'wd_' || w.id || '_c_' || NEW.deal_id, w.site_id, w.id, 'customer.created', NEW.lead_id,
      NEW.deal_id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
      CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM webhooks w
    WHERE w.site_id = NEW.site_id
      AND EXISTS (SELECT 1 FROM json_each(w.events) e WHERE e.value = 'customer.created');
END;
