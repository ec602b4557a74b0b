//! SQL of ingestion: one request's events, visitor, leads and links, session-queue mark, day
//! counters and tallies, written in one D1 batch (exactly once: `ON CONFLICT (site_id,
//! event_id) DO NOTHING`, `meta.changes` per event). Part of [`crate::store`], so that only
//! the store module knows SQL.

use super::{b, n, opt, optf, s, trust, Store};
use crate::enrich::{Agent, Geo};
use crate::error::{ApiError, ApiResult};
use closeloop_core::identity::LinkMethod;
use closeloop_core::privacy::TombstoneKind;
use serde::Deserialize;
use wasm_bindgen::JsValue;

/// One event row, ready to insert.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// The event's id (the deduplication key within the site).
    pub event_id: String,
    /// The visitor's id.
    pub visitor_id: String,
    /// `pageview`, `form_submit`, `identify` or `track`.
    pub kind: &'static str,
    /// Full URL.
    pub url: String,
    /// URL path.
    pub path: String,
    /// Referrer, when any.
    pub referrer: Option<String>,
    /// Page title.
    pub title: Option<String>,
    /// Custom event name.
    pub name: Option<String>,
    /// Props / traits as JSON.
    pub props: Option<String>,
    /// Form field names as JSON.
    pub form_fields: Option<String>,
    /// Kept form values as JSON.
    pub form_values: Option<String>,
    /// Form id.
    pub form_id: Option<String>,
    /// Device time of creation.
    pub created_at: i64,
    /// Device time of sending.
    pub sent_at: i64,
    /// Edge time of receipt.
    pub received_at: i64,
    /// Skew-corrected time.
    pub derived_ts: i64,
}

/// The daily quotas a beacon's insert checks and counts, on the UTC day the batch was
/// received (so a backdated event counts today): at most `max_visitor_events` events of
/// the visitor and `max_site_events` of the site that day. Each is checked once per
/// batch, against the counts before it (a batch that starts under a quota is kept whole:
/// a quota may be passed by at most one batch, 100 events, per concurrent request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// UTC day number of receipt.
    pub day: i64,
    /// The visitor's quota that day.
    pub max_visitor_events: i64,
    /// The site's cap that day.
    pub max_site_events: i64,
}

/// One request's accepted events with what the edge adds to them: what
/// [`Store::insert_batch`] writes.
#[derive(Debug, Clone, Copy)]
pub struct NewEvents<'a> {
    /// The site.
    pub site_id: &'a str,
    /// The visitor.
    pub visitor_id: &'a str,
    /// The event rows.
    pub rows: &'a [EventRow],
    /// The request's geo.
    pub geo: &'a Geo,
    /// The request's user agent.
    pub agent: &'a Agent,
    /// Leads the events identify.
    pub leads: &'a [LeadRow],
    /// The beacon's daily quotas to check and count; `None` for a trusted import
    /// (neither checked nor counted).
    pub quota: Option<Quota>,
    /// The events the tracker says it dropped (counted when the batch stores something
    /// new, so that a retry is not counted twice).
    pub dropped: i64,
    /// Counters and bad rows to write in the same transaction.
    pub counts: &'a [trust::Count],
    /// See `counts`.
    pub bad_rows: &'a [trust::NewBadRow],
}

/// What [`Store::insert_batch_queued`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    /// Per event row.
    pub stored: Vec<Stored>,
    /// The time of the visitor's latest stored event before the batch.
    pub anchor: Option<i64>,
}

/// What became of one event row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Inserted now.
    New,
    /// Already stored (a retry or a concurrent duplicate).
    AlreadyThere,
    /// Refused: the visitor is over its quota.
    OverQuota,
    /// Refused: the site is over its daily cap.
    OverSiteQuota,
    /// Refused: a tombstone (the visitor's events before its erasure, or an erased
    /// email).
    Erased,
}

