//! The site shard (issue 14): one SQLite-backed Durable Object per (site, `n`), holding the
//! events, visitors, sessions and rollups of the visitors with `shard_of(visitor, N) == n`.
//!
//! # What a batch does
//!
//! The worker validates and enriches a beacon exactly as today (core's `validate`,
//! `ingest::rows_from` / `leads_from`, `enrich`) and sends the shard one visitor's batch
//! ([`msg::ShardBatch`]). In **one transaction** ([`ShardEngine::ingest`]):
//!
//! 1. **deduplicate** by event id (a shard is single-threaded: no race between two copies of
//!    an event), refuse what is past the retention watermark, and count the **quotas**
//!    (the visitor's events per UTC day of receipt, and the shard's share of the site's
//!    daily cap: two counter rows);
//! 2. decide each new event's **arrival** (core's `arrival::arrival`, from its URL, referrer
//!    and the site's hosts) and build **sessions at ingest**: `resession::plan` says what to
//!    read (the visitor's latest session; on a late event, the sessions from the one it
//!    falls in, a page of [`engine::RECUT_PAGE`] at a time), `resession::resessionize` says
//!    what changes;
//! 3. write the events (with their sessions), the events that moved, the sessions;
//! 4. add the batch's **rollup delta** (`Rollup::apply`: the old sessions out, the new in)
//!    to the hour tables and mark the days it touched for a new summary;
//! 5. queue the new events for the **archive**, bump the counters;
//! 6. when the visitor is linked to a lead (or the batch links it), bump its version and
//!    keep its links: the **directory** must see the change.
//!
//! Then, outside the transaction, the shard tells the directory ([`archive::deliver`]): a
//! delta of the visitor's journey, or its full state when the directory asks. If that
//! fails, the visitor stays dirty (`version > synced`, written in the same transaction as
//! the events) and the alarm sends its full state later: versioned and idempotent, so
//! nothing is lost or applied twice. The answer says per event accepted / duplicate /
//! refused, and the touch the tracker is told (exact: the shard knows the current session).
//!
//! Why a Durable Object call and not a Cloudflare Queue for shard → directory: the
//! directory must see a linked visitor's sessions before the next report reads them (a
//! queue adds its batch wait, up to seconds, and an at-least-once delivery the directory
//! would dedupe anyway); the call is one RPC of a few ms only for linked visitors (the
//! anonymous majority costs nothing), and the shard's own SQLite is already a durable
//! outbox (the dirty mark) with its alarm as the retry. A queue would add a second durable
//! store of the same facts, a consumer Worker and ~3 billed operations per message, and
//! order would still need the versions.
//!
//! # Reads
//!
//! [`ShardEngine::traffic`] answers a report's traffic (core's `rollup::answer`) from the
//! day summaries for ranges on whole days, else from the hour rollups; the worker sums the
//! shards' answers ([`msg::TrafficAnswer::merge`], exact since a visitor lives in one
//! shard) and the directory adds what is credited.
//!
//! # The alarm
//!
//! Writes the archive ([`archive::flush_archive`]), retries the directory for dirty
//! visitors, summarises changed days, deletes raw events past the retention once archived,
//! drops old quota counters, and steps a rebuild ([`archive::rebuild_step`]).

pub mod archive;
pub mod client;
pub mod engine;
pub mod msg;
// `#[durable_object]` generates the class's JS-facing methods without doc comments
#[cfg(target_arch = "wasm32")]
#[allow(missing_docs)]
pub mod object;
mod rollups;
pub mod sql;

pub use engine::{ArchivedEvent, Ingested, ShardEngine, ShardStatus};
