//! Builds the worker (being written by the edge engineer).
use crate::util::Result;

/// Builds the worker into `edge/build/`.
pub fn build() -> Result {
    Ok(())
}
