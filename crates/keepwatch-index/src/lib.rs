//! The indexer: what people ran and saw, extracted from recordings into the search index.
//!
//! It reads recordings, never the data path: live sessions are followed by reading their
//! spool files as the recorder appends them ([`RecordingTail`]), so a slow index never
//! slows a session. [`Indexer::tick`] (every second under `run`) brings every live session
//! up to date, in rounds of one 4 MiB piece each, the smallest backlog first, within a time
//! budget (one session printing a flood never holds up the others); it finishes the
//! sessions that were sealed since, and catches up on ended sessions that were never fully
//! indexed (after a crash, a restart or an upgrade), a few at a time, in the same rounds:
//! a big recording being caught up takes its turn like a flooding live session and holds up
//! nobody. [`reindex`] is what `keepwatch reindex` does on demand, one session whole. Every
//! write of rows also says how far into the recording they reach ([`IndexProgress`]), so
//! the store can tell how complete the index of each session is (`Store::index_status`).
//! A write the database refuses (busy, down) is kept and sent again before the recording is
//! read further: the follower is never dropped for it, since a new one would clear the
//! session's index and read its recording again, and its hits would vanish meanwhile.
//! A recording that cannot be indexed (it does not parse, or extracting it panicked) is
//! noted on its session and left alone until `reindex`: it never stops the indexing of the
//! others, and a live one is not followed again from the start every tick.
//!
//! **Invariant:** the index only ever holds what the recording holds: input typed at
//! password prompts is already a redaction marker there, and masked output a mask.

mod blocks;
mod session;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use keepwatch_core::metrics::METRICS;
use keepwatch_core::{NodeId, SessionId};
use keepwatch_recording::{ReadError, RecordingTail};
use keepwatch_store::{
    BlobStore, CommandRow, DataKey, IndexProgress, KeyError, KeyframeRow, OutputBlock,
    SessionFilter, Store, StoreError,
};
use tokio_util::sync::CancellationToken;

pub use blocks::Blocks;
pub use session::SessionIndexer;

/// Bytes of a recording read and processed at once.
const PIECE: u64 = 4 << 20;
/// Ended sessions caught up at once (each holds a terminal model while it is).
const CATCH_UP_AT_ONCE: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("recording of session {id} cannot be read: {source}")]
    Recording { id: SessionId, source: ReadError },
    #[error("extracting the recording panicked: {0}")]
    Task(String),
    /// The runtime is shutting down: nothing is wrong with the recording.
    #[error("indexing task cancelled")]
    Cancelled,
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl IndexError {
    /// The database, not the recording, failed: the same write may succeed at a later tick.
    fn is_store_down(&self) -> bool {
        matches!(
            self,
            IndexError::Store(StoreError::Unavailable { .. } | StoreError::Conflict { .. })
        )
    }
}

/// Sessions whose extraction panics, as a bug in the terminal model that a hostile byte
/// stream hit would (planted by tests).
#[cfg(test)]
static PANIC_IN: std::sync::Mutex<Vec<SessionId>> = std::sync::Mutex::new(Vec::new());

/// Ticks without new bytes after which a live session's follower gives back its emulators.
const QUIET_TICKS: u32 = 5;

/// One recording being followed: where reading stopped, and the extraction state.
struct Follow {
    tail: RecordingTail,
    session: SessionIndexer,
    quiet_ticks: u32,
    /// An ended session being caught up: its recording's whole length (it no longer grows).
    catch_up: Option<u64>,
    /// Extracted and not yet written (the last write failed): at most one piece's worth, as
    /// nothing more is read until it is written.
    unsaved: Unsaved,
}

#[derive(Default)]
struct Unsaved {
    keyframes: Vec<KeyframeRow>,
    rows: Vec<CommandRow>,
    blocks: Vec<OutputBlock>,
}

impl Unsaved {
    fn is_empty(&self) -> bool {
        self.keyframes.is_empty() && self.rows.is_empty() && self.blocks.is_empty()
    }
}

