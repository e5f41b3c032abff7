//! [`Garage`]: a throwaway S3-compatible server (Garage, single node) with its own data
//! directory and ports, a bucket and a key, for tests of the segmented archive.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{GATEWAY_TIMEOUT, free_port, wait_for};

const INSTALL_HINT: &str = "Garage (an S3-compatible server) is not installed: run `cargo install --locked garage` (about 9 minutes), or `bash scripts/test.sh`, which does";

pub(crate) const BUCKET: &str = "kw-recordings";
pub(crate) const REGION: &str = "garage";

/// A running Garage; killed on drop.
pub(crate) struct Garage {
    bin: PathBuf,
    config: PathBuf,
    child: Option<Child>,
    pub(crate) s3_port: u16,
    pub(crate) key_id: String,
    pub(crate) secret: String,
    _dir: tempfile::TempDir,
}

/// The `garage` binary: on `PATH`, or where `cargo install` puts it.
fn binary() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("garage")).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        candidates.push(Path::new(&home).join("bin/garage"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".cargo/bin/garage"));
    }
    candidates.push("/opt/garage/bin/garage".into());
    candidates.into_iter().find(|p| p.is_file()).unwrap_or_else(|| panic!("{INSTALL_HINT}"))
}

impl Garage {
    /// Starts a single-node Garage with bucket [`BUCKET`] and a key allowed on it.
    pub(crate) fn start() -> Garage {
        let bin = binary();
        let dir = tempfile::tempdir().unwrap();
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).unwrap();
        let rpc_secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let config = dir.path().join("garage.toml");
        let d = dir.path().display();
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{d}/meta"
data_dir = "{d}/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
"#
            ),
        )
        .unwrap();
        let mut g = Garage {
            bin,
            config,
            child: None,
            s3_port: s3,
            key_id: String::new(),
            secret: String::new(),
            _dir: dir,
        };
        g.run_server();
        wait_for("garage to answer", GATEWAY_TIMEOUT, || {
            g.cli(&["status"]).status.success().then_some(())
        });
        let node = g.ok(&["node", "id", "-q"]).trim().to_owned();
        let node = node.split('@').next().unwrap().to_owned();
        g.ok(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        g.ok(&["layout", "apply", "--version", "1"]);
        g.ok(&["bucket", "create", BUCKET]);
        let key = g.ok(&["key", "create", "keepwatch-test"]);
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_owned()))
                .unwrap_or_else(|| panic!("no {name:?} in `garage key create`: {key}"))
        };
        g.key_id = field("Key ID:");
        g.secret = field("Secret key:");
        g.ok(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            BUCKET,
            "--key",
            "keepwatch-test",
        ]);
        g.wait_serving();
        g
    }

    fn run_server(&mut self) {
        let log = std::fs::File::create(self.config.with_extension("log")).unwrap();
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "garage {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the S3 port takes connections.
    fn wait_serving(&self) {
        let addr = format!("127.0.0.1:{}", self.s3_port);
        wait_for("garage's S3 port", GATEWAY_TIMEOUT, || std::net::TcpStream::connect(&addr).ok());
    }

    /// The S3 endpoint.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The archive as the gateway configured for it sees it.
    pub(crate) fn archive(&self) -> keepwatch_store::Archive {
        let s3 = keepwatch_store::S3Options {
            endpoint: Some(self.endpoint()),
            region: Some(REGION.into()),
            allow_http: true,
            access_key: Some((self.key_id.clone(), self.secret.clone())),
        };
        keepwatch_store::Archive::from_url(&format!("s3://{BUCKET}/kw"), &s3).unwrap()
    }

    /// Writes `bytes` over the object at `key` (under the gateway's prefix) with a plain
    /// PUT, as anyone holding the bucket's key can.
    pub(crate) fn overwrite(&self, key: &str, bytes: Vec<u8>) {
        use object_store::ObjectStoreExt as _;
        let store = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_endpoint(self.endpoint())
            .with_region(REGION)
            .with_allow_http(true)
            .with_access_key_id(&self.key_id)
            .with_secret_access_key(&self.secret)
            .build()
            .unwrap();
        let path = object_store::path::Path::from(format!("kw/{key}"));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(store.put(&path, bytes.into())).unwrap();
    }

    /// What `keepwatch` needs in its environment to reach the bucket.
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret.clone()),
        ]
    }

    /// Stops the server (an outage): its port refuses connections until [`Self::restart`].
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same data and ports.
    pub(crate) fn restart(&mut self) {
        assert!(self.child.is_none(), "garage is running");
        self.run_server();
        self.wait_serving();
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}