/// A lead found in a batch (an identify event or a form submit with an email).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadRow {
    /// Stable id derived from the site and email.
    pub lead_id: String,
    /// Normalised email.
    pub email: String,
    /// Name, when given.
    pub name: Option<String>,
    /// Company, when given.
    pub company: Option<String>,
    /// Phone, when given.
    pub phone: Option<String>,
    /// When the visitor identified (derived_ts).
    pub at: i64,
    /// The identifying event: the batch's earliest for this email (ties: smallest id).
    pub event_id: String,
    /// Every event of the batch that carries this email (refused when it is erased).
    pub event_ids: Vec<String>,
    /// How the link is made (the most trusted of the batch's identifying events).
    pub method: closeloop_core::identity::LinkMethod,
    /// Whether it may join a lead that already has visitors (else it only creates a new
    /// lead: an unverified form submit on a site that verifies identities).
    pub may_join: bool,
}

impl Store {
    /// Stores a batch's events, the visitor and its leads in one transaction. Returns,
    /// per event row, whether it was new, already stored, or refused by a quota.
    pub async fn insert_batch(&self, batch: &NewEvents<'_>) -> ApiResult<Vec<Stored>> {
        Ok(self.insert_batch_with(batch, false).await?.stored)
    }

    /// [`Store::insert_batch`] for `POST /v1/collect`: in the same transaction it also
    /// queues the visitor for sessionisation (`session_queue`, from the batch's earliest
    /// event), counts the batch against the daily quotas and into the site's health, and
    /// reads the time of the visitor's latest stored event before the batch (the anchor
    /// [`crate::ingest::ack_touch`] needs), so the request makes one D1 round trip.
    pub async fn insert_batch_queued(&self, batch: &NewEvents<'_>) -> ApiResult<Inserted> {
        self.insert_batch_with(batch, true).await
    }

