//! The report engine: the sources report, the pages report, the timeseries and a lead's journey,
//! computed from the rows the edge reads out of D1. Pure: no I/O, no clock.
//!
//! The edge reads [`ReportData`] (sessions, conversions, page views, spend per day) for a site
//! and calls [`sources`], [`pages`], [`timeseries`] or [`journey`] with a [`Query`]. Every
//! attribution share comes from [`crate::attribution::credit`], every assist from
//! [`crate::assists::pages_report`], every CAC / ROI from [`crate::costs::metrics`]; this module
//! only decides *which* rows go in and how the answers are grouped.
//!
//! # Units
//!
//! Money is in **integer minor units** of the site's reporting currency (cents for USD, yen
//! for JPY) on the way in ([`ConversionRow::revenue`], [`SpendRow::amount`]), as the store keeps
//! it, so that no sum of money ever drifts. Credited revenue is a share of a revenue and so a
//! real number: it comes out as `f64` minor units. CAC and revenue per customer are minor units
//! per (credited) customer; ROI is a plain ratio. Times are ms since the epoch (UTC).
//!
//! # What counts in a range `[from, to)`
//!
//! - **Sessions and visitors**: the sessions that *started* in `[from, to)`. Visitors are the
//!   distinct visitor ids of those sessions (a visitor with sessions in two rows counts in both
//!   rows and once in the totals).
//! - **Conversions**: those whose time `T` is in `[from, to)`. Their touches may start before
//!   `from`: the touches of a conversion are all sessions of the lead's visitors that started in
//!   `[T - lookback, T]` (both ends inclusive, as in [`crate::attribution::window`]), whether or
//!   not they are in the range.
//! - **Spend**: the days whose start (00:00 UTC) is in `[from, to)`. The edge stores spend per
//!   day (a period is spread over its days by [`crate::costs::allocate_days`]).
//! - **Bots**: sessions flagged as bots (and their page views) are left out everywhere, as
//!   counts and as touches, unless `include_bots` is set.
//!
//! # Which conversion is which column
//!
//! Each conversion has a `kind`: `lead` (the visitor became a lead; `T` = lead creation),
//! `customer` (a deal was won; `T` = close date) or the name of a CRM stage (`opportunity`,
//! `sql`...; compared case-insensitively). A row's `leads` are the credited `lead`
//! conversions; `customers` and `revenue` the credited `customer` conversions and their
//! revenue; `conversions` and `conversion_revenue` the credited conversions of the kind the
//! query selects ([`Query::conversion`]: `lead`, `customer` (the default) or a stage), so
//! a report can be asked "which sources bring opportunities". CAC and ROI use `customers`,
//! `revenue` and `spend`.
//!
//! For `w_shaped` and `full_path`, a customer or stage conversion's lead-creation and
//! opportunity times come with the row ([`ConversionRow::lead_at`],
//! [`ConversionRow::opportunity_at`]); the edge fills them from the lead and from the deal's
//! earliest open-stage conversion.
//!
//! # Grouping ([`GroupBy`])
//!
//! A row is keyed by the touch's `channel`, `source`, `medium`, `campaign` (`(not set)` when
//! the session had none, as GA4 writes it) or `landing_page` (the session's entrance path).
//! Credited figures go to the row of the *touch* that earned them, so one conversion can be
//! split across rows.
//!
//! A conversion with no touch in its window (a lead whose sessions are all older than the
//! lookback, or all bots) still counts: its whole credit goes to a row keyed
//! [`UNATTRIBUTED`] (visitors and sessions 0), so that, without filters, the credited
//! figures of all rows add up to the conversions in the range, and the totals row says so.
//!
//! # Segments (filters)
//!
//! Filters (`country`, `device`, `channel`, `source`, `campaign`, `landing_page`) are
//! attributes of a **session** (its touch, and the geo/device of its first event), so a
//! filter selects a segment of sessions, as an analytics engineer reading GA4's segments
//! expects:
//! - sessions and visitors count only the sessions in the segment;
//! - attribution is computed over **all** the conversion's touches (the model does not change
//!   because someone looks at a segment), then only the shares earned by touches in the
//!   segment are kept. So `channel=Email` answers "how much credit did email touches earn",
//!   and the segment's totals are the part of all conversions that the segment earned (a
//!   conversion with no touch is in no segment, so [`UNATTRIBUTED`] appears only without
//!   filters);
//! - values compare case-insensitively (ASCII), except `landing_page`, a path, which compares
//!   exactly; a campaign filter `(not set)` selects sessions without a campaign.
//!
//! # Spend per row, and the reconciliation
//!
//! Spend records carry a channel and optionally a source and a campaign (what the
//! marketer recorded them for). A record goes **exactly** to the row its own values name:
//! grouped by `channel`, the row of its channel; by `source` (`campaign`), the row of its
//! source (campaign) when it was recorded with one. A record that does not name the
//! grouping's dimension (a source grouping and spend recorded per channel; any record under
//! `medium` or `landing_page`, which spend never has) is **unallocated**: it is not guessed
//! onto a row (never a fake `(not set)` campaign at −100 % ROI), it is summed in
//! [`SpendReconciliation::unallocated`] with the records it came from, and the totals carry
//! it: `Σ rows' spend + unallocated = totals.spend`. Rows appear for spend keys that had no
//! traffic (money spent on a campaign that brought no tracked visit is worth seeing). Under
//! `medium` and `landing_page` the rows' spend is `null` (it cannot be split that way), and
//! so are their CAC and ROI.
//!
//! # Spend in a segment (filters)
//!
//! Spend is never recorded per country, device or landing page, and a record without a
//! source (campaign) says nothing about one. So in a segment each record counts:
//! - **exactly** (0 or all of it) when the filters name only dimensions the record has:
//!   `channel=Email` keeps the Email records whole and drops the others;
//! - otherwise **in proportion to its sessions**: the record *covers* the counting sessions
//!   of the range whose channel (and source, campaign, when the record has them) are its
//!   own ([`Coverage`]); its share in the segment is `amount × (covered sessions in the
//!   segment ÷ covered sessions)` (a filter on a dimension the record names still excludes
//!   it whole when the values differ). The report says so:
//!   [`SpendReconciliation::basis`] is `estimated`;
//! - a record to be split that covers no session in the range cannot be split: it is left
//!   out of the segment and reported in [`SpendReconciliation::not_estimated`] (with its
//!   records), never silently dropped.
//!
//! Shares are summed per row in real numbers and rounded to whole minor units per row (and
//! for the unallocated line), so that the totals are the sum of what is shown.
//!
//! # data_driven
//!
//! One Markov chain is fitted per conversion kind ([`Chains::fit`]) over the journeys of the
//! site in the report's range, the same for every row and filter (a segment does not refit
//! the model):
//! - a converting journey for each conversion of that kind with `T` in range: the channels
//!   of its touches (those the attribution window gives) in time order;
//! - a non-converting journey for each lead, or anonymous visitor, with **no** conversion of
//!   that kind in the range: the channels of its sessions that started in the range, in time
//!   order. (A lead that converted contributes only its converting journeys; its sessions
//!   after the conversion are not a separate failed journey.)
//!
//! # Serialisation
//!
//! The output types derive `Serialize` in the API's shape (the edge can answer with them as
//! they are): times are written as RFC 3339 strings. The input rows derive `Deserialize` in
//! D1's shape: times are read as ms integers. (So a `SessionRow` serialised and read back is
//! not the same JSON; nothing needs that.)
//!
//! # Counted reports
//!
//! Over a long range most sessions are anonymous traffic that only needs counting. So the
//! edge can let its database count it: [`Counted::of`] (sources) defines exactly what is
//! counted, and [`sources_counted`] gives the same answer as [`sources`] from those counts
//! plus only the sessions of leads: everything that is credited still happens here. The
//! pages report credits nothing (an assist is a count, not a share), so the database counts
//! all of it: [`PageCount::of`] defines every figure per page, and [`pages_counted`] only
//! leaves out empty rows and sorts, as [`pages`] does.
//!
//! # Timeseries
//!
//! [`timeseries`] cuts `[from, to)` into UTC days or ISO weeks (Monday 00:00 UTC; the first and
//! last buckets are clipped to the range) and gives each bucket the totals row of the sources
//! report over that bucket (so visitors are distinct per bucket). The `data_driven` chains are
//! fitted once over the whole range.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A hash map keyed by ids and channel names that the report builds and drops within one
/// call: a fast non-cryptographic hash (the keys are the site's own data, the map lives
/// for one report, so flooding it only slows that report down).
type HashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// FxHash's word-at-a-time multiply-rotate (as in rustc): a few cycles per 8 bytes.
#[derive(Default, Clone, Copy)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

use crate::assists::{pages_report, PageConversion, PageRow, PageView};
use crate::attribution::{
    credit, window, Conversion, ConversionKind, MarkovModel, Model, Params, TouchRef, DAY_MS,
};
use crate::costs::metrics;
use crate::time::{format_rfc3339, parse_date, parse_rfc3339, Granularity};

/// The key of the row that collects the credit of conversions with no touch in their window.
pub const UNATTRIBUTED: &str = "(unattributed)";
/// The key of a missing campaign or source (GA4's spelling).
pub const NOT_SET: &str = "(not set)";
/// Default `lookback_days`.
pub const DEFAULT_LOOKBACK_DAYS: i64 = 90;
/// Largest `lookback_days` a query may ask for (10 years).
pub const MAX_LOOKBACK_DAYS: i64 = 3650;
/// Default `half_life_days`.
pub const DEFAULT_HALF_LIFE_DAYS: f64 = 7.0;
/// Default report range when `from` is not given: the 30 days before `to`.
pub const DEFAULT_RANGE_DAYS: i64 = 30;
/// The conversion kind of a lead creation.
pub const KIND_LEAD: &str = "lead";
/// The conversion kind of a won deal.
pub const KIND_CUSTOMER: &str = "customer";

