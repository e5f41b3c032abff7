//! A PostgreSQL server of a test's own to put behind the gateway as a target: started from
//! the machine's PostgreSQL binaries with SCRAM-SHA-256 logins and TLS from a CA the test
//! made, so the gateway's login and `--tls verify-full` meet a real server that asks for a
//! password and presents a certificate. Stopped with the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{TestCa, free_port};

/// The PostgreSQL server binaries (Debian's layout).
fn bin(name: &str) -> PathBuf {
    for version in ["17", "16", "15"] {
        let p = PathBuf::from(format!("/usr/lib/postgresql/{version}/bin/{name}"));
        if p.exists() {
            return p;
        }
    }
    panic!(
        "no PostgreSQL server binaries under /usr/lib/postgresql: `apt-get install -y postgresql`"
    )
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// As the `postgres` account: the server refuses to run as root.
fn as_postgres(program: &Path) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(program);
    c
}

pub(crate) struct PgTarget {
    dir: tempfile::TempDir,
    pub(crate) port: u16,
    /// The role the gateway logs in as, and its password.
    pub(crate) login: &'static str,
    pub(crate) password: &'static str,
}

impl PgTarget {
    pub(crate) fn start() -> PgTarget {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let port = free_port();
        let (login, password) = ("kwowner", "kw-target-pw-9");
        std::fs::write(root.join("pw"), password).unwrap();
        // A CA, and a certificate for 127.0.0.1 it signed.
        TestCa::new(root, "kw-test-ca");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(root.join("server.key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        run(Command::new("chown").args(["-R", "postgres"]).arg(root));
        let data = root.join("data");
        run(as_postgres(&bin("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", login, "--auth=scram-sha-256", "-E", "UTF8", "--no-sync"])
            .arg(format!("--pwfile={}", root.join("pw").display())));
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c ssl=on \
             -c ssl_cert_file={} -c ssl_key_file={} -c fsync=off",
            root.display(),
            root.join("server.crt").display(),
            root.join("server.key").display()
        );
        run(as_postgres(&bin("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-w", "-t", "60", "-l"])
            .arg(root.join("log"))
            .arg("start"));
        let t = PgTarget { dir, port, login, password };
        t.psql("postgres", "CREATE DATABASE app");
        t
    }

    /// The CA that signed the server's certificate (PEM file).
    pub(crate) fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// Runs `sql` on `database` directly (not through the gateway), as the owner; its output.
    pub(crate) fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .arg(format!(
                "host=127.0.0.1 port={} user={} dbname={database} sslmode=require",
                self.port, self.login
            ))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGPASSWORD", self.password)
            .output()
            .unwrap();
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PgTarget {
    fn drop(&mut self) {
        let _ = as_postgres(&bin("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}
