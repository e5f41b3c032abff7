//! The signed anchors the nodes write (`keepwatch_recorder::write_anchor`), kept in the
//! database beside their file and syslog copies.

use keepwatch_core::NodeId;

use super::{Store, dispatch};
use crate::StoreError;

impl Store {
    /// Keeps one anchor line (`KWANCHOR1 ...`, as signed) written by `node` at `at_us`.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn add_anchor(
        &self,
        node: &NodeId,
        at_us: i64,
        line: &str,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.add_anchor(node, at_us, line).await)
    }

    /// Every anchor line kept, oldest first.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn anchor_lines(&self) -> Result<Vec<String>, StoreError> {
        dispatch!(self, b => b.anchor_lines().await)
    }
}
