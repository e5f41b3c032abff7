//! Answers from the target: matched to their requests by id, turned into events, and fed
//! to the open files they concern.

use crate::{Direction, Op, OpResult, Output, SftpEvent, too_big};

use super::files::{Ending, Side};
use super::request::Pending;
use super::wire::{
    self, FX_EOF, FX_OK, FX_PERMISSION_DENIED, FXP_ATTRS, FXP_DATA, FXP_EXTENDED_REPLY, FXP_HANDLE,
    FXP_NAME, FXP_STATUS, FXP_VERSION, Reader, Truncated,
};
use super::{Body, Feed, ParseError, SftpTracker};

/// A status text longer than this is recorded as raw bytes (OpenSSH's are a few words).
const MAX_PLAIN_STATUS: usize = 64;
/// A language tag longer than this is recorded as raw bytes.
const MAX_PLAIN_LANG: usize = 16;

/// The part of an answer that matters to its request.
enum Reply<'p> {
    Status {
        code: u32,
        message: &'p [u8],
    },
    Handle(&'p [u8]),
    Attrs {
        size: Option<u64>,
    },
    /// DATA, NAME, EXTENDED_REPLY or a type we do not know: a success of some kind.
    Other,
}

impl Reply<'_> {
    fn result(&self) -> OpResult {
        match self {
            Reply::Status { code, message } if *code != FX_OK => {
                OpResult::Status { code: *code, message: wire::path_text(message) }
            }
            _ => OpResult::Ok,
        }
    }

    fn is_ok_or_eof(&self) -> bool {
        !matches!(self, Reply::Status { code, .. } if *code != FX_OK && *code != FX_EOF)
    }
}

impl SftpTracker {
    /// A whole answer packet, or the header of a DATA.
    pub(super) fn response(&mut self, p: &[u8], out: &mut Output) -> Result<(), ParseError> {
        let ty = p[4];
        let t = |Truncated| ParseError::Truncated { ty };
        let mut r = Reader::new(&p[5..]);
        if ty == FXP_VERSION {
            let version = r.u32().map_err(t)?;
            if version != 3 {
                return Err(ParseError::Version { version });
            }
            // The server's extension list: in no event.
            out.forward_raw(p);
            return Ok(());
        }
        if ty == FXP_DATA {
            return self.data_header(p, out);
        }
        let known =
            matches!(ty, FXP_STATUS | FXP_HANDLE | FXP_NAME | FXP_ATTRS | FXP_EXTENDED_REPLY);
        if !known && p.len() < 9 {
            out.forward_raw(p);
            return Ok(());
        }
        let id = r.u32().map_err(t)?;
        // Whether the answer holds bytes its event will not: directory listings, extension
        // replies, long status texts, anything unknown or trailing. Recorded as they are.
        let mut raw = false;
        let reply = match ty {
            FXP_STATUS => {
                let code = r.u32().map_err(t)?;
                // Some servers leave out the message and language tag.
                let message = r.string().unwrap_or_default();
                let lang = r.string().unwrap_or_default();
                raw = message.len() > MAX_PLAIN_STATUS || lang.len() > MAX_PLAIN_LANG;
                Reply::Status { code, message }
            }
            FXP_HANDLE => Reply::Handle(r.string().map_err(t)?),
            FXP_ATTRS => {
                let attrs = r.attrs().map_err(t)?;
                raw = attrs.extended > 0;
                Reply::Attrs { size: attrs.size }
            }
            _ => {
                raw = true;
                Reply::Other
            }
        };
        raw |= !r.is_empty();
        if let Some(pending) = self.take_outstanding(id) {
            self.answered(pending, reply, out)?;
        }
        if raw {
            out.forward_raw(p);
        } else {
            out.forward.extend_from_slice(p);
        }
        Ok(())
    }

    /// The header of a DATA: the answer to a READ, whose data streams through to the client
    /// and into the file's hash, unless it reaches past the size limit.
    fn data_header(&mut self, p: &[u8], out: &mut Output) -> Result<(), ParseError> {
        let t = |Truncated| ParseError::Truncated { ty: FXP_DATA };
        if p.len() < wire::DATA_HEADER_LEN {
            return Err(ParseError::Truncated { ty: FXP_DATA });
        }
        let total = 4 + wire::be_u32(p) as usize;
        let mut r = Reader::new(&p[5..]);
        let id = r.u32().map_err(t)?;
        let len = r.u32().map_err(t)?;
        let Some(trailer) = (total - p.len()).checked_sub(len as usize) else {
            return Err(ParseError::Truncated { ty: FXP_DATA });
        };
        let mut body =
            Body { data_left: len, trailer_left: trailer as u32, forward: true, feed: None };
        match self.take_outstanding(id) {
            Some(Pending::Read { file, offset }) => {
                let over = self
                    .policy
                    .max_file_size
                    .filter(|&max| offset.checked_add(u64::from(len)).is_none_or(|end| end > max));
                if let Some(max) = over {
                    // The client asked before the size was known; it gets a refusal instead.
                    let reason = too_big(max);
                    wire::put_status(
                        &mut out.forward,
                        id,
                        FX_PERMISSION_DENIED,
                        &format!("keepwatch: {reason}"),
                    );
                    body.forward = false;
                    let first = match file.and_then(|file| self.files.get_mut(&file)) {
                        Some(f) => !std::mem::replace(&mut f.read_denied, true),
                        None => true,
                    };
                    if first {
                        let path = self.path_of(file);
                        Self::event(out, Op::Read, path, OpResult::Denied { reason });
                    }
                } else {
                    out.forward.extend_from_slice(p);
                    body.feed = file.map(|file| Feed { file, side: Side::Read, offset });
                }
            }
            Some(pending) => {
                self.answered(pending, Reply::Other, out)?;
                out.forward.extend_from_slice(p);
            }
            None => out.forward.extend_from_slice(p),
        }
        self.start_body(Direction::ServerToClient, body);
        Ok(())
    }

