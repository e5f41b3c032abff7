//! Recordings archived in an S3-compatible bucket (issue 11): a real Garage, segments
//! uploaded while the session runs, the signed manifest `verify` checks, a bucket outage
//! the spool rides out, and a node that dies with its disk.

use std::io::Read as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{TestEnv, wait_for};

/// Waits until session `id` is archived: sealed, and its spool file gone (the shipper drops
/// it only after the archive's copy verified).
fn wait_archived(env: &TestEnv, id: &str) {
    let spool = env.data().join("spool").join(format!("{id}.kwr"));
    wait_for(&format!("session {id} to leave the spool"), Duration::from_secs(120), || {
        (!spool.exists()).then_some(())
    });
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Issue 11: a sealed recording in the bucket is segments and a manifest; it replays and
/// verifies from there; captured file content is in the bucket too; and a segment
/// overwritten in the bucket (Garage overwrites an existing key even when asked not to) makes
/// `keepwatch verify` fail, naming the segment.
#[test]
fn a_segment_overwritten_in_the_bucket_fails_verify() {
    let env = TestEnv::new()
        .s3()
        .target("web01")
        .grant_with("alice", "web01", &["--capture-content"])
        .config("segment_interval_ms = 3000", "segment_interval_ms = 300")
        .config("segment_bytes = 8388608", "segment_bytes = 262144")
        .start();
    // ~2 MB of output in several segments.
    let cmd = "for i in $(seq 1 6); do head -c 250000 /dev/urandom | base64 -w 100; sleep 0.3; done; echo archived-end";
    let out = env.ssh("alice@web01").arg(cmd).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = env.sealed_sessions(1)[0]["id"].as_str().unwrap().to_owned();
    wait_archived(&env, &id);
    assert!(!env.data().join("recordings").join(format!("{id}.kwr")).exists());
    let session: keepwatch_core::SessionId = id.parse().unwrap();
    let archive = env.archive();
    let rt = rt();
    let segments = rt.block_on(archive.segments(session)).unwrap();
    assert!(segments.len() >= 3, "{segments:?}");
    let manifest = rt.block_on(archive.manifest(session)).unwrap();
    assert!(manifest.is_some());
    // A second manifest for the session (a node frozen past its lapse, resuming after a
    // survivor sealed its session) is refused, not written over the first as Garage would.
    let again = rt.block_on(archive.put_manifest(session, "a second seal".into()));
    assert!(matches!(again, Err(keepwatch_store::StoreError::Exists { .. })), "{again:?}");
    assert_eq!(rt.block_on(archive.manifest(session)).unwrap(), manifest);
    // Read back from the bucket, a range at a time.
    let client = String::from_utf8(out.stdout).unwrap();
    let recorded = env.exported_output(&id).replace("\r\n", "\n");
    assert_eq!(recorded, client, "the archived recording holds what the client saw");
    env.kw_ok(&["verify", &id]);
    env.kw_ok(&["verify", "--all"]);

    // A kept copy goes to the bucket, and `transfers get` checks it against the recording.
    let local = tempfile::tempdir().unwrap();
    let up = local.path().join("up.bin");
    std::fs::write(&up, b"kept in the bucket\n".repeat(1000)).unwrap();
    let remote = tempfile::Builder::new().prefix("kw-archive-").tempdir_in("/tmp").unwrap();
    std::process::Command::new("chown")
        .args(["kwtest", remote.path().to_str().unwrap()])
        .status()
        .unwrap();
    let batch = format!("put {} {}/up.bin\n", up.display(), remote.path().display());
    let mut sftp = std::process::Command::new("sftp")
        .args(env.client_opts())
        .args(["-P", &env.ssh_port().to_string(), "-b", "-", "alice@web01@127.0.0.1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    sftp.stdin.take().unwrap().write_all(batch.as_bytes()).unwrap();
    let st = sftp.wait().unwrap();
    let mut err = String::new();
    sftp.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(st.success(), "sftp: {err}");
    let sessions = env.sealed_sessions(2);
    let transfers = env.json(&["transfers", "--json"]);
    let t = &transfers.as_array().unwrap()[0];
    let sftp_session = t["session"].as_str().unwrap().to_owned();
    wait_archived(&env, &sftp_session);
    let copy = local.path().join("copy.bin");
    env.kw_ok(&["transfers", "get", &t["id"].to_string(), "--out", copy.to_str().unwrap()]);
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&up).unwrap());
    assert!(!env.data().join("captures").exists(), "the copy is not in the data directory");
    assert_eq!(sessions.len(), 2);

    // Overwrite one segment in place, as Garage lets anyone with the key do.
    let victim = &segments[1];
    let len = victim.size as usize;
    env.garage_ref().overwrite(&victim.key, vec![b'x'; len]);
    // What the server does with a conditional create on a taken key (nothing relies on it).
    let again = rt.block_on(archive.put_segment(&victim.key, vec![b'y'; len].into()));
    eprintln!("conditional create on an existing key: {again:?}");
    let out = env.kw(&["verify", &id]);
    assert!(!out.status.success(), "verify passed over an overwritten segment");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("segment 1 (") && text.contains("differs from the manifest"), "{text}");
    assert!(!env.kw(&["verify", "--all"]).status.success());
}

