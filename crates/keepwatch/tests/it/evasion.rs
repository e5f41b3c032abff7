//! Issue 9: a person with an ordinary grant tries to move bytes past the recording. Each way
//! either lands in the recording (and in `search`), byte for byte, or is refused.

use std::io::Write as _;
use std::process::{Output, Stdio};
use std::time::Duration;

use keepwatch_recording::Event;
use serde_json::Value;

use crate::support::*;

/// Runs `ssh LOGIN COMMAND` with `stdin`, and returns its output once it has exited.
fn ssh_with_stdin(env: &TestEnv, login: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = env
        .ssh(login)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// What one session's recording holds, by kind.
#[derive(Default)]
struct Recorded {
    input: Vec<u8>,
    output: Vec<u8>,
    notices: Vec<String>,
    env: Vec<(String, String, bool)>,
}

impl Recorded {
    fn of(env: &TestEnv, id: &str) -> Recorded {
        let mut r = Recorded::default();
        for e in env.events(id) {
            match e {
                Event::Input { data, .. } => r.input.extend(data),
                Event::Output { data, .. } | Event::ExtOutput { data, .. } => r.output.extend(data),
                Event::Notice { text, .. } => r.notices.push(text),
                Event::Env { name, value, forwarded, .. } => r.env.push((name, value, forwarded)),
                _ => {}
            }
        }
        r
    }

    fn input_has(&self, s: &str) -> bool {
        String::from_utf8_lossy(&self.input).contains(s)
    }

    fn output_has(&self, s: &str) -> bool {
        String::from_utf8_lossy(&self.output).contains(s)
    }
}

/// The ids of the sessions `search` finds `text` in.
fn found_in(env: &TestEnv, text: &str) -> Vec<String> {
    let hits: Value = env.json(&["search", "--json", text]);
    hits["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["session"].as_str().unwrap().to_owned())
        .collect()
}

/// The newest session's id, once it is sealed (`n` sessions in all).
fn newest_sealed(env: &TestEnv, n: usize) -> String {
    env.sealed_sessions(n)[0]["id"].as_str().unwrap().to_owned()
}

/// `scp -f x; exec sh -i`, fed a fatal SCP answer and then commands: an interactive shell
/// hidden behind an scp command line. An exec is legacy SCP only when it is one plain `scp`
/// invocation, so these are ordinary execs, recorded byte for byte and indexed.
#[test]
fn exec_lines_that_only_start_with_scp_are_recorded_byte_for_byte() {
    let env = TestEnv::new().target("web01").start();
    // The bytes scp reads before it exits, then the shell's commands. scp reads its answers
    // a byte at a time, so the rest is left for the shell.
    let cases: [(&str, &str, &str); 3] = [
        ("scp -f /nonexistent; exec sh -i 2>&1", "\x02x\n", "kw-evade-semicolon"),
        ("scp -t /tmp; sh", "\x02garbage\n", "kw-evade-garbage"),
        // A whole, successful download first (ready, record, data), so `&&` goes on.
        ("scp -f /etc/hostname && sh -i 2>&1", "\0\0\0", "kw-evade-and"),
    ];
    for (i, (command, scp_bytes, marker)) in cases.iter().enumerate() {
        let stdin = format!("{scp_bytes}echo {marker}-$((40+{i}))\nexit\n");
        let out = ssh_with_stdin(&env, "alice@web01", &[command], stdin.as_bytes());
        let shown = format!("{marker}-{}", 40 + i);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&shown),
            "the shell ran ({command}): {out:?}"
        );
        let id = newest_sealed(&env, i + 1);
        let rec = Recorded::of(&env, &id);
        assert!(rec.input_has(&format!("echo {marker}-$((40+{i}))")), "typed text recorded");
        assert!(rec.output_has(&shown), "the shell's output recorded");
        env.wait_indexed(&id);
        assert!(found_in(&env, &shown).contains(&id), "{shown} is searchable");
    }
    assert!(env.kw(&["verify", "--all"]).status.success());
}

