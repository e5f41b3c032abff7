//! The shipper against a segmented archive on a local directory (the S3 layout without a
//! server; the integration tests run the same against Garage): sealing, what `verify`
//! reports of each kind of tampering, the outage bound, and recovery from the archive alone.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use keepwatch_core::{SessionId, SessionStatus};
use keepwatch_recording::{Event, SessionStart};
use keepwatch_store::{Archive, BlobStore, Layout, SessionRow, Store, now_us};

use crate::{Recorder, RecorderConfig, RecorderContext, ShipConfig, verify_archived};

struct World {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    ctx: RecorderContext,
    key: Arc<SigningKey>,
}

async fn world(ship: ShipConfig) -> World {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let store = Store::open_sqlite(&root.join("db")).await.unwrap();
    let archive = Archive::local_with_layout(&root.join("bucket"), Layout::Segmented).unwrap();
    let blobs = BlobStore::new(&root.join("data"), archive).unwrap();
    let key = Arc::new(SigningKey::from_bytes(&[5; 32]));
    let config = RecorderConfig { flush_interval: Duration::from_millis(50), ..Default::default() };
    let ctx =
        RecorderContext::new("node-test".parse().unwrap(), store, blobs, key.clone(), config, ship);
    World { _dir: dir, root, ctx, key }
}

fn quick() -> ShipConfig {
    ShipConfig {
        segment_interval: Duration::from_millis(100),
        segment_bytes: 64 << 10,
        ..Default::default()
    }
}

async fn start(w: &World) -> Recorder {
    let id = SessionId::new();
    let row = SessionRow {
        stated_reason: None,
        protocol: keepwatch_core::Protocol::Ssh,
        id,
        person: "alice".into(),
        target: "web01".into(),
        target_host: "h:22".into(),
        target_login: "root".into(),
        client_addr: "c".into(),
        status: SessionStatus::Active,
        reason: None,
        started_at_us: now_us(),
        ended_at_us: None,
        chain_head: None,
        seal_seq: None,
        seal_signature: None,
        node: None,
    };
    w.ctx.store.insert_session(&row).await.unwrap();
    let start = SessionStart {
        session_id: id,
        user: row.person,
        target: row.target,
        target_host: row.target_host,
        target_login: row.target_login,
        client_addr: row.client_addr,
        started_at_us: row.started_at_us,
    };
    Recorder::start(&w.ctx, start, None).await.unwrap()
}

