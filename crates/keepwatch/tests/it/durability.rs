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

/// A small tmpfs mounted over a directory for the life of the value, to fill a disk.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: &std::path::Path, size: &str) -> SmallDisk {
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "cannot mount a tmpfs at {} (the test needs root with mount rights)",
            at.display()
        );
        SmallDisk(at.to_owned())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_ends_the_session_fail_closed_unless_the_target_says_continue() {
    let sshd = Sshd::start();
    let mut gw = Gateway::new();
    gw.add_target("closed01", &sshd);
    gw.add_target_at(
        "open01",
        sshd.port,
        TARGET_PASSWORD,
        &["--host-key", &sshd.host_key_line, "--on-recording-failure", "continue"],
    );
    gw.kw_ok(&["grant", "alice", "open01"]);
    let spool = gw.data().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let _disk = SmallDisk::mount(&spool, "1m");
    gw.start();

    // ~15 MB of random text: its recording cannot fit in 1 MiB.
    let noisy = "head -c 11000000 /dev/urandom | base64 -w 100";
    let out = gw.ssh("alice@closed01").arg(noisy).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("keepwatch: the recording failed, so the session was ended"), "{err}");
    assert!(
        out.stdout.len() < 14_000_000,
        "the session was cut short ({} bytes)",
        out.stdout.len()
    );
    let audit = gw.kw_ok(&["audit", "--action", "recording_failed"]);
    assert!(audit.contains("session ended"), "{audit}");

    // The gateway still serves: free the disk and start another session.
    for f in std::fs::read_dir(&spool).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    let ok = gw.ssh("alice@closed01").arg("echo still-serving").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "still-serving\n");

    // A target that allows it keeps going unrecorded, and that is audited.
    let out = gw.ssh("alice@open01").arg(noisy).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.len() > 14_000_000);
    let audit = gw.kw_ok(&["audit", "--action", "recording_failed"]);
    assert!(audit.contains("continues unrecorded"), "{audit}");
}
