//! The messages between the worker, a site's shards and its directory (JSON over the
//! Durable Objects' `fetch`). The worker validates and enriches a batch exactly as
//! `POST /v1/collect` does today (core's `validate`, `ingest::rows_from`, `leads_from`,
//! `enrich`), then hands the shard one visitor's batch ([`ShardBatch`]); the shard answers
//! per event ([`ShardAnswer`]) and tells the directory what changed in a linked visitor's
//! sessions ([`VisitorSync`]).

use closeloop_core::report::{Filters, GroupBy};
use closeloop_core::rollup::answer::Traffic;
use closeloop_core::rollup::{PageFigures, RowKey};
use closeloop_core::wire::TouchAck;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The default number of shards of a site.
pub const DEFAULT_SHARDS: u32 = 1;
/// The default retention of raw events in a shard (days; they stay in the archive).
pub const DEFAULT_RETENTION_DAYS: i64 = 400;
/// The default cap of events a site's beacons may store per UTC day of receipt.
pub const DEFAULT_SITE_DAY_CAP: i64 = 1_000_000;

/// The site's settings a shard works with. They travel with every request (the worker has
/// them cached); the shard keeps the latest for its alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSettings {
    /// The site.
    pub site: String,
    /// This shard's number, `0..shards`.
    pub shard: u32,
    /// The site's number of shards `N` (a visitor lives in shard `shard_of(visitor, N)`).
    pub shards: u32,
    /// The site's own hosts (never a referral), lower case.
    pub hosts: Vec<String>,
    /// Referrer hosts the site excludes from starting a session.
    pub excluded: Vec<String>,
    /// Most events one visitor may store per UTC day of receipt.
    pub max_events_per_visitor_day: i64,
    /// Most events the whole site may store per UTC day of receipt; each shard takes
    /// `ceil(cap / N)` of it (visitors are spread evenly by hash; exact with one shard).
    pub max_events_per_day: i64,
    /// Days raw events stay in the shard once archived.
    pub retention_days: i64,
    /// The generation of the site's shard layout: a rebuild from the archive fills a new
    /// generation's (empty) shards while the current ones go on serving, then the site
    /// switches to it (see `shard::rebuild`).
    #[serde(default)]
    pub generation: u32,
}

impl ShardSettings {
    /// Settings with the defaults for a site with these hosts.
    pub fn new(site: &str, shard: u32, shards: u32, hosts: Vec<String>) -> ShardSettings {
        ShardSettings {
            site: site.to_owned(),
            shard,
            shards: shards.max(1),
            hosts,
            excluded: Vec::new(),
            max_events_per_visitor_day: crate::store::DEFAULT_VISITOR_QUOTA,
            max_events_per_day: DEFAULT_SITE_DAY_CAP,
            retention_days: DEFAULT_RETENTION_DAYS,
            generation: 0,
        }
    }

    /// The shard's label in its Durable Object's name and its archive objects' names:
    /// `<n>of<N>` and, after a rebuild, `.g<generation>` (so two layouts never write an
    /// object of the same name).
    pub fn label(&self) -> String {
        label(self.shard, self.shards, self.generation)
    }

    /// This shard's part of the site's daily cap.
    pub fn shard_day_cap(&self) -> i64 {
        let n = i64::from(self.shards.max(1));
        (self.max_events_per_day.max(0) + n - 1) / n
    }

    /// The session rules of the site.
    pub fn rules(&self) -> closeloop_core::arrival::SiteRules {
        closeloop_core::arrival::SiteRules {
            hosts: self.hosts.clone(),
            excluded: self.excluded.clone(),
        }
    }
}

/// See [`ShardSettings::label`].
pub fn label(shard: u32, shards: u32, generation: u32) -> String {
    if generation == 0 {
        format!("{shard}of{}", shards.max(1))
    } else {
        format!("{shard}of{}.g{generation}", shards.max(1))
    }
}

/// The name of a shard's Durable Object (`SHARD.idFromName`): the site and the label.
pub fn object_name(site: &str, shard: u32, shards: u32, generation: u32) -> String {
    format!("{site}/{}", label(shard, shards, generation))
}

/// The shard a visitor lives in: the first 8 bytes of SHA-256 of its id (core's
/// `visitor_hash`) modulo `N`. Changing a site's `N` moves visitors: it is done by
/// rebuilding the shards from the archive (see `Shard::rebuild`).
pub fn shard_of(visitor: &str, shards: u32) -> u32 {
    let n = u64::from(shards.max(1));
    (closeloop_core::rollup::visitors::visitor_hash(visitor) % n) as u32
}

