//! Recorded sessions through the gateway: shell, exec, menu, listings and export.

use crate::support::*;

#[test]
fn interactive_shell_is_recorded_exactly_as_the_client_saw_it() {
    interactive_shell_is_recorded_exactly_as_the_client_saw_it_on(TestEnv::new());
}

/// Issue 11: the same with the metadata in PostgreSQL.
#[test]
fn interactive_shell_is_recorded_exactly_as_the_client_saw_it_on_postgres() {
    interactive_shell_is_recorded_exactly_as_the_client_saw_it_on(TestEnv::new().postgres());
}

fn interactive_shell_is_recorded_exactly_as_the_client_saw_it_on(builder: TestEnvBuilder) {
    let env = builder.target("web01").start();

    let mut s = env.interactive("alice@web01");
    // Typed before the shell is up: the gateway must hold these bytes, not drop them.
    s.send("echo kw-$((6*7))\n");
    s.wait_output("kw-42");
    s.send("printf 'caf\\303\\251 \\342\\202\\254\\n'\n");
    s.wait_output("café €");
    s.send("exit\n");
    let (status, stdout, _) = s.finish();
    assert!(status.success(), "ssh exit status {status:?}");

    let sessions = env.sealed_sessions(1);
    let sess = &sessions[0];
    assert_eq!(sess["user"], "alice");
    assert_eq!(sess["target"], "web01");
    assert_eq!(sess["status"], "closed");
    assert!(sess["ended_at"].is_string());
    assert!(sess["client_addr"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(sess["channels"][0]["kind"], "shell");
    assert!(sess["channels"][0]["pty"].is_string(), "a shell with a terminal records its TERM");

    let id = sess["id"].as_str().unwrap();
    let exported = env.exported_output(id);
    assert_eq!(
        exported,
        String::from_utf8(stdout).unwrap(),
        "export differs from what ssh printed"
    );
    assert!(exported.contains("kw-42"));

    // Replay plays the same bytes (fast: --speed and --idle-limit).
    let replay = env.kw(&["replay", id, "--speed", "50", "--idle-limit", "0.1"]);
    assert!(replay.status.success());
    assert_eq!(String::from_utf8_lossy(&replay.stdout), exported);

    let verify = env.kw(&["verify", id]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    // Viewing a recording is itself audited.
    let audit = env.json(&["audit", "--json"]);
    let exported = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "recording_exported")
        .expect("export audited");
    assert_eq!(exported["session"], id);
    let actor = exported["actor"].as_str().unwrap();
    assert!(
        actor.starts_with("local:") && actor != "local:unknown",
        "the CLI names the OS user: {actor}"
    );
}

#[test]
fn exec_exit_codes_pass_through() {
    let env = TestEnv::new().target("web01").start();

    let ok = env.ssh("alice@web01").arg("echo out; echo err >&2; exit 0").output().unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&ok.stderr), "err\n");
    let three = env.ssh("alice@web01").arg("exit 3").output().unwrap();
    assert_eq!(three.status.code(), Some(3));

    // stdin is relayed to EOF and the exit follows the last byte.
    let mut cat = env.ssh("alice@web01");
    cat.arg("wc -c").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    let mut child = cat.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, &vec![b'x'; 3 << 20]).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), (3 << 20).to_string());

    let sessions = env.sealed_sessions(3);
    let by_cmd =
        |cmd: &str| sessions.iter().find(|s| s["channels"][0]["command"] == cmd).unwrap().clone();
    assert_eq!(by_cmd("exit 3")["channels"][0]["exit_status"], 3);
    assert_eq!(by_cmd("exit 3")["channels"][0]["kind"], "exec");
    assert_eq!(by_cmd("echo out; echo err >&2; exit 0")["channels"][0]["exit_status"], 0);
    let shown = env.kw_ok(&["show", by_cmd("exit 3")["id"].as_str().unwrap()]);
    assert!(shown.contains("exec \"exit 3\"") && shown.contains("exit 3"), "{shown}");
    assert!(env.kw(&["verify", "--all"]).status.success());
}

