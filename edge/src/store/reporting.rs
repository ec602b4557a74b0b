//! SQL of the closing-the-loop API: conversions, spend, and the rows the report engine
//! (`closeloop_core::report`) reads. Part of [`crate::store`], so that only the store
//! module knows SQL.
//!
//! What a report reads for `[from, to)` with a lookback `L` (nothing more):
//! - the timeseries ([`Store::report_data`]): sessions that started in `[from, to)`, and the
//!   sessions of *leads* that started in `[from - L, from)` (the only older sessions a
//!   conversion in range can be credited to);
//! - the sources report ([`Store::sources_data`]): the traffic (visitors, sessions, page
//!   views per row) counted in SQL as core's `Counted::of` defines it, and only the sessions
//!   of leads that started in `[from - L, to)` (the touches, and the leads' journeys). SQL
//!   counts; it never credits: attribution stays in `closeloop_core::report`;
//! - the pages report ([`Store::pages_data`]): nothing in it is credited (an assist is a
//!   count), so SQL counts every figure per page as core's `PageCount::of` defines it, from
//!   the page views' own flags (`session_bot`, `entrance`) and the leads' identifying page
//!   (migration 0008): views and entrances in `[from, to)`, the assists of the conversions
//!   in range (their leads' page views in `[T - L, T)`), direct conversions. Only one row
//!   per page travels;
//! - lead conversions (a lead's first identification) and deal conversions with `T` in
//!   `[from, to)`;
//! - spend periods that overlap the range's days.
//!
//! Segments are read from the session row itself (its `country` and `device_type` are those
//! of its first event, migration 0006), and the sources report's counting queries read the
//! covering session indexes only; distinct visitors and `data_driven`'s journey steps come
//! from the sessions' markers (migration 0007: each non-bot session's previous session of
//! its visitor, overall and with the same row key) when bots are left out and no segment
//! filter applies: then one pass over the range's sessions counts the whole sources
//! traffic. The pages report without a segment reads covering event and lead indexes only
//! (migration 0008), with one it joins the segment's sessions. Long answers (the leads'
//! sessions and lead creations) come packed as JSON text, 1000 rows per string.

use super::{n, opt, s, Store};
use crate::error::{ApiError, ApiResult};
use closeloop_core::costs::allocate_days;
use closeloop_core::report::{
    ConversionRow, Counted, Coverage, GroupBy, PageCount, PageViewRow, Query, ReportData,
    SessionRow, SpendRow, StepCount, TrafficRow,
};
use closeloop_core::time::MS_PER_DAY;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use wasm_bindgen::JsValue;
use worker::D1PreparedStatement;

/// Rows written per D1 batch (each row is two statements).
const ROWS_PER_BATCH: usize = 50;

/// A deal conversion ready to store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversionEntry {
    /// The CRM's deal id.
    pub deal_id: String,
    /// `customer` or the stage's name.
    pub kind: String,
    /// The lead it belongs to.
    pub lead_id: String,
    /// The lead's email, when given.
    pub email: Option<String>,
    /// Revenue in minor units of the reporting currency.
    pub revenue: i64,
    /// The reporting currency.
    pub currency: String,
    /// Revenue as sent (minor units of `original_currency`).
    pub original_revenue: i64,
    /// Currency as sent.
    pub original_currency: String,
    /// The rate from `original_currency` to `currency`, when one was needed.
    pub exchange_rate: Option<f64>,
    /// Close (or stage) time, ms.
    pub closed_at: i64,
    /// When it was received, ms.
    pub received_at: i64,
}

/// What [`Store::put_conversions`] did with one entry.
#[derive(Debug, Clone, PartialEq)]
pub enum PutConversion {
    /// Stored now.
    Created,
    /// The deal (and stage) was stored before: this is the stored version.
    Existing(ConversionEntry),
    /// Refused: its lead was erased (a tombstone); nothing stored.
    Erased,
}

impl ConversionEntry {
    /// Whether two versions of a deal say the same thing (the receipt time aside).
    pub fn same_values(&self, other: &ConversionEntry) -> bool {
        self.lead_id == other.lead_id
            && self.revenue == other.revenue
            && self.original_revenue == other.original_revenue
            && self.original_currency == other.original_currency
            && self.closed_at == other.closed_at
    }
}

/// A spend period ready to store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpendEntry {
    /// First day (days since 1970-01-01 UTC).
    pub first_day: i64,
    /// Last day, inclusive.
    pub last_day: i64,
    /// Channel group.
    pub channel: String,
    /// Source, `''` when none.
    pub source: String,
    /// Campaign, `''` when none.
    pub campaign: String,
    /// Amount in minor units of the reporting currency.
    pub amount: i64,
    /// The reporting currency.
    pub currency: String,
    /// Amount as sent.
    pub original_amount: i64,
    /// Currency as sent.
    pub original_currency: String,
    /// The rate used, when one was needed.
    pub exchange_rate: Option<f64>,
    /// When it was received, ms.
    pub received_at: i64,
}

/// One lead in the leads list.
#[derive(Debug, Clone, Deserialize)]
pub struct LeadListRow {
    /// Lead id.
    pub lead_id: String,
    /// Normalised email.
    pub email: String,
    /// Name.
    pub name: Option<String>,
    /// Company.
    pub company: Option<String>,
    /// First identification, ms.
    pub first_seen: i64,
    /// Visitor ids linked.
    pub visitors: i64,
    /// Won deals.
    pub customers: i64,
    /// Revenue of won deals (minor units).
    pub revenue: i64,
    /// First touch: channel.
    pub f_channel: Option<String>,
    /// First touch: source.
    pub f_source: Option<String>,
    /// First touch: medium.
    pub f_medium: Option<String>,
    /// First touch: campaign.
    pub f_campaign: Option<String>,
    /// Latest touch: channel.
    pub l_channel: Option<String>,
    /// Latest touch: source.
    pub l_source: Option<String>,
    /// Latest touch: medium.
    pub l_medium: Option<String>,
    /// Latest touch: campaign.
    pub l_campaign: Option<String>,
    /// The CRM stages its deals reached (`customer` included), as a JSON array in the
    /// order they were first reached.
    #[serde(default)]
    pub stages: Option<String>,
}