/// Serialises ms since the epoch as RFC 3339 (the API's form of a time).
fn ser_ms<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_rfc3339(*ms))
}

/// Serialises an optional ms time as RFC 3339 or `null`.
fn ser_opt_ms<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&format_rfc3339(*ms)),
        None => s.serialize_none(),
    }
}

// ---------------------------------------------------------------------------------------------
// Input rows
// ---------------------------------------------------------------------------------------------

/// One session as the edge stores it (table `sessions`, joined with `lead_visitors` and the
/// geo / device of the session's first event).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRow {
    /// Session id.
    pub id: String,
    /// Visitor id.
    pub visitor: String,
    /// The lead the visitor belongs to, if any (its sessions before it was identified too).
    #[serde(default)]
    pub lead: Option<String>,
    /// When it started (ms since the epoch; serialised as RFC 3339).
    #[serde(serialize_with = "ser_ms")]
    pub started_at: i64,
    /// Touch: GA4 default channel group (`Direct` for a direct session).
    pub channel: String,
    /// Touch: source (`google`, `newsletter`, `(direct)`).
    pub source: String,
    /// Touch: medium (`organic`, `email`, `(none)`).
    pub medium: String,
    /// Touch: campaign, if tagged.
    #[serde(default)]
    pub campaign: Option<String>,
    /// The session's entrance path.
    pub landing_page: String,
    /// Page views in the session.
    #[serde(default)]
    pub pageviews: u64,
    /// Whether the session is a bot's.
    #[serde(default)]
    pub is_bot: bool,
    /// ISO country code of its first event.
    #[serde(default)]
    pub country: Option<String>,
    /// Device type of its first event (`desktop`, `mobile`, `tablet`...).
    #[serde(default)]
    pub device: Option<String>,
}

/// One conversion (a lead creation, a won deal, or a deal reaching a CRM stage).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversionRow {
    /// Conversion id (for a deal: the deal id and stage).
    pub id: String,
    /// The lead that converted.
    pub lead: String,
    /// `lead`, `customer`, or a CRM stage name.
    pub kind: String,
    /// Its time `T` (ms since the epoch; serialised as RFC 3339).
    #[serde(serialize_with = "ser_ms")]
    pub at: i64,
    /// Revenue in integer minor units of the reporting currency (0 for leads).
    #[serde(default)]
    pub revenue: i64,
    /// When the lead was created (for `w_shaped` / `full_path`; serialised as RFC 3339).
    #[serde(default, serialize_with = "ser_opt_ms")]
    pub lead_at: Option<i64>,
    /// When the deal first reached an open stage such as `opportunity`, if it did.
    #[serde(default, serialize_with = "ser_opt_ms")]
    pub opportunity_at: Option<i64>,
    /// The page on which it happened (a lead form's path), if any.
    #[serde(default)]
    pub page: Option<String>,
    /// The session in which it happened (a lead form submit), if any.
    #[serde(default)]
    pub session: Option<String>,
}

/// One page view.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageViewRow {
    /// The session it belongs to.
    pub session: String,
    /// The page path.
    pub path: String,
    /// When (ms since the epoch).
    pub at: i64,
}

/// Spend of one day (a period already spread over its days by the edge).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendRow {
    /// Days since 1970-01-01 (UTC), as [`crate::time::day_number`] counts them.
    pub day: i64,
    /// The channel the money was spent on (a GA4 channel group name).
    pub channel: String,
    /// Source, if the spend was recorded per source.
    #[serde(default)]
    pub source: Option<String>,
    /// Campaign, if the spend was recorded per campaign.
    #[serde(default)]
    pub campaign: Option<String>,
    /// Amount in integer minor units of the reporting currency.
    pub amount: i64,
}

/// Everything a report reads. Session ids must be unique; page views refer to sessions by id
/// (a page view of an unknown session is ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportData {
    /// Sessions: those started in the range, and every session of the converting leads
    /// that can fall in a conversion's lookback window.
    pub sessions: Vec<SessionRow>,
    /// Conversions (any kind).
    pub conversions: Vec<ConversionRow>,
    /// Page views of those sessions.
    pub pageviews: Vec<PageViewRow>,
    /// Spend per day.
    pub spend: Vec<SpendRow>,
}

// ---------------------------------------------------------------------------------------------
// Counted rows (what the store aggregates instead of shipping every session)
// ---------------------------------------------------------------------------------------------

/// The traffic of one sources row: what [`sources`] counts from the sessions that started in
/// the range, are in the segment and count (bots only with `include_bots`), keyed by
/// `group_by`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficRow {
    /// The row key (as [`SourceRow::key`]).
    pub key: String,
    /// Distinct visitors of the row's sessions.
    pub visitors: u64,
    /// Sessions.
    pub sessions: u64,
    /// Page views of those sessions.
    pub pageviews: u64,
}

/// One step of the visitors' journeys in a range, counted: sessions of channel `channel`
/// whose visitor's previous counting session in the range had channel `previous` (`None`:
/// the visitor's first counting session in the range). A visitor's sessions are in time
/// order (start, then session id). The steps of every visitor are what `data_driven`'s chain
/// needs from the anonymous traffic ([`MarkovModel::fit_with_steps`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StepCount {
    /// The channel of the visitor's previous session in the range.
    pub previous: Option<String>,
    /// The session's channel.
    pub channel: String,
    /// How many sessions.
    pub sessions: u64,
}

/// What the store counts for one sources report, so that only the sessions of leads (the
/// touches) travel to [`sources_counted`]. [`Counted::of`] defines every figure; the store's
/// SQL counts the same.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counted {
    /// Per row key: the row's traffic (rows with no session are absent).
    pub rows: Vec<TrafficRow>,
    /// Distinct visitors over all rows (the totals row's visitors).
    pub visitors: u64,
    /// For `data_driven`: the steps of every visitor's journey in the range (the counting
    /// sessions, filters do not apply, as the chains never depend on a segment), anonymous
    /// visitors and leads' visitors alike: the leads' own steps are taken out again from
    /// their sessions, which the report reads anyway.
    pub steps: Vec<StepCount>,
    /// With segment filters: the counting sessions of the range per touch (channel,
    /// source, campaign), all of them and those in the segment, from which spend records
    /// are split into the segment (see the [module docs](self#spend-in-a-segment-filters)).
    /// Empty without filters (spend is then exact).
    #[serde(default)]
    pub coverage: Vec<Coverage>,
}

/// The counting sessions of a range with one touch (channel, source, campaign): how many,
/// and how many are in the query's segment. A spend record covers the rows whose channel,
/// and source and campaign when it has them, are its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Coverage {
    /// The sessions' channel.
    pub channel: String,
    /// Their source.
    pub source: String,
    /// Their campaign (`None`: untagged).
    pub campaign: Option<String>,
    /// Counting sessions started in the range with this touch.
    pub sessions: u64,
    /// Of those, the sessions in the segment.
    pub in_segment: u64,
}

impl Coverage {
    /// The coverage rows of `sessions` (those that count, started in `[from, to)`):
    /// what [`Counted::of`] gives and the store's SQL counts.
    fn of<'s>(sessions: impl Iterator<Item = &'s SessionRow>, filters: &Filters) -> Vec<Coverage> {
        let mut by: BTreeMap<(&str, &str, Option<&str>), (u64, u64)> = BTreeMap::new();
        for s in sessions {
            let e = by
                .entry((&s.channel, &s.source, s.campaign.as_deref()))
                .or_default();
            e.0 += 1;
            if filters.matches(s) {
                e.1 += 1;
            }
        }
        by.into_iter()
            .map(
                |((channel, source, campaign), (sessions, in_segment))| Coverage {
                    channel: channel.to_owned(),
                    source: source.to_owned(),
                    campaign: campaign.map(str::to_owned),
                    sessions,
                    in_segment,
                },
            )
            .collect()
    }
}

impl Counted {
    /// The counts of `query` over the full data (every session of the range): the
    /// definition that the store's SQL follows.
    pub fn of(data: &ReportData, query: &Query) -> Counted {
        let counts = |s: &&SessionRow| {
            (query.include_bots || !s.is_bot)
                && s.started_at >= query.from
                && s.started_at < query.to
        };
        let mut rows: BTreeMap<&str, (TrafficRow, BTreeSet<&str>)> = BTreeMap::new();
        let mut visitors: BTreeSet<&str> = BTreeSet::new();
        for s in data
            .sessions
            .iter()
            .filter(counts)
            .filter(|s| query.filters.matches(s))
        {
            let key = query.group_by.key(s);
            let (row, seen) = rows.entry(key).or_insert_with(|| {
                (
                    TrafficRow {
                        key: key.to_owned(),
                        ..TrafficRow::default()
                    },
                    BTreeSet::new(),
                )
            });
            row.sessions += 1;
            row.pageviews = row.pageviews.saturating_add(s.pageviews);
            seen.insert(&s.visitor);
            visitors.insert(&s.visitor);
        }
        let steps = visitor_steps(data.sessions.iter().filter(counts))
            .into_iter()
            .map(|((previous, channel), sessions)| StepCount {
                previous: previous.map(str::to_owned),
                channel: channel.to_owned(),
                sessions,
            })
            .collect();
        let coverage = if query.filters.is_empty() {
            Vec::new()
        } else {
            Coverage::of(data.sessions.iter().filter(counts), &query.filters)
        };
        Counted {
            coverage,
            rows: rows
                .into_values()
                .map(|(mut row, seen)| {
                    row.visitors = seen.len() as u64;
                    row
                })
                .collect(),
            visitors: visitors.len() as u64,
            steps,
        }
    }
}

