//! Keepwatch storage: metadata rows, recording blobs and the credential vault.
//!
//! Nothing above this crate knows which backend holds the data: callers use [`Store`] and
//! [`BlobStore`], whose methods name domain operations, not SQL, and whose errors
//! ([`StoreError`]) name no driver. The metadata backend is chosen at open by a
//! [`Database`]: SQLite (embedded, `sqlite.rs`) or PostgreSQL (`postgres.rs`), each with
//! its own SQL and its own versioned migrations (`migrations/<backend>/`); the shared parts
//! are the row decoders (`decode.rs`), the hash chains (`chain.rs`) and the search interface
//! (`search.rs`).

mod blobs;
mod chain;
mod copy;
mod credentials;
mod decode;
mod error;
mod keys;
mod look;
mod postgres;
mod rows;
mod search;
mod sqlite;
mod store;
mod vault;

pub use blobs::{
    Archive, ArchivedSegment, BlobStore, CaptureWriter, Layout, RecordingVersion, Restore,
    S3Options, Spool, SpoolWriter,
};
pub use copy::{CopyProgress, CopyReport};
pub use credentials::{CheckerBusy, PasswordChecker, hash_password, verify_password};
pub use error::{BoxError, StoreError};
pub use keepwatch_recording::DataKey;
pub use keys::{Kek, KeyError, Rotation};
pub use look::{LookError, REPLAY_AUDIT_WINDOW};
pub use rows::{
    Algorithms, AuditFilter, AuditLink, AuditRow, ChannelRow, CommandRow, ContentCapture,
    DatabaseTarget, HoldRelease, HoldRow, IndexGap, IndexGaps, IndexProgress, IndexScope,
    IndexState, IndexStatus, KeyframeRow, LedgerRow, NewAudit, NewTarget, NodeRow, OutputBlock,
    PersonRow, Resealed, RetentionRow, SearchAnswer, SearchHit, SearchQuery, SessionFilter,
    SessionListing, SessionRow, SessionTag, StoredAudit, TagChange, TargetRow, TargetSecret,
    TlsMode, TokenRow, TransferFilter, TransferRow, WebLoginLimits, WebLoginRow, WrappedKey,
};
pub use store::records::NewToken;
pub use store::{Database, Store, now_us};
pub use vault::{SecretKind, TargetBinding, Vault, VaultError};
