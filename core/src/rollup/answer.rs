//! The sources, pages and timeseries reports answered from rollups (plus, for credited
//! figures and assists, the leads' journeys), giving the same figures as `report`'s reference
//! over every session (`core/tests/rollups.rs`; visitors within the sketch's stated error when
//! a piece is a sketch).
//!
//! The traffic of a range comes from the buckets it covers ([`traffic`]: a
//! `report::Counted`, what the D1 store counts in SQL today); what is credited still happens in
//! `report` ([`crate::report::sources_counted`], [`crate::report::timeseries_counted`]) over
//! the leads' sessions, conversions and spend, or from the credit rollups
//! ([`super::credit`]) for the site's default lookback and half-life.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::visitors::{VisitorSet, Visitors};
use super::{Bucket, DayRollup, Rollup, VisitorCounts, DAY_MS, HOUR_MS};
use crate::assists::PageRow;
use crate::report::{
    pages_counted, sources_counted, timeseries_counted, Counted, Coverage, PageCount, PageSort,
    Query, ReportData, SourcesReport, StepCount, TimeseriesPoint, TrafficRow,
};
use crate::time::Granularity;

/// A rollup's buckets as a report reads them.
pub trait Buckets {
    /// The visitor values of its rows.
    type Visitors: UnionInto;
    /// The length of one bucket (ms).
    fn bucket_ms(&self) -> i64;
    /// Its buckets in `[from, to)` (bucket numbers since the epoch).
    fn range(&self, from: i64, to: i64) -> Vec<(i64, &Bucket<Self::Visitors>)>;
}

/// Visitor values that a report can union.
pub trait UnionInto {
    /// Adds these visitors to `acc`.
    fn union_into(&self, acc: &mut VisitorSet);
}

impl UnionInto for VisitorCounts {
    fn union_into(&self, acc: &mut VisitorSet) {
        for (&v, &n) in self {
            if n > 0 {
                acc.insert(v);
            }
        }
    }
}

impl UnionInto for VisitorSet {
    fn union_into(&self, acc: &mut VisitorSet) {
        acc.merge(self);
    }
}

impl Buckets for Rollup {
    type Visitors = VisitorCounts;
    fn bucket_ms(&self) -> i64 {
        HOUR_MS
    }
    fn range(&self, from: i64, to: i64) -> Vec<(i64, &Bucket<VisitorCounts>)> {
        self.hours.range(from..to).map(|(k, b)| (*k, b)).collect()
    }
}

impl Buckets for DayRollup {
    type Visitors = VisitorSet;
    fn bucket_ms(&self) -> i64 {
        DAY_MS
    }
    fn range(&self, from: i64, to: i64) -> Vec<(i64, &Bucket<VisitorSet>)> {
        self.days.range(from..to).map(|(k, b)| (*k, b)).collect()
    }
}

/// A range a rollup cannot answer: its ends are not on the rollup's bucket boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAligned {
    /// The rollup's bucket length (ms): `from` and `to` must be multiples of it.
    pub bucket_ms: i64,
}

impl std::fmt::Display for NotAligned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the range must start and end on a multiple of {} ms",
            self.bucket_ms
        )
    }
}

impl std::error::Error for NotAligned {}

/// A range's traffic: what `report::Counted::of` counts over every session, and whether the
/// visitor counts are exact.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Traffic {
    /// The counts.
    pub counted: Counted,
    /// Whether every visitor figure is exact (no sketch was merged).
    pub visitors_exact: bool,
}

