//! Fixtures: [`TestEnv`], a gateway in a temp data directory in front of a throwaway `sshd`,
//! built by one builder and driven with real `ssh` clients; [`Interactive`] sessions; and
//! [`wait_for`], the only way a test waits (on a condition, with a deadline).
//!
//! ```ignore
//! let env = TestEnv::new()
//!     .target("web01")
//!     .grant_with("alice", "web01", &["--no-upload"])
//!     .config("flush_interval_ms = 1000", "flush_interval_ms = 200")
//!     .start();
//! let out = env.ssh("alice@web01").arg("echo hi").output().unwrap();
//! let id = env.sealed_sessions(1)[0]["id"].as_str().unwrap().to_owned();
//! env.wait_indexed(&id);
//! ```

mod ca;
mod env;
mod garage;
mod interactive;
mod pg_target;
mod postgres;
mod rsyslog;
mod target;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub(crate) use ca::TestCa;
pub(crate) use env::{TestEnv, TestEnvBuilder};
pub(crate) use interactive::Interactive;
pub(crate) use pg_target::PgTarget;
pub(crate) use rsyslog::{Received, Rsyslog};
pub(crate) use target::{HostKey, Sshd, SshdConfig, Target};

pub(crate) const TARGET_USER: &str = "kwtest";
pub(crate) const TARGET_PASSWORD: &str = "kwtest-pass-1";
pub(crate) const ALICE_PASSWORD: &str = "alice-pw-7";
const SETUP_HINT: &str = "run `bash scripts/test.sh` once (as root): it installs openssh-server and creates the local user kwtest";

/// How long a test waits for the indexer: it ticks every second, but this machine is shared.
const INDEX_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a test waits for anything else the gateway does on its own (seal, listen, exit).
pub(crate) const GATEWAY_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub(crate) fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn keygen(path: &Path, kind: &str) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen missing; install openssh-client");
    assert!(st.success());
}

/// One HTTP/1.1 request to the gateway's web listener; the status and the body.
pub(crate) fn http(
    env: &TestEnv,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&serde_json::Value>,
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", env.web_port())).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}
