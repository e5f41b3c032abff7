//! [`Store`]: the facade over the metadata backends. Callers see domain-named methods; which
//! backend answers (SQLite or PostgreSQL) is decided once, at open, by a [`Database`].
//!
//! Dispatch is an enum ([`Backend`]), not a trait object: the backends are a closed set
//! inside this crate, so a `match` costs nothing, needs no boxed futures (async methods on
//! `dyn Trait` would), keeps `Store` a plain `Clone + Debug` value, and still makes every
//! backend implement every operation (a `match` arm that does not compile is a missing
//! method). What does not depend on the backend stays here: cleaning and logging audit
//! events, `look` decisions, re-sealing legacy secrets, adding recording lengths to the index
//! status.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::SigningKey;

use crate::StoreError;
use crate::postgres::Postgres;
use crate::sqlite::Sqlite;

/// What a NUL in text from a recording (an exec's command line or binary output, a
/// subsystem's name) is kept as, on both backends: U+FFFD, as bytes that are not text already
/// are. PostgreSQL's text cannot hold a NUL at all (the write failed, so an exec's binary
/// output failed its indexing and a channel row went missing), and SQLite's full-text query
/// stops at one; a search's text is mapped the same way, so `a\0b` still finds what printed it.
pub(crate) const NUL_AS: &str = "\u{fffd}";

/// `text` as the store keeps it ([`NUL_AS`]).
pub(crate) fn storable(text: &str) -> String {
    text.replace('\0', NUL_AS)
}

mod access;
mod anchors;
mod indexing;
mod keys;
pub(crate) mod nodes;
pub(crate) mod records;
mod retention;
pub(crate) mod tags;
mod web_logins;

/// Where the metadata lives: `[store] database` in keepwatch.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file (the embedded default: `keepwatch.db` in the data directory).
    Sqlite(PathBuf),
    /// A PostgreSQL database, by URL (`postgres://user:password@host:5432/keepwatch`).
    Postgres(String),
}

impl Database {
    /// Reads a `[store] database` setting: empty means the SQLite file `default`.
    ///
    /// # Errors
    /// `Invalid` for anything that is not a database URL this build knows.
    pub fn from_setting(setting: &str, default: &Path) -> Result<Self, StoreError> {
        let s = setting.trim();
        if s.is_empty() {
            return Ok(Database::Sqlite(default.to_owned()));
        }
        if let Some(path) = s.strip_prefix("sqlite://") {
            return Ok(Database::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Database::Postgres(s.to_owned()));
        }
        Err(StoreError::Invalid {
            what: "[store] database: expected empty (SQLite in the data directory) or a \
                   postgres:// URL"
                .into(),
        })
    }

    /// A description for logs and messages, without any password.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(path) => format!("SQLite {}", path.display()),
            Database::Postgres(url) => crate::postgres::describe(url),
        }
    }
}

/// The backend a [`Store`] talks to.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite(Sqlite),
    Postgres(Postgres),
}

/// Runs `$e` with `$b` bound to the store's backend, whichever it is.
macro_rules! dispatch {
    ($self:expr, $b:ident => $e:expr) => {
        match &$self.backend {
            $crate::store::Backend::Sqlite($b) => $e,
            $crate::store::Backend::Postgres($b) => $e,
        }
    };
}
pub(crate) use dispatch;

/// The metadata store: people, targets, grants, sessions, channels, transfers, the ledger,
/// the audit trail, API tokens and the search index.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) backend: Backend,
    /// Signs audit chain entries; without it they are chained but unsigned.
    audit_key: Option<Arc<SigningKey>>,
    /// Replays audited lately ([`Store::look`]), shared by every clone of this handle.
    pub(crate) recent_replays: Arc<crate::look::RecentReplays>,
    /// Wraps and unwraps recordings' data keys (encryption at rest); see `keys.rs`.
    pub(crate) keys: Option<Arc<crate::keys::KeyState>>,
}

impl Store {
    fn with_backend(backend: Backend) -> Self {
        Store { backend, audit_key: None, recent_replays: Default::default(), keys: None }
    }

    /// Opens the database and brings its schema up to date (versioned migrations).
    ///
    /// # Errors
    /// `Unavailable` when the database cannot be reached, opened or migrated.
    pub async fn open(db: &Database) -> Result<Self, StoreError> {
        match db {
            Database::Sqlite(path) => Self::open_sqlite(path).await,
            Database::Postgres(url) => {
                Ok(Self::with_backend(Backend::Postgres(Postgres::open(url).await?)))
            }
        }
    }

    /// Opens (creating if needed) the SQLite database at `path`.
    ///
    /// # Errors
    /// Fails if the file cannot be opened or the schema cannot be brought up to date.
    pub async fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        Ok(Self::with_backend(Backend::Sqlite(Sqlite::open(path).await?)))
    }

    /// Signs the audit events this handle writes with `key` (the recordings' signing key).
    pub fn with_audit_key(mut self, key: Arc<SigningKey>) -> Self {
        self.audit_key = Some(key);
        self
    }

    pub(crate) fn signer(&self) -> Option<&SigningKey> {
        self.audit_key.as_deref()
    }

    /// Closes the connections (on SQLite, flushing the WAL).
    pub async fn close(&self) {
        dispatch!(self, b => b.close().await)
    }
}

pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