impl Traffic {
    /// The traffic of a site from the traffic of its shards, when every visitor lives in
    /// exactly one shard (issue 14's shards are keyed by a hash of the visitor id): rows with
    /// the same key add up, visitors too (the shards' visitor sets are disjoint, so the
    /// distinct visitors of the union are the sum), and each visitor's journey steps are
    /// counted in its own shard only, so the steps add up as well; so do the spend coverage
    /// rows (a session is in one shard). Exact when every part is. The rows, steps and
    /// coverage come out in the order [`traffic`] gives them (by key).
    pub fn merge_disjoint<'a>(parts: impl IntoIterator<Item = &'a Traffic>) -> Traffic {
        let mut rows: BTreeMap<String, TrafficRow> = BTreeMap::new();
        let mut steps: BTreeMap<(Option<String>, String), u64> = BTreeMap::new();
        let mut cover: BTreeMap<(String, String, Option<String>), (u64, u64)> = BTreeMap::new();
        let mut visitors = 0u64;
        let mut exact = true;
        for p in parts {
            exact &= p.visitors_exact;
            visitors = visitors.saturating_add(p.counted.visitors);
            for r in &p.counted.rows {
                let row = rows.entry(r.key.clone()).or_insert_with(|| TrafficRow {
                    key: r.key.clone(),
                    ..TrafficRow::default()
                });
                row.visitors = row.visitors.saturating_add(r.visitors);
                row.sessions = row.sessions.saturating_add(r.sessions);
                row.pageviews = row.pageviews.saturating_add(r.pageviews);
            }
            for s in &p.counted.steps {
                let n = steps
                    .entry((s.previous.clone(), s.channel.clone()))
                    .or_default();
                *n = n.saturating_add(s.sessions);
            }
            for c in &p.counted.coverage {
                let e = cover
                    .entry((c.channel.clone(), c.source.clone(), c.campaign.clone()))
                    .or_default();
                e.0 = e.0.saturating_add(c.sessions);
                e.1 = e.1.saturating_add(c.in_segment);
            }
        }
        Traffic {
            counted: Counted {
                rows: rows.into_values().collect(),
                visitors,
                steps: steps
                    .into_iter()
                    .map(|((previous, channel), sessions)| StepCount {
                        previous,
                        channel,
                        sessions,
                    })
                    .collect(),
                coverage: cover
                    .into_iter()
                    .map(
                        |((channel, source, campaign), (sessions, in_segment))| Coverage {
                            channel,
                            source,
                            campaign,
                            sessions,
                            in_segment,
                        },
                    )
                    .collect(),
            },
            visitors_exact: exact,
        }
    }
}

/// Page figures of a site from those of its shards (they add up: a page view is in one
/// shard).
pub fn merge_page_traffic<'a>(
    parts: impl IntoIterator<Item = &'a BTreeMap<String, super::PageFigures>>,
) -> BTreeMap<String, super::PageFigures> {
    let mut out: BTreeMap<String, super::PageFigures> = BTreeMap::new();
    for part in parts {
        for (path, p) in part {
            let f = out.entry(path.clone()).or_default();
            f.views += p.views;
            f.entrances += p.entrances;
            f.exits += p.exits;
        }
    }
    out
}

fn bucket_range<B: Buckets>(r: &B, from: i64, to: i64) -> Result<(i64, i64), NotAligned> {
    let len = r.bucket_ms();
    if from.rem_euclid(len) != 0 || to.rem_euclid(len) != 0 {
        return Err(NotAligned { bucket_ms: len });
    }
    Ok((from.div_euclid(len), to.div_euclid(len)))
}

/// The traffic of `query`'s range, grouping, segment and `include_bots` (the steps ignore the
/// segment, as the chains do), from the rollup's buckets.
pub fn traffic<B: Buckets>(r: &B, query: &Query) -> Result<Traffic, NotAligned> {
    traffic_between(r, query, query.from, query.to)
}

