//! One person's SSH connection: its session (target, recording, upstream) and its channels.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use keepwatch_core::AuditAction;
use keepwatch_recording::Event;
use keepwatch_session::{LiveSession, Opening};
use keepwatch_store::NewAudit;
use russh::Channel;
use russh::client;
use russh::server::{Handle, Msg};
use tokio::net::TcpStream;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::GatewayContext;
use crate::auth::{ConnHandler, Login};
use crate::upstream::{self, UpstreamError, UpstreamHandler};
use keepwatch_core::Slot;

/// A session that reached its target: what every channel of the connection relays through.
/// The session layer's part (id, target, grant, recorder, termination) is reached through
/// `Deref`; this adds the SSH connection to the target.
pub(crate) struct ActiveSession {
    pub session: LiveSession,
    pub upstream: client::Handle<UpstreamHandler>,
    /// Connections the target accepts for `ssh -R`; taken by the first allowed forward.
    forwarded: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<crate::upstream::Forwarded>>>,
    /// Connections to the agent socket the target offers for `ssh -A`; taken by the first
    /// channel that forwards the agent, `None` from the start unless the grant allows it.
    agents: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<Channel<client::Msg>>>>,
}

impl std::ops::Deref for ActiveSession {
    type Target = LiveSession;
    fn deref(&self) -> &LiveSession {
        &self.session
    }
}

/// How long a terminated session's client has to close the connection itself. OpenSSH
/// closes as soon as it has printed the reason and seen the channel close; the grace only
/// ends clients that hold the connection open. Two seconds proved too short on a loaded
/// machine: ssh had not printed the reason before the disconnect dropped it (CI, a JVM
/// starting beside it).
const TERMINATED_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

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
                    Some(s) => { ctx.sessions.live().terminate(s.id, &text); }
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

    /// The session of this connection, started on first use with `target` and the reason
    /// the person gave. Later channels share it whatever they ask. The error is the line to
    /// show the person.
    pub(crate) async fn session(
        &self,
        target: &str,
        reason: Option<&str>,
    ) -> Result<Arc<ActiveSession>, String> {
        self.session.get_or_init(|| self.start_session(target, reason)).await.clone()
    }

    /// Whether the connection's session was started (or refused) already.
    pub(crate) fn has_session(&self) -> bool {
        self.session.initialized()
    }

    async fn start_session(
        &self,
        target_name: &str,
        reason: Option<&str>,
    ) -> Result<Arc<ActiveSession>, String> {
        let ctx = &self.ctx;
        let opening = Opening {
            person: &self.login.person,
            target: target_name,
            protocol: keepwatch_core::Protocol::Ssh,
            client_addr: self.peer,
            reason,
        };
        let session = ctx.sessions.open(opening).await.map_err(|r| r.0)?;
        let target = &session.target;
        let secret = session
            .open_secret()
            .map_err(|reason| UpstreamError::TargetChanged { target: target.name.clone(), reason });
        let connected = match &secret {
            Ok(secret) => {
                upstream::connect(target, secret.clone(), ctx.config.connect_timeout).await
            }
            Err(e) => Err(e.clone()),
        };
        let up = match connected {
            Ok(up) => up,
            Err(e) => {
                let action = match e {
                    UpstreamError::HostKeyMismatch { .. } => AuditAction::HostKeyMismatch,
                    UpstreamError::TargetChanged { .. } => AuditAction::TargetRowMismatch,
                    _ => AuditAction::SessionRefused,
                };
                return Err(session.refuse(action, e.to_string()).await.0);
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
                session_id: Some(session.id),
                client_addr: Some(self.peer.to_string()),
                detail: format!(
                    "target {}: {line} (secret sealed again for the pinned key)",
                    target.name
                ),
            };
            let store = &ctx.sessions.store;
            let pinned = match ctx.sessions.vault.seal(&pinned.binding(), secret.expose()) {
                Ok(sealed) => {
                    store
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
                tracing::warn!(session_id = %session.id, error = %e, "cannot pin host key");
            }
        }
        drop(secret);
        tracing::info!(session_id = %session.id, target = %target.name, "session started");
        let agents = session.grant.agent_forward.then_some(up.agents);
        Ok(Arc::new(ActiveSession {
            session,
            upstream: up.handle,
            agents: std::sync::Mutex::new(agents),
            forwarded: std::sync::Mutex::new(Some(up.forwarded)),
        }))
    }

    /// Hands an event to the recorder, applying the target's recording-failure policy.
    /// An error means the session must end (the termination has been requested already).
    pub(crate) async fn record(&self, s: &ActiveSession, event: Event) -> Result<(), ()> {
        s.session.record(event).await.map_err(|_| ())
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
        if let Err(e) = self.ctx.sessions.recorder.blobs.discard_session_capture_spools(s.id) {
            tracing::warn!(session_id = %s.id, error = %e, "cannot delete capture spools");
        }
        s.session.seal().await;
        let _ = s.upstream.disconnect(russh::Disconnect::ByApplication, "", "").await;
    }
}