/// The steps ([`StepCount`]) of the visitors' journeys made of `sessions` (each visitor's
/// sessions in time order: start, then session id), per (previous channel, channel).
fn visitor_steps<'s>(
    sessions: impl Iterator<Item = &'s SessionRow>,
) -> BTreeMap<(Option<&'s str>, &'s str), u64> {
    let mut by_visitor: HashMap<&str, Vec<&SessionRow>> = HashMap::default();
    for s in sessions {
        by_visitor.entry(&s.visitor).or_default().push(s);
    }
    let mut steps: HashMap<(Option<&str>, &str), u64> = HashMap::default();
    for mut list in by_visitor.into_values() {
        list.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
        // a session read twice (its visitor linked to two leads) is one step
        list.dedup_by(|a, b| a.id == b.id);
        let mut previous: Option<&str> = None;
        for s in list {
            *steps.entry((previous, s.channel.as_str())).or_default() += 1;
            previous = Some(&s.channel);
        }
    }
    steps.into_iter().collect()
}

/// Every figure of one page of the pages report, as the store counts it: what [`pages`]
/// gives for the page before sorting (see [`PageCount::of`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageCount {
    /// The page path.
    pub path: String,
    /// Page views in the range.
    pub views: u64,
    /// Of those, the first page views of their sessions.
    pub entrances: u64,
    /// Of those, the last page views of their sessions.
    #[serde(default)]
    pub exits: u64,
    /// Lead conversions in the range it assisted.
    pub assisted_leads: u64,
    /// Customer conversions in the range it assisted.
    pub assisted_customers: u64,
    /// Their revenue, in integer minor units.
    pub assisted_revenue: i64,
    /// Conversions in the range that happened on it.
    pub direct_conversions: u64,
}

impl PageCount {
    /// The pages report's figures per page for `query`, counted the way the store's SQL
    /// counts them (the definition that SQL follows; [`pages`] gives the same figures through
    /// [`crate::assists::pages_report`]). `data` is the full data: every session and page
    /// view of the site. Only sessions that count (bots only with `include_bots`) and are
    /// in the segment take part; their page views carry the lead of their session.
    ///
    /// - **views**: page views with a time in `[from, to)` (whenever their session started);
    /// - **entrances**: those that are the first page view of their session (earliest time;
    ///   ties: the first in the data, as the edge's sessionisation orders them by event id);
    /// - **exits**: those that are the last page view of their session (latest time; ties:
    ///   the last in the data);
    /// - **direct conversions**: `lead` and `customer` conversions with `T` in `[from, to)`
    ///   per page they happened on; with filters, only those whose session is in the
    ///   segment;
    /// - **assists**: for each such conversion, the distinct paths its lead's page views
    ///   had at a time `t` with `T - lookback <= t < T`, its own page left out: one assisted
    ///   lead or customer each (and the customer's revenue). Other conversion kinds (CRM
    ///   stages) are not in the pages report.
    ///
    /// Pages with none of these are absent; rows are sorted by path.
    pub fn of(data: &ReportData, query: &Query) -> Vec<PageCount> {
        let in_range = |t: i64| t >= query.from && t < query.to;
        let sessions: BTreeMap<&str, &SessionRow> = data
            .sessions
            .iter()
            .filter(|s| (query.include_bots || !s.is_bot) && query.filters.matches(s))
            .map(|s| (s.id.as_str(), s))
            .collect();
        // the first page view of every session (whether it counts or not)
        let mut first: BTreeMap<&str, (i64, usize)> = BTreeMap::new();
        for (i, v) in data.pageviews.iter().enumerate() {
            let e = first.entry(v.session.as_str()).or_insert((v.at, i));
            if v.at < e.0 {
                *e = (v.at, i);
            }
        }
        let last = last_views(&data.pageviews);
        let mut rows: BTreeMap<&str, PageCount> = BTreeMap::new();
        let mut by_lead: BTreeMap<&str, Vec<&PageViewRow>> = BTreeMap::new();
        for (i, v) in data.pageviews.iter().enumerate() {
            let Some(s) = sessions.get(v.session.as_str()) else {
                continue;
            };
            if let Some(lead) = s.lead.as_deref() {
                by_lead.entry(lead).or_default().push(v);
            }
            if in_range(v.at) {
                let r = page_count(&mut rows, &v.path);
                r.views += 1;
                if first.get(v.session.as_str()).is_some_and(|f| f.1 == i) {
                    r.entrances += 1;
                }
                if last.get(v.session.as_str()).is_some_and(|l| l.1 == i) {
                    r.exits += 1;
                }
            }
        }
        let lookback_ms = query.params().lookback_ms.max(0);
        for c in data.conversions.iter().filter(|c| in_range(c.at)) {
            let is_lead = c.kind.eq_ignore_ascii_case(KIND_LEAD);
            if !is_lead && !c.kind.eq_ignore_ascii_case(KIND_CUSTOMER) {
                continue;
            }
            if let Some(page) = c.page.as_deref() {
                let in_segment = query.filters.is_empty()
                    || c.session
                        .as_deref()
                        .is_some_and(|id| sessions.contains_key(id));
                if in_segment {
                    page_count(&mut rows, page).direct_conversions += 1;
                }
            }
            let start = c.at.saturating_sub(lookback_ms);
            let paths: BTreeSet<&str> = by_lead
                .get(c.lead.as_str())
                .into_iter()
                .flatten()
                .filter(|v| {
                    v.at >= start && v.at < c.at && Some(v.path.as_str()) != c.page.as_deref()
                })
                .map(|v| v.path.as_str())
                .collect();
            for path in paths {
                let r = page_count(&mut rows, path);
                if is_lead {
                    r.assisted_leads += 1;
                } else {
                    r.assisted_customers += 1;
                    r.assisted_revenue = r.assisted_revenue.saturating_add(c.revenue);
                }
            }
        }
        rows.into_values().collect()
    }
}

/// The last page view of every session: (time, index in `views`); ties: the last in the
/// data.
fn last_views(views: &[PageViewRow]) -> BTreeMap<&str, (i64, usize)> {
    let mut last: BTreeMap<&str, (i64, usize)> = BTreeMap::new();
    for (i, v) in views.iter().enumerate() {
        let e = last.entry(v.session.as_str()).or_insert((v.at, i));
        if v.at >= e.0 {
            *e = (v.at, i);
        }
    }
    last
}

fn page_count<'m, 'p>(
    rows: &'m mut BTreeMap<&'p str, PageCount>,
    path: &'p str,
) -> &'m mut PageCount {
    rows.entry(path).or_insert_with(|| PageCount {
        path: path.to_owned(),
        ..PageCount::default()
    })
}

// ---------------------------------------------------------------------------------------------
// Query
// ---------------------------------------------------------------------------------------------

/// What the sources report's rows are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// GA4 default channel group.
    Channel,
    /// Source.
    Source,
    /// Medium.
    Medium,
    /// Campaign (`(not set)` when none).
    Campaign,
    /// The session's entrance path.
    LandingPage,
}

impl GroupBy {
    /// The wire name (`group_by=`).
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Channel => "channel",
            GroupBy::Source => "source",
            GroupBy::Medium => "medium",
            GroupBy::Campaign => "campaign",
            GroupBy::LandingPage => "landing_page",
        }
    }

    /// A session's row key under this grouping (`(not set)` for a missing campaign).
    pub fn key(self, s: &SessionRow) -> &str {
        match self {
            GroupBy::Channel => &s.channel,
            GroupBy::Source => &s.source,
            GroupBy::Medium => &s.medium,
            GroupBy::Campaign => s.campaign.as_deref().unwrap_or(NOT_SET),
            GroupBy::LandingPage => &s.landing_page,
        }
    }

    /// The row a spend record names under this grouping; `None` when the record does not
    /// name this dimension (it is unallocated).
    fn spend_key<'k>(
        self,
        channel: &'k str,
        source: Option<&'k str>,
        campaign: Option<&'k str>,
    ) -> Option<&'k str> {
        match self {
            GroupBy::Channel => Some(channel),
            GroupBy::Source => source,
            GroupBy::Campaign => campaign,
            GroupBy::Medium | GroupBy::LandingPage => None,
        }
    }

    /// Whether rows of this grouping can hold spend at all.
    fn holds_spend(self) -> bool {
        !matches!(self, GroupBy::Medium | GroupBy::LandingPage)
    }
}

impl FromStr for GroupBy {
    type Err = QueryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "channel" => Ok(GroupBy::Channel),
            "source" => Ok(GroupBy::Source),
            "medium" => Ok(GroupBy::Medium),
            "campaign" => Ok(GroupBy::Campaign),
            "landing_page" => Ok(GroupBy::LandingPage),
            _ => Err(QueryError::new(
                "group_by",
                "must be channel, source, medium, campaign or landing_page",
            )),
        }
    }
}

/// Segment filters: each `Some` keeps only sessions (touches) with that attribute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filters {
    /// ISO country code.
    pub country: Option<String>,
    /// Device type.
    pub device: Option<String>,
    /// Channel group.
    pub channel: Option<String>,
    /// Source.
    pub source: Option<String>,
    /// Campaign (`(not set)` for none).
    pub campaign: Option<String>,
    /// Entrance path (exact).
    pub landing_page: Option<String>,
}

impl Filters {
    /// Whether no filter is set.
    pub fn is_empty(&self) -> bool {
        self == &Filters::default()
    }

