//! Open handles and what they amount to when they close: the rules for when a transfer is
//! complete and its hash stands for the whole file.

use crate::content::{Content, ContentId};
use crate::track::Track;
use crate::{Output, SftpEvent, Transfer, TransferDirection};

use super::wire::{FXF_APPEND, FXF_CREAT, FXF_EXCL, FXF_READ, FXF_TRUNC, FXF_WRITE};
use super::{MAX_HELD_PATH_BYTES, MAX_OPEN, ParseError, SftpTracker};

/// A tracker-local name for a handle, never reused (the target may reuse handle strings).
pub(super) type FileId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Read,
    Write,
}

/// How a handle stopped being tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// The target answered the CLOSE; `ok` when with success.
    Closed { ok: bool },
    /// The channel ended, or the target handed out the same handle again, first.
    ChannelEnded,
}

/// What an `SSH_FXP_OPEN` with these `pflags` may do: (upload, download).
///
/// Any of WRITE, APPEND, CREAT, TRUNC or EXCL changes the target. READ reads, and so does an
/// open without WRITE: OpenSSH's server opens those `O_RDONLY`, whatever else is set.
pub(super) fn open_effects(pflags: u32) -> (bool, bool) {
    let upload = pflags & (FXF_WRITE | FXF_APPEND | FXF_CREAT | FXF_TRUNC | FXF_EXCL) != 0;
    let download = pflags & FXF_READ != 0 || pflags & FXF_WRITE == 0;
    (upload, download)
}

#[derive(Debug)]
pub(super) struct OpenFile {
    pub(super) handle: Vec<u8>,
    pub(super) path: String,
    /// `None` for a directory.
    pub(super) pflags: Option<u32>,
    pub(super) read: Track,
    pub(super) write: Track,
    /// From FSTAT, or from a STAT of the same path just before the open.
    pub(super) size: Option<u64>,
    /// The lowest offset a READ got `SSH_FX_EOF` at.
    pub(super) eof_at: Option<u64>,
    pub(super) writes_in_flight: u32,
    /// A WRITE was sent or denied.
    pub(super) wrote: bool,
    /// Bytes of WRITE data forwarded, answered or not.
    pub(super) sent: u64,
    /// A write failed or was denied, or the target wrote to the file on its own
    /// (`copy-data`): the bytes that passed are not the file.
    pub(super) write_spoiled: bool,
    /// A denial was already reported for this file (pipelined requests would repeat it).
    pub(super) read_denied: bool,
    pub(super) write_denied: bool,
    /// An FSETSTAT set the file's size to this after it was opened.
    pub(super) truncated_to: Option<u64>,
    /// With capture on, the content read and written through the handle.
    pub(super) read_content: Option<Content>,
    pub(super) write_content: Option<Content>,
}

impl OpenFile {
    pub(super) fn content(&mut self, side: Side) -> Option<&mut Content> {
        match side {
            Side::Read => self.read_content.as_mut(),
            Side::Write => self.write_content.as_mut(),
        }
    }
}

