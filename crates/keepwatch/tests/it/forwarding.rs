//! Port forwarding under grant policy, `ssh -J` refusal, and targets that only speak older
//! SSH algorithms.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use keepwatch_recording::Event;

use crate::support::*;

/// A TCP server on a free port that echoes back what it reads, one connection at a time.
fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 1024];
            while let Ok(n) = c.read(&mut buf) {
                if n == 0 || c.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    });
    port
}

/// `ssh -N -L local:127.0.0.1:remote` in the background.
fn forward(env: &TestEnv, local: u16, remote: u16) -> std::process::Child {
    env.ssh("alice@web01")
        .args(["-N", "-L", &format!("{local}:127.0.0.1:{remote}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn local_forwarding_follows_the_grant_and_is_recorded() {
    let allowed = echo_server();
    let refused = echo_server();
    let env = TestEnv::new()
        .target("web01")
        .grant_with("alice", "web01", &["--allow-forward", &format!("127.0.0.1:{allowed}")])
        .start();

    let local = free_port();
    let mut ssh = forward(&env, local, allowed);
    let mut conn = wait_for("the forward to listen", Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", local)).ok()
    });
    conn.write_all(b"ping through the tunnel").unwrap();
    let mut got = [0u8; 23];
    conn.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping through the tunnel");
    drop(conn);

    let local2 = free_port();
    let mut ssh2 = forward(&env, local2, refused);
    let mut c2 = wait_for("the second forward to listen", Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", local2)).ok()
    });
    let _ = c2.write_all(b"hello");
    let mut buf = [0u8; 8];
    assert_eq!(c2.read(&mut buf).unwrap_or(0), 0, "a refused destination gets no bytes back");
    for child in [&mut ssh, &mut ssh2] {
        child.kill().unwrap();
        child.wait().unwrap();
    }

    // The refused forward never opened a channel, so it never started a session.
    let sessions = env.sealed_sessions(1);
    let tunnel = sessions
        .iter()
        .flat_map(|s| s["channels"].as_array().unwrap().clone())
        .find(|c| c["kind"] == "tunnel");
    let tunnel = tunnel.expect("the allowed tunnel is listed with its session");
    assert_eq!(tunnel["destination"], format!("127.0.0.1:{allowed}"));
    let audit = env.kw_ok(&["audit", "--action", "forwarding_refused"]);
    assert!(audit.contains(&format!("127.0.0.1:{refused}")), "{audit}");
    assert!(env.kw(&["verify", "--all"]).status.success());
}

#[test]
fn jumping_through_the_gateway_is_refused_with_how_to_connect() {
    let env = TestEnv::new().target("web01").start();
    let inner = env.ssh("alice@web01");
    let proxy: Vec<String> = inner
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .filter(|a| !a.ends_with("@127.0.0.1"))
        .collect();
    let proxy_command = format!("ssh {} -W %h:%p alice@web01@127.0.0.1", proxy.join(" "));
    let out = Command::new("ssh")
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
        ])
        .arg("-o")
        .arg(format!("ProxyCommand={proxy_command}"))
        .args(["-p", &env.sshd().port.to_string(), &format!("{TARGET_USER}@127.0.0.1"), "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused because the session could not be recorded; connect with ssh -p PORT alice@web01@GATEWAY"), "{err}");
}

#[test]
fn a_device_with_only_old_algorithms_is_reached_with_per_target_settings() {
    let old = "KexAlgorithms diffie-hellman-group14-sha1\nHostKeyAlgorithms ssh-rsa\nCiphers aes128-ctr\nMACs hmac-sha1\n";
    let legacy = Target::new().args(&[
        "--kex",
        "diffie-hellman-group14-sha1",
        "--host-key-algorithms",
        "ssh-rsa",
        "--ciphers",
        "aes128-ctr",
        "--macs",
        "hmac-sha1",
    ]);
    let env = TestEnv::new()
        .sshd(SshdConfig::default().host_key("rsa").config(old))
        .target("modern")
        .target_with("legacy", legacy)
        .start();

    let out = env.ssh("alice@legacy").arg("echo old-device-ok").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "old-device-ok\n");
    let out = env.ssh("alice@modern").arg("true").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "modern defaults cannot reach it");
    assert!(String::from_utf8_lossy(&out.stderr).contains("keepwatch: target modern unreachable"));

    // The client side of the gateway keeps modern algorithms whatever a target needs.
    let out = env
        .ssh("alice@legacy")
        .args(["-o", "KexAlgorithms=diffie-hellman-group14-sha1"])
        .arg("true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));

    let bad = env.kw_stdin(
        &[
            "target",
            "add",
            "x",
            "--host",
            "h",
            "--login",
            "l",
            "--password-stdin",
            "--trust-on-first-use",
            "--ciphers",
            "rot13",
        ],
        "pw",
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown cipher algorithm \"rot13\""));
}

