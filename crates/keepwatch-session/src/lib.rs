//! The session layer every front end shares: SSH today, PostgreSQL next. A front end
//! authenticates the person in its own protocol, then asks [`SessionLayer::open`] for a
//! session on a target. The layer decides (target, grant), writes the row, starts the
//! recording (fail closed: no recording, no session), registers the session as live and
//! audits it; the front end then contacts the target with [`LiveSession::open_secret`],
//! hands every event to [`LiveSession::record`] before it forwards the bytes, and ends with
//! [`LiveSession::seal`] (or [`LiveSession::refuse`] when the target could not be reached).
//!
//! [`LiveRegistry`] holds the sessions live on this node: their termination switches and
//! recorders, for `kill` and `watch`, whichever protocol runs them. It is touched only when a
//! session starts, ends or is terminated, never on the data path.

mod live;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use keepwatch_core::Secret;
use keepwatch_core::metrics::METRICS;
use keepwatch_core::{
    AuditAction, GrantPolicy, Protocol, RecordingFailure, SessionId, SessionStatus,
};
use keepwatch_recorder::{Recorder, RecorderContext};
use keepwatch_recording::{Event, SessionStart};
use keepwatch_store::{NewAudit, SessionRow, Store, TargetRow, Vault, VaultError, now_us};
use tokio::sync::watch;

pub use live::LiveRegistry;

/// What every front end opens sessions with; one per node.
pub struct SessionLayer {
    pub store: Store,
    pub vault: Vault,
    pub recorder: RecorderContext,
    live: LiveRegistry,
    /// Shown to the person at connect (and recorded as shown); `None` shows nothing.
    notice: Option<String>,
}

/// The notice shown at connect unless `[gateway] notice` says otherwise.
pub const DEFAULT_NOTICE: &str = "keepwatch: this session is recorded and may be reviewed";

/// Why no session was opened: one line for the person, already prefixed `keepwatch: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn refusal(text: impl std::fmt::Display) -> Refusal {
    Refusal(format!("keepwatch: {text}"))
}

/// Who asks for a session on what, from where.
#[derive(Debug, Clone)]
pub struct Opening<'a> {
    /// The person, already authenticated by the front end.
    pub person: &'a str,
    pub target: &'a str,
    /// The front end's protocol: a target of another protocol is refused.
    pub protocol: Protocol,
    /// The person's address, as recorded and audited.
    pub client_addr: SocketAddr,
    /// Why the person opens the session, as they gave it at connect (SSH: asked in the
    /// terminal or `KEEPWATCH_REASON`; PostgreSQL: `keepwatch.reason` in the startup
    /// options). Required by a target with `require_reason`.
    pub reason: Option<&'a str>,
}

/// The most of a reason kept (the rest is cut, saying so).
pub const MAX_REASON_BYTES: usize = 512;

/// How a person gives a reason over `protocol`: the end of the line refusing a session
/// without one.
pub fn how_to_give_a_reason(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Ssh => {
            "give one with ssh -o SetEnv=KEEPWATCH_REASON='TICKET-123 why', or open an \
             interactive shell to be asked"
        }
        Protocol::Postgres => {
            "give one with PGOPTIONS='-c keepwatch.reason=TICKET-123' (or options in the \
             connection string)"
        }
    }
}

impl SessionLayer {
    pub fn new(store: Store, vault: Vault, recorder: RecorderContext) -> Self {
        SessionLayer { store, vault, recorder, live: LiveRegistry::default(), notice: None }
    }

    /// Shows `text` at connect: its first 24 lines, each cleaned of control characters and
    /// cut at 256 bytes; empty shows nothing.
    #[must_use]
    pub fn with_notice(mut self, text: &str) -> Self {
        let lines: Vec<String> =
            text.trim().lines().take(24).map(|l| keepwatch_core::clean(l, 256)).collect();
        let text = lines.join("\n");
        self.notice = (!text.is_empty()).then_some(text);
        self
    }

    /// The notice to show at connect, if any.
    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    /// The sessions live on this node.
    pub fn live(&self) -> &LiveRegistry {
        &self.live
    }

