//! Issue 9: looks that leave no audit trace, and the holes next to them: hostile actor names
//! in the trail, user tokens without a person, unaudited token changes, `transfers get`
//! trusting the database, output files written through symlinks, and target secrets bound
//! only to the target's name.

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::symlink;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;

fn audit(env: &TestEnv, action: &str) -> Vec<serde_json::Value> {
    env.json(&["audit", "--action", action, "--json"]).as_array().unwrap().clone()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An SSH client that tries one password login as `login` (OpenSSH refuses to send a login
/// name holding control characters; an attacker's client does not).
fn try_login(port: u16, login: &str) {
    struct AnyKey;
    impl russh::client::Handler for AnyKey {
        type Error = russh::Error;
        async fn check_server_key(
            &mut self,
            _key: &russh::keys::PublicKeyOrCertificate,
        ) -> Result<bool, Self::Error> {
            Ok(true)
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let config = Arc::new(russh::client::Config::default());
        let mut h = russh::client::connect(config, ("127.0.0.1", port), AnyKey).await.unwrap();
        let r = h.authenticate_password(login, "wrong").await.unwrap();
        assert!(!r.success(), "{login:?} logged in");
    });
}

/// Issue 9 (4, 5): a login name with escape sequences reaches neither the auditor's terminal
/// nor the log raw, rows stored before the fix are escaped when printed, and the CLI's
/// looks are audited by the same function as the web's.
#[test]
fn hostile_names_are_escaped_in_the_trail_and_every_cli_look_is_audited() {
    hostile_names_are_escaped_in_the_trail_and_every_cli_look_is_audited_on(TestEnv::new());
}

/// Issue 11: the same with the metadata in PostgreSQL.
#[test]
fn hostile_names_are_escaped_in_the_trail_and_every_cli_look_is_audited_on_postgres() {
    hostile_names_are_escaped_in_the_trail_and_every_cli_look_is_audited_on(
        TestEnv::new().postgres(),
    );
}

fn hostile_names_are_escaped_in_the_trail_and_every_cli_look_is_audited_on(
    builder: TestEnvBuilder,
) {
    let mut env = builder.target("web01").start();
    let hostile = "\x1b]0;pwned\x07alice\n2026-01-01 admin login_succeeded";
    try_login(env.ssh_port(), hostile);
    let shown = env.kw_ok(&["audit", "--action", "login_refused"]);
    assert!(!shown.contains('\x1b') && !shown.contains('\x07'), "{shown:?}");
    assert!(shown.contains("\\x1b]0;pwned\\x07alice\\n2026-01-01"), "{shown}");
    assert_eq!(shown.lines().count(), 2, "one header, one row: {shown}");
    let json = audit(&env, "login_refused");
    assert_eq!(json[0]["actor"], "\\x1b]0;pwned\\x07alice\\n2026-01-01 admin login_succeeded");
    let log = env.log();
    let line = log.lines().find(|l| l.contains("pwned")).expect("the refusal is logged");
    assert!(!line.contains("]0;pwned\x07") && line.contains("\\x1b]0;pwned\\x07"), "{line:?}");

    // A row stored before actors were cleaned is escaped when printed.
    let sql = "INSERT INTO audit_events (at_us, actor, action, detail) VALUES \
         (1, char(27) || ']0;old' || char(7) || 'bob', 'login_refused', 'x' || char(13) || 'y')";
    env.sql(&if env.on_postgres() { sql.replace("char(", "chr(") } else { sql.to_owned() });
    let shown = env.kw_ok(&["audit", "--action", "login_refused"]);
    assert!(!shown.contains('\x1b') && !shown.contains('\r'), "{shown:?}");
    assert!(shown.contains("\\x1b]0;old\\x07bob") && shown.contains("x\\ry"), "{shown}");

    // show, replay and export are looks: each audited once, by the local OS user.
    let out = env.ssh("alice@web01").arg("echo looked-at").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let id = env.sealed_sessions(1)[0]["id"].as_str().unwrap().to_owned();
    env.kw_ok(&["show", &id]);
    env.kw_ok(&["replay", &id, "--speed", "1000"]);
    env.kw_ok(&["export", &id, "--format", "asciicast"]);
    for action in ["session_viewed", "recording_replayed", "recording_exported"] {
        let events = audit(&env, action);
        assert_eq!(events.len(), 1, "{action}: {events:#?}");
        assert_eq!(events[0]["session"], id.as_str());
        assert!(events[0]["actor"].as_str().unwrap().starts_with("local:"), "{events:#?}");
    }
    // A session that does not exist is not found, and nothing is audited.
    let missing = "01950000-0000-7000-8000-000000000000";
    let out = env.kw(&["show", missing]);
    assert!(stderr(&out).contains(&format!("session {missing} not found")), "{}", stderr(&out));
    assert_eq!(audit(&env, "session_viewed").len(), 1);
    env.stop();
}

/// Issue 9 (2, 3): a user token names a person; one that does not (made before) is listed
/// as seeing nothing; creating and removing tokens is audited.
#[test]
fn user_tokens_name_a_person_and_token_changes_are_audited() {
    // Only the CLI: the gateway is never started.
    let env = TestEnv::new().build();
    let out = env.kw(&["token", "create", "--name", "ci", "--role", "user"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("add --person NAME"), "{}", stderr(&out));
    let out = env.kw(&["token", "create", "--name", "ci", "--role", "user", "--person", "ghost"]);
    assert!(stderr(&out).contains("person \"ghost\" not found"), "{}", stderr(&out));
    env.kw_ok(&["token", "create", "--name", "ci", "--role", "user", "--person", "alice"]);
    // A user token from a database made before tokens named a person.
    env.sql(
        "INSERT INTO api_tokens (name, role, token_sha256, created_at_us) VALUES ('old', 'user', 'ab', 1)",
    );
    let list = env.json(&["token", "list", "--json"]);
    let by_name =
        |n: &str| list.as_array().unwrap().iter().find(|t| t["name"] == n).unwrap().clone();
    assert_eq!(by_name("ci")["person"], "alice");
    assert_eq!(by_name("ci")["sees"], "alice's sessions");
    assert_eq!(by_name("old")["person"], serde_json::Value::Null);
    assert!(by_name("old")["sees"].as_str().unwrap().starts_with("nothing"), "{list:#}");
    let table = env.kw_ok(&["token", "list"]);
    assert!(table.contains("SEES") && table.contains("nothing: made before"), "{table}");

    env.kw_ok(&["token", "remove", "ci"]);
    let removed = audit(&env, "token_removed");
    assert_eq!(removed.len(), 1, "{removed:#?}");
    assert_eq!(removed[0]["detail"], "ci");
    assert!(removed[0]["actor"].as_str().unwrap().starts_with("local:"));
    assert!(!env.kw(&["token", "remove", "ci"]).status.success());
    assert_eq!(audit(&env, "token_removed").len(), 1, "a failed removal is not a change");
    let created = audit(&env, "token_created");
    assert_eq!(created.len(), 1, "{created:#?}");
    assert_eq!(created[0]["detail"], "ci as user for alice");
    // `init` adding the admin is in the trail too, and the trail verifies.
    let added = audit(&env, "user_added");
    assert!(added.iter().any(|e| e["detail"] == "user admin role admin (init)"), "{added:#?}");
    let verify = env.kw(&["verify", "--all"]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}

/// A directory on the target (this machine) that the target login owns.
fn target_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new().prefix("kw-target-").tempdir().unwrap();
    let st =
        Command::new("chown").args([TARGET_USER, d.path().to_str().unwrap()]).status().unwrap();
    assert!(st.success());
    d
}

/// Issue 9 (6, 7): `transfers get` checks the kept copy against the SHA-256 in the signed
/// recording, not the database row; `transfers get --out` and `export -o` never write
/// through a symlink and leave the destination alone on failure.
#[test]
fn transfers_get_trusts_the_recording_and_output_files_are_written_whole() {
    let mut env =
        TestEnv::new().target("web01").grant_with("alice", "web01", &["--capture-content"]).start();
    let remote = target_dir();
    let local = tempfile::tempdir().unwrap();
    let original = b"the content that moved\n".repeat(1000);
    std::fs::write(local.path().join("up.bin"), &original).unwrap();
    let batch =
        format!("put {}/up.bin {}/up.bin\n", local.path().display(), remote.path().display());
    let mut c = Command::new("sftp");
    c.args(env.client_opts())
        .args(["-P", &env.ssh_port().to_string(), "-b", "-", "alice@web01@127.0.0.1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), batch.as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "sftp: {}", stderr(&out));
    let session = env.sealed_sessions(1)[0]["id"].as_str().unwrap().to_owned();
    let t = env.json(&["transfers", "--json"])[0].clone();
    let id = t["id"].as_i64().unwrap().to_string();
    assert_eq!(t["content"]["kept"], true, "{t:#}");

    // A victim file the output path points at.
    let victim = local.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let out_link = local.path().join("out.bin");
    symlink(&victim, &out_link).unwrap();
    let get = |dest: &std::path::Path| {
        env.kw(&["transfers", "get", &id, "--out", dest.to_str().unwrap()])
    };

    // Intact: written, and through no symlink: the link is replaced, the victim untouched.
    let ok = get(&out_link);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(std::fs::read(&out_link).unwrap(), original);
    assert!(!std::fs::symlink_metadata(&out_link).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");

    // Someone with write access changes the kept copy and the row's hash to match it.
    let stored = env.data().join("captures").join(&session).join(&id);
    let mut changed = std::fs::read(&stored).unwrap();
    changed[10] ^= 1;
    std::fs::write(&stored, &changed).unwrap();
    let changed_sha = {
        let out = Command::new("sha256sum").arg(&stored).output().unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_owned()
    };
    env.sql(&format!("UPDATE transfers SET sha256 = '{changed_sha}' WHERE id = {id}"));
    assert_eq!(env.json(&["transfers", "--json"])[0]["sha256"], changed_sha.as_str());
    std::fs::write(&victim, "precious").unwrap();
    let _ = std::fs::remove_file(&out_link);
    symlink(&victim, &out_link).unwrap();
    let existing = local.path().join("existing.bin");
    std::fs::write(&existing, "kept as it was").unwrap();
    for dest in [&out_link, &existing] {
        let refused = get(dest);
        assert!(!refused.status.success(), "a changed copy was handed out to {dest:?}");
        let err = stderr(&refused);
        assert!(err.contains("the stored copy was changed, so nothing was written"), "{err}");
        assert!(err.contains("the row was changed"), "the edited row is called out: {err}");
    }
    assert!(std::fs::symlink_metadata(&out_link).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "kept as it was");
    let leftovers: Vec<_> = std::fs::read_dir(local.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".keepwatch-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    assert_eq!(audit(&env, "capture_downloaded").len(), 3, "every attempt is a look");

    // export -o: the same care.
    let cast = local.path().join("s.cast");
    symlink(&victim, &cast).unwrap();
    let ok = env.kw(&["export", &session, "--format", "asciicast", "-o", cast.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(!std::fs::symlink_metadata(&cast).unwrap().file_type().is_symlink());
    assert!(std::fs::read_to_string(&cast).unwrap().contains("\"version\":2"));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let dir_dest = local.path().join("a-directory");
    std::fs::create_dir(&dir_dest).unwrap();
    let refused =
        env.kw(&["export", &session, "--format", "asciicast", "-o", dir_dest.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(std::fs::read_dir(&dir_dest).unwrap().next().is_none());
    env.stop();
}

/// A TCP listener that records every connection and byte that reaches it.
struct FakeTarget {
    port: u16,
    got: Arc<Mutex<(usize, Vec<u8>)>>,
}

impl FakeTarget {
    fn start(ip: &str) -> FakeTarget {
        let l = TcpListener::bind((ip, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let got: Arc<Mutex<(usize, Vec<u8>)>> = Default::default();
        let seen = got.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { return };
                seen.lock().unwrap().0 += 1;
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        seen.lock().unwrap().1.extend_from_slice(&buf[..n]);
                    }
                });
            }
        });
        FakeTarget { port, got }
    }
}

/// The gateway's vault, opened with the key in its data directory.
fn vault(env: &TestEnv) -> keepwatch_store::Vault {
    let hex = std::fs::read_to_string(env.data().join("vault.key")).unwrap();
    let key: Vec<u8> = (0..hex.trim().len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex.trim()[i..i + 2], 16).unwrap())
        .collect();
    keepwatch_store::Vault::new(&key).unwrap()
}

/// Issue 9 (8): a target's secret is bound to its whole row. A row pointed elsewhere in the
/// database refuses the session (a clear line, an audit event) and the edited host receives
/// nothing; a secret sealed the old way is sealed again at start; a key pinned on first use
/// is pinned with its secret sealed again.
#[test]
fn target_secrets_are_bound_to_their_row() {
    // Built, not started: old01's row is rewritten before the gateway first reads it.
    let mut env = TestEnv::new()
        .target("web01")
        .target("old01")
        .target_with("tofu01", Target::new().host_key(HostKey::TrustOnFirstUse))
        .build();
    // old01's secret as keepwatch sealed it before targets were bound (name only).
    let legacy = vault(&env).seal_legacy("old01", TARGET_PASSWORD.as_bytes()).unwrap();
    let hex: String = legacy.iter().map(|b| format!("{b:02x}")).collect();
    env.sql(&format!("UPDATE targets SET secret = x'{hex}' WHERE name = 'old01'"));
    env.start();
    let log = env.log();
    assert!(log.contains("sealed the secret of target old01 again"), "{log}");
    let resealed = audit(&env, "target_secret_resealed");
    assert_eq!(resealed.len(), 1, "{resealed:#?}");
    assert!(resealed[0]["detail"].as_str().unwrap().contains("now bound to kwtest@127.0.0.1"));

    let run = |login: &str| env.ssh(login).arg("echo reached-$((40+2))").output().unwrap();
    for login in ["alice@old01", "alice@tofu01", "alice@tofu01", "alice@web01"] {
        let out = run(login);
        assert!(out.status.success(), "{login}: {}", stderr(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("reached-42"));
    }
    let pinned = audit(&env, "host_key_pinned");
    assert_eq!(pinned.len(), 1, "{pinned:#?}");
    assert!(pinned[0]["detail"].as_str().unwrap().contains(&env.sshd().host_key_line));

    // Someone with write access to the database points web01 at their own host.
    let fake = FakeTarget::start("127.0.0.2");
    env.sql(&format!(
        "UPDATE targets SET host = '127.0.0.2', port = {} WHERE name = 'web01'",
        fake.port
    ));
    let out = run("alice@web01");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("keepwatch: target web01 refused: its stored settings no longer match what its credential was sealed for"),
        "{err}"
    );
    let mismatch = audit(&env, "target_row_mismatch");
    assert_eq!(mismatch.len(), 1, "{mismatch:#?}");
    assert_eq!(mismatch[0]["actor"], "alice");
    // The fake host saw no connection at all, let alone a password. A marker connection of
    // our own, accepted after any the gateway made, says when the count is complete.
    let _marker = std::net::TcpStream::connect(("127.0.0.2", fake.port)).unwrap();
    wait_for("the marker connection", Duration::from_secs(10), || {
        (fake.got.lock().unwrap().0 >= 1).then_some(())
    });
    let got = fake.got.lock().unwrap().clone();
    assert_eq!(
        (got.0, got.1.len()),
        (1, 0),
        "the edited host was contacted: {:?}",
        String::from_utf8_lossy(&got.1)
    );
    // Unpinning a key in the database does not turn trust-on-first-use back on either.
    env.sql("UPDATE targets SET host_key = NULL, trust_on_first_use = 1 WHERE name = 'old01'");
    let out = run("alice@old01");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("target old01 refused"), "{}", stderr(&out));
    assert_eq!(audit(&env, "target_row_mismatch").len(), 2);
    env.stop();
}
