//! Every refusal path: the person learns nothing about which part failed; the audit log does.

use crate::support::*;

fn denied(out: &std::process::Output) {
    assert_eq!(out.status.code(), Some(255), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn wrong_key_unknown_user_unknown_or_ungranted_target_are_refused_alike() {
    let env =
        TestEnv::new().target("web01").target_with("web02", Target::new().not_granted()).start();

    denied(&env.ssh("alice@web02").arg("true").output().unwrap());
    denied(&env.ssh("alice@nope").arg("true").output().unwrap());
    denied(&env.ssh("bob@web01").arg("true").output().unwrap());
    let other = env.dir().join("other_key");
    std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    // A key alice does not own (and only that key: IdentitiesOnly).
    let out = std::process::Command::new("ssh")
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .arg("-i")
        .arg(&other)
        .args(["-p", &env.ssh_port().to_string(), "alice@web01@127.0.0.1", "true"])
        .output()
        .unwrap();
    denied(&out);

    assert!(env.sessions().is_empty(), "no session is created for a refused login");
    let audit = env.json(&["audit", "--action", "login_refused", "--json"]);
    let details: Vec<String> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"].as_str().unwrap().to_owned())
        .collect();
    let all = details.join("\n");
    for reason in
        ["target not granted", "unknown target", "unknown person", "wrong password or key"]
    {
        assert!(all.contains(reason), "no audit event says {reason:?}:\n{all}");
    }
}

#[test]
fn unreachable_target_is_refused_with_one_clear_line() {
    let env = TestEnv::new().target_with("down01", Target::unreachable()).start();

    let out = env.ssh("alice@down01").arg("true").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim(), "keepwatch: target down01 unreachable: connection refused");
    let s = &env.sessions()[0];
    assert_eq!(s["status"], "refused");
    assert_eq!(s["reason"], "target down01 unreachable: connection refused");
    assert!(
        env.kw(&["verify", "--all"]).status.success(),
        "a refused session still has a sealed, verifiable recording"
    );
}

#[test]
fn refused_credential_and_host_key_mismatch() {
    let env = TestEnv::new()
        .target_with("badpw", Target::new().password("not-the-password"))
        .target_with("mitm", Target::new().host_key(HostKey::NotTheTargets))
        .start();

    let out = env.ssh("alice@badpw").arg("true").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "keepwatch: target badpw refused the vaulted credential for kwtest"
    );

    let out = env.ssh("alice@mitm").arg("true").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("keepwatch: target mitm host key mismatch: expected SHA256:"), "{err}");
    let audit = env.kw_ok(&["audit", "--action", "host_key_mismatch"]);
    assert!(audit.contains("mitm"), "{audit}");
    let statuses: Vec<String> =
        env.sessions().iter().map(|s| s["status"].as_str().unwrap().to_owned()).collect();
    assert_eq!(statuses, ["refused", "refused"]);
    // The vaulted password never appears in clear anywhere under the data directory.
    for entry in walk(&env.data()) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(16).any(|w| w == b"not-the-password"),
            "secret in clear in {}",
            entry.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[test]
fn a_recording_that_cannot_start_refuses_the_session() {
    let env = TestEnv::new().target("web01").start();
    // The spool directory becomes a file: no recording can be created.
    let spool = env.data().join("spool");
    std::fs::remove_dir_all(&spool).unwrap();
    std::fs::write(&spool, b"not a directory").unwrap();

    let out = env.ssh("alice@web01").arg("echo should-not-run").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("should-not-run"));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "keepwatch: cannot start the recording; session refused"
    );
    assert!(env.sessions().is_empty(), "no session row without a recording");
    let audit = env.kw_ok(&["audit", "--action", "session_refused"]);
    assert!(audit.contains("cannot create recording"), "{audit}");
}