    /// Whether a session is in the segment.
    pub fn matches(&self, s: &SessionRow) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| match want {
            None => true,
            Some(w) => have.is_some_and(|h| h.eq_ignore_ascii_case(w)),
        };
        eq(&self.country, s.country.as_deref())
            && eq(&self.device, s.device.as_deref())
            && eq(&self.channel, Some(&s.channel))
            && eq(&self.source, Some(&s.source))
            && eq(
                &self.campaign,
                Some(s.campaign.as_deref().unwrap_or(NOT_SET)),
            )
            && self
                .landing_page
                .as_ref()
                .is_none_or(|p| p == &s.landing_page)
    }

    /// How much of a spend record is in the segment: exactly all or nothing when the
    /// filters name only dimensions the record has, else its sessions' share from
    /// `coverage` (`None`: it covers no session, so it cannot be split). See the
    /// [module docs](self#spend-in-a-segment-filters).
    fn spend_share(&self, rec: &SpendKey, coverage: &[Coverage]) -> SpendShare {
        let eq = |want: &Option<String>, have: &str| {
            want.as_ref().is_none_or(|w| w.eq_ignore_ascii_case(have))
        };
        let named_match = eq(&self.channel, &rec.channel)
            && rec.source.as_deref().is_none_or(|s| eq(&self.source, s))
            && rec
                .campaign
                .as_deref()
                .is_none_or(|c| eq(&self.campaign, c));
        if !named_match {
            return SpendShare::Exact(0.0);
        }
        let unnamed = self.country.is_some()
            || self.device.is_some()
            || self.landing_page.is_some()
            || (self.source.is_some() && rec.source.is_none())
            || (self.campaign.is_some() && rec.campaign.is_none());
        if !unnamed {
            return SpendShare::Exact(1.0);
        }
        let (mut all, mut inside) = (0u64, 0u64);
        for c in coverage.iter().filter(|c| {
            c.channel.eq_ignore_ascii_case(&rec.channel)
                && rec
                    .source
                    .as_deref()
                    .is_none_or(|s| c.source.eq_ignore_ascii_case(s))
                && rec.campaign.as_deref().is_none_or(|k| {
                    c.campaign
                        .as_deref()
                        .is_some_and(|have| have.eq_ignore_ascii_case(k))
                })
        }) {
            all = all.saturating_add(c.sessions);
            inside = inside.saturating_add(c.in_segment);
        }
        if all == 0 {
            SpendShare::Unknown
        } else {
            SpendShare::Estimated(inside as f64 / all as f64)
        }
    }
}

/// A spend record's part in a segment ([`Filters::spend_share`]).
#[derive(Debug, Clone, Copy, PartialEq)]
enum SpendShare {
    /// All (1) or nothing (0), known exactly.
    Exact(f64),
    /// Its sessions' share.
    Estimated(f64),
    /// It covers no session: it cannot be split.
    Unknown,
}

/// A report query (the query string of the report endpoints, parsed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Query {
    /// Row key (default `channel`).
    pub group_by: GroupBy,
    /// Start of the range (inclusive, ms; serialised as RFC 3339).
    #[serde(serialize_with = "ser_ms")]
    pub from: i64,
    /// End of the range (exclusive, ms; serialised as RFC 3339).
    #[serde(serialize_with = "ser_ms")]
    pub to: i64,
    /// Attribution model (default `last_non_direct`).
    pub model: Model,
    /// Lookback window in days (default 90).
    pub lookback_days: i64,
    /// `time_decay` half-life in days (default 7; may be fractional).
    pub half_life_days: f64,
    /// The conversion kind of the `conversions` column: `lead`, `customer` (default) or a
    /// stage name (lower-cased).
    pub conversion: String,
    /// Segment filters.
    pub filters: Filters,
    /// Whether bot sessions count.
    pub include_bots: bool,
}

impl Query {
    /// A query over `[from, to)` with the defaults: by channel, `last_non_direct`, lookback
    /// 90 days, half-life 7 days, conversion `customer`, no filters, no bots.
    pub fn new(from: i64, to: i64) -> Query {
        Query {
            group_by: GroupBy::Channel,
            from,
            to,
            model: Model::LastNonDirect,
            lookback_days: DEFAULT_LOOKBACK_DAYS,
            half_life_days: DEFAULT_HALF_LIFE_DAYS,
            conversion: KIND_CUSTOMER.to_owned(),
            filters: Filters::default(),
            include_bots: false,
        }
    }

    /// The attribution parameters (lookback and half-life in ms).
    pub fn params(&self) -> Params {
        let half = (self.half_life_days * DAY_MS as f64).round();
        Params {
            lookback_ms: self.lookback_days.clamp(0, MAX_LOOKBACK_DAYS) * DAY_MS,
            half_life_ms: if half.is_finite() && half >= 1.0 {
                half as i64
            } else {
                1
            },
        }
    }

    /// Parses the query string's pairs (already percent-decoded), with `now` as the default
    /// `to`. Parameters: `group_by`, `from`, `to` (RFC 3339 or `YYYY-MM-DD`, the day's start
    /// UTC), `model`, `lookback_days` (integer 1–3650), `half_life_days` (number > 0, ≤ 3650),
    /// `conversion`, `country`, `device`, `channel`, `source`, `campaign`, `landing_page`,
    /// `include_bots` (`true`/`false`/`1`/`0`). Unknown parameters are ignored (so the edge
    /// can add its own, like `granularity` or `sort`); empty values count as absent.
    ///
    /// ```
    /// use closeloop_core::report::{GroupBy, Query};
    /// use closeloop_core::attribution::Model;
    /// let q = Query::from_pairs(
    ///     [("group_by", "source"), ("model", "linear"), ("from", "2026-01-01"), ("to", "2026-02-01"), ("country", "DE")],
    ///     0,
    /// ).unwrap();
    /// assert_eq!((q.group_by, q.model, q.lookback_days), (GroupBy::Source, Model::Linear, 90));
    /// assert_eq!(q.filters.country.as_deref(), Some("DE"));
    /// assert!(Query::from_pairs([("model", "magic")], 0).is_err());
    /// ```
    pub fn from_pairs<'a, I>(pairs: I, now: i64) -> Result<Query, QueryError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut q = Query::new(0, now);
        let mut from = None;
        let mut to = None;
        for (name, value) in pairs {
            let value = value.trim();
            if value.is_empty() {
                // a filter given empty is no filter; an enum or a number given empty is
                // refused (the OpenAPI document says which values it takes)
                if matches!(
                    name,
                    "group_by" | "model" | "lookback_days" | "half_life_days" | "include_bots"
                ) {
                    return Err(QueryError::new(
                        name,
                        "must not be empty (leave it out for the default)",
                    ));
                }
                continue;
            }
            let text = || Some(value.to_owned());
            match name {
                "group_by" => q.group_by = value.parse()?,
                "from" => from = Some(parse_time("from", value)?),
                "to" => to = Some(parse_time("to", value)?),
                "model" => {
                    q.model = value
                        .parse()
                        .map_err(|e: crate::attribution::UnknownModel| {
                            QueryError::new("model", &e.to_string())
                        })?
                }
                "lookback_days" => {
                    q.lookback_days = value
                        .parse::<i64>()
                        .ok()
                        .filter(|d| (1..=MAX_LOOKBACK_DAYS).contains(d))
                        .ok_or_else(|| {
                            QueryError::new(
                                "lookback_days",
                                "must be a whole number from 1 to 3650",
                            )
                        })?
                }
                "half_life_days" => {
                    q.half_life_days = value
                        .parse::<f64>()
                        .ok()
                        .filter(|d| d.is_finite() && *d > 0.0 && *d <= MAX_LOOKBACK_DAYS as f64)
                        .ok_or_else(|| {
                            QueryError::new(
                                "half_life_days",
                                "must be a number above 0 and at most 3650",
                            )
                        })?
                }
                "conversion" => {
                    if value.len() > 64 {
                        return Err(QueryError::new("conversion", "is longer than 64 bytes"));
                    }
                    q.conversion = value.to_ascii_lowercase()
                }
                "country" => q.filters.country = text(),
                "device" => q.filters.device = text(),
                "channel" => q.filters.channel = text(),
                "source" => q.filters.source = text(),
                "campaign" => q.filters.campaign = text(),
                "landing_page" => q.filters.landing_page = text(),
                "include_bots" => {
                    q.include_bots = match value {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(QueryError::new("include_bots", "must be true or false")),
                    }
                }
                _ => {}
            }
        }
        q.to = to.unwrap_or(now);
        q.from = from.unwrap_or_else(|| q.to.saturating_sub(DEFAULT_RANGE_DAYS * DAY_MS));
        if q.from > q.to {
            return Err(QueryError::new("from", "is after `to`"));
        }
        Ok(q)
    }
}

fn parse_time(name: &str, value: &str) -> Result<i64, QueryError> {
    parse_rfc3339(value)
        .or_else(|_| parse_date(value))
        .map_err(|_| QueryError::new(name, "must be an RFC 3339 time or a YYYY-MM-DD date"))
}

/// A query parameter that could not be read (the edge answers 400 `invalid_parameter`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// The parameter's name.
    pub parameter: String,
    /// What is wrong, as a sentence that starts with the parameter name.
    pub message: String,
}

