//! Rollups: every traffic figure of the reports, defined once, as pure mergeable values that
//! issue 14's shards only store and sum.
//!
//! # What a rollup holds
//!
//! [`Rollup`] holds, per **hour** (of a session's start, or of a page view) and per
//! [`RowKey`] — (channel, source, medium, campaign, landing page, country, device) and the bot
//! flag, so bot traffic stays apart and every grouping and segment filter of the reports can
//! be answered from it:
//! - per row: sessions, page views (of the sessions started in the hour), new visitors (the
//!   visitor's first session) and the visitors themselves, as an exact multiset of
//!   [`visitors::visitor_hash`]es (hash → sessions);
//! - per page and row: views, entrances (the session's first page view) and exits (its last);
//! - the first-order Markov **transition counts** `data_driven` needs: per session, the step
//!   from the visitor's previous session's channel to its own, with the previous session's
//!   hour, twice — among non-bot sessions, and among all sessions (`include_bots`) — so that
//!   for a range starting at an hour the step's previous channel counts only when that session
//!   is in the range too (what `report::Counted::steps` defines).
//!
//! A rollup is a sum of sessions' contributions ([`SessionFacts`]), with signed counts:
//! [`Rollup::add`], [`Rollup::remove`] and [`Rollup::merge`] form a group (adding then
//! removing a session gives back the same value, in any order), so a shard applies a batch's
//! [`crate::resession::Changes`] as "the old sessions out, the new ones in"
//! ([`Rollup::apply`]) and rollups of shards, hours or batches merge by summing.
//!
//! # Removal and sketches
//!
//! Sketches cannot subtract. So the hour rollups keep **exact** visitor multisets, which can
//! (a re-cut session's visitor is taken out of its hour and put back where it now belongs).
//! For long ranges a shard keeps day summaries ([`Rollup::days`], a [`DayRollup`]): the same
//! figures per day with each row's visitors as a [`visitors::VisitorSet`] — exact hashes up
//! to [`visitors::EXACT_LIMIT`] visitors, a HyperLogLog sketch beyond. A day whose hours
//! change is summarised again from its hours, never patched. Answers merged only from exact
//! pieces are exact; one sketch makes them an estimate, which says so (`visitors_exact`).
//!
//! # Ranges
//!
//! A rollup answers ranges whose ends fall on its buckets (whole hours for [`Rollup`], whole
//! days for [`DayRollup`]); [`answer`] checks it, and gives every figure of the sources,
//! pages and timeseries reports, checked equal to `report`'s reference by proptest
//! (`core/tests/rollups.rs`). Credited figures come from the leads' journeys (as
//! `report::sources_counted` does) or, for the site's default lookback and half-life, from
//! the credit rollups ([`credit`]).

pub mod answer;
pub mod credit;

pub mod visitors;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::arrival::SessionTouch;
use crate::report::{SessionRow, NOT_SET};
use crate::resession::{Changes, Marker, PageRef, VisitSession};
use visitors::{visitor_hash, VisitorSet};

/// One hour in ms.
pub const HOUR_MS: i64 = 60 * 60 * 1000;
/// One day in ms.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Everything a report groups or filters a session by (its touch, landing page, the geo and
/// device of its first event) and the bot flag.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RowKey {
    /// Channel group.
    pub channel: String,
    /// Source.
    pub source: String,
    /// Medium.
    pub medium: String,
    /// Campaign.
    pub campaign: Option<String>,
    /// The session's landing path.
    pub landing_page: String,
    /// Country of its first event.
    pub country: Option<String>,
    /// Device type of its first event.
    pub device: Option<String>,
    /// Whether it is a bot's session.
    pub is_bot: bool,
}

impl RowKey {
    /// The key of a stored session.
    pub fn of(s: &VisitSession<SessionTouch>) -> RowKey {
        let direct;
        let t = match &s.touch {
            Some(t) => t,
            None => {
                direct = SessionTouch::direct();
                &direct
            }
        };
        RowKey {
            channel: t.channel.clone(),
            source: t.source.clone(),
            medium: t.medium.clone(),
            campaign: t.campaign.clone(),
            landing_page: s.landing_path.clone(),
            country: s.country.clone(),
            device: s.device.clone(),
            is_bot: s.is_bot,
        }
    }

