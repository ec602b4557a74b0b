//! Builds the tracker (being written by the tracker engineer).
use crate::util::Result;

/// Builds the tracker into `dist/public/`.
pub fn build() -> Result {
    Ok(())
}
