//! The Closeloop browser tracker (being written).
