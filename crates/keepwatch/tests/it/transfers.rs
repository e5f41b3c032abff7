//! File transfers through the gateway with real `sftp`, `scp`, `scp -O` and `rsync`: each file
//! recorded with its size and SHA-256, policy enforced per grant.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use keepwatch_recording::Event;

use crate::support::*;

/// A directory on the target (this machine) that the target login owns.
fn target_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new().prefix("kw-target-").tempdir().unwrap();
    let st =
        Command::new("chown").args([TARGET_USER, d.path().to_str().unwrap()]).status().unwrap();
    assert!(st.success());
    d
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_owned()
}

/// A file of `len` pseudo-random bytes.
fn random_file(dir: &Path, name: &str, len: usize) -> PathBuf {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ len as u64;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn sftp_batch(env: &TestEnv, login: &str, batch: &str) -> Output {
    let mut c = Command::new("sftp");
    c.args(env.client_opts())
        .args(["-P", &env.ssh_port().to_string(), "-b", "-"])
        .arg(format!("{login}@127.0.0.1"));
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), batch.as_bytes()).unwrap();
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn transfers(env: &TestEnv) -> Vec<serde_json::Value> {
    env.json(&["transfers", "--json"]).as_array().unwrap().clone()
}

fn find<'a>(ts: &'a [serde_json::Value], direction: &str, path: &str) -> &'a serde_json::Value {
    ts.iter()
        .find(|t| t["direction"] == direction && t["path"].as_str().unwrap().ends_with(path))
        .unwrap_or_else(|| panic!("no {direction} of {path} in {ts:#?}"))
}

fn events(env: &TestEnv, id: &str) -> Vec<Event> {
    env.events(id)
}

