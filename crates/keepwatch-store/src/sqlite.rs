//! The embedded backend: SQLite, one file in the data directory (WAL mode).
//!
//! All of SQLite's SQL is here and in `sqlite/`: people, targets and grants (`access.rs`),
//! sessions, channels, transfers and the ledger (`records.rs`), the audit trail and API
//! tokens (`audit.rs`), command rows, keyframes and index progress (`indexing.rs`), the
//! FTS5 search index (`search.rs`, with what it is given of output in `trigrams.rs`) and the rows `keepwatch migrate` copies (`copy.rs`). The
//! schema is `migrations/sqlite/`, applied by `sqlx::migrate!` at open.

use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::StoreError;
use crate::error::At;

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
mod trigrams;
mod web_logins;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Debug, Clone)]
pub(crate) struct Sqlite {
    pool: SqlitePool,
    pub(crate) index: search::Fts5Index,
}

impl Sqlite {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub(crate) async fn open(path: &std::path::Path) -> Result<Self, StoreError> {
        let file = path.display().to_string();
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Deleted rows are overwritten, not left in free pages: a destroyed data key
            // (crypto-shredding) must not be recoverable from the file.
            .pragma("secure_delete", "on");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .at("open database", &file)?;
        // Two processes opening a database for the first time (the gateway and the CLI) may
        // both try to apply the baseline; the loser finds it applied when it tries again.
        if MIGRATIONS.run(&pool).await.is_err() {
            MIGRATIONS.run(&pool).await.map_err(|e| StoreError::Unavailable {
                op: "migrate database",
                id: file.clone(),
                source: Box::new(e),
            })?;
        }
        // What an upgrade took out of the output index is given back by
        // `Store::finish_index_rebuild`, not here: at 10 GB of output that takes half an hour.
        // A rebuild with nothing to give (a new store's) is done with at once.
        let index = search::Fts5Index { pool: pool.clone() };
        if index.rebuild_left().await?.is_none() {
            index.finish_rebuild().await?;
        }
        Ok(Sqlite { pool, index })
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}
