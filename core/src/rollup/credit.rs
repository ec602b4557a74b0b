//! Credit rollups: each conversion's credit under every model, for the site's default
//! lookback and half-life, kept per day and row key, so that the sources report over any
//! day-aligned range sums them instead of reading the leads' journeys; and
//! [`CreditRollup::delta`], for when a late event or a lead merge changes a lead's journey
//! (the old journey's contribution out, the new one's in).
//!
//! # What is kept
//!
//! A [`CreditRollup`] is a sum of leads' contributions ([`CreditRollup::of`] a
//! [`LeadJourney`]); like [`super::Rollup`] its counts are signed, so it is summed, and taken
//! apart, in any order. Per day of the conversion's time `T`:
//! - for the eight models that split a conversion by its own touches alone (all but
//!   `data_driven` and `data_driven_global`), each touch's share and revenue share, per
//!   (model, conversion kind, with or without bots, the touch's [`RowKey`]); a conversion with
//!   no touch in its window is kept under no key (the report's `(unattributed)` row). Shares
//!   are fixed-point integers of 10⁻¹² ([`SCALE`]) so that adding and removing is exact and
//!   never drifts (the report's answer is within 10⁻⁹ of the reference);
//! - for the two chain models, whose shares depend on the chain fitted over the report's
//!   range: the conversions **grouped by their path** (the row keys of the touches in their
//!   window, in order) with their count and revenue; the report fits the chains and credits
//!   each group once.
//!
//! And per hour, the leads' part of `data_driven`'s journeys: the steps of the leads'
//! visitors' sessions (taken out of every visitor's steps, which the traffic rollup counts),
//! and the steps of each lead's own journey (its visitors' sessions merged in time order),
//! summed over the leads. The chain of a conversion kind over a range is then fitted from
//! the paths of that kind's conversions in the range, every visitor's steps less the leads'
//! visitors', plus the leads' journeys, less those of the leads that converted (of that kind)
//! in the range: exactly `report`'s chain (`report::Chains`), reading only the journeys of the
//! leads that converted in the range ([`sources`]'s `converting`).
//!
//! Other lookbacks and half-lives stay query parameters computed by `report` from the leads'
//! journeys on demand ([`super::answer::sources`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::answer::{traffic, Buckets, NotAligned, RollupSources, Traffic};
use super::{RowKey, StepKey, DAY_MS, HOUR_MS};
use crate::attribution::{credit, Conversion, MarkovModel, Model, Params, TouchRef};
use crate::report::{
    conversion_of, sources_credited, ConversionRow, CreditedRow, Query, SpendRow, KIND_CUSTOMER,
    KIND_LEAD, UNATTRIBUTED,
};

/// Credit shares and revenue are kept in units of 10⁻¹².
pub const SCALE: f64 = 1e12;

/// One session of a lead's visitors, as the lead's journey keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JourneySession {
    /// Session id.
    pub id: String,
    /// Its visitor.
    pub visitor: String,
    /// Its start (ms).
    pub start: i64,
    /// Its row key (touch, landing page, geo, device, bot flag).
    pub key: RowKey,
}

/// A lead's journey as the lead directory keeps it: every session of its visitors and its
/// conversions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadJourney {
    /// The lead.
    pub lead: String,
    /// Its visitors' sessions.
    pub sessions: Vec<JourneySession>,
    /// Its conversions.
    pub conversions: Vec<ConversionRow>,
}

/// What one credit is kept under.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CreditKey {
    /// The model (never a chain model).
    pub model: Model,
    /// The conversion kind, lower case.
    pub kind: String,
    /// Whether bot sessions were touches (`include_bots`).
    pub with_bots: bool,
    /// The touch's row key; `None`: the conversion had no touch (unattributed).
    pub key: Option<RowKey>,
}

/// Credited conversions and revenue, in units of 10⁻¹² ([`SCALE`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Credit {
    /// How many (conversion, touch) credits are summed here, zero shares included: a touch
    /// that a model gives nothing still shows its row, as the report does.
    pub touches: i64,
    /// Conversions × 10¹².
    pub conversions: i128,
    /// Revenue (minor units) × 10¹².
    pub revenue: i128,
}

