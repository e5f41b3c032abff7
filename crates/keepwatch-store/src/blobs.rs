//! Recording blobs: a local spool for sessions being written, an object store for sealed ones.
//!
//! A live recording is appended to a spool file on local disk (object stores cannot append,
//! and a crash must lose at most the last flush). On seal it moves into the object store
//! under `recordings/<id>.kwr`. With the embedded local-directory backend the spool sits inside
//! the store's root, so the move is a rename through `object_store`, not a copy.
//!
//! Copies of transferred files (for grants that keep content) take the same path: spooled to
//! `spool/captures/<session>/<channel>-<content>` as they pass, then moved to
//! `captures/<session>/<transfer id>` once the transfer proves to be the whole file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use keepwatch_core::SessionId;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::StoreError;

const RECORDINGS: &str = "recordings";
const CAPTURES: &str = "captures";
const SPOOL: &str = "spool";
const EXT: &str = "kwr";

/// One state of a recording's bytes ([`BlobStore::recording_version`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingVersion {
    /// In the sealed store (else the spool of a live session).
    pub sealed: bool,
    pub len: u64,
    pub e_tag: Option<String>,
    pub modified_us: i64,
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    root: PathBuf,
}

impl BlobStore {
    /// A blob store in a local directory (created if missing).
    ///
    /// # Errors
    /// Fails if the directories cannot be created.
    pub fn local(root: &Path) -> Result<Self, StoreError> {
        for sub in [RECORDINGS, SPOOL] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir)
                .map_err(|source| StoreError::Io { path: dir.display().to_string(), source })?;
        }
        let store = LocalFileSystem::new_with_prefix(root)?;
        Ok(BlobStore { store: Arc::new(store), root: root.to_owned() })
    }

    fn key(dir: &str, id: SessionId) -> ObjectPath {
        ObjectPath::from(format!("{dir}/{id}.{EXT}"))
    }

    /// Where the recorder appends a live recording.
    pub fn spool_path(&self, id: SessionId) -> PathBuf {
        self.root.join(SPOOL).join(format!("{id}.{EXT}"))
    }

    /// The location of a sealed recording, for messages.
    pub fn recording_location(&self, id: SessionId) -> String {
        self.root.join(RECORDINGS).join(format!("{id}.{EXT}")).display().to_string()
    }

    /// Moves a sealed spool file into the store. A spool on a filesystem of its own (a
    /// separate disk or tmpfs mounted at `spool/`) cannot be renamed into `recordings/`; it is
    /// copied there instead, made durable, then removed from the spool.
    ///
    /// # Errors
    /// Fails if the object store refuses the move, or the copy fails.
    pub async fn commit_spool(&self, id: SessionId) -> Result<(), StoreError> {
        match self.store.rename(&Self::key(SPOOL, id), &Self::key(RECORDINGS, id)).await {
            Ok(()) => Ok(()),
            Err(e) if crosses_devices(&e) => {
                let from = self.spool_path(id);
                let to = self.root.join(RECORDINGS).join(format!("{id}.{EXT}"));
                tokio::task::spawn_blocking(move || copy_then_remove(&from, &to)).await.map_err(
                    |e| StoreError::Invalid { what: format!("moving recording {id}: {e}") },
                )?
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The bytes of a recording: the spool file of a live session, or the sealed blob.
    /// The spool is looked at first: a recording only moves from the spool to the store, so
    /// one of the two reads finds it even while it moves.
    ///
    /// # Errors
    /// `NotFound` when neither exists.
    pub async fn read_recording(&self, id: SessionId) -> Result<Bytes, StoreError> {
        for dir in [SPOOL, RECORDINGS] {
            match self.store.get(&Self::key(dir, id)).await {
                Ok(r) => return Ok(r.bytes().await?),
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::NotFound { op: "read recording", kind: "recording", id: id.to_string() })
    }

    /// Up to `max` bytes of a recording from byte `offset` (empty at its current end), from
    /// the spool or the store like [`Self::read_recording`]. Followers of a live recording
    /// call it repeatedly as the file grows.
    ///
    /// # Errors
    /// `NotFound` when neither exists.
    pub async fn read_recording_range(
        &self,
        id: SessionId,
        offset: u64,
        max: u64,
    ) -> Result<Bytes, StoreError> {
        for dir in [SPOOL, RECORDINGS] {
            let key = Self::key(dir, id);
            let size = match self.store.head(&key).await {
                Ok(meta) => meta.size,
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            if offset >= size {
                return Ok(Bytes::new());
            }
            match self.store.get_range(&key, offset..size.min(offset.saturating_add(max))).await {
                Ok(b) => return Ok(b),
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::NotFound { op: "read recording", kind: "recording", id: id.to_string() })
    }

    /// The length of a recording now: its spool file while it is being written, the sealed
    /// blob after; `None` when neither exists. Looked up in the same order as
    /// [`Self::read_recording`], so a recording moving from one to the other is found.
    ///
    /// # Errors
    /// The object store fails for another reason than a missing object.
    pub async fn recording_len(&self, id: SessionId) -> Result<Option<u64>, StoreError> {
        for dir in [SPOOL, RECORDINGS] {
            match self.store.head(&Self::key(dir, id)).await {
                Ok(meta) => return Ok(Some(meta.size)),
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// What identifies a recording's bytes as they are now: where it is (spool or sealed
    /// store), its length, and the object store's version tag and modification time (for a
    /// local file: inode, modification time and size), so that a file rewritten in place
    /// or replaced is a new version even at the same length. `None` when neither exists.
    ///
    /// # Errors
    /// The object store fails for another reason than a missing object.
    pub async fn recording_version(
        &self,
        id: SessionId,
    ) -> Result<Option<RecordingVersion>, StoreError> {
        for (dir, sealed) in [(SPOOL, false), (RECORDINGS, true)] {
            match self.store.head(&Self::key(dir, id)).await {
                Ok(meta) => {
                    return Ok(Some(RecordingVersion {
                        sealed,
                        len: meta.size,
                        e_tag: meta.e_tag,
                        modified_us: meta.last_modified.timestamp_micros(),
                    }));
                }
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    fn capture_spool_key(session: SessionId, channel: u32, content: u64) -> ObjectPath {
        ObjectPath::from(format!("{SPOOL}/{CAPTURES}/{session}/{channel}-{content}"))
    }

    fn capture_key(session: SessionId, transfer: i64) -> ObjectPath {
        ObjectPath::from(format!("{CAPTURES}/{session}/{transfer}"))
    }

    /// Where the content of a file is appended while it passes on `channel`, and the
    /// directory it is in (which the caller creates).
    pub fn capture_spool_path(&self, session: SessionId, channel: u32, content: u64) -> PathBuf {
        self.root
            .join(SPOOL)
            .join(CAPTURES)
            .join(session.to_string())
            .join(format!("{channel}-{content}"))
    }

    /// Moves a spooled copy of a transfer's content into the store; a copy that was never
    /// spooled (an empty file) is stored empty.
    ///
    /// # Errors
    /// Fails if the object store refuses the move or the write.
    pub async fn commit_capture(
        &self,
        session: SessionId,
        channel: u32,
        content: u64,
        transfer: i64,
    ) -> Result<(), StoreError> {
        let from = Self::capture_spool_key(session, channel, content);
        let to = Self::capture_key(session, transfer);
        match self.store.rename(&from, &to).await {
            Err(object_store::Error::NotFound { .. }) => {
                self.store.put(&to, Bytes::new().into()).await?;
                Ok(())
            }
            r => Ok(r?),
        }
    }

    /// Deletes a spooled copy that is not the file; a missing one is fine.
    ///
    /// # Errors
    /// Fails if the file exists and cannot be removed.
    pub fn discard_capture_spool(
        &self,
        session: SessionId,
        channel: u32,
        content: u64,
    ) -> Result<(), StoreError> {
        let path = self.capture_spool_path(session, channel, content);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StoreError::Io { path: path.display().to_string(), source: e })
            }
            _ => Ok(()),
        }
    }

    /// Deletes whatever a session left in its capture spool (copies of files that never
    /// finished, channels that broke off).
    ///
    /// # Errors
    /// Fails if the directory exists and cannot be removed.
    pub fn discard_session_capture_spools(&self, session: SessionId) -> Result<(), StoreError> {
        let dir = self.root.join(SPOOL).join(CAPTURES).join(session.to_string());
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StoreError::Io { path: dir.display().to_string(), source: e })
            }
            _ => Ok(()),
        }
    }

    /// The stored copy of a transfer's content, as a stream of pieces (it may be large).
    ///
    /// # Errors
    /// `NotFound` when no copy was kept for the transfer.
    pub async fn capture(
        &self,
        session: SessionId,
        transfer: i64,
    ) -> Result<BoxStream<'static, Result<Bytes, StoreError>>, StoreError> {
        match self.store.get(&Self::capture_key(session, transfer)).await {
            Ok(r) => Ok(r.into_stream().map_err(StoreError::from).boxed()),
            Err(object_store::Error::NotFound { .. }) => Err(StoreError::NotFound {
                op: "read captured content",
                kind: "captured content of transfer",
                id: transfer.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether a live spool file exists for `id`.
    pub fn has_spool(&self, id: SessionId) -> bool {
        self.spool_path(id).exists()
    }

    /// The ids of every sealed recording in the store (names that are not ids are skipped).
    ///
    /// # Errors
    /// Fails if the store cannot be listed.
    pub async fn sealed_recordings(&self) -> Result<Vec<SessionId>, StoreError> {
        let prefix = ObjectPath::from(RECORDINGS);
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        let mut ids: Vec<SessionId> = metas
            .iter()
            .filter_map(|m| m.location.filename()?.strip_suffix(".kwr")?.parse().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// Whether a rename failed because source and destination are on different filesystems.
fn crosses_devices(e: &object_store::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::CrossesDevices;
        }
        source = err.source();
    }
    false
}

/// Copies `from` to `to` through a temporary name beside `to`, durably, then removes `from`.
/// Until the removal both hold the same bytes; readers look at the spool first either way.
fn copy_then_remove(from: &Path, to: &Path) -> Result<(), StoreError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| StoreError::Io { path, source }
    };
    let tmp = to.with_extension("kwr.moving");
    let copied = std::fs::copy(from, &tmp)
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, to));
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(to)(e));
    }
    if let Some(dir) = to.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    }
    std::fs::remove_file(from).map_err(io(from))
}
