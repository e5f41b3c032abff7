//! PostgreSQL over TLS (issue 11): the URL's `sslmode` is honoured. `require` gets an
//! encrypted connection or none, and `verify-full` refuses a server whose certificate does
//! not name the host, whatever CA is given. The test server is Debian's PostgreSQL, whose
//! default configuration serves TLS with the machine's self-signed ("snakeoil") certificate.

use keepwatch_store::{Database, Store};
use sqlx::Connection;

use crate::support::{Backend, TestDb};

fn with_param(url: &str, param: &str) -> String {
    format!("{url}{}{param}", if url.contains('?') { '&' } else { '?' })
}

#[tokio::test]
async fn postgres_over_tls_when_the_url_asks() {
    let db = TestDb::new(Backend::Postgres).await;
    let mut plain = sqlx::PgConnection::connect(db.postgres_url()).await.unwrap();
    let (ssl, cert): (String, String) =
        sqlx::query_as("SELECT current_setting('ssl'), current_setting('ssl_cert_file')")
            .fetch_one(&mut plain)
            .await
            .unwrap();
    assert_eq!(
        ssl, "on",
        "the test server serves no TLS: set `ssl = on` in postgresql.conf (Debian's default) \
         and restart it (`pg_ctlcluster 15 main restart`)"
    );

    let url = with_param(db.postgres_url(), "sslmode=require");
    let store = Store::open(&Database::Postgres(url.clone())).await.unwrap();
    store.add_person("alice", keepwatch_core::Role::User, None, &[]).await.unwrap();
    store.close().await;
    let mut tls = sqlx::PgConnection::connect(&url).await.unwrap();
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut tls)
            .await
            .unwrap();
    assert!(encrypted);

    // The snakeoil certificate names the machine, not 127.0.0.1: verify-full refuses it
    // even when it is its own CA, and says why it could not connect.
    let strict = with_param(db.postgres_url(), &format!("sslmode=verify-full&sslrootcert={cert}"));
    let refused = Store::open(&Database::Postgres(strict)).await;
    let Err(e) = refused else { panic!("verify-full accepted a certificate for another name") };
    let said = format!("{e}");
    assert!(said.contains("connect to"), "{said}");
}