    /// Opens a session: the target and the person's grant on it are read, the session row is
    /// written and the recording started (its first chunk, the signed identity, on disk),
    /// and the session is registered as live and audited, all before the target is
    /// contacted. Any failure refuses the session, audited, with one line for the person.
    pub async fn open(self: &Arc<Self>, opening: Opening<'_>) -> Result<LiveSession, Refusal> {
        let audit = |action, session_id, detail| {
            self.audit(opening.person, opening.client_addr, action, session_id, detail)
        };
        let target = match self.store.target(opening.target).await {
            Ok(Some(t)) => t,
            Ok(None) => return Err(refusal(format_args!("target {} not found", opening.target))),
            Err(e) => {
                tracing::error!(error = %e, "store failed");
                return Err(refusal("internal error; session refused"));
            }
        };
        if target.protocol != opening.protocol {
            return Err(refusal(format_args!(
                "target {} is a {} target; it cannot be reached over {}",
                target.name, target.protocol, opening.protocol
            )));
        }
        // No grant (revoked since login, or a target picked from a menu that is not
        // granted) means no session: never a default that allows everything. Checked before
        // anything is recorded or the target contacted.
        let grant = match self.store.grant_policy(opening.person, &target.name).await {
            Ok(Some(g)) => g,
            Ok(None) => {
                let why = format!("{} holds no grant on target {}", opening.person, target.name);
                audit(AuditAction::SessionRefused, None, why).await;
                return Err(refusal(format_args!("access to {} denied", opening.target)));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the grant");
                return Err(refusal("internal error; session refused"));
            }
        };
        let reason = opening
            .reason
            .map(|r| keepwatch_core::clean(r.trim(), MAX_REASON_BYTES))
            .filter(|r| !r.is_empty());
        if target.require_reason && reason.is_none() {
            let why = format!("target {} requires a reason; none was given", target.name);
            audit(AuditAction::SessionRefused, None, why).await;
            return Err(refusal(format_args!(
                "target {} requires a reason for each session: {}",
                target.name,
                how_to_give_a_reason(opening.protocol)
            )));
        }
        let row = SessionRow {
            protocol: target.protocol,
            id: SessionId::new(),
            person: opening.person.to_owned(),
            target: target.name.clone(),
            target_host: format!("{}:{}", target.host, target.port),
            target_login: target.login.clone(),
            client_addr: opening.client_addr.to_string(),
            status: SessionStatus::Active,
            reason: None,
            stated_reason: reason.clone(),
            started_at_us: now_us(),
            ended_at_us: None,
            chain_head: None,
            seal_seq: None,
            seal_signature: None,
            node: Some(self.recorder.node.clone()),
        };
        let id = row.id;
        let start = SessionStart {
            session_id: id,
            user: row.person.clone(),
            target: row.target.clone(),
            target_host: row.target_host.clone(),
            target_login: row.target_login.clone(),
            client_addr: row.client_addr.clone(),
            started_at_us: row.started_at_us,
        };
        // Fail closed: no recording, no session. The row goes in first so a crash between
        // the two leaves an `active` row that recovery finds.
        if let Err(e) = self.store.insert_session(&row).await {
            tracing::error!(session_id = %id, error = %e, "cannot store session");
            let why = format!("target {}: cannot store session: {e}", target.name);
            audit(AuditAction::SessionRefused, None, why).await;
            return Err(refusal("cannot start the recording; session refused"));
        }
        let recorder = match Recorder::start(&self.recorder, start, reason.clone()).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(session_id = %id, error = %e, "cannot start recording");
                let _ = self.store.delete_unrecorded_session(id).await;
                audit(AuditAction::SessionRefused, None, format!("target {}: {e}", target.name))
                    .await;
                return Err(refusal("cannot start the recording; session refused"));
            }
        };
        let terminate = self.live.insert(id, recorder.clone());
        METRICS.session_started(target.protocol);
        let detail = match &reason {
            Some(r) => format!("target {}; reason: {r}", target.name),
            None => format!("target {}", target.name),
        };
        audit(AuditAction::SessionStarted, Some(id), detail).await;
        Ok(LiveSession {
            id,
            target,
            grant,
            recorder,
            person: opening.person.to_owned(),
            client_addr: opening.client_addr,
            terminate,
            unrecorded: AtomicBool::new(false),
            counted_end: AtomicBool::new(false),
            layer: self.clone(),
        })
    }

    async fn audit(
        &self,
        person: &str,
        client_addr: SocketAddr,
        action: AuditAction,
        session_id: Option<SessionId>,
        detail: String,
    ) {
        let a = NewAudit {
            actor: person.to_owned(),
            action,
            session_id,
            client_addr: Some(client_addr.to_string()),
            detail,
        };
        if let Err(e) = self.store.audit(a).await {
            tracing::error!(error = %e, %action, "cannot write audit event");
        }
    }
}

/// A session whose recording runs: what a front end relays through.
pub struct LiveSession {
    pub id: SessionId,
    /// The target row as read when the session opened.
    pub target: TargetRow,
    /// What the person's grant allows on this target.
    pub grant: GrantPolicy,
    pub recorder: Recorder,
    pub person: String,
    pub client_addr: SocketAddr,
    /// Set (to the text shown to the person) when the session must end now.
    terminate: watch::Receiver<Option<String>>,
    /// With `on_recording_failure = "continue"`, set once the recording has failed.
    unrecorded: AtomicBool,
    /// The session's end was counted in the metrics (once, however it ended).
    counted_end: AtomicBool,
    layer: Arc<SessionLayer>,
}

