//! The entry source of a page load (a session's touch) and how it arrived, as
//! sessionisation needs it: core's [`closeloop_core::arrival`] (one function decides an
//! arrival, for today's D1 flush, the acknowledgement and issue 14's shards alike); this
//! module only keeps the edge's names for it.

pub use closeloop_core::arrival::{arrival, is_excluded, SessionTouch as Touch};