impl QueryError {
    fn new(parameter: &str, why: &str) -> QueryError {
        QueryError {
            parameter: parameter.to_owned(),
            message: format!("`{parameter}` {why}"),
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for QueryError {}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/// One row of the sources report (or the totals, or one timeseries bucket).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceRow {
    /// The group's value (`Paid Search`, `google`, ...; [`UNATTRIBUTED`]; `total` for totals).
    pub key: String,
    /// Distinct visitors of the row's sessions.
    pub visitors: u64,
    /// Sessions started in the range.
    pub sessions: u64,
    /// Page views of those sessions.
    pub pageviews: u64,
    /// Credited lead conversions.
    pub leads: f64,
    /// Credited customer conversions.
    pub customers: f64,
    /// Credited revenue of customer conversions (minor units).
    pub revenue: f64,
    /// Credited conversions of the kind the query selected.
    pub conversions: f64,
    /// Credited revenue of those conversions (minor units).
    pub conversion_revenue: f64,
    /// Spend in the range (minor units); `null` when it cannot be split this way.
    pub spend: Option<i64>,
    /// spend / customers (minor units); `null` when undefined.
    pub cac: Option<f64>,
    /// revenue / customers (minor units); `null` when there are no customers.
    pub revenue_per_customer: Option<f64>,
    /// (revenue - spend) / spend; `null` when undefined.
    pub roi: Option<f64>,
}

impl SourceRow {
    fn named(key: &str) -> SourceRow {
        SourceRow {
            key: key.to_owned(),
            ..SourceRow::default()
        }
    }

    fn finish_costs(&mut self) {
        let m = metrics(self.spend.unwrap_or(0) as f64, self.customers, self.revenue);
        self.revenue_per_customer = m.revenue_per_customer;
        (self.cac, self.roi) = match self.spend {
            Some(_) => (m.cac, m.roi),
            None => (None, None),
        };
    }
}

/// The sources report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourcesReport {
    /// The query it answers.
    pub query: Query,
    /// Rows, most sessions first (then by key); [`UNATTRIBUTED`] last.
    pub rows: Vec<SourceRow>,
    /// Sums of the rows (visitors distinct), key `total`; its spend includes the
    /// unallocated spend.
    pub totals: SourceRow,
    /// How the spend of the range went to the rows (see the
    /// [module docs](self#spend-per-row-and-the-reconciliation)).
    pub spend_reconciliation: SpendReconciliation,
}

/// What spend was recorded for: a channel, and optionally a source and a campaign, with an
/// amount (minor units) in the range.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SpendKey {
    /// The channel.
    pub channel: String,
    /// The source, if recorded with one.
    pub source: Option<String>,
    /// The campaign, if recorded with one.
    pub campaign: Option<String>,
    /// Minor units (in a segment: the record's share of it, rounded).
    pub spend: i64,
}

/// Whether a report's spend is exact or split into a segment by sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpendBasis {
    /// Every record counted whole or not at all.
    #[default]
    Exact,
    /// At least one record was split into the segment in proportion to its sessions.
    Estimated,
}

/// How the range's spend adds up: `rows + unallocated = total` (= `totals.spend`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendReconciliation {
    /// Sum of the rows' spend.
    pub rows: i64,
    /// Spend the grouping cannot put on a row (its records do not name the grouping's
    /// dimension).
    pub unallocated: i64,
    /// `rows + unallocated`.
    pub total: i64,
    /// The records the unallocated spend comes from (largest first).
    pub unallocated_by: Vec<SpendKey>,
    /// `exact`, or `estimated` when a segment split some record by its sessions.
    pub basis: SpendBasis,
    /// Spend a segment left out because its records cover no session in the range (so
    /// cannot be split); 0 without filters.
    pub not_estimated: i64,
    /// The records of [`SpendReconciliation::not_estimated`] (whole amounts).
    pub not_estimated_by: Vec<SpendKey>,
}

/// One bucket of the timeseries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeseriesPoint {
    /// The bucket's label: `2026-11-24` or `2026-W48`.
    pub bucket: String,
    /// Its start (the range's start for a clipped first bucket), ms; serialised as RFC 3339.
    #[serde(serialize_with = "ser_ms")]
    pub from: i64,
    /// Its end (exclusive), ms; serialised as RFC 3339.
    #[serde(serialize_with = "ser_ms")]
    pub to: i64,
    /// The totals row over the bucket (key = the label).
    pub figures: SourceRow,
}

// ---------------------------------------------------------------------------------------------
// Markov chains
// ---------------------------------------------------------------------------------------------

/// The `data_driven` chains, one per conversion kind, fitted over a range.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chains {
    by_kind: BTreeMap<String, MarkovModel>,
}

impl Chains {
    /// Fits one chain per conversion kind present in `data` (and `lead`, `customer` and the
    /// query's kind in any case) over `[query.from, query.to)`, as the
    /// [module docs](self#data_driven) describe.
    pub fn fit(data: &ReportData, query: &Query) -> Chains {
        let idx = Index::new(data, query.include_bots);
        Chains::fit_with(&idx, data, query, None)
    }

    /// `steps`: when the data holds only the sessions of leads, the steps of every
    /// visitor's journey in the range ([`Counted::steps`]); the leads' visitors' own steps
    /// are taken out, and what remains is the anonymous visitors' non-converting journeys.
    fn fit_with<'a>(
        idx: &Index<'a>,
        data: &'a ReportData,
        query: &Query,
        steps: Option<&'a [StepCount]>,
    ) -> Chains {
        let mut kinds: BTreeSet<String> = data
            .conversions
            .iter()
            .map(|c| c.kind.to_ascii_lowercase())
            .collect();
        kinds.insert(KIND_LEAD.to_owned());
        kinds.insert(KIND_CUSTOMER.to_owned());
        kinds.insert(query.conversion.clone());
        let params = query.params();
        let in_range = |t: i64| t >= query.from && t < query.to;
        let anonymous: Vec<(Option<&str>, &str, u64)> = match steps {
            None => Vec::new(),
            Some(all) => {
                // the leads' visitors' own steps
                let own = visitor_steps(
                    idx.sessions
                        .iter()
                        .filter(|s| in_range(s.started_at) && s.lead.is_some())
                        .copied(),
                );
                all.iter()
                    .filter_map(|st| {
                        let key = (st.previous.as_deref(), st.channel.as_str());
                        let n = st
                            .sessions
                            .saturating_sub(own.get(&key).copied().unwrap_or(0));
                        (n > 0).then_some((key.0, key.1, n))
                    })
                    .collect()
            }
        };
        let kinds: Vec<String> = kinds.into_iter().collect();
        // every channel named once (the chains of all kinds index into `names`)
        let mut ids: HashMap<&str, usize> = HashMap::default();
        let mut names: Vec<&str> = Vec::new();
        let mut id_of = |c: &'a str| {
            *ids.entry(c).or_insert_with(|| {
                names.push(c);
                names.len() - 1
            })
        };
        // per kind, the converting journeys; per lead, the kinds it converts for
        let mut converting: Vec<Vec<Vec<usize>>> = vec![Vec::new(); kinds.len()];
        let mut converted: HashMap<&str, Vec<usize>> = HashMap::default();
        for c in data.conversions.iter().filter(|c| in_range(c.at)) {
            let Some(k) = kinds.iter().position(|k| c.kind.eq_ignore_ascii_case(k)) else {
                continue;
            };
            converted.entry(&c.lead).or_default().push(k);
            let touches = idx.touches_of(&c.lead);
            let refs = touch_refs(touches);
            let path: Vec<usize> = window(&refs, c.at, params.lookback_ms)
                .into_iter()
                .filter_map(|i| touches.get(i).map(|s| id_of(&s.channel)))
                .collect();
            if let Some(list) = converting.get_mut(k) {
                list.push(path);
            }
        }
        // each unit's journey in the range, the same for every kind: a lead's sessions
        // (already in time order), an anonymous visitor's
        let mut units: Vec<(Option<&[usize]>, Vec<usize>)> = Vec::new();
        for (lead, sessions) in &idx.by_lead {
            let path: Vec<usize> = sessions
                .iter()
                .filter(|s| in_range(s.started_at))
                .map(|s| id_of(&s.channel))
                .collect();
            if !path.is_empty() {
                units.push((Some(converted.get(lead).map_or(&[], Vec::as_slice)), path));
            }
        }
        let mut anonymous_units: HashMap<&str, Vec<&SessionRow>> = HashMap::default();
        for s in idx
            .sessions
            .iter()
            .filter(|s| s.lead.is_none() && in_range(s.started_at))
        {
            anonymous_units.entry(&s.visitor).or_default().push(s);
        }
        for mut sessions in anonymous_units.into_values() {
            sessions.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
            units.push((None, sessions.iter().map(|s| id_of(&s.channel)).collect()));
        }
        let steps: Vec<(Option<usize>, usize, u64)> = anonymous
            .iter()
            .map(|&(prev, ch, n)| (prev.map(&mut id_of), id_of(ch), n))
            .collect();
        let mut by_kind = BTreeMap::new();
        for (k, kind) in kinds.iter().enumerate() {
            let not_converting = units
                .iter()
                .filter(|(kinds, _)| !kinds.is_some_and(|ks| ks.contains(&k)))
                .map(|(_, path)| (path.as_slice(), false, 1));
            let model = MarkovModel::fit_ids(
                &names,
                converting
                    .get(k)
                    .into_iter()
                    .flatten()
                    .map(|path| (path.as_slice(), true, 1))
                    .chain(not_converting),
                steps.iter().copied(),
            );
            by_kind.insert(kind.clone(), model);
        }
        Chains { by_kind }
    }

    /// The chain of a conversion kind (case-insensitive), if fitted.
    pub fn get(&self, kind: &str) -> Option<&MarkovModel> {
        self.by_kind.get(&kind.to_ascii_lowercase())
    }
}

// ---------------------------------------------------------------------------------------------
// Shared indexing
// ---------------------------------------------------------------------------------------------

struct Index<'a> {
    /// Sessions that count (bots left out unless asked).
    sessions: Vec<&'a SessionRow>,
    /// The lead's counting sessions, sorted by (start, id).
    by_lead: HashMap<&'a str, Vec<&'a SessionRow>>,
}