    /// The key as the report engine's session row (for its grouping and filters).
    pub fn as_session_row(&self) -> SessionRow {
        SessionRow {
            channel: self.channel.clone(),
            source: self.source.clone(),
            medium: self.medium.clone(),
            campaign: self.campaign.clone(),
            landing_page: self.landing_page.clone(),
            country: self.country.clone(),
            device: self.device.clone(),
            is_bot: self.is_bot,
            ..SessionRow::default()
        }
    }

    /// The campaign as rows and filters name it (`(not set)` when none).
    pub fn campaign_or_not_set(&self) -> &str {
        self.campaign.as_deref().unwrap_or(NOT_SET)
    }
}

/// A step of a visitor's journey: the previous session's channel and hour, and this one's
/// channel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StepKey {
    /// Among all sessions (`include_bots`) rather than non-bot ones.
    pub with_bots: bool,
    /// The previous session's channel and bucket (hour, or day in a [`DayRollup`]).
    pub previous: Option<(String, i64)>,
    /// The session's channel.
    pub channel: String,
}

/// What one session contributes to the rollups, from its stored summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFacts {
    /// [`visitor_hash`] of its visitor.
    pub visitor: u64,
    /// The hour of its start (hours since the epoch).
    pub hour: i64,
    /// Its row key.
    pub key: RowKey,
    /// Its page views.
    pub pageviews: u64,
    /// Whether it is the visitor's first session.
    pub new_visitor: bool,
    /// Its entrance: the hour and path of its first page view.
    pub entrance: Option<(i64, String)>,
    /// Its exit: the hour and path of its last page view.
    pub exit: Option<(i64, String)>,
    /// Its steps: among all sessions, and (for a non-bot session) among non-bot sessions.
    pub steps: Vec<StepKey>,
}

fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS)
}

fn channel_of(touch: &Option<SessionTouch>) -> String {
    touch
        .as_ref()
        .map_or_else(|| SessionTouch::direct().channel, |t| t.channel.clone())
}

fn previous(m: &Option<Marker<SessionTouch>>) -> Option<(String, i64)> {
    m.as_ref().map(|m| (channel_of(&m.touch), hour_of(m.start)))
}

impl SessionFacts {
    /// The contribution of a visitor's stored session.
    pub fn of(visitor: &str, s: &VisitSession<SessionTouch>) -> SessionFacts {
        SessionFacts::of_hashed(visitor_hash(visitor), s)
    }

    /// [`SessionFacts::of`] with the visitor's hash already made.
    pub fn of_hashed(visitor: u64, s: &VisitSession<SessionTouch>) -> SessionFacts {
        let channel = channel_of(&s.touch);
        let mut steps = vec![StepKey {
            with_bots: true,
            previous: previous(&s.prev_any),
            channel: channel.clone(),
        }];
        if !s.is_bot {
            steps.push(StepKey {
                with_bots: false,
                previous: previous(&s.prev_human),
                channel,
            });
        }
        let page = |p: &Option<PageRef>| p.as_ref().map(|p| (hour_of(p.at), p.path.clone()));
        SessionFacts {
            visitor,
            hour: hour_of(s.start),
            key: RowKey::of(s),
            pageviews: s.pageviews,
            new_visitor: s.prev_any.is_none(),
            entrance: page(&s.entrance),
            exit: page(&s.exit),
            steps,
        }
    }
}

/// The traffic of one row in one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row<V> {
    /// Sessions started.
    pub sessions: i64,
    /// Their page views.
    pub pageviews: i64,
    /// Of those sessions, the visitors' first ones.
    pub new_visitors: i64,
    /// The visitors.
    pub visitors: V,
}

/// The figures of one page (and row) in one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageFigures {
    /// Page views.
    pub views: i64,
    /// First page views of their sessions.
    pub entrances: i64,
    /// Last page views of their sessions.
    pub exits: i64,
}

impl PageFigures {
    fn is_zero(&self) -> bool {
        self.views == 0 && self.entrances == 0 && self.exits == 0
    }
}

/// One bucket (an hour, or a day) of a rollup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket<V> {
    /// Per row key.
    pub rows: BTreeMap<RowKey, Row<V>>,
    /// Per (page path, row key of its session).
    pub pages: BTreeMap<(String, RowKey), PageFigures>,
    /// Journey steps of the sessions started in the bucket.
    pub steps: BTreeMap<StepKey, i64>,
}

