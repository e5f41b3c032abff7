//! File transfers on relayed SSH channels, seen from the middle: SFTP subsystem channels and
//! legacy `scp -t`/`scp -f` exec channels, framed, checked against a [`TransferPolicy`] and
//! turned into audit events, with the size and SHA-256 of every file moved in full.
//!
//! Sans-IO: the gateway feeds the bytes each side sent ([`SftpTracker::from_client`],
//! [`SftpTracker::from_server`], and the same on [`ScpTracker`]) and writes what comes back in
//! [`Output`]: `forward` to the other side, `reply` back to the side that sent the bytes,
//! `events` to the audit trail, and `close_channel` when the channel must end. No IO, no
//! clock, no threads; every buffer is bounded, so a hostile peer costs at most about 21 MiB
//! per SFTP channel and 1 MiB per SCP channel.
//!
//! # Wiring it into a relay
//!
//! One tracker per channel: [`SftpTracker`] for the `sftp` subsystem, [`ScpTracker`] when
//! [`ScpTracker::new`] recognises the exec command (call [`ScpTracker::start`] before running
//! it). Then, for every chunk of channel data:
//!
//! - from the client: `from_client(data, &mut out)`; write `out.forward` to the target and
//!   `out.reply` to the client;
//! - from the target: `from_server(data, &mut out)`; write `out.forward` to the client and
//!   `out.reply` to the target (SCP only; always empty for SFTP);
//! - with capture on, write `out.forward[piece.range]` for each of `out.content` to that
//!   file's copy, then, for each [`Transfer`] in `out.events`, keep or discard the copy its
//!   [`Capture`] names;
//! - record `out.events`; if `out.close_channel`, send EOF and close the channel on both
//!   sides after writing the bytes;
//! - when the channel ends (EOF or close from either side), `finish(&mut out)` and record
//!   its events.
//!
//! The caller feeds one direction at a time (a `Mutex` around the tracker is enough; calls
//! are short and never block). Record the bytes as fed or as forwarded, but forward only
//! what `out` says.
//!
//! **Invariant:** when the policy allows everything, a tracker is transparent: the bytes it
//! forwards in each direction are exactly the bytes it was fed, whatever they are.
//!
//! **Invariant:** no byte leaves a tracker unaccounted for. A forwarded byte is either part
//! of what the events describe (a path, a file's content counted and hashed, a status the
//! event carries) or inside one of [`Output::raw`]'s ranges, which the caller records as it
//! is. Bytes go raw when the tracker cannot follow the protocol any more (a protocol error,
//! or legacy SCP after a fatal error line), and packet by packet when a packet carries more
//! than its event says (an unknown request or extension, a directory listing, trailing
//! bytes, an error line). A channel that hides its bytes behind SFTP or SCP therefore still
//! lands in the recording.
//!
//! **Invariant:** a denied request never reaches the target. When the tracker can no longer
//! tell what a byte stream means (a protocol error) and the policy restricts anything, it
//! stops forwarding and asks for the channel to be closed instead of letting bytes through
//! unchecked: the grant's file policy can no longer be held.

mod content;
mod event;
mod ranges;
mod scp;
mod sftp;
mod track;

use std::ops::Range;

pub use content::{Capture, ContentId, ContentPiece, SkipReason};
pub use event::{Op, OpResult, SftpEvent, Transfer, TransferDirection};
pub use scp::{ScpMode, ScpTracker};
pub use sftp::SftpTracker;

/// What a person may move through a channel. Decided per target by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferPolicy {
    /// Files may be written on the target, and the target's files changed (remove, rename,
    /// mkdir, setstat and the like).
    pub upload: bool,
    /// Files may be read from the target.
    pub download: bool,
    /// No byte past this offset of a file may be written or read.
    pub max_file_size: Option<u64>,
}

impl Default for TransferPolicy {
    fn default() -> Self {
        TransferPolicy { upload: true, download: true, max_file_size: None }
    }
}

impl TransferPolicy {
    /// Whether there is nothing to enforce, only to record.
    pub fn allows_everything(&self) -> bool {
        self.upload && self.download && self.max_file_size.is_none()
    }
}

const NO_UPLOADS: &str = "uploads are not allowed on this target";
const NO_DOWNLOADS: &str = "downloads are not allowed on this target";
const NO_CHANGES: &str = "changing files is not allowed on this target";

fn too_big(max: u64) -> String {
    format!("files over {max} bytes are not allowed on this target")
}

/// Which way bytes were going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

/// What to do after feeding a tracker some bytes. The caller clears it (or calls
/// [`Output::clear`]) between calls; trackers only append.
#[derive(Debug, Default)]
pub struct Output {
    /// Bytes to write to the other side of the channel: to the target after
    /// `from_client`, to the client after `from_server`.
    pub forward: Vec<u8>,
    /// Bytes to write back to the side that sent the bytes just fed: to the client after
    /// `from_client` (a refusal standing in for the target's answer), to the target after
    /// `from_server` (legacy SCP only: a refusal standing in for the client's answer).
    pub reply: Vec<u8>,
    /// Audit events, in the order they happened.
    pub events: Vec<SftpEvent>,
    /// Ranges of `forward` (in order, not overlapping) that the tracker did not account for
    /// in `events`: record these bytes as they are, as the channel's input (after
    /// `from_client`) or output (after `from_server`), before forwarding them.
    pub raw: Vec<Range<usize>>,
    /// File content that passed in this call, as ranges of `forward`, when the tracker was
    /// built `with_capture` (see [`ContentPiece`]). Every piece of a file comes before the
    /// event of its [`Transfer`] that says whether to keep them.
    pub content: Vec<ContentPiece>,
    /// The channel must end: write `forward` and `reply` first, then send EOF and close it
    /// on both sides. Set when a command is refused outright, or when a protocol error leaves
    /// a restrictive policy unenforceable. Later calls forward nothing.
    pub close_channel: bool,
}

impl Output {
    /// Empties the output for the next call, keeping the buffers' capacity.
    pub fn clear(&mut self) {
        self.forward.clear();
        self.reply.clear();
        self.events.clear();
        self.content.clear();
        self.raw.clear();
        self.close_channel = false;
    }

    /// Appends bytes to `forward` that the caller must record as they are.
    pub(crate) fn forward_raw(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let start = self.forward.len();
        self.forward.extend_from_slice(data);
        let end = self.forward.len();
        match self.raw.last_mut() {
            Some(last) if last.end == start => last.end = end,
            _ => self.raw.push(start..end),
        }
    }

    /// The bytes of `forward` the caller must record as they are, in order.
    pub fn raw_bytes(&self) -> impl Iterator<Item = &[u8]> {
        self.raw.iter().map(|r| &self.forward[r.clone()])
    }
}
