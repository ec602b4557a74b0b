//! The Closeloop edge worker (being written).
