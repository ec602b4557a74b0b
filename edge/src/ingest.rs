//! The stages of `POST /v1/collect`: validate → dedupe → enrich → classify → store, each a
//! plain function; [`crate::collect::collect`] carries them out against the request and the
//! store (with what a beacon may do, [`crate::trust`]).
//!
//! - **validate** and in-batch **dedupe**: `closeloop_core::validate` (the envelope
//!   refuses the whole batch; each event is accepted, rejected or a repeat).
//! - **enrich**: [`crate::enrich`] once per request (geo from `request.cf`, user agent,
//!   bot flag); the IP address is never read.
//! - **store** exactly once: [`Store::insert_batch`] (one D1 batch; `meta.changes` per
//!   event tells new from already stored).
//! - **classify and sessionise**, deferred: the batch queues its visitor
//!   (`session_queue`, in the same transaction as its events), and [`flush_sessions`]
//!   later cuts the visitor's stored events from the start of the session the earliest
//!   queued event falls in again into sessions with `closeloop_core::session::sessionize`
//!   and [`crate::touch`], and replaces those sessions. It runs from the cron trigger and
//!   before every read that needs sessions (reports, leads, webhooks), so answers are
//!   always up to date while a beacon costs one D1 round trip. Sessions are built only
//!   from stored events, so a tracker cannot fake them.
//! - **acknowledge**: the answer's touch is computed from the batch alone
//!   ([`ack_touch`]) with the time of the visitor's previous stored event.
//! - **leads**: an `identify` event or a form submit with an email creates or updates the
//!   lead (normalised email) and links the visitor to it.

use crate::enrich::{self, Agent, Geo};
use crate::error::{ApiError, ApiResult};
use crate::store::{EventRow, LeadRow, QueuedVisitor, SessionRow, SiteConfig, Store, StoredEvent};
use crate::touch::{self, Touch};
use crate::trust::LeadSource;
use closeloop_core::identity::normalize_email;
use closeloop_core::session::{sessionize, Arrival, SessionEvent};
use closeloop_core::validate::{BatchError, Validated};
use closeloop_core::wire::{EventKind, TouchAck};
use sha2::{Digest, Sha256};
use worker::Request;

/// Most stored events read back to rebuild one visitor's sessions.
const SESSION_WINDOW_LIMIT: i64 = 5_000;
/// Queued visitors sessionised per D1 round trip pair (read windows, write sessions).
pub const FLUSH_CHUNK: i64 = 100;

impl From<BatchError> for ApiError {
    fn from(e: BatchError) -> Self {
        ApiError::new(e.http_status(), e.code.as_str(), e.message)
    }
}

/// The rows to insert for the accepted events of a batch.
pub fn rows_from(v: &Validated) -> Vec<EventRow> {
    let received_at = v.options.received_at;
    v.events
        .iter()
        .map(|ve| {
            let e = &ve.event;
            let path = url::Url::parse(&e.url)
                .map(|u| u.path().to_string())
                .unwrap_or_else(|_| "/".into());
            let mut row = EventRow {
                event_id: e.id.clone(),
                visitor_id: v.visitor_id.clone(),
                kind: e.kind.name(),
                url: e.url.clone(),
                path,
                referrer: e.referrer.clone().filter(|r| !r.is_empty()),
                title: None,
                name: None,
                props: None,
                form_fields: None,
                form_values: None,
                form_id: None,
                created_at: e.created_at,
                sent_at: v.sent_at,
                received_at,
                derived_ts: ve.derived_ts,
            };
            match &e.kind {
                EventKind::Pageview { title } => row.title = title.clone(),
                EventKind::FormSubmit { form } => {
                    row.form_fields = serde_json::to_string(&form.fields).ok();
                    row.form_values = serde_json::to_string(&form.values).ok();
                    row.form_id = form.id.clone().or_else(|| form.name.clone());
                }
                EventKind::Identify { traits, .. } => {
                    row.props = serde_json::to_string(traits).ok()
                }
                EventKind::Track { name, props } => {
                    row.name = Some(name.clone());
                    row.props = serde_json::to_string(props).ok();
                }
            }
            row
        })
        .collect()
}

