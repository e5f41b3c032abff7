//! [`TestDb`]: a fresh store on one backend, and [`conformance!`], which runs a test body on
//! every backend.

use std::path::{Path, PathBuf};

use keepwatch_store::{Database, Store};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
}

/// A fresh, empty store (and a data directory for recordings), removed when dropped.
pub(crate) struct TestDb {
    pub(crate) store: Store,
    pub(crate) backend: Backend,
    database: Database,
    dir: tempfile::TempDir,
}

impl TestDb {
    pub(crate) async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let database = match backend {
            Backend::Sqlite => Database::Sqlite(dir.path().join("kw.db")),
        };
        let store = Store::open(&database).await.unwrap();
        TestDb { store, backend, database, dir }
    }

    /// The data directory (spool/, recordings/) beside the database.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The SQLite file, for tests of SQLite's own history.
    pub(crate) fn sqlite_path(&self) -> PathBuf {
        match &self.database {
            Database::Sqlite(p) => p.clone(),
        }
    }

    /// Another handle on the same database (a second process, or a restart).
    pub(crate) async fn reopen(&self) -> Store {
        Store::open(&self.database).await.unwrap()
    }

    /// Runs SQL behind the store's back, as someone with write access to the database
    /// could: `sqlite` or `postgres`, in that backend's dialect.
    pub(crate) async fn sql(&self, sqlite: &str, postgres: &str) {
        let _ = postgres;
        match self.backend {
            Backend::Sqlite => {
                use sqlx::{ConnectOptions, Connection};
                let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(self.sqlite_path())
                    .connect()
                    .await
                    .unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sqlite.to_owned()))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{sqlite}: {e}"));
                conn.close().await.unwrap();
            }
        }
    }

    pub(crate) async fn close(self) {
        self.store.close().await;
    }
}

/// `conformance!(a, b)`: the tests `a::sqlite`, `a::postgres`, `b::sqlite`, ..., each
/// running the async fn of that name on a fresh [`TestDb`] of its backend.
macro_rules! conformance {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    let db = $crate::support::TestDb::new($crate::support::Backend::Sqlite).await;
                    super::$name(db).await
                }
            }
        )+
    };
}
pub(crate) use conformance;
