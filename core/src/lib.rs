//! `closeloop-core`: the pure logic that the tracker and the edge share.
//!
//! No I/O, no clock, no randomness: every function takes the time it needs as an
//! argument and returns a value that the caller acts on. The edge (a Cloudflare
//! Worker) and the tracker (in the browser) compile this same crate to wasm32, and
//! it is unit-tested natively.
//!
//! Features:
//! - default `full`: everything (URL parsing, referrer lists, channel rules,
//!   validation, sessions, attribution, user agents and bot lists) — what the edge links.
//! - without `full`: only [`wire`] (the schema of `POST /v1/collect`) and the
//!   query-string half of [`entry`] — what the tracker links.

pub mod entry;
pub mod wire;

#[cfg(feature = "full")]
pub mod agent;
#[cfg(feature = "full")]
pub mod arrival;
#[cfg(feature = "full")]
pub mod assists;
#[cfg(feature = "full")]
pub mod attribution;
#[cfg(feature = "full")]
pub mod bots;
#[cfg(feature = "full")]
pub mod channel;
#[cfg(feature = "full")]
pub mod costs;
#[cfg(feature = "full")]
pub mod dedup;
#[cfg(feature = "full")]
pub mod identity;
#[cfg(feature = "full")]
pub mod import;
#[cfg(feature = "full")]
pub mod report;
#[cfg(feature = "full")]
pub mod resession;
#[cfg(feature = "full")]
pub mod rollup;
#[cfg(feature = "full")]
pub mod session;
#[cfg(feature = "full")]
pub mod time;
#[cfg(feature = "full")]
pub mod validate;
