//! A PostgreSQL database of a test's own, for gateways whose `[store] database` is
//! PostgreSQL: created on the server `KEEPWATCH_TEST_POSTGRES` names (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and dropped with the test.

use std::sync::atomic::{AtomicU32, Ordering};

fn admin_url() -> String {
    std::env::var("KEEPWATCH_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Runs `sql` as the test server's administrator.
fn admin(sql: String) {
    let url = admin_url();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {url} ({e}): start it (`pg_ctlcluster 15 main start`) \
                 or set KEEPWATCH_TEST_POSTGRES to a server where the tests may create databases"
            )
        });
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    });
}

pub(crate) struct TestPostgres {
    name: String,
    pub(crate) url: String,
}

impl TestPostgres {
    pub(crate) fn create() -> TestPostgres {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("kw_it_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        admin(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        admin(format!("CREATE DATABASE {name}"));
        let base = admin_url();
        let (base, query) =
            base.split_once('?').map_or((base.as_str(), None), |(b, q)| (b, Some(q)));
        let host_end = base.find("://").map_or(0, |i| i + 3);
        let server = match base[host_end..].find('/') {
            Some(i) => &base[..host_end + i],
            None => base,
        };
        let url = match query {
            Some(q) => format!("{server}/{name}?{q}"),
            None => format!("{server}/{name}"),
        };
        TestPostgres { name, url }
    }
}

impl TestPostgres {
    /// Cuts every client off the database (new connections refused, open ones ended), as a
    /// network partition or a database failover would, until [`Self::reconnect`].
    pub(crate) fn cut_off(&self) {
        let name = &self.name;
        admin(format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"));
        admin(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ));
    }

    /// Lets clients connect again after [`Self::cut_off`].
    pub(crate) fn reconnect(&self) {
        admin(format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", self.name));
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            admin(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        })
        .join();
    }
}