/// A lead's stable id: `ld_` and the first 24 hex digits of SHA-256(site, email).
pub fn lead_id(site_id: &str, email: &str) -> String {
    let digest = hex::encode(Sha256::digest(format!("{site_id}\n{email}").as_bytes()));
    format!("ld_{}", digest.get(..24).unwrap_or(&digest))
}

/// The value of the first key that is, or contains, one of `names`.
fn field<'a>(
    values: &'a std::collections::BTreeMap<String, String>,
    names: &[&str],
) -> Option<&'a String> {
    names
        .iter()
        .find_map(|n| values.get(*n))
        .or_else(|| {
            values
                .iter()
                .find(|(k, _)| names.iter().any(|n| k.to_ascii_lowercase().contains(n)))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.trim().is_empty())
}

/// The leads a batch's accepted events identify (identify events, form submits with an
/// email value), in batch order, each with how its link is made (`source`, see
/// [`LeadSource::link`]; the most trusted of the batch's events of that email).
pub fn leads_from(site_id: &str, v: &Validated, source: LeadSource) -> Vec<LeadRow> {
    let mut out: Vec<LeadRow> = Vec::new();
    for ve in &v.events {
        let (method, may_join) = source.link(ve);
        let (raw_email, values) = match &ve.event.kind {
            EventKind::Identify { email, traits } => (Some(email.clone()), traits),
            EventKind::FormSubmit { form } => (
                field(&form.values, &["email", "e-mail"]).cloned(),
                &form.values,
            ),
            _ => continue,
        };
        let Some(email) = raw_email.as_deref().and_then(normalize_email) else {
            continue;
        };
        let name = field(values, &["name", "full_name", "fullname"]).cloned();
        let company = field(values, &["company", "organisation", "organization"]).cloned();
        let phone = field(values, &["phone", "tel"]).cloned();
        if let Some(l) = out.iter_mut().find(|l| l.email == email) {
            l.event_ids.push(ve.event.id.clone());
            l.name = name.or(l.name.take());
            l.company = company.or(l.company.take());
            l.phone = phone.or(l.phone.take());
            if crate::trust::rank(method) > crate::trust::rank(l.method) {
                l.method = method;
                l.may_join = may_join;
            }
            // the identifying event: the earliest, ties to the smallest id
            if (ve.derived_ts, ve.event.id.as_str()) < (l.at, l.event_id.as_str()) {
                l.at = ve.derived_ts;
                l.event_id = ve.event.id.clone();
            }
            continue;
        }
        out.push(LeadRow {
            lead_id: lead_id(site_id, &email),
            email,
            name,
            company,
            phone,
            at: ve.derived_ts,
            event_id: ve.event.id.clone(),
            event_ids: vec![ve.event.id.clone()],
            method,
            may_join,
        });
    }
    out
}

/// Hosts of a site's own pages (never a referral): [`crate::trust::site_hosts`].
pub fn site_hosts(site: &SiteConfig) -> Vec<String> {
    crate::trust::site_hosts(site)
}

/// Cuts a visitor's stored events (time order) into sessions with their touches.
pub fn sessions_from(events: &[StoredEvent], site: &SiteConfig) -> Vec<SessionRow> {
    let hosts = site_hosts(site);
    let input: Vec<SessionEvent<Touch>> = events
        .iter()
        .map(|e| SessionEvent {
            id: e.event_id.clone(),
            at: e.derived_ts,
            path: e.path.clone(),
            arrival: touch::arrival(&e.url, e.referrer.as_deref(), e.kind != "pageview", &hosts),
        })
        .collect();
    sessionize(&input, |host| {
        touch::is_excluded(host, &hosts, &site.excluded_referrers)
    })
    .into_iter()
    .filter_map(|s| {
        let first = events.get(*s.events.first()?)?;
        let members: Vec<&StoredEvent> = s.events.iter().filter_map(|i| events.get(*i)).collect();
        Some(SessionRow {
            session_id: format!("s_{}", first.event_id),
            started_at: s.start,
            ended_at: s.end,
            touch: s.touch.unwrap_or_else(Touch::direct),
            landing_path: s.landing_path,
            pageviews: members.iter().filter(|e| e.kind == "pageview").count() as i64,
            is_bot: first.is_bot != 0,
            event_ids: members.iter().map(|e| e.event_id.clone()).collect(),
            entrance: members
                .iter()
                .find(|e| e.kind == "pageview")
                .map(|e| e.event_id.clone()),
            exit: members
                .iter()
                .rev()
                .find(|e| e.kind == "pageview")
                .map(|e| (e.path.clone(), e.derived_ts)),
        })
    })
    .collect()
}

