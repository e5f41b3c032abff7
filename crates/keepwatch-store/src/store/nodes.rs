//! The gateway nodes sharing one database (issue 11). Each node registers at start and
//! beats every few seconds; a session belongs to the node that runs it. A node recovers
//! only its own sessions (and those from before nodes) at start; a survivor claims the
//! sessions of a node whose heartbeat lapsed, one at a time, so two survivors never seal
//! the same session and a node that comes back never recovers a session already claimed.
//! A second process started under a node's name takes the row over (a new `instance`):
//! the first sees its next heartbeat refused and ends its sessions (it was fenced).

use keepwatch_core::{NodeId, SessionId};

use super::{Store, dispatch};
use crate::StoreError;
use crate::rows::NodeRow;

impl Store {
    /// The database's clock, unix µs: heartbeats are stamped and judged by one clock, so a
    /// node whose own clock is off cannot look dead (or alive) to the others.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn clock_us(&self) -> Result<i64, StoreError> {
        dispatch!(self, b => b.clock_us().await)
    }

    /// Registers (or re-registers, after a restart) `node` as running now as `instance`.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn register_node(
        &self,
        node: &NodeId,
        instance: &str,
        now_us: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.register_node(node, instance, now_us).await)
    }

    /// Records a heartbeat. `false` when the row belongs to another instance now (or was
    /// forgotten): this process has been fenced and must stop serving sessions.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn node_heartbeat(
        &self,
        node: &NodeId,
        instance: &str,
        now_us: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, b => b.node_heartbeat(node, instance, now_us).await)
    }

    /// Publishes where `node` (as `instance`) takes requests from the other nodes.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn advertise_node(
        &self,
        node: &NodeId,
        instance: &str,
        web_addr: &str,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.advertise_node(node, instance, web_addr).await)
    }

    /// Every registered node, by name.
    ///
    /// # Errors
    /// Database failures, or a node name the vocabulary refuses.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        dispatch!(self, b => b.nodes().await)
    }

    /// Makes `to` the owner of the active session `id` if `from` (`None`: no node, a
    /// session from before nodes) still owns it and, with `lapsed_before_us`, if `from`'s
    /// last heartbeat is older than that. One statement, so of two claimants one wins.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn claim_session(
        &self,
        id: SessionId,
        from: Option<&NodeId>,
        to: &NodeId,
        lapsed_before_us: Option<i64>,
    ) -> Result<bool, StoreError> {
        dispatch!(self, b => b.claim_session(id, from, to, lapsed_before_us).await)
    }

    /// Removes a lapsed node that owns no active session any more. `false` if it beat
    /// again meanwhile or still owns one.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn forget_node(
        &self,
        node: &NodeId,
        lapsed_before_us: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, b => b.forget_node(node, lapsed_before_us).await)
    }
}
