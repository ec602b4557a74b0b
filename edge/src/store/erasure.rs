//! SQL of erasure (right to erasure): one D1 batch — one transaction — that removes a lead
//! and everything of its visitors, scrubs its email out of every other stored row, drops
//! its webhook deliveries, leaves its tombstones and records the audit entry. Part of
//! [`crate::store`], so that only the store module knows SQL.
//!
//! What is removed: the events, sessions, queue marks and visitor rows of every visitor id
//! linked to the lead; its deal conversions; its links; the lead row (its identity fields);
//! every webhook delivery about it (pending or sent).
//!
//! What is scrubbed: the lead's email (and its percent-encoded form `%40`) wherever it
//! still appears in rows of *other* visitors — URL, path, referrer, title, event name,
//! props / traits, form values of events; campaign, term, content, source, medium,
//! referrer host, click id and landing path of sessions; name, company and phone of other
//! leads; the email column of other conversions — replaced by [`SCRUBBED`]. Matching is
//! ASCII-case-insensitive: each pass replaces one spelling (`Ann@Example.com`,
//! `ann@example.com`) everywhere in a value, and [`SCRUB_PASSES`] passes run.
//!
//! What is left: tombstones (salted hashes, see `closeloop_core::privacy`) of the email,
//! the lead id and each visitor id, so that no later beacon, import or conversion brings
//! the lead back (see [`Store::insert_batch_queued`] and [`Store::put_conversions`]).

use super::audit::AuditRecord;
use super::{n, s, Store};
use crate::error::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use worker::D1PreparedStatement;

/// What an email found in another visitor's row becomes.
pub const SCRUBBED: &str = "[erased]";
/// Spellings (letter cases) of the email replaced per value: each pass replaces every
/// occurrence of the first spelling it finds.
pub const SCRUB_PASSES: usize = 2;

/// What an erasure removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Erased {
    /// Visitor ids (devices) of the lead.
    pub visitors: i64,
    /// Their events (before and after identification).
    pub events: i64,
    /// Their sessions.
    pub sessions: i64,
    /// The lead's deal conversions.
    pub conversions: i64,
    /// Rows of other visitors, leads and deals the email was scrubbed from.
    pub scrubbed: i64,
    /// Whether the lead itself existed.
    #[serde(skip)]
    pub lead: bool,
}

/// What the erasure must know before it writes: the lead's emails and visitor ids.
#[derive(Debug, Clone, Default)]
pub struct LeadTraces {
    /// Normalised emails: the lead's, and those its deals were sent with.
    pub emails: Vec<String>,
    /// Its visitor ids.
    pub visitors: Vec<String>,
    /// Whether the lead row exists.
    pub lead: bool,
    /// How many deal conversions it has.
    pub conversions: i64,
}

/// One tombstone to leave.
#[derive(Debug, Clone)]
pub struct Tombstone {
    /// The salted hash.
    pub hash: String,
    /// `email`, `lead` or `visitor`.
    pub kind: &'static str,
}

/// `column` with the first spelling of the email `?2` (lower case) replaced everywhere by
/// `?3`, `passes` times over, then the same for its encoded form `?4`.
fn scrub_expr(column: &str) -> String {
    fn pass(x: &str, pattern: &str) -> String {
        format!(
            "(CASE WHEN instr(lower({x}), {pattern}) > 0 THEN replace({x}, \
             substr({x}, instr(lower({x}), {pattern}), length({pattern})), ?3) ELSE {x} END)"
        )
    }
    let mut e = column.to_string();
    for _ in 0..SCRUB_PASSES {
        e = pass(&e, "?2");
    }
    pass(&e, "?4")
}

/// The condition "`columns` hold the email `?2` or its encoded form `?4`".
fn holds(columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| format!("instr(lower({c}), ?2) > 0 OR instr(lower({c}), ?4) > 0"))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// `UPDATE table SET c = scrub(c), ... WHERE site_id = ?1 AND <extra> AND (holds)`.
fn scrub_sql(table: &str, columns: &[&str], extra: &str) -> String {
    let sets: Vec<String> = columns
        .iter()
        .map(|c| format!("{c} = {}", scrub_expr(c)))
        .collect();
    format!(
        "UPDATE {table} SET {} WHERE site_id = ?1 AND {extra} AND ({})",
        sets.join(", "),
        holds(columns)
    )
}

