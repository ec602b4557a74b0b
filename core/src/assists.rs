//! (assists: being written.)
