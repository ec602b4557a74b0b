//! (entry: being written.)