impl Store {
    /// The lead's emails (its own, and those of its deals) and visitor ids, in one round
    /// trip.
    pub async fn lead_traces(&self, site_id: &str, lead_id: &str) -> ApiResult<LeadTraces> {
        #[derive(Deserialize)]
        struct Email {
            email: String,
        }
        #[derive(Deserialize)]
        struct Visitor {
            visitor_id: String,
        }
        #[derive(Deserialize)]
        struct Count {
            n: i64,
        }
        let args = [s(site_id), s(lead_id)];
        let results = self
            .db
            .batch(vec![
                self.stmt(
                    "SELECT email FROM leads WHERE site_id = ?1 AND lead_id = ?2",
                    &args,
                )?,
                self.stmt(
                    "SELECT DISTINCT lower(trim(email)) AS email FROM conversions \
                     WHERE site_id = ?1 AND lead_id = ?2 AND email IS NOT NULL",
                    &args,
                )?,
                self.stmt(
                    "SELECT visitor_id FROM lead_visitors WHERE site_id = ?1 AND lead_id = ?2",
                    &args,
                )?,
                self.stmt(
                    "SELECT count(*) AS n FROM conversions WHERE site_id = ?1 AND lead_id = ?2",
                    &args,
                )?,
            ])
            .await?;
        let own: Vec<Email> = Self::all(results.first())?;
        let mut emails: Vec<String> = own.iter().map(|e| e.email.clone()).collect();
        for e in Self::all::<Email>(results.get(1))? {
            if !e.email.is_empty() && !emails.contains(&e.email) {
                emails.push(e.email);
            }
        }
        Ok(LeadTraces {
            lead: !own.is_empty(),
            emails,
            visitors: Self::all::<Visitor>(results.get(2))?
                .into_iter()
                .map(|v| v.visitor_id)
                .collect(),
            conversions: Self::all::<Count>(results.get(3))?
                .first()
                .map_or(0, |c| c.n),
        })
    }

    /// Erases a lead (see the module docs) in one transaction: its rows, its deliveries,
    /// the email in every other row (`emails`: normalised), with `tombstones` left at
    /// `now` and the audit entry.
    pub async fn erase_lead(
        &self,
        site_id: &str,
        lead_id: &str,
        emails: &[String],
        tombstones: &[Tombstone],
        now: i64,
        audit: &AuditRecord,
    ) -> ApiResult<Erased> {
        let of_lead = "visitor_id IN (SELECT visitor_id FROM lead_visitors \
                       WHERE site_id = ?1 AND lead_id = ?2)";
        let args = [s(site_id), s(lead_id)];
        let mut stmts: Vec<D1PreparedStatement> = Vec::new();
        // 0..=5: the lead's visitors' rows and deals (their counts are the answer)
        for table in ["events", "sessions", "session_queue", "visitors"] {
            stmts.push(self.stmt(
                &format!("DELETE FROM {table} WHERE site_id = ?1 AND {of_lead}"),
                &args,
            )?);
        }
        stmts.push(self.stmt(
            "DELETE FROM conversions WHERE site_id = ?1 AND lead_id = ?2",
            &args,
        )?);
        stmts.push(self.stmt(
            "DELETE FROM lead_visitors WHERE site_id = ?1 AND lead_id = ?2",
            &args,
        )?);
        stmts.push(self.stmt(
            "DELETE FROM leads WHERE site_id = ?1 AND lead_id = ?2",
            &args,
        )?);
        stmts.push(self.stmt(
            "DELETE FROM webhook_outbox WHERE site_id = ?1 AND lead_id = ?2",
            &args,
        )?);
        let fixed = stmts.len();
        // the email in every other row
        let events = [
            "url",
            "path",
            "referrer",
            "title",
            "name",
            "props",
            "form_values",
        ];
        let sessions = [
            "campaign",
            "term",
            "content",
            "source",
            "medium",
            "referrer_host",
            "click_id",
            "landing_path",
        ];
        for email in emails {
            let encoded = email.replace('@', "%40");
            let scrub_args = [s(site_id), s(email), s(SCRUBBED), s(&encoded)];
            stmts.push(self.stmt(&scrub_sql("events", &events, "true"), &scrub_args)?);
            stmts.push(self.stmt(&scrub_sql("sessions", &sessions, "true"), &scrub_args)?);
            stmts.push(self.stmt(
                &scrub_sql("leads", &["name", "company", "phone"], "true"),
                &scrub_args,
            )?);
            stmts.push(self.stmt(&scrub_sql("conversions", &["email"], "true"), &scrub_args)?);
        }
        let scrubs = stmts.len() - fixed;
        // the tombstones (an erasure again only moves their time)
        for t in tombstones {
            stmts.push(self.stmt(
                "INSERT INTO tombstones (site_id, hash, kind, erased_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (site_id, hash) DO UPDATE SET erased_at = excluded.erased_at",
                &[s(site_id), s(&t.hash), s(t.kind), n(now)],
            )?);
        }
        stmts.push(self.audit_stmt(audit)?);
        let results = self.db.batch(stmts).await?;
        let changes = |i: usize| Self::changes(results.get(i));
        let mut scrubbed = 0;
        for i in fixed..fixed + scrubs {
            scrubbed += changes(i)?;
        }
        if results.len() < fixed {
            return Err(ApiError::internal("D1 batch returned fewer results"));
        }
        Ok(Erased {
            events: changes(0)?,
            sessions: changes(1)?,
            // (2: the session queue, 3: visitors)
            conversions: changes(4)?,
            visitors: changes(5)?,
            scrubbed,
            lead: changes(6)? > 0,
        })
    }
}
