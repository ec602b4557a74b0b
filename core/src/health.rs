//! A site's beacon health: what its trackers sent and what became of it, per UTC day of
//! receipt. The edge counts into rows of (day, metric, n) — [`metric`] names them — and
//! [`summarise`] turns a range of those rows into the answer of
//! `GET /v1/sites/{site}/health`.
//!
//! Metrics:
//! - `accepted`: events stored from `/v1/collect` (a retry's duplicates are not counted);
//!   its row also keeps the last time one was received (`last_seen`).
//! - `rejected:{code}`: events of a readable batch refused one by one (`invalid_url`,
//!   `foreign_host`, `user_hash_required`, `visitor_quota_exceeded`, ...).
//! - `refused:{code}`: whole batches refused (`origin_required`, `origin_not_allowed`,
//!   `rate_limited`, `site_quota_exceeded`, `malformed_json` with a readable `site_id`...).
//! - `dropped`: events the trackers say they dropped from their bounded queues (the
//!   batch's `dropped`, counted when the batch stored something new, so a retry is not
//!   counted twice).
//! - `clock_skew`: batches from a device clock more than 24 hours off (kept, their times
//!   derived from their own offsets).

use crate::time::{format_date, format_rfc3339, MS_PER_DAY};
use serde::Serialize;
use std::collections::BTreeMap;

/// The metric of stored events.
pub const ACCEPTED: &str = "accepted";
/// The metric of the trackers' dropped events.
pub const DROPPED: &str = "dropped";
/// The metric of batches from a skewed device clock.
pub const CLOCK_SKEW: &str = "clock_skew";
/// Prefix of rejected events' metrics.
pub const REJECTED_PREFIX: &str = "rejected:";
/// Prefix of refused batches' metrics.
pub const REFUSED_PREFIX: &str = "refused:";

/// Names the metrics the edge counts.
pub mod metric {
    use super::{REFUSED_PREFIX, REJECTED_PREFIX};

    /// Events rejected with `code`.
    pub fn rejected(code: &str) -> String {
        format!("{REJECTED_PREFIX}{code}")
    }

    /// Batches refused with `code`.
    pub fn refused(code: &str) -> String {
        format!("{REFUSED_PREFIX}{code}")
    }
}

/// The UTC day number (days since 1970-01-01) a time falls on: the unit the counters and
/// the daily quotas use.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(MS_PER_DAY)
}

/// Seconds from `now` to the next UTC midnight (at least 1): when a daily quota resets,
/// sent as `Retry-After`.
pub fn seconds_to_next_day(now: i64) -> u32 {
    let next = (day_of(now) + 1) * MS_PER_DAY;
    let secs = (next - now + 999) / 1000;
    secs.clamp(1, 86_400) as u32
}

/// One stored counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatRow {
    /// UTC day number.
    pub day: i64,
    /// Metric name.
    pub metric: String,
    /// Count.
    pub n: i64,
    /// Latest time counted (for `accepted`).
    pub last_at: Option<i64>,
}

/// The figures of a day or of a range.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Figures {
    /// Events stored.
    pub accepted: u64,
    /// Events rejected one by one.
    pub rejected: u64,
    /// The same by code.
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Whole batches refused.
    pub refused_batches: u64,
    /// The same by code.
    pub refused_by_reason: BTreeMap<String, u64>,
    /// Events the trackers dropped from their queues.
    pub dropped_by_trackers: u64,
    /// Batches from a device clock more than 24 hours off.
    pub clock_skewed_batches: u64,
}

impl Figures {
    fn add(&mut self, metric: &str, n: u64) {
        if metric == ACCEPTED {
            self.accepted += n;
        } else if metric == DROPPED {
            self.dropped_by_trackers += n;
        } else if metric == CLOCK_SKEW {
            self.clock_skewed_batches += n;
        } else if let Some(code) = metric.strip_prefix(REJECTED_PREFIX) {
            self.rejected += n;
            *self.rejected_by_reason.entry(code.to_string()).or_default() += n;
        } else if let Some(code) = metric.strip_prefix(REFUSED_PREFIX) {
            self.refused_batches += n;
            *self.refused_by_reason.entry(code.to_string()).or_default() += n;
        }
    }
}

/// One day of a [`Health`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Day {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Its figures.
    #[serde(flatten)]
    pub figures: Figures,
}