/// The raw `request.cf` object as JSON (`Null` when absent).
fn cf_json(req: &Request) -> serde_json::Value {
    let cf = js_sys::Reflect::get(req.inner(), &wasm_bindgen::JsValue::from_str("cf")).ok();
    cf.filter(|v| v.is_object())
        .and_then(|v| js_sys::JSON::stringify(&v).ok())
        .and_then(|s| s.as_string())
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// The request's geo and agent (user agent, Client Hints, Cloudflare's bot signals; the
/// IP is never read).
pub fn enrich_request(req: &Request) -> (Geo, std::rc::Rc<Agent>) {
    let cf = cf_json(req);
    let agent = enrich::agent_of_request(req.headers(), &cf);
    (enrich::geo_from_cf(&cf), agent)
}

/// The touch the answer to a batch tells the tracker: the touch of the batch's last
/// session when that session starts inside the batch (a new arrival, or a return after
/// the inactivity timeout), `None` when the batch only goes on with the visitor's
/// current session (the tracker keeps the touch it has). `anchor` is the time of the
/// visitor's latest stored event before the batch. Computed from the batch alone, so a
/// retry gets the same answer as the first send, and nothing waits for the deferred
/// sessionisation. A batch older than what is stored also answers `None`.
pub fn ack_touch<'a>(
    rows: impl IntoIterator<Item = &'a EventRow>,
    anchor: Option<i64>,
    site: &SiteConfig,
) -> Option<TouchAck> {
    let hosts = site_hosts(site);
    let mut input: Vec<SessionEvent<Touch>> = Vec::new();
    if let Some(at) = anchor {
        input.push(SessionEvent {
            id: String::new(),
            at,
            path: String::new(),
            arrival: Arrival::Internal,
        });
    }
    input.extend(rows.into_iter().map(|r| SessionEvent {
        id: r.event_id.clone(),
        at: r.derived_ts,
        path: r.path.clone(),
        arrival: touch::arrival(&r.url, r.referrer.as_deref(), r.kind != "pageview", &hosts),
    }));
    input.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
    let sessions = sessionize(&input, |host| {
        touch::is_excluded(host, &hosts, &site.excluded_referrers)
    });
    let last = sessions.last()?;
    let first = input.get(*last.events.first()?)?;
    if anchor.is_some() && first.id.is_empty() {
        return None;
    }
    let t = last.touch.clone().unwrap_or_else(Touch::direct);
    Some(TouchAck {
        channel: t.channel,
        source: t.source,
        medium: t.medium,
        campaign: t.campaign,
    })
}

/// What one [`flush_sessions`] did.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Flushed {
    /// Visitors whose sessions were rebuilt.
    pub visitors: usize,
    /// Sessions written.
    pub sessions: usize,
    /// Whether visitors are still queued (the round limit was reached).
    pub more: bool,
}

/// D1 statements one invocation's flush may use (of
/// [`crate::store::D1_STATEMENTS_PER_INVOCATION`]): the rest is left to the read that
/// follows it, or to the cron's webhook deliveries.
pub const FLUSH_STATEMENTS: u32 = 600;
/// A visitor whose sessions need more statements than the flush's share is written alone
/// when the invocation stays under this many.
const FLUSH_STATEMENTS_HARD: u32 = 950;

/// The D1 statements writing one visitor's rebuilt sessions takes
/// (`Store::write_queued_sessions`): the delete, one insert per session, its events'
/// updates (90 ids each), and two for the queue.
pub fn write_cost(sessions: &[SessionRow]) -> u32 {
    let per_session: usize = sessions
        .iter()
        .map(|x| 1 + x.event_ids.len().div_ceil(90))
        .sum();
    (3 + per_session) as u32
}

/// How many of `costs` (in order) fit in `left` statements: the longest prefix, or the
/// first alone when it fits in `hard` (so that no visitor is left queued for ever), or none.
pub fn fitting(costs: &[u32], left: u32, hard: u32) -> usize {
    let mut used = 0u32;
    let mut n = 0;
    for c in costs {
        if used + c > left {
            break;
        }
        used += c;
        n += 1;
    }
    if n == 0 && costs.first().is_some_and(|c| *c <= hard) {
        1
    } else {
        n
    }
}

