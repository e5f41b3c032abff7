//! The recorder: one task per session that owns its recording file.
//!
//! Gateways hand events to a [`Recorder`] through a bounded channel (backpressure, never an
//! unbounded buffer). The task appends them to the session's spool file, writes what is
//! pending every half `flush_interval` and syncs at least every `flush_interval` (the most a
//! crash can lose), signs a checkpoint at least every
//! `checkpoint_interval`, and on seal appends it to the ledger and moves the recording into the
//! archive (a rename, or through the [`Shipper`], which also uploads it as it grows). A write
//! that fails is reported on [`Recorder::failure`] so the gateway can end the session (fail
//! closed) while other sessions go on.

mod anchor;
mod holdback;
mod integrity;
mod recover;
mod ship;

pub use anchor::{AnchorConfig, AnchorError, CheckpointBoard, run_anchors, write_anchor};
pub use integrity::{
    Problem, Verification, check_anchors, check_audit, check_ledger, check_session, compare_row,
    verify_all, verify_archived, verify_recording,
};
pub use recover::{
    Recovered, SYSTEM_ACTOR, archive_sealed_spools, recover_interrupted, recover_lapsed_nodes,
};
pub use ship::{ShipConfig, Shipper};

use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use keepwatch_core::metrics::METRICS;
use keepwatch_core::{NodeId, OutputMask, SessionId, SessionStatus};
use keepwatch_recording::{
    DataKey, Event, RecordingWriter, Seal, SealInfo, SessionStart, TimedEvent,
};
use keepwatch_store::{BlobStore, Layout, SpoolWriter, Store, now_us};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// How often the recorder writes and signs.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// Chunks reach the file at least this often; a crash loses at most this much.
    pub flush_interval: Duration,
    /// A signed checkpoint at least this often while the session produces data.
    pub checkpoint_interval: Duration,
    /// Flush early once this many uncompressed bytes are pending.
    pub flush_bytes: usize,
    /// Events queued between the gateway and the recorder before the gateway waits.
    pub queue: usize,
    /// Secrets in output, input, exec command lines and environment values replaced by a
    /// marker before they are recorded (each stream's unfinished line is held back until it
    /// ends or the next flush, so a secret typed a key at a time is seen whole).
    pub mask: OutputMask,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            flush_interval: Duration::from_secs(1),
            checkpoint_interval: Duration::from_secs(10),
            flush_bytes: 1 << 20,
            queue: 256,
            mask: OutputMask::defaults(),
        }
    }
}

/// Shared by every recorder of a gateway.
#[derive(Clone)]
pub struct RecorderContext {
    /// The node these recordings are made on: new sessions are its, and recovery at start
    /// touches only its own (and those from before nodes).
    pub node: NodeId,
    pub store: Store,
    pub blobs: BlobStore,
    pub signing_key: Arc<SigningKey>,
    pub config: RecorderConfig,
    /// Every live recording's latest signed checkpoint, for anchors.
    pub checkpoints: Arc<CheckpointBoard>,
    /// Uploads recordings into a segmented archive (idle with a local one).
    pub shipper: Shipper,
    /// Recordings are encrypted at rest, each under a data key of its own from the store
    /// (which must hold the KEK: `Store::with_kek`).
    pub encrypt: bool,
}

impl RecorderContext {
    /// A context whose shipper uses `ship` (ignored unless the archive is segmented).
    pub fn new(
        node: NodeId,
        store: Store,
        blobs: BlobStore,
        signing_key: Arc<SigningKey>,
        config: RecorderConfig,
        ship: ShipConfig,
    ) -> Self {
        let shipper = Shipper::new(blobs.clone(), signing_key.clone(), ship);
        RecorderContext {
            node,
            store,
            blobs,
            signing_key,
            config,
            checkpoints: Default::default(),
            shipper,
            encrypt: false,
        }
    }