impl Follow {
    /// Follows the recording of session `id`, with its data key when it is encrypted.
    async fn new(store: &Store, id: SessionId) -> Result<Self, IndexError> {
        let key: Option<DataKey> = store.recording_key(id).await?;
        Ok(Follow {
            tail: RecordingTail::new(key),
            session: SessionIndexer::new(),
            quiet_ticks: 0,
            catch_up: None,
            unsaved: Unsaved::default(),
        })
    }

    /// Starts indexing ended session `id` again from the start of its recording, replacing
    /// what was indexed before.
    async fn from_start(
        store: &Store,
        blobs: &BlobStore,
        id: SessionId,
    ) -> Result<Self, IndexError> {
        // Read before clearing: a recording this node cannot read (not found here, a bucket
        // that is down) must not cost the session the index it has.
        blobs.read_recording_range(id, 0, 1).await?;
        let follow = Follow::new(store, id).await?;
        store.clear_index(id).await?;
        Ok(follow)
    }

    /// Where reading stopped, as the store keeps it: every event of the whole chunks read so
    /// far is in the rows handed to the store.
    fn partial(&self) -> IndexProgress {
        IndexProgress::Partial { bytes: self.tail.consumed_offset() }
    }

    /// Where reading stopped, or the end once the seal was read.
    fn progress(&self) -> IndexProgress {
        if self.tail.is_sealed() { IndexProgress::Complete } else { self.partial() }
    }

    /// Moves what the extractor has ready into `unsaved`; says whether anything is there.
    fn collect(&mut self) -> bool {
        self.unsaved.keyframes.extend(self.session.drain_keyframes());
        self.unsaved.rows.extend(self.session.drain_rows());
        self.unsaved.blocks.extend(self.session.drain_blocks());
        !self.unsaved.is_empty()
    }

    /// Writes what was extracted and not yet written, with `progress`. On failure it is kept
    /// for the next write; keyframes already written are not sent again.
    async fn save(
        &mut self,
        store: &Store,
        id: SessionId,
        progress: IndexProgress,
    ) -> Result<(), IndexError> {
        self.collect();
        if !self.unsaved.keyframes.is_empty() {
            store.add_keyframes(id, &self.unsaved.keyframes).await?;
            self.unsaved.keyframes.clear();
        }
        store.add_commands(id, &self.unsaved.rows, &self.unsaved.blocks, progress).await?;
        self.unsaved = Unsaved::default();
        Ok(())
    }

    /// The recording ends where reading stopped: every channel's last command is done.
    /// `progress` says whether that is the end of the recording for good.
    async fn finish(
        &mut self,
        store: &Store,
        id: SessionId,
        progress: IndexProgress,
    ) -> Result<(), IndexError> {
        self.session.finish(self.session.last_at_us());
        self.save(store, id, progress).await
    }

    /// Counts a tick that read nothing; after [`QUIET_TICKS`] the follower sleeps (once).
    fn quiet_tick(&mut self, read_anything: bool) {
        if read_anything {
            self.quiet_ticks = 0;
            return;
        }
        self.quiet_ticks = self.quiet_ticks.saturating_add(1);
        if self.quiet_ticks == QUIET_TICKS {
            self.tail.release_buffers();
            self.session.hibernate();
        }
    }