/// What the request said about its sender, the same for every event of a batch: geo from
/// `request.cf` and the user agent (`crate::enrich`), never the IP address.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestContext {
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// Region name.
    pub region: Option<String>,
    /// ISO 3166-2 region code.
    pub region_code: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Continent code.
    pub continent: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// IANA time zone.
    pub timezone: Option<String>,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
    /// Autonomous system number.
    pub asn: Option<i64>,
    /// Autonomous system organisation.
    pub as_org: Option<String>,
    /// Cloudflare data centre.
    pub colo: Option<String>,
    /// Whether the country is in the EU.
    pub is_eu: bool,
    /// `desktop`, `mobile`, `tablet`, `bot` or `other`.
    pub device_type: String,
    /// Browser.
    pub browser: Option<String>,
    /// Browser version.
    pub browser_version: Option<String>,
    /// Operating system.
    pub os: Option<String>,
    /// Operating system version.
    pub os_version: Option<String>,
    /// Flagged as a bot.
    pub is_bot: bool,
}

impl RequestContext {
    /// The context of a request the edge enriched.
    pub fn of(geo: &crate::enrich::Geo, agent: &crate::enrich::Agent) -> RequestContext {
        RequestContext {
            country: geo.country.clone(),
            region: geo.region.clone(),
            region_code: geo.region_code.clone(),
            city: geo.city.clone(),
            continent: geo.continent.clone(),
            postal_code: geo.postal_code.clone(),
            timezone: geo.timezone.clone(),
            latitude: geo.latitude,
            longitude: geo.longitude,
            asn: geo.asn,
            as_org: geo.as_org.clone(),
            colo: geo.colo.clone(),
            is_eu: geo.is_eu,
            device_type: agent.device_type.clone(),
            browser: agent.browser.clone(),
            browser_version: agent.browser_version.clone(),
            os: agent.os.clone(),
            os_version: agent.os_version.clone(),
            is_bot: agent.is_bot,
        }
    }
}

/// One accepted event as the edge built it (`store::EventRow` without the visitor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchEvent {
    /// The event's id (unique per site).
    pub event_id: String,
    /// `pageview`, `form_submit`, `identify` or `track`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Full URL.
    pub url: String,
    /// URL path.
    pub path: String,
    /// Referrer.
    pub referrer: Option<String>,
    /// Page title.
    pub title: Option<String>,
    /// Custom event name.
    pub name: Option<String>,
    /// Props / traits as JSON text.
    pub props: Option<String>,
    /// Form field names as JSON text.
    pub form_fields: Option<String>,
    /// Kept form values as JSON text.
    pub form_values: Option<String>,
    /// Form id.
    pub form_id: Option<String>,
    /// Device time of creation.
    pub created_at: i64,
    /// Device time of sending.
    pub sent_at: i64,
    /// Skew-corrected time.
    pub derived_ts: i64,
}

impl BatchEvent {
    /// The row the edge builds for `POST /v1/collect` (`ingest::rows_from`), as the shard
    /// takes it.
    pub fn of(row: &crate::store::EventRow) -> BatchEvent {
        BatchEvent {
            event_id: row.event_id.clone(),
            kind: row.kind.to_owned(),
            url: row.url.clone(),
            path: row.path.clone(),
            referrer: row.referrer.clone(),
            title: row.title.clone(),
            name: row.name.clone(),
            props: row.props.clone(),
            form_fields: row.form_fields.clone(),
            form_values: row.form_values.clone(),
            form_id: row.form_id.clone(),
            created_at: row.created_at,
            sent_at: row.sent_at,
            derived_ts: row.derived_ts,
        }
    }

    /// Whether it is a page view.
    pub fn is_pageview(&self) -> bool {
        self.kind == "pageview"
    }
}