    /// Encrypts new recordings, each under a data key of its own from the store.
    pub fn encrypted(mut self, on: bool) -> Self {
        self.encrypt = on;
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("cannot create recording {path}: {source}")]
    Create { path: String, source: keepwatch_store::StoreError },
    #[error("cannot start recording {id}: {reason}")]
    Refused { id: SessionId, reason: String },
    #[error("recording of session {id} failed: {reason}")]
    Failed { id: SessionId, reason: String },
    #[error("cannot store session {id}: {source}")]
    Store { id: SessionId, source: keepwatch_store::StoreError },
}

enum Command {
    Event(TimedEvent),
    Seal {
        at_us: u64,
        status: SessionStatus,
        reason: Option<String>,
        done: oneshot::Sender<Result<SealInfo, RecorderError>>,
    },
    Watch {
        done: oneshot::Sender<WatchStart>,
    },
}

/// Events a live watcher may miss before it is dropped as too slow.
const WATCH_BACKLOG: usize = 1024;

/// Where a live watcher starts: everything before is in the spool file's first
/// `recorded_len` bytes, everything after comes on `events`, in order, as recorded (masked
/// and redacted). `events` reports `Lagged` when the watcher fell behind by more than a
/// bounded backlog (drop it) and `Closed` when the session was sealed.
pub struct WatchStart {
    pub recorded_len: u64,
    pub events: broadcast::Receiver<Arc<TimedEvent>>,
}

/// The gateway's handle on one session's recording. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    id: SessionId,
    started: Instant,
    tx: mpsc::Sender<Command>,
    failure: watch::Receiver<Option<String>>,
    /// The recording's data key, for what is kept beside it (copies of transferred files).
    data_key: Option<DataKey>,
}

impl Recorder {
    /// Creates the spool file and writes the first chunk (the session's identity, with the
    /// reason the person gave, if any) before returning, so a session never starts without
    /// a recording.
    ///
    /// # Errors
    /// Fails when the recording file cannot be created or written.
    pub async fn start(
        ctx: &RecorderContext,
        start: SessionStart,
        reason: Option<String>,
    ) -> Result<Recorder, RecorderError> {
        let id = start.session_id;
        if let Some(reason) = ctx.shipper.full() {
            return Err(RecorderError::Refused { id, reason });
        }
        let path = ctx.blobs.spool().location(id);
        let create_err = |source| RecorderError::Create { path: path.clone(), source };
        let mut writer = RecordingWriter::new(start, (*ctx.signing_key).clone());
        let mut data_key = None;
        if ctx.encrypt {
            // No data key, no session: a recording is never written in clear by mistake.
            let refused = |reason: String| RecorderError::Refused { id, reason };
            let key = ctx.store.new_data_key(id).await.map_err(|e| refused(e.to_string()))?;
            writer = writer.encrypted(key.clone()).map_err(|e| refused(e.to_string()))?;
            data_key = Some(key);
        }
        if let Some(reason) = reason {
            writer.push(&TimedEvent { at_us: 0, event: Event::Context { reason } });
        }
        let first = writer.flush(now_us(), true).unwrap_or_default();
        let written = first.len() as u64;
        METRICS.recorded(first.len());
        let spool = ctx.blobs.spool().clone();
        let file = tokio::task::spawn_blocking(move || spool.create(id, &first))
            .await
            .map_err(|e| create_err(keepwatch_store::StoreError::Invalid { what: e.to_string() }))?
            .map_err(create_err)?;
        let ship = ctx.shipper.follow(id, written);
        // Chunk 0 is a signed checkpoint: anchors vouch for the session from now on.
        ctx.checkpoints.set(id, writer.next_seq() - 1, writer.chain_head());
        let (tx, rx) = mpsc::channel(ctx.config.queue);
        let (fail_tx, failure) = watch::channel(None);
        let started = Instant::now();
        let task = RecorderTask {
            started,
            ctx: ctx.clone(),
            id,
            writer: Some(writer),
            file: Some(file),
            fail_tx,
            last_checkpoint: Instant::now(),
            unsigned_chunks: false,
            out: Vec::new(),
            holdback: holdback::Holdback::new(ctx.config.mask.clone()),
            released: Vec::new(),
            written,
            watchers: None,
            unsynced: false,
            pending_since_us: None,
            ship,
        };
        // The task is watched: if it panics (a bug), the session is sealed `interrupted` from
        // what reached the file, and the gateway, whose next record() fails, ends it.
        let running = tokio::spawn(task.run(rx));
        let watch_ctx = ctx.clone();
        tokio::spawn(async move {
            if let Err(e) = running.await
                && e.is_panic()
            {
                tracing::error!(session_id = %id, "the recorder task panicked; sealing the recording as interrupted");
                let reason = "the recorder failed (a bug); sealed from what reached the file";
                recover::recover_now(&watch_ctx, id, reason).await;
            }
        });
        Ok(Recorder { id, started, tx, failure, data_key })
    }