    async fn insert_batch_with(&self, batch: &NewEvents<'_>, queue: bool) -> ApiResult<Inserted> {
        let NewEvents {
            site_id,
            visitor_id,
            rows,
            geo,
            agent,
            leads,
            quota,
            dropped,
            counts,
            bad_rows,
        } = *batch;
        let mut tallies = Vec::with_capacity(counts.len() + bad_rows.len());
        for c in counts {
            tallies.push(self.count_stmt(c)?);
        }
        for r in bad_rows {
            tallies.push(self.bad_row_stmt(r)?);
        }
        if rows.is_empty() {
            if !tallies.is_empty() {
                self.db.batch(tallies).await?;
            }
            return Ok(Inserted {
                stored: Vec::new(),
                anchor: None,
            });
        }
        // Tombstones (erasure): an event of an erased visitor made before the erasure, or
        // one carrying an erased email, is refused; a lead whose email is erased is not
        // made again (migration 0011).
        let visitor_grave = self
            .tombstone_of(site_id, TombstoneKind::Visitor, visitor_id)
            .await?;
        let mut lead_graves: Vec<String> = Vec::with_capacity(leads.len());
        for l in leads {
            lead_graves.push(
                self.tombstone_of(site_id, TombstoneKind::Email, &l.email)
                    .await?,
            );
        }
        let grave_of_event = |id: &str| -> Option<&str> {
            leads
                .iter()
                .zip(&lead_graves)
                .find(|(l, _)| l.event_ids.iter().any(|e| e == id))
                .map(|(_, g)| g.as_str())
        };
        // an import checks no quota: a day no counter has and limits never reached
        let q = quota.unwrap_or(Quota {
            day: -1,
            max_visitor_events: 1 << 53,
            max_site_events: 1 << 53,
        });
        let received_at = rows.first().map_or(0, |r| r.received_at);
        let ids =
            serde_json::to_string(&rows.iter().map(|r| r.event_id.as_str()).collect::<Vec<_>>())
                .map_err(ApiError::internal)?;
        let mut stmts = Vec::with_capacity(rows.len() + 10 + 3 * leads.len() + tallies.len());
        for r in rows {
            stmts.push(self.stmt(
                "INSERT INTO events (site_id, event_id, visitor_id, type, url, path, referrer, title, \
                 name, props, form_fields, form_values, form_id, created_at, sent_at, received_at, \
                 derived_ts, country, region, region_code, city, continent, postal_code, timezone, \
                 latitude, longitude, asn, as_org, colo, is_eu, device_type, browser, browser_version, \
                 os, os_version, is_bot, bot_reason, agent_id) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
                 ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, \
                 ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36, ?40, ?41 \
                 WHERE coalesce((SELECT events FROM visitor_days WHERE day = ?37 AND site_id = ?1 \
                        AND visitor_id = ?3), 0) < ?38 \
                   AND coalesce((SELECT n FROM site_stats WHERE site_id = ?1 AND day = ?37 \
                        AND metric = 'accepted'), 0) < ?39 \
                   AND NOT EXISTS (SELECT 1 FROM tombstones WHERE site_id = ?1 AND hash = ?42 \
                        AND erased_at >= ?17) \
                   AND (?43 IS NULL OR NOT EXISTS (SELECT 1 FROM tombstones \
                        WHERE site_id = ?1 AND hash = ?43)) \
                 ON CONFLICT (site_id, event_id) DO NOTHING",
                &[
                    s(site_id),
                    s(&r.event_id),
                    s(&r.visitor_id),
                    s(r.kind),
                    s(&r.url),
                    s(&r.path),
                    opt(r.referrer.as_deref()),
                    opt(r.title.as_deref()),
                    opt(r.name.as_deref()),
                    opt(r.props.as_deref()),
                    opt(r.form_fields.as_deref()),
                    opt(r.form_values.as_deref()),
                    opt(r.form_id.as_deref()),
                    n(r.created_at),
                    n(r.sent_at),
                    n(r.received_at),
                    n(r.derived_ts),
                    opt(geo.country.as_deref()),
                    opt(geo.region.as_deref()),
                    opt(geo.region_code.as_deref()),
                    opt(geo.city.as_deref()),
                    opt(geo.continent.as_deref()),
                    opt(geo.postal_code.as_deref()),
                    opt(geo.timezone.as_deref()),
                    optf(geo.latitude),
                    optf(geo.longitude),
                    geo.asn.map(n).unwrap_or(JsValue::NULL),
                    opt(geo.as_org.as_deref()),
                    opt(geo.colo.as_deref()),
                    b(geo.is_eu),
                    s(&agent.device_type),
                    opt(agent.browser.as_deref()),
                    opt(agent.browser_version.as_deref()),
                    opt(agent.os.as_deref()),
                    opt(agent.os_version.as_deref()),
                    b(agent.is_bot),
                    n(q.day),
                    n(q.max_visitor_events),
                    n(q.max_site_events),
                    opt(agent.bot_reason.as_deref()),
                    opt(agent.source.as_ref().map(|a| a.id.as_str())),
                    s(&visitor_grave),
                    opt(grave_of_event(&r.event_id)),
                ],
            )?);
        }
        // the request's user agent and hints, once per site (re-classification; 0013)
        stmts.extend(super::agents::agent_stmt(
            self,
            site_id,
            agent,
            received_at,
            &ids,
        )?);
        let writes = rows.len();
        let first = rows.iter().map(|r| r.derived_ts).min().unwrap_or(0);
        let last = rows.iter().map(|r| r.derived_ts).max().unwrap_or(0);
        // Everything below happens only for what this request stored: a batch refused by
        // a quota leaves no visitor, lead, link or queue mark behind.
        let added = trust::ADDED_SQL;
        stmts.push(self.stmt(
            &format!(
                "INSERT INTO visitors (site_id, visitor_id, first_seen, last_seen) \
                 SELECT ?1, ?4, ?5, ?6 WHERE {added} > 0 \
                 ON CONFLICT (site_id, visitor_id) DO UPDATE SET \
                 first_seen = min(first_seen, excluded.first_seen), \
                 last_seen = max(last_seen, excluded.last_seen)"
            ),
            &[
                s(site_id),
                s(&ids),
                n(received_at),
                s(visitor_id),
                n(first),
                n(last),
            ],
        )?);
        for (l, grave) in leads.iter().zip(&lead_graves) {
            // a beacon fills only the traits a lead lacks; a server with a key (import,
            // API) overwrites them; an unverified form on a site that verifies identities
            // only creates a lead, it never touches an existing one
            let traits = if !l.may_join {
                "DO NOTHING"
            } else if matches!(l.method, LinkMethod::Import | LinkMethod::Api) {
                "DO UPDATE SET name = coalesce(excluded.name, leads.name), \
                 company = coalesce(excluded.company, leads.company), \
                 phone = coalesce(excluded.phone, leads.phone), \
                 first_event_id = CASE WHEN excluded.first_seen < leads.first_seen THEN NULL \
                   ELSE leads.first_event_id END, \
                 first_path = CASE WHEN excluded.first_seen < leads.first_seen THEN NULL \
                   ELSE leads.first_path END, \
                 first_seen = min(leads.first_seen, excluded.first_seen)"
            } else {
                "DO UPDATE SET name = coalesce(leads.name, excluded.name), \
                 company = coalesce(leads.company, excluded.company), \
                 phone = coalesce(leads.phone, excluded.phone), \
                 first_event_id = CASE WHEN excluded.first_seen < leads.first_seen THEN NULL \
                   ELSE leads.first_event_id END, \
                 first_path = CASE WHEN excluded.first_seen < leads.first_seen THEN NULL \
                   ELSE leads.first_path END, \
                 first_seen = min(leads.first_seen, excluded.first_seen)"
            };
            // only when the identifying event is stored (an event refused — by a quota, a
            // tombstone — makes no lead), and never for an erased email
            let stored =
                "EXISTS (SELECT 1 FROM events e WHERE e.site_id = ?1 AND e.event_id = ?8) \
                 AND NOT EXISTS (SELECT 1 FROM tombstones WHERE site_id = ?1 AND hash = ?9)";
            stmts.push(self.stmt(
                &format!(
                    "INSERT INTO leads (site_id, lead_id, email, name, company, phone, first_seen) \
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE {stored} \
                     ON CONFLICT (site_id, email) {traits}"
                ),
                &[
                    s(site_id),
                    s(&l.lead_id),
                    s(&l.email),
                    opt(l.name.as_deref()),
                    opt(l.company.as_deref()),
                    opt(l.phone.as_deref()),
                    n(l.at),
                    s(&l.event_id),
                    s(grave),
                ],
            )?);
            // The first identity a visitor gives is the one it keeps (a verified identify
            // of the same lead upgrades the link's method). A link that may not join an
            // existing lead is made only while the lead has no visitor.
            let join = if l.may_join {
                ""
            } else {
                " AND NOT EXISTS (SELECT 1 FROM lead_visitors o WHERE o.site_id = ?1 \
                   AND o.lead_id = leads.lead_id AND o.visitor_id <> ?2)"
            };
            stmts.push(self.stmt(
                &format!(
                    "INSERT INTO lead_visitors (site_id, visitor_id, lead_id, linked_at, method, \
                     event_id, received_at) SELECT ?1, ?2, lead_id, ?4, ?5, ?6, ?7 FROM leads \
                     WHERE site_id = ?1 AND email = ?3 AND EXISTS (SELECT 1 FROM events e \
                       WHERE e.site_id = ?1 AND e.event_id = ?6){join} \
                     ON CONFLICT (site_id, visitor_id) DO UPDATE SET method = excluded.method, \
                     event_id = excluded.event_id, received_at = excluded.received_at \
                     WHERE lead_visitors.lead_id = excluded.lead_id \
                     AND excluded.method = 'verified_identify' \
                     AND lead_visitors.method <> 'verified_identify'"
                ),
                &[
                    s(site_id),
                    s(visitor_id),
                    s(&l.email),
                    n(l.at),
                    s(l.method.as_str()),
                    s(&l.event_id),
                    n(received_at),
                ],
            )?);
            // The identifying event's id and page (the pages report's direct conversions,
            // migration 0008): this batch's event when it is stored, is this visitor's, is at
            // the lead's `first_seen`, the visitor is the lead's, and no stored identifying
            // event with a smaller id is there (the upsert above cleared them when it moved
            // `first_seen` earlier).
            stmts.push(self.stmt(
                "UPDATE leads SET first_event_id = ?4, first_path = (SELECT e.path FROM events e \
                 WHERE e.site_id = ?1 AND e.event_id = ?4) \
                 WHERE site_id = ?1 AND email = ?3 AND first_seen = ?5 \
                 AND (first_event_id IS NULL OR first_event_id > ?4) \
                 AND EXISTS (SELECT 1 FROM events e WHERE e.site_id = ?1 AND e.event_id = ?4 \
                   AND e.visitor_id = ?2 AND e.derived_ts = ?5 \
                   AND e.type IN ('form_submit', 'identify')) \
                 AND EXISTS (SELECT 1 FROM lead_visitors v WHERE v.site_id = ?1 \
                   AND v.visitor_id = ?2 AND v.lead_id = leads.lead_id)",
                &[
                    s(site_id),
                    s(visitor_id),
                    s(&l.email),
                    s(&l.event_id),
                    n(l.at),
                ],
            )?);
        }
        if queue {
            stmts.push(self.stmt(
                &format!(
                    "INSERT INTO session_queue (site_id, visitor_id, from_ts, version) \
                     SELECT ?1, ?4, ?5, abs(random() % 9007199254740992) WHERE {added} > 0 \
                     ON CONFLICT (site_id, visitor_id) DO UPDATE SET \
                     from_ts = min(from_ts, excluded.from_ts), version = excluded.version"
                ),
                &[s(site_id), s(&ids), n(received_at), s(visitor_id), n(first)],
            )?);
        }
        if quota.is_some() {
            // the day's counters: the visitor's (its quota), the site's (its cap, and the
            // health's `accepted` with the last time), and the tracker's `dropped`
            stmts.push(self.stmt(
                &format!(
                    "INSERT INTO visitor_days (day, site_id, visitor_id, events) \
                     SELECT ?5, ?1, ?4, c FROM (SELECT {added} AS c) WHERE c > 0 \
                     ON CONFLICT (day, site_id, visitor_id) DO UPDATE SET \
                     events = events + excluded.events"
                ),
                &[s(site_id), s(&ids), n(received_at), s(visitor_id), n(q.day)],
            )?);
            stmts.push(self.stmt(
                &format!(
                    "INSERT INTO site_stats (site_id, day, metric, n, last_at) \
                     SELECT ?1, ?4, ?5, c, ?3 FROM (SELECT {added} AS c) WHERE c > 0 \
                     ON CONFLICT (site_id, day, metric) DO UPDATE SET n = n + excluded.n, \
                     last_at = max(coalesce(last_at, 0), excluded.last_at)"
                ),
                &[
                    s(site_id),
                    s(&ids),
                    n(received_at),
                    n(q.day),
                    s(closeloop_core::health::ACCEPTED),
                ],
            )?);
            if dropped > 0 {
                stmts.push(self.stmt(
                    &format!(
                        "INSERT INTO site_stats (site_id, day, metric, n) \
                         SELECT ?1, ?4, ?5, ?6 WHERE {added} > 0 \
                         ON CONFLICT (site_id, day, metric) DO UPDATE SET n = n + excluded.n"
                    ),
                    &[
                        s(site_id),
                        s(&ids),
                        n(received_at),
                        n(q.day),
                        s(closeloop_core::health::DROPPED),
                        n(dropped),
                    ],
                )?);
            }
        }
        stmts.extend(tallies);
        let graves = serde_json::to_string(&lead_graves).map_err(ApiError::internal)?;
        // After the writes, in the same transaction: the day's counts (after this batch)
        // and what it added (so the counts before it, which every insert compared with),
        // and the time of the visitor's latest event before the batch.
        stmts.push(self.stmt(
            &format!(
                "SELECT coalesce((SELECT events FROM visitor_days WHERE day = ?5 AND site_id = ?1 \
                   AND visitor_id = ?4), 0) AS visitor_n, \
                 coalesce((SELECT n FROM site_stats WHERE site_id = ?1 AND day = ?5 \
                   AND metric = 'accepted'), 0) AS site_n, \
                 {added} AS added, \
                 (SELECT max(derived_ts) FROM events WHERE site_id = ?1 AND visitor_id = ?4 \
                   AND derived_ts < ?6) AS ts, \
                 (SELECT erased_at FROM tombstones WHERE site_id = ?1 AND hash = ?7) AS erased_at, \
                 (SELECT json_group_array(hash) FROM tombstones WHERE site_id = ?1 \
                   AND hash IN (SELECT value FROM json_each(?8))) AS erased_emails"
            ),
            &[
                s(site_id),
                s(&ids),
                n(received_at),
                s(visitor_id),
                n(q.day),
                n(first),
                s(&visitor_grave),
                s(&graves),
            ],
        )?);
        let results = self.db.batch(stmts).await?;
        #[derive(Deserialize)]
        struct After {
            visitor_n: i64,
            site_n: i64,
            added: i64,
            ts: Option<i64>,
            erased_at: Option<i64>,
            erased_emails: Option<String>,
        }
        let after = match results.last() {
            Some(r) => r.results::<After>()?.into_iter().next(),
            None => None,
        }
        .ok_or_else(|| ApiError::internal("D1 batch returned fewer results than statements"))?;
        let anchor = if queue { after.ts } else { None };
        let changed: Vec<bool> = results
            .iter()
            .take(writes)
            .map(|r| Ok(r.meta()?.and_then(|m| m.changes).unwrap_or(0) > 0))
            .collect::<ApiResult<_>>()?;
        if changed.len() != rows.len() {
            return Err(ApiError::internal(
                "D1 batch returned fewer results than statements",
            ));
        }
        // Every insert compared the counts before the batch; only when one was at its
        // limit can an unchanged row have been refused (rare): which of them are stored
        // tells "already there" from "refused"; one more read.
        let (site_full, visitor_full) = if quota.is_some() {
            (
                after.site_n - after.added >= q.max_site_events,
                after.visitor_n - after.added >= q.max_visitor_events,
            )
        } else {
            (false, false)
        };
        // A tombstone may have refused some (rare too): the visitor's erasure time and the
        // erased emails among the batch's.
        let erased_emails: Vec<String> = after
            .erased_emails
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default();
        let erased = |row: &EventRow| {
            after.erased_at.is_some_and(|at| row.derived_ts <= at)
                || grave_of_event(&row.event_id)
                    .is_some_and(|g| erased_emails.iter().any(|e| e == g))
        };
        let suspects = changed
            .iter()
            .zip(rows)
            .any(|(c, r)| !c && (site_full || visitor_full || erased(r)));
        let present = if suspects {
            self.present_events(site_id, rows).await?
        } else {
            std::collections::HashSet::new()
        };
        let stored = changed
            .iter()
            .zip(rows)
            .map(|(changed, row)| {
                if *changed {
                    Stored::New
                } else if present.contains(&row.event_id) {
                    Stored::AlreadyThere
                } else if erased(row) {
                    Stored::Erased
                } else if !(site_full || visitor_full) {
                    Stored::AlreadyThere
                } else if site_full {
                    Stored::OverSiteQuota
                } else {
                    Stored::OverQuota
                }
            })
            .collect();
        Ok(Inserted { stored, anchor })
    }

    /// Which of the rows' events are stored.
    async fn present_events(
        &self,
        site_id: &str,
        rows: &[EventRow],
    ) -> ApiResult<std::collections::HashSet<String>> {
        #[derive(Deserialize)]
        struct Present {
            event_id: String,
        }
        let mut present = std::collections::HashSet::new();
        // D1 allows 100 bound parameters per statement
        for chunk in rows.chunks(90) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("?{}", i + 2)).collect();
            let sql = format!(
                "SELECT event_id FROM events WHERE site_id = ?1 AND event_id IN ({})",
                marks.join(", ")
            );
            let mut args = vec![s(site_id)];
            args.extend(chunk.iter().map(|r| s(&r.event_id)));
            for p in self.stmt(&sql, &args)?.all().await?.results::<Present>()? {
                present.insert(p.event_id);
            }
        }
        Ok(present)
    }
}
