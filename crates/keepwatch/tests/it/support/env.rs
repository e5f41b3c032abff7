//! [`TestEnv`]: a running gateway with its data directory, built by [`TestEnvBuilder`].

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use keepwatch_store::{BlobStore, IndexScope, IndexState, IndexStatus, Store};

use super::garage::{BUCKET, Garage, REGION};
use super::postgres::TestPostgres;
use super::target::Reach;
use super::{
    ALICE_PASSWORD, GATEWAY_TIMEOUT, HostKey, INDEX_TIMEOUT, Interactive, Sshd, SshdConfig,
    TARGET_USER, Target, keygen, wait_for,
};

/// Builds a [`TestEnv`]; an example is in the docs of `support`.
#[derive(Default)]
pub(crate) struct TestEnvBuilder {
    sshd: Option<SshdConfig>,
    targets: Vec<(String, Target)>,
    grants: Vec<Vec<String>>,
    people: Vec<[String; 3]>,
    config: Vec<(String, String)>,
    postgres: bool,
    s3: bool,
}

impl TestEnvBuilder {
    /// The target sshd's setup (default [`SshdConfig::default`]). The sshd is started when
    /// a target needs it or when this is called.
    pub(crate) fn sshd(mut self, cfg: SshdConfig) -> Self {
        self.sshd = Some(cfg);
        self
    }

    /// Target `name`: the sshd, pinned, granted to alice.
    pub(crate) fn target(self, name: &str) -> Self {
        self.target_with(name, Target::new())
    }

    pub(crate) fn target_with(mut self, name: &str, target: Target) -> Self {
        self.targets.push((name.into(), target));
        self
    }

    /// `keepwatch grant PERSON TARGET OPTIONS...` after the targets are added (it replaces
    /// the default grant's policy).
    pub(crate) fn grant_with(mut self, person: &str, target: &str, options: &[&str]) -> Self {
        let mut args = vec!["grant".to_owned(), person.into(), target.into()];
        args.extend(options.iter().map(|o| o.to_string()));
        self.grants.push(args);
        self
    }

    /// Another person with a password (alice, role user, is always there).
    pub(crate) fn person(mut self, name: &str, role: &str, password: &str) -> Self {
        self.people.push([name.into(), role.into(), password.into()]);
        self
    }

    /// Recordings archived in a throwaway Garage (its own data directory and ports, started
    /// now): `[storage] recordings` points at its bucket, and every `keepwatch` command gets
    /// its key. Fails with how to install Garage when it is missing.
    pub(crate) fn s3(mut self) -> Self {
        self.s3 = true;
        self
    }

    /// Replaces `from` by `to` in `keepwatch.toml` (which must contain `from`).
    pub(crate) fn config(mut self, from: &str, to: &str) -> Self {
        self.config.push((from.into(), to.into()));
        self
    }

    /// Metadata in a PostgreSQL database of this test's own (`init --database URL`, which
    /// writes `[store] database`), instead of SQLite in the data directory.
    pub(crate) fn postgres(mut self) -> Self {
        self.postgres = true;
        self
    }