#[test]
fn sftp_put_get_rename_remove_mkdir_and_reget_are_recorded_with_hashes() {
    let env = TestEnv::new().target("web01").start();
    let remote = target_dir();
    let local = tempfile::tempdir().unwrap();
    let up = random_file(local.path(), "up.bin", 3_000_000);
    let r = remote.path().display();
    let batch = format!(
        "put {up} {r}/up.bin\nget {r}/up.bin {l}/down.bin\nrename {r}/up.bin {r}/moved.bin\nmkdir {r}/sub\nput {up} {r}/sub/gone.bin\nrm {r}/sub/gone.bin\n",
        up = up.display(),
        l = local.path().display()
    );
    let out = sftp_batch(&env, "alice@web01", &batch);
    assert!(out.status.success(), "sftp failed: {}", String::from_utf8_lossy(&out.stderr));
    let want = sha256(&up);
    assert_eq!(sha256(&remote.path().join("moved.bin")), want);
    assert_eq!(sha256(&local.path().join("down.bin")), want);

    // A partial download resumed with reget: recorded as partial, with its range.
    let half = 1_000_000;
    let part = local.path().join("part.bin");
    std::fs::write(&part, &std::fs::read(&up).unwrap()[..half]).unwrap();
    let out = sftp_batch(&env, "alice@web01", &format!("reget {r}/moved.bin {}\n", part.display()));
    assert!(out.status.success(), "reget failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sha256(&part), want);

    env.sealed_sessions(2);
    let ts = transfers(&env);
    let upload = find(&ts, "upload", "/up.bin");
    assert_eq!(upload["sha256"], want);
    assert_eq!(upload["bytes"], 3_000_000);
    assert_eq!(upload["complete"], true);
    assert_eq!(upload["protocol"], "sftp");
    let download = find(&ts, "download", "/up.bin");
    assert_eq!(download["sha256"], want);
    assert_eq!(download["size"], 3_000_000);
    let resumed = find(&ts, "download", "/moved.bin");
    assert_eq!(resumed["complete"], false);
    assert!(resumed["sha256"].is_null());
    assert_eq!(resumed["ranges"], serde_json::json!([[half, 3_000_000]]));

    // "Who ever moved a file with this hash?"
    let by_hash = env.json(&["transfers", "--sha256", &want.to_uppercase(), "--json"]);
    assert!(by_hash.as_array().unwrap().len() >= 3, "{by_hash:#}");
    let by_path = env.json(&["transfers", "--path", "*/sub/*", "--json"]);
    assert_eq!(by_path.as_array().unwrap().len(), 1, "{by_path:#}");

    let id =
        ts.iter().find(|t| t["path"].as_str().unwrap().ends_with("/up.bin")).unwrap()["session"]
            .as_str()
            .unwrap()
            .to_owned();
    let ops: Vec<String> = events(&env, &id)
        .into_iter()
        .filter_map(|e| match e {
            Event::FileOperation { op, path, result, .. } => {
                Some(format!("{op} {} {result}", path.rsplit('/').next().unwrap_or_default()))
            }
            _ => None,
        })
        .collect();
    // OpenSSH renames with the posix-rename@openssh.com extension.
    assert!(ops.iter().any(|o| o == "extended \"posix-rename@openssh.com\" up.bin ok"), "{ops:?}");
    for want in ["mkdir sub ok", "remove gone.bin ok"] {
        assert!(ops.iter().any(|o| o == want), "no {want:?} in {ops:?}");
    }
    let shown = env.kw_ok(&["show", &id]);
    assert!(shown.contains("transfers") && shown.contains(&want), "{shown}");
    assert!(env.kw(&["verify", "--all"]).status.success());
}

#[test]
fn scp_modern_and_legacy_and_rsync_work_and_scp_files_are_hashed() {
    let env = TestEnv::new().target("web01").start();
    let remote = target_dir();
    let local = tempfile::tempdir().unwrap();
    let a = random_file(local.path(), "a.bin", 700_000);
    let port = env.ssh_port().to_string();
    let dest = |name: &str| format!("alice@web01@127.0.0.1:{}/{name}", remote.path().display());
    let scp = |legacy: bool, from: &str, to: &str| {
        let mut c = Command::new("scp");
        c.args(env.client_opts()).args(["-P", &port]);
        if legacy {
            c.arg("-O");
        }
        let out = c.args([from, to]).stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "scp {from} {to}: {}", String::from_utf8_lossy(&out.stderr));
    };
    scp(false, a.to_str().unwrap(), &dest("modern.bin"));
    scp(true, a.to_str().unwrap(), &dest("legacy.bin"));
    let back = local.path().join("back.bin");
    scp(true, &dest("legacy.bin"), back.to_str().unwrap());
    let want = sha256(&a);
    for p in [remote.path().join("modern.bin"), remote.path().join("legacy.bin"), back.clone()] {
        assert_eq!(sha256(&p), want, "{}", p.display());
    }

    let rsh = format!("ssh {} -p {port}", env.client_opts().join(" "));
    let out = Command::new("rsync")
        .args(["-a", "-e", &rsh, a.to_str().unwrap(), &dest("rsynced.bin")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "rsync: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sha256(&remote.path().join("rsynced.bin")), want);

    env.sealed_sessions(4);
    let ts = transfers(&env);
    assert_eq!(find(&ts, "upload", "/modern.bin")["sha256"], want);
    assert_eq!(find(&ts, "upload", "/modern.bin")["protocol"], "sftp");
    assert_eq!(find(&ts, "upload", "legacy.bin")["sha256"], want);
    assert_eq!(find(&ts, "upload", "legacy.bin")["protocol"], "scp");
    assert_eq!(find(&ts, "download", "legacy.bin")["sha256"], want);
    assert!(env.kw(&["verify", "--all"]).status.success());
}

#[test]
fn a_grant_without_uploads_refuses_them_on_the_client_and_records_the_refusal() {
    let env = TestEnv::new()
        .target("web01")
        .grant_with("alice", "web01", &["--no-upload", "--max-file-size", "100K"])
        .start();
    let remote = target_dir();
    let local = tempfile::tempdir().unwrap();
    let small = random_file(remote.path(), "small.bin", 50_000);
    let big = random_file(remote.path(), "big.bin", 300_000);
    for f in [&small, &big] {
        Command::new("chown").args([TARGET_USER, f.to_str().unwrap()]).status().unwrap();
    }
    let up = random_file(local.path(), "up.bin", 10_000);
    let r = remote.path().display();

    let out = sftp_batch(&env, "alice@web01", &format!("put {} {r}/up.bin\n", up.display()));
    assert!(!out.status.success(), "the upload must fail on the client");
    assert!(!remote.path().join("up.bin").exists(), "a denied upload never reaches the target");
    let out = sftp_batch(
        &env,
        "alice@web01",
        &format!("get {r}/small.bin {}/small.bin\n", local.path().display()),
    );
    assert!(
        out.status.success(),
        "a small download is allowed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sftp_batch(
        &env,
        "alice@web01",
        &format!("get {r}/big.bin {}/big.bin\n", local.path().display()),
    );
    assert!(!out.status.success(), "a download over --max-file-size fails");

    let legacy = Command::new("scp")
        .args(env.client_opts())
        .args(["-O", "-P", &env.ssh_port().to_string(), up.to_str().unwrap()])
        .arg(format!("alice@web01@127.0.0.1:{r}/legacy.bin"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!legacy.status.success(), "legacy scp upload is refused too");
    assert!(!remote.path().join("legacy.bin").exists());

    let sessions = env.sealed_sessions(4);
    let denied: Vec<String> = sessions
        .iter()
        .flat_map(|s| events(&env, s["id"].as_str().unwrap()))
        .filter_map(|e| match e {
            Event::FileOperation { op, path, result, .. } if result.starts_with("denied") => {
                Some(format!("{op} {path}"))
            }
            _ => None,
        })
        .collect();
    assert!(denied.iter().any(|d| d.contains("up.bin")), "{denied:?}");
    assert!(denied.iter().any(|d| d.contains("big.bin")), "{denied:?}");
    let ts = transfers(&env);
    assert_eq!(find(&ts, "download", "/small.bin")["sha256"], sha256(&small));
}

/// `keepwatch transfers get` for a transfer: the file it wrote, or the error line.
fn get_content(env: &TestEnv, t: &serde_json::Value, out: &Path) -> Result<Vec<u8>, String> {
    let id = t["id"].as_i64().unwrap().to_string();
    let res = env.kw(&["transfers", "get", &id, "--out", out.to_str().unwrap()]);
    if res.status.success() {
        Ok(std::fs::read(out).unwrap())
    } else {
        Err(String::from_utf8_lossy(&res.stderr).into_owned())
    }
}

/// Issue 5: `capture_file_content`, SFTP and legacy SCP, both ways.
#[test]
fn captured_content_downloads_byte_identical_both_ways_and_large_files_are_skipped() {
    let env = TestEnv::new()
        .target("web01")
        .grant_with("alice", "web01", &["--capture-content", "--capture-max-bytes", "2M"])
        .start();
    let remote = target_dir();
    let local = tempfile::tempdir().unwrap();
    let up = random_file(local.path(), "up.bin", 1_500_000);
    let big = random_file(local.path(), "big.bin", 3_000_000);
    let small = random_file(local.path(), "small.bin", 200_000);
    let r = remote.path().display();
    let l = local.path().display();
    let batch = format!(
        "put {up} {r}/up.bin\nget {r}/up.bin {l}/down.bin\nput {big} {r}/big.bin\n",
        up = up.display(),
        big = big.display()
    );
    let out = sftp_batch(&env, "alice@web01", &batch);
    assert!(out.status.success(), "sftp failed: {}", String::from_utf8_lossy(&out.stderr));
    let scp = |from: &str, to: &str| {
        let out = Command::new("scp")
            .args(env.client_opts())
            .args(["-O", "-P", &env.ssh_port().to_string(), from, to])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "scp -O: {}", String::from_utf8_lossy(&out.stderr));
    };
    let remote_scp = format!("alice@web01@127.0.0.1:{r}/scp.bin");
    scp(small.to_str().unwrap(), &remote_scp);
    let back = local.path().join("back.bin");
    scp(&remote_scp, back.to_str().unwrap());

    let sessions = env.sealed_sessions(3);
    let ts = transfers(&env);
    let fetched = local.path().join("fetched.bin");
    let cases = [
        (find(&ts, "upload", "/up.bin"), &up, "sftp"),
        (find(&ts, "download", "/up.bin"), &up, "sftp"),
        (find(&ts, "upload", "/scp.bin"), &small, "scp"),
        (find(&ts, "download", "/scp.bin"), &small, "scp"),
    ];
    for (t, file, protocol) in cases {
        assert_eq!(t["protocol"], protocol);
        assert_eq!(t["content"]["kept"], true, "{t:#}");
        let got = get_content(&env, t, &fetched).unwrap_or_else(|e| panic!("get {t:#}: {e}"));
        assert!(got == std::fs::read(file).unwrap(), "{} differs from what moved", t["path"]);
        assert_eq!(sha256(&fetched), t["sha256"].as_str().unwrap());
    }

    // Over the cap: moved and hashed as usual, but not kept, and the reason is shown.
    let skipped = find(&ts, "upload", "/big.bin");
    assert_eq!(skipped["sha256"], sha256(&big));
    assert_eq!(skipped["content"]["kept"], false);
    let reason = skipped["content"]["reason"].as_str().unwrap();
    assert!(reason.contains("larger than the 2097152-byte capture cap"), "{reason}");
    let err = get_content(&env, skipped, &fetched).unwrap_err();
    assert!(err.contains("its content was not kept (file larger than"), "{err}");
    let spool = env.data().join("spool").join("captures");
    let left: Vec<_> = std::fs::read_dir(&spool).map(|d| d.collect()).unwrap_or_default();
    assert!(left.is_empty(), "capture spools left behind: {left:?}");
    let listed = env.kw_ok(&["transfers"]);
    assert!(listed.contains("CONTENT") && listed.contains("kept"), "{listed}");

    // The recording says what was kept, and each download is audited.
    let notices: Vec<String> = sessions
        .iter()
        .flat_map(|s| events(&env, s["id"].as_str().unwrap()))
        .filter_map(|e| match e {
            Event::Notice { text, .. } if text.starts_with("content of") => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(notices.len(), 5, "{notices:?}");
    assert!(notices.iter().any(|n| n.contains("big.bin\" not kept")), "{notices:?}");
    let audit = env.json(&["audit", "--action", "capture_downloaded", "--json"]);
    assert_eq!(audit.as_array().unwrap().len(), 4, "{audit:#}");

    // A changed copy is refused, not handed out.
    let t = find(&ts, "upload", "/up.bin");
    let stored = env
        .data()
        .join("captures")
        .join(t["session"].as_str().unwrap())
        .join(t["id"].as_i64().unwrap().to_string());
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&stored, bytes).unwrap();
    let err = get_content(&env, t, &fetched).unwrap_err();
    assert!(err.contains("the stored copy was changed"), "{err}");
    // Issue 9: the destination keeps what it held (the last good copy), nothing of this one.
    let kept = std::fs::read(&fetched).unwrap();
    assert!(kept == std::fs::read(&small).unwrap(), "a refused copy changed the destination");
    assert!(env.kw(&["verify", "--all"]).status.success());
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() { todo.push(p) } else { out.push(p) }
        }
    }
    out
}

/// Issue 13: a kept copy is sealed under the session's data key as it is written, opens
/// byte-identical (an empty file too), and a changed copy is refused with nothing written.
#[test]
fn kept_copies_are_sealed_at_rest_and_a_changed_copy_is_refused() {
    let env =
        TestEnv::new().target("web01").grant_with("alice", "web01", &["--capture-content"]).start();
    let remote = target_dir();
    let local = tempfile::tempdir().unwrap();
    let marker = "kw-capture-secret-7731 ";
    let secret = local.path().join("secret.txt");
    std::fs::write(&secret, marker.repeat(9_000)).unwrap();
    let empty = local.path().join("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    let r = remote.path().display();
    let batch =
        format!("put {} {r}/secret.txt\nput {} {r}/empty.txt\n", secret.display(), empty.display());
    let out = sftp_batch(&env, "alice@web01", &batch);
    assert!(out.status.success(), "sftp failed: {}", String::from_utf8_lossy(&out.stderr));
    env.sealed_sessions(1);
    let ts = transfers(&env);
    let (kept, kept_empty) =
        (find(&ts, "upload", "/secret.txt"), find(&ts, "upload", "/empty.txt"));

    let stored: Vec<PathBuf> = files_under(&env.data());
    for f in &stored {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "{} holds the file in clear",
            f.display()
        );
    }
    let fetched = local.path().join("fetched.txt");
    assert_eq!(get_content(&env, kept, &fetched).unwrap(), std::fs::read(&secret).unwrap());
    assert_eq!(get_content(&env, kept_empty, &fetched).unwrap(), b"");

    // The stored copy, changed in one byte: refused, and nothing is written.
    let copy = stored
        .iter()
        .find(|p| {
            p.parent().is_some_and(|d| d.parent().is_some_and(|c| c.ends_with("captures")))
                && p.ends_with(kept["id"].as_i64().unwrap().to_string())
        })
        .unwrap_or_else(|| panic!("no stored copy of transfer {} in {stored:#?}", kept["id"]));
    let mut bytes = std::fs::read(copy).unwrap();
    assert_eq!(bytes.len(), std::fs::metadata(&secret).unwrap().len() as usize + 40 + 16 * 4);
    bytes[100_000] ^= 1;
    std::fs::write(copy, bytes).unwrap();
    let never = local.path().join("never.txt");
    let err = get_content(&env, kept, &never).unwrap_err();
    assert!(err.contains("does not open under session") && err.contains("segment 1"), "{err}");
    assert!(!never.exists(), "a changed copy was written out");
}
