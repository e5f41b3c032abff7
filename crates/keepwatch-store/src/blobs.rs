//! Recording blobs: a local spool for sessions being written, an object store for sealed ones.
//!
//! A live recording is appended to a spool file on local disk (object stores cannot append,
//! and a crash must lose at most the last flush). On seal it moves into the object store
//! under `recordings/<id>.kwr`. With the embedded local-directory backend the spool sits inside
//! the store's root, so the move is a rename through `object_store`, not a copy.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use keepwatch_core::SessionId;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::StoreError;

const RECORDINGS: &str = "recordings";
const SPOOL: &str = "spool";
const EXT: &str = "kwr";

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

    /// Moves a sealed spool file into the store.
    ///
    /// # Errors
    /// Fails if the object store refuses the move.
    pub async fn commit_spool(&self, id: SessionId) -> Result<(), StoreError> {
        self.store.rename(&Self::key(SPOOL, id), &Self::key(RECORDINGS, id)).await?;
        Ok(())
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
        Err(StoreError::NotFound { kind: "recording", name: id.to_string() })
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
        Err(StoreError::NotFound { kind: "recording", name: id.to_string() })
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
