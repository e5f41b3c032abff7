//! The metadata store: people, targets, grants, sessions, channels, the ledger and audit events.
//!
//! SQL lives only in this module (`db/access.rs`: people, targets, grants; `db/records.rs`:
//! sessions, channels, transfers, ledger, audit; `db/search.rs`: command rows and search;
//! `db/index_status.rs`: how far the indexer got) and `db/schema.sql`; callers see
//! domain-named methods, so a PostgreSQL backend can be added here without touching them.

use std::str::FromStr;
use std::time::Duration;

use keepwatch_core::RecordingFailure;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::StoreError;
use crate::rows::*;

mod access;
mod index_status;
mod records;
mod search;
mod tokens;

pub use tokens::NewToken;

const SCHEMA: &str = include_str!("db/schema.sql");

/// Which sessions to list.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub active_only: bool,
    pub person: Option<String>,
    pub target: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    /// Serialises ledger appends within this process; the ledger is one chain.
    ledger_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Signs audit chain entries; without it they are chained but unsigned.
    audit_key: Option<std::sync::Arc<ed25519_dalek::SigningKey>>,
    /// Replays audited lately ([`Store::look`]), shared by every clone of this handle.
    pub(crate) recent_replays: std::sync::Arc<crate::look::RecentReplays>,
}

pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn corrupt(what: &str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt { what: what.to_owned(), detail: detail.to_string() }
}

fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

fn hash32(what: &str, v: Vec<u8>) -> Result<[u8; 32], StoreError> {
    v.try_into().map_err(|_| corrupt(what, "hash is not 32 bytes"))
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path`.
    ///
    /// # Errors
    /// Fails if the file cannot be opened or the schema cannot be applied.
    pub async fn open_sqlite(path: &std::path::Path) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(Store {
            pool,
            ledger_lock: Default::default(),
            audit_key: None,
            recent_replays: Default::default(),
        })
    }

    /// Signs the audit events this handle writes with `key` (the recordings' signing key).
    pub fn with_audit_key(mut self, key: std::sync::Arc<ed25519_dalek::SigningKey>) -> Self {
        self.audit_key = Some(key);
        self
    }

    /// Closes the pool, flushing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn join_list(v: &[String]) -> Option<String> {
    (!v.is_empty()).then(|| v.join(","))
}

fn split_list(v: Option<String>) -> Vec<String> {
    v.map(|s| s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn person_row(
    row: &sqlx::sqlite::SqliteRow,
    ssh_keys: Vec<String>,
) -> Result<PersonRow, StoreError> {
    let role: String = row.get("role");
    Ok(PersonRow {
        name: row.get("name"),
        role: role.parse().map_err(|e| corrupt("people.role", e))?,
        password_hash: row.get("password_hash"),
        ssh_keys,
        created_at_us: row.get("created_at_us"),
        disabled: row.get::<Option<bool>, _>("disabled").unwrap_or(false),
    })
}

fn target_row(row: &sqlx::sqlite::SqliteRow) -> Result<TargetRow, StoreError> {
    let kind: String = row.get("secret_kind");
    let secret: Vec<u8> = row.get("secret");
    let secret = match kind.as_str() {
        "password" => TargetSecret::Password(secret),
        "key" => TargetSecret::PrivateKey(secret),
        other => return Err(corrupt("targets.secret_kind", other)),
    };
    let orf: String = row.get("on_recording_failure");
    Ok(TargetRow {
        name: row.get("name"),
        host: row.get("host"),
        port: u16::try_from(row.get::<i64, _>("port")).map_err(|e| corrupt("targets.port", e))?,
        login: row.get("login"),
        secret,
        host_key: row.get("host_key"),
        trust_on_first_use: row.get("trust_on_first_use"),
        on_recording_failure: RecordingFailure::from_str(&orf)
            .map_err(|e| corrupt("targets.on_recording_failure", e))?,
        algorithms: Algorithms {
            kex: split_list(row.get("kex_algorithms")),
            host_key: split_list(row.get("host_key_algorithms")),
            ciphers: split_list(row.get("ciphers")),
            macs: split_list(row.get("macs")),
        },
        created_at_us: row.get("created_at_us"),
    })
}

fn session_row(row: &sqlx::sqlite::SqliteRow) -> Result<SessionRow, StoreError> {
    let id: String = row.get("id");
    let status: String = row.get("status");
    Ok(SessionRow {
        id: id.parse().map_err(|e| corrupt("sessions.id", e))?,
        person: row.get("person"),
        target: row.get("target"),
        target_host: row.get("target_host"),
        target_login: row.get("target_login"),
        client_addr: row.get("client_addr"),
        status: status.parse().map_err(|e| corrupt("sessions.status", e))?,
        reason: row.get("reason"),
        started_at_us: row.get("started_at_us"),
        ended_at_us: row.get("ended_at_us"),
        chain_head: row
            .get::<Option<Vec<u8>>, _>("chain_head")
            .map(|v| hash32("sessions.chain_head", v))
            .transpose()?,
        seal_seq: row.get::<Option<i64>, _>("seal_seq").map(|v| v as u64),
        seal_signature: row.get("seal_signature"),
    })
}
