//! (costs: being written.)