/// Output that does not compress, so segments fill up.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn wait(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Records ~400 KiB over several flushes and seals; returns the session once the spool is
/// gone (archived and verified).
async fn archived_session(w: &World) -> SessionId {
    let rec = start(w).await;
    for i in 0..8 {
        rec.record(Event::Output { channel: 0, data: noise(50 << 10, i) }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    rec.seal(SessionStatus::Closed, None).await.unwrap();
    let id = rec.session_id();
    let spool = w.ctx.blobs.spool().clone();
    tokio::task::spawn_blocking(move || wait("the spool to be archived", || !spool.contains(id)))
        .await
        .unwrap();
    id
}

fn segment_files(root: &Path, id: SessionId) -> Vec<std::path::PathBuf> {
    let dir = root.join("bucket/recordings").join(id.to_string()).join("segments");
    let mut v: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

async fn verdict(w: &World, id: SessionId) -> String {
    match verify_archived(&w.ctx.blobs, &w.key.verifying_key(), id).await.unwrap() {
        None => "no recording".into(),
        Some(Ok(v)) => format!("ok, {} chunks, sealed {}", v.chunks, v.seal.is_some()),
        Some(Err(e)) => e.to_string(),
    }
}

/// Issue 11: a sealed recording in a segmented archive is its segments plus a signed
/// manifest, verifies like a local one, and reads back through the blob store in ranges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_recording_is_archived_in_segments_and_verifies() {
    let w = world(quick()).await;
    let id = archived_session(&w).await;
    let segments = segment_files(&w.root, id);
    assert!(segments.len() >= 4, "{segments:?}");
    assert!(verdict(&w, id).await.starts_with("ok"), "{}", verdict(&w, id).await);
    let row = w.ctx.store.session(id).await.unwrap();
    let problems =
        crate::check_session(&w.ctx.blobs, &w.key.verifying_key(), id, row.as_ref()).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(w.ctx.shipper.backlog(), 0);
    // Read back a piece at a time, as the indexer and the console do.
    let mut tail = keepwatch_recording::RecordingTail::new(None);
    let mut events = Vec::new();
    loop {
        let piece =
            w.ctx.blobs.read_recording_range(id, tail.read_offset(), 100_000).await.unwrap();
        if piece.is_empty() {
            break;
        }
        tail.push(&piece, &mut events).unwrap();
    }
    assert!(tail.is_sealed());
    let output: usize = events
        .iter()
        .map(|e| match &e.event {
            Event::Output { data, .. } => data.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(output, 8 * (50 << 10));
}

/// Issue 11: every kind of change to an archived recording is reported by `verify`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_with_an_archived_recording_is_reported() {
    type Tamper = fn(&Path, &[std::path::PathBuf]);
    let cases: [(&str, Tamper, &str); 6] = [
        ("a flipped byte", |_, s| flip(&s[1], 100), "segment 1 (recordings/"),
        (
            "a deleted segment",
            |_, s| std::fs::remove_file(&s[2]).unwrap(),
            "is missing from the archive",
        ),
        (
            "an overwritten segment (same length)",
            |_, s| {
                std::fs::write(&s[1], noise(std::fs::metadata(&s[1]).unwrap().len() as usize, 9))
                    .unwrap()
            },
            "differs from the manifest's hash",
        ),
        (
            "two segments swapped",
            |_, s| {
                let a = std::fs::read(&s[1]).unwrap();
                let b = std::fs::read(&s[2]).unwrap();
                std::fs::write(&s[1], b).unwrap();
                std::fs::write(&s[2], a).unwrap();
            },
            "segment 1 (recordings/",
        ),
        (
            "an edited manifest",
            |m, _| {
                let t = std::fs::read_to_string(m).unwrap();
                let i = t.find("segment ").unwrap() + "segment 0 ".len();
                let mut b = t.into_bytes();
                b[i] = if b[i] == b'1' { b'2' } else { b'1' };
                std::fs::write(m, b).unwrap();
            },
            "manifest signature invalid",
        ),
        ("a deleted manifest", |m, _| std::fs::remove_file(m).unwrap(), "hold no manifest"),
    ];
    let w = world(quick()).await;
    let id = archived_session(&w).await;
    let bucket = w.root.join("bucket");
    let pristine = w.root.join("pristine");
    copy_dir(&bucket, &pristine);
    for (what, tamper, expected) in cases {
        let _ = std::fs::remove_dir_all(&bucket);
        copy_dir(&pristine, &bucket);
        let manifest = bucket.join("recordings").join(id.to_string()).join("manifest");
        tamper(&manifest, &segment_files(&w.root, id));
        let got = verdict(&w, id).await;
        assert!(got.contains(expected), "{what}: expected {expected:?}, got {got:?}");
    }
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x40;
    std::fs::write(path, b).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Issue 11: past the outage spool's bound a recording fails closed (the gateway ends the
/// session with the reason) and a new one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_spool_bound_recordings_fail_closed() {
    let w = world(ShipConfig {
        // Never due by time, and a bound the first flush passes.
        segment_interval: Duration::from_secs(3600),
        segment_bytes: 1 << 30,
        outage_spool_bytes: 100 << 10,
        ..Default::default()
    })
    .await;
    let rec = start(&w).await;
    rec.record(Event::Output { channel: 0, data: noise(200 << 10, 1) }).await.unwrap();
    let mut failure = rec.failure();
    let reason = tokio::time::timeout(Duration::from_secs(20), failure.wait_for(|f| f.is_some()))
        .await
        .expect("the recording never failed")
        .unwrap()
        .clone()
        .unwrap();
    assert!(reason.contains("outage_spool_bytes"), "{reason}");
    let refused = start_result(&w).await;
    assert!(refused.contains("outage_spool_bytes"), "{refused}");
}

async fn start_result(w: &World) -> String {
    let id = SessionId::new();
    let start = SessionStart {
        session_id: id,
        user: "a".into(),
        target: "t".into(),
        target_host: "h".into(),
        target_login: "l".into(),
        client_addr: "c".into(),
        started_at_us: now_us(),
    };
    match Recorder::start(&w.ctx, start, None).await {
        Ok(_) => "started".into(),
        Err(e) => e.to_string(),
    }
}

/// Issue 11: a node that dies with its disk loses only what was not uploaded yet: recovery
/// rebuilds the spool from the archive's segments, seals it `interrupted` and archives it
/// again, and the segments of the dead writer are removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_spool_is_lost_is_recovered_from_the_archive() {
    let w = world(quick()).await;
    let rec = start(&w).await;
    for i in 0..4 {
        rec.record(Event::Output { channel: 0, data: noise(50 << 10, i) }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let id = rec.session_id();
    // Everything written so far is uploaded.
    let (root, spool) = (w.root.clone(), w.ctx.blobs.spool().clone());
    tokio::task::spawn_blocking(move || {
        wait("the segments to catch up", || {
            let dir = root.join("bucket/recordings").join(id.to_string()).join("segments");
            let archived: u64 = std::fs::read_dir(&dir)
                .map(|d| d.map(|e| e.unwrap().metadata().unwrap().len()).sum())
                .unwrap_or(0);
            spool.len(id).unwrap().is_some_and(|l| l > 200 << 10 && archived == l)
        })
    })
    .await
    .unwrap();
    let before = segment_files(&w.root, id);
    // The node dies, and its disk with it.
    drop(rec);
    let spool = w.ctx.blobs.spool().clone();
    tokio::task::spawn_blocking(move || {
        wait("the recorder to stop", || {
            spool.remove(id).unwrap();
            !spool.contains(id)
        })
    })
    .await
    .unwrap();
    let recovered = crate::recover_interrupted(&w.ctx).await.unwrap();
    assert!(
        matches!(recovered[..], [(r, crate::Recovered::Sealed { .. })] if r == id),
        "{recovered:?}"
    );
    let spool = w.ctx.blobs.spool().clone();
    tokio::task::spawn_blocking(move || {
        wait("the recovered spool to be archived", || !spool.contains(id))
    })
    .await
    .unwrap();
    assert!(verdict(&w, id).await.starts_with("ok"), "{}", verdict(&w, id).await);
    let after = segment_files(&w.root, id);
    assert!(after.iter().all(|s| !before.contains(s)), "the dead writer's segments are gone");
    let row = w.ctx.store.session(id).await.unwrap().unwrap();
    assert_eq!(row.status, SessionStatus::Interrupted);
}
