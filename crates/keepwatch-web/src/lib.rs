//! The console and the HTTP API (`docs/api.md`): login and roles, sessions, replay, search,
//! the index status, live watching and termination, the audit trail and administration.
//! Every view, replay, export, search, watch and termination is audited before anything is
//! shown.
//!
//! The gateway is reached through [`LiveControl`], so this crate knows nothing of SSH.
//!
//! Everything a caller can make the server hold is bounded ([`WebConfig`]): connections and
//! the time to send a request ([`serve`]), browser sessions (idle expiry, a lifetime, a
//! number per person), login attempts (the limiter shared with SSH), replay responses
//! (events and bytes per page, [`ReplayLimits`]), and the heavy requests (replay, export,
//! verification, search) that run at once ([`HeavyLimits`]); recordings are read in
//! pieces, never whole.

mod api;
mod assets;
mod auth;
mod extract;
mod heavy;
mod index_status;
mod openapi;
pub mod playback;
mod replay;
pub mod report;
mod serve;
mod verification;
mod views;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ed25519_dalek::VerifyingKey;
use futures::future::BoxFuture;
use keepwatch_core::{LoginLimiter, SessionId};
use keepwatch_recorder::WatchStart;
use keepwatch_store::{BlobStore, PasswordChecker, Store, StoreError, Vault};

pub use api::{
    NODE_MAC_HEADER, NODE_REQUEST_HEADER, NodeTerminate, command_json, rfc3339, search_json,
};
pub use assets::{Asset, asset};
pub use auth::{CLI_TOKEN_NAME, cli_token_name, is_cli_token, random_token, sha256_hex};
pub use heavy::HeavyLimits;
pub use index_status::index_status_json;
pub use replay::ReplayLimits;
pub use serve::{ListenerConfig, serve};
pub use watch::NodeWatch;

/// A watch relayed from the node that runs the session: its messages (JSON text, as
/// `docs/api.md` describes the watch), in order.
pub type RemoteWatch = futures::stream::BoxStream<'static, String>;

/// What the web side may ask of the running gateway.
pub trait LiveControl: Send + Sync + 'static {
    /// Ends a session live on this node, showing `message` to the person; false when it is
    /// not live here.
    fn terminate(&self, id: SessionId, message: &str) -> bool;
    /// Ends a live session on whichever node runs it (asking that node when it is not this
    /// one); false when no node has it live.
    fn terminate_anywhere<'a>(&'a self, id: SessionId, message: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(std::future::ready(self.terminate(id, message)))
    }
    /// The key that signs requests between the nodes sharing the database
    /// (`POST /api/v1/nodes/terminate`); `None` refuses such requests.
    fn node_key(&self) -> Option<[u8; 32]> {
        None
    }
    /// Starts watching a live session; `None` when it is not live.
    fn watch(&self, id: SessionId) -> BoxFuture<'_, Option<WatchStart>>;
    /// Watches a session live on another node, through that node
    /// (`GET /api/v1/nodes/watch`): the watch's messages as that node sends them, ending
    /// when it ends; `None` when no other node has it live or none can be reached.
    fn watch_elsewhere(&self, _id: SessionId) -> BoxFuture<'_, Option<RemoteWatch>> {
        Box::pin(std::future::ready(None))
    }
    /// A target host key given as text (`ssh-ed25519 AAAA... comment`), parsed and written
    /// the way the gateway pins keys (no comment), or why it is not a key.
    fn host_key_line(&self, text: &str) -> Result<String, String>;
}

/// The console's bounds (`keepwatch.toml` `[limits]`).
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// A browser session ends after this long without a request.
    pub idle_timeout: Duration,
    /// A browser session ends this long after its login, however busy.
    pub session_lifetime: Duration,
    /// Browser sessions one person may hold; a new login ends the least recently used.
    pub sessions_per_person: usize,
    /// How long a person's row (role, disabled, removed) is trusted before a request reads
    /// it again; zero reads it on every request.
    pub person_recheck: Duration,
    /// The listener: connections, request head and body deadlines.
    pub listener: ListenerConfig,
    /// What one replay response may hold.
    pub replay: ReplayLimits,
    /// Replays, exports, verifications and searches at once.
    pub heavy: HeavyLimits,
    /// Verification results kept (per session, while the recording is unchanged).
    pub verify_cache_entries: usize,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            idle_timeout: Duration::from_secs(30 * 60),
            session_lifetime: Duration::from_secs(12 * 3600),
            sessions_per_person: 16,
            person_recheck: Duration::from_secs(1),
            listener: ListenerConfig::default(),
            replay: ReplayLimits::default(),
            heavy: HeavyLimits::default(),
            verify_cache_entries: 10_000,
        }
    }
}

