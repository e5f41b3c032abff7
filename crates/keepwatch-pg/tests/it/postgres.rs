//! The machine's PostgreSQL and its clients, for the tests that use them.

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) const ADDR: &str = "127.0.0.1:5432";

/// Fails the test, saying how to start it, when PostgreSQL is not listening.
pub(crate) fn require_postgres() {
    if std::net::TcpStream::connect(ADDR).is_err() {
        panic!(
            "PostgreSQL is not listening on {ADDR}; start it with `pg_ctlcluster 15 main start` \
             (trust authentication for root on 127.0.0.1, database `test`)"
        );
    }
}

/// A name no other test run uses at the same time.
pub(crate) fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// Runs SQL directly against PostgreSQL (trust authentication) and returns psql's output.
pub(crate) fn psql_direct(statements: &[&str]) -> String {
    let mut cmd = std::process::Command::new("psql");
    cmd.args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"])
        .arg("host=127.0.0.1 port=5432 dbname=test user=root sslmode=disable");
    for s in statements {
        cmd.args(["-c", s]);
    }
    let out = cmd.output().expect("psql runs (apt-get install postgresql-client)");
    assert!(out.status.success(), "psql failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("psql prints UTF-8")
}
