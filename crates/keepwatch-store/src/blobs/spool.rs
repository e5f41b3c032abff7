//! The spool: a local directory, owned by one gateway node, where live recordings are
//! appended and where copies of transferred files are written while they pass.
//!
//! It hands out writers ([`SpoolWriter`], [`CaptureWriter`]), not paths: the recorder,
//! recovery and the capture spools never build a path themselves. A spool file is
//! append-only while its session runs; it leaves the spool only when the archive holds
//! what it held ([`super::BlobStore`] and the recorder's shipper decide when).

use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use keepwatch_core::SessionId;
use keepwatch_recording::{CaptureSealer, DataKey};

use crate::StoreError;

pub(crate) const SPOOL: &str = "spool";
const CAPTURES: &str = "captures";
const EXT: &str = "kwr";

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.display().to_string(), source }
}

/// The local spool directory; see the module docs.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

/// A live recording being appended (the recorder's, or recovery's).
#[derive(Debug)]
pub struct SpoolWriter {
    file: std::fs::File,
    path: PathBuf,
}

impl SpoolWriter {
    /// Appends `bytes`; `sync` also makes them durable (`fdatasync`).
    ///
    /// # Errors
    /// The write or the sync failed (a full disk, an IO error).
    pub fn append(&mut self, bytes: &[u8], sync: bool) -> Result<(), StoreError> {
        self.file.write_all(bytes).map_err(io_err(&self.path))?;
        if sync {
            self.file.sync_data().map_err(io_err(&self.path))?;
        }
        // A spool file removed under a live session (`rm -rf spool/`) still takes writes,
        // into an inode nothing names any more: the session would go on unrecorded, and its
        // seal would find nothing to move. Checked at every append (one fstat).
        let meta = self.file.metadata().map_err(io_err(&self.path))?;
        if std::os::unix::fs::MetadataExt::nlink(&meta) == 0 {
            return Err(StoreError::Invalid {
                what: format!(
                    "the spool file {} was removed while the session was being recorded",
                    self.path.display()
                ),
            });
        }
        Ok(())
    }

    /// Makes what was appended durable (`fdatasync`).
    ///
    /// # Errors
    /// The sync failed.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.file.sync_data().map_err(io_err(&self.path))
    }

    /// Where it is, for messages.
    pub fn location(&self) -> String {
        self.path.display().to_string()
    }
}

/// A copy of a transferred file being written as it passes: sealed under the session's data
/// key as it is written when the session has one ([`keepwatch_recording::CaptureSealer`]), so
/// no plaintext of it reaches the disk.
pub struct CaptureWriter {
    file: Option<std::fs::File>,
    path: PathBuf,
    session: SessionId,
    key: Option<DataKey>,
    sealer: Option<CaptureSealer>,
    out: Vec<u8>,
}

impl std::fmt::Debug for CaptureWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureWriter")
            .field("path", &self.path)
            .field("sealed", &self.key.is_some())
            .finish_non_exhaustive()
    }
}

impl CaptureWriter {
    /// Creates the file (and the directory) and, when sealing, writes the header.
    fn open(&mut self) -> Result<(), StoreError> {
        if self.file.is_some() {
            return Ok(());
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let mut file = std::fs::File::create(&self.path).map_err(io_err(&self.path))?;
        if let Some(key) = &self.key {
            let (sealer, header) = CaptureSealer::new(key, &self.session).map_err(|e| {
                StoreError::Invalid { what: format!("no random bytes for a capture's key: {e}") }
            })?;
            file.write_all(&header).map_err(io_err(&self.path))?;
            self.sealer = Some(sealer);
        }
        self.file = Some(file);
        Ok(())
    }

    /// Appends `bytes` (the file is created at the first write).
    ///
    /// # Errors
    /// The directory or file cannot be created, or the write failed.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.open()?;
        let data = match &mut self.sealer {
            Some(sealer) => {
                self.out.clear();
                sealer.push(bytes, &mut self.out);
                &self.out[..]
            }
            None => bytes,
        };
        if let Some(f) = &mut self.file {
            f.write_all(data).map_err(io_err(&self.path))?;
        }
        Ok(())
    }

