//! Looking at a session: the one place the CLI and the web console decide and audit every
//! view, replay, export, watch, termination and capture download.
//!
//! [`Store::look`] loads the session, asks `keepwatch_core::may_look`, writes the audit event
//! and only then hands the row back. A session the viewer may not look at is `NotFound`,
//! exactly like a missing one; a failed audit write refuses the look.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use keepwatch_core::{AuditAction, Look, LookDecision, SessionId, SessionStatus, Viewer, may_look};

use crate::{NewAudit, SessionRow, Store, StoreError};

/// A viewer replaying a session again from the same address within this long writes no
/// second `recording_replayed` event (the console asks for a window on every seek). Decided
/// here from what the server knows (viewer, address, session, clock), never from anything
/// the client sends.
pub const REPLAY_AUDIT_WINDOW: Duration = Duration::from_secs(5 * 60);

/// How many recent replays are remembered; past this, older ones are forgotten first and,
/// if all are recent, all are (so a flood only means more audit events, never fewer).
const MAX_RECENT_REPLAYS: usize = 4096;

/// Why a look was refused.
#[derive(Debug, thiserror::Error)]
pub enum LookError {
    /// No such session, or one the viewer may not look at (the two are not told apart).
    #[error("session {id} not found")]
    NotFound { id: SessionId },
    /// Watching and terminating need a live session.
    #[error("session {id} is not live ({status})")]
    NotLive { id: SessionId, status: SessionStatus },
    #[error(
        "cannot write the {action} audit event for session {id}, so the look is refused: {source}"
    )]
    Audit {
        id: SessionId,
        action: AuditAction,
        #[source]
        source: StoreError,
    },
    #[error("cannot load session {id}: {source}")]
    Store {
        id: SessionId,
        #[source]
        source: StoreError,
    },
}

type ReplayKey = (String, String, SessionId);

/// Replays audited lately, per viewer, address and session.
#[derive(Default)]
pub(crate) struct RecentReplays {
    seen: Mutex<HashMap<ReplayKey, Instant>>,
}

impl std::fmt::Debug for RecentReplays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecentReplays")
    }
}

/// The address without its port: a browser opens new connections as it likes.
fn host_of(addr: Option<&str>) -> String {
    match addr {
        Some(a) => {
            a.parse::<std::net::SocketAddr>().map(|s| s.ip().to_string()).unwrap_or(a.into())
        }
        None => String::new(),
    }
}

impl RecentReplays {
    fn key(viewer: &Viewer, id: SessionId) -> ReplayKey {
        (viewer.actor.clone(), host_of(viewer.client_addr.as_deref()), id)
    }

    fn audited_lately(&self, key: &ReplayKey, now: Instant) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(key).is_some_and(|at| now.duration_since(*at) < REPLAY_AUDIT_WINDOW)
    }

    fn note(&self, key: ReplayKey, now: Instant) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= MAX_RECENT_REPLAYS {
            seen.retain(|_, at| now.duration_since(*at) < REPLAY_AUDIT_WINDOW);
            if seen.len() >= MAX_RECENT_REPLAYS {
                seen.clear();
            }
        }
        seen.insert(key, now);
    }
}

impl Store {
    /// Decides and audits one look at session `id` by `viewer`, and returns the session.
    /// `detail` goes into the audit event (where the look came from, a termination's
    /// reason, a transfer's id and path). Replays by the same viewer from the same address
    /// are audited once per [`REPLAY_AUDIT_WINDOW`]; every other look is audited each time.
    ///
    /// # Errors
    /// `NotFound` for a missing session and for one the viewer may not look at; `NotLive`
    /// for watching or terminating a session that has ended; `Audit` when the audit event
    /// cannot be written (nothing may be shown then); `Store` when the session cannot be
    /// read.
    pub async fn look(
        &self,
        viewer: &Viewer,
        id: SessionId,
        look: Look,
        detail: &str,
    ) -> Result<SessionRow, LookError> {
        let row = self
            .session(id)
            .await
            .map_err(|source| LookError::Store { id, source })?
            .ok_or(LookError::NotFound { id })?;
        match may_look(viewer, &row.person, row.status, look) {
            LookDecision::Allow => {}
            LookDecision::NotFound => return Err(LookError::NotFound { id }),
            LookDecision::NotLive(status) => return Err(LookError::NotLive { id, status }),
        }
        let now = Instant::now();
        let replay_key = (look == Look::Replay).then(|| RecentReplays::key(viewer, id));
        if let Some(key) = &replay_key
            && self.recent_replays.audited_lately(key, now)
        {
            return Ok(row);
        }
        let action = look.action();
        self.audit(NewAudit {
            actor: viewer.actor.clone(),
            action,
            session_id: Some(id),
            client_addr: viewer.client_addr.clone(),
            detail: detail.to_owned(),
        })
        .await
        .map_err(|source| LookError::Audit { id, action, source })?;
        if let Some(key) = replay_key {
            self.recent_replays.note(key, now);
        }
        Ok(row)
    }
}