/// The leads list's search.
#[derive(Debug, Clone, Default)]
pub struct LeadSearch {
    /// Part of the email.
    pub email: Option<String>,
    /// A source some session of the lead had.
    pub source: Option<String>,
    /// A channel some session of the lead had.
    pub channel: Option<String>,
    /// A stage some deal of the lead reached (`lead`: every lead).
    pub stage: Option<String>,
    /// First identification at or after (ms).
    pub from: i64,
    /// First identification before (ms).
    pub to: i64,
    /// Page size.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

#[derive(Deserialize)]
struct DbSession {
    id: String,
    visitor: String,
    lead: Option<String>,
    started_at: i64,
    channel: String,
    source: String,
    medium: String,
    campaign: Option<String>,
    landing_page: Option<String>,
    pageviews: i64,
    is_bot: i64,
    country: Option<String>,
    device: Option<String>,
}

impl From<DbSession> for SessionRow {
    fn from(d: DbSession) -> Self {
        SessionRow {
            id: d.id,
            visitor: d.visitor,
            lead: d.lead,
            started_at: d.started_at,
            channel: d.channel,
            source: d.source,
            medium: d.medium,
            campaign: d.campaign,
            landing_page: d.landing_page.unwrap_or_else(|| "/".into()),
            pageviews: u64::try_from(d.pageviews).unwrap_or(0),
            is_bot: d.is_bot != 0,
            country: d.country,
            device: d.device,
        }
    }
}

#[derive(Deserialize)]
struct DbConversion {
    id: String,
    lead: String,
    kind: String,
    at: i64,
    revenue: i64,
    lead_at: Option<i64>,
    opportunity_at: Option<i64>,
    page: Option<String>,
    session: Option<String>,
}

impl From<DbConversion> for ConversionRow {
    fn from(d: DbConversion) -> Self {
        ConversionRow {
            id: d.id,
            lead: d.lead,
            kind: d.kind,
            at: d.at,
            revenue: d.revenue,
            lead_at: d.lead_at,
            opportunity_at: d.opportunity_at,
            page: d.page,
            session: d.session,
        }
    }
}

#[derive(Deserialize)]
struct DbSpend {
    first_day: i64,
    last_day: i64,
    channel: String,
    source: String,
    campaign: String,
    amount: i64,
}

/// Columns of a session row as the engine reads it (`s` = sessions, `lv` = lead_visitors;
/// country and device are those of the session's first event, stored on the session).
const SESSION_COLUMNS: &str = "s.session_id AS id, s.visitor_id AS visitor, lv.lead_id AS lead, \
     s.started_at AS started_at, s.channel AS channel, s.source AS source, s.medium AS medium, \
     s.campaign AS campaign, s.landing_path AS landing_page, s.pageviews AS pageviews, \
     s.is_bot AS is_bot, s.country AS country, s.device_type AS device";

const SESSION_JOINS: &str = "FROM sessions s \
     LEFT JOIN lead_visitors lv ON lv.site_id = s.site_id AND lv.visitor_id = s.visitor_id";

/// The sessions that count for a report and are in its segment (`s` = sessions). Binds:
/// ?5 include_bots (0/1), ?6 country, ?7 device, ?8 channel, ?9 source, ?10 campaign,
/// ?11 landing page (NULL: no filter); core's `Filters::matches`: ASCII case-insensitive
/// but the landing page, a missing campaign is `(not set)`.
const SEGMENT: &str = "(?5 = 1 OR s.is_bot = 0) \
     AND (?6 IS NULL OR s.country = ?6 COLLATE NOCASE) \
     AND (?7 IS NULL OR s.device_type = ?7 COLLATE NOCASE) \
     AND (?8 IS NULL OR s.channel = ?8 COLLATE NOCASE) \
     AND (?9 IS NULL OR s.source = ?9 COLLATE NOCASE) \
     AND (?10 IS NULL OR coalesce(s.campaign, '(not set)') = ?10 COLLATE NOCASE) \
     AND (?11 IS NULL OR coalesce(s.landing_path, '/') = ?11)";

/// Rows per string of a [`packed`] answer: D1 refuses a string over 2 MB, so the rows go
/// in chunks (a session row is well under 1 KB).
const PACKED_ROWS: usize = 1_000;

/// `select` answered in rows whose `rows` column holds up to [`PACKED_ROWS`] rows as a
/// JSON array of arrays of the `columns` (in the order of the fields of the struct they
/// are read into, see [`Store::unpack`]): D1 hands the worker a few strings instead of an
/// object per row, which matters for the tens of thousands of lead sessions and page
/// views a report reads. No rows: no answer row.
fn packed(select: &str, columns: &[&str]) -> String {
    // each row becomes its JSON text first, so the grouping sorts one short column
    format!(
        "SELECT '[' || group_concat(row_, ',') || ']' AS rows FROM (SELECT json_array({}) \
         AS row_, (row_number() OVER () - 1) / {PACKED_ROWS} AS chunk_ FROM ({select})) \
         GROUP BY chunk_ ORDER BY chunk_",
        columns.join(", ")
    )
}

/// The fields of [`DbTouch`], in order (names that [`SESSION_COLUMNS`] gives them).
const TOUCH_FIELDS: [&str; 11] = [
    "id",
    "visitor",
    "lead",
    "started_at",
    "channel",
    "source",
    "medium",
    "campaign",
    "landing_page",
    "country",
    "device",
];

/// A lead's session as the counted reports read it (`sources_counted`, `pages_counted`):
/// what attribution, grouping, segments and assists look at ([`touches_sql`] leaves the
/// touch fields the query does not read NULL). Its visitor and page views are not read
/// there (the traffic comes counted), and bots are already left out by the SQL unless asked
/// for (then every session counts, flag or not).
#[derive(Deserialize)]
struct DbTouch {
    id: String,
    visitor: Option<String>,
    lead: Option<String>,
    started_at: i64,
    channel: String,
    source: Option<String>,
    medium: Option<String>,
    campaign: Option<String>,
    landing_page: Option<String>,
    country: Option<String>,
    device: Option<String>,
}

/// The leads' sessions in `[from - lookback, to)` (bots only when asked) as [`DbTouch`]
/// rows, with only the columns `query` reads: the id, lead, start and channel always (order,
/// attribution, `data_driven`), the grouping's column and the filtered ones, the visitor for
/// `data_driven` (its chain takes the leads' visitors' steps out of every visitor's); the
/// others are NULL (a session row the query never looks at them in).
fn touches_sql(query: &Query) -> String {
    let f = &query.filters;
    let g = query.group_by;
    let column = |needed: bool, sql: &str, name: &str| {
        if needed {
            format!("{sql} AS {name}")
        } else {
            format!("NULL AS {name}")
        }
    };
    let columns = [
        column(
            g == GroupBy::Source || f.source.is_some(),
            "s.source",
            "source",
        ),
        column(g == GroupBy::Medium, "s.medium", "medium"),
        column(
            g == GroupBy::Campaign || f.campaign.is_some(),
            "s.campaign",
            "campaign",
        ),
        column(
            g == GroupBy::LandingPage || f.landing_page.is_some(),
            "s.landing_path",
            "landing_page",
        ),
        column(f.country.is_some(), "s.country", "country"),
        column(f.device.is_some(), "s.device_type", "device"),
    ];
    let visitor = column(query.model.needs_chain(), "s.visitor_id", "visitor");
    format!(
        "SELECT s.session_id AS id, {visitor}, lv.lead_id AS lead, s.started_at AS started_at, \
         s.channel AS channel, {} FROM lead_visitors lv CROSS JOIN sessions s \
         ON s.site_id = lv.site_id AND s.visitor_id = lv.visitor_id \
         AND s.started_at >= ?4 AND s.started_at < ?3 \
         WHERE lv.site_id = ?1 AND (?5 = 1 OR s.is_bot = 0)",
        columns.join(", ")
    )
}

impl From<DbTouch> for SessionRow {
    fn from(d: DbTouch) -> Self {
        SessionRow {
            id: d.id,
            visitor: d.visitor.unwrap_or_default(),
            lead: d.lead,
            started_at: d.started_at,
            channel: d.channel,
            source: d.source.unwrap_or_default(),
            medium: d.medium.unwrap_or_default(),
            campaign: d.campaign,
            landing_page: d.landing_page.unwrap_or_else(|| "/".into()),
            pageviews: 0,
            is_bot: false,
            country: d.country,
            device: d.device,
        }
    }
}

/// The fields of [`DbConversion`], in order (the names the conversion columns give them).
const CONVERSION_FIELDS: [&str; 9] = [
    "id",
    "lead",
    "kind",
    "at",
    "revenue",
    "lead_at",
    "opportunity_at",
    "page",
    "session",
];

/// A session's row key under `group_by` (core's `GroupBy` rule) as SQL over `s`.
fn key_sql(group_by: GroupBy) -> &'static str {
    match group_by {
        GroupBy::Channel => "s.channel",
        GroupBy::Source => "s.source",
        GroupBy::Medium => "s.medium",
        GroupBy::Campaign => "coalesce(s.campaign, '(not set)')",
        GroupBy::LandingPage => "coalesce(s.landing_path, '/')",
    }
}

