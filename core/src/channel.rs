//! (channel: being written.)