/// A real legacy SCP channel whose protocol ends (a fatal answer) or breaks (garbage): what
/// follows is recorded as raw bytes while nothing is enforced, and the channel is closed
/// under a grant that restricts transfers, with nothing forwarded.
#[test]
fn a_file_protocol_the_gateway_cannot_follow_is_recorded_raw_or_closed() {
    let env = TestEnv::new()
        .target("web01")
        .target("web02")
        .grant_with("alice", "web02", &["--no-upload"])
        .start();
    // scp -f (a download): the client is the sink; a fatal answer ends the protocol.
    let out = ssh_with_stdin(
        &env,
        "alice@web01",
        &["scp -f /etc/hostname"],
        b"\x02kw-raw-after-fatal then more bytes\n",
    );
    assert!(out.status.code().is_some());
    let id = newest_sealed(&env, 1);
    let rec = Recorded::of(&env, &id);
    assert!(rec.input_has("kw-raw-after-fatal"), "bytes after the protocol ended are recorded");

    // SFTP: a valid INIT, then bytes that are not SFTP.
    let mut stream = vec![0, 0, 0, 5, 1, 0, 0, 0, 3];
    stream.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    stream.extend_from_slice(b"kw-raw-not-sftp");
    let open = ssh_with_stdin(&env, "alice@web01", &["-s", "sftp"], &stream);
    assert!(open.status.code().is_some());
    let id = newest_sealed(&env, 2);
    let rec = Recorded::of(&env, &id);
    assert!(rec.input_has("kw-raw-not-sftp"), "an SFTP stream gone off the protocol is recorded");
    assert!(rec.notices.iter().any(|n| n.contains("protocol error")), "{:?}", rec.notices);

    // The same under --no-upload: the grant cannot be held any more, so the channel closes
    // and the bytes never reach the target.
    let closed = ssh_with_stdin(&env, "alice@web02", &["-s", "sftp"], &stream);
    assert!(closed.status.code().is_some());
    let id = newest_sealed(&env, 3);
    let rec = Recorded::of(&env, &id);
    assert!(!rec.input_has("kw-raw-not-sftp"), "closed, not relayed");
    assert!(rec.notices.iter().any(|n| n.contains("protocol error")), "{:?}", rec.notices);
    assert!(env.kw(&["verify", "--all"]).status.success());
}