/// A lead conversion: the lead's first identification, with the page and session of the
/// identifying event (stored on the lead by ingest, migration 0008).
const LEAD_CONVERSION_COLUMNS: &str = "'lead:' || l.lead_id AS id, l.lead_id AS lead, \
     'lead' AS kind, l.first_seen AS at, 0 AS revenue, l.first_seen AS lead_at, \
     NULL AS opportunity_at, l.first_path AS page, \
     (SELECT e.session_id FROM events e WHERE e.site_id = l.site_id \
        AND e.event_id = l.first_event_id) AS session";

/// A lead conversion without its page and session (the sources report needs neither):
/// only the lead and its creation time travel, [`lead_conversion`] makes the row.
#[derive(Deserialize)]
struct DbLeadCreated {
    lead: String,
    at: i64,
}

/// The conversion of a lead's creation, as [`LEAD_CONVERSION_COLUMNS`] writes it (without
/// page and session).
fn lead_conversion(l: DbLeadCreated) -> ConversionRow {
    ConversionRow {
        id: format!("lead:{}", l.lead),
        kind: "lead".into(),
        at: l.at,
        revenue: 0,
        lead_at: Some(l.at),
        opportunity_at: None,
        page: None,
        session: None,
        lead: l.lead,
    }
}

/// The touch fields that all of a sources row's sessions share (`None`: they differ), for
/// the rows' `channel`, `source`, `medium` and `campaign` (a campaign may be shared as
/// `Some(None)`: none of them has one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowDims {
    /// The row key.
    pub key: String,
    /// Shared channel.
    pub channel: Option<String>,
    /// Shared source.
    pub source: Option<String>,
    /// Shared medium.
    pub medium: Option<String>,
    /// Shared campaign (or shared absence of one).
    pub campaign: Option<Option<String>>,
}

/// What a sources report reads: the leads' sessions, conversions and spend (core's
/// `sources_counted`), the traffic counted in SQL, and the rows' shared touch fields.
#[derive(Debug, Clone, Default)]
pub struct SourcesData {
    /// Sessions of leads in `[from - lookback, to)`, conversions in range, spend.
    pub leads: ReportData,
    /// Traffic per row, distinct visitors, anonymous journeys (`data_driven` only).
    pub counted: Counted,
    /// Per row key (rows with sessions), the touch fields its sessions share.
    pub dims: Vec<RowDims>,
}

/// The pages report's views and entrances per path (?1 site, ?2 from, ?3 to, ?5
/// include_bots; with `segment`, ?6–?11 the filters of [`SEGMENT`]): page views with a time
/// in `[from, to)` whose session counts (and is in the segment), and those flagged as their
/// session's entrance.
///
/// Without a segment, from the `events_pages` index alone: the site's distinct paths are
/// walked in it (a loose index scan, one seek per path, whatever the range), and each path's
/// range of `derived_ts` is counted there (no sort, no table row; a range of a few days on a
/// long history reads only its own entries). `session_bot <= ?5`: page views of non-bot
/// sessions, or of every session with `include_bots` (a page view in no session yet has a
/// NULL flag and never counts). With a segment: the sessions in it that started in the
/// range, and those that started before and ended in or after it (`sessions_site_end`),
/// each joined to its page views in the range (`events_session`).
fn page_views_sql(segment: bool) -> String {
    if !segment {
        return "WITH RECURSIVE p(path) AS ( \
             SELECT (SELECT min(e.path) FROM events e INDEXED BY events_pages \
               WHERE e.site_id = ?1 AND e.type = 'pageview') \
             UNION ALL \
             SELECT (SELECT min(e.path) FROM events e INDEXED BY events_pages \
               WHERE e.site_id = ?1 AND e.type = 'pageview' AND e.path > p.path) \
             FROM p WHERE p.path IS NOT NULL), \
           counted AS MATERIALIZED (SELECT p.path AS path, \
             (SELECT json_array(count(*), coalesce(sum(e.entrance), 0)) \
               FROM events e INDEXED BY events_pages WHERE e.site_id = ?1 \
               AND e.type = 'pageview' AND e.path = p.path AND e.derived_ts >= ?2 \
               AND e.derived_ts < ?3 AND e.session_bot <= ?5) AS c \
             FROM p WHERE p.path IS NOT NULL) \
           SELECT path, json_extract(c, '$[0]') AS views, json_extract(c, '$[1]') AS entrances \
           FROM counted WHERE json_extract(c, '$[0]') > 0"
            .to_string();
    }
    format!(
        "SELECT e.path AS path, count(*) AS views, sum(e.entrance) AS entrances FROM ( \
           SELECT s.session_id FROM sessions s WHERE s.site_id = ?1 AND s.started_at >= ?2 \
             AND s.started_at < ?3 AND {SEGMENT} \
           UNION ALL \
           SELECT s.session_id FROM sessions s INDEXED BY sessions_site_end \
             WHERE s.site_id = ?1 AND s.ended_at >= ?2 AND s.started_at < ?2 AND {SEGMENT}) x \
         CROSS JOIN events e INDEXED BY events_session ON e.site_id = ?1 \
           AND e.session_id = x.session_id AND e.type = 'pageview' AND e.derived_ts >= ?2 \
           AND e.derived_ts < ?3 \
         GROUP BY e.path"
    )
}

/// The pages report's assists per path (?1 site, ?2 from, ?3 to, ?4 the lookback in ms,
/// ?5 include_bots; with `segment`, ?6–?11 the filters): for each conversion with `T` in
/// `[from, to)` (a lead's creation, on its form page; a deal conversion of kind `customer`
/// or `lead`, with no page; core's rule, kinds compared ASCII case-insensitively), the
/// distinct paths of its lead's page views (any visitor linked to the lead) at a time in
/// `[T - lookback, T)`, in counting sessions (of the segment), its own page left out: per
/// path the assisted leads and customers and the customers' revenue.
///
/// The conversions' visitors are sorted by visitor id first (`LIMIT -1` keeps that order
/// in the materialised list), so that the `events_visitor_time` index, which holds every
/// column read, is walked in its own order; the distinct (conversion, path) pairs are keyed
/// by the conversion's rowid (negative for a deal).
fn page_assists_sql(segment: bool) -> String {
    let (join, filter) = if segment {
        (
            "CROSS JOIN sessions s ON s.site_id = ?1 AND s.session_id = e.session_id",
            format!("AND {SEGMENT}"),
        )
    } else {
        ("", String::new())
    };
    format!(
        "WITH conv(k, lead, at, page) AS ( \
           SELECT l.rowid, l.lead_id, l.first_seen, l.first_path FROM leads l \
             WHERE l.site_id = ?1 AND l.first_seen >= ?2 AND l.first_seen < ?3 \
           UNION ALL \
           SELECT -c.rowid, c.lead_id, c.closed_at, NULL FROM conversions c \
             WHERE c.site_id = ?1 AND c.closed_at >= ?2 AND c.closed_at < ?3 \
             AND (c.kind = 'customer' COLLATE NOCASE OR c.kind = 'lead' COLLATE NOCASE)), \
         cv AS MATERIALIZED (SELECT conv.k AS k, conv.at AS at, conv.page AS page, \
           v.visitor_id AS visitor FROM conv CROSS JOIN lead_visitors v \
           ON v.site_id = ?1 AND v.lead_id = conv.lead ORDER BY v.visitor_id LIMIT -1), \
         a(k, path) AS (SELECT DISTINCT cv.k, e.path FROM cv \
           CROSS JOIN events e INDEXED BY events_visitor_time ON e.site_id = ?1 \
             AND e.visitor_id = cv.visitor AND e.derived_ts >= cv.at - ?4 \
             AND e.derived_ts < cv.at {join} \
           WHERE e.type = 'pageview' AND e.session_bot <= ?5 AND e.path IS NOT cv.page \
           {filter}) \
         SELECT a.path AS path, \
           count(*) FILTER (WHERE a.k > 0 OR c.kind = 'lead' COLLATE NOCASE) AS leads, \
           count(*) FILTER (WHERE c.kind = 'customer' COLLATE NOCASE) AS customers, \
           coalesce(sum(c.revenue) FILTER (WHERE c.kind = 'customer' COLLATE NOCASE), 0) \
             AS revenue \
         FROM a LEFT JOIN conversions c ON a.k < 0 AND c.rowid = -a.k GROUP BY a.path"
    )
}

