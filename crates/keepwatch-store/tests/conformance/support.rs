//! [`TestDb`]: a fresh store on one backend, and [`conformance!`], which runs a test on every
//! backend.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use keepwatch_store::{Database, Store};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the tests create their databases on.
fn postgres_admin_url() -> String {
    std::env::var("KEEPWATCH_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

async fn admin() -> sqlx::PgConnection {
    use sqlx::Connection;
    let url = postgres_admin_url();
    match sqlx::PgConnection::connect(&url).await {
        Ok(c) => c,
        Err(e) => panic!(
            "PostgreSQL is not reachable at {url} ({e}): start it (`pg_ctlcluster 15 main start`) \
             or set KEEPWATCH_TEST_POSTGRES to a server where the tests may create databases"
        ),
    }
}

/// A database of its own on the test server, dropped (with any connection left) on drop.
struct PgDatabase {
    name: String,
}

impl PgDatabase {
    async fn create() -> PgDatabase {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("kw_test_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let mut conn = admin().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
        PgDatabase { name }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside the test's runtime: a thread of its own with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut conn = admin().await;
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
            });
        })
        .join();
    }
}

/// A fresh, empty store (and a data directory for recordings), removed when dropped.
pub(crate) struct TestDb {
    pub(crate) store: Store,
    database: Database,
    dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
}

impl TestDb {
    pub(crate) async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let (database, pg) = match backend {
            Backend::Sqlite => (Database::Sqlite(dir.path().join("kw.db")), None),
            Backend::Postgres => {
                let pg = PgDatabase::create().await;
                (Database::Postgres(with_database(&postgres_admin_url(), &pg.name)), Some(pg))
            }
        };
        let store = Store::open(&database).await.unwrap();
        TestDb { store, database, dir, _pg: pg }
    }

    /// The data directory (spool/, recordings/) beside the database.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The SQLite file, for tests of SQLite's own history.
    pub(crate) fn sqlite_path(&self) -> PathBuf {
        match &self.database {
            Database::Sqlite(p) => p.clone(),
            Database::Postgres(_) => panic!("not an SQLite store"),
        }
    }

    /// The PostgreSQL URL of this database.
    pub(crate) fn postgres_url(&self) -> &str {
        match &self.database {
            Database::Postgres(url) => url,
            Database::Sqlite(_) => panic!("not a PostgreSQL store"),
        }
    }

    /// Another handle on the same database (a second process, or a restart).
    pub(crate) async fn reopen(&self) -> Store {
        Store::open(&self.database).await.unwrap()
    }

    /// Runs SQL behind the store's back, as someone with write access to the database
    /// could: `sqlite` or `postgres`, in that backend's dialect.
    pub(crate) async fn sql(&self, sqlite: &str, postgres: &str) {
        use sqlx::{ConnectOptions, Connection};
        match &self.database {
            Database::Sqlite(path) => {
                let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .connect()
                    .await
                    .unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sqlite.to_owned()))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{sqlite}: {e}"));
                conn.close().await.unwrap();
            }
            Database::Postgres(url) => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(postgres.to_owned()))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{postgres}: {e}"));
                conn.close().await.unwrap();
            }
        }
    }

    pub(crate) async fn close(self) {
        self.store.close().await;
    }
}

/// A fresh PostgreSQL database's URL that lives as long as the returned guard.
pub(crate) async fn postgres_database() -> (String, impl Drop) {
    let pg = PgDatabase::create().await;
    (with_database(&postgres_admin_url(), &pg.name), pg)
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

                #[tokio::test]
                async fn postgres() {
                    let db = $crate::support::TestDb::new($crate::support::Backend::Postgres).await;
                    super::$name(db).await
                }
            }
        )+
    };
}
pub(crate) use conformance;

#[test]
fn database_urls() {
    assert_eq!(with_database("postgres://u@h:5432/postgres", "x"), "postgres://u@h:5432/x");
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    assert_eq!(
        with_database("postgres://u@h/db?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
}
