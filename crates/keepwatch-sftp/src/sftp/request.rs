//! Requests from the client: parse, decide by policy, forward or refuse, and remember what
//! to make of the answer.

use crate::{
    Direction, NO_CHANGES, NO_DOWNLOADS, NO_UPLOADS, Op, OpResult, Output, SftpEvent, too_big,
};

use super::files::{FileId, Side, open_effects};
use super::wire::{
    self, FX_PERMISSION_DENIED, FXP_CLOSE, FXP_EXTENDED, FXP_FSETSTAT, FXP_FSTAT, FXP_INIT,
    FXP_LSTAT, FXP_MKDIR, FXP_OPEN, FXP_OPENDIR, FXP_READ, FXP_READDIR, FXP_READLINK, FXP_REALPATH,
    FXP_REMOVE, FXP_RENAME, FXP_RMDIR, FXP_SETSTAT, FXP_STAT, FXP_SYMLINK, Reader, Truncated,
    path_text,
};
use super::{Body, Feed, ParseError, SftpTracker};

/// A request forwarded to the target, awaiting its answer.
#[derive(Debug)]
pub(super) enum Pending {
    Open {
        path: String,
        pflags: u32,
    },
    Opendir {
        path: String,
    },
    Close {
        file: Option<FileId>,
    },
    Read {
        file: Option<FileId>,
        offset: u64,
    },
    Write {
        file: Option<FileId>,
        offset: u64,
        len: u32,
    },
    /// FSTAT, FSETSTAT, READDIR and handle extensions, reported with the handle's path (and
    /// `other`'s as the target path).
    OnHandle {
        op: Op,
        file: Option<FileId>,
        other: Option<FileId>,
        /// The size an FSETSTAT sets (OpenSSH's in-place uploads, as `scp` makes them,
        /// truncate to the bytes written this way instead of opening with TRUNC).
        set_size: Option<u64>,
    },
    OnPath {
        op: Op,
        path: String,
        target: Option<String>,
    },
}

impl Pending {
    pub(super) fn path_bytes(&self) -> usize {
        match self {
            Pending::Open { path, .. } | Pending::Opendir { path } => path.len(),
            Pending::OnPath { op, path, target } => {
                let ext = if let Op::Extended(name) = op { name.len() } else { 0 };
                ext + path.len() + target.as_ref().map_or(0, String::len)
            }
            Pending::OnHandle { op: Op::Extended(name), .. } => name.len(),
            _ => 0,
        }
    }
}

/// What a policy check decided.
enum Verdict {
    Allow,
    Deny(String),
}

