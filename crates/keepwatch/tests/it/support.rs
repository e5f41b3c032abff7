//! Fixtures: a throwaway `sshd` target, a gateway in a temp data directory, and `ssh` clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const TARGET_USER: &str = "kwtest";
pub(crate) const TARGET_PASSWORD: &str = "kwtest-pass-1";
const SETUP_HINT: &str = "run `bash scripts/test.sh` once (as root): it installs openssh-server and creates the local user kwtest";

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

fn keygen(path: &Path) {
    keygen_type(path, "ed25519");
}

fn keygen_type(path: &Path, kind: &str) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen missing; install openssh-client");
    assert!(st.success());
}

/// An OpenSSH server on a free loopback port, the target of the tests.
pub(crate) struct Sshd {
    child: Child,
    pub port: u16,
    pub host_key_line: String,
    _dir: tempfile::TempDir,
}

impl Sshd {
    pub(crate) fn start() -> Sshd {
        Sshd::start_with("ed25519", "")
    }

    /// An sshd with a host key of `key_type` and extra `sshd_config` lines.
    pub(crate) fn start_with(key_type: &str, extra_config: &str) -> Sshd {
        Sshd::start_config(key_type, &format!("Subsystem sftp internal-sftp\n{extra_config}"))
    }

    /// A device that offers only a shell: no sftp subsystem, and every session runs bash
    /// whatever it asks for.
    pub(crate) fn start_shell_only() -> Sshd {
        Sshd::start_config("ed25519", "ForceCommand /bin/bash\n")
    }