    /// The data directory, set up, and the sshd; the gateway not started yet.
    pub(crate) fn build(self) -> TestEnv {
        let needs_sshd =
            self.sshd.is_some() || self.targets.iter().any(|(_, t)| t.reach == Reach::Sshd);
        let sshd = needs_sshd.then(|| Sshd::start(&self.sshd.unwrap_or_default()));
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("alice_key");
        keygen(&key, "ed25519");
        let postgres = self.postgres.then(TestPostgres::create);
        let garage = self.s3.then(Garage::start);
        let mut config = self.config;
        if let Some(g) = &garage {
            let storage = format!("recordings = \"s3://{BUCKET}/kw\"\n",);
            config.insert(0, ("recordings = \"\"\n".into(), storage));
            config
                .insert(0, ("endpoint = \"\"".into(), format!("endpoint = \"{}\"", g.endpoint())));
            config.insert(0, ("region = \"\"".into(), format!("region = \"{REGION}\"")));
            config.insert(0, ("allow_http = false".into(), "allow_http = true".into()));
        }
        let postgres_url = postgres.as_ref().map(|pg| pg.url.clone());
        let env = TestEnv {
            env: garage.iter().flat_map(Garage::env).collect(),
            postgres_url,
            garage,
            child: None,
            ssh_port: 0,
            web_port: 0,
            pg_port: 0,
            log: Default::default(),
            key,
            store: OnceLock::new(),
            sshd,
            dir,
            postgres,
        };
        match &env.postgres {
            Some(pg) => env.kw_ok(&["init", "--database", &pg.url]),
            None => env.kw_ok(&["init"]),
        };
        let pubkey = env.key.with_extension("pub");
        let alice = ["user", "add", "alice", "--role", "user", "--password-stdin", "--ssh-key"];
        env.kw_stdin_ok(&[&alice[..], &[pubkey.to_str().unwrap()]].concat(), ALICE_PASSWORD);
        for (from, to) in &config {
            let path = env.data().join("keepwatch.toml");
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.contains(from.as_str()), "keepwatch.toml has no {from:?}");
            std::fs::write(&path, text.replace(from.as_str(), to)).unwrap();
        }
        for (name, t) in &self.targets {
            env.add_target(name, t);
        }
        for grant in &self.grants {
            let args: Vec<&str> = grant.iter().map(String::as_str).collect();
            env.kw_ok(&args);
        }
        for [name, role, password] in &self.people {
            env.kw_stdin_ok(
                &["user", "add", name, "--role", role, "--password-stdin"],
                &format!("{password}\n"),
            );
        }
        env
    }

    /// [`Self::build`], then the gateway started.
    pub(crate) fn start(self) -> TestEnv {
        let mut env = self.build();
        env.start();
        env
    }
}

/// A gateway (`keepwatch run`) with its own data directory, person `alice` (role user, an
/// SSH key and a password), the targets it was built with and the sshd they point at.
pub(crate) struct TestEnv {
    child: Option<Child>,
    ssh_port: u16,
    web_port: u16,
    pg_port: u16,
    log: Arc<Mutex<String>>,
    key: PathBuf,
    /// The gateway's store, opened in this process on first use: what the index waits read.
    store: OnceLock<StoreView>,
    sshd: Option<Sshd>,
    /// The S3 server recordings are archived in, for `.s3()` environments.
    garage: Option<Garage>,
    dir: tempfile::TempDir,
    /// The gateway's database when it is PostgreSQL; dropped after the gateway is stopped.
    postgres: Option<TestPostgres>,
    /// The database URL when it is PostgreSQL (a [`TestEnv::peer`] shares it, not owns it).
    postgres_url: Option<String>,
    /// What every `keepwatch` process gets in its environment (the bucket's key).
    env: Vec<(String, String)>,
}

/// The gateway's database and recordings, read from the test.
struct StoreView {
    rt: tokio::runtime::Runtime,
    store: Store,
    blobs: BlobStore,
}

impl Drop for StoreView {
    fn drop(&mut self) {
        self.rt.block_on(self.store.close());
    }
}

impl TestEnv {
    /// A builder; `new` because a test reads `TestEnv::new().target("web01").start()`.
    #[expect(clippy::new_ret_no_self, reason = "the builder of TestEnv")]
    pub(crate) fn new() -> TestEnvBuilder {
        TestEnvBuilder::default()
    }

    /// The temp directory the data directory and alice's key are in.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Alice's private key.
    pub(crate) fn key(&self) -> &Path {
        &self.key
    }

    pub(crate) fn sshd(&self) -> &Sshd {
        self.sshd.as_ref().expect("this env has no sshd (no target needed one)")
    }

    pub(crate) fn ssh_port(&self) -> u16 {
        self.ssh_port
    }

    /// Where the gateway takes PostgreSQL clients.
    pub(crate) fn pg_port(&self) -> u16 {
        self.pg_port
    }

    pub(crate) fn web_port(&self) -> u16 {
        self.web_port
    }

