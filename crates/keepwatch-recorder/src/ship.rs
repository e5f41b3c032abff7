//! The shipper: moves recordings from the node's spool into a segmented archive (S3).
//!
//! While a session runs, its spool file is uploaded in segments of whole chunks, at least
//! every `segment_interval` (when anything new was written) and whenever `segment_bytes`
//! are waiting, so a node that dies with its disk loses at most about one interval of the
//! recording. At the seal the rest goes up, then a manifest signed with the recording key
//! (`keepwatch_recording::manifest`); what the archive then holds is verified like any
//! recording (the manifest, every segment's hash, the chain, the signatures, the same seal),
//! and only then is the spool file removed, along with any segment the manifest does not
//! name (a retried upload's first try, a dead writer's copy).
//!
//! When the archive cannot be reached the spool keeps everything and the shipper retries;
//! what it holds that the archive does not is the backlog. Past `outage_spool_bytes` of
//! backlog, recorders fail closed ([`Shipper::full`]) and new sessions are refused, as on a
//! full disk. Nothing written is dropped: when the archive answers again, the backlog drains.
//!
//! Segment keys are never reused: each upload run of a recording draws a writer id, and
//! every attempt (a retry too) takes the next number of that writer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use keepwatch_core::SessionId;
use keepwatch_recording::manifest::{Manifest, Segment, chunk_extent, segment_hash};
use keepwatch_recording::{CHUNK_HEADER_LEN, FILE_HEADER_LEN};
use keepwatch_store::{Archive, BlobStore, Layout, StoreError};
use tokio::sync::{Notify, Semaphore, watch};

/// How the shipper cuts and uploads segments (`[storage]`).
#[derive(Debug, Clone)]
pub struct ShipConfig {
    /// Anything written is uploaded at least this often: with the flush interval and one
    /// upload's time, the most a node's death loses.
    pub segment_interval: Duration,
    /// A segment is cut as soon as this many bytes wait (segments end on chunk boundaries).
    pub segment_bytes: u64,
    /// Bytes the spool may hold that the archive does not (all sessions of the node) before
    /// recordings fail closed.
    pub outage_spool_bytes: u64,
    /// Uploads at once, all sessions together.
    pub uploads: usize,
}

impl Default for ShipConfig {
    fn default() -> Self {
        ShipConfig {
            segment_interval: Duration::from_secs(3),
            segment_bytes: 8 << 20,
            outage_spool_bytes: 1 << 30,
            uploads: 4,
        }
    }
}

/// How far a live recording's spool file is written.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Progress {
    /// Bytes of whole chunks in the spool file.
    pub written: u64,
    /// The seal is among them and the session's row is sealed: archive it and let go.
    pub sealed: bool,
}

/// A recorder's line to its session's upload task.
pub(crate) struct ShipHandle {
    tx: watch::Sender<Progress>,
    shipper: Shipper,
}

impl ShipHandle {
    /// `n` more bytes of whole chunks were written.
    pub(crate) fn wrote(&self, n: u64) {
        self.shipper.inner.backlog.fetch_add(n, Ordering::Relaxed);
        self.tx.send_modify(|p| p.written += n);
    }

    /// Everything is written and the row sealed.
    pub(crate) fn sealed(&self) {
        self.tx.send_modify(|p| p.sealed = true);
    }
}

struct Inner {
    blobs: BlobStore,
    key: Arc<SigningKey>,
    cfg: ShipConfig,
    /// Bytes in spool files that the archive does not hold yet.
    backlog: AtomicU64,
    /// Recordings with an upload run in this process (never two runs of one recording).
    runs: Mutex<std::collections::HashSet<SessionId>>,
    /// Told whenever a run ends.
    drained: Notify,
    uploads: Semaphore,
    /// Since when uploads fail, and the last error.
    outage: Mutex<Option<(Instant, String)>>,
}

/// Shared by every recorder of a gateway; cheap to clone.
#[derive(Clone)]
pub struct Shipper {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Shipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shipper").field("backlog", &self.backlog()).finish()
    }
}

impl Shipper {
    pub fn new(blobs: BlobStore, key: Arc<SigningKey>, cfg: ShipConfig) -> Self {
        let uploads = Semaphore::new(cfg.uploads.max(1));
        Shipper {
            inner: Arc::new(Inner {
                blobs,
                key,
                cfg,
                backlog: AtomicU64::new(0),
                runs: Mutex::new(Default::default()),
                drained: Notify::new(),
                uploads,
                outage: Mutex::new(None),
            }),
        }
    }