fn traffic_between<B: Buckets>(
    r: &B,
    query: &Query,
    from: i64,
    to: i64,
) -> Result<Traffic, NotAligned> {
    let (first, end) = bucket_range(r, from, to)?;
    let mut rows: BTreeMap<String, (TrafficRow, VisitorSet)> = BTreeMap::new();
    let mut all = VisitorSet::new();
    let mut steps: BTreeMap<(Option<String>, String), u64> = BTreeMap::new();
    // each row key's report fields once per call
    let mut seen: BTreeMap<&super::RowKey, Option<String>> = BTreeMap::new();
    // with a segment, what spend records cover (report::Coverage): every counting row key's
    // sessions per touch, and those in the segment
    let mut cover: BTreeMap<(&str, &str, Option<&str>), (u64, u64)> = BTreeMap::new();
    let mut in_segment: BTreeMap<&super::RowKey, bool> = BTreeMap::new();
    for (_, bucket) in r.range(first, end) {
        for (key, row) in &bucket.rows {
            if !query.filters.is_empty() && (query.include_bots || !key.is_bot) && row.sessions > 0
            {
                let inside = *in_segment
                    .entry(key)
                    .or_insert_with(|| query.filters.matches(&key.as_session_row()));
                let n = row.sessions as u64;
                let c = cover
                    .entry((&key.channel, &key.source, key.campaign.as_deref()))
                    .or_default();
                c.0 = c.0.saturating_add(n);
                if inside {
                    c.1 = c.1.saturating_add(n);
                }
            }
            let group = seen.entry(key).or_insert_with(|| {
                let s = key.as_session_row();
                ((query.include_bots || !key.is_bot) && query.filters.matches(&s))
                    .then(|| query.group_by.key(&s).to_owned())
            });
            let Some(group) = group else {
                continue;
            };
            let (t, v) = rows.entry(group.clone()).or_insert_with(|| {
                (
                    TrafficRow {
                        key: group.clone(),
                        ..TrafficRow::default()
                    },
                    VisitorSet::new(),
                )
            });
            t.sessions = t.sessions.saturating_add(row.sessions.max(0) as u64);
            t.pageviews = t.pageviews.saturating_add(row.pageviews.max(0) as u64);
            row.visitors.union_into(v);
            row.visitors.union_into(&mut all);
        }
        for (step, &n) in &bucket.steps {
            if step.with_bots != query.include_bots || n <= 0 {
                continue;
            }
            let previous = step
                .previous
                .as_ref()
                .filter(|(_, b)| *b >= first)
                .map(|(c, _)| c.clone());
            *steps.entry((previous, step.channel.clone())).or_default() += n as u64;
        }
    }
    let mut exact = all.is_exact();
    let rows = rows
        .into_values()
        .filter(|(t, _)| t.sessions > 0)
        .map(|(mut t, v)| {
            let c = v.count();
            exact &= c.exact;
            t.visitors = c.count;
            t
        })
        .collect();
    let Visitors { count, .. } = all.count();
    Ok(Traffic {
        counted: Counted {
            rows,
            visitors: count,
            steps: steps
                .into_iter()
                .map(|((previous, channel), sessions)| StepCount {
                    previous,
                    channel,
                    sessions,
                })
                .collect(),
            coverage: cover
                .into_iter()
                .map(
                    |((channel, source, campaign), (sessions, in_segment))| Coverage {
                        channel: channel.to_owned(),
                        source: source.to_owned(),
                        campaign: campaign.map(str::to_owned),
                        sessions,
                        in_segment,
                    },
                )
                .collect(),
        },
        visitors_exact: exact,
    })
}

/// A report answered from rollups, with whether its visitor figures are exact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollupSources {
    /// The report (as `report::sources` gives it).
    #[serde(flatten)]
    pub report: SourcesReport,
    /// `false` when a visitor figure is a sketch's estimate.
    pub visitors_exact: bool,
}

/// The sources report from a rollup and `leads` (the leads' sessions that can be touches, the
/// conversions and the spend, as for `report::sources_counted`).
pub fn sources<B: Buckets>(
    r: &B,
    leads: &ReportData,
    query: &Query,
) -> Result<RollupSources, NotAligned> {
    let t = traffic(r, query)?;
    Ok(RollupSources {
        report: sources_counted(leads, &t.counted, query),
        visitors_exact: t.visitors_exact,
    })
}

