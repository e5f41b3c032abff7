//! The SFTP tracker: frames both directions of a subsystem channel into packets, applies the
//! transfer policy to each request, matches answers to requests by id, and follows every open
//! file handle to the [`Transfer`](crate::Transfer) it amounts to.
//!
//! WRITE requests and DATA answers (the bulk of any transfer) are not buffered: once their
//! header is in, the policy is decided and their data streams straight through, hashed on
//! the way. Every other packet is buffered until complete (at most [`wire::MAX_PACKET`]).

mod files;
mod request;
mod response;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use crate::track::Budget;
use crate::{Direction, OpResult, Output, SftpEvent, TransferPolicy};

use files::{Ending, FileId, OpenFile, Side};
use request::Pending;
use wire::{FXP_DATA, FXP_WRITE, MAX_PACKET};

/// Requests awaiting an answer, at most.
const MAX_OUTSTANDING: usize = 16 * 1024;
/// Open handles, at most.
const MAX_OPEN: usize = 4096;
/// Path bytes held for outstanding requests and open handles together, at most.
const MAX_HELD_PATH_BYTES: usize = 4 << 20;

/// Why a byte stream stopped being SFTP as far as the tracker can tell.
#[derive(Debug, thiserror::Error)]
enum ParseError {
    #[error("packet length {len} is over the {MAX_PACKET}-byte limit")]
    TooLong { len: u32 },
    #[error("packet length 0 leaves no room for a type")]
    Empty,
    #[error("{} packet cut short by its length", wire::type_name(*ty))]
    Truncated { ty: u8 },
    #[error("request id {id} reused while a request with it is outstanding")]
    IdReused { id: u32 },
    #[error("more than {MAX_OUTSTANDING} requests outstanding")]
    TooManyOutstanding,
    #[error("more than {MAX_OPEN} handles open")]
    TooManyOpen,
    #[error("more than {MAX_HELD_PATH_BYTES} bytes of paths held for open handles and requests")]
    TooManyPathBytes,
    #[error("handle of {len} bytes is over the 256-byte limit")]
    HandleTooLong { len: usize },
    #[error("server speaks sftp version {version}, only version 3 is understood")]
    Version { version: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Tracking,
    /// After a protocol error with nothing to enforce: bytes go through as raw bytes, to be
    /// recorded as they are.
    Raw,
    /// After a protocol error with a policy to enforce: nothing goes through.
    Closed,
}

/// One direction's framing state.
#[derive(Debug, Default)]
struct Rx {
    /// A packet's first bytes, kept until enough of it is in to handle it.
    head: Vec<u8>,
    /// The rest of a WRITE or DATA whose header was handled.
    body: Option<Body>,
}

#[derive(Debug)]
struct Body {
    /// Bytes of the data string still to come.
    data_left: u32,
    /// Bytes after the data string (ignored by servers, passed along) still to come.
    trailer_left: u32,
    /// `false` when the packet was denied and is being dropped.
    forward: bool,
    /// Where the data belongs, when it belongs to a tracked file.
    feed: Option<Feed>,
}

#[derive(Debug)]
struct Feed {
    file: FileId,
    side: Side,
    offset: u64,
}

/// Tracks one SFTP channel. See the crate documentation for how to drive it.
#[derive(Debug)]
pub struct SftpTracker {
    policy: TransferPolicy,
    mode: Mode,
    client: Rx,
    server: Rx,
    outstanding: HashMap<u32, Pending>,
    handles: HashMap<Vec<u8>, FileId>,
    files: HashMap<FileId, OpenFile>,
    next_file: FileId,
    /// Path bytes held in `outstanding` and `files`.
    held_path_bytes: usize,
    budget: Budget,
    /// The size the last STAT or LSTAT reported, by path: OpenSSH stats a file before it
    /// opens it for download, so this is the size of a download that does not finish.
    last_stat: Option<(String, u64)>,
    /// Hand out file content up to this many bytes per file (see [`SftpTracker::with_capture`]).
    capture: Option<u64>,
}

impl SftpTracker {
    pub fn new(policy: TransferPolicy) -> Self {
        SftpTracker {
            policy,
            mode: Mode::Tracking,
            client: Rx::default(),
            server: Rx::default(),
            outstanding: HashMap::new(),
            handles: HashMap::new(),
            files: HashMap::new(),
            next_file: 0,
            held_path_bytes: 0,
            budget: Budget::default(),
            last_stat: None,
            capture: None,
        }
    }

    /// Also hands out the content of files as it passes ([`Output::content`]), for files up
    /// to `max_bytes`; each [`Transfer`](crate::Transfer) then says whether its content is
    /// the whole file ([`crate::Capture`]).
    pub fn with_capture(mut self, max_bytes: u64) -> Self {
        self.capture = Some(max_bytes);
        self
    }

