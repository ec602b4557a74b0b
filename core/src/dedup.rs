//! (dedup: being written.)
