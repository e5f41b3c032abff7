//! The gateway nodes sharing this database, in Postgres: registration, heartbeats, and
//! claiming the sessions of a node whose heartbeat lapsed (see `store/nodes.rs`).

use keepwatch_core::{NodeId, SessionId};

use super::Postgres;
use crate::StoreError;
use crate::decode;
use crate::error::At;
use crate::rows::NodeRow;

impl Postgres {
    pub(crate) async fn clock_us(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint")
            .fetch_one(&self.pool)
            .await
            .at("read the database clock", "")
    }

    pub(crate) async fn register_node(
        &self,
        node: &NodeId,
        instance: &str,
        now_us: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO nodes (id, instance, started_at_us, heartbeat_at_us) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (id) DO UPDATE SET instance = excluded.instance, \
             started_at_us = excluded.started_at_us, heartbeat_at_us = excluded.heartbeat_at_us",
        )
        .bind(node.as_str())
        .bind(instance)
        .bind(now_us)
        .execute(&self.pool)
        .await
        .at("register node", node)?;
        Ok(())
    }

    pub(crate) async fn node_heartbeat(
        &self,
        node: &NodeId,
        instance: &str,
        now_us: i64,
    ) -> Result<bool, StoreError> {
        let r =
            sqlx::query("UPDATE nodes SET heartbeat_at_us = $1 WHERE id = $2 AND instance = $3")
                .bind(now_us)
                .bind(node.as_str())
                .bind(instance)
                .execute(&self.pool)
                .await
                .at("node heartbeat", node)?;
        Ok(r.rows_affected() == 1)
    }

    pub(crate) async fn advertise_node(
        &self,
        node: &NodeId,
        instance: &str,
        web_addr: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE nodes SET web_addr = $1 WHERE id = $2 AND instance = $3")
            .bind(web_addr)
            .bind(node.as_str())
            .bind(instance)
            .execute(&self.pool)
            .await
            .at("advertise node", node)?;
        Ok(())
    }

    pub(crate) async fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, started_at_us, heartbeat_at_us, web_addr FROM nodes ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .at("list nodes", "")?;
        rows.iter().map(decode::node).collect::<Result<_, _>>().at("list nodes", "")
    }

    pub(crate) async fn claim_session(
        &self,
        id: SessionId,
        from: Option<&NodeId>,
        to: &NodeId,
        lapsed_before_us: Option<i64>,
    ) -> Result<bool, StoreError> {
        let from = from.map_or("", NodeId::as_str);
        let r = sqlx::query(
            "UPDATE sessions SET node = $1 WHERE id = $2 AND status = 'active' AND node = $3 \
             AND ($4::bigint IS NULL OR EXISTS (SELECT 1 FROM nodes n WHERE n.id = $3 AND n.heartbeat_at_us < $4))",
        )
        .bind(to.as_str())
        .bind(id.to_string())
        .bind(from)
        .bind(lapsed_before_us)
        .execute(&self.pool)
        .await
        .at("claim session", id)?;
        Ok(r.rows_affected() == 1)
    }

    pub(crate) async fn forget_node(
        &self,
        node: &NodeId,
        lapsed_before_us: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "DELETE FROM nodes WHERE id = $1 AND heartbeat_at_us < $2 AND NOT EXISTS \
             (SELECT 1 FROM sessions s WHERE s.node = $1 AND s.status = 'active')",
        )
        .bind(node.as_str())
        .bind(lapsed_before_us)
        .execute(&self.pool)
        .await
        .at("forget node", node)?;
        Ok(r.rows_affected() == 1)
    }
}