/// `LC_X='...' ssh ... 'eval "$LC_X"'` runs code carried in an environment variable: every
/// environment request is recorded with its value (masked), refused ones too, and found by
/// `search`.
#[test]
fn environment_values_are_recorded_masked_and_searchable() {
    let env = TestEnv::new()
        .sshd(SshdConfig::default().config("AcceptEnv LC_*\n"))
        .target("web01")
        .start();
    let out = env
        .ssh("alice@web01")
        .args([
            "-o",
            // One option: OpenSSH keeps only the first SetEnv given on the command line.
            "SetEnv=LC_KWX=\"echo kw-env-$((3*3))\" KW_NOT_ALLOWED=kw-refused-value LC_TOKEN=password=hunter2-kw",
            "eval \"$LC_KWX\"",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "kw-env-9\n", "{out:?}");
    let id = newest_sealed(&env, 1);
    let rec = Recorded::of(&env, &id);
    assert!(
        rec.env.contains(&("LC_KWX".into(), "echo kw-env-$((3*3))".into(), true)),
        "{:?}",
        rec.env
    );
    assert!(
        rec.env.contains(&("KW_NOT_ALLOWED".into(), "kw-refused-value".into(), false)),
        "a refused request is recorded as refused: {:?}",
        rec.env
    );
    let token = rec.env.iter().find(|(n, ..)| n == "LC_TOKEN").expect("LC_TOKEN recorded");
    assert_eq!(token.1, "password=[masked password-assignment]");
    env.wait_indexed(&id);
    assert!(found_in(&env, "kw-env-$((3*3))").contains(&id), "the value is searchable");
    assert!(found_in(&env, "hunter2-kw").is_empty(), "the masked value is not");
    let shown = env.kw_ok(&["show", &id, "--events"]);
    assert!(shown.contains("env LC_KWX=\"echo kw-env-$((3*3))\""), "{shown}");
    assert!(shown.contains("KW_NOT_ALLOWED") && shown.contains("(refused)"), "{shown}");
}

/// A secret typed a key at a time, or pasted, on a command line: masked in the input and in
/// its echo before anything is written, so no byte of it reaches a file, the index or the log.
#[test]
fn secrets_typed_or_pasted_on_a_command_line_never_reach_disk() {
    let env = TestEnv::new().target("web01").start();
    let mut s = env.at_prompt("alice@web01");
    let typed = "AKIAIOSFODNN7EXAMPLE";
    // A key at a time, each after the echo of the one before: a typist slower than the
    // echo. Keys sent faster than the echo comes back look like a target that does not echo
    // and arm the line (docs/secrets.md), which would record it as a redaction marker.
    let line = format!("echo typed-{typed}");
    for k in 1..=line.len() {
        let shown = &line[..k];
        let before = s.output().matches(shown).count();
        s.send(&line[k - 1..k]);
        s.wait_output_times(shown, before + 1);
    }
    s.send("\n");
    s.send("echo step-$((1+1))\n");
    s.wait_output("step-2");
    let pasted = "ghp_0123456789abcdefghij0123456789abcdef";
    s.send(&format!("export GH_TOKEN={pasted}; echo pasted-$((2+2))\n"));
    s.wait_output("pasted-4");
    s.send("exit\n");
    let (status, ..) = s.finish();
    assert!(status.success());
    let id = newest_sealed(&env, 1);
    env.wait_indexed(&id);
    let rec = Recorded::of(&env, &id);
    assert!(rec.input_has("[masked aws-access-key]"), "{}", String::from_utf8_lossy(&rec.input));
    assert!(rec.output_has("[masked aws-access-key]"), "the echo too");
    let secrets = [typed, pasted, "IOSFODNN7", "0123456789abcdefghij"];
    for secret in secrets {
        assert!(!rec.input_has(secret) && !rec.output_has(secret), "{secret} recorded");
        for f in files(&env.data()) {
            let raw = std::fs::read(&f).unwrap();
            assert!(
                !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in {}",
                f.display()
            );
        }
        assert!(!env.log().contains(secret), "{secret} in the log");
    }
    // Last: a search is audited with its text, so searching for the secrets puts them in
    // the audit trail (the auditor typed them).
    for secret in secrets {
        assert!(found_in(&env, secret).is_empty(), "{secret} is searchable");
    }
}

/// Every file under `dir`.
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(files(&p)) } else { out.push(p) }
    }
    out
}