/// Conversions grouped by their path (for the chain models).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathKey {
    /// The conversion kind, lower case.
    pub kind: String,
    /// Whether bot sessions were touches.
    pub with_bots: bool,
    /// The row keys of the touches in the window, in order (empty: unattributed).
    pub touches: Vec<RowKey>,
}

/// One day's credits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayCredits {
    /// Per model, kind, bots and touch key.
    pub credits: BTreeMap<CreditKey, Credit>,
    /// Conversions (count, revenue in minor units) per path.
    pub paths: BTreeMap<PathKey, (i64, i64)>,
}

/// The credit rollup of a site (or of one lead: its contribution).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditRollup {
    /// The lookback and half-life it was computed with (the site's defaults).
    pub params: Params,
    /// Per day of `T` (days since the epoch).
    pub days: BTreeMap<i64, DayCredits>,
    /// Per hour: the steps of the leads' visitors' sessions (per visitor).
    pub lead_visitor_steps: BTreeMap<i64, BTreeMap<StepKey, i64>>,
    /// Per hour: the steps of the leads' own journeys (their visitors' sessions merged).
    pub lead_steps: BTreeMap<i64, BTreeMap<StepKey, i64>>,
}

fn fixed(x: f64) -> i128 {
    (x * SCALE).round() as i128
}

fn bump<K: Ord + Clone>(map: &mut BTreeMap<K, i64>, key: &K, n: i64) {
    let v = map.entry(key.clone()).or_insert(0);
    *v += n;
    if *v == 0 {
        map.remove(key);
    }
}

/// The steps of `sessions` (one journey, in time order), per hour of the session.
fn steps_of(
    sessions: &[&JourneySession],
    with_bots: bool,
    out: &mut BTreeMap<i64, BTreeMap<StepKey, i64>>,
    sign: i64,
) {
    let mut previous: Option<(String, i64)> = None;
    for s in sessions {
        let hour = s.start.div_euclid(HOUR_MS);
        let key = StepKey {
            with_bots,
            previous: previous.clone(),
            channel: s.key.channel.clone(),
        };
        bump(out.entry(hour).or_default(), &key, sign);
        if out.get(&hour).is_some_and(BTreeMap::is_empty) {
            out.remove(&hour);
        }
        previous = Some((s.key.channel.clone(), hour));
    }
}

impl CreditRollup {
    /// An empty rollup for these parameters.
    pub fn new(params: Params) -> CreditRollup {
        CreditRollup {
            params,
            days: BTreeMap::new(),
            lead_visitor_steps: BTreeMap::new(),
            lead_steps: BTreeMap::new(),
        }
    }

    /// One lead's contribution.
    pub fn of(journey: &LeadJourney, params: Params) -> CreditRollup {
        let mut r = CreditRollup::new(params);
        r.add_journey(journey, 1);
        r
    }

    /// The change from `old` to `new` journey of one lead (either may be `None`: a new lead,
    /// or one merged into another): add it to the site's rollup.
    pub fn delta(
        old: Option<&LeadJourney>,
        new: Option<&LeadJourney>,
        params: Params,
    ) -> CreditRollup {
        let mut r = CreditRollup::new(params);
        if let Some(o) = old {
            r.add_journey(o, -1);
        }
        if let Some(n) = new {
            r.add_journey(n, 1);
        }
        r
    }