    /// Feeds bytes the client sent. `out.forward` gets the bytes for the target (allowed
    /// requests, in order), `out.reply` the answers for the client to denied requests.
    pub fn from_client(&mut self, data: &[u8], out: &mut Output) {
        self.feed(Direction::ClientToServer, data, out);
    }

    /// Feeds bytes the target sent. `out.forward` gets the bytes for the client; `out.reply`
    /// stays empty.
    pub fn from_server(&mut self, data: &[u8], out: &mut Output) {
        self.feed(Direction::ServerToClient, data, out);
    }

    /// The channel ended: reports requests left unanswered and files left open (as
    /// incomplete transfers), and forgets them.
    pub fn finish(&mut self, out: &mut Output) {
        if self.mode != Mode::Tracking {
            return;
        }
        let mut ids: Vec<u32> = self.outstanding.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(pending) = self.take_outstanding(id) {
                self.unanswered(pending, out);
            }
        }
        let mut open: Vec<FileId> = self.files.keys().copied().collect();
        open.sort_unstable();
        for file in open {
            if let Some(f) = self.remove_file(file) {
                self.end_file(f, Ending::ChannelEnded, out);
            }
        }
        self.client = Rx::default();
        self.server = Rx::default();
    }

    /// Bytes held inside the tracker right now (partial packets, out-of-order file data,
    /// paths of open handles and outstanding requests): a gauge for memory use, bounded by
    /// about 21 MiB whatever the peers send.
    pub fn buffered(&self) -> usize {
        self.client.head.len() + self.server.head.len() + self.budget.used + self.held_path_bytes
    }

    fn rx(&mut self, dir: Direction) -> &mut Rx {
        match dir {
            Direction::ClientToServer => &mut self.client,
            Direction::ServerToClient => &mut self.server,
        }
    }

    fn feed(&mut self, dir: Direction, mut data: &[u8], out: &mut Output) {
        match self.mode {
            Mode::Tracking => {}
            Mode::Raw => {
                let head = std::mem::take(&mut self.rx(dir).head);
                out.forward_raw(&head);
                out.forward_raw(data);
                return;
            }
            Mode::Closed => {
                out.close_channel = true;
                return;
            }
        }
        let streamed = match dir {
            Direction::ClientToServer => FXP_WRITE,
            Direction::ServerToClient => FXP_DATA,
        };
        loop {
            if self.rx(dir).body.is_some() {
                if data.is_empty() {
                    return;
                }
                data = self.stream_body(dir, data, out);
                continue;
            }
            let rx = self.rx(dir);
            if !rx.head.is_empty() {
                let need = match want(&rx.head, streamed) {
                    Ok(need) => need,
                    Err(e) => return self.fail(dir, e, data, out),
                };
                if rx.head.len() < need {
                    if data.is_empty() {
                        return;
                    }
                    let n = (need - rx.head.len()).min(data.len());
                    rx.head.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    continue;
                }
                let head = std::mem::take(&mut rx.head);
                let result = self.packet(dir, &head, out);
                self.rx(dir).head = head;
                if let Err(e) = result {
                    return self.fail(dir, e, data, out);
                }
                self.rx(dir).head.clear();
                continue;
            }
            if data.is_empty() {
                return;
            }
            match want(data, streamed) {
                Ok(need) if data.len() >= need => {
                    let (packet, rest) = data.split_at(need);
                    if let Err(e) = self.packet(dir, packet, out) {
                        return self.fail(dir, e, data, out);
                    }
                    data = rest;
                }
                Ok(_) => {
                    self.rx(dir).head.extend_from_slice(data);
                    return;
                }
                Err(e) => return self.fail(dir, e, data, out),
            }
        }
    }

