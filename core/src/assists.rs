//! Conversion assists: the pages report (views, entrances, assisted and direct conversions).
//!
//! A page **assists** a conversion at time `T` when the converting lead (any of its visitors)
//! viewed it at a time `t` with `T - lookback <= t < T` (strictly before the conversion,
//! inclusive at the lookback edge, like the attribution window), and it is not the page on
//! which the conversion happened. A page counts once per conversion however often it was
//! viewed. Customer conversions (from the CRM) usually have no page, so every page the lead
//! viewed in the window assists them, the lead form's page included. Assisted revenue sums the
//! revenue of the customer conversions a page assisted. A page's **direct conversions** are the
//! conversions that happened on it (normally lead form submits).
//!
//! Views, entrances and exits count the page views (and the sessions' first and last page
//! views) whose time is in the
//! report's range `[from, to)`; conversions are counted when their `T` is in the range. Views
//! before `from` still count as assists of a conversion in the range (within the lookback), so
//! the caller passes the converting leads' earlier views too, marked with their lead.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::attribution::ConversionKind;

/// One page view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageView<'a> {
    /// The page path.
    pub path: &'a str,
    /// When (ms since the epoch).
    pub at: i64,
    /// Whether it was the first page view of its session (an entrance).
    pub entrance: bool,
    /// Whether it was the last page view of its session (an exit).
    pub exit: bool,
    /// The leads the viewing visitor belongs to (normalised emails or lead ids); empty for an
    /// anonymous visitor.
    pub leads: &'a [&'a str],
}

/// One conversion, for the pages report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PageConversion<'a> {
    /// The converting lead (same key as in [`PageView::leads`]).
    pub lead: &'a str,
    /// When (`T`, ms since the epoch).
    pub at: i64,
    /// Lead or customer.
    pub kind: ConversionKind,
    /// The page on which it happened, if any (a lead form's page).
    pub page: Option<&'a str>,
    /// Revenue of a customer conversion (ignored for leads).
    pub revenue: f64,
}

/// One row of the pages report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PageRow {
    /// The page path.
    pub path: String,
    /// Page views in the range.
    pub views: u64,
    /// Sessions that landed on it in the range.
    pub entrances: u64,
    /// Sessions that left from it in the range (their last page view, in the range).
    pub exits: u64,
    /// Lead conversions it assisted.
    pub assisted_leads: u64,
    /// Customer conversions it assisted.
    pub assisted_customers: u64,
    /// Revenue of the customer conversions it assisted.
    pub assisted_revenue: f64,
    /// Conversions that happened on it.
    pub direct_conversions: u64,
}

/// Builds the pages report for the range `[from, to)`; rows sorted by path, one for each page
/// with something in the range (a view, an assist or a direct conversion). See the
/// [module docs](self) for the definitions.
///
/// ```
/// use closeloop_core::assists::{pages_report, PageConversion, PageView};
/// use closeloop_core::attribution::ConversionKind;
/// let ann: &[&str] = &["ann@example.com"];
/// let views = [
///     PageView { path: "/pricing", at: 10, entrance: true, exit: false, leads: ann },
///     PageView { path: "/pricing", at: 20, entrance: false, exit: false, leads: ann },
///     PageView { path: "/demo", at: 30, entrance: false, exit: true, leads: ann },
/// ];
/// let conv = [PageConversion { lead: "ann@example.com", at: 31, kind: ConversionKind::Lead,
///     page: Some("/demo"), revenue: 0.0 }];
/// let rows = pages_report(&views, &conv, 0, 100, 1_000);
/// let pricing = rows.iter().find(|r| r.path == "/pricing").unwrap();
/// assert_eq!((pricing.views, pricing.entrances, pricing.assisted_leads), (2, 1, 1));
/// let demo = rows.iter().find(|r| r.path == "/demo").unwrap();
/// assert_eq!((demo.assisted_leads, demo.direct_conversions, demo.exits), (0, 1, 1));
/// ```
pub fn pages_report(
    views: &[PageView<'_>],
    conversions: &[PageConversion<'_>],
    from: i64,
    to: i64,
    lookback_ms: i64,
) -> Vec<PageRow> {
    let in_range = |t: i64| t >= from && t < to;
    let mut rows: BTreeMap<&str, PageRow> = BTreeMap::new();
    for v in views.iter().filter(|v| in_range(v.at)) {
        let r = entry(&mut rows, v.path);
        r.views += 1;
        if v.entrance {
            r.entrances += 1;
        }
        if v.exit {
            r.exits += 1;
        }
    }

    // views of each lead, for the assists
    let mut by_lead: BTreeMap<&str, Vec<&PageView<'_>>> = BTreeMap::new();
    for v in views {
        for lead in v.leads {
            by_lead.entry(lead).or_default().push(v);
        }
    }
    for c in conversions.iter().filter(|c| in_range(c.at)) {
        if let Some(page) = c.page {
            entry(&mut rows, page).direct_conversions += 1;
        }
        let window_start = c.at.saturating_sub(lookback_ms.max(0));
        let assisted: BTreeSet<&str> = by_lead
            .get(c.lead)
            .into_iter()
            .flatten()
            .filter(|v| v.at >= window_start && v.at < c.at && Some(v.path) != c.page)
            .map(|v| v.path)
            .collect();
        for path in assisted {
            let r = entry(&mut rows, path);
            match c.kind {
                ConversionKind::Lead => r.assisted_leads += 1,
                ConversionKind::Customer => {
                    r.assisted_customers += 1;
                    if c.revenue.is_finite() {
                        r.assisted_revenue += c.revenue;
                    }
                }
            }
        }
    }
    rows.into_values().collect()
}

fn entry<'m, 'p>(rows: &'m mut BTreeMap<&'p str, PageRow>, path: &'p str) -> &'m mut PageRow {
    rows.entry(path).or_insert_with(|| PageRow {
        path: path.to_owned(),
        ..PageRow::default()
    })
}
