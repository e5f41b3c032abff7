//! Issue 11: behind HAProxy with the PROXY protocol (v1 and v2), the recorded client address
//! is the person's, not the balancer's; connections that do not come through a trusted
//! balancer are refused.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// A real HAProxy in TCP mode in front of the gateway's SSH port: one frontend sends
/// PROXY v2, the other v1.
struct Haproxy {
    child: Child,
    v2_port: u16,
    v1_port: u16,
    web_port: u16,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    fn start(gateway_port: u16, web_port: u16) -> Haproxy {
        let bin = std::path::Path::new("/usr/sbin/haproxy");
        assert!(
            bin.exists(),
            "/usr/sbin/haproxy not found: run `bash scripts/test.sh` once, which installs it (apt-get install haproxy)"
        );
        let dir = tempfile::tempdir().unwrap();
        let (v2_port, v1_port, lb_web) = (free_port(), free_port(), free_port());
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(
            &cfg,
            format!(
                "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
                 frontend ssh_v2\n  bind 127.0.0.1:{v2_port}\n  default_backend gw_v2\n\
                 backend gw_v2\n  server gw 127.0.0.1:{gateway_port} send-proxy-v2\n\
                 frontend ssh_v1\n  bind 127.0.0.1:{v1_port}\n  default_backend gw_v1\n\
                 backend gw_v1\n  server gw 127.0.0.1:{gateway_port} send-proxy\n\
                 frontend web\n  bind 127.0.0.1:{lb_web}\n  default_backend gw_web\n\
                 backend gw_web\n  server gw 127.0.0.1:{web_port} send-proxy-v2\n"
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for port in [v2_port, v1_port, lb_web] {
            wait_for("haproxy to listen", Duration::from_secs(20), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).ok()
            });
        }
        Haproxy { child, v2_port, v1_port, web_port: lb_web, _dir: dir }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ssh` to `port` from the local address `from` (so the person's address differs from the
/// balancer's, 127.0.0.1).
fn ssh_via(env: &TestEnv, port: u16, from: &str, command: &str) -> std::process::Output {
    Command::new("ssh")
        .args(env.client_opts())
        .args(["-b", from, "-p", &port.to_string(), "alice@web01@127.0.0.1", command])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn the_person_behind_haproxy_is_recorded_and_strangers_are_refused() {
    let env = TestEnv::new()
        .target("web01")
        .config("ssh = false", "ssh = true")
        .config("web = false", "web = true")
        .config("trusted = [\"127.0.0.1\", \"::1\"]", "trusted = [\"127.0.0.1\"]")
        .start();
    let lb = Haproxy::start(env.ssh_port(), env.web_port());
    let v2 = ssh_via(&env, lb.v2_port, "127.0.0.2", "echo via-v2-$((1+1))");
    assert_eq!(String::from_utf8_lossy(&v2.stdout), "via-v2-2\n", "{v2:?}");
    let v1 = ssh_via(&env, lb.v1_port, "127.0.0.3", "echo via-v1-$((1+2))");
    assert_eq!(String::from_utf8_lossy(&v1.stdout), "via-v1-3\n", "{v1:?}");
    let sessions = env.sealed_sessions(2);
    let mut addrs: Vec<String> = sessions
        .iter()
        .map(|s| s["client_addr"].as_str().unwrap().split(':').next().unwrap().to_owned())
        .collect();
    addrs.sort();
    assert_eq!(addrs, ["127.0.0.2", "127.0.0.3"], "the people's addresses, not the balancer's");
    let logins = env.json(&["audit", "--action", "login_succeeded", "--json"]).to_string();
    assert!(logins.contains("127.0.0.2") && logins.contains("127.0.0.3"), "{logins}");

    // Straight to the gateway: from the trusted balancer's address but without a header, and
    // from an address that is no balancer.
    let direct = env.ssh("alice@web01").arg("echo direct").output().unwrap();
    assert!(!direct.status.success(), "a connection without a header was served");
    let stranger = ssh_via(&env, env.ssh_port(), "127.0.0.4", "echo stranger");
    assert!(!stranger.status.success(), "an untrusted address was served");
    assert_eq!(env.sessions().len(), 2);
    assert!(env.log().contains("not a trusted balancer"), "{}", env.log());

    // The console too: a login through the balancer is audited with the person's address.
    let login = Command::new("curl")
        .args(["-s", "--interface", "127.0.0.5", "-H", "content-type: application/json"])
        .args(["-d", r#"{"name":"alice","password":"wrong"}"#])
        .arg(format!("http://127.0.0.1:{}/api/v1/login", lb.web_port))
        .output()
        .expect("curl missing: run `bash scripts/test.sh` once, which installs it");
    assert!(String::from_utf8_lossy(&login.stdout).contains("wrong name or password"), "{login:?}");
    let refused = env.json(&["audit", "--action", "login_refused", "--json"]).to_string();
    assert!(refused.contains("127.0.0.5"), "{refused}");
}