    pub fn session_id(&self) -> SessionId {
        self.id
    }

    /// The recording's data key (`None` when it is recorded in clear): copies of files kept
    /// beside the recording are sealed under it too.
    pub fn data_key(&self) -> Option<DataKey> {
        self.data_key.clone()
    }

    /// Microseconds since the session started, the clock of every event.
    pub fn elapsed_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// Queues an event, waiting if the recorder is behind (backpressure).
    ///
    /// # Errors
    /// Fails when the recording has failed; the caller decides whether the session goes on.
    pub async fn record(&self, event: Event) -> Result<(), RecorderError> {
        let ev = TimedEvent { at_us: self.elapsed_us(), event };
        if let Some(reason) = self.failure.borrow().clone() {
            return Err(RecorderError::Failed { id: self.id, reason });
        }
        self.tx.send(Command::Event(ev)).await.map_err(|_| self.gone())
    }

    fn gone(&self) -> RecorderError {
        let reason = self.failure.borrow().clone().unwrap_or_else(|| "recorder stopped".into());
        RecorderError::Failed { id: self.id, reason }
    }

    /// Resolves with the failure reason once the recording can no longer be written.
    pub fn failure(&self) -> watch::Receiver<Option<String>> {
        self.failure.clone()
    }

    /// Starts watching the live session; `None` once it is sealed or failed.
    pub async fn watch(&self) -> Option<WatchStart> {
        let (done, rx) = oneshot::channel();
        self.tx.send(Command::Watch { done }).await.ok()?;
        rx.await.ok()
    }

    /// Seals the recording with `status`, ledgers it and moves it into the archive.
    ///
    /// # Errors
    /// Fails when the seal cannot be written or stored.
    pub async fn seal(
        &self,
        status: SessionStatus,
        reason: Option<String>,
    ) -> Result<SealInfo, RecorderError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Command::Seal { at_us: self.elapsed_us(), status, reason, done })
            .await
            .map_err(|_| self.gone())?;
        rx.await.map_err(|_| self.gone())?
    }
}

struct RecorderTask {
    ctx: RecorderContext,
    id: SessionId,
    writer: Option<RecordingWriter>,
    file: Option<SpoolWriter>,
    fail_tx: watch::Sender<Option<String>>,
    last_checkpoint: Instant,
    unsigned_chunks: bool,
    /// Chunk bytes on their way to the file, reused between flushes.
    out: Vec<u8>,
    /// Events waiting for their line to end, to be masked whole.
    holdback: holdback::Holdback,
    /// When the session started: the clock of every event (shared with the [`Recorder`]).
    started: Instant,
    /// Events the holdback let go, on their way to the writer (reused).
    released: Vec<TimedEvent>,
    /// Bytes in the spool file.
    written: u64,
    /// Live watchers, once one asked.
    watchers: Option<broadcast::Sender<Arc<TimedEvent>>>,
    /// Chunks were written since the last sync.
    unsynced: bool,
    /// When the oldest event not yet in the file reached the recorder (its `at_us`).
    pending_since_us: Option<u64>,
    /// The upload of this recording into a segmented archive.
    ship: Option<ship::ShipHandle>,
}