    /// Ends the copy (a sealed one with its last segment, so an empty file is sealed too) and
    /// makes it durable.
    ///
    /// # Errors
    /// The write or the sync failed.
    pub fn finish(mut self) -> Result<(), StoreError> {
        if self.key.is_some() {
            self.open()?;
        }
        if let Some(sealer) = self.sealer.take() {
            self.out.clear();
            sealer.finish(&mut self.out);
            if let Some(f) = &mut self.file {
                f.write_all(&self.out).map_err(io_err(&self.path))?;
            }
        }
        match &self.file {
            Some(f) => f.sync_data().map_err(io_err(&self.path)),
            None => Ok(()),
        }
    }

    /// Where it is, for messages.
    pub fn location(&self) -> String {
        self.path.display().to_string()
    }
}

impl Spool {
    /// The spool in `dir` (created if missing).
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn open(dir: PathBuf) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(Spool { dir })
    }

    pub(crate) fn path(&self, id: SessionId) -> PathBuf {
        self.dir.join(format!("{id}.{EXT}"))
    }

    /// Where session `id`'s spool file is, for messages.
    pub fn location(&self, id: SessionId) -> String {
        self.path(id).display().to_string()
    }

    /// Creates session `id`'s spool file (it must not exist) and writes `first` to it,
    /// durably.
    ///
    /// # Errors
    /// The file exists or cannot be created or written.
    pub fn create(&self, id: SessionId, first: &[u8]) -> Result<SpoolWriter, StoreError> {
        let path = self.path(id);
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let mut w = SpoolWriter { file, path };
        w.append(first, true)?;
        Ok(w)
    }

    /// Whether session `id` has a spool file.
    pub fn contains(&self, id: SessionId) -> bool {
        self.path(id).exists()
    }

    /// The length of session `id`'s spool file; `None` when there is none.
    ///
    /// # Errors
    /// It exists but cannot be looked at.
    pub fn len(&self, id: SessionId) -> Result<Option<u64>, StoreError> {
        let path = self.path(id);
        match std::fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// What identifies session `id`'s spool file as it is now (inode, modification time and
    /// length), so a file rewritten in place is a new version; `None` when there is none.
    ///
    /// # Errors
    /// It exists but cannot be looked at.
    pub(crate) fn version(
        &self,
        id: SessionId,
    ) -> Result<Option<super::RecordingVersion>, StoreError> {
        use std::os::unix::fs::MetadataExt as _;
        let path = self.path(id);
        let m = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let modified_us = m.mtime() * 1_000_000 + m.mtime_nsec() / 1000;
        Ok(Some(super::RecordingVersion {
            sealed: false,
            len: m.len(),
            e_tag: Some(format!(
                "{:x}-{:x}-{:x}",
                m.ino(),
                m.mtime_nsec() + m.mtime() * 1_000_000_000,
                m.len()
            )),
            modified_us,
        }))
    }

    /// Up to `max` bytes of session `id`'s spool from `offset` (empty at its end); `None`
    /// when there is no spool file.
    ///
    /// # Errors
    /// It exists but cannot be read.
    pub fn read_range(
        &self,
        id: SessionId,
        offset: u64,
        max: u64,
    ) -> Result<Option<Bytes>, StoreError> {
        let path = self.path(id);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let len = file.metadata().map_err(io_err(&path))?.len();
        if offset >= len {
            return Ok(Some(Bytes::new()));
        }
        let n = (len - offset).min(max) as usize;
        let mut buf = vec![0; n];
        file.read_exact_at(&mut buf, offset).map_err(io_err(&path))?;
        Ok(Some(Bytes::from(buf)))
    }

    /// The whole spool file of session `id`, for crash recovery (which needs every byte to
    /// find the valid prefix); `None` when there is none.
    ///
    /// # Errors
    /// It exists but cannot be read.
    pub fn read_all(&self, id: SessionId) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(id);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Replaces session `id`'s spool file with `bytes` atomically (a crash leaves one or
    /// the other): recovery's sealed recording.
    ///
    /// # Errors
    /// The new file cannot be written or renamed over the old.
    pub fn replace(&self, id: SessionId, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path(id);
        let tmp = path.with_extension("recovering");
        let written = std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_err(&path)(e));
        }
        Ok(())
    }

    /// A writer that rebuilds session `id`'s spool from elsewhere (the archive, after the
    /// node that wrote it lost its disk): bytes go to a temporary file that
    /// [`Restore::finish`] moves into place.
    ///
    /// # Errors
    /// The temporary file cannot be created.
    pub fn restore(&self, id: SessionId) -> Result<Restore, StoreError> {
        let path = self.path(id);
        let tmp = path.with_extension("restoring");
        let file = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        Ok(Restore { file, tmp, path })
    }

    /// Removes session `id`'s spool file; a missing one is fine.
    ///
    /// # Errors
    /// It exists and cannot be removed.
    pub fn remove(&self, id: SessionId) -> Result<(), StoreError> {
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&path)(e)),
            _ => Ok(()),
        }
    }

    /// The sessions that have a spool file, and each file's length.
    ///
    /// # Errors
    /// The directory cannot be listed.
    pub fn recordings(&self) -> Result<Vec<(SessionId, u64)>, StoreError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".kwr")?.parse().ok()) else {
                continue;
            };
            let len = entry.metadata().map_err(io_err(&entry.path()))?.len();
            out.push((id, len));
        }
        out.sort();
        Ok(out)
    }

    pub(crate) fn capture_path(&self, session: SessionId, channel: u32, content: u64) -> PathBuf {
        self.dir.join(CAPTURES).join(session.to_string()).join(format!("{channel}-{content}"))
    }

    /// A writer for the copy of file `content` passing on `channel` of `session`, sealed
    /// under `key` (the session's data key) when it has one.
    pub fn capture_writer(
        &self,
        session: SessionId,
        channel: u32,
        content: u64,
        key: Option<DataKey>,
    ) -> CaptureWriter {
        CaptureWriter {
            file: None,
            path: self.capture_path(session, channel, content),
            session,
            key,
            sealer: None,
            out: Vec::new(),
        }
    }

    /// Deletes a spooled copy that is not the file; a missing one is fine.
    ///
    /// # Errors
    /// The file exists and cannot be removed.
    pub fn discard_capture(
        &self,
        session: SessionId,
        channel: u32,
        content: u64,
    ) -> Result<(), StoreError> {
        let path = self.capture_path(session, channel, content);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&path)(e)),
            _ => Ok(()),
        }
    }

    /// Deletes whatever a session left in its capture spool (copies of files that never
    /// finished, channels that broke off).
    ///
    /// # Errors
    /// The directory exists and cannot be removed.
    pub fn discard_session_captures(&self, session: SessionId) -> Result<(), StoreError> {
        let dir = self.dir.join(CAPTURES).join(session.to_string());
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&dir)(e)),
            _ => Ok(()),
        }
    }
}

/// A spool file being rebuilt ([`Spool::restore`]).
#[derive(Debug)]
pub struct Restore {
    file: std::fs::File,
    tmp: PathBuf,
    path: PathBuf,
}

impl Restore {
    /// Appends the next bytes.
    ///
    /// # Errors
    /// The write failed.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.file.write_all(bytes).map_err(io_err(&self.tmp))
    }

    /// Makes it durable and moves it into place as the session's spool file.
    ///
    /// # Errors
    /// The sync or the rename failed.
    pub fn finish(self) -> Result<(), StoreError> {
        self.file.sync_all().map_err(io_err(&self.tmp))?;
        std::fs::rename(&self.tmp, &self.path).map_err(io_err(&self.path))
    }
}