    /// Whether recordings go up in segments while they are written (an S3 archive).
    pub fn segmented(&self) -> bool {
        self.inner.blobs.archive().layout() == Layout::Segmented
    }

    /// Bytes in the spool that the archive does not hold yet.
    pub fn backlog(&self) -> u64 {
        self.inner.backlog.load(Ordering::Relaxed)
    }

    /// Why recordings cannot be kept any more, when the backlog has reached its bound.
    pub fn full(&self) -> Option<String> {
        let backlog = self.backlog();
        if !self.segmented() || backlog < self.inner.cfg.outage_spool_bytes {
            return None;
        }
        let why = match &*self.inner.outage.lock().unwrap_or_else(|e| e.into_inner()) {
            Some((since, e)) => {
                format!("unreachable for {} s ({e})", since.elapsed().as_secs())
            }
            None => "slower than the sessions".into(),
        };
        Some(format!(
            "the recording archive {} is {why}, and the local spool holds {backlog} bytes it does not have yet: its bound ([storage] outage_spool_bytes = {}) is reached",
            self.inner.blobs.archive().url(),
            self.inner.cfg.outage_spool_bytes
        ))
    }

    /// Recordings being uploaded now (live, or sealed and not yet committed).
    pub fn uploading(&self) -> usize {
        self.inner.runs.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Waits until every sealed recording's upload run has ended (live ones never do) or
    /// `deadline` passes; returns whether none is left.
    pub async fn drained(&self, deadline: Instant) -> bool {
        loop {
            let notified = self.inner.drained.notified();
            if self.uploading() == 0 {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
                return self.uploading() == 0;
            }
        }
    }

    /// Claims the upload of `id` for one run; `false` when a run already has it.
    fn claim(&self, id: SessionId) -> bool {
        self.inner.runs.lock().unwrap_or_else(|e| e.into_inner()).insert(id)
    }

    fn release(&self, id: SessionId) {
        self.inner.runs.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        self.inner.drained.notify_waiters();
    }

    /// Starts uploading a live recording whose spool file holds `written` bytes so far.
    pub(crate) fn follow(&self, id: SessionId, written: u64) -> Option<ShipHandle> {
        if !self.segmented() || !self.claim(id) {
            return None;
        }
        self.inner.backlog.fetch_add(written, Ordering::Relaxed);
        let (tx, rx) = watch::channel(Progress { written, sealed: false });
        tokio::spawn(ship(self.clone(), id, rx));
        Some(ShipHandle { tx, shipper: self.clone() })
    }

    /// Archives a sealed spool file no live recorder follows (sealed by recovery, or left by
    /// a gateway that stopped before it was archived), in the background.
    pub fn archive_sealed(&self, id: SessionId) {
        if !self.segmented() || !self.claim(id) {
            return;
        }
        let len = match self.inner.blobs.spool().len(id) {
            Ok(Some(len)) => len,
            Ok(None) => return self.release(id),
            Err(e) => {
                tracing::error!(session_id = %id, error = %e, "cannot archive a sealed spool");
                return self.release(id);
            }
        };
        self.inner.backlog.fetch_add(len, Ordering::Relaxed);
        let (_tx, rx) = watch::channel(Progress { written: len, sealed: true });
        tokio::spawn(ship(self.clone(), id, rx));
    }

    fn uploaded(&self, n: u64) {
        self.inner.backlog.fetch_sub(n, Ordering::Relaxed);
        self.inner.drained.notify_waiters();
    }

    fn failing(&self, id: SessionId, e: &StoreError) {
        let mut o = self.inner.outage.lock().unwrap_or_else(|e| e.into_inner());
        if o.is_none() {
            tracing::warn!(session_id = %id, error = %e, archive = self.inner.blobs.archive().url(), backlog = self.backlog(), "the recording archive fails; the spool keeps the recording and uploads are retried");
        }
        *o = Some((o.as_ref().map_or_else(Instant::now, |(t, _)| *t), e.to_string()));
    }

    fn succeeding(&self) {
        let mut o = self.inner.outage.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((since, _)) = o.take() {
            tracing::info!(
                seconds = since.elapsed().as_secs(),
                backlog = self.backlog(),
                "the recording archive answers again; draining the spool"
            );
        }
    }
}

/// One upload run of one recording: its segments so far.
struct Run {
    id: SessionId,
    writer: u64,
    attempts: u64,
    segments: Vec<Segment>,
    /// Bytes of the spool file in the archive, the next chunk seq, the last chunk's hash.
    uploaded: u64,
    next_seq: u64,
    head: [u8; 32],
}

fn random_writer() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        // Time and process as a fallback: unique enough per node, and keys are checked.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        return t ^ u64::from(std::process::id()) << 32;
    }
    u64::from_le_bytes(b)
}