/// What the console shares with the rest of the gateway.
pub struct WebParts {
    pub store: Store,
    pub blobs: BlobStore,
    pub verifying_key: VerifyingKey,
    /// Seals target secrets added from the console (write-only).
    pub vault: Option<Vault>,
    pub live: Arc<dyn LiveControl>,
    /// Failed logins, counted together with the SSH gateway's.
    pub logins: Arc<LoginLimiter>,
    /// Password checks, a few at a time, shared with the SSH gateway.
    pub passwords: PasswordChecker,
}

/// Everything the handlers share.
pub struct WebState {
    pub store: Store,
    pub blobs: BlobStore,
    pub verifying_key: VerifyingKey,
    pub vault: Option<Vault>,
    pub live: Arc<dyn LiveControl>,
    pub logins: Arc<LoginLimiter>,
    pub passwords: PasswordChecker,
    pub config: WebConfig,
    sessions: auth::Sessions,
    node_nonces: watch::SeenNonces,
    heavy: heavy::Heavy,
    verified: verification::VerifyCache,
    cursors: replay::CursorKey,
}

impl WebState {
    /// # Errors
    /// The random source fails (for the replay cursor key).
    pub fn new(parts: WebParts, config: WebConfig) -> Result<Arc<Self>, ApiError> {
        let WebParts { store, blobs, verifying_key, vault, live, logins, passwords } = parts;
        Ok(Arc::new(WebState {
            store,
            blobs,
            verifying_key,
            vault,
            live,
            logins,
            passwords,
            heavy: heavy::Heavy::new(config.heavy.clone()),
            verified: verification::VerifyCache::new(config.verify_cache_entries),
            cursors: replay::CursorKey::random()?,
            config,
            sessions: auth::Sessions::default(),
            node_nonces: watch::SeenNonces::default(),
        }))
    }

    /// Browser sessions held now (by every node sharing the database).
    ///
    /// # Errors
    /// The database's.
    pub async fn browser_sessions(&self) -> Result<u64, keepwatch_store::StoreError> {
        self.store.web_login_count().await
    }

    /// Verification results cached now.
    pub fn cached_verifications(&self) -> usize {
        self.verified.len()
    }
}

/// The console and the API.
pub fn router(state: Arc<WebState>) -> axum::Router {
    api::routes()
        .fallback(static_file)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// `Content-Security-Policy` of every response: everything only from the console itself,
/// nothing inline (the console draws terminals with xterm.js's WebGL renderer, which needs
/// no injected styles).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'self'; object-src 'none'";

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    // A response with a policy of its own keeps it (the report page: no script at all, its
    // styles inline); every other gets the console's.
    h.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    res
}

async fn static_file(uri: axum::http::Uri) -> Response {
    match asset(uri.path()) {
        Some(a) => ([(header::CONTENT_TYPE, a.content_type)], a.body).into_response(),
        None if uri.path().starts_with("/api/") => {
            ApiError::new(StatusCode::NOT_FOUND, format!("no API endpoint {}", uri.path()))
                .into_response()
        }
        None => {
            ApiError::new(StatusCode::NOT_FOUND, format!("no page {}", uri.path())).into_response()
        }
    }
}

/// An error answered as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), retry_after: None }
    }
    pub fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, e.to_string()),
            StoreError::Exists { .. } => Self::new(StatusCode::CONFLICT, e.to_string()),
            StoreError::Invalid { .. } => Self::bad_request(e.to_string()),
            StoreError::Conflict { .. } => {
                tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "web: store conflict");
                Self::new(StatusCode::CONFLICT, "a concurrent change got there first; try again")
            }
            other => {
                let source = std::error::Error::source(&other).map(|s| s.to_string());
                tracing::error!(error = %other, ?source, "web: store failed");
                Self::internal("the store failed; see the gateway log")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res =
            (self.status, Json(serde_json::json!({ "error": self.message }))).into_response();
        if let Some(v) = self.retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res
    }
}
