//! `GET /v1/sites/{site}/reports/sources`: visitors, sessions, page views and leads per
//! channel / source / medium / campaign, with the site's read key.
//!
//! Leads are credited to their first touch (the `model` parameter is accepted for
//! `first_touch`; the other models of the design come with conversions and spend).

use crate::auth::{self, KeyKind};
use crate::error::{ApiError, ApiResult};
use crate::store::{GroupBy, SourceCounts, Store};
use closeloop_core::time::{format_rfc3339, parse_date, parse_rfc3339, MS_PER_DAY};
use serde::Serialize;
use worker::{Request, Response};

/// The default report range: the last 30 days.
const DEFAULT_RANGE_MS: i64 = 30 * MS_PER_DAY;

/// One row of the answer.
#[derive(Debug, Serialize)]
pub struct Row {
    /// Channel group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Medium.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    /// Campaign (`null` when the sessions had none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<Option<String>>,
    /// Distinct visitors.
    pub visitors: i64,
    /// Sessions.
    pub sessions: i64,
    /// Page views.
    pub pageviews: i64,
    /// Leads (credited to their first touch).
    pub leads: i64,
}

/// The answer.
#[derive(Debug, Serialize)]
pub struct SourcesReport {
    /// The site.
    pub site: String,
    /// Start of the range (inclusive), RFC 3339.
    pub from: String,
    /// End of the range (exclusive), RFC 3339.
    pub to: String,
    /// `channel`, `source`, `medium` or `campaign`.
    pub group_by: &'static str,
    /// The attribution model of the lead counts.
    pub model: &'static str,
    /// Whether bot traffic is included.
    pub include_bots: bool,
    /// The groups, most sessions first.
    pub rows: Vec<Row>,
    /// Sums over the range (visitors counted once).
    pub totals: Row,
}

/// Parses `from` / `to`: RFC 3339, or a date (`YYYY-MM-DD`, the day's start in UTC).
pub fn parse_time(name: &str, value: &str) -> ApiResult<i64> {
    parse_rfc3339(value)
        .or_else(|_| parse_date(value))
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_parameter",
                format!("`{name}` must be an RFC 3339 time or a YYYY-MM-DD date"),
            )
        })
}

fn parse_group_by(v: Option<&str>) -> ApiResult<(GroupBy, &'static str)> {
    match v.unwrap_or("channel") {
        "channel" => Ok((GroupBy::Channel, "channel")),
        "source" => Ok((GroupBy::Source, "source")),
        "medium" => Ok((GroupBy::Medium, "medium")),
        "campaign" => Ok((GroupBy::Campaign, "campaign")),
        _ => Err(ApiError::bad_request(
            "invalid_parameter",
            "`group_by` must be channel, source, medium or campaign",
        )),
    }
}

/// Checks `Authorization: Bearer <key>` against the site's keys: 401 without one,
/// 403 when it is not a read key of this site.
pub async fn require_key(req: &Request, store: &Store, site: &str, kind: KeyKind) -> ApiResult<()> {
    let token = auth::bearer(req.headers().get("Authorization")?)?;
    let hash = auth::hash_key(&token);
    match store.key(&hash).await? {
        Some((key_site, key_kind, stored))
            if key_kind == kind
                && auth::constant_time_eq(&key_site, site)
                && auth::constant_time_eq(&stored, &hash) =>
        {
            Ok(())
        }
        _ => Err(ApiError::new(
            403,
            "forbidden",
            format!(
                "this key may not {} site `{site}`",
                match kind {
                    KeyKind::Read => "read",
                    KeyKind::Write => "write to",
                }
            ),
        )),
    }
}

fn row(c: SourceCounts, group_by: GroupBy) -> Row {
    Row {
        channel: c.channel,
        source: c.source,
        medium: c.medium,
        campaign: (group_by == GroupBy::Campaign).then_some(c.campaign),
        visitors: c.visitors,
        sessions: c.sessions,
        pageviews: c.pageviews,
        leads: c.leads,
    }
}

/// Handles `GET /v1/sites/{site}/reports/sources`.
pub async fn sources(req: &Request, store: &Store, site: &str, now: i64) -> ApiResult<Response> {
    require_key(req, store, site, KeyKind::Read).await?;
    let url = req.url()?;
    let q = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let to = match q("to") {
        Some(v) => parse_time("to", &v)?,
        None => now,
    };
    let from = match q("from") {
        Some(v) => parse_time("from", &v)?,
        None => to - DEFAULT_RANGE_MS,
    };
    if from > to {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "`from` is after `to`",
        ));
    }
    let (group_by, group_name) = parse_group_by(q("group_by").as_deref())?;
    let model = match q("model").as_deref().unwrap_or("first_touch") {
        "first_touch" => "first_touch",
        other => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("model `{other}` is not available yet; use first_touch"),
            ))
        }
    };
    let include_bots = matches!(q("include_bots").as_deref(), Some("true" | "1"));
    let (rows, totals) = store
        .sources(site, from, to, group_by, include_bots)
        .await?;
    let report = SourcesReport {
        site: site.to_string(),
        from: format_rfc3339(from),
        to: format_rfc3339(to),
        group_by: group_name,
        model,
        include_bots,
        rows: rows.into_iter().map(|r| row(r, group_by)).collect(),
        totals: Row {
            channel: None,
            source: None,
            medium: None,
            campaign: None,
            ..row(totals, GroupBy::Channel)
        },
    };
    Ok(Response::from_json(&report)?)
}