/// Runs the deferred sessionisation: takes queued visitors (of `site`, or of every site),
/// [`FLUSH_CHUNK`] at a time, rebuilds their sessions from their stored events and writes
/// them, for at most `rounds` chunks and within [`FLUSH_STATEMENTS`] D1 statements of the
/// invocation (counted by the store): a larger backlog stays queued for the next run.
/// Two D1 round trips per chunk.
pub async fn flush_sessions(
    store: &Store,
    site: Option<&SiteConfig>,
    rounds: usize,
) -> ApiResult<Flushed> {
    let mut done = Flushed::default();
    let mut configs: std::collections::HashMap<String, Option<SiteConfig>> = Default::default();
    if let Some(s) = site {
        configs.insert(s.id.clone(), Some(s.clone()));
    }
    for _ in 0..rounds {
        // reading k visitors' windows costs 1 + k statements; writing each at least 3
        let left = FLUSH_STATEMENTS.saturating_sub(store.statements());
        let chunk = FLUSH_CHUNK.min(i64::from(left.saturating_sub(2) / 4));
        if chunk < 1 {
            done.more = true;
            return Ok(done);
        }
        let queued = store
            .queued_visitors(site.map(|s| s.id.as_str()), chunk)
            .await?;
        if queued.is_empty() {
            return Ok(done);
        }
        let windows = store.queued_windows(&queued, SESSION_WINDOW_LIMIT).await?;
        let mut writes: Vec<(QueuedVisitor, i64, Vec<SessionRow>)> = Vec::new();
        for (q, events) in queued.into_iter().zip(windows) {
            if !configs.contains_key(&q.site_id) {
                let config = store.site(&q.site_id).await?;
                configs.insert(q.site_id.clone(), config);
            }
            // a site deleted meanwhile: nothing to build, the mark just goes
            let sessions = match configs.get(&q.site_id) {
                Some(Some(config)) => sessions_from(&events, config),
                _ => Vec::new(),
            };
            // the window starts at the session holding `from_ts` (sessions start at an
            // event, so none starts between that session's start and the window's first
            // event): replacing from the first event on is exact
            let from = events
                .first()
                .map_or(q.from_ts, |e| e.derived_ts.min(q.from_ts));
            writes.push((q, from, sessions));
        }
        // what fits in the share (plus one markers statement per site); the others stay
        // queued, untouched, for the next run
        let sites = writes
            .iter()
            .map(|(q, _, _)| q.site_id.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len() as u32;
        let costs: Vec<u32> = writes.iter().map(|(_, _, x)| write_cost(x)).collect();
        let used = store.statements() + sites + 1;
        let take = fitting(
            &costs,
            FLUSH_STATEMENTS.saturating_sub(used),
            FLUSH_STATEMENTS_HARD.saturating_sub(used),
        );
        if take < writes.len() {
            done.more = true;
            writes.truncate(take);
        }
        if writes.is_empty() {
            worker::console_warn!(
                "a queued visitor's sessions need more D1 statements than one run may use"
            );
            return Ok(done);
        }
        done.visitors += writes.len();
        done.sessions += writes.iter().map(|(_, _, x)| x.len()).sum::<usize>();
        store.write_queued_sessions(&writes).await?;
        if done.more {
            return Ok(done);
        }
    }
    done.more = !store
        .queued_visitors(site.map(|s| s.id.as_str()), 1)
        .await?
        .is_empty();
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use closeloop_core::validate::{validate, ValidateOptions};

    fn site() -> SiteConfig {
        SiteConfig::for_tests()
    }

    fn ev(id: &str, kind: &str, url: &str, referrer: Option<&str>, at: i64) -> StoredEvent {
        StoredEvent {
            event_id: id.into(),
            kind: kind.into(),
            url: url.into(),
            path: url::Url::parse(url)
                .map(|u| u.path().to_string())
                .unwrap_or_default(),
            referrer: referrer.map(String::from),
            derived_ts: at,
            is_bot: 0,
        }
    }

    fn row(id: &str, url: &str, referrer: Option<&str>, at: i64) -> EventRow {
        let e = ev(id, "pageview", url, referrer, at);
        EventRow {
            event_id: e.event_id,
            visitor_id: "v".into(),
            kind: "pageview",
            url: e.url,
            path: e.path,
            referrer: e.referrer,
            title: None,
            name: None,
            props: None,
            form_fields: None,
            form_values: None,
            form_id: None,
            created_at: at,
            sent_at: at,
            received_at: at,
            derived_ts: at,
        }
    }

    const MIN: i64 = 60_000;

    #[test]
    fn the_answer_tells_the_touch_a_batch_starts() {
        let launch =
            "https://example.com/?utm_source=newsletter&utm_medium=email&utm_campaign=launch";
        // a first visit from the newsletter (nothing stored before): Email / launch
        let rows = [row("ev-a1", launch, None, 10 * MIN)];
        let t = ack_touch(&rows, None, &site()).expect("a touch");
        assert_eq!(
            (t.channel.as_str(), t.source.as_str(), t.campaign.as_deref()),
            ("Email", "newsletter", Some("launch"))
        );
        // a page read 5 minutes after the previous stored event, no referrer from
        // outside: the session goes on, nothing to tell
        let rows = [row(
            "ev-a2",
            "https://example.com/pricing",
            Some("https://example.com/"),
            15 * MIN,
        )];
        assert_eq!(ack_touch(&rows, Some(10 * MIN), &site()), None);
        // the same page 31 minutes after: a new direct session
        let rows = [row("ev-a3", "https://example.com/pricing", None, 41 * MIN)];
        let t = ack_touch(&rows, Some(10 * MIN), &site()).expect("a touch");
        assert_eq!(
            (t.channel.as_str(), t.source.as_str()),
            ("Direct", "(direct)")
        );
        // 2 minutes after, but from Google search: a new session from Organic Search
        let rows = [row(
            "ev-a4",
            "https://example.com/blog",
            Some("https://www.google.com/"),
            12 * MIN,
        )];
        let t = ack_touch(&rows, Some(10 * MIN), &site()).expect("a touch");
        assert_eq!(
            (t.channel.as_str(), t.source.as_str()),
            ("Organic Search", "google")
        );
        // a batch that goes on and then arrives from the newsletter: the last session's
        let rows = [
            row(
                "ev-a5",
                "https://example.com/a",
                Some("https://example.com/"),
                11 * MIN,
            ),
            row("ev-a6", launch, None, 13 * MIN),
            row(
                "ev-a7",
                "https://example.com/b",
                Some("https://example.com/"),
                14 * MIN,
            ),
        ];
        let t = ack_touch(&rows, Some(10 * MIN), &site()).expect("a touch");
        assert_eq!(t.campaign.as_deref(), Some("launch"));
        // a retry of the first batch answers as the first send did
        let rows = [row("ev-a1", launch, None, 10 * MIN)];
        assert_eq!(
            ack_touch(&rows, None, &site()).map(|t| t.channel),
            Some("Email".to_string())
        );
        // nothing kept (all over the quota): nothing to tell
        assert_eq!(ack_touch(&[], Some(10 * MIN), &site()), None);
    }

    #[test]
    fn two_pageviews_from_a_newsletter_make_one_session() {
        // scenario: landing with UTM tags, then a click to /pricing 40 s later
        let events = vec![
            ev(
                "ev-00000001",
                "pageview",
                "https://example.com/?utm_source=newsletter&utm_medium=email&utm_campaign=launch",
                None,
                1_000,
            ),
            ev(
                "ev-00000002",
                "pageview",
                "https://example.com/pricing",
                Some("https://example.com/"),
                41_000,
            ),
        ];
        let s = sessions_from(&events, &site());
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].session_id, "s_ev-00000001");
        assert_eq!(s[0].pageviews, 2);
        assert_eq!(s[0].touch.channel, "Email");
        assert_eq!(s[0].touch.campaign.as_deref(), Some("launch"));
        assert_eq!(s[0].landing_path, "/");
        assert_eq!(
            s[0].event_ids,
            vec!["ev-00000001".to_string(), "ev-00000002".to_string()]
        );
        assert_eq!(s[0].entrance.as_deref(), Some("ev-00000001"));
    }

    #[test]
    fn the_entrance_is_the_first_page_view_in_time_then_id_order() {
        // a session that begins with a custom event; two page views at the same time later:
        // the smaller id is the entrance, whatever order they were read in
        let events = vec![
            ev("ev-3", "track", "https://example.com/a", None, 1_000),
            ev("ev-9", "pageview", "https://example.com/b", None, 2_000),
            ev("ev-5", "pageview", "https://example.com/c", None, 2_000),
        ];
        let s = sessions_from(&events, &site());
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].entrance.as_deref(), Some("ev-5"));
        // and the larger id is the exit (the last page view in the same order)
        assert_eq!(s[0].exit, Some(("/b".to_string(), 2_000)));
        // no page view at all: no entrance, no exit
        let s = sessions_from(&events[..1], &site());
        assert_eq!(s[0].entrance, None);
        assert_eq!(s[0].exit, None);
    }

    #[test]
    fn a_gap_over_30_minutes_starts_a_direct_session() {
        let events = vec![
            ev(
                "ev-00000001",
                "pageview",
                "https://example.com/?utm_source=x&utm_medium=email",
                None,
                0,
            ),
            ev(
                "ev-00000002",
                "pageview",
                "https://example.com/a",
                None,
                30 * 60 * 1000 + 1,
            ),
        ];
        let s = sessions_from(&events, &site());
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].touch, Touch::direct());
    }

    #[test]
    fn leads_come_from_identify_and_email_fields() {
        let body = br#"{"site_id":"demo","visitor_id":"v-12345678","sent_at":1764000000500,"events":[
          {"id":"ev-00000001","type":"form_submit","created_at":1764000000000,"url":"https://example.com/demo",
           "form":{"fields":["work_email","name","password"],"values":{"work_email":" Ann@Example.COM ","name":"Ann"}}},
          {"id":"ev-00000002","type":"identify","created_at":1764000000100,"url":"https://example.com/demo",
           "email":"bob@example.com","traits":{"company":"Acme"}},
          {"id":"ev-00000003","type":"pageview","created_at":1764000000200,"url":"https://example.com/"}]}"#;
        let v = validate(body, &ValidateOptions::collect(1_764_000_001_000)).unwrap();
        let leads = leads_from("demo", &v, LeadSource::Beacon { verifies: false });
        assert_eq!(leads.len(), 2);
        assert_eq!(leads[0].email, "ann@example.com");
        assert_eq!(leads[0].name.as_deref(), Some("Ann"));
        // derived_ts = received_at - (sent_at - created_at) = 1_764_000_001_000 - 500
        assert_eq!(leads[0].at, 1_764_000_000_500);
        assert_eq!(leads[1].email, "bob@example.com");
        assert_eq!(leads[1].company.as_deref(), Some("Acme"));
        assert_eq!(leads[0].event_id, "ev-00000001");
        assert_eq!(leads[1].event_id, "ev-00000002");
        assert_eq!(leads[0].lead_id, lead_id("demo", "ann@example.com"));
        assert_ne!(leads[0].lead_id, leads[1].lead_id);
        let rows = rows_from(&v);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].path, "/demo");
        assert_eq!(rows[0].form_id, None);
        assert_eq!(rows[2].derived_ts, 1_764_000_000_700);
    }

    #[test]
    fn a_flush_writes_what_fits_its_statement_share() {
        let session = |events: usize| SessionRow {
            session_id: "s".into(),
            started_at: 0,
            ended_at: 0,
            touch: Touch::direct(),
            landing_path: "/".into(),
            pageviews: 0,
            is_bot: false,
            event_ids: vec![String::new(); events],
            entrance: None,
            exit: None,
        };
        // delete + queue (3) + one insert and one update per 90 events per session
        assert_eq!(write_cost(&[]), 3);
        assert_eq!(write_cost(&[session(1)]), 5);
        assert_eq!(write_cost(&[session(90), session(91)]), 3 + 2 + 3);
        assert_eq!(fitting(&[5, 5, 5], 12, 100), 2);
        assert_eq!(fitting(&[5, 5, 5], 15, 100), 3);
        // a visitor bigger than the share goes alone when it fits the hard bound
        assert_eq!(fitting(&[40, 5], 30, 50), 1);
        assert_eq!(fitting(&[60, 5], 30, 50), 0);
        assert_eq!(fitting(&[], 30, 50), 0);
    }
}