    /// Sums another rollup in (same parameters).
    pub fn merge(&mut self, other: &CreditRollup) {
        for (&d, day) in &other.days {
            let mine = self.days.entry(d).or_default();
            for (k, c) in &day.credits {
                let m = mine.credits.entry(k.clone()).or_default();
                m.touches += c.touches;
                m.conversions += c.conversions;
                m.revenue += c.revenue;
                if *m == Credit::default() {
                    mine.credits.remove(k);
                }
            }
            for (k, (n, rev)) in &day.paths {
                let m = mine.paths.entry(k.clone()).or_default();
                m.0 += n;
                m.1 += rev;
                if *m == (0, 0) {
                    mine.paths.remove(k);
                }
            }
            if mine.credits.is_empty() && mine.paths.is_empty() {
                self.days.remove(&d);
            }
        }
        for (mine, theirs) in [
            (&mut self.lead_visitor_steps, &other.lead_visitor_steps),
            (&mut self.lead_steps, &other.lead_steps),
        ] {
            for (&h, steps) in theirs {
                let m = mine.entry(h).or_default();
                for (k, &n) in steps {
                    bump(m, k, n);
                }
                if m.is_empty() {
                    mine.remove(&h);
                }
            }
        }
    }

    fn add_journey(&mut self, j: &LeadJourney, sign: i64) {
        let mut part = CreditRollup::new(self.params);
        for with_bots in [false, true] {
            let mut sessions: Vec<&JourneySession> = j
                .sessions
                .iter()
                .filter(|s| with_bots || !s.key.is_bot)
                .collect();
            sessions.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
            sessions.dedup_by(|a, b| a.id == b.id);
            // the journey's steps, and its visitors' own
            steps_of(&sessions, with_bots, &mut part.lead_steps, sign);
            let mut by_visitor: BTreeMap<&str, Vec<&JourneySession>> = BTreeMap::new();
            for s in &sessions {
                by_visitor.entry(&s.visitor).or_default().push(s);
            }
            for list in by_visitor.values() {
                steps_of(list, with_bots, &mut part.lead_visitor_steps, sign);
            }
            let refs: Vec<TouchRef<'_>> = sessions
                .iter()
                .map(|s| TouchRef {
                    at: s.start,
                    channel: &s.key.channel,
                    direct: s.key.channel.eq_ignore_ascii_case("direct"),
                })
                .collect();
            for c in &j.conversions {
                let day = c.at.div_euclid(DAY_MS);
                let kind = c.kind.to_ascii_lowercase();
                let conv = conversion_of(c);
                let dc = part.days.entry(day).or_default();
                let window = crate::attribution::window(&refs, c.at, self.params.lookback_ms);
                let touches: Vec<RowKey> = window
                    .iter()
                    .filter_map(|&i| sessions.get(i).map(|s| s.key.clone()))
                    .collect();
                let p = dc
                    .paths
                    .entry(PathKey {
                        kind: kind.clone(),
                        with_bots,
                        touches,
                    })
                    .or_default();
                p.0 += sign;
                p.1 += sign * c.revenue;
                for model in Model::ALL.into_iter().filter(|m| !m.needs_chain()) {
                    let credits = credit(model, &refs, &conv, &self.params, None);
                    let mut add = |key: Option<RowKey>, share: f64| {
                        let e = dc
                            .credits
                            .entry(CreditKey {
                                model,
                                kind: kind.clone(),
                                with_bots,
                                key,
                            })
                            .or_default();
                        e.touches += sign;
                        e.conversions += i128::from(sign) * fixed(share);
                        e.revenue += i128::from(sign) * fixed(share * c.revenue as f64);
                    };
                    if credits.is_empty() {
                        add(None, 1.0);
                    }
                    for cr in credits {
                        if let Some(s) = sessions.get(cr.index) {
                            add(Some(s.key.clone()), cr.share);
                        }
                    }
                }
            }
        }
        self.merge(&part);
    }
}

/// Why the credit rollups cannot answer a query (the caller then credits from the journeys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CannotAnswer {
    /// The range does not start and end on days (credits are kept per day), or not on the
    /// traffic rollup's buckets.
    NotAligned(NotAligned),
    /// The query's lookback or half-life is not the one the credits were computed with.
    OtherParams,
}