    /// Reads what is new in the recording (to its current end, or `pieces` pieces of it)
    /// into the index; says whether the seal was reached or more is there to read.
    async fn advance(
        &mut self,
        store: &Store,
        blobs: &BlobStore,
        id: SessionId,
        pieces: Option<usize>,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<Advanced, IndexError> {
        if !self.unsaved.is_empty() {
            // The last write failed: nothing more is read until it is made.
            let progress = self.progress();
            self.save(store, id, progress).await?;
        }
        let mut read = 0;
        loop {
            if pieces.is_some_and(|n| read >= n) {
                return Ok(Advanced::More);
            }
            read += 1;
            let piece = blobs.read_recording_range(id, self.tail.read_offset(), PIECE).await?;
            if piece.is_empty() {
                return Ok(if self.tail.is_sealed() { Advanced::Sealed } else { Advanced::AtEnd });
            }
            progress(piece.len() as u64);
            let mut tail = std::mem::take(&mut self.tail);
            let mut session = std::mem::take(&mut self.session);
            #[cfg(test)]
            let planted = PANIC_IN.lock().unwrap().contains(&id);
            // Terminal emulation is CPU work: keep it off the async workers.
            let (tail, session, result) = tokio::task::spawn_blocking(move || {
                #[cfg(test)]
                assert!(!planted, "a panic planted by a test");
                let r = tail.push_chunks(&piece, |offset, events| {
                    session.chunk(offset);
                    for ev in events {
                        session.event(ev);
                    }
                });
                (tail, session, r)
            })
            .await
            .map_err(|e| {
                if e.is_panic() { IndexError::Task(e.to_string()) } else { IndexError::Cancelled }
            })?;
            self.tail = tail;
            self.session = session;
            // The decompressor and chunk buffer are per read, not per follower: an idle
            // session must not hold them between ticks.
            self.tail.release_buffers();
            result.map_err(|source| IndexError::Recording { id, source })?;
            let progress = self.progress();
            self.save(store, id, progress).await?;
            if self.tail.is_sealed() {
                return Ok(Advanced::Sealed);
            }
        }
    }
}

/// How far [`Follow::advance`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Advanced {
    /// The seal was read: the recording is whole.
    Sealed,
    /// Everything there is now was read.
    AtEnd,
    /// It stopped after the pieces it was given: more is there.
    More,
}

/// Live sessions take turns within a tick, a piece each, for at most this long: a session
/// printing faster than the indexer reads falls behind alone, and the others stay current.
const TICK_BUDGET: Duration = Duration::from_secs(2);

/// Keeps the search index current with the recordings; see the crate docs.
pub struct Indexer {
    store: Store,
    blobs: BlobStore,
    /// Live sessions, sessions that ended and are being finished, and sessions caught up.
    followed: HashMap<SessionId, Follow>,
    /// Live sessions are followed only on their own node (their spool is there).
    node: Option<NodeId>,
    /// Live sessions whose recording could not be indexed (the error is on the session):
    /// not followed again while they stay live.
    given_up: HashSet<SessionId>,
}