/// The timeseries from a rollup and `leads` (over the whole range). Bucket edges are on day
/// boundaries, so an hour rollup answers any day-aligned range, a day rollup too.
pub fn timeseries<B: Buckets>(
    r: &B,
    leads: &ReportData,
    query: &Query,
    granularity: Granularity,
    max_buckets: usize,
) -> Result<(Vec<TimeseriesPoint>, bool), NotAligned> {
    let whole = traffic(r, query)?;
    let mut exact = whole.visitors_exact;
    // check every bucket's ends before answering
    for start in granularity.bucket_starts(query.from, query.to, max_buckets) {
        let to = start.saturating_add(granularity.len_ms()).min(query.to);
        bucket_range(r, start.max(query.from), to)?;
    }
    let points = timeseries_counted(
        leads,
        &whole.counted.steps,
        |from, to| match traffic_between(r, query, from, to) {
            Ok(t) => {
                exact &= t.visitors_exact;
                t.counted
            }
            Err(_) => Counted::default(),
        },
        query,
        granularity,
        max_buckets,
    );
    Ok((points, exact))
}

/// Views, entrances and exits per page over `query`'s range, segment and `include_bots`.
pub fn page_traffic<B: Buckets>(
    r: &B,
    query: &Query,
) -> Result<BTreeMap<String, super::PageFigures>, NotAligned> {
    let (first, end) = bucket_range(r, query.from, query.to)?;
    let mut out: BTreeMap<String, super::PageFigures> = BTreeMap::new();
    let mut matches: BTreeMap<&super::RowKey, bool> = BTreeMap::new();
    for (_, bucket) in r.range(first, end) {
        for ((path, key), p) in &bucket.pages {
            let ok = *matches.entry(key).or_insert_with(|| {
                (query.include_bots || !key.is_bot) && query.filters.matches(&key.as_session_row())
            });
            if ok {
                let f = out.entry(path.clone()).or_default();
                f.views += p.views;
                f.entrances += p.entrances;
                f.exits += p.exits;
            }
        }
    }
    Ok(out)
}

/// The pages report from a rollup (views and entrances) and `leads` (the leads' sessions and
/// page views in the lookback windows and the conversions: assists and direct conversions, as
/// `report::PageCount::of` counts them).
pub fn pages<B: Buckets>(
    r: &B,
    leads: &ReportData,
    query: &Query,
    sort: PageSort,
    descending: bool,
) -> Result<Vec<PageRow>, NotAligned> {
    Ok(pages_from(
        &page_traffic(r, query)?,
        leads,
        query,
        sort,
        descending,
    ))
}

/// [`pages`] from page figures already summed (the shards' [`page_traffic`], merged with
/// [`merge_page_traffic`]).
pub fn pages_from(
    traffic: &BTreeMap<String, super::PageFigures>,
    leads: &ReportData,
    query: &Query,
    sort: PageSort,
    descending: bool,
) -> Vec<PageRow> {
    let credited = PageCount::of(leads, query);
    let paths: BTreeSet<&str> = traffic
        .keys()
        .map(String::as_str)
        .chain(credited.iter().map(|c| c.path.as_str()))
        .collect();
    let by_path: BTreeMap<&str, &PageCount> =
        credited.iter().map(|c| (c.path.as_str(), c)).collect();
    let counted: Vec<PageCount> = paths
        .into_iter()
        .map(|path| {
            let t = traffic.get(path).copied().unwrap_or_default();
            let c = by_path.get(path);
            PageCount {
                path: path.to_owned(),
                views: t.views.max(0) as u64,
                entrances: t.entrances.max(0) as u64,
                exits: t.exits.max(0) as u64,
                assisted_leads: c.map_or(0, |c| c.assisted_leads),
                assisted_customers: c.map_or(0, |c| c.assisted_customers),
                assisted_revenue: c.map_or(0, |c| c.assisted_revenue),
                direct_conversions: c.map_or(0, |c| c.direct_conversions),
            }
        })
        .collect();
    pages_counted(&counted, sort, descending)
}
