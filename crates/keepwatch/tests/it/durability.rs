//! Stops and crashes: SIGTERM seals every live recording; kill -9 loses at most the last
//! flush, and the next start seals the session as interrupted.

use std::time::Duration;

use crate::support::*;

#[test]
fn sigterm_tells_the_person_and_seals_the_recording() {
    let sshd = Sshd::start();
    let mut gw = Gateway::new();
    gw.add_target("web01", &sshd);
    gw.start();

    let mut s = Interactive::start(gw.ssh("alice@web01"));
    s.send("echo ready-$((2+2))\n");
    s.wait_output("ready-4");
    let status = gw.stop();
    assert!(status.success(), "gateway exit status {status:?}");
    let (_, stdout, stderr) = s.finish();
    let seen = format!("{}{stderr}", String::from_utf8_lossy(&stdout));
    assert!(seen.contains("gateway shutting down"), "the person is told why: {seen}");

    let sess = &gw.sessions()[0];
    assert_eq!(sess["status"], "terminated");
    assert_eq!(sess["reason"], "gateway shutting down");
    let v = gw.kw(&["verify", "--all"]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    assert!(gw.exported_output(sess["id"].as_str().unwrap()).contains("ready-4"));
}

#[test]
fn kill_9_then_restart_seals_the_session_as_interrupted() {
    let sshd = Sshd::start();
    let mut gw = Gateway::new();
    gw.set_config("flush_interval_ms = 1000", "flush_interval_ms = 200");
    gw.add_target("web01", &sshd);
    gw.start();

    let mut s = Interactive::start(gw.ssh("alice@web01"));
    s.send("echo before-crash-$((3*3))\n");
    s.wait_output("before-crash-9");
    let id = gw.sessions()[0]["id"].as_str().unwrap().to_owned();
    // The output reaches the spool within one flush interval; wait until it is readable.
    wait_for("the output to be flushed", Duration::from_secs(10), || {
        let out = gw.kw(&["export", &id, "--format", "asciicast"]);
        String::from_utf8_lossy(&out.stdout).contains("before-crash-9").then_some(())
    });
    gw.kill9();
    let (status, _, _) = s.finish();
    assert!(!status.success(), "the client loses its connection");
    assert_eq!(gw.sessions()[0]["status"], "active", "nothing sealed it yet");

    gw.start();
    assert!(gw.log.lock().unwrap().contains("sealed 1 interrupted session"));
    let sess = &gw.sessions()[0];
    assert_eq!(sess["status"], "interrupted");
    assert!(sess["ended_at"].is_string());
    let v = gw.kw(&["verify", "--all"]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    assert!(
        gw.exported_output(&id).contains("before-crash-9"),
        "flushed output survives the crash"
    );
    assert_eq!(gw.stop().code(), Some(0));
}
