//! The SSH gateway: people connect with a stock OpenSSH client as `USER@TARGET`; the gateway
//! authenticates them, opens the target with the vaulted credential (host key pinned), relays
//! every channel both ways and hands every event to the session's recorder.
//!
//! One connection is one task; each channel is two pumps (client→target in the channel's
//! task, target→client in a spawned one). A failure in one connection is logged with its
//! session id and ends only that connection.

pub mod agent;
mod auth;
mod channel;
mod connection;
mod menu;
mod transfer;
mod tunnel;
mod upstream;

use std::sync::Arc;
use std::time::Duration;

use keepwatch_core::LoginLimiter;
use keepwatch_session::SessionLayer;
use keepwatch_store::PasswordChecker;
use russh::keys::PrivateKey;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use upstream::{UnknownAlgorithm, check_algorithms, host_key_line};

/// Gateway settings from `keepwatch.toml`.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Environment variables a client may pass to the target (`LC_*` style prefixes allowed).
    pub env_allow: Vec<String>,
    /// How long to wait for a target before calling it unreachable.
    pub connect_timeout: Duration,
    /// How long a graceful shutdown waits for sessions to seal.
    pub shutdown_grace: Duration,
    /// Words that make an output line a password prompt (see `SecretInputDetector`).
    pub secret_prompts: std::sync::Arc<[String]>,
    /// A connection that has not logged in within this long is closed.
    pub login_grace: Duration,
    /// Connections not logged in yet, at most, in all and per source address; more are
    /// closed as they arrive.
    pub max_unauthenticated: usize,
    pub max_unauthenticated_per_address: usize,
    /// A logged-in connection with no data either way for this long is ended; `None` never.
    pub idle_timeout: Option<Duration>,
    /// Channels (shells, execs, transfers, tunnels) one connection may have open at once.
    pub max_channels: usize,
    /// Behind a balancer: connections come from it and start with a PROXY protocol header
    /// naming the person's address, which is what is recorded and limited.
    pub proxy: Option<keepwatch_proxy::ProxyConfig>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            env_allow: vec!["LANG".into(), "LC_*".into()],
            connect_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            secret_prompts: keepwatch_core::default_secret_prompts(),
            login_grace: Duration::from_secs(30),
            max_unauthenticated: 256,
            max_unauthenticated_per_address: 32,
            idle_timeout: Some(Duration::from_secs(60 * 60)),
            max_channels: 64,
            proxy: None,
        }
    }
}

/// Everything a connection needs, shared by all of them.
pub struct GatewayContext {
    /// Opens, records and seals sessions; holds the ones live on this node.
    pub sessions: Arc<SessionLayer>,
    pub config: GatewayConfig,
    pub host_key: PrivateKey,
    /// Failed logins, shared with the web console.
    pub logins: Arc<LoginLimiter>,
    /// Password checks, shared with the web console.
    pub passwords: PasswordChecker,
    admission: Arc<keepwatch_core::Admission>,
}

impl GatewayContext {
    pub fn new(
        sessions: Arc<SessionLayer>,
        config: GatewayConfig,
        host_key: PrivateKey,
        logins: Arc<LoginLimiter>,
        passwords: PasswordChecker,
    ) -> Self {
        let admission = keepwatch_core::Admission::new(
            config.max_unauthenticated,
            config.max_unauthenticated_per_address,
        );
        GatewayContext { sessions, config, host_key, logins, passwords, admission }
    }

    /// Connections that have not logged in yet.
    pub fn unauthenticated(&self) -> usize {
        self.admission.held()
    }
}

fn preferred() -> russh::Preferred {
    use russh::cipher;
    // AES-GCM first: with AES-NI it is the cheapest AEAD, and the relay pays for two sessions.
    const CIPHERS: &[cipher::Name] = &[
        cipher::AES_128_GCM,
        cipher::AES_256_GCM,
        cipher::CHACHA20_POLY1305,
        cipher::AES_256_CTR,
        cipher::AES_192_CTR,
        cipher::AES_128_CTR,
    ];
    russh::Preferred { cipher: std::borrow::Cow::Borrowed(CIPHERS), ..Default::default() }
}

fn server_config(ctx: &GatewayContext) -> russh::server::Config {
    use russh::MethodKind;
    russh::server::Config {
        server_id: russh::SshId::Standard("SSH-2.0-Keepwatch".into()),
        methods: russh::MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..]),
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![ctx.host_key.clone()],
        window_size: 8 << 20,
        maximum_packet_size: 32768,
        preferred: preferred(),
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        nodelay: true,
        ..Default::default()
    }
}

/// Serves SSH on `listener` until `shutdown` is cancelled; then tells every connected person,
/// seals every recording (status `terminated`) and returns once they are sealed or the grace
/// period has passed.
pub async fn serve(ctx: Arc<GatewayContext>, listener: TcpListener, shutdown: CancellationToken) {
    let config = Arc::new(server_config(&ctx));
    let tracker = TaskTracker::new();
    loop {
        let (socket, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = socket.set_nodelay(true);
        let Some(proxy) = ctx.config.proxy.clone() else {
            let slot = match ctx.admission.admit(peer.ip()) {
                Ok(slot) => slot,
                Err(full) => {
                    // Closed before the handshake: a flood costs a socket and nothing more.
                    tracing::debug!(%peer, ?full, "connection refused: too many not logged in");
                    continue;
                }
            };
            tracker.spawn(connection::run(ctx.clone(), config.clone(), socket, peer, slot));
            continue;
        };
        // Behind a balancer: the slot counts in all now, and for the person's address once
        // the header names it.
        let Ok(slot) = ctx.admission.admit_unaddressed() else {
            tracing::debug!(%peer, "connection refused: too many not logged in");
            continue;
        };
        let (ctx, config) = (ctx.clone(), config.clone());
        tracker.spawn(async move {
            let mut socket = socket;
            let client = match keepwatch_proxy::read_header(&mut socket, peer, &proxy).await {
                Ok(client) => client,
                Err(e) => {
                    tracing::warn!(error = %e, "connection refused");
                    return;
                }
            };
            let Ok(slot) = slot.for_address(client.ip()) else {
                tracing::debug!(%client, "connection refused: too many not logged in from this address");
                return;
            };
            connection::run(ctx, config, socket, client, slot).await;
        });
    }
    drop(listener);
    ctx.sessions.live().terminate_all("gateway shutting down");
    tracker.close();
    if tokio::time::timeout(ctx.config.shutdown_grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            remaining = ctx.sessions.live().ids().len(),
            "shutdown grace period passed with sessions unsealed"
        );
    }
}
