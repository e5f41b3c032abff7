//! Keepwatch storage: metadata rows, recording blobs and the credential vault.
//!
//! Nothing above this crate knows which backend holds the data: callers use [`Store`] and
//! [`BlobStore`], whose methods name domain operations, not SQL. The embedded backend is
//! SQLite plus a local directory; PostgreSQL and S3 slot in behind the same methods.

mod blobs;
mod credentials;
mod db;
mod look;
mod rows;
mod vault;

pub use blobs::{BlobStore, RecordingVersion};
pub use credentials::{CheckerBusy, PasswordChecker, hash_password, verify_password};
pub use db::{NewToken, SessionFilter, Store, now_us};
pub use look::{LookError, REPLAY_AUDIT_WINDOW};
pub use rows::{
    Algorithms, AuditFilter, AuditLink, AuditRow, ChannelRow, CommandRow, ContentCapture,
    IndexProgress, IndexScope, IndexState, IndexStatus, KeyframeRow, LedgerRow, NewAudit,
    NewTarget, PersonRow, Resealed, SearchHit, SearchQuery, SessionRow, StoredAudit, TargetRow,
    TargetSecret, TokenRow, TransferFilter, TransferRow,
};
pub use vault::{SecretKind, TargetBinding, Vault, VaultError};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("blob store error: {0}")]
    Blob(#[from] object_store::Error),
    #[error("{kind} {name:?} already exists")]
    Exists { kind: &'static str, name: String },
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{what}")]
    Invalid { what: String },
    #[error("row {what} holds an invalid value: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("io error on {path}: {source}")]
    Io { path: String, source: std::io::Error },
}
