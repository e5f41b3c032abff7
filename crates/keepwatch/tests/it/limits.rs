//! `[limits]` seen from outside: the login grace time closes a connection that never logs
//! in, and only such a connection.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;

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
    let r = silent.read_to_end(&mut got);
    assert!(r.is_ok(), "closed, not timed out: {r:?}");
    assert!(got.starts_with(b"SSH-2.0-Keepwatch"), "{:?}", String::from_utf8_lossy(&got));
}