/// The pages report's direct conversions per path (?1 site, ?2 from, ?3 to; with
/// `segment`, ?5 include_bots and ?6–?11 the filters): the leads created in `[from, to)`
/// per page of their identifying event (deal conversions have no page); with a segment,
/// only those whose identifying event's session is in it.
fn page_direct_sql(segment: bool) -> String {
    if !segment {
        return "SELECT l.first_path AS path, count(*) AS n FROM leads l \
             WHERE l.site_id = ?1 AND l.first_seen >= ?2 AND l.first_seen < ?3 \
             AND l.first_path IS NOT NULL GROUP BY l.first_path"
            .to_string();
    }
    format!(
        "SELECT l.first_path AS path, count(*) AS n FROM leads l \
         CROSS JOIN events e ON e.site_id = ?1 AND e.event_id = l.first_event_id \
         CROSS JOIN sessions s ON s.site_id = ?1 AND s.session_id = e.session_id \
         WHERE l.site_id = ?1 AND l.first_seen >= ?2 AND l.first_seen < ?3 \
         AND l.first_path IS NOT NULL AND {SEGMENT} GROUP BY l.first_path"
    )
}

/// The pages report's exits per path (?1 site, ?2 from, ?3 to, ?5 include_bots; with
/// `segment`, ?6–?11 the filters): the counting sessions (of the segment) whose last page
/// view (`exit_path`, `exit_at`, written with the session; migration 0010) is in
/// `[from, to)`, from the `sessions_site_exit` index (with a segment, each session's row).
fn page_exits_sql(segment: bool) -> String {
    let filter = if segment {
        format!("AND {SEGMENT}")
    } else {
        "AND (?5 = 1 OR s.is_bot = 0)".to_string()
    };
    format!(
        "SELECT s.exit_path AS path, count(*) AS n FROM sessions s \
         INDEXED BY sessions_site_exit WHERE s.site_id = ?1 AND s.exit_at >= ?2 \
         AND s.exit_at < ?3 {filter} GROUP BY s.exit_path"
    )
}

fn page_entry(pages: &mut BTreeMap<String, PageCount>, path: String) -> &mut PageCount {
    pages.entry(path.clone()).or_insert_with(|| PageCount {
        path,
        ..PageCount::default()
    })
}

#[derive(Deserialize)]
struct DbTraffic {
    key: String,
    /// The sessions' channel and their step's previous channel (`data_driven`, counted
    /// from the markers: the rows come per key, channel and previous channel).
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    previous: Option<String>,
    /// Sessions that are their visitor's first in the range (counted from the markers).
    #[serde(default)]
    firsts: i64,
    visitors: i64,
    sessions: i64,
    pageviews: i64,
    channel_min: String,
    channel_max: String,
    source_min: String,
    source_max: String,
    medium_min: String,
    medium_max: String,
    campaign_min: Option<String>,
    campaign_max: Option<String>,
    campaigns: i64,
}

impl DbTraffic {
    fn dims(&self) -> RowDims {
        let shared = |lo: &str, hi: &str| (lo == hi).then(|| lo.to_string());
        let campaign = if self.campaigns == 0 {
            Some(None)
        } else if self.campaigns == self.sessions && self.campaign_min == self.campaign_max {
            Some(self.campaign_min.clone())
        } else {
            None
        };
        RowDims {
            key: self.key.clone(),
            channel: shared(&self.channel_min, &self.channel_max),
            source: shared(&self.source_min, &self.source_max),
            medium: shared(&self.medium_min, &self.medium_max),
            campaign,
        }
    }
}

#[derive(Deserialize)]
struct DbCoverage {
    channel: String,
    source: String,
    campaign: Option<String>,
    sessions: i64,
    in_segment: i64,
}

#[derive(Deserialize)]
struct DbCount {
    n: i64,
}

#[derive(Deserialize)]
struct DbStep {
    previous: Option<String>,
    channel: String,
    sessions: i64,
}

/// The marker (migration 0007) of a session's previous session with the same row key.
fn marker_sql(group_by: GroupBy) -> &'static str {
    match group_by {
        GroupBy::Channel => "s.prev_channel_at",
        GroupBy::Source => "s.prev_source_at",
        GroupBy::Medium => "s.prev_medium_at",
        GroupBy::Campaign => "s.prev_campaign_at",
        GroupBy::LandingPage => "s.prev_landing_at",
    }
}

/// The traffic rows of the one-pass count (per key, or per key, channel and previous
/// channel for `data_driven`) folded per key, the range's distinct visitors (the sessions
/// that are their visitor's first in it) and the steps.
fn counted_from_markers(parts: Vec<DbTraffic>) -> (Vec<DbTraffic>, u64, Vec<StepCount>) {
    fn lesser(a: Option<String>, b: Option<String>, less: bool) -> Option<String> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if (a < b) == less { a } else { b }),
            (a, b) => a.or(b),
        }
    }
    let mut rows: BTreeMap<String, DbTraffic> = BTreeMap::new();
    let mut steps: BTreeMap<(Option<String>, String), i64> = BTreeMap::new();
    let mut visitors = 0u64;
    for t in parts {
        visitors = visitors.saturating_add(count(t.firsts));
        if let Some(channel) = &t.channel {
            *steps
                .entry((t.previous.clone(), channel.clone()))
                .or_default() += t.sessions;
        }
        match rows.get_mut(&t.key) {
            None => {
                rows.insert(t.key.clone(), t);
            }
            Some(r) => {
                r.visitors += t.visitors;
                r.sessions += t.sessions;
                r.pageviews += t.pageviews;
                r.campaigns += t.campaigns;
                let min = |a: &mut String, b: String| {
                    if b < *a {
                        *a = b;
                    }
                };
                let max = |a: &mut String, b: String| {
                    if b > *a {
                        *a = b;
                    }
                };
                min(&mut r.channel_min, t.channel_min);
                max(&mut r.channel_max, t.channel_max);
                min(&mut r.source_min, t.source_min);
                max(&mut r.source_max, t.source_max);
                min(&mut r.medium_min, t.medium_min);
                max(&mut r.medium_max, t.medium_max);
                r.campaign_min = lesser(r.campaign_min.take(), t.campaign_min, true);
                r.campaign_max = lesser(r.campaign_max.take(), t.campaign_max, false);
            }
        }
    }
    (
        rows.into_values().collect(),
        visitors,
        steps
            .into_iter()
            .map(|((previous, channel), sessions)| StepCount {
                previous,
                channel,
                sessions: count(sessions),
            })
            .collect(),
    )
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A deal conversion with its lead's creation and the deal's first open stage.
const DEAL_CONVERSION_COLUMNS: &str = "c.deal_id || ':' || c.kind AS id, c.lead_id AS lead, \
     c.kind AS kind, c.closed_at AS at, c.revenue AS revenue, l.first_seen AS lead_at, \
     (SELECT min(c2.closed_at) FROM conversions c2 WHERE c2.site_id = c.site_id \
        AND c2.deal_id = c.deal_id AND c2.kind <> 'customer') AS opportunity_at, \
     NULL AS page, NULL AS session";

