//! One person's SSH connection: its session (target, recording, upstream) and its channels.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use keepwatch_core::{AuditAction, GrantPolicy, RecordingFailure, SessionId, SessionStatus};
use keepwatch_recorder::Recorder;
use keepwatch_recording::{Event, SessionStart};
use keepwatch_store::{NewAudit, SessionRow, TargetRow, now_us};
use russh::Channel;
use russh::client;
use russh::server::{Handle, Msg};
use tokio::net::TcpStream;
use tokio::sync::{OnceCell, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::GatewayContext;
use crate::admission::Slot;
use crate::auth::{ConnHandler, Login};
use crate::upstream::{self, UpstreamError, UpstreamHandler};

/// A session that reached its target: what every channel of the connection relays through.
pub(crate) struct ActiveSession {
    pub id: SessionId,
    pub target: TargetRow,
    pub recorder: Recorder,
    pub upstream: client::Handle<UpstreamHandler>,
    /// Set (to the text shown to the person) when the session must end now.
    pub terminate: watch::Receiver<Option<String>>,
    /// What the person's grant allows on this target (file transfers, forwarding).
    pub grant: GrantPolicy,
    /// Connections the target accepts for `ssh -R`; taken by the first allowed forward.
    forwarded: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<crate::upstream::Forwarded>>>,
    /// Connections to the agent socket the target offers for `ssh -A`; taken by the first
    /// channel that forwards the agent, `None` from the start unless the grant allows it.
    agents: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<Channel<client::Msg>>>>,
    /// With `on_recording_failure = "continue"`, set once the recording has failed.
    unrecorded: AtomicBool,
}

/// How long a terminated session's client has to close the connection itself.
const TERMINATED_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

pub(crate) struct Connection {
    pub ctx: Arc<GatewayContext>,
    pub login: Login,
    pub peer: SocketAddr,
    pub handle: Handle,
    session: OnceCell<Result<Arc<ActiveSession>, String>>,
    tasks: TaskTracker,
    pub cancel: CancellationToken,
    /// When data last moved, for the idle timeout.
    pub activity: Arc<Activity>,
    /// Channels open now (shells, execs, transfers, tunnels, agent channels).
    channels: Arc<AtomicUsize>,
}

/// A channel's place in the connection's count, given back when the channel ends.
struct ChannelSlot(Arc<AtomicUsize>);

impl Drop for ChannelSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// When something last moved on a connection, for the idle timeout.
#[derive(Debug)]
pub(crate) struct Activity {
    start: std::time::Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity { start: std::time::Instant::now(), last_ms: AtomicU64::new(0) }
    }

    /// Something moved now.
    pub(crate) fn touch(&self) {
        self.last_ms.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> std::time::Duration {
        let last = std::time::Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// Serves one TCP connection to the end, then seals its session. The connection must log
/// in within the login grace time, holding its pre-login `slot` until then; once logged in
/// it ends after the idle timeout without data.
pub(crate) async fn run(
    ctx: Arc<GatewayContext>,
    config: Arc<russh::server::Config>,
    socket: TcpStream,
    peer: SocketAddr,
    slot: Slot,
) {
    let deadline = tokio::time::Instant::now() + ctx.config.login_grace;
    let authed = Arc::new(AtomicBool::new(false));
    let activity = Arc::new(Activity::new());
    let cell = Arc::new(OnceCell::new());
    let handler = ConnHandler {
        ctx: ctx.clone(),
        peer,
        login: None,
        conn: cell.clone(),
        slot: Some(slot),
        authed: authed.clone(),
        activity: activity.clone(),
    };
    // A client that never sends its version line is cut off here.
    let running =
        match tokio::time::timeout_at(deadline, russh::server::run_stream(config, socket, handler))
            .await
        {
            Ok(Ok(running)) => running,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "connection ended before its handshake");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "no SSH version line within the login grace time");
                return;
            }
        };
    let handle = running.handle();
    tokio::pin!(running);
    let idle = ctx.config.idle_timeout;
    let mut check = tokio::time::interval(idle.map_or(std::time::Duration::from_secs(3600), |i| {
        (i / 4).max(std::time::Duration::from_millis(200))
    }));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A select! reads its branches' conditions once, on entry, and stays in until a branch
    // completes: so each branch checks the login itself when it fires. (Issue 10's drills
    // found every session cut off at the login grace time: the grace branch, enabled before
    // the login, was still armed after it.)
    let grace = tokio::time::sleep_until(deadline);
    tokio::pin!(grace);
    let mut grace_over = false;
    let result = loop {
        tokio::select! {
            r = &mut running => break r,
            _ = &mut grace, if !grace_over => {
                grace_over = true;
                if authed.load(Ordering::Relaxed) {
                    continue;
                }
                tracing::info!(%peer, "closed: not logged in within the login grace time");
                let _ = handle.disconnect(russh::Disconnect::ByApplication, "keepwatch: login grace time exceeded".into(), String::new()).await;
                // A peer that does not even read gets no more than a moment.
                match tokio::time::timeout(std::time::Duration::from_secs(5), &mut running).await {
                    Ok(r) => break r,
                    Err(_) => break Ok(()),
                }
            }
            _ = check.tick(), if idle.is_some() => {
                let Some(idle) = idle else { continue };
                if !authed.load(Ordering::Relaxed) || activity.idle_for() < idle {
                    continue;
                }
                let text = format!("keepwatch: session ended after {} minutes without activity", idle.as_secs() / 60);
                match cell.get().and_then(|c| c.session.get()).and_then(|s| s.as_ref().ok()) {
                    Some(s) => { ctx.terminate(s.id, &text); }
                    None => { let _ = handle.disconnect(russh::Disconnect::ByApplication, text, String::new()).await; }
                }
                activity.touch();
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
    if let Some(conn) = cell.get() {
        conn.finish().await;
    }
}

impl Connection {
    pub(crate) fn new(
        ctx: Arc<GatewayContext>,
        login: Login,
        peer: SocketAddr,
        handle: Handle,
        activity: Arc<Activity>,
    ) -> Self {
        Connection {
            ctx,
            login,
            peer,
            handle,
            session: OnceCell::new(),
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
            activity,
            channels: Arc::default(),
        }
    }

    /// Takes a place for one more channel, unless the connection has `max_channels` open.
    fn channel_slot(&self) -> Option<ChannelSlot> {
        let max = self.ctx.config.max_channels;
        self.channels
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| ChannelSlot(self.channels.clone()))
    }

    /// Whether another channel may open now (`max_channels`).
    pub(crate) fn has_room(&self) -> bool {
        self.channels.load(Ordering::Relaxed) < self.ctx.config.max_channels
    }

    pub(crate) fn spawn_channel(self: &Arc<Self>, channel: Channel<Msg>) {
        let conn = self.clone();
        let Some(slot) = self.channel_slot() else {
            self.tasks.spawn(async move {
                let _ = channel.close().await;
            });
            return;
        };
        let span = tracing::info_span!("channel", person = %self.login.person, peer = %self.peer);
        self.tasks.spawn(
            async move {
                let _slot = slot;
                crate::channel::run(conn, channel).await;
            }
            .instrument(span),
        );
    }

    pub(crate) fn spawn_tunnel(
        self: &Arc<Self>,
        channel: Channel<Msg>,
        host: String,
        port: u32,
        originator: String,
    ) {
        let conn = self.clone();
        let Some(slot) = self.channel_slot() else {
            self.tasks.spawn(async move {
                let _ = channel.close().await;
            });
            return;
        };
        let span = tracing::info_span!("tunnel", person = %self.login.person, peer = %self.peer, %host, port);
        self.tasks.spawn(
            async move {
                let _slot = slot;
                crate::tunnel::run_local(conn, channel, host, port, originator).await;
            }
            .instrument(span),
        );
    }

    /// Starts relaying the target's connections to the person's agent (once per session,
    /// and only when the grant allows `ssh -A`).
    pub(crate) fn serve_agent(self: &Arc<Self>, s: &Arc<ActiveSession>) {
        let rx = s.agents.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(rx) = rx {
            self.tasks.spawn(crate::tunnel::run_agent(self.clone(), s.clone(), rx));
        }
    }

    /// Starts serving the target's `ssh -R` connections (once per session).
    pub(crate) fn serve_remote_forwards(self: &Arc<Self>, s: &Arc<ActiveSession>) {
        let rx = s.forwarded.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(rx) = rx {
            self.tasks.spawn(crate::tunnel::run_remote(self.clone(), s.clone(), rx));
        }
    }

    pub(crate) fn spawn<F: Future<Output = ()> + Send + 'static>(&self, f: F) {
        self.tasks.spawn(f);
    }

    /// The session of this connection, started on first use with `target`. Later channels
    /// share it whatever they ask. The error is the line to show the person.
    pub(crate) async fn session(&self, target: &str) -> Result<Arc<ActiveSession>, String> {
        self.session.get_or_init(|| self.start_session(target)).await.clone()
    }

    async fn audit(&self, action: AuditAction, session_id: Option<SessionId>, detail: String) {
        let a = NewAudit {
            actor: self.login.person.clone(),
            action,
            session_id,
            client_addr: Some(self.peer.to_string()),
            detail,
        };
        if let Err(e) = self.ctx.store.audit(a).await {
            tracing::error!(error = %e, %action, "cannot write audit event");
        }
    }

    async fn start_session(&self, target_name: &str) -> Result<Arc<ActiveSession>, String> {
        let ctx = &self.ctx;
        let refused = |e: String| format!("keepwatch: {e}");
        let target = match ctx.store.target(target_name).await {
            Ok(Some(t)) => t,
            Ok(None) => return Err(refused(format!("target {target_name} not found"))),
            Err(e) => {
                tracing::error!(error = %e, "store failed");
                return Err(refused("internal error; session refused".into()));
            }
        };
        // No grant (revoked since login, or a target picked from the menu that is not
        // granted) means no session: never a default that allows everything. Checked before
        // anything is recorded or the target contacted.
        let grant = match ctx.store.grant_policy(&self.login.person, &target.name).await {
            Ok(Some(g)) => g,
            Ok(None) => {
                let why = format!("{} holds no grant on target {}", self.login.person, target.name);
                self.audit(AuditAction::SessionRefused, None, why).await;
                return Err(refused(format!("access to {target_name} denied")));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the grant");
                return Err(refused("internal error; session refused".into()));
            }
        };
        let row = SessionRow {
            id: SessionId::new(),
            person: self.login.person.clone(),
            target: target.name.clone(),
            target_host: format!("{}:{}", target.host, target.port),
            target_login: target.login.clone(),
            client_addr: crate::client_addr(self.peer),
            status: SessionStatus::Active,
            reason: None,
            started_at_us: now_us(),
            ended_at_us: None,
            chain_head: None,
            seal_seq: None,
            seal_signature: None,
            node: Some(ctx.recorder.node.clone()),
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
        if let Err(e) = ctx.store.insert_session(&row).await {
            tracing::error!(session_id = %id, error = %e, "cannot store session");
            self.audit(
                AuditAction::SessionRefused,
                None,
                format!("target {}: cannot store session: {e}", target.name),
            )
            .await;
            return Err(refused("cannot start the recording; session refused".into()));
        }
        let recorder = match Recorder::start(&ctx.recorder, start).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(session_id = %id, error = %e, "cannot start recording");
                let _ = ctx.store.delete_unrecorded_session(id).await;
                self.audit(
                    AuditAction::SessionRefused,
                    None,
                    format!("target {}: {e}", target.name),
                )
                .await;
                return Err(refused("cannot start the recording; session refused".into()));
            }
        };
        let terminate = ctx.live.insert(id, recorder.clone());
        self.audit(AuditAction::SessionStarted, Some(id), format!("target {}", target.name)).await;

        // The secret opens only for the row it was sealed for: a row edited outside keepwatch
        // (another host, port, login, host key, ...) refuses here, before the target is
        // contacted, so the secret never reaches the edited host.
        let secret = ctx.vault.open(&target.binding(), target.secret.ciphertext()).map_err(|e| {
            UpstreamError::TargetChanged {
                target: target.name.clone(),
                reason: match e {
                    keepwatch_store::VaultError::Decrypt { .. } => "its stored settings no longer \
                        match what its credential was sealed for (changed outside keepwatch, or \
                        a wrong vault key), so the credential stays sealed"
                        .into(),
                    keepwatch_store::VaultError::Legacy { .. } => "its credential was sealed by \
                        an older keepwatch and not sealed again at start (restart `keepwatch run`)"
                        .into(),
                    other => other.to_string(),
                },
            }
        });
        let connected = match &secret {
            Ok(secret) => {
                upstream::connect(&target, secret.clone(), ctx.config.connect_timeout).await
            }
            Err(e) => Err(e.clone()),
        };
        let up = match connected {
            Ok(up) => up,
            Err(e) => {
                let reason = e.to_string();
                let action = match e {
                    UpstreamError::HostKeyMismatch { .. } => AuditAction::HostKeyMismatch,
                    UpstreamError::TargetChanged { .. } => AuditAction::TargetRowMismatch,
                    _ => AuditAction::SessionRefused,
                };
                self.audit(action, Some(id), reason.clone()).await;
                let _ =
                    recorder.record(Event::Notice { channel: None, text: reason.clone() }).await;
                if let Err(e) = recorder.seal(SessionStatus::Refused, Some(reason.clone())).await {
                    tracing::error!(session_id = %id, error = %e, "cannot seal refused session");
                }
                ctx.live.remove(id);
                return Err(refused(reason));
            }
        };
        if let (Some(line), Ok(secret)) = (up.first_seen_key, &secret) {
            // Pinning changes the row the secret is bound to: seal it again for the pinned
            // row in the same step, or neither happens.
            let mut pinned = target.clone();
            pinned.host_key = Some(line.clone());
            let audit = NewAudit {
                actor: self.login.person.clone(),
                action: AuditAction::HostKeyPinned,
                session_id: Some(id),
                client_addr: Some(self.peer.to_string()),
                detail: format!(
                    "target {}: {line} (secret sealed again for the pinned key)",
                    target.name
                ),
            };
            let pinned = match ctx.vault.seal(&pinned.binding(), secret.expose()) {
                Ok(sealed) => {
                    ctx.store
                        .pin_host_key(
                            &target.name,
                            &line,
                            target.secret.ciphertext(),
                            &sealed,
                            audit,
                        )
                        .await
                }
                Err(e) => Err(keepwatch_store::StoreError::Invalid { what: e.to_string() }),
            };
            if let Err(e) = pinned {
                tracing::warn!(session_id = %id, error = %e, "cannot pin host key");
            }
        }
        drop(secret);
        tracing::info!(session_id = %id, target = %target.name, "session started");
        Ok(Arc::new(ActiveSession {
            id,
            target,
            recorder,
            upstream: up.handle,
            terminate,
            agents: std::sync::Mutex::new(grant.agent_forward.then_some(up.agents)),
            grant,
            forwarded: std::sync::Mutex::new(Some(up.forwarded)),
            unrecorded: AtomicBool::new(false),
        }))
    }

    /// Hands an event to the recorder, applying the target's recording-failure policy.
    /// An error means the session must end (the termination has been requested already).
    pub(crate) async fn record(&self, s: &ActiveSession, event: Event) -> Result<(), ()> {
        if s.unrecorded.load(Ordering::Relaxed) {
            return Ok(());
        }
        let Err(e) = s.recorder.record(event).await else { return Ok(()) };
        match s.target.on_recording_failure {
            RecordingFailure::Continue => {
                if !s.unrecorded.swap(true, Ordering::Relaxed) {
                    self.audit(
                        AuditAction::RecordingFailed,
                        Some(s.id),
                        format!(
                            "{e}; session continues unrecorded (on_recording_failure = continue)"
                        ),
                    )
                    .await;
                }
                Ok(())
            }
            RecordingFailure::Close => {
                self.audit(AuditAction::RecordingFailed, Some(s.id), format!("{e}; session ended"))
                    .await;
                self.ctx
                    .terminate(s.id, "keepwatch: the recording failed, so the session was ended");
                Err(())
            }
        }
    }

    /// Ends the connection of a terminated session. The person's client is given a moment to
    /// close on its own first: OpenSSH exits as soon as it reads a disconnect, dropping the
    /// channel data (the reason) it has not yet written to the terminal. A client that holds
    /// the connection open (`-N`, other channels) is disconnected when the moment is up.
    pub(crate) fn disconnect_terminated(&self, text: String) {
        let handle = self.handle.clone();
        tokio::spawn(async move {
            tokio::time::sleep(TERMINATED_GRACE).await;
            let _ = handle.disconnect(russh::Disconnect::ByApplication, text, String::new()).await;
        });
    }

    /// After the client has gone: stop the channels, seal the recording, leave the target.
    async fn finish(&self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        let Some(Ok(s)) = self.session.get() else { return };
        if let Err(e) = self.ctx.recorder.blobs.discard_session_capture_spools(s.id) {
            tracing::warn!(session_id = %s.id, error = %e, "cannot delete capture spools");
        }
        let terminated = s.terminate.borrow().clone();
        let (status, reason) = match terminated {
            Some(text) => (SessionStatus::Terminated, Some(text)),
            None => (SessionStatus::Closed, None),
        };
        match s.recorder.seal(status, reason.clone()).await {
            Ok(_) => tracing::info!(session_id = %s.id, %status, "session sealed"),
            Err(e) => {
                tracing::error!(session_id = %s.id, error = %e, "cannot seal recording; it will be sealed as interrupted on the next start")
            }
        }
        self.audit(
            AuditAction::SessionEnded,
            Some(s.id),
            format!("status {status}{}", reason.map(|r| format!(": {r}")).unwrap_or_default()),
        )
        .await;
        let _ = s.upstream.disconnect(russh::Disconnect::ByApplication, "", "").await;
        self.ctx.live.remove(s.id);
    }
}
