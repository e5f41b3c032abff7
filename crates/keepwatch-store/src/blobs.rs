//! Recording blobs: a local [`Spool`] for sessions being written, an [`Archive`] for sealed
//! ones (and kept copies of transferred files).
//!
//! A live recording is appended to a spool file on the node that runs the session (object
//! stores cannot append, and a crash must lose at most the last flush). A sealed one is in
//! the archive: whole (`file://`, the default, where sealing is a rename) or as segments and
//! a signed manifest (`s3://`, uploaded by the recorder's shipper while the session runs).
//! Readers ask this type for ranges, never for a whole recording, and find a recording in
//! the spool first: a recording only leaves the spool once the archive holds it, so one of
//! the two reads finds it even while it moves.

mod archive;
mod spool;

pub use archive::{Archive, ArchivedSegment, Layout, S3Options};
pub use spool::{CaptureWriter, Restore, Spool, SpoolWriter};

use std::path::Path;

use bytes::Bytes;
use futures::stream::BoxStream;
use keepwatch_core::SessionId;
use keepwatch_recording::manifest::Manifest;

use crate::StoreError;

/// One state of a recording's bytes ([`BlobStore::recording_version`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingVersion {
    /// In the archive (else the spool of a live session, or of a sealed one not yet
    /// archived).
    pub sealed: bool,
    pub len: u64,
    pub e_tag: Option<String>,
    pub modified_us: i64,
}

/// The spool and the archive together; see the module docs.
#[derive(Debug, Clone)]
pub struct BlobStore {
    spool: Spool,
    archive: Archive,
}

impl BlobStore {
    /// The embedded layout in one local directory: the spool in `spool/`, sealed recordings
    /// whole in `recordings/`, copies in `captures/` (created if missing).
    ///
    /// # Errors
    /// Fails if the directories cannot be created.
    pub fn local(root: &Path) -> Result<Self, StoreError> {
        Self::new(root, Archive::local(root)?)
    }

    /// The spool in `data_dir/spool` and the given archive.
    ///
    /// # Errors
    /// Fails if the spool directory cannot be created.
    pub fn new(data_dir: &Path, archive: Archive) -> Result<Self, StoreError> {
        let spool = Spool::open(data_dir.join(spool::SPOOL))?;
        Ok(BlobStore { spool, archive })
    }

    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    /// The location of a sealed recording, for messages.
    pub fn recording_location(&self, id: SessionId) -> String {
        self.archive.recording_location(id)
    }

    /// Moves a sealed spool file into a whole-recording archive (a rename in the default
    /// data directory). Segmented archives are written by the recorder's shipper instead.
    ///
    /// # Errors
    /// Fails if the move fails or the archive keeps segments.
    pub async fn commit_whole(&self, id: SessionId) -> Result<(), StoreError> {
        let archive = self.archive.clone();
        let from = self.spool.path(id);
        tokio::task::spawn_blocking(move || archive.commit_whole(id, &from))
            .await
            .map_err(|e| StoreError::Invalid { what: format!("commit task failed: {e}") })?
    }

    /// The manifest of an archived segmented recording, read without checking its
    /// signature (readers rely on the hash chain; `verify` checks the signature).
    async fn manifest_unverified(&self, id: SessionId) -> Result<Option<Manifest>, StoreError> {
        let Some(text) = self.archive.manifest(id).await? else { return Ok(None) };
        Manifest::parse_unverified(&text, id)
            .map(Some)
            .map_err(|e| StoreError::Invalid { what: format!("recording {id}: {e}") })
    }

    /// Up to `max` bytes of a recording from byte `offset` (empty at its current end): from
    /// the spool while it is there, else from the archive. A segmented recording answers
    /// from one segment at a time, so a read may return fewer bytes than asked before the
    /// end; readers read until they get none. Followers of a live recording call it
    /// repeatedly as the file grows.
    ///
    /// # Errors
    /// `NotFound` when neither holds it; a segment the manifest names is missing.
    pub async fn read_recording_range(
        &self,
        id: SessionId,
        offset: u64,
        max: u64,
    ) -> Result<Bytes, StoreError> {
        if let Some(b) = self.spool.read_range(id, offset, max)? {
            return Ok(b);
        }
        self.read_archived_range(id, offset, max).await
    }

    /// [`Self::read_recording_range`] from the archive only (what sealing checks before it
    /// lets the spool file go).
    ///
    /// # Errors
    /// `NotFound` when the archive does not hold it; a segment the manifest names is
    /// missing.
    pub async fn read_archived_range(
        &self,
        id: SessionId,
        offset: u64,
        max: u64,
    ) -> Result<Bytes, StoreError> {
        let not_found =
            || StoreError::NotFound { op: "read recording", kind: "recording", id: id.to_string() };
        if let Some(len) = self.archive.whole_len(id).await? {
            if offset >= len || max == 0 {
                return Ok(Bytes::new());
            }
            let end = len.min(offset.saturating_add(max));
            return self.archive.whole_range(id, offset..end).await?.ok_or_else(not_found);
        }
        let Some(m) = self.manifest_unverified(id).await? else {
            return Err(not_found());
        };
        let Some(i) = m.segment_at(offset).filter(|_| max > 0) else {
            return Ok(Bytes::new());
        };
        let s = &m.segments[i];
        let from = offset - s.start;
        let to = s.len.min(from.saturating_add(max));
        match self.archive.read_object_range(&s.key, from..to).await? {
            Some(b) => Ok(b),
            None => Err(StoreError::Invalid {
                what: format!(
                    "recording {id}: segment {i} ({}) is missing from the archive",
                    s.key
                ),
            }),
        }
    }