impl<'a> Index<'a> {
    fn new(data: &'a ReportData, include_bots: bool) -> Index<'a> {
        let sessions: Vec<&SessionRow> = data
            .sessions
            .iter()
            .filter(|s| include_bots || !s.is_bot)
            .collect();
        let mut by_lead: HashMap<&str, Vec<&SessionRow>> = HashMap::default();
        for s in &sessions {
            if let Some(lead) = &s.lead {
                by_lead.entry(lead.as_str()).or_default().push(s);
            }
        }
        for list in by_lead.values_mut() {
            list.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
        }
        Index { sessions, by_lead }
    }

    /// The index over the sessions of leads only (anonymous sessions left out).
    fn leads_only(data: &'a ReportData, include_bots: bool) -> Index<'a> {
        let mut idx = Index::new(data, include_bots);
        idx.sessions.retain(|s| s.lead.is_some());
        idx
    }

    fn touches_of(&self, lead: &str) -> &[&'a SessionRow] {
        self.by_lead.get(lead).map_or(&[], Vec::as_slice)
    }
}

fn touch_refs<'s>(sessions: &[&'s SessionRow]) -> Vec<TouchRef<'s>> {
    sessions
        .iter()
        .map(|s| TouchRef {
            at: s.started_at,
            channel: &s.channel,
            direct: is_direct(s),
        })
        .collect()
}

/// A touch is direct when its channel is `Direct` (no referrer, no tags).
pub(crate) fn is_direct(s: &SessionRow) -> bool {
    s.channel.eq_ignore_ascii_case("direct")
}

pub(crate) fn conversion_of(c: &ConversionRow) -> Conversion {
    if c.kind.eq_ignore_ascii_case(KIND_LEAD) {
        Conversion::lead(c.at)
    } else {
        Conversion::customer(c.at, c.lead_at, c.opportunity_at)
    }
}

// ---------------------------------------------------------------------------------------------
// Sources report
// ---------------------------------------------------------------------------------------------

/// The sources report for `query` (see the [module docs](self) for every rule). Fits the
/// `data_driven` chains itself when the model needs them.
///
/// ```
/// use closeloop_core::report::{sources, ConversionRow, Query, ReportData, SessionRow};
/// let day = 86_400_000;
/// let data = ReportData {
///     sessions: vec![SessionRow { id: "s1".into(), visitor: "v1".into(), lead: Some("ann".into()),
///         started_at: day, channel: "Email".into(), source: "newsletter".into(),
///         medium: "email".into(), landing_page: "/".into(), ..Default::default() }],
///     conversions: vec![ConversionRow { id: "c1".into(), lead: "ann".into(), kind: "customer".into(),
///         at: 2 * day, revenue: 10_000, ..Default::default() }],
///     ..Default::default()
/// };
/// let report = sources(&data, &Query::new(0, 10 * day));
/// assert_eq!(report.rows[0].key, "Email");
/// assert_eq!((report.rows[0].customers, report.rows[0].revenue), (1.0, 10_000.0));
/// assert_eq!(report.totals.sessions, 1);
/// ```
pub fn sources(data: &ReportData, query: &Query) -> SourcesReport {
    let idx = Index::new(data, query.include_bots);
    let chains = if query.model.needs_chain() {
        Chains::fit_with(&idx, data, query, None)
    } else {
        Chains::default()
    };
    sources_with(data, query, &chains)
}

/// [`sources`] with chains fitted beforehand (e.g. once for several reports over one range).
pub fn sources_with(data: &ReportData, query: &Query, chains: &Chains) -> SourcesReport {
    let idx = Index::new(data, query.include_bots);
    let (rows, totals, spend_reconciliation) =
        compute(data, &idx, query, query.from, query.to, chains, None, &[]);
    SourcesReport {
        query: query.clone(),
        rows,
        totals,
        spend_reconciliation,
    }
}

/// The sources report from the store's counts: the same answer as [`sources`] over the
/// full data, reading far fewer rows (see [`Counted`]). `leads` holds only what
/// attribution needs: the sessions of leads that started in `[from - lookback, to)`
/// (anonymous sessions are ignored), the conversions and the spend, as for [`sources`];
/// `counted` is [`Counted::of`] the full data for this very query (same range, grouping,
/// filters and `include_bots`; `steps` only needed for `data_driven`, which then also
/// reads the leads' sessions' visitors).
pub fn sources_counted(leads: &ReportData, counted: &Counted, query: &Query) -> SourcesReport {
    let idx = Index::leads_only(leads, query.include_bots);
    let chains = if query.model.needs_chain() {
        Chains::fit_with(&idx, leads, query, Some(&counted.steps))
    } else {
        Chains::default()
    };
    let (rows, totals, spend_reconciliation) = compute(
        leads,
        &idx,
        query,
        query.from,
        query.to,
        &chains,
        Some(counted),
        &[],
    );
    SourcesReport {
        query: query.clone(),
        rows,
        totals,
        spend_reconciliation,
    }
}

/// Credited figures of one row computed elsewhere: issue 14's credit rollups
/// (`rollup::credit`) sum each conversion's credit, kept per day and row key, instead of
/// crediting the conversions here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreditedRow {
    /// The row key (as [`SourceRow::key`]; [`UNATTRIBUTED`] for conversions with no touch).
    pub key: String,
    /// Credited lead conversions.
    pub leads: f64,
    /// Credited customer conversions.
    pub customers: f64,
    /// Their credited revenue (minor units).
    pub revenue: f64,
    /// Credited conversions of the query's kind.
    pub conversions: f64,
    /// Their credited revenue.
    pub conversion_revenue: f64,
}

/// The sources report from counts ([`Counted`]) and credited figures computed elsewhere
/// ([`CreditedRow`]s), with `spend` (the spend rows, as for [`sources`]): the same rows,
/// spend, costs, order and totals as [`sources`] gives from the sessions they come from.
pub fn sources_credited(
    spend: &[SpendRow],
    counted: &Counted,
    credited: &[CreditedRow],
    query: &Query,
) -> SourcesReport {
    let data = ReportData {
        spend: spend.to_vec(),
        ..ReportData::default()
    };
    let idx = Index::leads_only(&data, query.include_bots);
    let (rows, totals, spend_reconciliation) = compute(
        &data,
        &idx,
        query,
        query.from,
        query.to,
        &Chains::default(),
        Some(counted),
        credited,
    );
    SourcesReport {
        query: query.clone(),
        rows,
        totals,
        spend_reconciliation,
    }
}

