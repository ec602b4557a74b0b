//! (attribution: being written.)