/// The sources report from the traffic rollup `r`, the credit rollup and `converting`, the
/// journeys of the leads with a conversion in the range (only read for the chain models:
/// their journeys leave the non-converting ones), with `spend`. The same answer as
/// `report::sources` over every session, when the query has the credit rollup's lookback and
/// half-life and a day-aligned range.
pub fn sources<B: Buckets>(
    r: &B,
    credits: &CreditRollup,
    converting: &[LeadJourney],
    spend: &[SpendRow],
    query: &Query,
) -> Result<RollupSources, CannotAnswer> {
    check(credits, query)?;
    let t = traffic(r, query).map_err(CannotAnswer::NotAligned)?;
    sources_from(&t, credits, converting, spend, query)
}

/// Whether the credit rollup can answer `query` (its parameters, a day-aligned range).
fn check(credits: &CreditRollup, query: &Query) -> Result<(), CannotAnswer> {
    if query.params() != credits.params {
        return Err(CannotAnswer::OtherParams);
    }
    if query.from.rem_euclid(DAY_MS) != 0 || query.to.rem_euclid(DAY_MS) != 0 {
        return Err(CannotAnswer::NotAligned(NotAligned { bucket_ms: DAY_MS }));
    }
    Ok(())
}

/// [`sources`] from the range's traffic already counted ([`traffic`] of the rollup, or the
/// shards' traffic summed with [`Traffic::merge_disjoint`]): what a site split into shards
/// answers with. `credits` needs only the days of the range and the hours of the range's
/// lead steps.
pub fn sources_from(
    t: &Traffic,
    credits: &CreditRollup,
    converting: &[LeadJourney],
    spend: &[SpendRow],
    query: &Query,
) -> Result<RollupSources, CannotAnswer> {
    check(credits, query)?;
    let (first_day, end_day) = (query.from / DAY_MS, query.to / DAY_MS);
    let filters = &query.filters;
    let mut rows: BTreeMap<String, CreditedRow> = BTreeMap::new();
    let mut add = |key: Option<&RowKey>, kind: &str, conversions: f64, revenue: f64| {
        let group = match key {
            None if filters.is_empty() => UNATTRIBUTED.to_owned(),
            None => return,
            Some(k) => {
                let s = k.as_session_row();
                if !filters.matches(&s) {
                    return;
                }
                query.group_by.key(&s).to_owned()
            }
        };
        let row = rows.entry(group.clone()).or_insert_with(|| CreditedRow {
            key: group,
            ..CreditedRow::default()
        });
        if kind == KIND_LEAD {
            row.leads += conversions;
        }
        if kind == KIND_CUSTOMER {
            row.customers += conversions;
            row.revenue += revenue;
        }
        if kind == query.conversion {
            row.conversions += conversions;
            row.conversion_revenue += revenue;
        }
    };
    let wanted =
        |kind: &str| kind == KIND_LEAD || kind == KIND_CUSTOMER || kind == query.conversion;
    let days = credits.days.range(first_day..end_day);
    if !query.model.needs_chain() {
        // sum per key first (exact integers), then one conversion to f64 per key
        let mut sums: BTreeMap<(&str, Option<&RowKey>), Credit> = BTreeMap::new();
        for (_, day) in days {
            for (k, c) in &day.credits {
                if k.model == query.model && k.with_bots == query.include_bots && wanted(&k.kind) {
                    let e = sums.entry((k.kind.as_str(), k.key.as_ref())).or_default();
                    e.touches += c.touches;
                    e.conversions += c.conversions;
                    e.revenue += c.revenue;
                }
            }
        }
        for ((kind, key), c) in sums.into_iter().filter(|(_, c)| c.touches > 0) {
            add(
                key,
                kind,
                c.conversions as f64 / SCALE,
                c.revenue as f64 / SCALE,
            );
        }
    } else {
        let chains = chains(t, credits, converting, query);
        for (_, day) in days {
            for (p, &(n, revenue)) in &day.paths {
                if p.with_bots != query.include_bots || !wanted(&p.kind) || n == 0 {
                    continue;
                }
                if p.touches.is_empty() {
                    add(None, &p.kind, n as f64, revenue as f64);
                    continue;
                }
                let refs: Vec<TouchRef<'_>> = p
                    .touches
                    .iter()
                    .enumerate()
                    .map(|(i, k)| TouchRef {
                        at: i as i64,
                        channel: &k.channel,
                        direct: k.channel.eq_ignore_ascii_case("direct"),
                    })
                    .collect();
                let conv = Conversion::lead(p.touches.len() as i64);
                let all = Params {
                    lookback_ms: i64::MAX / 4,
                    ..credits.params
                };
                let chain = chains.get(&p.kind);
                for cr in credit(query.model, &refs, &conv, &all, chain) {
                    if let Some(k) = p.touches.get(cr.index) {
                        add(
                            Some(k),
                            &p.kind,
                            cr.share * n as f64,
                            cr.share * revenue as f64,
                        );
                    }
                }
            }
        }
    }
    let credited: Vec<CreditedRow> = rows.into_values().collect();
    Ok(RollupSources {
        report: sources_credited(spend, &t.counted, &credited, query),
        visitors_exact: t.visitors_exact,
    })
}

