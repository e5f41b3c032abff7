//! The PostgreSQL gateway: people connect with any PostgreSQL client as `USER@TARGET`
//! (`psql "host=gw port=6432 user=alice@pgprod dbname=app sslmode=require"`). The gateway
//! authenticates them with their Keepwatch password over SCRAM-SHA-256 (never cleartext),
//! inside TLS with its own certificate, opens a session through the session layer (target,
//! grant, recording: fail closed), logs into the target with the vaulted password by whichever
//! method it asks for (over TLS as the target's row says), and then relays both ways,
//! recording every statement before it is forwarded (`keepwatch-pg`'s tracker follows the
//! protocol; `docs/recording-format.md`, tags 17 to 19).
//!
//! One connection is one task; its two directions are two pumps. A failure in one connection
//! ends only that connection.

mod client;
mod relay;
pub mod tls;
mod upstream;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keepwatch_core::{Admission, LoginLimiter};
use keepwatch_session::SessionLayer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Front end settings (`keepwatch.toml`).
#[derive(Debug, Clone)]
pub struct PgGatewayConfig {
    /// A connection that has not logged in within this long is closed.
    pub login_grace: Duration,
    /// Connections not logged in yet, at most, in all and per source address.
    pub max_unauthenticated: usize,
    pub max_unauthenticated_per_address: usize,
    /// How long to wait for a target before calling it unreachable.
    pub connect_timeout: Duration,
    /// How long a graceful shutdown waits for sessions to seal.
    pub shutdown_grace: Duration,
    /// The protocol bounds of each connection (longest message, pending statements, ...).
    pub limits: keepwatch_pg::Limits,
    /// A logged-in connection with no data either way for this long is ended; `None` never.
    pub idle_timeout: Option<Duration>,
}

impl Default for PgGatewayConfig {
    fn default() -> Self {
        PgGatewayConfig {
            login_grace: Duration::from_secs(30),
            max_unauthenticated: 256,
            max_unauthenticated_per_address: 32,
            connect_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            limits: keepwatch_pg::Limits::default(),
            idle_timeout: Some(Duration::from_secs(60 * 60)),
        }
    }
}

/// Everything a connection needs, shared by all of them.
pub struct PgGatewayContext {
    pub sessions: Arc<SessionLayer>,
    pub config: PgGatewayConfig,
    /// The gateway's certificate towards people.
    pub tls: Arc<rustls::ServerConfig>,
    /// Failed logins, shared with the SSH gateway and the console.
    pub logins: Arc<LoginLimiter>,
    admission: Arc<Admission>,
    /// The keys this gateway handed its clients for cancel requests, and the target backend
    /// each stands for.
    cancels: Mutex<HashMap<CancelKey, upstream::Backend>>,
}

/// What a client sends in a CancelRequest: the process id and secret key it was given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CancelKey {
    pid: i32,
    secret: Vec<u8>,
}

/// Cancel keys held at most: one per live connection is the need, so this bounds a flood.
const MAX_CANCEL_KEYS: usize = 100_000;

impl PgGatewayContext {
    pub fn new(
        sessions: Arc<SessionLayer>,
        config: PgGatewayConfig,
        tls: Arc<rustls::ServerConfig>,
        logins: Arc<LoginLimiter>,
    ) -> Self {
        let admission =
            Admission::new(config.max_unauthenticated, config.max_unauthenticated_per_address);
        PgGatewayContext {
            sessions,
            config,
            tls,
            logins,
            admission,
            cancels: Mutex::new(HashMap::new()),
        }
    }

    fn cancels(&self) -> std::sync::MutexGuard<'_, HashMap<CancelKey, upstream::Backend>> {
        self.cancels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new cancel key for `backend`, to hand the client in place of the target's own.
    fn register_cancel(&self, backend: upstream::Backend) -> Option<CancelKey> {
        let mut map = self.cancels();
        if map.len() >= MAX_CANCEL_KEYS {
            return None;
        }
        loop {
            let mut raw = [0u8; 8];
            getrandom::fill(&mut raw).ok()?;
            let pid = i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) & 0x7fff_ffff;
            let key = CancelKey { pid, secret: raw[4..].to_vec() };
            if let std::collections::hash_map::Entry::Vacant(e) = map.entry(key.clone()) {
                e.insert(backend);
                return Some(key);
            }
        }
    }

    fn forget_cancel(&self, key: &CancelKey) {
        self.cancels().remove(key);
    }

    fn backend_for(&self, key: &CancelKey) -> Option<upstream::Backend> {
        self.cancels().get(key).cloned()
    }
}

/// Serves PostgreSQL on `listener` until `shutdown` is cancelled; then ends every session it
/// runs (each sealed `terminated`) and returns once they are sealed or the grace has passed.
pub async fn serve(ctx: Arc<PgGatewayContext>, listener: TcpListener, shutdown: CancellationToken) {
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
        let slot = match ctx.admission.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(full) => {
                tracing::debug!(%peer, ?full, "postgres connection refused: too many not logged in");
                continue;
            }
        };
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move { client::run(ctx, socket, peer, slot, shutdown).await });
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(ctx.config.shutdown_grace, tracker.wait()).await.is_err() {
        tracing::warn!("shutdown grace period passed with postgres sessions unsealed");
    }
}