impl RecorderTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        // Ticks come twice per flush interval: a held line goes once it is half an interval
        // old (so a secret typed at a normal pace is seen whole, whatever the tick's phase),
        // and reaches the file within one interval of its first byte. Every tick writes;
        // every other tick also syncs, so the sync rate stays once per interval.
        let half = self.ctx.config.flush_interval / 2;
        let mut tick = tokio::time::interval(half.max(Duration::from_millis(1)));
        let mut sync_now = false;
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Command::Event(ev)) => {
                        if self.writer.is_none() {
                            continue;
                        }
                        #[cfg(test)]
                        tests::maybe_panic(&ev);
                        let mut released = std::mem::take(&mut self.released);
                        self.holdback.push(ev, &mut released);
                        self.write_released(&mut released);
                        self.released = released;
                        if self.writer.as_ref().is_some_and(|w| w.pending_len() >= self.ctx.config.flush_bytes) {
                            self.flush(false, false).await;
                        }
                    }
                    Some(Command::Watch { done }) => {
                        // Everything so far goes to the file, the rest to the watcher.
                        self.release_held();
                        self.flush(false, false).await;
                        let tx = self.watchers.get_or_insert_with(|| broadcast::channel(WATCH_BACKLOG).0);
                        let _ = done.send(WatchStart { recorded_len: self.written, events: tx.subscribe() });
                    }
                    Some(Command::Seal { at_us, status, reason, done }) => {
                        self.release_held();
                        let _ = done.send(self.seal(at_us, status, reason).await);
                        return;
                    }
                    // Every handle dropped without a seal: leave the spool for recovery.
                    None => {
                        self.release_held();
                        self.flush(false, true).await;
                        return;
                    }
                },
                _ = tick.tick() => {
                    // A held line goes once it has been idle for half an interval, or has been
                    // growing for `MAX_HELD_INTERVALS`: a crash loses at most that of it.
                    self.release_stale(half, self.ctx.config.flush_interval * holdback::MAX_HELD_INTERVALS);
                    let checkpoint = self.last_checkpoint.elapsed() >= self.ctx.config.checkpoint_interval;
                    sync_now = !sync_now;
                    if !self.flush(checkpoint, sync_now || checkpoint).await {
                        // A quiet tick: give back what an idle session does not need.
                        if let Some(w) = self.writer.as_mut() {
                            w.release_buffers();
                        }
                        self.out = Vec::new();
                        self.released = Vec::new();
                    }
                }
            }
        }
    }

    /// Hands events the holdback let go to the writer and the live watchers.
    fn write_released(&mut self, released: &mut Vec<TimedEvent>) {
        let Some(w) = self.writer.as_mut() else {
            released.clear();
            return;
        };
        if self.pending_since_us.is_none() {
            self.pending_since_us = released.first().map(|ev| ev.at_us);
        }
        let watchers = self.watchers.as_ref().filter(|tx| tx.receiver_count() > 0);
        for ev in released.drain(..) {
            w.push(&ev);
            if let Some(tx) = watchers {
                let _ = tx.send(Arc::new(ev));
            }
        }
    }

    /// Lets every held event go (masked as its line stands).
    fn release_held(&mut self) {
        if self.holdback.is_empty() {
            return;
        }
        let mut released = std::mem::take(&mut self.released);
        self.holdback.release_all(&mut released);
        self.write_released(&mut released);
        self.released = released;
    }

    /// Lets go the lines idle for `idle` or started at least `age` ago (masked as they stand).
    fn release_stale(&mut self, idle: Duration, age: Duration) {
        if self.holdback.is_empty() {
            return;
        }
        let now_us = self.started.elapsed().as_micros() as u64;
        let ago = |d: Duration| now_us.saturating_sub(d.as_micros() as u64);
        let mut released = std::mem::take(&mut self.released);
        self.holdback.release_stale(ago(idle), ago(age), &mut released);
        self.write_released(&mut released);
        self.released = released;
    }

    /// Writes what is pending as one chunk; `sync` also makes it durable. Returns whether
    /// anything was written.
    async fn flush(&mut self, checkpoint: bool, sync: bool) -> bool {
        let (Some(w), Some(file)) = (self.writer.as_mut(), self.file.as_mut()) else {
            return false;
        };
        let sign = checkpoint && (self.unsigned_chunks || w.pending_len() > 0);
        self.out.clear();
        if !w.flush_into(&mut self.out, now_us(), sign) {
            if sync && self.unsynced {
                // What an earlier tick wrote without a sync.
                self.unsynced = false;
                if let Err(e) = tokio::task::block_in_place(|| file.sync()) {
                    self.fail(e.to_string());
                }
            }
            return false;
        }
        self.unsynced = !sync;
        self.unsigned_chunks = !sign;
        if sign {
            self.last_checkpoint = Instant::now();
            self.ctx.checkpoints.set(self.id, w.next_seq() - 1, w.chain_head());
        }
        let bytes = &self.out;
        let began = Instant::now();
        let res = tokio::task::block_in_place(|| file.append(bytes, sync));
        match res {
            Ok(()) => {
                let n = bytes.len();
                self.wrote(began, n);
                self.written += n as u64;
                if let Some(ship) = &self.ship {
                    ship.wrote(n as u64);
                }
                // An archive that has been away too long: the spool is at its bound.
                if let Some(reason) = self.ctx.shipper.full() {
                    self.fail(reason);
                }
            }
            Err(e) => self.fail(e.to_string()),
        }
        true
    }

    /// Counts a chunk written in the time since `began`: its bytes, how long the write took,
    /// and how long the oldest event in it waited.
    fn wrote(&mut self, began: Instant, n: usize) {
        METRICS.flush_seconds.observe(began.elapsed());
        METRICS.recorded(n);
        if let Some(at_us) = self.pending_since_us.take() {
            let now_us = self.started.elapsed().as_micros() as u64;
            METRICS
                .recording_lag_seconds
                .observe(Duration::from_micros(now_us.saturating_sub(at_us)));
        }
    }

    fn fail(&mut self, reason: String) {
        tracing::error!(session_id = %self.id, %reason, "recording failed");
        METRICS.recording_failed();
        self.writer = None;
        self.file = None;
        let _ = self.fail_tx.send(Some(reason));
    }

    async fn seal(
        &mut self,
        at_us: u64,
        status: SessionStatus,
        reason: Option<String>,
    ) -> Result<SealInfo, RecorderError> {
        let failed = || RecorderError::Failed {
            id: self.id,
            reason: self
                .fail_tx
                .borrow()
                .clone()
                .unwrap_or_else(|| "recording already failed".into()),
        };
        let (Some(w), Some(mut file)) = (self.writer.take(), self.file.take()) else {
            return Err(failed());
        };
        let ended = now_us();
        let (bytes, info) = w.seal(
            at_us,
            Seal { status, reason: reason.clone(), ended_at_us: ended, unsigned_tail: None },
            ended,
        );
        let began = Instant::now();
        tokio::task::block_in_place(|| file.append(&bytes, true)).map_err(|e| {
            RecorderError::Failed { id: self.id, reason: format!("cannot write the seal: {e}") }
        })?;
        self.wrote(began, bytes.len());
        drop(file);
        if let Some(ship) = &self.ship {
            ship.wrote(bytes.len() as u64);
        }
        let ship = self.ship.take();
        finish(&self.ctx, self.id, status, reason.as_deref(), &info, ended, ship).await?;
        // Sealed and in the ledger: the ledger's head vouches for it now.
        self.ctx.checkpoints.remove(self.id);
        Ok(info)
    }
}

