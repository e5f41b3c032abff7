//! Who is calling: browser sessions (cookie + CSRF token, idle expiry, an absolute lifetime,
//! ended as soon as their person is disabled, removed or given another role) and API tokens
//! (bearer, stored as SHA-256; a token bound to a person works only while that person may
//! act). Failed logins are counted by the limiter the SSH gateway shares
//! (`keepwatch_core::LoginLimiter`), in `api.rs`'s login.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use keepwatch_core::{PersonName, Role, Viewer};
use keepwatch_store::{PersonRow, WebLoginLimits, WebLoginRow, now_us};
use sha2::{Digest, Sha256};

use crate::{ApiError, WebConfig, WebState};

/// The browser session cookie.
pub(crate) const COOKIE: &str = "kw_session";
/// The token the CLI (`watch`, `kill`) uses, kept in the data directory with mode 0600; each
/// node has its own (`local-cli.<node>`), so nodes sharing a database do not replace each
/// other's.
pub const CLI_TOKEN_NAME: &str = "local-cli";

/// The CLI token of `node`.
pub fn cli_token_name(node: &str) -> String {
    format!("{CLI_TOKEN_NAME}.{node}")
}

/// Whether `name` is a CLI token's (reserved: no one else may create one so named).
pub fn is_cli_token(name: &str) -> bool {
    name == CLI_TOKEN_NAME || name.starts_with(&format!("{CLI_TOKEN_NAME}."))
}

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

/// What a browser session says about its caller.
#[derive(Clone)]
struct SessionView {
    person: PersonName,
    role: Role,
    person_created_at_us: i64,
    csrf: String,
}

/// A person's row as far as sessions and tokens care: whether they still may act, as whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PersonState {
    role: Role,
    disabled: bool,
    created_at_us: i64,
}

/// Most people whose state is cached at once (the cache only ever holds people with a
/// session or a token, but it must not grow without bound either).
const PERSON_CACHE_MAX: usize = 10_000;

/// Browser sessions, kept in the database (`Store::web_login`) so that every node sharing
/// it serves them and a logout on one ends them on all, and a short cache of the people
/// they belong to.
#[derive(Default)]
pub(crate) struct Sessions {
    people: Mutex<HashMap<String, (Instant, Option<PersonState>)>>,
}

/// The database's view of the console's session limits.
fn limits(config: &WebConfig) -> WebLoginLimits {
    let us = |d: std::time::Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    WebLoginLimits {
        idle_us: us(config.idle_timeout),
        lifetime_us: us(config.session_lifetime),
        per_person: config.sessions_per_person.max(1),
    }
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
    /// Starts a browser session for `person` (as their row is now); returns the cookie value
    /// and the CSRF token. A person holds at most `per_person` sessions: the one used least
    /// recently makes way.
    pub(crate) async fn create(
        &self,
        st: &WebState,
        person: &PersonRow,
    ) -> Result<(String, String), ApiError> {
        let name: PersonName =
            person.name.parse().map_err(|_| ApiError::internal("person name is not valid"))?;
        let cookie = random_token()?;
        let csrf = random_token()?;
        let now = now_us();
        let row = WebLoginRow {
            person: name,
            role: person.role,
            person_created_at_us: person.created_at_us,
            csrf: csrf.clone(),
            started_at_us: now,
            last_seen_at_us: now,
        };
        st.store.add_web_login(&sha256_hex(&cookie), &row, limits(&st.config)).await?;
        Ok((cookie, csrf))
    }

    pub(crate) async fn remove(&self, st: &WebState, cookie: &str) -> Result<(), ApiError> {
        Ok(st.store.remove_web_login(&sha256_hex(cookie)).await?)
    }

    /// The live session of `cookie` (touching it), or `None` if unknown, idle too long or
    /// older than its lifetime.
    async fn lookup(&self, st: &WebState, cookie: &str) -> Result<Option<SessionView>, ApiError> {
        let row = st.store.web_login(&sha256_hex(cookie), now_us(), limits(&st.config)).await?;
        Ok(row.map(|s| SessionView {
            person: s.person,
            role: s.role,
            person_created_at_us: s.person_created_at_us,
            csrf: s.csrf,
        }))
    }

    /// The person's current state (their row, read at most every `person_recheck`).
    async fn person_state(
        &self,
        st: &WebState,
        name: &str,
    ) -> Result<Option<PersonState>, ApiError> {
        let fresh = st.config.person_recheck;
        if !fresh.is_zero() {
            let cache = self.people.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, state)) = cache.get(name)
                && at.elapsed() < fresh
            {
                return Ok(*state);
            }
        }
        let state = st.store.person(name).await?.map(|p| PersonState {
            role: p.role,
            disabled: p.disabled,
            created_at_us: p.created_at_us,
        });
        if !fresh.is_zero() {
            let mut cache = self.people.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= PERSON_CACHE_MAX {
                cache.clear();
            }
            cache.insert(name.to_owned(), (Instant::now(), state));
        }
        Ok(state)
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
                Some(local) if is_cli_token(&row.name) && local.starts_with("local:") => {
                    local.to_owned()
                }
                _ => format!("token:{}", row.name),
            };
            // A token acts for the person it names (a user token made before tokens named
            // a person acts for nobody, and so sees no session), and only while that person
            // may act: a disabled or removed person's tokens stop working at once.
            if let Some(p) = &row.person {
                match st.sessions.person_state(st, p.as_str()).await? {
                    Some(state) if !state.disabled => {}
                    _ => {
                        return Err(ApiError::unauthorized(
                            "this token's person is disabled or removed",
                        ));
                    }
                }
            }
            let viewer = Viewer { actor, person: row.person, role: row.role, client_addr };
            return Ok(Caller { viewer });
        }
        let Some(cookie) = cookie_from_headers(&parts.headers) else {
            return Err(ApiError::unauthorized("not logged in"));
        };
        let Some(session) = st.sessions.lookup(st, &cookie).await? else {
            return Err(ApiError::unauthorized("session expired; log in again"));
        };
        // The person as they are now: disabled, removed (or removed and added again) or
        // given another role since the login ends the session at once.
        let now = st.sessions.person_state(st, session.person.as_str()).await?;
        let same = now.is_some_and(|p| {
            !p.disabled && p.role == session.role && p.created_at_us == session.person_created_at_us
        });
        if !same {
            st.sessions.remove(st, &cookie).await?;
            return Err(ApiError::unauthorized(
                "your account was changed or disabled; log in again",
            ));
        }
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            let sent = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
            if sent != Some(session.csrf.as_str()) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "missing or wrong X-CSRF-Token header (GET /api/v1/me gives the token)",
                ));
            }
        }
        let viewer = Viewer {
            actor: session.person.to_string(),
            person: Some(session.person),
            role: session.role,
            client_addr,
        };
        Ok(Caller { viewer })
    }
}

/// The CSRF token of the caller's browser session (for `/me`).
pub(crate) async fn csrf_of(
    st: &WebState,
    parts_cookie: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let Some(cookie) = parts_cookie else { return Ok(None) };
    Ok(st.sessions.lookup(st, cookie).await?.map(|s| s.csrf))
}

pub(crate) fn cookie_from_headers(headers: &axum::http::HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().find_map(|v| {
        v.to_str().ok()?.split(';').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE).then(|| v.to_owned())
        })
    })
}