/// The deal conversions with `T` in `[?2, ?3)` of site `?1`.
fn deals_in_range_sql() -> String {
    format!(
        "SELECT {DEAL_CONVERSION_COLUMNS} FROM conversions c \
         LEFT JOIN leads l ON l.site_id = c.site_id AND l.lead_id = c.lead_id \
         WHERE c.site_id = ?1 AND c.closed_at >= ?2 AND c.closed_at < ?3"
    )
}

/// The spend periods of site `?1` that overlap the days `?2..=?3`.
const SPEND_IN_DAYS: &str = "SELECT first_day, last_day, channel, source, campaign, amount \
     FROM spend WHERE site_id = ?1 AND last_day >= ?2 AND first_day <= ?3";

impl Store {
    pub(crate) fn all<T: for<'de> Deserialize<'de>>(
        r: Option<&worker::D1Result>,
    ) -> ApiResult<Vec<T>> {
        match r {
            Some(r) => Ok(r.results()?),
            None => Ok(Vec::new()),
        }
    }

    /// The rows of a [`packed`] statement.
    fn unpack<T: for<'de> Deserialize<'de>>(r: Option<&worker::D1Result>) -> ApiResult<Vec<T>> {
        #[derive(Deserialize)]
        struct Packed {
            rows: String,
        }
        let mut out = Vec::new();
        for chunk in Self::all::<Packed>(r)? {
            let rows: Vec<T> = serde_json::from_str(&chunk.rows).map_err(ApiError::internal)?;
            out.extend(rows);
        }
        Ok(out)
    }

    // ---- conversions ------------------------------------------------------------

    /// Stores deal conversions that are not stored yet, unless their lead was erased (a
    /// tombstone of its lead id or email: checked in the same transaction as the insert).
    /// Per entry, what happened ([`PutConversion`]); an entry whose key is taken is left as
    /// it was (the caller compares and answers unchanged or conflict).
    pub async fn put_conversions(
        &self,
        site_id: &str,
        entries: &[ConversionEntry],
    ) -> ApiResult<Vec<PutConversion>> {
        use closeloop_core::privacy::TombstoneKind;
        #[derive(Deserialize)]
        struct Erased {
            erased: i64,
        }
        let mut out = Vec::with_capacity(entries.len());
        for chunk in entries.chunks(ROWS_PER_BATCH) {
            let mut stmts: Vec<D1PreparedStatement> = Vec::with_capacity(chunk.len() * 3);
            for c in chunk {
                let mut graves = vec![
                    self.tombstone_of(site_id, TombstoneKind::Lead, &c.lead_id)
                        .await?,
                ];
                if let Some(e) = c
                    .email
                    .as_deref()
                    .and_then(closeloop_core::identity::normalize_email)
                {
                    graves.push(self.tombstone_of(site_id, TombstoneKind::Email, &e).await?);
                }
                let graves = serde_json::to_string(&graves).map_err(ApiError::internal)?;
                stmts.push(self.stmt(
                    "SELECT deal_id, kind, lead_id, email, revenue, currency, original_revenue, \
                     original_currency, exchange_rate, closed_at, received_at FROM conversions \
                     WHERE site_id = ?1 AND deal_id = ?2 AND kind = ?3",
                    &[s(site_id), s(&c.deal_id), s(&c.kind)],
                )?);
                stmts.push(self.stmt(
                    "SELECT EXISTS (SELECT 1 FROM tombstones WHERE site_id = ?1 \
                     AND hash IN (SELECT value FROM json_each(?2))) AS erased",
                    &[s(site_id), s(&graves)],
                )?);
                stmts.push(self.stmt(
                    "INSERT INTO conversions (site_id, deal_id, kind, lead_id, email, revenue, \
                     currency, original_revenue, original_currency, exchange_rate, closed_at, \
                     received_at) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12 \
                     WHERE NOT EXISTS (SELECT 1 FROM tombstones WHERE site_id = ?1 \
                       AND hash IN (SELECT value FROM json_each(?13))) \
                     ON CONFLICT (site_id, deal_id, kind) DO NOTHING",
                    &[
                        s(site_id),
                        s(&c.deal_id),
                        s(&c.kind),
                        s(&c.lead_id),
                        opt(c.email.as_deref()),
                        n(c.revenue),
                        s(&c.currency),
                        n(c.original_revenue),
                        s(&c.original_currency),
                        c.exchange_rate
                            .map(JsValue::from_f64)
                            .unwrap_or(JsValue::NULL),
                        n(c.closed_at),
                        n(c.received_at),
                        s(&graves),
                    ],
                )?);
            }
            let results = self.db.batch(stmts).await?;
            for triple in results.chunks(3) {
                let before: Vec<ConversionEntry> = Self::all(triple.first())?;
                let erased: Vec<Erased> = Self::all(triple.get(1))?;
                out.push(match before.into_iter().next() {
                    Some(old) => PutConversion::Existing(old),
                    None if erased.first().is_some_and(|e| e.erased != 0) => PutConversion::Erased,
                    None => PutConversion::Created,
                });
            }
        }
        if out.len() != entries.len() {
            return Err(ApiError::internal("D1 batch returned fewer results"));
        }
        Ok(out)
    }

    // ---- spend ------------------------------------------------------------------

    /// Stores spend periods; a period already stored gets the new amount. Per entry: the
    /// amount stored before (`None`: created now).
    pub async fn put_spend(
        &self,
        site_id: &str,
        entries: &[SpendEntry],
    ) -> ApiResult<Vec<Option<i64>>> {
        #[derive(Deserialize)]
        struct Before {
            amount: i64,
        }
        let mut out = Vec::with_capacity(entries.len());
        for chunk in entries.chunks(ROWS_PER_BATCH) {
            let mut stmts: Vec<D1PreparedStatement> = Vec::with_capacity(chunk.len() * 2);
            for e in chunk {
                let key = [
                    s(site_id),
                    n(e.first_day),
                    n(e.last_day),
                    s(&e.channel),
                    s(&e.source),
                    s(&e.campaign),
                ];
                stmts.push(self.stmt(
                    "SELECT amount FROM spend WHERE site_id = ?1 AND first_day = ?2 AND \
                     last_day = ?3 AND channel = ?4 AND source = ?5 AND campaign = ?6",
                    &key,
                )?);
                let mut args = key.to_vec();
                args.extend([
                    n(e.amount),
                    s(&e.currency),
                    n(e.original_amount),
                    s(&e.original_currency),
                    e.exchange_rate
                        .map(JsValue::from_f64)
                        .unwrap_or(JsValue::NULL),
                    n(e.received_at),
                ]);
                stmts.push(self.stmt(
                    "INSERT INTO spend (site_id, first_day, last_day, channel, source, campaign, \
                     amount, currency, original_amount, original_currency, exchange_rate, \
                     received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                     ON CONFLICT (site_id, first_day, last_day, channel, source, campaign) \
                     DO UPDATE SET amount = excluded.amount, currency = excluded.currency, \
                     original_amount = excluded.original_amount, \
                     original_currency = excluded.original_currency, \
                     exchange_rate = excluded.exchange_rate, received_at = excluded.received_at",
                    &args,
                )?);
            }
            let results = self.db.batch(stmts).await?;
            for pair in results.chunks(2) {
                let before: Vec<Before> = Self::all(pair.first())?;
                out.push(before.into_iter().next().map(|b| b.amount));
            }
        }
        if out.len() != entries.len() {
            return Err(ApiError::internal("D1 batch returned fewer results"));
        }
        Ok(out)
    }

