//! SQL of `GET /v1/sites/{site}/reports/facets`: what a site has data for, so that a
//! dashboard can offer only what exists — the time span of its sessions and conversions
//! (a default range that holds data), the conversion kinds it has sent (lead, customer and
//! every CRM stage), and the values of each segment dimension in a range. Part of
//! [`crate::store`], so that only the store module knows SQL.

use super::{n, s, Store};
use crate::error::ApiResult;
use serde::Deserialize;

/// The segment dimensions whose values the facets list, with their SQL over `sessions s`
/// (a missing campaign is `(not set)`, a missing landing page `/`, as the reports key them).
pub const DIMENSIONS: [(&str, &str); 6] = [
    ("channel", "s.channel"),
    ("source", "s.source"),
    ("campaign", "coalesce(s.campaign, '(not set)')"),
    ("landing_page", "coalesce(s.landing_path, '/')"),
    ("country", "s.country"),
    ("device", "s.device_type"),
];

/// Most values listed per dimension (the most sessions first).
pub const MAX_VALUES: i64 = 100;

/// The span of a site's counting sessions (all time).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SessionSpan {
    /// Earliest session start, ms (`None`: no session).
    pub first: Option<i64>,
    /// Latest session start, ms.
    pub last: Option<i64>,
    /// Counting sessions.
    pub sessions: i64,
}

/// One conversion kind a site has (all time).
#[derive(Debug, Clone, Deserialize)]
pub struct KindCount {
    /// `lead`, `customer` or a CRM stage (lower-cased).
    pub kind: String,
    /// Conversions of that kind (for `lead`: leads).
    pub conversions: i64,
    /// Earliest, ms.
    pub first: i64,
    /// Latest, ms.
    pub last: i64,
}

/// One value of a segment dimension in a range.
#[derive(Debug, Clone, Deserialize)]
pub struct ValueCount {
    /// The value.
    pub value: String,
    /// Counting sessions in the range with it.
    pub sessions: i64,
}

/// What [`Store::facets`] reads.
#[derive(Debug, Clone, Default)]
pub struct Facets {
    /// The sessions' span.
    pub sessions: SessionSpan,
    /// The conversion kinds, `lead` first, then by count.
    pub kinds: Vec<KindCount>,
    /// Per dimension of [`DIMENSIONS`] (same order), its values in the range.
    pub values: Vec<Vec<ValueCount>>,
}

impl Store {
    /// The facets of a site: its sessions' span and conversion kinds (all time), and the
    /// values of each segment dimension among the counting sessions (bots only with
    /// `include_bots`) that started in `[from, to)`; one batch.
    pub async fn facets(
        &self,
        site_id: &str,
        from: i64,
        to: i64,
        include_bots: bool,
    ) -> ApiResult<Facets> {
        let bots = n(i64::from(include_bots));
        let mut stmts = vec![
            self.stmt(
                "SELECT min(s.started_at) AS first, max(s.started_at) AS last, \
                 count(*) AS sessions FROM sessions s INDEXED BY sessions_site_time \
                 WHERE s.site_id = ?1 AND (?2 = 1 OR s.is_bot = 0)",
                &[s(site_id), bots.clone()],
            )?,
            self.stmt(
                "SELECT kind, conversions, first, last FROM ( \
                 SELECT 'lead' AS kind, count(*) AS conversions, min(first_seen) AS first, \
                 max(first_seen) AS last FROM leads WHERE site_id = ?1 HAVING count(*) > 0 \
                 UNION ALL SELECT lower(kind) AS kind, count(*) AS conversions, \
                 min(closed_at) AS first, max(closed_at) AS last FROM conversions \
                 WHERE site_id = ?1 GROUP BY lower(kind)) \
                 ORDER BY kind <> 'lead', conversions DESC, kind",
                &[s(site_id)],
            )?,
        ];
        for (_, column) in DIMENSIONS {
            stmts.push(self.stmt(
                &format!(
                    "SELECT {column} AS value, count(*) AS sessions FROM sessions s \
                     INDEXED BY sessions_site_time WHERE s.site_id = ?1 \
                     AND s.started_at >= ?2 AND s.started_at < ?3 AND (?4 = 1 OR s.is_bot = 0) \
                     AND {column} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?5"
                ),
                &[s(site_id), n(from), n(to), bots.clone(), n(MAX_VALUES)],
            )?);
        }
        let results = self.db.batch(stmts).await?;
        let span: Vec<SessionSpan> = Self::rows(results.first())?;
        let kinds: Vec<KindCount> = Self::rows(results.get(1))?;
        let mut values = Vec::new();
        for i in 0..DIMENSIONS.len() {
            values.push(Self::rows::<ValueCount>(results.get(2 + i))?);
        }
        Ok(Facets {
            sessions: span.into_iter().next().unwrap_or_default(),
            kinds,
            values,
        })
    }

    fn rows<T: for<'de> Deserialize<'de>>(r: Option<&worker::D1Result>) -> ApiResult<Vec<T>> {
        match r {
            Some(r) => Ok(r.results()?),
            None => Ok(Vec::new()),
        }
    }
}
