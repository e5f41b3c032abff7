//! [`TestCa`]: a throwaway CA and a certificate it signed for 127.0.0.1, made with `openssl`,
//! for the servers the tests start with TLS (PostgreSQL targets, rsyslogd, a webhook
//! receiver).

use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) struct TestCa {
    dir: PathBuf,
}

impl TestCa {
    /// Writes `ca.crt` (and `ca.key`), `server.crt` and `server.key` into `dir`.
    pub(crate) fn new(dir: &Path, name: &str) -> TestCa {
        let ssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .unwrap_or_else(|e| panic!("openssl: {e} (scripts/test.sh installs it)"));
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let subject = format!("/CN={name}");
        ssl(&[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", &subject],
        ]
        .concat());
        ssl(&[
            &["req"][..],
            &ec,
            &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
        ]
        .concat());
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
        ssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        TestCa { dir: dir.to_owned() }
    }

    pub(crate) fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    pub(crate) fn cert(&self) -> PathBuf {
        self.dir.join("server.crt")
    }

    pub(crate) fn key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
}
