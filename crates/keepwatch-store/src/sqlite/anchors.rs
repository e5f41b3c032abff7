//! Anchors in SQLite (see `store/anchors.rs`).

use keepwatch_core::NodeId;

use super::Sqlite;
use crate::StoreError;
use crate::error::At;

impl Sqlite {
    pub(crate) async fn add_anchor(
        &self,
        node: &NodeId,
        at_us: i64,
        line: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO anchors (node, at_us, line) VALUES (?1, ?2, ?3)")
            .bind(node.as_str())
            .bind(at_us)
            .bind(line)
            .execute(&self.pool)
            .await
            .at("keep anchor", node)?;
        Ok(())
    }

    pub(crate) async fn anchor_lines(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT line FROM anchors ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .at("read anchors", "")
    }
}