/// A visitor identified by an event of the batch (an `identify`, a form submit with an
/// email): what the directory needs to link it. The fields mirror D1's `leads` and
/// `lead_visitors` with their provenance (migration 0009: method, event, received time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadLink {
    /// The lead's stable id (`ingest::lead_id(site, email)`).
    pub lead_id: String,
    /// The normalised email.
    pub email: String,
    /// Name, when given.
    pub name: Option<String>,
    /// Company, when given.
    pub company: Option<String>,
    /// Phone, when given.
    pub phone: Option<String>,
    /// When the visitor identified (the event's `derived_ts`).
    pub at: i64,
    /// The identifying event.
    pub event_id: String,
    /// The identifying event's page path.
    pub path: Option<String>,
    /// How the link was made (`form`, `identify`, `verified_identify`, `import`, `api`).
    pub method: String,
    /// Whether this link may join a lead that already has visitors (an unverified form on
    /// a site that verifies identities may only create a lead).
    pub may_join: bool,
    /// When the identifying event was received.
    pub received_at: i64,
}

impl LeadLink {
    /// The link of a lead the edge found in a beacon (`ingest::leads_from`).
    pub fn of(
        lead: &crate::store::LeadRow,
        path: Option<String>,
        method: &str,
        received_at: i64,
    ) -> LeadLink {
        LeadLink {
            lead_id: lead.lead_id.clone(),
            email: lead.email.clone(),
            name: lead.name.clone(),
            company: lead.company.clone(),
            phone: lead.phone.clone(),
            at: lead.at,
            event_id: lead.event_id.clone(),
            path,
            method: method.to_owned(),
            may_join: true,
            received_at,
        }
    }

    /// Whether a trusted party made it (a verified `identify`, a server with a key): its
    /// traits overwrite the lead's.
    pub fn is_trusted(&self) -> bool {
        matches!(self.method.as_str(), "verified_identify" | "import" | "api")
    }
}

/// One visitor's batch for its shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardBatch {
    /// The site's settings.
    pub settings: ShardSettings,
    /// The visitor.
    pub visitor: String,
    /// When the edge received the request (ms).
    pub received_at: i64,
    /// Geo and user agent of the request.
    pub context: RequestContext,
    /// The accepted events (validated, deduplicated within the batch).
    pub events: Vec<BatchEvent>,
    /// The leads the events identify.
    pub links: Vec<LeadLink>,
}

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Stored now.
    Accepted,
    /// Already stored (a retry).
    Duplicate,
    /// The visitor is over its daily quota.
    VisitorQuotaExceeded,
    /// The site is over its daily cap.
    SiteQuotaExceeded,
    /// Older than what the shard still keeps raw (its retention): it could re-cut a session
    /// whose events are only in the archive now.
    BeyondRetention,
}

/// The shard's answer to a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardAnswer {
    /// Per event, in the batch's order.
    pub results: Vec<(String, Outcome)>,
    /// The touch the tracker is told: the touch of the batch's last session when that
    /// session starts inside the batch (core's `resession::Told`), exact.
    pub touch: Option<TouchAck>,
    /// Whether the directory has seen this batch's changes (`false`: the shard retries from
    /// its alarm; nothing is lost).
    pub directory_synced: bool,
    /// The lead the visitor belongs to, as far as the shard knows.
    pub lead: Option<String>,
}

/// A session of a linked visitor as the lead's journey keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JourneySessionMsg {
    /// Session id.
    pub id: String,
    /// Its start (ms).
    pub start: i64,
    /// Its first event's id (which events it holds: those from `(start, first_event)` on).
    pub first_event: String,
    /// Its row key.
    pub key: RowKey,
    /// Its page views.
    pub pageviews: u64,
}

/// A page view of a linked visitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JourneyView {
    /// Its event id.
    pub event_id: String,
    /// Its session.
    pub session: String,
    /// Its time.
    pub at: i64,
    /// Its path.
    pub path: String,
}

/// What the shard tells the directory about one visitor (versioned, idempotent).
///
/// `version` counts the visitor's changes that concern the directory. A **delta**
/// (`base: Some(b)`) applies only on top of version `b`; a **full** state (`base: None`)
/// replaces what the directory keeps whenever its `version` is newer. The directory ignores
/// anything not newer than what it has (a retry), and asks for a full state when a delta
/// does not fit (a lost message): nothing is lost or applied twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitorSync {
    /// The visitor.
    pub visitor: String,
    /// Its version after these changes.
    pub version: u64,
    /// For a delta, the version it applies to; `None`: a full state.
    pub base: Option<u64>,
    /// Links not yet acknowledged (applied idempotently).
    pub links: Vec<LeadLink>,
    /// Sessions created or changed (a full state: all of them, the latest
    /// [`JOURNEY_MAX_SESSIONS`]).
    pub sessions: Vec<JourneySessionMsg>,
    /// Ids of sessions that are gone (deltas only).
    pub removed: Vec<String>,
    /// Page views added or moved (a full state: all of them since `views_since`).
    pub views_in: Vec<JourneyView>,
    /// Event ids of page views that left a session (deltas only; a moved view is also in
    /// `views_in`).
    pub views_out: Vec<String>,
    /// A full state's page views start here (older raw events left the shard: the
    /// directory keeps its older page views).
    pub views_since: Option<i64>,
}

