//! Audit readiness while `run` runs: every recording verified on a schedule (`[verify]` in
//! keepwatch.toml, daily by default), the way `keepwatch verify --all` does (ledger, audit
//! chain, every recording against the gateway's key and its row). Each round is audited
//! `recordings_verified` by `scheduler:<node>` with `N checked, M problem(s)`, and every
//! session with a problem gets an event of its own naming it, so the event feed, syslog and
//! webhooks carry a failed verify (`docs/events.md`) and the metrics count it.
//!
//! On a shared database one node does the work: the live node with the smallest id.

use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use keepwatch_core::metrics::METRICS;
use keepwatch_core::{AuditAction, NodeId, SessionId};
use keepwatch_recorder::{Problem, verify_all};
use keepwatch_store::{BlobStore, NewAudit, Store};
use tokio_util::sync::CancellationToken;

/// Sessions with problems that get an audit event each in one round, at most.
const MAX_EVENTS_PER_ROUND: usize = 100;

pub(crate) struct Schedule {
    pub store: Store,
    pub blobs: BlobStore,
    pub key: VerifyingKey,
    pub node: NodeId,
    /// A node whose heartbeat is older than this is not live.
    pub lapse: Duration,
}

/// Verifies everything every `every` (the first round one interval after start) until
/// `shutdown`.
pub(crate) async fn verify_on_schedule(
    s: Arc<Schedule>,
    every: Duration,
    shutdown: CancellationToken,
) {
    every_interval(&s, every, shutdown, "scheduled verify", |s| Box::pin(s.round())).await;
}

/// Applies the retention policies and holds every `every` (`keepwatch retention apply`,
/// audited by `scheduler:<node>`) until `shutdown`.
pub(crate) async fn apply_retention_on_schedule(
    s: Arc<Schedule>,
    every: Duration,
    shutdown: CancellationToken,
) {
    every_interval(&s, every, shutdown, "retention", |s| Box::pin(s.retention())).await;
}

type Round<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// Runs `round` every `every` on the node whose turn it is, until `shutdown`.
async fn every_interval(
    s: &Schedule,
    every: Duration,
    shutdown: CancellationToken,
    what: &str,
    round: impl for<'a> Fn(&'a Schedule) -> Round<'a>,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match s.my_turn().await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!("{what}: cannot read the nodes: {e}");
                continue;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = round(s) => if let Err(e) = r {
                tracing::error!("{what} failed: {e:#}; the next round tries again");
            },
        }
    }
}

impl Schedule {
    /// Whether this node verifies this round: it is the live node with the smallest id.
    async fn my_turn(&self) -> Result<bool, keepwatch_store::StoreError> {
        let now = self.store.clock_us().await?;
        let lapse = self.lapse.as_micros() as i64;
        let first = self
            .store
            .nodes()
            .await?
            .into_iter()
            .filter(|n| now - n.heartbeat_at_us <= lapse)
            .map(|n| n.id)
            .min();
        Ok(first.is_none_or(|n| n == self.node))
    }

    async fn retention(&self) -> anyhow::Result<()> {
        let actor = format!("scheduler:{}", self.node);
        let report = crate::retention::apply(&self.store, &self.blobs, &actor, false).await?;
        tracing::info!(
            deleted = report.deleted.len(),
            held = report.held.len(),
            failed = report.failed.len(),
            "retention applied"
        );
        for (id, why) in &report.failed {
            tracing::error!(session_id = %id, "retention: {why}");
        }
        Ok(())
    }

    async fn round(&self) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let v = verify_all(&self.store, &self.blobs, &self.key).await?;
        let (checked, problems) = (v.checked, v.problems);
        let failed = sessions_with_problems(&problems);
        for _ in 0..checked.saturating_sub(failed.len()) {
            METRICS.verified(true);
        }
        for _ in &failed {
            METRICS.verified(false);
        }
        let actor = format!("scheduler:{}", self.node);
        let summary = format!("{checked} checked, {} problem(s)", problems.len());
        tracing::info!(elapsed_s = started.elapsed().as_secs(), "scheduled verify: {summary}");
        let mut events = vec![(None, summary)];
        for (id, what) in failed.iter().take(MAX_EVENTS_PER_ROUND) {
            events.push((*id, format!("scheduled: {what}")));
        }
        for (session_id, detail) in events {
            let a = NewAudit {
                actor: actor.clone(),
                action: AuditAction::RecordingsVerified,
                session_id,
                client_addr: None,
                detail,
            };
            if let Err(e) = self.store.audit(a).await {
                tracing::error!("scheduled verify: cannot write the audit event: {e}");
            }
        }
        Ok(())
    }
}

/// The problems grouped by session (the ledger's and the audit chain's own under `None`),
/// each group as one line `1 checked, N problem(s): ...` in the order found.
fn sessions_with_problems(problems: &[Problem]) -> Vec<(Option<SessionId>, String)> {
    let mut out: Vec<(Option<SessionId>, Vec<&str>)> = Vec::new();
    for p in problems {
        match out.iter_mut().find(|(s, _)| *s == p.session) {
            Some((_, list)) => list.push(&p.what),
            None => out.push((p.session, vec![&p.what])),
        }
    }
    out.into_iter()
        .map(|(s, list)| {
            let checked = usize::from(s.is_some());
            (s, format!("{checked} checked, {} problem(s): {}", list.len(), list.join("; ")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_grouped_by_session() {
        let a = SessionId::new();
        let p = |s: Option<SessionId>, what: &str| Problem { session: s, what: what.into() };
        let grouped = sessions_with_problems(&[
            p(Some(a), "recording not intact"),
            p(None, "ledger: entry 3 missing"),
            p(Some(a), "chain head differs"),
        ]);
        assert_eq!(
            grouped,
            [
                (
                    Some(a),
                    "1 checked, 2 problem(s): recording not intact; chain head differs".into()
                ),
                (None, "0 checked, 1 problem(s): ledger: entry 3 missing".into()),
            ]
        );
    }
}