/// Drives [`Store::finish_index_rebuild`] to the end or until `shutdown` (each batch is its
/// own transaction: the next start goes on from there), trying again a while after an error.
async fn finish_rebuild(store: Store, shutdown: CancellationToken) {
    const RETRY: Duration = Duration::from_secs(30);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = store.finish_index_rebuild() => match r {
                Ok(()) => return,
                Err(e) => tracing::warn!(
                    "indexer: giving stored output back to the search index (tried again in \
                     {}s): {e}",
                    RETRY.as_secs()
                ),
            },
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

impl Indexer {
    pub fn new(store: Store, blobs: BlobStore) -> Self {
        Indexer { store, blobs, followed: HashMap::new(), node: None, given_up: HashSet::new() }
    }

    /// Follows only `node`'s live sessions (another node's spool is not on this disk).
    #[must_use]
    pub fn on_node(mut self, node: NodeId) -> Self {
        self.node = Some(node);
        self
    }

    /// Ticks every `every` until `shutdown`; errors are logged and the next tick retries.
    /// Beside the ticks, gives the search index back what a schema upgrade took out of it
    /// ([`Store::finish_index_rebuild`]), so neither waits for the other.
    pub async fn run(mut self, every: Duration, shutdown: CancellationToken) {
        let rebuild = tokio::spawn(finish_rebuild(self.store.clone(), shutdown.clone()));
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
            // A tick can take long (a big recording caught up): shutting down does not wait
            // for it. What it wrote is whole (each write is one transaction); the rest is
            // indexed again from the recordings after the restart.
            tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.tick() => {
                    if let Err(e) = r {
                        tracing::warn!("indexer: {e}");
                    }
                }
            }
        }
        let _ = rebuild.await;
    }

    /// One round: live sessions brought up to date, sealed ones finished, missed ones
    /// caught up.
    ///
    /// # Errors
    /// The database cannot be read; a recording that cannot be indexed is noted on its
    /// session instead.
    pub async fn tick(&mut self) -> Result<(), IndexError> {
        let filter = SessionFilter { node: self.node.clone(), ..SessionFilter::active() };
        let active: HashSet<SessionId> =
            self.store.sessions(&filter).await?.iter().map(|s| s.id).collect();
        self.given_up.retain(|id| active.contains(id));
        for &id in &active {
            if !self.followed.contains_key(&id) && !self.given_up.contains(&id) {
                // Whatever an earlier run indexed of it was lost with its state.
                self.store.clear_index(id).await?;
                match Follow::new(&self.store, id).await {
                    Ok(f) => {
                        self.followed.insert(id, f);
                    }
                    Err(e) => self.failed(id, e).await?,
                }
            }
        }
        self.start_catch_ups().await?;
        let read_from: HashMap<SessionId, u64> =
            self.followed.iter().map(|(&id, f)| (id, f.tail.read_offset())).collect();
        // Rounds of one piece each, the smallest backlog first, until all are current or the
        // budget is spent: live sessions, sessions that just ended, and sessions caught up.
        let mut round: Vec<SessionId> = read_from.keys().copied().collect();
        let mut stopped: HashMap<SessionId, Advanced> = HashMap::new();
        let started = std::time::Instant::now();
        while !round.is_empty() && started.elapsed() < TICK_BUDGET {
            let mut order: Vec<(u64, SessionId)> =
                round.iter().map(|&id| (self.backlog(id), id)).collect();
            order.sort_unstable();
            round.clear();
            for (_, id) in order {
                let Some(mut follow) = self.followed.remove(&id) else { continue };
                match follow.advance(&self.store, &self.blobs, id, Some(1), &mut |_| {}).await {
                    Ok(advanced) => {
                        if advanced == Advanced::More {
                            round.push(id);
                        }
                        stopped.insert(id, advanced);
                        self.followed.insert(id, follow);
                    }
                    Err(e) if e.is_store_down() => {
                        // What it could not write waits in the follower for the next tick.
                        self.followed.insert(id, follow);
                        return Err(e);
                    }
                    Err(e) => self.failed(id, e).await?,
                }
            }
        }
        for (id, from) in read_from {
            let Some(mut follow) = self.followed.remove(&id) else { continue };
            let done = match stopped.get(&id) {
                // Whole: its last rows went with the seal.
                Some(Advanced::Sealed) if !active.contains(&id) => Ok(true),
                // Ended, and everything there is was read.
                Some(Advanced::AtEnd) if follow.catch_up.is_some() => {
                    // Cut short by a crash not yet recovered: index what is there.
                    let progress = follow.partial();
                    follow.finish(&self.store, id, progress).await.map(|()| true)
                }
                Some(Advanced::AtEnd) if !active.contains(&id) => {
                    self.finish_unsealed(id, &mut follow).await
                }
                _ if active.contains(&id) => {
                    follow.quiet_tick(follow.tail.read_offset() != from);
                    // Hibernating can finish a running command: store it.
                    if follow.collect() {
                        let progress = follow.partial();
                        follow.save(&self.store, id, progress).await.map(|()| false)
                    } else {
                        Ok(false)
                    }
                }
                _ => Ok(false),
            };
            match done {
                Ok(true) => {}
                Ok(false) => {
                    self.followed.insert(id, follow);
                }
                Err(e) => {
                    // Kept, with what it could not write, for the next tick.
                    self.followed.insert(id, follow);
                    return Err(e);
                }
            }
        }
        self.report_lag();
        Ok(())
    }

    /// Ended sessions that were never fully indexed join the rounds, oldest first, up to
    /// [`CATCH_UP_AT_ONCE`] at a time.
    async fn start_catch_ups(&mut self) -> Result<(), IndexError> {
        let mut room =
            CATCH_UP_AT_ONCE - self.followed.values().filter(|f| f.catch_up.is_some()).count();
        if room == 0 {
            return Ok(());
        }
        // Those already followed (being caught up, or just ended) are among them.
        let ask = (CATCH_UP_AT_ONCE + self.followed.len()).min(u32::MAX as usize) as u32;
        for id in self.store.sessions_to_index(ask, self.node.as_ref()).await? {
            if room == 0 {
                break;
            }
            if self.followed.contains_key(&id) {
                continue;
            }
            match self.catch_up(id).await {
                Ok(f) => {
                    self.followed.insert(id, f);
                    room -= 1;
                }
                Err(e) => self.failed(id, e).await?,
            }
        }
        Ok(())
    }

    /// A follower of ended session `id` from the start of its recording, with the length it
    /// has to read (the backlog it is ordered by).
    async fn catch_up(&self, id: SessionId) -> Result<Follow, IndexError> {
        let mut follow = Follow::from_start(&self.store, &self.blobs, id).await?;
        follow.catch_up = Some(self.blobs.recording_len(id).await?.unwrap_or(0));
        Ok(follow)
    }

    /// Bytes of session `id`'s recording not read yet.
    fn backlog(&self, id: SessionId) -> u64 {
        let Some(follow) = self.followed.get(&id) else { return 0 };
        let len = match follow.catch_up {
            Some(len) => Some(len),
            None => self.blobs.spool_len(id).ok().flatten(),
        };
        len.map_or(0, |len| len.saturating_sub(follow.tail.read_offset()))
    }

    /// How far behind the live recordings the index is, for the metrics.
    fn report_lag(&self) {
        let live = self.followed.iter().filter(|(_, f)| f.catch_up.is_none());
        let lag: u64 = live
            .clone()
            .filter_map(|(&id, f)| {
                let len = self.blobs.spool_len(id).ok().flatten()?;
                Some(len.saturating_sub(f.tail.consumed_offset()))
            })
            .sum();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        METRICS.index_ticked(now, live.count(), lag);
    }

    /// A session ended without a readable seal yet (it is being sealed right now, or its
    /// recording was cut short): come back next tick unless the store says it is over.
    /// Says whether it is done with.
    async fn finish_unsealed(
        &mut self,
        id: SessionId,
        follow: &mut Follow,
    ) -> Result<bool, IndexError> {
        let ended = self.store.session(id).await?.is_none_or(|s| s.chain_head.is_some());
        if ended && !self.blobs.has_spool(id) {
            follow.finish(&self.store, id, IndexProgress::Complete).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Session `id` cannot be indexed: the error is noted on it and it is followed no more
    /// (a panic in extracting it too: it says nothing about the other sessions). A database
    /// that failed, or a runtime shutting down, is the exception: a later tick tries again.
    async fn failed(&mut self, id: SessionId, e: IndexError) -> Result<(), IndexError> {
        if e.is_store_down() || matches!(e, IndexError::Cancelled) {
            return Err(e);
        }
        tracing::warn!("not indexing session {id}: {e}");
        // Given up only once that is noted: until then a new follower tries again.
        self.store.set_index_error(id, &e.to_string()).await?;
        self.given_up.insert(id);
        Ok(())
    }
}

/// Indexes one session from the start of its recording, replacing what was indexed
/// before; `progress` is called with each number of bytes read. Returns the number of rows.
///
/// # Errors
/// The recording cannot be read or does not parse, or the database fails.
pub async fn reindex(
    store: &Store,
    blobs: &BlobStore,
    id: SessionId,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<u32, IndexError> {
    let mut follow = Follow::from_start(store, blobs, id).await?;
    if follow.advance(store, blobs, id, None, progress).await? != Advanced::Sealed {
        // Active, or cut short by a crash not yet recovered: index what is there.
        let progress = follow.partial();
        follow.finish(store, id, progress).await?;
    }
    Ok(follow.session.commands())
}
