//! [`Rsyslog`]: Debian's rsyslogd as a throwaway syslog receiver, with its own config, work
//! directory and ports: UDP (imudp), TCP and TLS (imtcp, the gtls driver, a CA and a
//! certificate for 127.0.0.1 made with openssl), each writing the raw messages it receives
//! to a file of its own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{GATEWAY_TIMEOUT, TestCa, free_port, wait_for};

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";
const INSTALL_HINT: &str = "rsyslogd (with its gnutls driver) is missing: `bash scripts/test.sh` installs it (apt-get install rsyslog rsyslog-gnutls)";

pub(crate) struct Rsyslog {
    dir: tempfile::TempDir,
    child: Child,
    pub(crate) udp_port: u16,
    pub(crate) tcp_port: u16,
    pub(crate) tls_port: u16,
}

/// What arrived over one transport.
#[derive(Clone, Copy)]
pub(crate) enum Received {
    Udp,
    Tcp,
    Tls,
}

impl Rsyslog {
    pub(crate) fn start() -> Rsyslog {
        assert!(Path::new(RSYSLOGD).exists(), "{INSTALL_HINT}");
        let gtls = std::fs::read_dir("/usr/lib")
            .into_iter()
            .flatten()
            .flatten()
            .any(|d| d.path().join("rsyslog/lmnsd_gtls.so").exists());
        assert!(gtls, "{INSTALL_HINT}");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let ca = TestCa::new(root, "kw-syslog-ca");
        std::fs::create_dir(root.join("work")).unwrap();
        let (udp_port, tcp_port, tls_port) = (free_port(), free_port(), free_port());
        let p = |name: &str| root.join(name).display().to_string();
        let config = format!(
            r#"global(
  workDirectory="{work}"
  maxMessageSize="64k"
  defaultNetstreamDriverCAFile="{ca}"
  defaultNetstreamDriverCertFile="{cert}"
  defaultNetstreamDriverKeyFile="{key}"
)
module(load="imudp")
module(load="imtcp" maxSessions="16")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="udp") {{ action(type="omfile" file="{udp}" template="raw") }}
ruleset(name="tcp") {{ action(type="omfile" file="{tcp}" template="raw") }}
ruleset(name="tls") {{ action(type="omfile" file="{tls}" template="raw") }}
input(type="imudp" address="127.0.0.1" port="{udp_port}" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="{tcp_port}" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="{tls_port}" ruleset="tls"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
"#,
            work = p("work"),
            ca = ca.ca().display(),
            cert = ca.cert().display(),
            key = ca.key().display(),
            udp = p("udp.log"),
            tcp = p("tcp.log"),
            tls = p("tls.log"),
        );
        std::fs::write(root.join("rsyslog.conf"), config).unwrap();
        let check = Command::new(RSYSLOGD)
            .args(["-N1", "-f"])
            .arg(root.join("rsyslog.conf"))
            .output()
            .unwrap_or_else(|e| panic!("{INSTALL_HINT} ({e})"));
        assert!(
            check.status.success(),
            "rsyslogd refuses the test's config: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = spawn(root);
        let r = Rsyslog { dir, child, udp_port, tcp_port, tls_port };
        r.wait_listening();
        r
    }

    fn wait_listening(&self) {
        wait_for("rsyslogd's listeners", GATEWAY_TIMEOUT, || {
            let tcp_up = |port| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            let up = tcp_up(self.tcp_port) && tcp_up(self.tls_port) && udp_bound(self.udp_port);
            up.then_some(())
        });
    }

    /// Kills rsyslogd (the receiver goes down; its files stay).
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts rsyslogd again on the same ports and files.
    pub(crate) fn restart(&mut self) {
        self.child = spawn(self.dir.path());
        self.wait_listening();
    }

    pub(crate) fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    fn file(&self, r: Received) -> PathBuf {
        self.dir.path().join(match r {
            Received::Udp => "udp.log",
            Received::Tcp => "tcp.log",
            Received::Tls => "tls.log",
        })
    }

    /// Every raw message received over `r` so far.
    pub(crate) fn messages(&self, r: Received) -> Vec<String> {
        std::fs::read_to_string(self.file(r))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits until a message over `r` satisfies `f`, and returns it.
    pub(crate) fn wait_message(&self, r: Received, what: &str, f: impl Fn(&str) -> bool) -> String {
        wait_for(what, GATEWAY_TIMEOUT, || self.messages(r).into_iter().find(|m| f(m)))
    }
}

fn spawn(root: &Path) -> Child {
    Command::new(RSYSLOGD)
        .arg("-n")
        .arg("-f")
        .arg(root.join("rsyslog.conf"))
        .arg("-i")
        .arg(root.join("rsyslogd.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{INSTALL_HINT} ({e})"))
}

/// Whether something listens on UDP port `port` (from /proc/net/udp: the port in hex).
fn udp_bound(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let needle = format!(":{port:04X} ");
    table
        .lines()
        .skip(1)
        .any(|l| l.split_whitespace().nth(1).is_some_and(|a| format!("{a} ").ends_with(&needle)))
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
