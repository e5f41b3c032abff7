//! Issue 10: every resource a stranger can make the gateway hold has a bound, and revocation
//! bites at once. Each test sets a small limit in keepwatch.toml and runs into it.

use std::io::Read as _;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;

/// Reads from `s` until the peer closes it (or `within` passes); returns the bytes read and
/// whether it was closed.
fn read_until_closed(s: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (got, true),
        }
    }
    (got, false)
}

/// A connection that never logs in is closed after the login grace time; connections not
/// logged in yet are capped per address, and a slot comes back when one goes.
#[test]
fn silent_connections_are_bounded_and_cut_off() {
    let env = TestEnv::new()
        .target("web01")
        .config("login_grace_s = 30", "login_grace_s = 2")
        .config("max_unauthenticated_per_address = 32", "max_unauthenticated_per_address = 3")
        .start();
    let port = env.ssh_port();
    let started = Instant::now();
    let mut held: Vec<TcpStream> =
        (0..3).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    // Each gets the server's version line: they hold the three slots.
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut banner = [0u8; 8];
        s.read_exact(&mut banner).unwrap();
        assert_eq!(&banner, b"SSH-2.0-");
    }
    // A fourth from the same address is closed before any handshake.
    let mut fourth = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (got, closed) = read_until_closed(&mut fourth, Duration::from_secs(10));
    assert!(closed && got.is_empty(), "the fourth was served: {:?}", String::from_utf8_lossy(&got));
    // The three are cut off after the grace time, never before it.
    for s in &mut held {
        let (_, closed) = read_until_closed(s, Duration::from_secs(20));
        assert!(closed, "a silent connection outlived the grace time");
    }
    assert!(started.elapsed() >= Duration::from_secs(2), "closed before the grace time");
    // With the slots back, a real client gets in, and a logged-in session outlives the
    // grace time (regression: the grace timer once cut logged-in connections too).
    let out = env.ssh("alice@web01").arg("sleep 4; echo back-$((1+1))").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "back-2\n", "{out:?}");
}

struct AnyKey;

impl russh::client::Handler for AnyKey {
    type Error = russh::Error;
    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// Tries a password login; whether it was accepted.
fn password_login(port: u16, login: &str, password: &str) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let config = Arc::new(russh::client::Config::default());
        let mut h = russh::client::connect(config, ("127.0.0.1", port), AnyKey).await.unwrap();
        h.authenticate_password(login, password).await.unwrap().success()
    })
}

/// Failed SSH password logins lock the name out, even for the right password, and the
/// refusals are audited.
#[test]
fn ssh_password_guesses_lock_the_name_out() {
    let env = TestEnv::new()
        .target("web01")
        .config("login_failures_per_name = 5", "login_failures_per_name = 3")
        .start();
    let port = env.ssh_port();
    assert!(password_login(port, "alice@web01", ALICE_PASSWORD), "the right password works");
    for _ in 0..3 {
        assert!(!password_login(port, "alice@web01", "a-wrong-guess"));
    }
    assert!(!password_login(port, "alice@web01", ALICE_PASSWORD), "locked out, even when right");
    let refused = env.json(&["audit", "--action", "login_refused", "--json"]).to_string();
    assert!(refused.contains("too many failed logins"), "{refused}");
    // Keys are not guessable: alice's key still works while her password is locked out.
    let out = env.ssh("alice@web01").arg("echo key-$((2+2))").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "key-4\n");
}

/// A logged-in session without data either way for the idle timeout is ended, with a line
/// saying why, and sealed.
#[test]
fn an_idle_session_is_ended() {
    let env = TestEnv::new()
        .target("web01")
        .config("idle_timeout_s = 3600", "idle_timeout_s = 2")
        .start();
    let mut s = env.at_prompt("alice@web01");
    s.send("echo awake-$((3+3))\n");
    s.wait_output("awake-6");
    let (_, stdout, stderr) = s.finish();
    let seen = format!("{}{stderr}", String::from_utf8_lossy(&stdout));
    assert!(seen.contains("without activity"), "{seen}");
    let sess = &env.sealed_sessions(1)[0];
    assert_eq!(sess["status"], "terminated");
    assert!(sess["reason"].as_str().unwrap().contains("without activity"), "{sess}");
}