impl<V> Default for Bucket<V> {
    fn default() -> Self {
        Bucket {
            rows: BTreeMap::new(),
            pages: BTreeMap::new(),
            steps: BTreeMap::new(),
        }
    }
}

impl<V> Bucket<V> {
    fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.pages.is_empty() && self.steps.is_empty()
    }
}

/// An exact multiset of visitor hashes (hash → sessions), signed so that it can be summed
/// and taken apart in any order.
pub type VisitorCounts = BTreeMap<u64, i64>;

/// The hour rollup of a site (or of one shard, or one batch's changes): exact, and removable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rollup {
    /// Per hour (hours since the epoch).
    pub hours: BTreeMap<i64, Bucket<VisitorCounts>>,
}

/// A day summary of hour rollups for long ranges: visitors as [`VisitorSet`]s (exact up to
/// [`visitors::EXACT_LIMIT`], then sketches). Merge-only: a changed day is summarised again.
#[derive(Debug, Clone, Default)]
pub struct DayRollup {
    /// Per day (days since the epoch); steps' previous buckets are days too.
    pub days: BTreeMap<i64, Bucket<VisitorSet>>,
}

fn bump<K: Ord + Clone>(map: &mut BTreeMap<K, i64>, key: &K, n: i64) {
    if n == 0 {
        return;
    }
    let v = map.entry(key.clone()).or_insert(0);
    *v += n;
    if *v == 0 {
        map.remove(key);
    }
}

impl Rollup {
    /// An empty rollup.
    pub fn new() -> Rollup {
        Rollup::default()
    }

    /// Adds a session's contribution with all of `views` (its page views: (time, path); for a
    /// whole session, every one of them).
    pub fn add(&mut self, session: &SessionFacts, views: &[(i64, String)]) {
        self.session(session, 1);
        self.views(&session.key, views, 1);
    }

    /// Takes a session's contribution out again (the exact inverse of [`Rollup::add`]).
    pub fn remove(&mut self, session: &SessionFacts, views: &[(i64, String)]) {
        self.session(session, -1);
        self.views(&session.key, views, -1);
    }

    /// Adds `sign` times a session's session-level figures (not its page views).
    pub fn session(&mut self, f: &SessionFacts, sign: i64) {
        let hour = self.hours.entry(f.hour).or_default();
        let row = hour.rows.entry(f.key.clone()).or_default();
        row.sessions += sign;
        row.pageviews += sign * f.pageviews as i64;
        if f.new_visitor {
            row.new_visitors += sign;
        }
        bump(&mut row.visitors, &f.visitor, sign);
        if row.sessions == 0
            && row.pageviews == 0
            && row.new_visitors == 0
            && row.visitors.is_empty()
        {
            hour.rows.remove(&f.key);
        }
        for step in &f.steps {
            bump(&mut hour.steps, step, sign);
        }
        self.drop_if_empty(f.hour);
        for (which, page) in [(0, &f.entrance), (1, &f.exit)] {
            if let Some((h, path)) = page {
                self.page(*h, path, &f.key, |p| {
                    if which == 0 {
                        p.entrances += sign
                    } else {
                        p.exits += sign
                    }
                });
            }
        }
    }

    /// Adds `sign` times these page views (time, path) of a session with `key`.
    pub fn views(&mut self, key: &RowKey, views: &[(i64, String)], sign: i64) {
        for (at, path) in views {
            self.page(hour_of(*at), path, key, |p| p.views += sign);
        }
    }

    fn page(&mut self, hour: i64, path: &str, key: &RowKey, f: impl FnOnce(&mut PageFigures)) {
        let bucket = self.hours.entry(hour).or_default();
        let k = (path.to_owned(), key.clone());
        let p = bucket.pages.entry(k.clone()).or_default();
        f(p);
        if p.is_zero() {
            bucket.pages.remove(&k);
        }
        self.drop_if_empty(hour);
    }

    fn drop_if_empty(&mut self, hour: i64) {
        if self.hours.get(&hour).is_some_and(Bucket::is_empty) {
            self.hours.remove(&hour);
        }
    }