    /// The S3 server of an `.s3()` environment.
    pub(crate) fn garage(&mut self) -> &mut Garage {
        self.garage.as_mut().expect("this env has no S3 archive (build it with .s3())")
    }

    /// The S3 server of an `.s3()` environment, to look at.
    pub(crate) fn garage_ref(&self) -> &Garage {
        self.garage.as_ref().expect("this env has no S3 archive (build it with .s3())")
    }

    /// The archive of an `.s3()` environment, as the gateway sees it.
    pub(crate) fn archive(&self) -> keepwatch_store::Archive {
        self.garage.as_ref().expect("this env has no S3 archive (build it with .s3())").archive()
    }

    /// What the gateway logged since it was last started.
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn add_target(&self, name: &str, t: &Target) {
        let port = match t.reach {
            Reach::Sshd => self.sshd().port,
            // Not a free ephemeral port: another test's sshd may take it meanwhile and
            // answer. Port 1 is privileged and never handed out by `free_port`.
            Reach::ClosedPort => 1,
        }
        .to_string();
        let key_line = match t.host_key {
            HostKey::Pinned => Some(self.sshd().host_key_line.clone()),
            HostKey::TrustOnFirstUse => None,
            HostKey::NotTheTargets => Some(
                std::fs::read_to_string(self.key.with_extension("pub")).unwrap().trim().to_owned(),
            ),
        };
        let mut args = vec!["target", "add", name, "--host", "127.0.0.1", "--port", &port];
        args.extend(["--login", TARGET_USER, "--password-stdin"]);
        match &key_line {
            Some(line) => args.extend(["--host-key", line]),
            None => args.push("--trust-on-first-use"),
        }
        args.extend(t.args.iter().map(String::as_str));
        self.kw_stdin_ok(&args, &t.password);
        if t.granted {
            self.kw_ok(&["grant", "alice", name]);
        }
    }

    pub(crate) fn kw(&self, args: &[&str]) -> Output {
        self.kw_stdin(args, "")
    }

