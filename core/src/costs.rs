//! Costs: spend spread over days, and CAC, revenue per customer and ROI from credited figures.
//!
//! # Ratios
//!
//! From a row's spend, credited customers (a sum of attribution shares, so fractional) and
//! credited revenue:
//! - CAC = spend / customers;
//! - revenue per customer = revenue / customers;
//! - ROI = (revenue - spend) / spend.
//!
//! A ratio whose denominator is zero (or negative, or not finite) is `None` (JSON `null`),
//! never infinity or NaN. CAC is also `None` when the spend is zero: a row with no spend
//! recorded (organic search, direct) has an unknown acquisition cost, not a free one; showing
//! `0` would make it look like the best channel for a reason that is only missing data.
//!
//! # Spreading spend over days
//!
//! Spend arrives for a period (a day, a week, a month, a campaign's flight). [`allocate_days`]
//! spreads an amount in integer minor units (cents) evenly over the period's days without
//! losing a cent: each day gets `amount / days` (Euclidean division), and the remainder goes one
//! unit each to the **first** days of the period. So 1000 cents over 3 days is 334, 333, 333;
//! a negative correction of -1000 is -333, -333, -334 (Euclidean division rounds down, and the
//! first days get the +1s). A report over part of a period sums the days it covers
//! ([`spend_in_range`]). Days are counted as integers (days since 1970-01-01 UTC, or any other
//! consistent day number the caller uses), both ends inclusive.

use serde::{Deserialize, Serialize};

/// CAC, revenue per customer and ROI of one report row.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct CostMetrics {
    /// Customer acquisition cost: spend / credited customers.
    pub cac: Option<f64>,
    /// Credited revenue / credited customers.
    pub revenue_per_customer: Option<f64>,
    /// Return on investment: (credited revenue - spend) / spend.
    pub roi: Option<f64>,
}

/// Computes [`CostMetrics`] from spend, credited customers and credited revenue (all in the same
/// currency unit). See the [module docs](self) for when a metric is `None`.
///
/// ```
/// use closeloop_core::costs::metrics;
/// let m = metrics(500.0, 2.5, 2000.0);
/// assert_eq!(m.cac, Some(200.0));
/// assert_eq!(m.revenue_per_customer, Some(800.0));
/// assert_eq!(m.roi, Some(3.0));
/// assert_eq!(metrics(0.0, 0.0, 0.0).roi, None);
/// ```
pub fn metrics(spend: f64, customers: f64, revenue: f64) -> CostMetrics {
    let positive = |x: f64| x.is_finite() && x > 0.0;
    let finite = |x: f64| x.is_finite().then_some(x);
    let inputs_ok = spend.is_finite() && customers.is_finite() && revenue.is_finite();
    if !inputs_ok {
        return CostMetrics::default();
    }
    CostMetrics {
        cac: (positive(spend) && positive(customers))
            .then(|| spend / customers)
            .and_then(finite),
        revenue_per_customer: positive(customers)
            .then(|| revenue / customers)
            .and_then(finite),
        roi: positive(spend)
            .then(|| (revenue - spend) / spend)
            .and_then(finite),
    }
}

/// Spreads `amount` minor units evenly over the days `first_day..=last_day`, remainder to the
/// first days; returns `(day, amount)` for every day, summing exactly to `amount`. A period
/// whose last day is before its first day is one day long (`first_day`). The result has one
/// entry per day, so the caller bounds the period (the spend endpoint refuses absurd periods);
/// [`spend_in_range`] answers a report's question in constant time whatever the period.
///
/// ```
/// use closeloop_core::costs::allocate_days;
/// assert_eq!(allocate_days(1000, 10, 12), vec![(10, 334), (11, 333), (12, 333)]);
/// ```
pub fn allocate_days(amount: i64, first_day: i64, last_day: i64) -> Vec<(i64, i64)> {
    let last_day = last_day.max(first_day);
    let days = last_day.saturating_sub(first_day).saturating_add(1);
    (0..days)
        .map(|i| (first_day.saturating_add(i), day_share(amount, days, i)))
        .collect()
}

/// The part of `amount`, spread over `first_day..=last_day` as [`allocate_days`] does, that
/// falls on the days `from_day..=to_day`. Computed without listing the days, so a long period
/// costs nothing.
///
/// ```
/// use closeloop_core::costs::spend_in_range;
/// // 1000 over days 10..=12 is 334, 333, 333: days 11..=20 get 666
/// assert_eq!(spend_in_range(1000, 10, 12, 11, 20), 666);
/// ```
pub fn spend_in_range(
    amount: i64,
    first_day: i64,
    last_day: i64,
    from_day: i64,
    to_day: i64,
) -> i64 {
    let last_day = last_day.max(first_day);
    let days = last_day.saturating_sub(first_day).saturating_add(1);
    let lo = from_day.max(first_day);
    let hi = to_day.min(last_day);
    if hi < lo {
        return 0;
    }
    let (start, end) = (lo - first_day, hi - first_day); // offsets, 0-based inclusive
    let base = amount.div_euclid(days);
    let rem = amount.rem_euclid(days); // the first `rem` days get base + 1
    let covered = end - start + 1;
    let extra_days = (rem.min(end + 1) - start).max(0);
    base.saturating_mul(covered).saturating_add(extra_days)
}

fn day_share(amount: i64, days: i64, offset: i64) -> i64 {
    let base = amount.div_euclid(days);
    let rem = amount.rem_euclid(days);
    if offset < rem {
        base + 1
    } else {
        base
    }
}