    fn start_config(key_type: &str, extra_config: &str) -> Sshd {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(sshd.exists(), "/usr/sbin/sshd not found: {SETUP_HINT}");
        let id = Command::new("id").arg(TARGET_USER).output().unwrap();
        assert!(id.status.success(), "local user {TARGET_USER} missing: {SETUP_HINT}");
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let hk = dir.path().join("host_key");
        keygen_type(&hk, key_type);
        let host_key_line = std::fs::read_to_string(hk.with_extension("pub")).unwrap();
        let host_key_line = host_key_line.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        let port = free_port();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}/sshd.pid\n\
                 PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM yes\nStrictModes no\n\
                 MaxStartups 100\nMaxSessions 50\n{extra_config}",
                hk.display(),
                dir.path().display()
            ),
        )
        .unwrap();
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start sshd");
        wait_for("sshd to listen", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Sshd { child, port, host_key_line, _dir: dir }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A gateway with its own data directory, person `alice` (key + password) and an SSH key.
pub(crate) struct Gateway {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub ssh_port: u16,
    pub web_port: u16,
    pub key: PathBuf,
    pub log: Arc<Mutex<String>>,
}

pub(crate) const ALICE_PASSWORD: &str = "alice-pw-7";

impl Gateway {
    /// A new data directory with `alice` (role user). Not started yet.
    pub(crate) fn new() -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("alice_key");
        keygen(&key);
        let g =
            Gateway { dir, child: None, ssh_port: 0, web_port: 0, key, log: Default::default() };
        g.kw_ok(&["init"]);
        let pubkey = g.key.with_extension("pub");
        g.kw_stdin_ok(
            &[
                "user",
                "add",
                "alice",
                "--role",
                "user",
                "--ssh-key",
                pubkey.to_str().unwrap(),
                "--password-stdin",
            ],
            ALICE_PASSWORD,
        );
        g
    }

    pub(crate) fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) fn kw(&self, args: &[&str]) -> Output {
        self.kw_stdin(args, "")
    }

    pub(crate) fn kw_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keepwatch"))
            .arg("--data-dir")
            .arg(self.data())
            .args(args)
            .env("KEEPWATCH_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    pub(crate) fn kw_ok(&self, args: &[&str]) -> String {
        let out = self.kw(args);
        assert!(
            out.status.success(),
            "keepwatch {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub(crate) fn kw_stdin_ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.kw_stdin(args, stdin);
        assert!(
            out.status.success(),
            "keepwatch {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub(crate) fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.kw_ok(args)).unwrap()
    }

    /// Adds target `name` → the sshd with the test login's password, host key pinned, and
    /// grants it to alice.
    pub(crate) fn add_target(&self, name: &str, sshd: &Sshd) {
        self.add_target_at(name, sshd.port, TARGET_PASSWORD, &["--host-key", &sshd.host_key_line]);
        self.kw_ok(&["grant", "alice", name]);
    }

    pub(crate) fn add_target_at(&self, name: &str, port: u16, password: &str, extra: &[&str]) {
        let port = port.to_string();
        let mut args = vec![
            "target",
            "add",
            name,
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--login",
            TARGET_USER,
            "--password-stdin",
        ];
        args.extend_from_slice(extra);
        self.kw_stdin_ok(&args, password);
    }

    pub(crate) fn set_config(&self, from: &str, to: &str) {
        let path = self.data().join("keepwatch.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "keepwatch.toml has no {from:?}");
        std::fs::write(&path, text.replace(from, to)).unwrap();
    }

    pub(crate) fn start(&mut self) {
        assert!(self.child.is_none(), "gateway already running");
        let mut child = Command::new(env!("CARGO_BIN_EXE_keepwatch"))
            .arg("--data-dir")
            .arg(self.data())
            .args(["run", "--ssh-listen", "127.0.0.1:0", "--web-listen", "127.0.0.1:0"])
            .env("KEEPWATCH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = self.log.clone();
        log.lock().unwrap().clear();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        self.child = Some(child);
        let port_of = |what: &str| {
            wait_for(&format!("the gateway's {what}"), Duration::from_secs(30), || {
                let log = self.log.lock().unwrap();
                let line = log.lines().find(|l| l.contains(what))?;
                line.rsplit(':').next()?.trim().parse().ok()
            })
        };
        self.ssh_port = port_of("SSH gateway listening on");
        self.web_port = port_of("web listening on");
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("gateway not running").id()
    }

    /// SIGTERM, then waits for the exit.
    pub(crate) fn stop(&mut self) -> ExitStatus {
        let st = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().unwrap();
        assert!(st.success());
        let mut child = self.child.take().unwrap();
        wait_for("the gateway to exit", Duration::from_secs(30), || child.try_wait().unwrap())
    }

    pub(crate) fn kill9(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// The OpenSSH client options every test client uses: alice's key only, no prompts,
    /// no known-hosts file.
    pub(crate) fn client_opts(&self) -> Vec<String> {
        let opts = [
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            "LogLevel=ERROR",
            "BatchMode=yes",
            "ConnectTimeout=10",
            "IdentitiesOnly=yes",
        ];
        let mut v: Vec<String> =
            opts.iter().flat_map(|o| ["-o".to_owned(), o.to_string()]).collect();
        v.extend(["-i".to_owned(), self.key.display().to_string()]);
        v
    }

    /// `ssh` to the gateway as `login`, with alice's key, non-interactive.
    pub(crate) fn ssh(&self, login: &str) -> Command {
        let mut c = Command::new("ssh");
        c.args(self.client_opts())
            .args(["-p", &self.ssh_port.to_string()])
            .arg(format!("{login}@127.0.0.1"))
            .stdin(Stdio::null());
        c
    }

    pub(crate) fn sessions(&self) -> Vec<serde_json::Value> {
        self.json(&["sessions", "--json"]).as_array().unwrap().clone()
    }

    /// The sessions once `n` exist and none is active any more: the gateway seals a session
    /// right after the client leaves, which can be a moment after `ssh` has exited.
    pub(crate) fn sealed_sessions(&self, n: usize) -> Vec<serde_json::Value> {
        wait_for(&format!("{n} sealed session(s)"), Duration::from_secs(20), || {
            let s = self.sessions();
            (s.len() == n && s.iter().all(|s| s["status"] != "active")).then_some(s)
        })
    }

    /// Every event of a sealed session's recording, decoded from its file.
    pub(crate) fn events(&self, id: &str) -> Vec<keepwatch_recording::Event> {
        let path = self.data().join("recordings").join(format!("{id}.kwr"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        keepwatch_recording::read_events(&bytes).unwrap().into_iter().map(|e| e.event).collect()
    }

    /// The concatenated output ("o") events of an asciicast export.
    pub(crate) fn exported_output(&self, id: &str) -> String {
        let cast = self.kw_ok(&["export", id, "--format", "asciicast"]);
        let mut lines = cast.lines();
        let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(header["version"], 2);
        lines
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e[1] == "o")
            .map(|e| e[2].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A running gateway with the target `web01` (a fresh sshd) granted to alice.
pub(crate) fn gateway_with_web01() -> (Sshd, Gateway) {
    let sshd = Sshd::start();
    let mut gw = Gateway::new();
    gw.add_target("web01", &sshd);
    gw.start();
    (sshd, gw)
}

/// An interactive `ssh -tt` session whose output is collected as it arrives.
pub(crate) struct Interactive {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
}

fn collect(mut r: impl Read + Send + 'static, buf: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
}

impl Interactive {
    pub(crate) fn start(mut cmd: Command) -> Interactive {
        cmd.arg("-tt").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take();
        let out: Arc<Mutex<Vec<u8>>> = Default::default();
        let err: Arc<Mutex<Vec<u8>>> = Default::default();
        collect(child.stdout.take().unwrap(), out.clone());
        collect(child.stderr.take().unwrap(), err.clone());
        Interactive { child, stdin, out, err }
    }

    /// An interactive session as `login` through the gateway, once the shell drew its first
    /// prompt (keys typed before it are not attributed to a command).
    pub(crate) fn at_prompt(gw: &Gateway, login: &str) -> Interactive {
        let s = Interactive::start(gw.ssh(login));
        s.wait_output("$ ");
        s
    }

    pub(crate) fn send(&mut self, text: &str) {
        let s = self.stdin.as_mut().unwrap();
        s.write_all(text.as_bytes()).unwrap();
        s.flush().unwrap();
    }

    pub(crate) fn output(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    pub(crate) fn wait_output(&self, needle: &str) {
        self.wait_output_times(needle, 1);
    }

    /// Waits until `needle` has appeared `n` times in the output.
    pub(crate) fn wait_output_times(&self, needle: &str, n: usize) {
        wait_for(
            &format!("{needle:?} {n} time(s) in the session output"),
            Duration::from_secs(20),
            || (self.output().matches(needle).count() >= n).then_some(()),
        );
    }

    /// Waits for ssh to exit; returns its status, stdout bytes and stderr.
    pub(crate) fn finish(mut self) -> (ExitStatus, Vec<u8>, String) {
        let st =
            wait_for("ssh to exit", Duration::from_secs(30), || self.child.try_wait().unwrap());
        drop(self.stdin.take());
        // The reader threads end at EOF, right after the process exits.
        wait_for("ssh output to drain", Duration::from_secs(5), || {
            Arc::strong_count(&self.out).eq(&1).then_some(())
        });
        let out = self.out.lock().unwrap().clone();
        (st, out, self.stderr())
    }
}
