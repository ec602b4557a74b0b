//! (time: being written.)