#[allow(clippy::too_many_arguments)]
fn compute<'a>(
    data: &'a ReportData,
    idx: &Index<'a>,
    query: &Query,
    from: i64,
    to: i64,
    chains: &Chains,
    counted: Option<&'a Counted>,
    credited: &'a [CreditedRow],
) -> (Vec<SourceRow>, SourceRow, SpendReconciliation) {
    let in_range = |t: i64| t >= from && t < to;
    let filters = &query.filters;
    let group_by = query.group_by;
    // keys borrow from the data: no allocation per session
    let mut rows: BTreeMap<&'a str, SourceRow> = BTreeMap::new();
    let mut row_visitors: BTreeMap<&'a str, BTreeSet<&'a str>> = BTreeMap::new();
    let mut all_visitors: BTreeSet<&str> = BTreeSet::new();
    let mut total_sessions = 0u64;
    let mut total_pageviews = 0u64;

    if let Some(counted) = counted {
        for t in &counted.rows {
            let key: &'a str = &t.key;
            let r = rows.entry(key).or_insert_with(|| SourceRow::named(key));
            r.sessions = r.sessions.saturating_add(t.sessions);
            r.visitors = r.visitors.saturating_add(t.visitors);
            r.pageviews = r.pageviews.saturating_add(t.pageviews);
            total_sessions = total_sessions.saturating_add(t.sessions);
            total_pageviews = total_pageviews.saturating_add(t.pageviews);
        }
    }
    for s in idx
        .sessions
        .iter()
        .filter(|s| counted.is_none() && in_range(s.started_at) && filters.matches(s))
    {
        let key: &'a str = group_by.key(s);
        let r = rows.entry(key).or_insert_with(|| SourceRow::named(key));
        r.sessions += 1;
        r.pageviews = r.pageviews.saturating_add(s.pageviews);
        total_pageviews = total_pageviews.saturating_add(s.pageviews);
        row_visitors.entry(key).or_default().insert(&s.visitor);
        all_visitors.insert(&s.visitor);
        total_sessions += 1;
    }
    for (key, visitors) in &row_visitors {
        if let Some(r) = rows.get_mut(*key) {
            r.visitors = visitors.len() as u64;
        }
    }

    let params = query.params();
    for c in data.conversions.iter().filter(|c| in_range(c.at)) {
        let is_lead = c.kind.eq_ignore_ascii_case(KIND_LEAD);
        let is_customer = c.kind.eq_ignore_ascii_case(KIND_CUSTOMER);
        let is_selected = c.kind.eq_ignore_ascii_case(&query.conversion);
        if !(is_lead || is_customer || is_selected) {
            continue;
        }
        let touches = idx.touches_of(&c.lead);
        let refs = touch_refs(touches);
        let chain = if query.model.needs_chain() {
            chains.get(&c.kind)
        } else {
            None
        };
        let credits = credit(query.model, &refs, &conversion_of(c), &params, chain);
        let revenue = c.revenue as f64;
        let mut add = |key: &'a str, share: f64| {
            let r = rows.entry(key).or_insert_with(|| SourceRow::named(key));
            if is_lead {
                r.leads += share;
            }
            if is_customer {
                r.customers += share;
                r.revenue += share * revenue;
            }
            if is_selected {
                r.conversions += share;
                r.conversion_revenue += share * revenue;
            }
        };
        if credits.is_empty() {
            if filters.is_empty() {
                add(UNATTRIBUTED, 1.0);
            }
            continue;
        }
        for cr in credits {
            if let Some(s) = touches.get(cr.index) {
                if filters.matches(s) {
                    add(group_by.key(s), cr.share);
                }
            }
        }
    }

    // credited figures computed elsewhere (credit rollups)
    for c in credited {
        let key: &'a str = &c.key;
        let r = rows.entry(key).or_insert_with(|| SourceRow::named(key));
        r.leads += c.leads;
        r.customers += c.customers;
        r.revenue += c.revenue;
        r.conversions += c.conversions;
        r.conversion_revenue += c.conversion_revenue;
    }

    // spend: the range's records (per channel, source, campaign), their part in the
    // segment, and the row each names or the unallocated line
    let mut records: BTreeMap<(&str, Option<&str>, Option<&str>), i64> = BTreeMap::new();
    for sp in data
        .spend
        .iter()
        .filter(|sp| in_range(sp.day.saturating_mul(DAY_MS)))
    {
        let k = (
            sp.channel.as_str(),
            sp.source.as_deref(),
            sp.campaign.as_deref(),
        );
        let e = records.entry(k).or_default();
        *e = e.saturating_add(sp.amount);
    }
    let own_coverage;
    let coverage: &[Coverage] = match counted {
        Some(c) => &c.coverage,
        None if filters.is_empty() => &[],
        None => {
            own_coverage = Coverage::of(
                idx.sessions
                    .iter()
                    .filter(|s| in_range(s.started_at))
                    .copied(),
                filters,
            );
            &own_coverage
        }
    };
    let holds = group_by.holds_spend();
    let mut recon = SpendReconciliation::default();
    let mut row_spend: BTreeMap<&'a str, f64> = BTreeMap::new();
    let mut unallocated: Vec<(SpendKey, f64)> = Vec::new();
    for ((channel, source, campaign), amount) in records {
        let mut key = SpendKey {
            channel: channel.to_owned(),
            source: source.map(str::to_owned),
            campaign: campaign.map(str::to_owned),
            spend: amount,
        };
        let share = match filters.spend_share(&key, coverage) {
            SpendShare::Exact(x) => x,
            SpendShare::Estimated(x) => {
                recon.basis = SpendBasis::Estimated;
                x
            }
            SpendShare::Unknown => {
                recon.not_estimated = recon.not_estimated.saturating_add(amount);
                recon.not_estimated_by.push(key);
                continue;
            }
        };
        let part = amount as f64 * share;
        if part == 0.0 {
            continue;
        }
        match group_by.spend_key(channel, source, campaign) {
            Some(k) => *row_spend.entry(k).or_default() += part,
            None => {
                key.spend = 0;
                unallocated.push((key, part));
            }
        }
    }
    for (key, part) in row_spend {
        let r = rows.entry(key).or_insert_with(|| SourceRow::named(key));
        r.spend = Some(part.round() as i64);
    }
    for (mut key, part) in unallocated {
        key.spend = part.round() as i64;
        recon.unallocated = recon.unallocated.saturating_add(key.spend);
        recon.unallocated_by.push(key);
    }
    recon
        .unallocated_by
        .sort_by(|a, b| b.spend.cmp(&a.spend).then_with(|| a.cmp(b)));

    let mut rows: Vec<SourceRow> = rows.into_values().collect();
    for r in &mut rows {
        if holds && r.key != UNATTRIBUTED {
            r.spend = Some(r.spend.unwrap_or(0));
        }
        recon.rows = recon.rows.saturating_add(r.spend.unwrap_or(0));
        r.finish_costs();
    }
    rows.sort_by(|a, b| {
        (a.key == UNATTRIBUTED)
            .cmp(&(b.key == UNATTRIBUTED))
            .then(b.sessions.cmp(&a.sessions))
            .then_with(|| a.key.cmp(&b.key))
    });

    let mut totals = SourceRow::named("total");
    totals.visitors = match counted {
        Some(c) => c.visitors,
        None => all_visitors.len() as u64,
    };
    totals.sessions = total_sessions;
    totals.pageviews = total_pageviews;
    for r in &rows {
        totals.leads += r.leads;
        totals.customers += r.customers;
        totals.revenue += r.revenue;
        totals.conversions += r.conversions;
        totals.conversion_revenue += r.conversion_revenue;
    }
    recon.total = recon.rows.saturating_add(recon.unallocated);
    totals.spend = Some(recon.total);
    totals.finish_costs();
    (rows, totals, recon)
}

// ---------------------------------------------------------------------------------------------
// Timeseries
// ---------------------------------------------------------------------------------------------

/// The timeseries: the totals of the sources report per UTC day or ISO week of the range (at
/// most `max_buckets`; the edge refuses longer ranges). `query.group_by` is ignored.
pub fn timeseries(
    data: &ReportData,
    query: &Query,
    granularity: Granularity,
    max_buckets: usize,
) -> Vec<TimeseriesPoint> {
    let idx = Index::new(data, query.include_bots);
    let chains = if query.model.needs_chain() {
        Chains::fit_with(&idx, data, query, None)
    } else {
        Chains::default()
    };
    granularity
        .bucket_starts(query.from, query.to, max_buckets)
        .into_iter()
        .map(|start| {
            let from = start.max(query.from);
            let to = start.saturating_add(granularity.len_ms()).min(query.to);
            let (_, mut figures, _) = compute(data, &idx, query, from, to, &chains, None, &[]);
            figures.key = granularity.label(start);
            TimeseriesPoint {
                bucket: figures.key.clone(),
                from,
                to,
                figures,
            }
        })
        .collect()
}

/// [`timeseries`] from counts (issue 14's rollups): `leads` as for [`sources_counted`] over the
/// whole range, `steps` the range's [`Counted::steps`] (for the `data_driven` chains, fitted
/// once over the whole range) and `counted(from, to)` the [`Counted`] of each bucket. The
/// same answer as [`timeseries`] over the full data.
pub fn timeseries_counted(
    leads: &ReportData,
    steps: &[StepCount],
    mut counted: impl FnMut(i64, i64) -> Counted,
    query: &Query,
    granularity: Granularity,
    max_buckets: usize,
) -> Vec<TimeseriesPoint> {
    let idx = Index::leads_only(leads, query.include_bots);
    let chains = if query.model.needs_chain() {
        Chains::fit_with(&idx, leads, query, Some(steps))
    } else {
        Chains::default()
    };
    granularity
        .bucket_starts(query.from, query.to, max_buckets)
        .into_iter()
        .map(|start| {
            let from = start.max(query.from);
            let to = start.saturating_add(granularity.len_ms()).min(query.to);
            let bucket = counted(from, to);
            let (_, mut figures, _) =
                compute(leads, &idx, query, from, to, &chains, Some(&bucket), &[]);
            figures.key = granularity.label(start);
            TimeseriesPoint {
                bucket: figures.key.clone(),
                from,
                to,
                figures,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Pages report
// ---------------------------------------------------------------------------------------------

/// How to sort the pages report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageSort {
    /// By path.
    Path,
    /// By views (the default).
    #[default]
    Views,
    /// By entrances.
    Entrances,
    /// By exits.
    Exits,
    /// By assisted leads.
    AssistedLeads,
    /// By assisted customers.
    AssistedCustomers,
    /// By assisted revenue.
    AssistedRevenue,
    /// By direct conversions.
    DirectConversions,
}

impl FromStr for PageSort {
    type Err = QueryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "path" => PageSort::Path,
            "views" => PageSort::Views,
            "entrances" => PageSort::Entrances,
            "exits" => PageSort::Exits,
            "assisted_leads" => PageSort::AssistedLeads,
            "assisted_customers" => PageSort::AssistedCustomers,
            "assisted_revenue" => PageSort::AssistedRevenue,
            "direct_conversions" => PageSort::DirectConversions,
            _ => {
                return Err(QueryError::new(
                    "sort",
                    "must be path, views, entrances, exits, assisted_leads, assisted_customers, assisted_revenue or direct_conversions",
                ))
            }
        })
    }
}