/// The answer of the health endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// First day (UTC), `YYYY-MM-DD`.
    pub from: String,
    /// Last day (UTC, today), `YYYY-MM-DD`.
    pub to: String,
    /// When the last event was stored (RFC 3339), over every day kept; `None` if never.
    pub last_seen: Option<String>,
    /// The range's totals.
    pub totals: Figures,
    /// Each day of the range, oldest first (days with nothing are zeros).
    pub days: Vec<Day>,
}

/// The health of days `first_day..=last_day` from `rows` (rows outside the range count
/// only towards `last_seen`, from `accepted`).
///
/// ```
/// use closeloop_core::health::{summarise, StatRow};
/// let row = |day, metric: &str, n| StatRow { day, metric: metric.into(), n, last_at: None };
/// let h = summarise(&[row(20_000, "accepted", 5), row(20_001, "rejected:foreign_host", 2)],
///                   20_000, 20_001);
/// assert_eq!((h.totals.accepted, h.totals.rejected), (5, 2));
/// assert_eq!(h.days.len(), 2);
/// ```
pub fn summarise(rows: &[StatRow], first_day: i64, last_day: i64) -> Health {
    let mut totals = Figures::default();
    let mut days: BTreeMap<i64, Figures> = (first_day..=last_day)
        .map(|d| (d, Figures::default()))
        .collect();
    let mut last_seen: Option<i64> = None;
    for r in rows {
        if r.metric == ACCEPTED {
            if let Some(at) = r.last_at {
                last_seen = Some(last_seen.map_or(at, |l| l.max(at)));
            }
        }
        let n = u64::try_from(r.n).unwrap_or(0);
        if let Some(f) = days.get_mut(&r.day) {
            f.add(&r.metric, n);
            totals.add(&r.metric, n);
        }
    }
    Health {
        from: format_date(first_day * MS_PER_DAY),
        to: format_date(last_day * MS_PER_DAY),
        last_seen: last_seen.map(format_rfc3339),
        totals,
        days: days
            .into_iter()
            .map(|(d, figures)| Day {
                day: format_date(d * MS_PER_DAY),
                figures,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(day: i64, metric: &str, n: i64, last_at: Option<i64>) -> StatRow {
        StatRow {
            day,
            metric: metric.into(),
            n,
            last_at,
        }
    }

    #[test]
    fn a_week_of_counters() {
        // 2026-11-24 is day 20781 (1_795_478_400_000 ms / 86_400_000)
        let today = 20_781;
        let rows = vec![
            row(today - 8, "accepted", 100, Some(1)), // outside: only last_seen
            row(today - 1, "accepted", 10, Some(1_795_400_000_000)),
            row(today, "accepted", 3, Some(1_795_478_460_000)),
            row(today, "rejected:foreign_host", 2, None),
            row(today, "rejected:event_too_old", 1, None),
            row(today, "refused:origin_required", 4, None),
            row(today, "dropped", 7, None),
            row(today, "clock_skew", 1, None),
            row(today, "something_new", 9, None),
        ];
        let h = summarise(&rows, today - 6, today);
        assert_eq!(h.from, "2026-11-18");
        assert_eq!(h.to, "2026-11-24");
        assert_eq!(h.days.len(), 7);
        assert_eq!(h.totals.accepted, 13);
        assert_eq!(h.totals.rejected, 3);
        assert_eq!(h.totals.rejected_by_reason.get("foreign_host"), Some(&2));
        assert_eq!(h.totals.refused_batches, 4);
        assert_eq!(h.totals.dropped_by_trackers, 7);
        assert_eq!(h.totals.clock_skewed_batches, 1);
        assert_eq!(h.last_seen.as_deref(), Some("2026-11-24T00:01:00.000Z"));
        assert_eq!(h.days[5].figures.accepted, 10);
        assert_eq!(h.days[0].figures, Figures::default());
    }

    #[test]
    fn the_next_day_starts_at_midnight_utc() {
        let midnight = 20_416 * MS_PER_DAY;
        assert_eq!(seconds_to_next_day(midnight), 86_400);
        assert_eq!(seconds_to_next_day(midnight + MS_PER_DAY - 1), 1);
        assert_eq!(seconds_to_next_day(midnight + MS_PER_DAY - 1_500), 2);
        assert_eq!(day_of(midnight - 1), 20_415);
    }
}