    /// The length of a recording now: its spool file while it is there, the archived one
    /// after; `None` when neither exists.
    ///
    /// # Errors
    /// The archive fails for another reason than a missing object.
    pub async fn recording_len(&self, id: SessionId) -> Result<Option<u64>, StoreError> {
        if let Some(len) = self.spool.len(id)? {
            return Ok(Some(len));
        }
        if let Some(len) = self.archive.whole_len(id).await? {
            return Ok(Some(len));
        }
        Ok(self.manifest_unverified(id).await?.map(|m| m.len))
    }

    /// What identifies a recording's bytes as they are now: where it is (spool or
    /// archive), its length, and a version tag and modification time (for a local file:
    /// inode, modification time and size; for an archived one, every object's key, size,
    /// version tag and time), so that bytes rewritten in place or replaced are a new version
    /// even at the same length. `None` when neither exists.
    ///
    /// # Errors
    /// The archive fails for another reason than a missing object.
    pub async fn recording_version(
        &self,
        id: SessionId,
    ) -> Result<Option<RecordingVersion>, StoreError> {
        if let Some(meta) = self.spool.version(id)? {
            return Ok(Some(meta));
        }
        let Some(objects) = self.archive.objects_version(id).await? else { return Ok(None) };
        let Some(len) = self.recording_len(id).await? else {
            // Segments without a manifest: what verify reports, with nothing to read.
            return Ok(Some(RecordingVersion {
                sealed: true,
                len: 0,
                e_tag: Some(objects.tag),
                modified_us: objects.modified_us,
            }));
        };
        Ok(Some(RecordingVersion {
            sealed: true,
            len,
            e_tag: Some(objects.tag),
            modified_us: objects.modified_us,
        }))
    }

    /// A writer for the copy of file `content` passing on `channel` of `session`, sealed
    /// under `key` (the session's data key) when it has one.
    pub fn capture_writer(
        &self,
        session: SessionId,
        channel: u32,
        content: u64,
        key: Option<crate::DataKey>,
    ) -> CaptureWriter {
        self.spool.capture_writer(session, channel, content, key)
    }

    /// Stores a spooled copy of a transfer's content in the archive as `transfer` and
    /// removes the spooled one; a copy that was never spooled (an empty file) is stored
    /// empty. Returns the bytes stored.
    ///
    /// # Errors
    /// Fails if the archive refuses the write, or holds another length than was sent.
    pub async fn commit_capture(
        &self,
        session: SessionId,
        channel: u32,
        content: u64,
        transfer: i64,
    ) -> Result<u64, StoreError> {
        let from = self.spool.capture_path(session, channel, content);
        let n = self.archive.put_capture(session, transfer, &from).await?;
        self.spool.discard_capture(session, channel, content)?;
        Ok(n)
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
        self.spool.discard_capture(session, channel, content)
    }

    /// Deletes whatever a session left in its capture spool.
    ///
    /// # Errors
    /// Fails if the directory exists and cannot be removed.
    pub fn discard_session_capture_spools(&self, session: SessionId) -> Result<(), StoreError> {
        self.spool.discard_session_captures(session)
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
        self.archive.capture(session, transfer).await
    }

    /// Whether a spool file exists for `id` (live, or sealed and not yet archived).
    pub fn has_spool(&self, id: SessionId) -> bool {
        self.spool.contains(id)
    }

    /// Deletes every byte kept of session `id` (retention): its spool file and capture
    /// spools on this node, and everything the archive holds of it.
    ///
    /// # Errors
    /// A file or object could not be deleted; what was deleted stays deleted.
    pub async fn delete_session(&self, id: SessionId) -> Result<(), StoreError> {
        if self.spool.contains(id) {
            self.spool.remove(id)?;
        }
        self.spool.discard_session_captures(id)?;
        self.archive.delete_session(id).await
    }

    /// The length of session `id`'s spool file, if it has one on this node.
    ///
    /// # Errors
    /// Fails if the file's metadata cannot be read.
    pub fn spool_len(&self, id: SessionId) -> Result<Option<u64>, StoreError> {
        self.spool.len(id)
    }

    /// The ids of every recording in the archive (names that are not ids are skipped).
    ///
    /// # Errors
    /// Fails if the archive cannot be listed.
    pub async fn sealed_recordings(&self) -> Result<Vec<SessionId>, StoreError> {
        self.archive.recordings().await
    }
}
