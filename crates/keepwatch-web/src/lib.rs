//! The console and the HTTP API (`docs/api.md`): login and roles, sessions, replay, search,
//! the index status, live watching and termination, the audit trail and administration.
//! Every view, replay, export, search, watch and termination is audited before anything is
//! shown.
//!
//! The gateway is reached through [`LiveControl`], so this crate knows nothing of SSH.

mod api;
mod assets;
mod auth;
mod index_status;
mod openapi;
pub mod playback;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ed25519_dalek::VerifyingKey;
use futures::future::BoxFuture;
use keepwatch_core::SessionId;
use keepwatch_recorder::WatchStart;
use keepwatch_store::{BlobStore, Store, StoreError, Vault};

pub use api::{command_json, rfc3339};
pub use assets::{Asset, asset};
pub use auth::{CLI_TOKEN_NAME, random_token, sha256_hex};
pub use index_status::index_status_json;

/// What the web side may ask of the running gateway.
pub trait LiveControl: Send + Sync + 'static {
    /// Ends a live session, showing `message` to the person; false when it is not live.
    fn terminate(&self, id: SessionId, message: &str) -> bool;
    /// Starts watching a live session; `None` when it is not live.
    fn watch(&self, id: SessionId) -> BoxFuture<'_, Option<WatchStart>>;
    /// A target host key given as text (`ssh-ed25519 AAAA... comment`), parsed and written
    /// the way the gateway pins keys (no comment), or why it is not a key.
    fn host_key_line(&self, text: &str) -> Result<String, String>;
}

#[derive(Debug, Clone)]
pub struct WebConfig {
    /// A browser session ends after this long without a request.
    pub idle_timeout: Duration,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig { idle_timeout: Duration::from_secs(30 * 60) }
    }
}

/// Everything the handlers share.
pub struct WebState {
    pub store: Store,
    pub blobs: BlobStore,
    pub verifying_key: VerifyingKey,
    /// Seals target secrets added from the console (write-only).
    pub vault: Option<Vault>,
    pub live: Arc<dyn LiveControl>,
    pub config: WebConfig,
    sessions: auth::Sessions,
}

impl WebState {
    pub fn new(
        store: Store,
        blobs: BlobStore,
        verifying_key: VerifyingKey,
        vault: Option<Vault>,
        live: Arc<dyn LiveControl>,
        config: WebConfig,
    ) -> Arc<Self> {
        Arc::new(WebState {
            store,
            blobs,
            verifying_key,
            vault,
            live,
            config,
            sessions: auth::Sessions::default(),
        })
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
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
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
            other => {
                tracing::error!(error = %other, "web: store failed");
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
