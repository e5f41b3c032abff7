//! The audit events a tracker produces, and their one-line text form (for logs and tests).

use std::fmt;
use std::fmt::Write as _;

use crate::{Capture, Direction};

/// Something that happened on a file-transfer channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SftpEvent {
    /// A request and the target's answer to it, or its refusal by policy.
    ///
    /// Bulk requests are summed up in [`SftpEvent::Transfer`] instead: `Read`, `Write`,
    /// `Readdir` and `Close` appear here only when they fail or are denied.
    Operation {
        op: Op,
        /// The path named by the request, or the path the handle was opened with.
        path: String,
        /// The second path of `Rename` (new name), `Symlink` (what the link points to),
        /// `posix-rename@openssh.com`, `hardlink@openssh.com` and `copy-data` (destination).
        target_path: Option<String>,
        /// The `pflags` of an `Open`.
        flags: Option<u32>,
        result: OpResult,
    },
    /// A file handle was closed (or the channel ended with it open): what moved.
    Transfer(Transfer),
    /// The bytes from one side stopped making sense; nothing more is recorded on this
    /// channel (see [`crate::Output::close_channel`] for what happens to the bytes).
    ProtocolError { direction: Direction, reason: String },
}

/// An SFTP request type (SCP refusals reuse `Read` and `Write`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Open,
    Close,
    Read,
    Write,
    Stat,
    Lstat,
    Fstat,
    Setstat,
    Fsetstat,
    Opendir,
    Readdir,
    Remove,
    Mkdir,
    Rmdir,
    Realpath,
    Rename,
    Readlink,
    Symlink,
    /// `SSH_FXP_EXTENDED` with its request name (`posix-rename@openssh.com`, ...).
    Extended(String),
    /// A request type SFTP version 3 does not define.
    Unknown(u8),
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// The target answered with success (a status of `SSH_FX_OK` or a data reply).
    Ok,
    /// The target answered with a failure status (`code` is `SSH_FX_*`).
    Status { code: u32, message: String },
    /// Keepwatch refused it; the target never saw it.
    Denied { reason: String },
    /// The channel ended before the target answered.
    Unanswered,
}

/// Which way a file's bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferDirection {
    /// Written to the target.
    Upload,
    /// Read from the target.
    Download,
}

/// What moved through one file handle (or one SCP file record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub path: String,
    pub direction: TransferDirection,
    /// Bytes actually moved (a byte moved twice counts twice).
    pub bytes: u64,
    /// The file's size, when known: from the end of a complete transfer, else from the
    /// attributes the target reported for it.
    pub size: Option<u64>,
    /// Present only when `complete` and every byte was hashed in order.
    pub sha256: Option<[u8; 32]>,
    /// The byte ranges moved, `[start, end)`, sorted and merged. At most 1024 are kept; past
    /// that the closest neighbours are joined, so the ranges may over-cover, never under-cover.
    pub ranges: Vec<(u64, u64)>,
    /// The whole file moved, from offset 0 to its end without a gap, and (for an upload) it
    /// was created or truncated first, every write succeeded and the handle closed cleanly.
    pub complete: bool,
    /// With capture on, whether the content handed out for this file is the whole file.
    pub capture: Option<Capture>,
}

impl fmt::Display for SftpEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SftpEvent::Operation { op, path, target_path, flags, result } => {
                write!(f, "{op} {path:?}")?;
                if let Some(target) = target_path {
                    write!(f, " -> {target:?}")?;
                }
                if let Some(flags) = flags {
                    write!(f, " flags={}", PFlags(*flags))?;
                }
                write!(f, ": {result}")
            }
            SftpEvent::Transfer(t) => t.fmt(f),
            SftpEvent::ProtocolError { direction, reason } => {
                let dir = match direction {
                    Direction::ClientToServer => "client",
                    Direction::ServerToClient => "server",
                };
                write!(f, "protocol error from {dir}: {reason}")
            }
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Op::Open => "open",
            Op::Close => "close",
            Op::Read => "read",
            Op::Write => "write",
            Op::Stat => "stat",
            Op::Lstat => "lstat",
            Op::Fstat => "fstat",
            Op::Setstat => "setstat",
            Op::Fsetstat => "fsetstat",
            Op::Opendir => "opendir",
            Op::Readdir => "readdir",
            Op::Remove => "remove",
            Op::Mkdir => "mkdir",
            Op::Rmdir => "rmdir",
            Op::Realpath => "realpath",
            Op::Rename => "rename",
            Op::Readlink => "readlink",
            Op::Symlink => "symlink",
            Op::Extended(name) => return write!(f, "extended {name:?}"),
            Op::Unknown(ty) => return write!(f, "unknown request type {ty}"),
        };
        f.write_str(name)
    }
}

impl fmt::Display for OpResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpResult::Ok => f.write_str("ok"),
            OpResult::Status { code, message } => {
                write!(f, "status {} {message:?}", StatusName(*code))
            }
            OpResult::Denied { reason } => write!(f, "denied: {reason}"),
            OpResult::Unanswered => f.write_str("unanswered"),
        }
    }
}

impl fmt::Display for Transfer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = match self.direction {
            TransferDirection::Upload => "upload",
            TransferDirection::Download => "download",
        };
        write!(f, "{dir} {:?} bytes={}", self.path, self.bytes)?;
        if let Some(size) = self.size {
            write!(f, " size={size}")?;
        }
        if let Some(sha) = &self.sha256 {
            f.write_str(" sha256=")?;
            for b in sha {
                write!(f, "{b:02x}")?;
            }
        }
        f.write_str(" ranges=[")?;
        for (i, (start, end)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{start}..{end}")?;
        }
        f.write_str("]")?;
        f.write_str(if self.complete { " complete" } else { " incomplete" })?;
        match &self.capture {
            None => Ok(()),
            Some(Capture::Whole(id)) => write!(f, " captured as {id}"),
            Some(Capture::Skipped { id, reason }) => write!(f, " capture {id} skipped: {reason}"),
        }
    }
}

/// `SSH_FXF_*` open flags by name.
struct PFlags(u32);

impl fmt::Display for PFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(u32, &str); 6] = [
            (0x01, "READ"),
            (0x02, "WRITE"),
            (0x04, "APPEND"),
            (0x08, "CREAT"),
            (0x10, "TRUNC"),
            (0x20, "EXCL"),
        ];
        let mut rest = self.0;
        let mut first = true;
        for (bit, name) in NAMES {
            if rest & bit != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
                rest &= !bit;
            }
        }
        if rest != 0 || first {
            if !first {
                f.write_str("|")?;
            }
            write!(f, "{rest:#x}")?;
        }
        Ok(())
    }
}

/// `SSH_FX_*` status codes by name.
struct StatusName(u32);

impl fmt::Display for StatusName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            0 => "OK",
            1 => "EOF",
            2 => "NO_SUCH_FILE",
            3 => "PERMISSION_DENIED",
            4 => "FAILURE",
            5 => "BAD_MESSAGE",
            6 => "NO_CONNECTION",
            7 => "CONNECTION_LOST",
            8 => "OP_UNSUPPORTED",
            code => return write!(f, "{code}"),
        };
        f.write_str(name)
    }
}

/// A path (or any name from the wire) as text: UTF-8 as is, any other byte as `\xNN`.
pub(crate) fn path_text(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        s.push_str(chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s
}