    /// Passes (or drops) the next bytes of a WRITE's or DATA's data and trailer, hashing the
    /// data into its file. Returns what is left of `data`.
    fn stream_body<'d>(&mut self, dir: Direction, data: &'d [u8], out: &mut Output) -> &'d [u8] {
        let rx = match dir {
            Direction::ClientToServer => &mut self.client,
            Direction::ServerToClient => &mut self.server,
        };
        let Some(body) = &mut rx.body else { return data };
        let n = (body.data_left as usize).min(data.len());
        let (chunk, rest) = data.split_at(n);
        if n > 0 {
            if body.forward {
                out.forward.extend_from_slice(chunk);
            }
            if let Some(feed) = &mut body.feed {
                if let Some(f) = self.files.get_mut(&feed.file) {
                    match feed.side {
                        Side::Read => {
                            f.read.hash(feed.offset, chunk, &mut self.budget);
                            f.read.moved(feed.offset, n as u64);
                        }
                        // Counted when the target confirms the write.
                        Side::Write => f.write.hash(feed.offset, chunk, &mut self.budget),
                    }
                    // A fed body is always forwarded: its bytes are the last `n` of `forward`.
                    if let Some(content) = f.content(feed.side) {
                        let end = out.forward.len();
                        content.pass(feed.offset, end - n..end, &mut out.content);
                    }
                }
                feed.offset = feed.offset.saturating_add(n as u64);
            }
            body.data_left -= n as u32;
        }
        let m = (body.trailer_left as usize).min(rest.len());
        if body.forward {
            // Bytes after the data string: servers ignore them, no event says them.
            out.forward_raw(&rest[..m]);
        }
        body.trailer_left -= m as u32;
        if body.data_left == 0 && body.trailer_left == 0 {
            rx.body = None;
        }
        &rest[m..]
    }

    /// Handles a whole packet, or the header of a WRITE or DATA. Nothing is written to `out`
    /// when it fails.
    fn packet(&mut self, dir: Direction, p: &[u8], out: &mut Output) -> Result<(), ParseError> {
        match dir {
            Direction::ClientToServer => self.request(p, out),
            Direction::ServerToClient => self.response(p, out),
        }
    }

    /// Starts streaming the data after a header, if there is any.
    fn start_body(&mut self, dir: Direction, body: Body) {
        if body.data_left != 0 || body.trailer_left != 0 {
            self.rx(dir).body = Some(body);
        }
    }

    fn fail(&mut self, dir: Direction, e: ParseError, rest: &[u8], out: &mut Output) {
        out.events.push(SftpEvent::ProtocolError { direction: dir, reason: e.to_string() });
        let head = std::mem::take(&mut self.rx(dir).head);
        if self.policy.allows_everything() {
            // Nothing to enforce: the channel goes on, every byte recorded as it is.
            self.mode = Mode::Raw;
            out.forward_raw(&head);
            out.forward_raw(rest);
        } else {
            self.mode = Mode::Closed;
            out.close_channel = true;
        }
        for (_, mut f) in self.files.drain() {
            f.read.release(&mut self.budget);
            f.write.release(&mut self.budget);
        }
        self.outstanding.clear();
        self.handles.clear();
        self.held_path_bytes = 0;
    }

    fn add_outstanding(&mut self, id: u32, pending: Pending) -> Result<(), ParseError> {
        if self.outstanding.contains_key(&id) {
            return Err(ParseError::IdReused { id });
        }
        if self.outstanding.len() >= MAX_OUTSTANDING {
            return Err(ParseError::TooManyOutstanding);
        }
        let held = pending.path_bytes();
        if self.held_path_bytes + held > MAX_HELD_PATH_BYTES {
            return Err(ParseError::TooManyPathBytes);
        }
        self.held_path_bytes += held;
        self.outstanding.insert(id, pending);
        Ok(())
    }

    fn take_outstanding(&mut self, id: u32) -> Option<Pending> {
        let pending = self.outstanding.remove(&id)?;
        self.held_path_bytes -= pending.path_bytes();
        Some(pending)
    }

    fn remove_file(&mut self, file: FileId) -> Option<OpenFile> {
        let f = self.files.remove(&file)?;
        if self.handles.get(&f.handle) == Some(&file) {
            self.handles.remove(&f.handle);
        }
        self.held_path_bytes -= f.path.len();
        Some(f)
    }

    fn path_of(&self, file: Option<FileId>) -> String {
        file.and_then(|file| self.files.get(&file)).map(|f| f.path.clone()).unwrap_or_default()
    }

    fn event(out: &mut Output, op: crate::Op, path: String, result: OpResult) {
        out.events.push(SftpEvent::Operation { op, path, target_path: None, flags: None, result });
    }

    /// The event for a request on a handle, named by the handle's path (and `other`'s as the
    /// target path).
    fn handle_event(
        &self,
        out: &mut Output,
        op: crate::Op,
        file: Option<FileId>,
        other: Option<FileId>,
        result: OpResult,
    ) {
        let target_path = other.map(|other| self.path_of(Some(other)));
        let path = self.path_of(file);
        out.events.push(SftpEvent::Operation { op, path, target_path, flags: None, result });
    }
}

/// How many bytes of the packet starting at `p` must be in before it can be handled: the
/// whole packet, or for `streamed` (WRITE from the client, DATA from the server) its header.
fn want(p: &[u8], streamed: u8) -> Result<usize, ParseError> {
    if p.len() < 4 {
        return Ok(4);
    }
    let len = wire::be_u32(p);
    if len == 0 {
        return Err(ParseError::Empty);
    }
    if len > MAX_PACKET {
        return Err(ParseError::TooLong { len });
    }
    let total = 4 + len as usize;
    if p.len() < 5 {
        return Ok(5);
    }
    if p[4] != streamed {
        return Ok(total);
    }
    let header = if streamed == FXP_WRITE {
        if p.len() < 13 {
            return Ok(total.min(13));
        }
        wire::write_header_len(wire::be_u32(&p[9..]) as usize)
    } else {
        wire::DATA_HEADER_LEN
    };
    Ok(header.min(total))
}