impl Drop for LiveSession {
    /// Dropped without a seal (a front end's task panicked): recovery will seal it
    /// `interrupted` at the next start, and the metrics count it so now.
    fn drop(&mut self) {
        self.count_end(SessionStatus::Interrupted);
    }
}

/// The session must end: its recording failed (the termination has been requested).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended;

impl LiveSession {
    /// The layer the session was opened on.
    pub fn layer(&self) -> &Arc<SessionLayer> {
        &self.layer
    }

    /// Writes an audit event about this session, as its person from its address.
    pub async fn audit(&self, action: AuditAction, detail: String) {
        self.layer.audit(&self.person, self.client_addr, action, Some(self.id), detail).await;
    }

    /// The target's secret, opened only for the row it was sealed for: a row edited outside
    /// keepwatch (another host, port, login, host key, ...) does not open it, so it never
    /// reaches the edited host. The error is why, for the person and the audit
    /// (`target_row_mismatch`).
    pub fn open_secret(&self) -> Result<Secret<Vec<u8>>, String> {
        let t = &self.target;
        self.layer.vault.open(&t.binding(), t.secret.ciphertext()).map_err(|e| match e {
            VaultError::Decrypt { .. } => "its stored settings no longer match what its \
                credential was sealed for (changed outside keepwatch, or a wrong vault key), so \
                the credential stays sealed"
                .into(),
            VaultError::Legacy { .. } => "its credential was sealed by an older keepwatch and \
                not sealed again at start (restart `keepwatch run`)"
                .into(),
            other => other.to_string(),
        })
    }

    /// Hands an event to the recorder, applying the target's recording-failure policy:
    /// `close` ends the session (`Err`), `continue` goes on unrecorded (audited once).
    pub async fn record(&self, event: Event) -> Result<(), Ended> {
        if self.unrecorded.load(Ordering::Relaxed) {
            return Ok(());
        }
        let Err(e) = self.recorder.record(event).await else { return Ok(()) };
        match self.target.on_recording_failure {
            RecordingFailure::Continue => {
                if !self.unrecorded.swap(true, Ordering::Relaxed) {
                    let why = format!(
                        "{e}; session continues unrecorded (on_recording_failure = continue)"
                    );
                    self.audit(AuditAction::RecordingFailed, why).await;
                }
                Ok(())
            }
            RecordingFailure::Close => {
                self.audit(AuditAction::RecordingFailed, format!("{e}; session ended")).await;
                self.layer.live.terminate(
                    self.id,
                    "keepwatch: the recording failed, so the session was ended",
                );
                Err(Ended)
            }
        }
    }

    fn count_end(&self, status: SessionStatus) {
        if !self.counted_end.swap(true, Ordering::Relaxed) {
            METRICS.session_ended(self.target.protocol, status);
        }
    }

    /// Changes when the session must end, to the text shown to the person.
    pub fn termination(&self) -> watch::Receiver<Option<String>> {
        self.terminate.clone()
    }

    /// Why the session was ended, once it was.
    pub fn terminated(&self) -> Option<String> {
        self.terminate.borrow().clone()
    }

    /// The target could not be reached (or refused): the reason is audited as `action`,
    /// recorded, and the session sealed `refused`. Returns the line for the person.
    pub async fn refuse(&self, action: AuditAction, reason: String) -> Refusal {
        self.audit(action, reason.clone()).await;
        let _ = self.recorder.record(Event::Notice { channel: None, text: reason.clone() }).await;
        if let Err(e) = self.recorder.seal(SessionStatus::Refused, Some(reason.clone())).await {
            tracing::error!(session_id = %self.id, error = %e, "cannot seal refused session");
        }
        self.layer.live.remove(self.id);
        self.count_end(SessionStatus::Refused);
        refusal(reason)
    }

    /// Seals the recording once the front end has stopped relaying: `terminated` with the
    /// reason if the session was ended, else `closed`; audited, and no longer live.
    pub async fn seal(&self) -> SessionStatus {
        let (status, reason) = match self.terminated() {
            Some(text) => (SessionStatus::Terminated, Some(text)),
            None => (SessionStatus::Closed, None),
        };
        match self.recorder.seal(status, reason.clone()).await {
            Ok(_) => tracing::info!(session_id = %self.id, %status, "session sealed"),
            Err(e) => {
                tracing::error!(session_id = %self.id, error = %e, "cannot seal recording; it will be sealed as interrupted on the next start")
            }
        }
        let detail =
            format!("status {status}{}", reason.map(|r| format!(": {r}")).unwrap_or_default());
        self.audit(AuditAction::SessionEnded, detail).await;
        self.layer.live.remove(self.id);
        self.count_end(status);
        status
    }
}