#[test]
fn remote_forwarding_needs_the_grant_and_is_recorded() {
    let env = TestEnv::new().target("web01").start();
    let echo = echo_server();

    // Without the grant: refused, the client says so.
    let rport = free_port();
    let out = env
        .ssh("alice@web01")
        .args(["-N", "-o", "ExitOnForwardFailure=yes", "-R", &format!("{rport}:127.0.0.1:{echo}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("remote port forwarding failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    env.kw_ok(&["grant", "alice", "web01", "--allow-remote-forward"]);
    let mut ssh = env
        .ssh("alice@web01")
        .args(["-N", "-o", "ExitOnForwardFailure=yes", "-R", &format!("{rport}:127.0.0.1:{echo}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The target (sshd) listens on rport and tunnels back through the gateway to the echo server.
    let mut c = wait_for("the target to listen for -R", Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", rport)).ok()
    });
    c.write_all(b"back through -R").unwrap();
    let mut got = [0u8; 15];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"back through -R");
    drop(c);
    ssh.kill().unwrap();
    ssh.wait().unwrap();

    // The refused -R never started a session; the allowed one did.
    let sessions = env.sealed_sessions(1);
    let tunnel = sessions
        .iter()
        .flat_map(|s| s["channels"].as_array().unwrap().clone())
        .find(|c| c["kind"] == "remote-tunnel");
    // OpenSSH names the default bind address "localhost".
    let tunnel = tunnel.expect("the -R connection is listed");
    assert_eq!(tunnel["destination"], format!("localhost:{rport}"));
    let audit = env.kw_ok(&["audit", "--action", "forwarding_refused"]);
    assert!(audit.contains(&format!("remote port forwarding from localhost:{rport}")), "{audit}");
}

/// Writes `payload` into a tunnel's local end and reads the echo back.
fn echo_through(port: u16, payload: &[u8]) {
    let mut c = wait_for("the tunnel to listen", Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    c.write_all(payload).unwrap();
    let mut got = vec![0u8; payload.len()];
    c.read_exact(&mut got).unwrap();
    assert_eq!(got, payload);
}

/// The data of every `Input` and `Output` event of a session's tunnel channels.
fn tunnel_bytes(env: &TestEnv, id: &str) -> (Vec<u8>, Vec<u8>) {
    let events = env.events(id);
    let tunnels: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::TunnelOpen { channel, .. } => Some(*channel),
            _ => None,
        })
        .collect();
    assert!(!tunnels.is_empty(), "no tunnel in the recording");
    let (mut input, mut output) = (Vec::new(), Vec::new());
    for e in events {
        match e {
            Event::Input { channel, data } if tunnels.contains(&channel) => input.extend(data),
            Event::Output { channel, data } if tunnels.contains(&channel) => output.extend(data),
            _ => {}
        }
    }
    (input, output)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Issue 5: "where configured, the bytes themselves" for `-L` and `-R` tunnels.
#[test]
fn tunnel_bytes_are_recorded_only_under_a_grant_that_says_so() {
    let echo = echo_server();
    let allow = format!("127.0.0.1:{echo}");
    let env = TestEnv::new()
        .target("web01")
        .grant_with("alice", "web01", &["--allow-forward", &allow, "--allow-remote-forward"])
        .start();
    let tunnels = |local: u16, remote: u16| {
        env.ssh("alice@web01")
            .args(["-N", "-o", "ExitOnForwardFailure=yes"])
            .args(["-L", &format!("{local}:127.0.0.1:{echo}")])
            .args(["-R", &format!("{remote}:127.0.0.1:{echo}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };

    let (local, remote) = (free_port(), free_port());
    let mut ssh = tunnels(local, remote);
    echo_through(local, b"counted-only-via-L");
    echo_through(remote, b"counted-only-via-R");
    ssh.kill().unwrap();
    ssh.wait().unwrap();
    let first = env.sealed_sessions(1)[0]["id"].as_str().unwrap().to_owned();
    let (input, output) = tunnel_bytes(&env, &first);
    assert!(input.is_empty() && output.is_empty(), "bytes recorded without the grant option");
    let closes: Vec<(u64, u64)> = env
        .events(&first)
        .into_iter()
        .filter_map(|e| match e {
            Event::TunnelClose { bytes_to_target, bytes_to_client, .. } => {
                Some((bytes_to_target, bytes_to_client))
            }
            _ => None,
        })
        .collect();
    assert!(closes.contains(&(18, 18)), "byte counts of both tunnels: {closes:?}");

    let options = ["--allow-forward", &allow, "--allow-remote-forward", "--record-tunnel-bytes"];
    env.kw_ok(&[&["grant", "alice", "web01"][..], &options].concat());
    let (local, remote) = (free_port(), free_port());
    let mut ssh = tunnels(local, remote);
    echo_through(local, b"recorded-via-L");
    echo_through(remote, b"recorded-via-R");
    ssh.kill().unwrap();
    ssh.wait().unwrap();
    let sessions = env.sealed_sessions(2);
    let second = sessions.iter().find(|s| s["id"] != first.as_str()).unwrap();
    let (input, output) = tunnel_bytes(&env, second["id"].as_str().unwrap());
    for payload in [&b"recorded-via-L"[..], b"recorded-via-R"] {
        assert!(contains(&input, payload), "{payload:?} not recorded as input");
        assert!(contains(&output, payload), "{payload:?} not recorded as output");
    }
    assert!(env.kw(&["verify", "--all"]).status.success());
}

/// An `ssh-agent` on its own socket, holding alice's key; ended when dropped.
struct Agent {
    child: std::process::Child,
    sock: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start(key: &std::path::Path) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent missing; install openssh-client");
        wait_for("ssh-agent to listen", Duration::from_secs(10), || sock.exists().then_some(()));
        let st = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &sock)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "ssh-add failed");
        Agent { child, sock, _dir: dir }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issue 5: agent forwarding stays refused unless a grant enables it.
#[test]
fn agent_forwarding_is_refused_by_default_and_works_under_the_grant() {
    let env = TestEnv::new().target("web01").start();
    let agent = Agent::start(env.key());
    let fingerprint = {
        let out = Command::new("ssh-keygen").arg("-lf").arg(env.key()).output().unwrap();
        String::from_utf8(out.stdout).unwrap().split_whitespace().nth(1).unwrap().to_owned()
    };
    let list_keys_on_target = || {
        env.ssh("alice@web01")
            .arg("-A")
            .env("SSH_AUTH_SOCK", &agent.sock)
            .arg("ssh-add -l")
            .output()
            .unwrap()
    };

    let out = list_keys_on_target();
    assert_eq!(out.status.code(), Some(2), "no agent on the target without the grant");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Could not open a connection to your authentication agent"), "{err}");
    let audit = env.kw_ok(&["audit", "--action", "forwarding_refused"]);
    assert!(audit.contains("agent forwarding refused"), "{audit}");

    env.kw_ok(&["grant", "alice", "web01", "--allow-agent-forward"]);
    let out = list_keys_on_target();
    assert!(out.status.success(), "ssh-add -l: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&fingerprint), "the key is listed");

    let sessions = env.sealed_sessions(2);
    let with_agent = sessions
        .iter()
        .find(|s| s["channels"].as_array().unwrap().iter().any(|c| c["kind"] == "agent"))
        .expect("the agent channel is listed with its session");
    let events = env.events(with_agent["id"].as_str().unwrap());
    let opened =
        events.iter().any(|e| matches!(e, Event::TunnelOpen { host, .. } if host == "agent"));
    assert!(opened, "the agent channel's open is recorded");
    let carried = events.iter().any(|e| {
        matches!(e, Event::TunnelClose { bytes_to_target, bytes_to_client, .. }
            if *bytes_to_target > 0 && *bytes_to_client > 0)
    });
    assert!(carried, "the agent channel's byte counts are recorded: {events:?}");
    assert!(env.kw(&["verify", "--all"]).status.success());
}

/// Issue 5: "devices that offer only a shell (no exec, no sftp) still record cleanly".
#[test]
fn a_shell_only_device_records_its_shell_and_refuses_sftp_with_a_clear_line() {
    let env = TestEnv::new().sshd(SshdConfig::shell_only()).target("sw01").start();

    let mut s = env.interactive("alice@sw01");
    s.send("echo shell-only-$((40+2))\n");
    s.wait_output("shell-only-42");
    s.send("exit\n");
    let (status, _, _) = s.finish();
    assert!(status.success(), "ssh exit status {status:?}");
    let shell = env.sealed_sessions(1)[0]["id"].as_str().unwrap().to_owned();

    let mut sftp = Command::new("sftp")
        .args(env.client_opts())
        .args(["-P", &env.ssh_port().to_string(), "-b", "-", "alice@sw01@127.0.0.1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    sftp.stdin.take().unwrap().write_all(b"ls\n").unwrap();
    let out = sftp.wait_with_output().unwrap();
    assert!(!out.status.success(), "sftp must fail on a shell-only device");
    let line = "keepwatch: target sw01 refused the sftp subsystem (it may offer only a shell";
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(line), "{err}");

    let sessions = env.sealed_sessions(2);
    let shell_row = sessions.iter().find(|s| s["id"] == shell.as_str()).unwrap();
    assert_eq!(shell_row["status"], "closed");
    assert!(env.exported_output(&shell).contains("shell-only-42"));
    let refused = sessions.iter().find(|s| s["id"] != shell.as_str()).unwrap();
    let noted = env
        .events(refused["id"].as_str().unwrap())
        .into_iter()
        .any(|e| matches!(e, Event::Notice { text, .. } if text.starts_with(line)));
    assert!(noted, "the refusal is in the recording with the words the person saw");
    assert!(env.kw(&["verify", "--all"]).status.success());
}
