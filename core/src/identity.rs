//! (identity: being written.)
