//! (validate: being written.)