/// The chains of the kinds the report credits, over the query's range, from the range's
/// traffic and the credit rollup (see the module docs).
fn chains(
    t: &Traffic,
    credits: &CreditRollup,
    converting: &[LeadJourney],
    query: &Query,
) -> BTreeMap<String, MarkovModel> {
    let (from_hour, to_hour) = (query.from / HOUR_MS, query.to / HOUR_MS);
    let with_bots = query.include_bots;
    let in_range = |t: i64| t >= query.from && t < query.to;
    // steps over the range, as (previous channel if in range, channel)
    let fold = |per_hour: &BTreeMap<i64, BTreeMap<StepKey, i64>>,
                sign: i64,
                acc: &mut BTreeMap<(Option<String>, String), i64>| {
        for (_, steps) in per_hour.range(from_hour..to_hour) {
            for (k, n) in steps.iter().filter(|(k, _)| k.with_bots == with_bots) {
                let prev = k
                    .previous
                    .as_ref()
                    .filter(|(_, h)| *h >= from_hour)
                    .map(|(c, _)| c.clone());
                *acc.entry((prev, k.channel.clone())).or_default() += sign * n;
            }
        }
    };
    let mut base: BTreeMap<(Option<String>, String), i64> = BTreeMap::new();
    for s in &t.counted.steps {
        *base
            .entry((s.previous.clone(), s.channel.clone()))
            .or_default() += s.sessions as i64;
    }
    fold(&credits.lead_visitor_steps, -1, &mut base);
    fold(&credits.lead_steps, 1, &mut base);
    let mut kinds: Vec<String> = vec![
        KIND_LEAD.to_owned(),
        KIND_CUSTOMER.to_owned(),
        query.conversion.clone(),
    ];
    kinds.sort();
    kinds.dedup();
    let mut out = BTreeMap::new();
    for kind in kinds {
        let mut steps = base.clone();
        for j in converting.iter().filter(|j| {
            j.conversions
                .iter()
                .any(|c| in_range(c.at) && c.kind.eq_ignore_ascii_case(&kind))
        }) {
            let own = CreditRollup::of(
                &LeadJourney {
                    conversions: Vec::new(),
                    ..j.clone()
                },
                credits.params,
            );
            fold(&own.lead_steps, -1, &mut steps);
        }
        let mut paths: BTreeMap<Vec<&str>, u64> = BTreeMap::new();
        for (_, day) in credits.days.range(query.from / DAY_MS..query.to / DAY_MS) {
            for (p, &(n, _)) in &day.paths {
                if p.kind == kind && p.with_bots == with_bots && n > 0 {
                    let channels: Vec<&str> =
                        p.touches.iter().map(|k| k.channel.as_str()).collect();
                    *paths.entry(channels).or_default() += n as u64;
                }
            }
        }
        let model = MarkovModel::fit_with_steps(
            paths.iter().map(|(c, &n)| (c.iter().copied(), true, n)),
            steps
                .iter()
                .filter(|(_, &n)| n > 0)
                .map(|((prev, ch), &n)| (prev.as_deref(), ch.as_str(), n as u64)),
        );
        out.insert(kind, model);
    }
    out
}