/// Channels multiplexed on one connection (`ssh -M` / `-S`) are each recorded, in the one
/// session the connection has; past the configured cap, a channel is refused.
#[test]
fn many_channels_on_one_connection_are_each_recorded_and_capped() {
    let env = TestEnv::new()
        .target("web01")
        .config("max_channels_per_connection = 64", "max_channels_per_connection = 2")
        .start();
    let sock = env.dir().join("mux");
    let sock_opt = format!("ControlPath={}", sock.display());
    let mut master = env
        .ssh("alice@web01")
        .args(["-M", "-N", "-o", &sock_opt, "-o", "ControlMaster=yes"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the control socket", Duration::from_secs(20), || sock.exists().then_some(()));
    let run = |cmd: &str| env.ssh("alice@web01").args(["-o", &sock_opt, cmd]).output().unwrap();
    // Two channels held open at once on the one connection, each carrying its own marker.
    let mut held: Vec<_> = (0..2)
        .map(|_| {
            env.ssh("alice@web01")
                .args(["-o", &sock_opt, "cat"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, h) in held.iter_mut().enumerate() {
        let stdin = h.stdin.as_mut().unwrap();
        stdin.write_all(format!("kw-mux-{i}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        let mut line = [0u8; 9];
        std::io::Read::read_exact(h.stdout.as_mut().unwrap(), &mut line).unwrap();
        assert_eq!(&line, format!("kw-mux-{i}\n").as_bytes());
    }
    // A third is refused: the connection holds the most channels it may. (OpenSSH then
    // falls back to a connection of its own, which is another session.)
    let third = run("echo kw-mux-third");
    assert!(String::from_utf8_lossy(&third.stderr).contains("refused"), "{third:?}");
    for mut h in held.drain(..) {
        drop(h.stdin.take());
        let _ = h.wait();
    }
    let _ = master.kill();
    let _ = master.wait();
    let sessions = env.sealed_sessions(2);
    let mux = sessions
        .iter()
        .find(|s| s["channels"].as_array().unwrap().len() == 2)
        .expect("the multiplexed connection's one session, with both channels");
    let rec = Recorded::of(&env, mux["id"].as_str().unwrap());
    assert!(rec.output_has("kw-mux-0") && rec.output_has("kw-mux-1"), "both channels recorded");
    let refused = env.json(&["audit", "--action", "session_refused", "--json"]);
    assert!(refused.to_string().contains("channels open on one connection"), "{refused}");
}

/// `stty -echo` at a shell prompt must not turn the commands typed there into
/// `[redacted N bytes]`.
#[test]
fn commands_typed_without_echo_at_a_shell_prompt_are_recorded() {
    let env = TestEnv::new().target("web01").start();
    let mut s = env.at_prompt("alice@web01");
    s.send("exec env PS1='kwdash$ ' dash\n");
    s.wait_output("kwdash$ ");
    s.send("stty -echo\n");
    s.wait_output_times("kwdash$ ", 2);
    s.send("echo kw-noecho-$((6*7))\n");
    s.wait_output("kw-noecho-42");
    s.send("exit\n");
    let _ = s.finish();
    let id = newest_sealed(&env, 1);
    let rec = Recorded::of(&env, &id);
    assert!(rec.input_has("echo kw-noecho-$((6*7))"), "{}", String::from_utf8_lossy(&rec.input));
}

/// A forwarded agent channel used as a plain pipe (a program on the target writing to
/// `$SSH_AUTH_SOCK` something that is not the agent protocol) is closed, and said so.
#[test]
fn an_agent_channel_used_as_a_pipe_is_closed() {
    let env = TestEnv::new()
        .target("web01")
        .grant_with("alice", "web01", &["--allow-agent-forward"])
        .start();
    // The person's "agent": it answers "no identities" to a listing (what the person's own
    // ssh asks it) and echoes anything else back; it keeps everything it was sent.
    let agent_dir = tempfile::tempdir().unwrap();
    let agent_sock = agent_dir.path().join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&agent_sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let agent = {
        let (got, stop) = (got.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((mut c, _)) = listener.accept() else {
                    // Nothing to wait on but the socket itself: poll it until told to stop.
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let got = got.clone();
                std::thread::spawn(move || {
                    c.set_nonblocking(false).unwrap();
                    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = std::io::Read::read(&mut c, &mut buf) {
                        if n == 0 {
                            break;
                        }
                        got.lock().unwrap().extend_from_slice(&buf[..n]);
                        let reply: &[u8] = if buf[..n] == [0, 0, 0, 1, 11] {
                            &[0, 0, 0, 5, 12, 0, 0, 0, 0]
                        } else {
                            &buf[..n]
                        };
                        let _ = c.write_all(reply);
                    }
                });
            }
        })
    };
    let script = "python3 -c 'import os,socket; s=socket.socket(socket.AF_UNIX); \
        s.connect(os.environ[\"SSH_AUTH_SOCK\"]); s.sendall(b\"kw-agent-pipe ls -la\\n\"); \
        print(\"read\", len(s.recv(100)))'; echo done";
    let out = env
        .ssh("alice@web01")
        .env("SSH_AUTH_SOCK", &agent_sock)
        .args(["-A", script])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("done"), "{out:?}");
    let id = newest_sealed(&env, 1);
    let rec = Recorded::of(&env, &id);
    assert!(
        rec.notices.iter().any(|n| n.contains("agent channel closed")),
        "{:?} {out:?}\n{}",
        rec.notices,
        env.log()
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("read 0"), "closed: {out:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    agent.join().unwrap();
    let got = got.lock().unwrap().clone();
    assert!(
        !String::from_utf8_lossy(&got).contains("kw-agent-pipe"),
        "the bytes reached the person's side"
    );
}