async fn ship(shipper: Shipper, id: SessionId, rx: watch::Receiver<Progress>) {
    run_upload(&shipper, id, rx).await;
    shipper.release(id);
}

async fn run_upload(shipper: &Shipper, id: SessionId, mut rx: watch::Receiver<Progress>) {
    let cfg = shipper.inner.cfg.clone();
    let mut run = Run {
        id,
        writer: random_writer(),
        attempts: 0,
        segments: Vec::new(),
        uploaded: 0,
        next_seq: 0,
        head: [0; 32],
    };
    let mut last_upload = Instant::now();
    let mut backoff = Duration::from_millis(500);
    let mut closed = false;
    loop {
        let p = *rx.borrow_and_update();
        let pending = p.written.saturating_sub(run.uploaded);
        let due = p.sealed
            || pending >= cfg.segment_bytes
            || last_upload.elapsed() >= cfg.segment_interval;
        if pending > 0 && due {
            // The cadence counts from the start of an upload, so its time is not added.
            let began = Instant::now();
            match upload_next(shipper, &mut run, p.written).await {
                Ok(n) => {
                    shipper.uploaded(n);
                    shipper.succeeding();
                    last_upload = began;
                    backoff = Duration::from_millis(500);
                }
                // The archive failed: the spool keeps it, try again.
                Err(e @ (StoreError::Blob(_) | StoreError::Exists { .. })) => {
                    shipper.failing(id, &e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                // The spool itself cannot be read (removed, damaged): nothing to retry.
                // Recovery or `verify` deal with it; the backlog forgets it.
                Err(e) => {
                    tracing::error!(session_id = %id, error = %e, "cannot upload the recording from the spool; this run stops");
                    shipper.uploaded(pending);
                    return;
                }
            }
            continue;
        }
        if p.sealed {
            match commit(shipper, &run).await {
                Ok(()) => {
                    shipper.succeeding();
                    return;
                }
                Err(Commit::Retry(e)) => {
                    shipper.failing(id, &e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
                Err(Commit::Refused(why)) => {
                    // The spool stays: nothing is lost, `verify` and the next start see it.
                    tracing::error!(session_id = %id, %why, "the archived recording does not verify; its spool file is kept");
                    return;
                }
            }
        }
        if closed {
            // The recorder went away unsealed (a crash of its task): recovery seals the
            // spool and archives it from the start.
            shipper.uploaded(pending);
            return;
        }
        let wait = cfg.segment_interval.saturating_sub(last_upload.elapsed());
        tokio::select! {
            r = rx.changed() => closed = r.is_err(),
            _ = tokio::time::sleep(wait.max(Duration::from_millis(50))) => {}
        }
    }
}

/// Uploads the next segment: whole chunks from `run.uploaded`, up to `segment_bytes` (at
/// least one chunk) and at most `written`. Returns its length.
async fn upload_next(shipper: &Shipper, run: &mut Run, written: u64) -> Result<u64, StoreError> {
    let cfg = &shipper.inner.cfg;
    // The permit first: memory holds at most `uploads` segments, however many sessions wait.
    let _permit = shipper.inner.uploads.acquire().await;
    let spool = shipper.inner.blobs.spool().clone();
    let want = (written - run.uploaded)
        .min(cfg.segment_bytes + keepwatch_recording::MAX_CHUNK_PAYLOAD as u64 + 256);
    let (id, from) = (run.id, run.uploaded);
    let bytes = tokio::task::spawn_blocking(move || spool.read_range(id, from, want))
        .await
        .map_err(|e| StoreError::Invalid { what: format!("spool read task failed: {e}") })??
        .ok_or_else(|| StoreError::NotFound {
            op: "upload recording",
            kind: "spool file",
            id: run.id.to_string(),
        })?;
    // Cut at chunk boundaries.
    let mut at = if run.uploaded == 0 { FILE_HEADER_LEN } else { 0 };
    let (mut first, mut last, mut head) = (None, run.next_seq, run.head);
    while at + CHUNK_HEADER_LEN <= bytes.len()
        && (first.is_none() || at < cfg.segment_bytes as usize)
    {
        let e = chunk_extent(&bytes[at..], run.uploaded + at as u64).map_err(|e| {
            StoreError::Invalid { what: format!("spool of session {}: {e}", run.id) }
        })?;
        let end = at + e.len as usize;
        if end > bytes.len() {
            break;
        }
        let h = at + e.hash_at as usize;
        head.copy_from_slice(&bytes[h..h + 32]);
        first.get_or_insert(e.seq);
        last = e.seq;
        at = end;
    }
    let Some(first) = first else {
        return Err(StoreError::Invalid {
            what: format!(
                "spool of session {} holds no whole chunk at byte {}",
                run.id, run.uploaded
            ),
        });
    };
    let segment = bytes.slice(..at);
    let key = Archive::segment_key(run.id, run.uploaded, run.writer, run.attempts);
    run.attempts += 1;
    let hash = segment_hash(&segment);
    let len = segment.len() as u64;
    shipper.inner.blobs.archive().put_segment(&key, Bytes::clone(&segment)).await?;
    run.segments.push(Segment {
        key,
        start: run.uploaded,
        len,
        first_seq: first,
        last_seq: last,
        hash,
    });
    run.uploaded += len;
    run.next_seq = last + 1;
    run.head = head;
    Ok(len)
}

enum Commit {
    /// The archive failed: try again.
    Retry(StoreError),
    /// What the archive holds does not verify: keep the spool.
    Refused(String),
}

/// Writes the manifest, verifies the archived recording, removes the spool file and the
/// segments the manifest does not name.
async fn commit(shipper: &Shipper, run: &Run) -> Result<(), Commit> {
    let blobs = &shipper.inner.blobs;
    let id = run.id;
    let manifest = Manifest {
        session_id: id,
        segments: run.segments.clone(),
        len: run.uploaded,
        chunks: run.next_seq,
        chain_head: run.head,
    };
    match blobs.archive().put_manifest(id, manifest.to_text(&shipper.inner.key)).await {
        // A manifest already there (an earlier run got this far): verified below.
        Ok(()) | Err(StoreError::Exists { .. }) => {}
        Err(e) => return Err(Commit::Retry(e)),
    }
    let key = shipper.inner.key.verifying_key();
    let verified =
        crate::integrity::verify_archived(blobs, &key, id).await.map_err(Commit::Retry)?;
    match verified {
        Some(Ok(v)) if v.chain_head == run.head && v.chunks == run.next_seq && v.seal.is_some() => {
        }
        Some(Ok(_)) => {
            return Err(Commit::Refused(
                "the archive holds another sealed recording for this session".into(),
            ));
        }
        Some(Err(e)) => return Err(Commit::Refused(e.to_string())),
        None => return Err(Commit::Refused("the archive holds no manifest".into())),
    }
    // The manifest in the archive names what to keep (ours, or an earlier run's that got
    // this far with the same recording).
    let keep: std::collections::HashSet<String> = match blobs.archive().manifest(id).await {
        Ok(Some(text)) => match Manifest::parse(&text, &key, id) {
            Ok(m) => m.segments.into_iter().map(|s| s.key).collect(),
            Err(e) => return Err(Commit::Refused(e.to_string())),
        },
        Ok(None) => return Err(Commit::Refused("the manifest went missing".into())),
        Err(e) => return Err(Commit::Retry(e)),
    };
    if let Err(e) = blobs.spool().remove(id) {
        tracing::error!(session_id = %id, error = %e, "archived, but the spool file cannot be removed");
    }
    // Segments no manifest names: a retried upload's first try, an earlier run's copy.
    if let Ok(listed) = blobs.archive().segments(id).await {
        for s in listed {
            if !keep.contains(&s.key) {
                let _ = blobs.archive().delete_object(&s.key).await;
            }
        }
    }
    tracing::info!(session_id = %id, segments = run.segments.len(), bytes = run.uploaded, "recording archived");
    Ok(())
}

#[cfg(test)]
mod tests;
