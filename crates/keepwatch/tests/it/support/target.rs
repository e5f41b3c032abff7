//! The target side: the `sshd` the targets point at, and targets as `keepwatch target add`
//! gets them.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{SETUP_HINT, TARGET_PASSWORD, TARGET_USER, free_port, keygen, wait_for};

/// How the target `sshd` is set up.
#[derive(Debug, Clone)]
pub(crate) struct SshdConfig {
    key_type: &'static str,
    sftp: bool,
    extra: String,
}

impl Default for SshdConfig {
    /// An ed25519 host key, password logins, the sftp subsystem.
    fn default() -> Self {
        SshdConfig { key_type: "ed25519", sftp: true, extra: String::new() }
    }
}

impl SshdConfig {
    /// A device that offers only a shell: no sftp subsystem, and every session runs bash
    /// whatever it asks for.
    pub(crate) fn shell_only() -> Self {
        SshdConfig { sftp: false, extra: "ForceCommand /bin/bash\n".into(), ..Self::default() }
    }

    /// A host key of `kind` (`ssh-keygen -t`) instead of ed25519.
    pub(crate) fn host_key(mut self, kind: &'static str) -> Self {
        self.key_type = kind;
        self
    }

    /// Extra `sshd_config` lines.
    pub(crate) fn config(mut self, lines: &str) -> Self {
        self.extra.push_str(lines);
        self
    }
}

/// An OpenSSH server on a free loopback port, the target of the tests.
pub(crate) struct Sshd {
    child: Child,
    pub port: u16,
    pub host_key_line: String,
    _dir: tempfile::TempDir,
}

impl Sshd {
    pub(super) fn start(cfg: &SshdConfig) -> Sshd {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(sshd.exists(), "/usr/sbin/sshd not found: {SETUP_HINT}");
        let id = Command::new("id").arg(TARGET_USER).output().unwrap();
        assert!(id.status.success(), "local user {TARGET_USER} missing: {SETUP_HINT}");
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let hk = dir.path().join("host_key");
        keygen(&hk, cfg.key_type);
        let host_key_line = std::fs::read_to_string(hk.with_extension("pub")).unwrap();
        let host_key_line = host_key_line.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        let port = free_port();
        let config = dir.path().join("sshd_config");
        let sftp = if cfg.sftp { "Subsystem sftp internal-sftp\n" } else { "" };
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}/sshd.pid\n\
                 PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM yes\nStrictModes no\n\
                 MaxStartups 100\nMaxSessions 50\n{sftp}{}",
                hk.display(),
                dir.path().display(),
                cfg.extra,
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
        wait_for("sshd to listen", Duration::from_secs(20), || {
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

/// Which host key a target is added with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostKey {
    /// The sshd's own key, pinned (`--host-key`).
    Pinned,
    /// `--trust-on-first-use`.
    TrustOnFirstUse,
    /// A valid key that is not the sshd's (alice's public key), pinned: a mismatch.
    NotTheTargets,
}

/// Where a target points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reach {
    Sshd,
    /// A loopback port nothing listens on (port 1: privileged, never a test's).
    ClosedPort,
}

/// A target as `keepwatch target add` gets it; by default the env's sshd with the test
/// login's password, its host key pinned, granted to alice.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(super) reach: Reach,
    pub(super) password: String,
    pub(super) host_key: HostKey,
    pub(super) args: Vec<String>,
    pub(super) granted: bool,
}

impl Target {
    pub(crate) fn new() -> Target {
        Target {
            reach: Reach::Sshd,
            password: TARGET_PASSWORD.into(),
            host_key: HostKey::Pinned,
            args: Vec::new(),
            granted: true,
        }
    }

    /// A closed loopback port, with `--trust-on-first-use` (there is no key to pin).
    pub(crate) fn unreachable() -> Target {
        Target { reach: Reach::ClosedPort, host_key: HostKey::TrustOnFirstUse, ..Target::new() }
    }

    /// The vaulted password (default: the test login's).
    pub(crate) fn password(mut self, password: &str) -> Target {
        self.password = password.into();
        self
    }

    pub(crate) fn host_key(mut self, key: HostKey) -> Target {
        self.host_key = key;
        self
    }

    /// More `keepwatch target add` arguments (`--kex ...`, `--on-recording-failure ...`).
    pub(crate) fn args(mut self, args: &[&str]) -> Target {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Added but not granted to alice.
    pub(crate) fn not_granted(mut self) -> Target {
        self.granted = false;
        self
    }
}