impl SftpTracker {
    /// A whole request packet, or the header of a WRITE.
    pub(super) fn request(&mut self, p: &[u8], out: &mut Output) -> Result<(), ParseError> {
        let ty = p[4];
        if ty == FXP_INIT {
            // The version and the client's extension list: in no event.
            out.forward_raw(p);
            return Ok(());
        }
        if ty == wire::FXP_WRITE {
            return self.write_header(p, out);
        }
        let t = |Truncated| ParseError::Truncated { ty };
        let mut r = Reader::new(&p[5..]);
        let known = matches!(ty, FXP_OPEN..=FXP_SYMLINK | FXP_EXTENDED);
        if !known && p.len() < 9 {
            // No room for an id: nothing will answer it that we could match.
            out.forward_raw(p);
            return Ok(());
        }
        // Whether the packet holds bytes its event will not: recorded as they are.
        let mut raw = !known;
        let id = r.u32().map_err(t)?;
        let upload = self.policy.upload;
        let changes = if upload { Verdict::Allow } else { Verdict::Deny(NO_CHANGES.into()) };
        let (pending, verdict) = match ty {
            FXP_OPEN => {
                let path = path_text(r.string().map_err(t)?);
                let pflags = r.u32().map_err(t)?;
                raw |= r.attrs().map_or(true, |a| a.extended > 0);
                let (up, down) = open_effects(pflags);
                let verdict = if up && !upload {
                    Verdict::Deny(NO_UPLOADS.into())
                } else if down && !self.policy.download {
                    Verdict::Deny(NO_DOWNLOADS.into())
                } else {
                    Verdict::Allow
                };
                (Pending::Open { path, pflags }, verdict)
            }
            FXP_OPENDIR => {
                (Pending::Opendir { path: path_text(r.string().map_err(t)?) }, Verdict::Allow)
            }
            FXP_CLOSE => {
                let file = self.handles.get(r.string().map_err(t)?).copied();
                (Pending::Close { file }, Verdict::Allow)
            }
            FXP_READ => {
                let file = self.handles.get(r.string().map_err(t)?).copied();
                let offset = r.u64().map_err(t)?;
                r.u32().map_err(t)?;
                let verdict = if self.policy.download {
                    Verdict::Allow
                } else {
                    Verdict::Deny(NO_DOWNLOADS.into())
                };
                (Pending::Read { file, offset }, verdict)
            }
            FXP_FSTAT | FXP_FSETSTAT | FXP_READDIR => {
                let file = self.handles.get(r.string().map_err(t)?).copied();
                let (op, verdict) = match ty {
                    FXP_FSTAT => (Op::Fstat, Verdict::Allow),
                    FXP_FSETSTAT => (Op::Fsetstat, changes),
                    _ => (Op::Readdir, Verdict::Allow),
                };
                // Lenient: the size is only a hint for completeness, never a reason to stop.
                let set_size = if ty == FXP_FSETSTAT {
                    let attrs = r.attrs().ok();
                    raw |= attrs.as_ref().is_none_or(|a| a.extended > 0);
                    attrs.and_then(|a| a.size)
                } else {
                    None
                };
                (Pending::OnHandle { op, file, other: None, set_size }, verdict)
            }
            FXP_RENAME | FXP_SYMLINK => {
                let first = path_text(r.string().map_err(t)?);
                let second = path_text(r.string().map_err(t)?);
                let pending = if ty == FXP_RENAME {
                    Pending::OnPath { op: Op::Rename, path: first, target: Some(second) }
                } else {
                    // OpenSSH sends (and its server reads) the link's target first and the
                    // link second, the reverse of the draft; every client follows OpenSSH.
                    Pending::OnPath { op: Op::Symlink, path: second, target: Some(first) }
                };
                (pending, changes)
            }
            FXP_LSTAT | FXP_SETSTAT | FXP_REMOVE | FXP_MKDIR | FXP_RMDIR | FXP_REALPATH
            | FXP_STAT | FXP_READLINK => {
                let path = path_text(r.string().map_err(t)?);
                if matches!(ty, FXP_SETSTAT | FXP_MKDIR) {
                    raw |= r.attrs().map_or(true, |a| a.extended > 0);
                }
                let (op, verdict) = match ty {
                    FXP_LSTAT => (Op::Lstat, Verdict::Allow),
                    FXP_SETSTAT => (Op::Setstat, changes),
                    FXP_REMOVE => (Op::Remove, changes),
                    FXP_MKDIR => (Op::Mkdir, changes),
                    FXP_RMDIR => (Op::Rmdir, changes),
                    FXP_REALPATH => (Op::Realpath, Verdict::Allow),
                    FXP_STAT => (Op::Stat, Verdict::Allow),
                    _ => (Op::Readlink, Verdict::Allow),
                };
                (Pending::OnPath { op, path, target: None }, verdict)
            }
            FXP_EXTENDED => {
                // Extension arguments are read leniently and only in part: the whole packet
                // is recorded as it is.
                raw = true;
                let name = r.string().map_err(t)?;
                self.extended(name, &mut r)
            }
            _ => (
                Pending::OnPath { op: Op::Unknown(ty), path: String::new(), target: None },
                changes,
            ),
        };
        // Trailing bytes no server reads, but a server of the person's making could.
        raw |= !r.is_empty();
        match verdict {
            Verdict::Allow => {
                self.add_outstanding(id, pending)?;
                if raw {
                    out.forward_raw(p);
                } else {
                    out.forward.extend_from_slice(p);
                }
            }
            Verdict::Deny(reason) => self.deny(id, pending, reason, out),
        }
        Ok(())
    }

    /// An `SSH_FXP_EXTENDED` request. Extensions that only read are allowed; the rest,
    /// including any this tracker does not know, change the target as far as policy goes.
    fn extended(&mut self, name: &[u8], r: &mut Reader<'_>) -> (Pending, Verdict) {
        let op = Op::Extended(path_text(name));
        let changes =
            if self.policy.upload { Verdict::Allow } else { Verdict::Deny(NO_CHANGES.into()) };
        // Arguments are read leniently: a malformed one is the target's to reject.
        let mut path = || r.string().map(path_text).unwrap_or_default();
        match name {
            b"posix-rename@openssh.com" | b"hardlink@openssh.com" => {
                let (from, to) = (path(), path());
                (Pending::OnPath { op, path: from, target: Some(to) }, changes)
            }
            b"lsetstat@openssh.com" => {
                (Pending::OnPath { op, path: path(), target: None }, changes)
            }
            b"statvfs@openssh.com" | b"expand-path@openssh.com" | b"home-directory" => {
                (Pending::OnPath { op, path: path(), target: None }, Verdict::Allow)
            }
            b"limits@openssh.com" | b"users-groups-by-id@openssh.com" => {
                (Pending::OnPath { op, path: String::new(), target: None }, Verdict::Allow)
            }
            b"fstatvfs@openssh.com" | b"fsync@openssh.com" => {
                let file = r.string().ok().and_then(|h| self.handles.get(h).copied());
                (Pending::OnHandle { op, file, other: None, set_size: None }, Verdict::Allow)
            }
            b"copy-data" => self.copy_data(op, r, changes),
            _ => (Pending::OnPath { op, path: String::new(), target: None }, changes),
        }
    }