    /// Sums another rollup in.
    pub fn merge(&mut self, other: &Rollup) {
        for (&h, b) in &other.hours {
            let mine = self.hours.entry(h).or_default();
            for (k, r) in &b.rows {
                let row = mine.rows.entry(k.clone()).or_default();
                row.sessions += r.sessions;
                row.pageviews += r.pageviews;
                row.new_visitors += r.new_visitors;
                for (v, n) in &r.visitors {
                    bump(&mut row.visitors, v, *n);
                }
                if row.sessions == 0
                    && row.pageviews == 0
                    && row.new_visitors == 0
                    && row.visitors.is_empty()
                {
                    mine.rows.remove(k);
                }
            }
            for (k, p) in &b.pages {
                let page = mine.pages.entry(k.clone()).or_default();
                page.views += p.views;
                page.entrances += p.entrances;
                page.exits += p.exits;
                if page.is_zero() {
                    mine.pages.remove(k);
                }
            }
            for (k, n) in &b.steps {
                bump(&mut mine.steps, k, *n);
            }
            self.drop_if_empty(h);
        }
    }

    /// Applies one visitor's batch ([`crate::resession::resessionize`]'s changes): every
    /// touched session's old contribution out, its new one in, and the page views that left
    /// or joined a session moved with them.
    pub fn apply(&mut self, visitor: &str, changes: &Changes<SessionTouch>) {
        let hash = visitor_hash(visitor);
        for c in &changes.sessions {
            let views = |pages: &[PageRef]| -> Vec<(i64, String)> {
                pages.iter().map(|p| (p.at, p.path.clone())).collect()
            };
            if let Some(old) = &c.old {
                let f = SessionFacts::of_hashed(hash, old);
                self.session(&f, -1);
                self.views(&f.key, &views(&c.views_out), -1);
            }
            if let Some(new) = &c.new {
                let f = SessionFacts::of_hashed(hash, new);
                self.session(&f, 1);
                self.views(&f.key, &views(&c.views_in), 1);
            }
        }
    }

    /// The day summary of these hours: figures summed per day, visitors as
    /// [`VisitorSet`]s (sketches beyond [`visitors::EXACT_LIMIT`]), steps' previous hours
    /// turned into days.
    pub fn days(&self) -> DayRollup {
        let mut out = DayRollup::default();
        for (&h, b) in &self.hours {
            let day = (h * HOUR_MS).div_euclid(DAY_MS);
            let bucket = out.days.entry(day).or_default();
            for (k, r) in &b.rows {
                let row = bucket.rows.entry(k.clone()).or_default();
                row.sessions += r.sessions;
                row.pageviews += r.pageviews;
                row.new_visitors += r.new_visitors;
                for (&v, &n) in &r.visitors {
                    if n > 0 {
                        row.visitors.insert(v);
                    }
                }
            }
            for (k, p) in &b.pages {
                let page = bucket.pages.entry(k.clone()).or_default();
                page.views += p.views;
                page.entrances += p.entrances;
                page.exits += p.exits;
            }
            for (k, n) in &b.steps {
                let key = StepKey {
                    previous: k
                        .previous
                        .as_ref()
                        .map(|(c, ph)| (c.clone(), (ph * HOUR_MS).div_euclid(DAY_MS))),
                    ..k.clone()
                };
                *bucket.steps.entry(key).or_default() += n;
            }
        }
        for b in out.days.values_mut() {
            for r in b.rows.values_mut() {
                r.visitors.compact();
            }
        }
        out
    }
}

impl DayRollup {
    /// Sums another day summary in (shards' summaries of the same days).
    pub fn merge(&mut self, other: &DayRollup) {
        for (&d, b) in &other.days {
            let mine = self.days.entry(d).or_default();
            for (k, r) in &b.rows {
                let row = mine.rows.entry(k.clone()).or_default();
                row.sessions += r.sessions;
                row.pageviews += r.pageviews;
                row.new_visitors += r.new_visitors;
                row.visitors.merge(&r.visitors);
                row.visitors.compact();
            }
            for (k, p) in &b.pages {
                let page = mine.pages.entry(k.clone()).or_default();
                page.views += p.views;
                page.entrances += p.entrances;
                page.exits += p.exits;
            }
            for (k, n) in &b.steps {
                *mine.steps.entry(k.clone()).or_default() += n;
            }
        }
    }

    /// Replaces one day by a new summary of its hours (after a late event changed them).
    pub fn replace_day(&mut self, day: i64, hours: &Rollup) {
        let fresh = hours.days();
        match fresh.days.get(&day) {
            Some(b) => {
                self.days.insert(day, b.clone());
            }
            None => {
                self.days.remove(&day);
            }
        }
    }
}