    // ---- reports ------------------------------------------------------------------

    /// The rows a report over `[from, to)` with a lookback of `lookback_ms` needs (see
    /// the module docs). Page views only when `with_pageviews`.
    pub async fn report_data(
        &self,
        site_id: &str,
        from: i64,
        to: i64,
        lookback_ms: i64,
        with_pageviews: bool,
    ) -> ApiResult<ReportData> {
        let since = from.saturating_sub(lookback_ms);
        let first_day = from.div_euclid(MS_PER_DAY);
        let last_day = to.saturating_sub(1).div_euclid(MS_PER_DAY);
        let sessions_sql = format!(
            "SELECT {SESSION_COLUMNS} {SESSION_JOINS} WHERE s.site_id = ?1 AND s.started_at < ?3 \
             AND (s.started_at >= ?2 OR (s.started_at >= ?4 AND lv.lead_id IS NOT NULL))"
        );
        let leads_sql = format!(
            "SELECT {LEAD_CONVERSION_COLUMNS} FROM leads l \
             WHERE l.site_id = ?1 AND l.first_seen >= ?2 AND l.first_seen < ?3"
        );
        let deals_sql = deals_in_range_sql();
        let mut stmts = vec![
            self.stmt(&sessions_sql, &[s(site_id), n(from), n(to), n(since)])?,
            self.stmt(&leads_sql, &[s(site_id), n(from), n(to)])?,
            self.stmt(&deals_sql, &[s(site_id), n(from), n(to)])?,
            self.stmt(SPEND_IN_DAYS, &[s(site_id), n(first_day), n(last_day)])?,
        ];
        if with_pageviews {
            stmts.push(self.stmt(
                "SELECT session_id AS session, path, derived_ts AS at FROM events \
                 WHERE site_id = ?1 AND type = 'pageview' AND coalesce(session_id, '') <> '' \
                 AND derived_ts >= ?2 AND derived_ts < ?3",
                &[s(site_id), n(since), n(to)],
            )?);
        }
        let results = self.db.batch(stmts).await?;
        let sessions: Vec<DbSession> = Self::all(results.first())?;
        let mut conversions: Vec<DbConversion> = Self::all(results.get(1))?;
        conversions.extend(Self::all::<DbConversion>(results.get(2))?);
        let spend: Vec<DbSpend> = Self::all(results.get(3))?;
        let pageviews: Vec<PageViewRow> = if with_pageviews {
            Self::all(results.get(4))?
        } else {
            Vec::new()
        };
        Ok(ReportData {
            sessions: sessions.into_iter().map(SessionRow::from).collect(),
            conversions: conversions.into_iter().map(ConversionRow::from).collect(),
            pageviews,
            spend: spend_days(spend, first_day, last_day),
        })
    }

    /// The binds ?1–?11 of the counted report statements: site, `from`, `to`, `from` minus
    /// the lookback, include_bots, then the segment's filters ([`SEGMENT`]).
    fn report_args(&self, site_id: &str, query: &Query) -> Vec<JsValue> {
        let f = &query.filters;
        vec![
            s(site_id),
            n(query.from),
            n(query.to),
            n(query.from.saturating_sub(query.params().lookback_ms)),
            n(i64::from(query.include_bots)),
            opt(f.country.as_deref()),
            opt(f.device.as_deref()),
            opt(f.channel.as_deref()),
            opt(f.source.as_deref()),
            opt(f.campaign.as_deref()),
            opt(f.landing_page.as_deref()),
        ]
    }

