//! Who is calling: browser sessions (cookie + CSRF token, idle expiry, login lockout) and
//! API tokens (bearer, stored as SHA-256).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use keepwatch_core::{PersonName, Role, Viewer};
use sha2::{Digest, Sha256};

use crate::{ApiError, WebState};

/// The browser session cookie.
pub(crate) const COOKIE: &str = "kw_session";
/// Failed logins (per name and per address) before a lockout.
const MAX_FAILURES: usize = 5;
/// The window failures are counted in, and how long a lockout lasts.
const LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// The token the CLI (`watch`, `kill`) uses, kept in the data directory with mode 0600.
pub const CLI_TOKEN_NAME: &str = "local-cli";

/// An authenticated caller: the [`Viewer`] every look is decided for.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The actor the audit trail names (the person, `token:NAME`, or `local:OS_USER`), the
    /// person whose own sessions they may see (browser sessions and person-bound tokens),
    /// their role and address.
    pub viewer: Viewer,
}

impl Caller {
    /// # Errors
    /// 403 when the caller's role is below `min`.
    pub(crate) fn require(&self, min: Role) -> Result<(), ApiError> {
        if self.viewer.role.at_least(min) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "this needs the {} role; you are {}",
                    min.as_str(),
                    self.viewer.role.as_str()
                ),
            ))
        }
    }

    pub(crate) fn actor(&self) -> &str {
        &self.viewer.actor
    }
}

struct WebSession {
    person: String,
    role: Role,
    csrf: String,
    last_seen: Instant,
}

/// Browser sessions and login failures, in memory (a restart logs everyone out).
#[derive(Default)]
pub(crate) struct Sessions {
    by_hash: Mutex<HashMap<String, WebSession>>,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// A random token: 32 bytes as hex.
pub fn random_token() -> Result<String, ApiError> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| ApiError::internal(format!("random source: {e}")))?;
    Ok(hex(&raw))
}

pub fn sha256_hex(s: &str) -> String {
    hex(&Sha256::digest(s.as_bytes()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Sessions {
    /// Starts a browser session; returns the cookie value and the CSRF token.
    pub(crate) fn create(&self, person: &str, role: Role) -> Result<(String, String), ApiError> {
        let cookie = random_token()?;
        let csrf = random_token()?;
        let s = WebSession {
            person: person.to_owned(),
            role,
            csrf: csrf.clone(),
            last_seen: Instant::now(),
        };
        self.by_hash.lock().unwrap_or_else(|e| e.into_inner()).insert(sha256_hex(&cookie), s);
        Ok((cookie, csrf))
    }

    pub(crate) fn remove(&self, cookie: &str) {
        self.by_hash.lock().unwrap_or_else(|e| e.into_inner()).remove(&sha256_hex(cookie));
    }

    /// The live session of `cookie` (touching it), or `None` if unknown or idle too long.
    fn lookup(&self, cookie: &str, idle: Duration) -> Option<(String, Role, String)> {
        let mut map = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, s| now.duration_since(s.last_seen) < idle);
        let s = map.get_mut(&sha256_hex(cookie))?;
        s.last_seen = now;
        Some((s.person.clone(), s.role, s.csrf.clone()))
    }

    /// How long `keys` stay locked out, if any of them failed too often.
    pub(crate) fn locked_for(&self, keys: &[String]) -> Option<Duration> {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        keys.iter()
            .filter_map(|k| {
                let q = map.get_mut(k)?;
                while q.front().is_some_and(|t| now.duration_since(*t) >= LOCKOUT) {
                    q.pop_front();
                }
                (q.len() >= MAX_FAILURES).then(|| LOCKOUT - now.duration_since(q[0]))
            })
            .max()
    }

    pub(crate) fn failed(&self, keys: &[String]) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            let q = map.entry(k.clone()).or_default();
            q.push_back(Instant::now());
            while q.len() > MAX_FAILURES {
                q.pop_front();
            }
        }
    }

    pub(crate) fn succeeded(&self, keys: &[String]) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            map.remove(k);
        }
    }
}

pub(crate) fn client_addr(parts: &Parts) -> Option<String> {
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.to_string())
}

impl FromRequestParts<Arc<WebState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &Arc<WebState>,
    ) -> Result<Self, Self::Rejection> {
        let client_addr = client_addr(parts);
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        if let Some(token) = bearer {
            let row = st.store.token_by_hash(&sha256_hex(token.trim())).await?;
            let Some(row) = row else {
                return Err(ApiError::unauthorized("unknown API token"));
            };
            // The CLI's own token acts for the local OS user it names.
            let actor = match parts.headers.get("x-keepwatch-actor").and_then(|v| v.to_str().ok()) {
                Some(local) if row.name == CLI_TOKEN_NAME && local.starts_with("local:") => {
                    local.to_owned()
                }
                _ => format!("token:{}", row.name),
            };
            // A token acts for the person it names (a user token made before tokens named
            // a person acts for nobody, and so sees no session).
            let viewer = Viewer { actor, person: row.person, role: row.role, client_addr };
            return Ok(Caller { viewer });
        }
        let Some(cookie) = cookie_from_headers(&parts.headers) else {
            return Err(ApiError::unauthorized("not logged in"));
        };
        let Some((person, role, csrf)) = st.sessions.lookup(&cookie, st.config.idle_timeout) else {
            return Err(ApiError::unauthorized("session expired; log in again"));
        };
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            let sent = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
            if sent != Some(csrf.as_str()) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "missing or wrong X-CSRF-Token header (GET /api/v1/me gives the token)",
                ));
            }
        }
        let name: PersonName =
            person.parse().map_err(|_| ApiError::unauthorized("not logged in"))?;
        Ok(Caller { viewer: Viewer { actor: person, person: Some(name), role, client_addr } })
    }
}

/// The CSRF token of the caller's browser session (for `/me`).
pub(crate) fn csrf_of(st: &WebState, parts_cookie: Option<&str>) -> Option<String> {
    let cookie = parts_cookie?;
    st.sessions.lookup(cookie, st.config.idle_timeout).map(|(_, _, c)| c)
}

pub(crate) fn cookie_from_headers(headers: &axum::http::HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().find_map(|v| {
        v.to_str().ok()?.split(';').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE).then(|| v.to_owned())
        })
    })
}