#[test]
fn login_without_target_gets_a_menu() {
    let env = TestEnv::new().target("web01").target("web02").start();

    let mut s = env.interactive("alice");
    s.wait_output("Choose a target [1-2]");
    let menu = s.output();
    assert!(menu.contains("1) web01") && menu.contains("2) web02"), "{menu}");
    s.send("9\r");
    s.wait_output("no such target: 9");
    // The choice and the first command in one write: the rest goes to the shell.
    s.send("2\recho menu-ok-$((1+2))\n");
    s.wait_output("menu-ok-3");
    s.send("exit\n");
    let (status, _, _) = s.finish();
    assert!(status.success());
    let sessions = env.sealed_sessions(1);
    assert_eq!(sessions[0]["target"], "web02");

    // Exec with no target: one clear line, non-zero exit.
    let out = env.ssh("alice").arg("uptime").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("keepwatch: no target named; connect as alice@TARGET (granted: web01, web02)"),
        "{err}"
    );
}

#[test]
fn password_login_and_trust_on_first_use() {
    let env = TestEnv::new()
        .target_with("tofu", Target::new().host_key(HostKey::TrustOnFirstUse))
        .start();

    let askpass = env.dir().join("askpass.sh");
    std::fs::write(&askpass, format!("#!/bin/sh\necho '{ALICE_PASSWORD}'\n")).unwrap();
    std::fs::set_permissions(&askpass, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();
    // ssh keeps the first value given for an option, so this one is built without BatchMode.
    let out = std::process::Command::new("ssh")
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
        ])
        .args(["-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password"])
        .args(["-p", &env.ssh_port().to_string(), "alice@tofu@127.0.0.1"])
        .stdin(std::process::Stdio::null())
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .arg("echo by-password")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "by-password\n");

    let targets = env.json(&["target", "list", "--json"]);
    assert_eq!(targets[0]["host_key"], env.sshd().host_key_line, "first key seen is pinned");
    let audit = env.kw_ok(&["audit", "--action", "host_key_pinned"]);
    assert!(audit.contains("tofu"), "{audit}");
}

#[test]
fn binary_data_passes_through_unchanged_both_ways() {
    let env = TestEnv::new().target("web01").start();

    // Every byte value, in a pseudo-random order, 2 MiB.
    let mut x: u32 = 0x2545_f491;
    let input: Vec<u8> = (0..2 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    let mut child = env
        .ssh("alice@web01")
        .arg("cat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = {
        let input = input.clone();
        std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input).unwrap())
    };
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    assert!(
        out.stdout == input,
        "bytes changed in transit ({} of {} came back)",
        out.stdout.len(),
        input.len()
    );
    env.sealed_sessions(1);
    assert!(env.kw(&["verify", "--all"]).status.success());
}

/// A SIGTERM while the gateway is still starting (a service manager stopping it right after
/// starting it) but already listening is a clean stop: it is watched from before the first
/// listener, so startup finishes and the shutdown that seals live sessions runs. Before, it
/// was watched only once the node was published, and a SIGTERM before that killed the
/// process outright.
#[test]
fn a_sigterm_during_startup_is_a_clean_stop() {
    use std::io::BufRead;
    let mut env = TestEnv::new().start();
    env.stop();
    let mut child = env.run_command().spawn().unwrap();
    let mut log = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    // The first listener's line: the others, publishing the node and the rest of startup
    // come after it.
    for line in log.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("keepwatch: SSH gateway listening on") {
            break;
        }
    }
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    for line in log {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}: {seen}");
    assert!(seen.contains("keepwatch: stopped"), "{seen}");
}

#[test]
fn the_web_listener_answers_its_health_check() {
    use std::io::{Read, Write};
    let env = TestEnv::new().start();
    let mut c = std::net::TcpStream::connect(("127.0.0.1", env.web_port())).unwrap();
    c.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok\n"), "{answer}");
}