/// Revocation bites: a revoked grant gets no new channel on a connection that is already up
/// (and no session at all when revoked between login and the first channel); a disabled
/// person's live session ends with --terminate and they cannot log in again.
#[test]
fn revocation_bites_at_the_next_channel_and_with_terminate_at_once() {
    let env = TestEnv::new().target("web01").start();
    let port = env.ssh_port();

    // Logged in, then the grant goes before the first channel: no session.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let handle = rt.block_on(async {
        let config = Arc::new(russh::client::Config::default());
        let mut h = russh::client::connect(config, ("127.0.0.1", port), AnyKey).await.unwrap();
        assert!(h.authenticate_password("alice@web01", ALICE_PASSWORD).await.unwrap().success());
        // In an Option: the handle is itself a future (of the connection's end).
        Some(h)
    });
    let handle = handle.unwrap();
    env.kw_ok(&["revoke", "alice", "web01"]);
    let opened = rt.block_on(async {
        match handle.channel_open_session().await {
            Err(_) => false,
            Ok(ch) => {
                let _ = ch.exec(true, "echo should-not-run").await;
                let mut ran = false;
                let mut ch = ch;
                while let Some(msg) = ch.wait().await {
                    if let russh::ChannelMsg::Data { data } = msg {
                        ran |= String::from_utf8_lossy(&data).contains("should-not-run");
                    }
                }
                ran
            }
        }
    });
    assert!(!opened, "a revoked grant still ran a command");
    assert!(env.sessions().iter().all(|s| s["status"] != "active"));
    let refused = env.json(&["audit", "--action", "session_refused", "--json"]).to_string();
    assert!(refused.contains("grant was revoked") || refused.contains("no grant"), "{refused}");

    // Granted again; a live session; then disabled with --terminate.
    env.kw_ok(&["grant", "alice", "web01"]);
    let mut s = env.at_prompt("alice@web01");
    s.send("echo live-$((5+5))\n");
    s.wait_output("live-10");
    let out = env.kw_ok(&["user", "disable", "alice", "--terminate"]);
    assert!(out.contains("terminated session"), "{out}");
    let (_, stdout, stderr) = s.finish();
    let seen = format!("{}{stderr}", String::from_utf8_lossy(&stdout));
    assert!(seen.contains("access revoked"), "the person is told: {seen}");
    let again = env.ssh("alice@web01").arg("true").output().unwrap();
    assert!(!again.status.success(), "a disabled person logs in nowhere");
    let audit = env.json(&["audit", "--json"]).to_string();
    assert!(audit.contains("user_disabled") && audit.contains("person disabled"), "{audit}");
    env.kw_ok(&["user", "enable", "alice"]);
    let back = env.ssh("alice@web01").arg("echo enabled-$((1+1))").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&back.stdout), "enabled-2\n");
}

/// Issue 10 (failure drills): every session was cut off at the login grace time, logged in
/// or not (the grace timer armed before the login was never disarmed). A session now runs
/// past it; a connection that never speaks is still closed at it.
#[test]
fn the_login_grace_time_closes_silent_connections_not_sessions() {
    let env =
        TestEnv::new().config("login_grace_s = 30", "login_grace_s = 2").target("web01").start();

    let mut silent = TcpStream::connect(("127.0.0.1", env.ssh_port())).unwrap();
    let mut s = env.at_prompt("alice@web01");
    // Keep the session busy for twice the grace time, each round waiting on its echo.
    let until = Instant::now() + Duration::from_secs(4);
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        s.send(&format!("echo alive-$((1000+{n}))\n"));
        s.wait_output(&format!("alive-{}", 1000 + n));
    }
    s.send("echo still-$((40+2)); exit\n");
    let (status, out, err) = s.finish();
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("still-42"), "the session outlived the grace time: {out} {err}");
    assert!(status.success(), "{status:?} {err}");

    // The silent connection got the version line, then was closed.
    silent.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut got = Vec::new();
    let r = std::io::Read::read_to_end(&mut silent, &mut got);
    assert!(r.is_ok(), "closed, not timed out: {r:?}");
    assert!(got.starts_with(b"SSH-2.0-Keepwatch"), "{:?}", String::from_utf8_lossy(&got));
}