    /// What an answer means for the request it answers.
    fn answered(
        &mut self,
        pending: Pending,
        reply: Reply<'_>,
        out: &mut Output,
    ) -> Result<(), ParseError> {
        let result = reply.result();
        match pending {
            Pending::Open { path, pflags } => {
                if let Reply::Handle(h) = reply {
                    self.open_file(h, path.clone(), Some(pflags), out)?;
                }
                out.events.push(SftpEvent::Operation {
                    op: Op::Open,
                    path,
                    target_path: None,
                    flags: Some(pflags),
                    result,
                });
            }
            Pending::Opendir { path } => {
                if let Reply::Handle(h) = reply {
                    self.open_file(h, path.clone(), None, out)?;
                }
                Self::event(out, Op::Opendir, path, result);
            }
            Pending::Close { file } => {
                let ok = matches!(reply, Reply::Status { code: FX_OK, .. } | Reply::Other);
                let path = self.path_of(file);
                if let Some(f) = file.and_then(|file| self.remove_file(file)) {
                    self.end_file(f, Ending::Closed { ok }, out);
                }
                if !ok {
                    Self::event(out, Op::Close, path, result);
                }
            }
            Pending::Read { file, offset } => {
                if let Some(f) = file.and_then(|file| self.files.get_mut(&file))
                    && let Reply::Status { code: FX_EOF, .. } = reply
                {
                    f.eof_at = Some(f.eof_at.map_or(offset, |eof| eof.min(offset)));
                }
                if !reply.is_ok_or_eof() {
                    Self::event(out, Op::Read, self.path_of(file), result);
                }
            }
            Pending::Write { file, offset, len } => {
                let ok = matches!(reply, Reply::Status { code: FX_OK, .. });
                if let Some(f) = file.and_then(|file| self.files.get_mut(&file)) {
                    f.writes_in_flight = f.writes_in_flight.saturating_sub(1);
                    if ok {
                        f.write.moved(offset, u64::from(len));
                    } else {
                        f.write_spoiled = true;
                    }
                }
                if !ok {
                    Self::event(out, Op::Write, self.path_of(file), result);
                }
            }
            Pending::OnHandle { op, file, other, set_size } => {
                if let (Op::Fstat, Reply::Attrs { size: Some(size) }) = (&op, &reply)
                    && let Some(f) = file.and_then(|file| self.files.get_mut(&file))
                {
                    f.size = Some(*size);
                }
                if op == Op::Fsetstat
                    && result == OpResult::Ok
                    && let (Some(size), Some(f)) =
                        (set_size, file.and_then(|file| self.files.get_mut(&file)))
                {
                    f.truncated_to = Some(size);
                }
                if op == Op::Readdir && reply.is_ok_or_eof() {
                    return Ok(());
                }
                self.handle_event(out, op, file, other, result);
            }
            Pending::OnPath { op, path, target } => {
                if let (Op::Stat | Op::Lstat, Reply::Attrs { size: Some(size) }) = (&op, &reply) {
                    self.last_stat = Some((path.clone(), *size));
                }
                out.events.push(SftpEvent::Operation {
                    op,
                    path,
                    target_path: target,
                    flags: None,
                    result,
                });
            }
        }
        Ok(())
    }

    /// A request the channel ended on before the target answered it.
    pub(super) fn unanswered(&mut self, pending: Pending, out: &mut Output) {
        let result = OpResult::Unanswered;
        match pending {
            Pending::Open { path, pflags } => out.events.push(SftpEvent::Operation {
                op: Op::Open,
                path,
                target_path: None,
                flags: Some(pflags),
                result,
            }),
            Pending::Opendir { path } => Self::event(out, Op::Opendir, path, result),
            Pending::OnPath { op, path, target } => {
                out.events.push(SftpEvent::Operation {
                    op,
                    path,
                    target_path: target,
                    flags: None,
                    result,
                });
            }
            Pending::OnHandle { op, file, other, .. } if op != Op::Readdir => {
                self.handle_event(out, op, file, other, result);
            }
            // Bulk requests and closes: the file's transfer, reported next, tells.
            _ => {}
        }
    }
}