    /// What the sources report of `query` reads, in one batch: the traffic counted per
    /// row in SQL (core's `Counted::of`), only the sessions of leads (the touches any
    /// conversion in range can be credited to, and the leads' journeys), the conversions in
    /// range (without page and session) and the spend; for `data_driven`, the steps of every
    /// visitor's journey in the range.
    ///
    /// Without bots and segment filters (the common report) one pass over the range's
    /// sessions in `sessions_site_time` counts everything, distinct visitors and the steps
    /// included, from the sessions' markers (migration 0007). Otherwise the distinct visitors
    /// are counted per row and overall (in visitor order), and the steps from the markers
    /// (bots left out: a segment never applies to chains) or in visitor order (bots in).
    pub async fn sources_data(&self, site_id: &str, query: &Query) -> ApiResult<SourcesData> {
        let args = self.report_args(site_id, query);
        let (from, to) = (query.from, query.to);
        let first_day = from.div_euclid(MS_PER_DAY);
        let last_day = to.saturating_sub(1).div_euclid(MS_PER_DAY);
        let key = key_sql(query.group_by);
        let data_driven = query.model.needs_chain();
        let marked = !query.include_bots && query.filters.is_empty();
        let in_range = "s.site_id = ?1 AND s.started_at >= ?2 AND s.started_at < ?3";
        // the shared touch fields: min = max when all of a row's sessions have the same
        // value (the key's own column is the key: no need to compare)
        let shared = |column: &str, key_column: bool| {
            if key_column {
                format!("{key} AS {column}_min, {key} AS {column}_max")
            } else {
                format!("min(s.{column}) AS {column}_min, max(s.{column}) AS {column}_max")
            }
        };
        let dims = format!(
            "coalesce(sum(s.pageviews), 0) AS pageviews, {}, {}, {}, \
             min(s.campaign) AS campaign_min, max(s.campaign) AS campaign_max, \
             count(s.campaign) AS campaigns",
            shared("channel", query.group_by == GroupBy::Channel),
            shared("source", query.group_by == GroupBy::Source),
            shared("medium", query.group_by == GroupBy::Medium),
        );
        // a step's previous channel: the visitor's previous session's, when in the range
        let previous = "CASE WHEN s.prev_at >= ?2 THEN s.prev_channel END";
        let mut stmts = Vec::new();
        if marked {
            let marker = marker_sql(query.group_by);
            let (step_columns, step_groups) = if data_driven {
                (
                    format!("s.channel AS channel, {previous} AS previous, "),
                    // (the key is the channel already: one column less to sort)
                    if query.group_by == GroupBy::Channel {
                        ", previous"
                    } else {
                        ", s.channel, previous"
                    },
                )
            } else {
                (String::new(), "")
            };
            stmts.push(self.stmt(
                &format!(
                    "SELECT {key} AS key, {step_columns}\
                     sum({marker} IS NULL OR {marker} < ?2) AS visitors, \
                     sum(s.prev_at IS NULL OR s.prev_at < ?2) AS firsts, \
                     count(*) AS sessions, {dims} FROM sessions s INDEXED BY sessions_site_time \
                     WHERE {in_range} AND s.is_bot = 0 GROUP BY key{step_groups}"
                ),
                &args[..3],
            )?);
        } else {
            stmts.push(self.stmt(
                &format!(
                    "SELECT {key} AS key, count(DISTINCT s.visitor_id) AS visitors, \
                     count(*) AS sessions, {dims} FROM sessions s \
                     WHERE {in_range} AND {SEGMENT} GROUP BY 1"
                ),
                &args,
            )?);
            // distinct visitors, counted in the order of the covering visitor index: no
            // temporary b-tree of visitor ids (scans the site's sessions in that index)
            stmts.push(self.stmt(
                &format!(
                    "SELECT count(*) AS n FROM (SELECT 1 FROM sessions s \
                     INDEXED BY sessions_visitor WHERE {in_range} AND {SEGMENT} \
                     GROUP BY s.visitor_id)"
                ),
                &args,
            )?);
            if data_driven && !query.include_bots {
                stmts.push(self.stmt(
                    &format!(
                        "SELECT {previous} AS previous, s.channel AS channel, \
                         count(*) AS sessions FROM sessions s INDEXED BY sessions_site_time \
                         WHERE {in_range} AND s.is_bot = 0 GROUP BY 1, 2"
                    ),
                    &args[..3],
                )?);
            } else if data_driven {
                // bots too (they have no markers): each visitor's sessions in order
                stmts.push(self.stmt(
                    &format!(
                        "SELECT previous, channel, count(*) AS sessions FROM (SELECT \
                         s.channel AS channel, lag(s.channel) OVER (PARTITION BY s.visitor_id \
                         ORDER BY s.started_at, s.session_id) AS previous FROM sessions s \
                         INDEXED BY sessions_visitor WHERE {in_range}) GROUP BY 1, 2"
                    ),
                    &args[..3],
                )?);
            }
        }
        let counting = stmts.len();
        // the leads' visitors first (CROSS JOIN fixes the order): index seeks per visitor
        let touches_sql = touches_sql(query);
        let leads_sql = "SELECT l.lead_id AS lead, l.first_seen AS at FROM leads l \
             WHERE l.site_id = ?1 AND l.first_seen >= ?2 AND l.first_seen < ?3";
        let deals_sql = deals_in_range_sql();
        let args3 = [s(site_id), n(from), n(to)];
        stmts.extend([
            self.stmt(&packed(&touches_sql, &TOUCH_FIELDS), &args[..5])?,
            self.stmt(&packed(leads_sql, &["lead", "at"]), &args3)?,
            self.stmt(&packed(&deals_sql, &CONVERSION_FIELDS), &args3)?,
            self.stmt(SPEND_IN_DAYS, &[s(site_id), n(first_day), n(last_day)])?,
        ]);
        // in a segment, what each spend record covers (core's `Coverage::of`): the counting
        // sessions per touch, all and in the segment
        let segmented = !query.filters.is_empty();
        if segmented {
            stmts.push(self.stmt(
                &format!(
                    "SELECT s.channel AS channel, s.source AS source, s.campaign AS campaign, \
                     count(*) AS sessions, sum(CASE WHEN {SEGMENT} THEN 1 ELSE 0 END) \
                     AS in_segment FROM sessions s INDEXED BY sessions_site_time \
                     WHERE {in_range} AND (?5 = 1 OR s.is_bot = 0) GROUP BY 1, 2, 3"
                ),
                &args,
            )?);
        }
        let results = self.db.batch(stmts).await?;
        let coverage: Vec<Coverage> = if segmented {
            Self::all::<DbCoverage>(results.get(counting + 4))?
                .into_iter()
                .map(|c| Coverage {
                    channel: c.channel,
                    source: c.source,
                    campaign: c.campaign,
                    sessions: count(c.sessions),
                    in_segment: count(c.in_segment),
                })
                .collect()
        } else {
            Vec::new()
        };
        let traffic: Vec<DbTraffic> = Self::all(results.first())?;
        let (rows, visitors, steps) = if marked {
            counted_from_markers(traffic)
        } else {
            let visitors: Vec<DbCount> = Self::all(results.get(1))?;
            let steps: Vec<DbStep> = if data_driven {
                Self::all(results.get(2))?
            } else {
                Vec::new()
            };
            (
                traffic,
                visitors.first().map_or(0, |v| count(v.n)),
                steps
                    .into_iter()
                    .map(|st| StepCount {
                        previous: st.previous,
                        channel: st.channel,
                        sessions: count(st.sessions),
                    })
                    .collect(),
            )
        };
        let sessions: Vec<DbTouch> = Self::unpack(results.get(counting))?;
        let mut conversions: Vec<ConversionRow> = Self::unpack(results.get(counting + 1))?
            .into_iter()
            .map(lead_conversion)
            .collect();
        conversions.extend(
            Self::unpack::<DbConversion>(results.get(counting + 2))?
                .into_iter()
                .map(ConversionRow::from),
        );
        let spend: Vec<DbSpend> = Self::all(results.get(counting + 3))?;
        Ok(SourcesData {
            dims: rows.iter().map(DbTraffic::dims).collect(),
            counted: Counted {
                rows: rows
                    .into_iter()
                    .map(|t| TrafficRow {
                        key: t.key,
                        visitors: count(t.visitors),
                        sessions: count(t.sessions),
                        pageviews: count(t.pageviews),
                    })
                    .collect(),
                visitors,
                steps,
                coverage,
            },
            leads: ReportData {
                sessions: sessions.into_iter().map(SessionRow::from).collect(),
                conversions,
                pageviews: Vec::new(),
                spend: spend_days(spend, first_day, last_day),
            },
        })
    }

    /// Every figure of the pages report of `query`, counted per page in SQL as core's
    /// `PageCount::of` defines them, in one batch of four statements: views and entrances,
    /// assists, direct conversions, exits (see [`page_views_sql`], [`page_assists_sql`],
    /// [`page_direct_sql`], [`page_exits_sql`]). Without filters they read covering indexes of the page views
    /// and of the leads only; a segment joins each session (or event) to its session row.
    pub async fn pages_data(&self, site_id: &str, query: &Query) -> ApiResult<Vec<PageCount>> {
        // the binds of `report_args`, but ?4 is the lookback itself (nothing here reads
        // `from - lookback`: a conversion's window starts at its own `T - lookback`)
        let mut args = self.report_args(site_id, query);
        if let Some(a) = args.get_mut(3) {
            *a = n(query.params().lookback_ms);
        }
        // the statements bind as many values as the highest ?N they name
        let (binds, binds_direct) = if query.filters.is_empty() {
            (5, 3)
        } else {
            (args.len(), args.len())
        };
        let segment = !query.filters.is_empty();
        let results = self
            .db
            .batch(vec![
                self.stmt(&page_views_sql(segment), &args[..binds])?,
                self.stmt(&page_assists_sql(segment), &args[..binds])?,
                self.stmt(&page_direct_sql(segment), &args[..binds_direct])?,
                self.stmt(&page_exits_sql(segment), &args[..binds])?,
            ])
            .await?;
        #[derive(Deserialize)]
        struct Views {
            path: String,
            views: i64,
            entrances: i64,
        }
        #[derive(Deserialize)]
        struct Assists {
            path: String,
            leads: i64,
            customers: i64,
            revenue: i64,
        }
        #[derive(Deserialize)]
        struct Direct {
            path: String,
            n: i64,
        }
        let mut pages: BTreeMap<String, PageCount> = BTreeMap::new();
        for v in Self::all::<Views>(results.first())? {
            let p = page_entry(&mut pages, v.path);
            p.views = count(v.views);
            p.entrances = count(v.entrances);
        }
        for a in Self::all::<Assists>(results.get(1))? {
            let p = page_entry(&mut pages, a.path);
            p.assisted_leads = count(a.leads);
            p.assisted_customers = count(a.customers);
            p.assisted_revenue = a.revenue;
        }
        for d in Self::all::<Direct>(results.get(2))? {
            page_entry(&mut pages, d.path).direct_conversions = count(d.n);
        }
        for d in Self::all::<Direct>(results.get(3))? {
            page_entry(&mut pages, d.path).exits = count(d.n);
        }
        Ok(pages.into_values().collect())
    }