/// The most sessions of one visitor a lead's journey keeps (the latest).
pub const JOURNEY_MAX_SESSIONS: usize = 1_000;
/// The most page views of one visitor a lead's journey keeps (the latest).
pub const JOURNEY_MAX_VIEWS: usize = 5_000;

/// The directory's answer to a [`VisitorSync`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncAnswer {
    /// The lead the visitor belongs to (`None`: not linked; the shard stops sending).
    pub lead: Option<String>,
    /// The version the directory now has for the visitor.
    pub version: Option<u64>,
    /// The delta did not fit: send a full state.
    pub need_full: bool,
}

/// A traffic question for a shard: the range and what groups and filters the sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficQuery {
    /// Start (ms, inclusive; on an hour, or a day for day summaries).
    pub from: i64,
    /// End (ms, exclusive).
    pub to: i64,
    /// Row key.
    pub group_by: GroupBy,
    /// Segment filters.
    pub filters: Filters,
    /// Whether bot sessions count.
    pub include_bots: bool,
    /// Also the page figures (the pages report).
    #[serde(default)]
    pub pages: bool,
    /// Also the traffic per bucket: `day` or `week` (the timeseries), at most `max_buckets`.
    #[serde(default)]
    pub granularity: Option<String>,
    /// See `granularity`.
    #[serde(default)]
    pub max_buckets: usize,
}

impl TrafficQuery {
    /// The report query these fields make (the credited parts' fields at their defaults).
    pub fn query(&self) -> closeloop_core::report::Query {
        let mut q = closeloop_core::report::Query::new(self.from, self.to);
        q.group_by = self.group_by;
        q.filters = self.filters.clone();
        q.include_bots = self.include_bots;
        q
    }

    /// The traffic question of a report query.
    pub fn of(q: &closeloop_core::report::Query) -> TrafficQuery {
        TrafficQuery {
            from: q.from,
            to: q.to,
            group_by: q.group_by,
            filters: q.filters.clone(),
            include_bots: q.include_bots,
            pages: false,
            granularity: None,
            max_buckets: 0,
        }
    }
}

/// The traffic of one bucket of a timeseries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketTraffic {
    /// Its start (ms).
    pub from: i64,
    /// Its end (ms).
    pub to: i64,
    /// Its traffic.
    pub traffic: Traffic,
}

/// A shard's (or, merged, a site's) answer to a [`TrafficQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TrafficAnswer {
    /// The whole range's traffic.
    pub traffic: Traffic,
    /// Page figures, when asked.
    pub pages: Option<BTreeMap<String, PageFigures>>,
    /// Per bucket, when asked.
    pub buckets: Vec<BucketTraffic>,
    /// Whether the answer came from day summaries (else hour rollups).
    pub from_days: bool,
}

impl TrafficAnswer {
    /// The site's answer from its shards' (visitors live in one shard each: see
    /// `Traffic::merge_disjoint`).
    pub fn merge(parts: &[TrafficAnswer]) -> TrafficAnswer {
        let traffic = Traffic::merge_disjoint(parts.iter().map(|p| &p.traffic));
        let pages = parts.iter().any(|p| p.pages.is_some()).then(|| {
            closeloop_core::rollup::answer::merge_page_traffic(
                parts.iter().filter_map(|p| p.pages.as_ref()),
            )
        });
        let mut buckets: Vec<BucketTraffic> = Vec::new();
        if let Some(first) = parts.first() {
            for (i, b) in first.buckets.iter().enumerate() {
                buckets.push(BucketTraffic {
                    from: b.from,
                    to: b.to,
                    traffic: Traffic::merge_disjoint(
                        parts
                            .iter()
                            .filter_map(|p| p.buckets.get(i))
                            .map(|b| &b.traffic),
                    ),
                });
            }
        }
        TrafficAnswer {
            traffic,
            pages,
            buckets,
            from_days: parts.iter().all(|p| p.from_days),
        }
    }
}