    /// `copy-data`: the target copies between two handles itself, so the destination's
    /// bytes never pass here and it can have no hash.
    fn copy_data(&mut self, op: Op, r: &mut Reader<'_>, changes: Verdict) -> (Pending, Verdict) {
        let from = r.string().ok().and_then(|h| self.handles.get(h).copied());
        let _read_offset = r.u64();
        let len = r.u64().ok();
        let to = r.string().ok().and_then(|h| self.handles.get(h).copied());
        let write_offset = r.u64().ok();
        let mut verdict = changes;
        if let (Verdict::Allow, Some(max)) = (&verdict, self.policy.max_file_size) {
            // A length of 0 copies to the end of the source: its size is unknown here.
            let end = match (write_offset, len) {
                (Some(offset), Some(len)) if len != 0 => offset.checked_add(len),
                _ => None,
            };
            if end.is_none_or(|end| end > max) {
                verdict = Verdict::Deny(too_big(max));
            }
        }
        if let (Verdict::Allow, Some(f)) = (&verdict, to.and_then(|to| self.files.get_mut(&to))) {
            f.wrote = true;
            f.write_spoiled = true;
        }
        (Pending::OnHandle { op, file: from, other: to, set_size: None }, verdict)
    }

    /// The header of a WRITE: decide, then let its data stream through (or drop it).
    fn write_header(&mut self, p: &[u8], out: &mut Output) -> Result<(), ParseError> {
        let t = |Truncated| ParseError::Truncated { ty: wire::FXP_WRITE };
        let total = 4 + wire::be_u32(p) as usize;
        let mut r = Reader::new(&p[5..]);
        let id = r.u32().map_err(t)?;
        let handle = r.string().map_err(t)?;
        let offset = r.u64().map_err(t)?;
        let len = r.u32().map_err(t)?;
        let Some(trailer) = (total - p.len()).checked_sub(len as usize) else {
            return Err(ParseError::Truncated { ty: wire::FXP_WRITE });
        };
        let file = self.handles.get(handle).copied();
        let len64 = u64::from(len);
        // With APPEND the target ignores the offset and writes at the end: count what this
        // handle sent so far instead, so repeated writes at 0 cannot grow past the limit.
        let appended = file
            .and_then(|file| self.files.get(&file))
            .filter(|f| f.pflags.is_some_and(|p| p & wire::FXF_APPEND != 0))
            .map_or(0, |f| f.sent);
        let end = offset.checked_add(len64).zip(appended.checked_add(len64)).map(|(a, b)| a.max(b));
        let denial = if !self.policy.upload {
            Some(NO_UPLOADS.to_string())
        } else {
            self.policy.max_file_size.filter(|&max| end.is_none_or(|end| end > max)).map(too_big)
        };
        let mut body =
            Body { data_left: len, trailer_left: trailer as u32, forward: true, feed: None };
        match denial {
            Some(reason) => {
                body.forward = false;
                self.deny(id, Pending::Write { file, offset, len }, reason, out);
            }
            None => {
                self.add_outstanding(id, Pending::Write { file, offset, len })?;
                out.forward.extend_from_slice(p);
                if let Some(f) = file.and_then(|file| self.files.get_mut(&file)) {
                    f.writes_in_flight += 1;
                    f.wrote = true;
                    f.sent = f.sent.saturating_add(len64);
                }
                body.feed = file.map(|file| Feed { file, side: Side::Write, offset });
            }
        }
        self.start_body(Direction::ClientToServer, body);
        Ok(())
    }

    /// Answers a request in the target's stead with `SSH_FX_PERMISSION_DENIED`.
    fn deny(&mut self, id: u32, pending: Pending, reason: String, out: &mut Output) {
        wire::put_status(&mut out.reply, id, FX_PERMISSION_DENIED, &format!("keepwatch: {reason}"));
        let result = OpResult::Denied { reason };
        let (op, path, target_path, flags) = match pending {
            Pending::Open { path, pflags } => (Op::Open, path, None, Some(pflags)),
            Pending::Opendir { path } => (Op::Opendir, path, None, None),
            Pending::OnPath { op, path, target } => (op, path, target, None),
            Pending::OnHandle { op, file, other, .. } => {
                let target = other.map(|other| self.path_of(Some(other)));
                (op, self.path_of(file), target, None)
            }
            Pending::Close { file } => (Op::Close, self.path_of(file), None, None),
            Pending::Read { file, .. } | Pending::Write { file, .. } => {
                let side =
                    if matches!(pending, Pending::Read { .. }) { Side::Read } else { Side::Write };
                let op = if side == Side::Read { Op::Read } else { Op::Write };
                // Pipelined requests would repeat the same denial: report it once per file.
                if let Some(f) = file.and_then(|file| self.files.get_mut(&file)) {
                    let reported = match side {
                        Side::Read => std::mem::replace(&mut f.read_denied, true),
                        Side::Write => {
                            f.wrote = true;
                            f.write_spoiled = true;
                            std::mem::replace(&mut f.write_denied, true)
                        }
                    };
                    if reported {
                        return;
                    }
                }
                (op, self.path_of(file), None, None)
            }
        };
        out.events.push(SftpEvent::Operation { op, path, target_path, flags, result });
    }
}