    pub(crate) fn kw_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keepwatch"))
            .arg("--data-dir")
            .arg(self.data())
            .args(args)
            .envs(self.env.iter().cloned())
            .env("KEEPWATCH_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// `keepwatch ARGS`, which must succeed; its stdout.
    pub(crate) fn kw_ok(&self, args: &[&str]) -> String {
        self.kw(args).assert_ok(args)
    }

    /// `keepwatch ARGS` with `stdin`, which must succeed; its stdout.
    pub(crate) fn kw_stdin_ok(&self, args: &[&str], stdin: &str) -> String {
        self.kw_stdin(args, stdin).assert_ok(args)
    }

    /// `keepwatch ARGS` as JSON (it must succeed).
    pub(crate) fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.kw_ok(args)).unwrap()
    }

    /// Starts `keepwatch run` on free ports (again after [`Self::stop`] or [`Self::kill9`]).
    pub(crate) fn start(&mut self) {
        assert!(self.child.is_none(), "gateway already running");
        let mut child = self.run_command().spawn().unwrap();
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
            wait_for(&format!("the gateway's {what}"), GATEWAY_TIMEOUT, || {
                let log = self.log.lock().unwrap();
                let line = log.lines().find(|l| l.contains(what))?;
                line.rsplit(':').next()?.trim().parse().ok()
            })
        };
        self.ssh_port = port_of("SSH gateway listening on");
        self.web_port = port_of("web listening on");
        self.pg_port = port_of("PostgreSQL gateway listening on");
        // The last line of startup: what tests read of it (the key's fingerprint) is in.
        wait_for("the gateway's signing key line", GATEWAY_TIMEOUT, || {
            self.log.lock().unwrap().contains("keepwatch: signing key").then_some(())
        });
    }

    /// `keepwatch run` on this data directory and free ports, its log to a pipe.
    pub(crate) fn run_command(&self) -> Command {
        let mut run = Command::new(env!("CARGO_BIN_EXE_keepwatch"));
        run.arg("--data-dir")
            .arg(self.data())
            .args(["run", "--ssh-listen", "127.0.0.1:0", "--web-listen", "127.0.0.1:0"])
            .args(["--pg-listen", "127.0.0.1:0"])
            .envs(self.env.iter().cloned())
            .env("KEEPWATCH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        run
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("gateway not running").id()
    }

    /// SIGTERM, then waits for the exit.
    pub(crate) fn stop(&mut self) -> ExitStatus {
        let st = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().unwrap();
        assert!(st.success());
        let mut child = self.child.take().unwrap();
        wait_for("the gateway to exit", GATEWAY_TIMEOUT, || child.try_wait().unwrap())
    }

    /// Waits up to `within` for the gateway to exit on its own.
    pub(crate) fn wait_exit(&mut self, within: std::time::Duration) -> ExitStatus {
        let mut child = self.child.take().expect("gateway not running");
        wait_for("the gateway to exit on its own", within, || child.try_wait().unwrap())
    }

    /// SIGKILL: a crash.
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

    /// An interactive `ssh -tt` session as `login`, right away (keys sent now arrive before
    /// the shell is up).
    pub(crate) fn interactive(&self, login: &str) -> Interactive {
        Interactive::start(self.ssh(login))
    }

    /// An interactive session as `login` once the shell drew its first prompt (keys typed
    /// before it are not attributed to a command).
    pub(crate) fn at_prompt(&self, login: &str) -> Interactive {
        let s = self.interactive(login);
        s.wait_output("$ ");
        s
    }

    pub(crate) fn sessions(&self) -> Vec<serde_json::Value> {
        self.json(&["sessions", "--json"]).as_array().unwrap().clone()
    }

    /// The sessions once `n` exist and none is active any more: the gateway seals a session
    /// right after the client leaves, which can be a moment after `ssh` has exited.
    pub(crate) fn sealed_sessions(&self, n: usize) -> Vec<serde_json::Value> {
        wait_for(&format!("{n} sealed session(s)"), GATEWAY_TIMEOUT, || {
            let s = self.sessions();
            (s.len() == n && s.iter().all(|s| s["status"] != "active")).then_some(s)
        })
    }

    /// The data key of session `id`'s recording (`None`: not encrypted).
    pub(crate) fn data_key(&self, id: &str) -> Option<keepwatch_store::DataKey> {
        let v = self.store();
        v.rt.block_on(v.store.recording_key(id.parse().unwrap())).unwrap()
    }

    /// The wrapped data key of session `id` as the store keeps it.
    pub(crate) fn wrapped_key(&self, id: &str) -> Option<keepwatch_store::WrappedKey> {
        let v = self.store();
        v.rt.block_on(v.store.data_key(id.parse().unwrap())).unwrap()
    }

    /// Every event of a sealed session's recording, decoded from its file.
    pub(crate) fn events(&self, id: &str) -> Vec<keepwatch_recording::Event> {
        let path = self.data().join("recordings").join(format!("{id}.kwr"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let key = self.data_key(id);
        keepwatch_recording::read_events(&bytes, key.as_ref())
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect()
    }

    /// The events recorded so far, live or sealed (a chunk still being written left out).
    pub(crate) fn recorded_events(&self, id: &str) -> Vec<keepwatch_recording::Event> {
        let spool = self.data().join("spool").join(format!("{id}.kwr"));
        let sealed = self.data().join("recordings").join(format!("{id}.kwr"));
        let Ok(bytes) = std::fs::read(&spool).or_else(|_| std::fs::read(&sealed)) else {
            return Vec::new();
        };
        let mut events = Vec::new();
        let _ =
            keepwatch_recording::RecordingTail::new(self.data_key(id)).push(&bytes, &mut events);
        events.into_iter().map(|e| e.event).collect()
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

    /// Waits until the recording of session `id` (its spool file while live) holds output
    /// containing `needle`: the recorder writes within one flush interval of the client
    /// seeing it.
    pub(crate) fn wait_recorded(&self, id: &str, needle: &str) {
        let spool = self.data().join("spool").join(format!("{id}.kwr"));
        let sealed = self.data().join("recordings").join(format!("{id}.kwr"));
        wait_for(&format!("{needle:?} in the recording of {id}"), GATEWAY_TIMEOUT, || {
            // The spool first: a recording only moves from there to the store.
            let bytes = std::fs::read(&spool).or_else(|_| std::fs::read(&sealed)).ok()?;
            let mut events = Vec::new();
            // A chunk still being written is left out, not an error.
            keepwatch_recording::RecordingTail::new(self.data_key(id))
                .push(&bytes, &mut events)
                .ok()?;
            let output: Vec<u8> = events
                .into_iter()
                .filter_map(|e| match e.event {
                    keepwatch_recording::Event::Output { data, .. }
                    | keepwatch_recording::Event::ExtOutput { data, .. } => Some(data),
                    _ => None,
                })
                .flatten()
                .collect();
            String::from_utf8_lossy(&output).contains(needle).then_some(())
        });
    }

    /// The PostgreSQL database this env owns ([`TestEnvBuilder::postgres`]).
    pub(crate) fn postgres(&self) -> &TestPostgres {
        self.postgres
            .as_ref()
            .expect("this env has no database of its own (build with .postgres())")
    }

    /// Whether the gateway's metadata is in PostgreSQL ([`TestEnvBuilder::postgres`]).
    pub(crate) fn on_postgres(&self) -> bool {
        self.postgres_url.is_some()
    }

    /// Another node of this env's cluster, not started: a data directory of its own (so a
    /// spool and a node name of its own) with this one's keys and keepwatch.toml, and the
    /// same PostgreSQL database, bucket and targets. Drop it before this env.
    pub(crate) fn peer(&self) -> TestEnv {
        let url =
            self.postgres_url.clone().expect("nodes share a database: build with .postgres()");
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        for name in
            ["keepwatch.toml", "signing.key", "signing.pub", "ssh_host_ed25519_key", "vault.key"]
        {
            std::fs::copy(self.data().join(name), data.join(name)).unwrap();
        }
        TestEnv {
            child: None,
            ssh_port: 0,
            web_port: 0,
            pg_port: 0,
            log: Default::default(),
            key: self.key.clone(),
            store: OnceLock::new(),
            sshd: None,
            garage: None,
            dir,
            postgres: None,
            postgres_url: Some(url),
            env: self.env.clone(),
        }
    }

    /// The gateway's database, as keepwatch.toml names it.
    fn database(&self) -> keepwatch_store::Database {
        match &self.postgres_url {
            Some(url) => keepwatch_store::Database::Postgres(url.clone()),
            None => keepwatch_store::Database::Sqlite(self.data().join("keepwatch.db")),
        }
    }

    /// Runs `statement` on the gateway's database behind keepwatch's back, as someone with
    /// write access to it could: to tamper with rows, or to write rows the way an older
    /// version did. Works whether or not the gateway is running. The statement is in the
    /// dialect of the env's database (see [`Self::on_postgres`]).
    pub(crate) fn sql(&self, statement: &str) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let run = sqlx::AssertSqlSafe(statement.to_owned());
        rt.block_on(async {
            use sqlx::{ConnectOptions, Connection};
            let done = match self.database() {
                keepwatch_store::Database::Postgres(url) => {
                    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                    sqlx::raw_sql(run).execute(&mut conn).await.map(|_| ())
                }
                keepwatch_store::Database::Sqlite(db) => {
                    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
                        .filename(&db)
                        .connect()
                        .await
                        .unwrap();
                    sqlx::raw_sql(run).execute(&mut conn).await.map(|_| ())
                }
            };
            done.unwrap_or_else(|e| panic!("{statement}: {e}"));
        });
    }

    fn store(&self) -> &StoreView {
        self.store.get_or_init(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let store = rt.block_on(Store::open(&self.database())).unwrap();
            // Encrypted recordings open with the data directory's vault key, as the CLI's do.
            let store = match std::fs::read_to_string(self.data().join("vault.key")) {
                Ok(hex) => {
                    store.with_kek(keepwatch_store::Kek::from_vault_key_hex(&hex, None).unwrap())
                }
                Err(_) => store,
            };
            let blobs = match &self.garage {
                None => BlobStore::local(&self.data()).unwrap(),
                Some(g) => BlobStore::new(&self.data(), g.archive()).unwrap(),
            };
            StoreView { rt, store, blobs }
        })
    }

    /// The index status of session `id`, from the store (`Store::index_status`, what
    /// `keepwatch index status` prints).
    pub(crate) fn index_status(&self, id: &str) -> IndexStatus {
        let v = self.store();
        let ids = [id.parse().unwrap()];
        let mut rows =
            v.rt.block_on(v.store.index_status(&v.blobs, IndexScope::Sessions(&ids))).unwrap();
        rows.remove(0)
    }

    /// Waits until the index of session `id` is complete: it was sealed and every event of
    /// its recording is indexed. Fails at once if indexing it failed.
    pub(crate) fn wait_indexed(&self, id: &str) -> IndexStatus {
        wait_for(&format!("session {id} to be indexed completely"), INDEX_TIMEOUT, || {
            let s = self.index_status(id);
            assert_ne!(s.state, IndexState::Error, "indexing {id} failed: {:?}", s.error);
            (s.state == IndexState::Complete).then_some(s)
        })
    }

    /// Waits until the indexer has read the whole recording of session `id` as it stands
    /// now (its spool file's length, while live), and stored what it found in it. A command
    /// still running at that point is not indexed yet; see [`Self::wait_recorded`] for
    /// output the client saw but the recorder has not written yet.
    pub(crate) fn wait_indexed_live(&self, id: &str) -> IndexStatus {
        let now = self.index_status(id);
        let recorded =
            now.bytes_recorded.unwrap_or_else(|| panic!("session {id} has no recording"));
        let what = format!("session {id} to be indexed up to byte {recorded}");
        wait_for(&what, INDEX_TIMEOUT, || {
            let s = self.index_status(id);
            assert_ne!(s.state, IndexState::Error, "indexing {id} failed: {:?}", s.error);
            (s.state == IndexState::Complete || s.bytes_indexed >= recorded).then_some(s)
        })
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A finished `keepwatch` that must have succeeded.
trait AssertOk {
    fn assert_ok(self, args: &[&str]) -> String;
}

impl AssertOk for Output {
    fn assert_ok(self, args: &[&str]) -> String {
        assert!(
            self.status.success(),
            "keepwatch {args:?} failed: {}",
            String::from_utf8_lossy(&self.stderr)
        );
        String::from_utf8(self.stdout).unwrap()
    }
}

/// `keepwatch watch ID` running against a gateway, its output collected as it comes.
pub(crate) struct Watcher {
    child: Child,
    seen: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl TestEnv {
    /// Starts `keepwatch watch ID` on this gateway (through its web listener).
    pub(crate) fn watch(&self, id: &str) -> Watcher {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keepwatch"))
            .arg("--data-dir")
            .arg(self.data())
            .args(["watch", id])
            .envs(self.env.iter().cloned())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let seen = Arc::new(Mutex::new(String::new()));
        let mut out = child.stdout.take().unwrap();
        let reader = {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = std::io::Read::read(&mut out, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    seen.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            })
        };
        Watcher { child, seen, reader: Some(reader) }
    }
}

impl Watcher {
    /// Waits until the watcher has shown `text`.
    pub(crate) fn wait_output(&self, text: &str) {
        wait_for(&format!("{text:?} in watch"), GATEWAY_TIMEOUT, || {
            self.seen.lock().unwrap().contains(text).then_some(())
        });
    }

    /// Waits for `watch` to end; its status, everything it printed, and its stderr.
    pub(crate) fn finish(mut self) -> (ExitStatus, String, String) {
        let status = wait_for("watch to exit", GATEWAY_TIMEOUT, || self.child.try_wait().unwrap());
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        let mut err = String::new();
        std::io::Read::read_to_string(&mut self.child.stderr.take().unwrap(), &mut err).unwrap();
        let seen = self.seen.lock().unwrap().clone();
        (status, seen, err)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