/// The pages report over `[query.from, query.to)` with `query.lookback_days`, its filters and
/// `include_bots` (`group_by`, `model` and `conversion` do not apply), sorted by `sort`
/// (`descending`, ties by path ascending).
///
/// Counted as [`crate::assists`] defines, with `lead` conversions as leads and `customer`
/// conversions as customers (revenue in minor units; stage conversions are not in this
/// report). A view is a page view whose time is in the range, whenever its session started;
/// an entrance is the first page view of its session. Filters select sessions: only page
/// views of sessions in the segment are views, entrances and assists; a direct conversion
/// counts when the session in which it happened ([`ConversionRow::session`]) is in the
/// segment (without filters, every conversion with a page counts). Rows with nothing in
/// them are left out.
///
/// `data` must hold every session with a page view that can count (those with a page view
/// in the range, and the converting leads' sessions with a page view in a lookback window)
/// and all of those sessions' page views; [`pages_counted`] gives the same answer from the
/// store's counts.
pub fn pages(data: &ReportData, query: &Query, sort: PageSort, descending: bool) -> Vec<PageRow> {
    let idx = Index::new(data, query.include_bots);
    let sessions: BTreeMap<&str, &SessionRow> =
        idx.sessions.iter().map(|s| (s.id.as_str(), *s)).collect();
    // first page view of each session
    let mut first: BTreeMap<&str, (i64, usize)> = BTreeMap::new();
    for (i, v) in data.pageviews.iter().enumerate() {
        let e = first.entry(v.session.as_str()).or_insert((v.at, i));
        if v.at < e.0 {
            *e = (v.at, i);
        }
    }
    let last = last_views(&data.pageviews);
    let lead_lists: Vec<Option<&str>> = data
        .pageviews
        .iter()
        .map(|v| {
            sessions
                .get(v.session.as_str())
                .and_then(|s| s.lead.as_deref())
        })
        .collect();
    let views: Vec<PageView<'_>> = data
        .pageviews
        .iter()
        .zip(&lead_lists)
        .enumerate()
        .filter(|(_, (v, _))| {
            sessions
                .get(v.session.as_str())
                .is_some_and(|s| query.filters.matches(s))
        })
        .map(|(i, (v, leads))| PageView {
            path: &v.path,
            at: v.at,
            entrance: first.get(v.session.as_str()).is_some_and(|f| f.1 == i),
            exit: last.get(v.session.as_str()).is_some_and(|l| l.1 == i),
            leads: leads.as_slice(),
        })
        .collect();
    let convs: Vec<PageConversion<'_>> = data
        .conversions
        .iter()
        .filter_map(|c| {
            let kind = if c.kind.eq_ignore_ascii_case(KIND_LEAD) {
                ConversionKind::Lead
            } else if c.kind.eq_ignore_ascii_case(KIND_CUSTOMER) {
                ConversionKind::Customer
            } else {
                return None;
            };
            Some(PageConversion {
                lead: &c.lead,
                at: c.at,
                kind,
                page: c.page.as_deref(),
                revenue: c.revenue as f64,
            })
        })
        .collect();
    let lookback_ms = query.params().lookback_ms;
    let mut rows = pages_report(&views, &convs, query.from, query.to, lookback_ms);
    if !query.filters.is_empty() {
        let mut direct: BTreeMap<&str, u64> = BTreeMap::new();
        for c in data.conversions.iter().filter(|c| {
            c.at >= query.from
                && c.at < query.to
                && (c.kind.eq_ignore_ascii_case(KIND_LEAD)
                    || c.kind.eq_ignore_ascii_case(KIND_CUSTOMER))
        }) {
            let in_segment = c
                .session
                .as_deref()
                .and_then(|id| sessions.get(id))
                .is_some_and(|s| query.filters.matches(s));
            if let (Some(page), true) = (c.page.as_deref(), in_segment) {
                *direct.entry(page).or_default() += 1;
            }
        }
        for r in &mut rows {
            r.direct_conversions = direct.get(r.path.as_str()).copied().unwrap_or(0);
        }
    }
    sort_pages(rows, sort, descending)
}

/// The pages report from the store's counts: every figure of every page comes counted
/// ([`PageCount::of`] of the full data for this very query: same range, lookback, filters
/// and `include_bots`), so that this only leaves out empty rows and sorts, as [`pages`] does.
///
/// ```
/// use closeloop_core::report::{pages_counted, PageCount, PageSort};
/// let counted = [
///     PageCount { path: "/pricing".into(), views: 40, entrances: 10, ..Default::default() },
///     PageCount { path: "/demo".into(), views: 12, direct_conversions: 3, ..Default::default() },
///     PageCount { path: "/old".into(), ..Default::default() },
/// ];
/// let rows = pages_counted(&counted, PageSort::DirectConversions, true);
/// let paths: Vec<&str> = rows.iter().map(|r| r.path.as_str()).collect();
/// assert_eq!(paths, ["/demo", "/pricing"]);
/// ```
pub fn pages_counted(counted: &[PageCount], sort: PageSort, descending: bool) -> Vec<PageRow> {
    let rows = counted
        .iter()
        .map(|c| PageRow {
            path: c.path.clone(),
            views: c.views,
            entrances: c.entrances,
            exits: c.exits,
            assisted_leads: c.assisted_leads,
            assisted_customers: c.assisted_customers,
            assisted_revenue: c.assisted_revenue as f64,
            direct_conversions: c.direct_conversions,
        })
        .collect();
    sort_pages(rows, sort, descending)
}

/// Leaves out the rows with nothing in them and sorts by `sort` (ties by path ascending).
fn sort_pages(mut rows: Vec<PageRow>, sort: PageSort, descending: bool) -> Vec<PageRow> {
    rows.retain(|r| {
        r.views > 0
            || r.entrances > 0
            || r.exits > 0
            || r.assisted_leads > 0
            || r.assisted_customers > 0
            || r.direct_conversions > 0
    });
    rows.sort_by(|a, b| {
        let ord = match sort {
            PageSort::Path => a.path.cmp(&b.path),
            PageSort::Views => a.views.cmp(&b.views),
            PageSort::Entrances => a.entrances.cmp(&b.entrances),
            PageSort::Exits => a.exits.cmp(&b.exits),
            PageSort::AssistedLeads => a.assisted_leads.cmp(&b.assisted_leads),
            PageSort::AssistedCustomers => a.assisted_customers.cmp(&b.assisted_customers),
            PageSort::AssistedRevenue => a.assisted_revenue.total_cmp(&b.assisted_revenue),
            PageSort::DirectConversions => a.direct_conversions.cmp(&b.direct_conversions),
        };
        let ord = if descending { ord.reverse() } else { ord };
        ord.then_with(|| a.path.cmp(&b.path))
    });
    rows
}

// ---------------------------------------------------------------------------------------------
// Lead journey
// ---------------------------------------------------------------------------------------------

/// One lead's journey (`GET /v1/sites/{site}/leads/{lead}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journey {
    /// The lead.
    pub lead: String,
    /// Its visitor ids (devices), in order of first session.
    pub visitors: Vec<String>,
    /// Its sessions in time order (bots included, flagged; they are never credited unless
    /// `include_bots`).
    pub sessions: Vec<SessionRow>,
    /// Its page views in time order.
    pub pages: Vec<JourneyPage>,
    /// Its conversions in time order, each with the credit of every model.
    pub conversions: Vec<JourneyConversion>,
}

/// One page view of a journey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JourneyPage {
    /// The page path.
    pub path: String,
    /// When (ms; serialised as RFC 3339).
    #[serde(serialize_with = "ser_ms")]
    pub at: i64,
    /// Its session.
    pub session: String,
    /// Its visitor.
    pub visitor: String,
}

/// One conversion of a journey with every model's credit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JourneyConversion {
    /// The conversion.
    pub conversion: ConversionRow,
    /// One entry per model, in [`Model::ALL`] order.
    pub credits: Vec<ModelCredit>,
}

/// What one model gives the touches of one conversion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCredit {
    /// The model.
    pub model: Model,
    /// The touches in the window, in time order (empty when none: unattributed).
    pub touches: Vec<TouchCredit>,
}

/// One touch's credit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TouchCredit {
    /// The session (touch).
    pub session: String,
    /// Its channel.
    pub channel: String,
    /// Its share of the conversion, in `[0, 1]`.
    pub share: f64,
    /// Its share of the revenue (minor units).
    pub revenue: f64,
}

/// The journey of `lead` (`None` when the data has neither a session nor a conversion of it).
/// Credits use `query.lookback_days`, `query.half_life_days`, `query.include_bots` and, for
/// `data_driven`, `chains` (fit them with [`Chains::fit`] over the range the caller chooses,
/// e.g. the 90 days before now).
pub fn journey(data: &ReportData, lead: &str, query: &Query, chains: &Chains) -> Option<Journey> {
    let mut sessions: Vec<&SessionRow> = data
        .sessions
        .iter()
        .filter(|s| s.lead.as_deref() == Some(lead))
        .collect();
    sessions.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
    let mut conversions: Vec<&ConversionRow> =
        data.conversions.iter().filter(|c| c.lead == lead).collect();
    conversions.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
    if sessions.is_empty() && conversions.is_empty() {
        return None;
    }
    let mut visitors: Vec<String> = Vec::new();
    for s in &sessions {
        if !visitors.contains(&s.visitor) {
            visitors.push(s.visitor.clone());
        }
    }
    let by_id: BTreeMap<&str, &SessionRow> = sessions.iter().map(|s| (s.id.as_str(), *s)).collect();
    let mut pages: Vec<JourneyPage> = data
        .pageviews
        .iter()
        .filter_map(|v| {
            by_id.get(v.session.as_str()).map(|s| JourneyPage {
                path: v.path.clone(),
                at: v.at,
                session: v.session.clone(),
                visitor: s.visitor.clone(),
            })
        })
        .collect();
    pages.sort_by(|a, b| (a.at, &a.session, &a.path).cmp(&(b.at, &b.session, &b.path)));

    let touches: Vec<&SessionRow> = sessions
        .iter()
        .copied()
        .filter(|s| query.include_bots || !s.is_bot)
        .collect();
    let refs = touch_refs(&touches);
    let params = query.params();
    let conversions = conversions
        .into_iter()
        .map(|c| {
            let conv = conversion_of(c);
            let credits = Model::ALL
                .into_iter()
                .map(|model| {
                    let chain = chains.get(&c.kind);
                    let touches = credit(model, &refs, &conv, &params, chain)
                        .into_iter()
                        .filter_map(|cr| {
                            touches.get(cr.index).map(|s| TouchCredit {
                                session: s.id.clone(),
                                channel: s.channel.clone(),
                                share: cr.share,
                                revenue: cr.share * c.revenue as f64,
                            })
                        })
                        .collect();
                    ModelCredit { model, touches }
                })
                .collect();
            JourneyConversion {
                conversion: c.clone(),
                credits,
            }
        })
        .collect();
    Some(Journey {
        lead: lead.to_owned(),
        visitors,
        sessions: sessions.into_iter().cloned().collect(),
        pages,
        conversions,
    })
}