    /// Everything of one lead: all its sessions, conversions (its creation and its deals)
    /// and page views, whatever their time.
    pub async fn lead_data(&self, site_id: &str, lead_id: &str) -> ApiResult<ReportData> {
        // the lead's visitors first (CROSS JOIN fixes the order: never a scan of the
        // site's sessions or events per lead)
        let sessions_sql = format!(
            "SELECT {SESSION_COLUMNS} FROM lead_visitors lv CROSS JOIN sessions s \
             ON s.site_id = lv.site_id AND s.visitor_id = lv.visitor_id \
             WHERE lv.site_id = ?1 AND lv.lead_id = ?2"
        );
        let leads_sql = format!(
            "SELECT {LEAD_CONVERSION_COLUMNS} FROM leads l WHERE l.site_id = ?1 AND l.lead_id = ?2"
        );
        let deals_sql = format!(
            "SELECT {DEAL_CONVERSION_COLUMNS} FROM conversions c \
             LEFT JOIN leads l ON l.site_id = c.site_id AND l.lead_id = c.lead_id \
             WHERE c.site_id = ?1 AND c.lead_id = ?2"
        );
        let pages_sql = "SELECT e.session_id AS session, e.path AS path, e.derived_ts AS at \
             FROM lead_visitors lv CROSS JOIN events e ON e.site_id = lv.site_id \
             AND e.visitor_id = lv.visitor_id WHERE lv.site_id = ?1 AND lv.lead_id = ?2 \
             AND e.type = 'pageview' AND coalesce(e.session_id, '') <> ''";
        let args = [s(site_id), s(lead_id)];
        let results = self
            .db
            .batch(vec![
                self.stmt(&sessions_sql, &args)?,
                self.stmt(&leads_sql, &args)?,
                self.stmt(&deals_sql, &args)?,
                self.stmt(pages_sql, &args)?,
            ])
            .await?;
        let sessions: Vec<DbSession> = Self::all(results.first())?;
        let mut conversions: Vec<DbConversion> = Self::all(results.get(1))?;
        conversions.extend(Self::all::<DbConversion>(results.get(2))?);
        Ok(ReportData {
            sessions: sessions.into_iter().map(SessionRow::from).collect(),
            conversions: conversions.into_iter().map(ConversionRow::from).collect(),
            pageviews: Self::all(results.get(3))?,
            spend: Vec::new(),
        })
    }

    /// The email of a lead, when it exists.
    pub async fn lead_email(&self, site_id: &str, lead_id: &str) -> ApiResult<Option<String>> {
        #[derive(Deserialize)]
        struct Row {
            email: String,
        }
        let row: Option<Row> = self
            .stmt(
                "SELECT email FROM leads WHERE site_id = ?1 AND lead_id = ?2",
                &[s(site_id), s(lead_id)],
            )?
            .first(None)
            .await?;
        Ok(row.map(|r| r.email))
    }

    /// Leads matching a search, newest first, with their first and latest (non-bot)
    /// touches and won revenue.
    pub async fn leads(&self, site_id: &str, q: &LeadSearch) -> ApiResult<Vec<LeadListRow>> {
        let lead_sessions = "FROM lead_visitors v CROSS JOIN sessions s ON s.site_id = v.site_id \
             AND s.visitor_id = v.visitor_id WHERE v.site_id = ?1 AND v.lead_id = l.lead_id";
        let sql = format!(
            "WITH l AS (SELECT site_id, lead_id, email, name, company, first_seen FROM leads \
               WHERE site_id = ?1 AND first_seen >= ?2 AND first_seen < ?3 \
               AND (?4 IS NULL OR instr(email, lower(?4)) > 0) \
               AND (?5 IS NULL OR EXISTS (SELECT 1 FROM lead_visitors v CROSS JOIN sessions s \
                 ON s.site_id = v.site_id AND s.visitor_id = v.visitor_id \
                 WHERE v.site_id = ?1 AND v.lead_id = leads.lead_id AND lower(s.source) = lower(?5))) \
               AND (?6 IS NULL OR EXISTS (SELECT 1 FROM lead_visitors v CROSS JOIN sessions s \
                 ON s.site_id = v.site_id AND s.visitor_id = v.visitor_id \
                 WHERE v.site_id = ?1 AND v.lead_id = leads.lead_id AND lower(s.channel) = lower(?6))) \
               AND (?9 IS NULL OR lower(?9) = 'lead' OR EXISTS (SELECT 1 FROM conversions c \
                 WHERE c.site_id = ?1 AND c.lead_id = leads.lead_id AND c.kind = ?9 COLLATE NOCASE)) \
               ORDER BY first_seen DESC, lead_id LIMIT ?7 OFFSET ?8), \
             t AS (SELECT l.*, \
               (SELECT s.session_id {lead_sessions} AND s.is_bot = 0 \
                  ORDER BY s.started_at, s.session_id LIMIT 1) AS first_sid, \
               (SELECT s.session_id {lead_sessions} AND s.is_bot = 0 \
                  ORDER BY s.started_at DESC, s.session_id DESC LIMIT 1) AS last_sid, \
               (SELECT count(*) FROM lead_visitors v WHERE v.site_id = ?1 AND v.lead_id = l.lead_id) AS visitors, \
               (SELECT count(*) FROM conversions c WHERE c.site_id = ?1 AND c.lead_id = l.lead_id \
                  AND c.kind = 'customer') AS customers, \
               (SELECT coalesce(sum(c.revenue), 0) FROM conversions c WHERE c.site_id = ?1 \
                  AND c.lead_id = l.lead_id AND c.kind = 'customer') AS revenue, \
               (SELECT json_group_array(k.kind) FROM (SELECT lower(c.kind) AS kind \
                  FROM conversions c WHERE c.site_id = ?1 AND c.lead_id = l.lead_id \
                  GROUP BY lower(c.kind) ORDER BY min(c.closed_at), 1) k) AS stages FROM l) \
             SELECT t.lead_id, t.email, t.name, t.company, t.first_seen, t.visitors, t.customers, \
               t.revenue, t.stages, f.channel AS f_channel, f.source AS f_source, f.medium AS f_medium, \
               f.campaign AS f_campaign, la.channel AS l_channel, la.source AS l_source, \
               la.medium AS l_medium, la.campaign AS l_campaign FROM t \
             LEFT JOIN sessions f ON f.site_id = ?1 AND f.session_id = t.first_sid \
             LEFT JOIN sessions la ON la.site_id = ?1 AND la.session_id = t.last_sid \
             ORDER BY t.first_seen DESC, t.lead_id"
        );
        Ok(self
            .stmt(
                &sql,
                &[
                    s(site_id),
                    n(q.from),
                    n(q.to),
                    opt(q.email.as_deref()),
                    opt(q.source.as_deref()),
                    opt(q.channel.as_deref()),
                    n(q.limit),
                    n(q.offset),
                    opt(q.stage.as_deref()),
                ],
            )?
            .all()
            .await?
            .results()?)
    }
}

/// Spreads stored periods over their days (core's rule), keeping the days in
/// `first_day..=last_day`.
fn spend_days(periods: Vec<DbSpend>, first_day: i64, last_day: i64) -> Vec<SpendRow> {
    let mut out = Vec::new();
    for p in periods {
        let lo = p.first_day.max(first_day);
        let hi = p.last_day.min(last_day);
        if hi < lo {
            continue;
        }
        for (day, amount) in allocate_days(p.amount, p.first_day, p.last_day) {
            if day < lo || day > hi {
                continue;
            }
            out.push(SpendRow {
                day,
                channel: p.channel.clone(),
                source: (!p.source.is_empty()).then(|| p.source.clone()),
                campaign: (!p.campaign.is_empty()).then(|| p.campaign.clone()),
                amount,
            });
        }
    }
    out
}