/// Records the seal in the database and ledger, then moves the sealed spool into the
/// archive: renamed in whole (a local archive), or handed to the shipper, which uploads the
/// rest and the manifest and removes the spool once the archive's copy verifies.
async fn finish(
    ctx: &RecorderContext,
    id: SessionId,
    status: SessionStatus,
    reason: Option<&str>,
    info: &SealInfo,
    ended_at_us: i64,
    ship: Option<ship::ShipHandle>,
) -> Result<(), RecorderError> {
    let store_err = |source| RecorderError::Store { id, source };
    // The row first: until the move, readers find the sealed recording in the spool, so a
    // crash between the two leaves a consistent (if unmoved) session, which the next start
    // archives.
    ctx.store
        .finish_session(id, status, reason, info, ended_at_us, &ctx.signing_key)
        .await
        .map_err(store_err)?;
    match (ctx.blobs.archive().layout(), ship) {
        (Layout::Whole, _) => ctx.blobs.commit_whole(id).await.map_err(store_err)?,
        (Layout::Segmented, Some(ship)) => ship.sealed(),
        (Layout::Segmented, None) => ctx.shipper.archive_sealed(id),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use keepwatch_core::{SessionId, SessionStatus};
    use keepwatch_recording::{Event, SessionStart, TimedEvent};
    use keepwatch_store::{BlobStore, SessionFilter, SessionRow, Store, now_us};

    use super::{Recorder, RecorderConfig, RecorderContext};

    const PANIC_MARKER: &[u8] = b"kw-test-panic-now";

    /// Makes the recorder task panic on an event carrying the marker (tests only).
    pub(super) fn maybe_panic(ev: &TimedEvent) {
        if let Event::Output { data, .. } = &ev.event
            && data.windows(PANIC_MARKER.len()).any(|w| w == PANIC_MARKER)
        {
            panic!("test panic in the recorder");
        }
    }

    /// Issue 10: a recorder task that panics is logged with its session, the session is
    /// sealed `interrupted` from what reached the file (and verifies), and the gateway's next
    /// record() fails so it ends the session.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_recorder_seals_its_session_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db")).await.unwrap();
        let key = Arc::new(ed25519_dalek::SigningKey::from_bytes(&[3; 32]));
        let ctx = RecorderContext::new(
            "node-test".parse().unwrap(),
            store.clone(),
            BlobStore::local(dir.path()).unwrap(),
            key.clone(),
            RecorderConfig::default(),
            Default::default(),
        );
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
        store.insert_session(&row).await.unwrap();
        let start = SessionStart {
            session_id: id,
            user: row.person.clone(),
            target: row.target.clone(),
            target_host: row.target_host.clone(),
            target_login: row.target_login.clone(),
            client_addr: row.client_addr.clone(),
            started_at_us: row.started_at_us,
        };
        let rec = Recorder::start(&ctx, start, None).await.unwrap();
        rec.record(Event::Output { channel: 0, data: b"before\n".to_vec() }).await.unwrap();
        let _ = rec.record(Event::Output { channel: 0, data: PANIC_MARKER.to_vec() }).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let sealed = loop {
            let s = store.session(id).await.unwrap().unwrap();
            if s.status != SessionStatus::Active {
                break s;
            }
            assert!(std::time::Instant::now() < deadline, "never sealed");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert_eq!(sealed.status, SessionStatus::Interrupted);
        assert!(sealed.reason.as_deref().unwrap_or("").contains("recorder failed"), "{sealed:?}");
        assert!(rec.record(Event::Output { channel: 0, data: b"after".to_vec() }).await.is_err());
        let problems = super::check_session(&ctx.blobs, &key.verifying_key(), id, Some(&sealed))
            .await
            .unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        let audit = store
            .audit_events(&keepwatch_store::AuditFilter { session: Some(id), ..Default::default() })
            .await
            .unwrap();
        assert!(audit.iter().any(|e| e.action == keepwatch_core::AuditAction::SessionRecovered));
        assert!(store.sessions(&SessionFilter::active()).await.unwrap().is_empty());
    }
}