/// Issue 11: the bucket goes away for 30 s while a session prints continuously; the spool
/// keeps the segments and drains them when it returns, and every byte the client received
/// is in the sealed recording, which verifies.
#[test]
fn a_bucket_outage_loses_nothing() {
    let mut env = TestEnv::new()
        .s3()
        .target("web01")
        .config("segment_interval_ms = 3000", "segment_interval_ms = 500")
        .start();
    // About 45 s of continuous output, numbered lines every 20 ms.
    let cmd = "i=0; while [ $i -lt 2250 ]; do i=$((i+1)); echo \"line $i $(date +%s%N)\"; sleep 0.02; done; echo outage-end";
    let mut client = env.ssh("alice@web01").arg(cmd).stdout(Stdio::piped()).spawn().unwrap();
    let id = wait_for("the session to start", Duration::from_secs(60), || {
        env.sessions().first().map(|s| s["id"].as_str().unwrap().to_owned())
    });
    env.wait_recorded(&id, "line 100 ");
    env.garage().stop();
    let stopped = Instant::now();
    // 30 s without the bucket (waiting on the clock is the point of this test).
    while stopped.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
        assert!(client.try_wait().unwrap().is_none(), "the session ended during the outage");
    }
    assert!(env.log().contains("the recording archive fails"), "{}", env.log());
    env.garage().restart();
    let mut stdout = String::new();
    client.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    assert!(client.wait().unwrap().success());
    assert!(stdout.ends_with("outage-end\n"), "{}", &stdout[stdout.len().saturating_sub(200)..]);
    env.sealed_sessions(1);
    wait_archived(&env, &id);
    let recorded = env.exported_output(&id).replace("\r\n", "\n");
    assert_eq!(recorded.len(), stdout.len());
    assert!(recorded == stdout, "the archived recording differs from what the client received");
    env.kw_ok(&["verify", &id]);
    env.kw_ok(&["verify", "--all"]);
}

/// Issue 11: a node that dies with its disk loses at most the segment interval (plus a flush
/// and an upload) of a recording: the next start rebuilds the spool from the bucket, seals
/// the session `interrupted`, and it verifies. The test measures the loss.
#[test]
fn a_node_that_dies_with_its_disk_loses_at_most_five_seconds() {
    let mut env = TestEnv::new().s3().target("web01").start();
    let cmd = "i=0; while [ $i -lt 600 ]; do i=$((i+1)); echo \"tick $i\"; sleep 0.1; done";
    let mut client = env.ssh("alice@web01").arg(cmd).stdout(Stdio::piped()).spawn().unwrap();
    let id = wait_for("the session to start", Duration::from_secs(60), || {
        env.sessions().first().map(|s| s["id"].as_str().unwrap().to_owned())
    });
    env.wait_recorded(&id, "tick 100\n");
    let mut out = client.stdout.take().unwrap();
    // The node dies, and its spool with it.
    env.kill9();
    std::fs::remove_file(env.data().join("spool").join(format!("{id}.kwr"))).unwrap();
    let _ = client.kill();
    let mut seen = String::new();
    out.read_to_string(&mut seen).unwrap();
    let _ = client.wait();
    let last = |text: &str| {
        text.lines().filter_map(|l| l.strip_prefix("tick ")?.trim().parse::<u32>().ok()).max()
    };
    let client_last = last(&seen).unwrap();
    env.start();
    let s = env.sealed_sessions(1);
    assert_eq!(s[0]["status"], "interrupted", "{s:?}");
    wait_archived(&env, &id);
    let recorded = env.exported_output(&id).replace("\r\n", "\n");
    let recorded_last = last(&recorded).expect("nothing of the session was recovered");
    let lost = f64::from(client_last.saturating_sub(recorded_last)) * 0.1;
    eprintln!(
        "node death: the client saw tick {client_last}, the bucket kept tick {recorded_last}: {lost:.1} s lost"
    );
    assert!(lost <= 5.0, "lost {lost:.1} s of the recording");
    assert!(seen.starts_with(&recorded[..recorded.len().min(seen.len())]));
    env.kw_ok(&["verify", &id]);
}

/// Issue 11: when the bucket stays away until the spool holds its bound of recording the
/// bucket does not have, the session ends with the message a full disk gives (fail closed)
/// and new sessions are refused; when the bucket returns, sessions run and are archived.
#[test]
fn a_bucket_outage_past_the_spool_bound_fails_closed() {
    let mut env = TestEnv::new()
        .s3()
        .target("web01")
        .config("outage_spool_bytes = 1073741824", "outage_spool_bytes = 3000000")
        .start();
    env.garage().stop();
    // ~27 MB of output that does not compress, over a few seconds: far past the 3 MB bound.
    let cmd =
        "for i in $(seq 1 40); do head -c 500000 /dev/urandom | base64 -w 100; sleep 0.05; done";
    let out = env.ssh("alice@web01").arg(cmd).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("keepwatch: the recording failed, so the session was ended"), "{err}");
    assert!(
        out.stdout.len() < 20_000_000,
        "the session was cut short ({} bytes)",
        out.stdout.len()
    );
    let audit = env.kw_ok(&["audit", "--action", "recording_failed"]);
    assert!(audit.contains("outage_spool_bytes"), "{audit}");
    env.garage().restart();
    let ok = wait_for("a session once the bucket is back", Duration::from_secs(60), || {
        let o = env.ssh("alice@web01").arg("echo back-$((20+1))").output().unwrap();
        o.status.success().then_some(o)
    });
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "back-21\n");
    let sessions = env.sessions();
    let id = sessions.iter().find(|s| s["status"] == "closed").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_archived(&env, &id);
    env.kw_ok(&["verify", &id]);
}
