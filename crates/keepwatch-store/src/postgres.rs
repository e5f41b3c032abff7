//! The scaled-out backend: PostgreSQL, shared by several gateway processes and the CLI.
//!
//! All of PostgreSQL's SQL is here and in `postgres/`, file for file beside SQLite's:
//! `access.rs`, `records.rs`, `audit.rs`, `indexing.rs`, `search.rs` (the `pg_trgm` index)
//! and `copy.rs`. The schema is `migrations/postgres/`, applied by `sqlx::migrate!` at open
//! (sqlx holds an advisory lock while it migrates, so gateways starting together apply
//! each migration once). Chain appends take a transaction-scoped advisory lock per chain
//! ([`LEDGER_LOCK`], [`AUDIT_LOCK`]): the database serialises them across processes.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::StoreError;
use crate::error::At;

pub(crate) use copy::is_empty;

mod access;
mod anchors;
mod audit;
mod copy;
mod indexing;
mod keys;
mod nodes;
mod records;
mod retention;
mod search;
mod tags;
mod web_logins;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// `pg_advisory_xact_lock` key of the ledger ("kwledger").
pub(crate) const LEDGER_LOCK: i64 = 0x6b77_6c65_6467_6572;
/// `pg_advisory_xact_lock` key of the audit chain ("kwaudit\0").
pub(crate) const AUDIT_LOCK: i64 = 0x6b77_6175_6469_7400;

#[derive(Debug, Clone)]
pub(crate) struct Postgres {
    pool: PgPool,
    index: search::TrigramIndex,
}

/// `url` without its password, for messages.
pub(crate) fn describe(url: &str) -> String {
    match PgConnectOptions::from_str(url) {
        Ok(o) => format!(
            "PostgreSQL {}@{}:{}/{}",
            o.get_username(),
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or(o.get_username())
        ),
        Err(_) => "PostgreSQL (unparsable URL)".into(),
    }
}

impl Postgres {
    /// Connects to `url` and brings the schema up to date.
    pub(crate) async fn open(url: &str) -> Result<Self, StoreError> {
        let what = describe(url);
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid {
                what: format!("[store] database is not a PostgreSQL URL: {e}"),
            })?
            // Every statement is prepared, and the search's optional filters make PostgreSQL's
            // generic plan (chosen after five runs) scan every session's commands instead of
            // the trigram indexes: about 1 s a search at 100,000 commands, growing with the
            // index, against 4-46 ms with a plan made for the values given (bench/search.sh).
            .options([("plan_cache_mode", "force_custom_plan")]);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await
            .at("connect to", &what)?;
        MIGRATIONS.run(&pool).await.map_err(|e| StoreError::Unavailable {
            op: "migrate database",
            id: what.clone(),
            source: Box::new(e),
        })?;
        let index = search::TrigramIndex { pool: pool.clone() };
        Ok(Postgres { pool, index })
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}