impl SftpTracker {
    /// Starts tracking a handle the target handed out for `path`.
    pub(super) fn open_file(
        &mut self,
        handle: &[u8],
        path: String,
        pflags: Option<u32>,
        out: &mut Output,
    ) -> Result<(), ParseError> {
        if handle.len() > super::wire::MAX_HANDLE {
            return Err(ParseError::HandleTooLong { len: handle.len() });
        }
        let replaced = self.handles.get(handle).copied();
        if replaced.is_none() && self.files.len() >= MAX_OPEN {
            return Err(ParseError::TooManyOpen);
        }
        if self.held_path_bytes + path.len() > MAX_HELD_PATH_BYTES {
            return Err(ParseError::TooManyPathBytes);
        }
        // The target reused a handle it did not close (or whose close we never saw).
        if let Some(f) = replaced.and_then(|old| self.remove_file(old)) {
            self.end_file(f, Ending::ChannelEnded, out);
        }
        // Only a pure download: before a resumed upload the stat is of the old file.
        let download_only = pflags.is_some_and(|p| open_effects(p) == (false, true));
        let size = match &self.last_stat {
            Some((stat_path, size)) if download_only && *stat_path == path => Some(*size),
            _ => None,
        };
        let file = self.next_file;
        self.next_file += 1;
        // Two content ids per file, one per side, so they never repeat on the channel.
        let content = |side: u64| {
            let max = self.capture.filter(|_| pflags.is_some())?;
            Some(Content::new(ContentId(file * 2 + side), max))
        };
        let (read_content, write_content) = (content(0), content(1));
        self.held_path_bytes += path.len();
        self.handles.insert(handle.to_vec(), file);
        self.files.insert(
            file,
            OpenFile {
                handle: handle.to_vec(),
                path,
                pflags,
                read: Track::default(),
                write: Track::default(),
                size,
                eof_at: None,
                writes_in_flight: 0,
                wrote: false,
                sent: 0,
                write_spoiled: false,
                read_denied: false,
                write_denied: false,
                truncated_to: None,
                read_content,
                write_content,
            },
        );
        Ok(())
    }

    /// Emits the transfers a handle amounts to, and frees its buffers.
    pub(super) fn end_file(&mut self, mut f: OpenFile, ending: Ending, out: &mut Output) {
        f.read.release(&mut self.budget);
        f.write.release(&mut self.budget);
        let Some(pflags) = f.pflags else { return };
        let (upload, download) = open_effects(pflags);
        let read_something = f.read.bytes > 0 || f.eof_at.is_some();
        let report_download = download && (!upload || read_something);
        let report_upload = upload && (!download || f.wrote || !read_something);
        if report_download {
            out.events.push(SftpEvent::Transfer(download_transfer(&f, ending)));
        }
        if report_upload {
            out.events.push(SftpEvent::Transfer(upload_transfer(&f, ending)));
        }
    }
}

/// Complete when a READ got EOF at exactly the end of a gapless prefix from offset 0.
fn download_transfer(f: &OpenFile, ending: Ending) -> Transfer {
    let end = match (ending, f.eof_at, f.read.ranges.prefix_end()) {
        (Ending::Closed { .. }, Some(eof), Some(end)) if eof == end => Some(end),
        _ => None,
    };
    Transfer {
        path: f.path.clone(),
        direction: TransferDirection::Download,
        bytes: f.read.bytes,
        size: end.or(f.size),
        sha256: end.and_then(|end| f.read.digest(end)),
        ranges: f.read.ranges.to_vec(),
        complete: end.is_some(),
        capture: f.read_content.as_ref().map(|c| c.outcome(end)),
    }
}

/// Complete when the file was created or truncated by the open, every write succeeded and
/// together they cover a gapless prefix from offset 0, and the close succeeded. Without
/// TRUNC or EXCL the file may have had bytes past the last write (`reput` appends), so the
/// bytes written are not the file.
/// An FSETSTAT that sets the size to exactly the written prefix (OpenSSH's in-place upload,
/// which `scp` uses) makes the file those bytes too.
fn upload_transfer(f: &OpenFile, ending: Ending) -> Transfer {
    let fresh = f.pflags.is_some_and(|p| p & (FXF_TRUNC | FXF_EXCL) != 0);
    let end = match (ending, f.write.ranges.prefix_end()) {
        (Ending::Closed { ok: true }, Some(end))
            if (fresh || f.truncated_to == Some(end))
                && !f.write_spoiled
                && f.writes_in_flight == 0 =>
        {
            Some(end)
        }
        _ => None,
    };
    Transfer {
        path: f.path.clone(),
        direction: TransferDirection::Upload,
        bytes: f.write.bytes,
        size: end.or(f.size),
        sha256: end.and_then(|end| f.write.digest(end)),
        ranges: f.write.ranges.to_vec(),
        complete: end.is_some(),
        capture: f.write_content.as_ref().map(|c| c.outcome(end)),
    }
}
