//! The legacy SCP protocol (`scp -O`, or any scp before OpenSSH 9.0) on an exec channel
//! running `scp -t PATH` (the client sends files to the target) or `scp -f PATH...` (the
//! target sends files to the client).
//!
//! One side is the *source*, sending records and file data; the other the *sink*, answering
//! each record with one byte `\0` (go on) or a `\x01`/`\x02` line (error, fatal). The two
//! take turns strictly: the source waits for every answer before it goes on, so at any
//! moment exactly one side may speak, and bytes from the other are a protocol error.
//!
//! ```text
//! sink:   \0                \0                   \0          \0          \0
//! source:    D0755 0 dir\n     C0644 5 a.txt\n     hello\0     E\n
//! ```
//!
//! Refusals use the sink's own error answer, `\x01keepwatch: ...\n`, so OpenSSH's scp skips
//! the refused file and goes on with the next (see [`ScpTracker`]).

mod command;

#[cfg(test)]
mod tests;

use sha2::{Digest, Sha256};

use crate::content::{Content, ContentId, SkipReason};
use crate::event::path_text;
use crate::{
    Direction, Op, OpResult, Output, SftpEvent, Transfer, TransferDirection, TransferPolicy,
};

use command::{Command, join};

/// The longest record or error line accepted (OpenSSH's own buffers hold 2 KiB).
const MAX_LINE: usize = 4096;
/// Directory records open at once, at most.
const MAX_DEPTH: usize = 1024;
/// Bytes of open directory names, at most.
const MAX_DIRS_BYTES: usize = 1 << 20;

/// Which way files go on a legacy SCP channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScpMode {
    /// `scp -t`: the client is the source, files are written on the target.
    Upload,
    /// `scp -f`: the target is the source, files are read from it.
    Download,
}

/// Why an SCP byte stream stopped making sense.
#[derive(Debug, thiserror::Error)]
enum ParseError {
    #[error("scp {speaker} sent bytes while the {expected} had the turn")]
    OutOfTurn { speaker: &'static str, expected: &'static str },
    #[error("scp line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("unexpected scp record {line:?}")]
    BadRecord { line: String },
    #[error("scp file name {name:?} is not a single path component")]
    BadName { name: String },
    #[error("scp directories nested deeper than {MAX_DEPTH} levels or {MAX_DIRS_BYTES} bytes")]
    TooDeep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Tracking,
    /// After a protocol error with nothing to enforce: bytes go through as raw bytes.
    Raw,
    Closed,
}

/// A file whose record was sent: its data is coming or came.
#[derive(Debug)]
struct File {
    path: String,
    size: u64,
    moved: u64,
    hasher: Sha256,
    /// With capture on, the content handed out so far.
    content: Option<Content>,
}

/// What the sink is answering.
#[derive(Debug)]
enum Asked {
    /// Whether it is ready (its first byte).
    Ready,
    Header(File),
    /// A directory record: its full path at the top level, its name below.
    Dir(String),
    EndDir,
    Time,
    /// The end of a file's data; `source_ok` when the source ended it with `\0`.
    Data {
        file: File,
        source_ok: bool,
    },
}

#[derive(Debug)]
enum State {
    /// The sink answers.
    Sink(Asked),
    /// The source sends its next record line.
    Record,
    /// The source sends a file's data.
    Data(File),
    /// The source ends a file's data with `\0` or an error line.
    DataEnd(File),
    /// A fatal error line ended both programs; anything after goes through as raw bytes.
    Done,
}

/// Tracks one legacy SCP exec channel.
///
/// Policy is enforced like this:
/// - A refused command (`-t` without uploads, `-f` without downloads): call
///   [`ScpTracker::start`] before running the command and do not run it if it refuses. If
///   the command runs anyway, the first answer the client waits for is replaced by
///   `\x01keepwatch: uploads are not allowed on this target\n` (OpenSSH's scp prints it and
///   exits 1), nothing more is forwarded and `close_channel` is set.
/// - A file over `max_file_size`: its `C` record is not forwarded. With `-t` the client gets
///   `\x01keepwatch: ...\n` in `reply` as the sink's answer and skips the file; with `-f`
///   the target gets the same in `reply` (and skips the file) while the client gets it in
///   `forward` as an error record (printed; scp exits 1 at the end). Both sides stay in step
///   and the other files go through.
#[derive(Debug)]
pub struct ScpTracker {
    command: Command,
    policy: TransferPolicy,
    health: Health,
    state: State,
    /// A line being collected (a record from the source, an error answer from the sink).
    line: Vec<u8>,
    /// Whose bytes `line` holds once passing through (it then waits for that side's next
    /// bytes, so each side's bytes stay in order).
    line_from: Side,
    /// Open directory records: the top one's full path, then names below it.
    dirs: Vec<String>,
    dirs_bytes: usize,
    /// Hand out file content up to this many bytes per file (see [`ScpTracker::with_capture`]).
    capture: Option<u64>,
    /// Files given a content id so far.
    next_content: u64,
}

impl ScpTracker {
    /// `None` unless `command` (an exec request) runs `scp -t` or `scp -f`.
    pub fn new(command: &[u8], policy: TransferPolicy) -> Option<Self> {
        Some(ScpTracker {
            command: command::parse(command)?,
            policy,
            health: Health::Tracking,
            state: State::Sink(Asked::Ready),
            line: Vec::new(),
            line_from: Side::Client,
            dirs: Vec::new(),
            dirs_bytes: 0,
            capture: None,
            next_content: 0,
        })
    }

    /// Also hands out the content of files as it passes ([`Output::content`]), for files up
    /// to `max_bytes`; each [`Transfer`] then says whether its content is the whole file.
    pub fn with_capture(mut self, max_bytes: u64) -> Self {
        self.capture = Some(max_bytes);
        self
    }

    pub fn mode(&self) -> ScpMode {
        self.command.mode
    }

    /// Checks the whole command against the policy before it runs. When it is refused, this
    /// returns `true` and fills `out`: the denial event, in `reply` the bytes to send the
    /// client, and `close_channel`. The gateway then sends `reply` as channel data, exit
    /// status 1 and closes the channel without running anything on the target.
    pub fn start(&mut self, out: &mut Output) -> bool {
        let Some(reason) = self.refusal() else { return false };
        self.refuse(reason, out, Side::Client);
        true
    }

    /// Feeds bytes the client sent.
    pub fn from_client(&mut self, data: &[u8], out: &mut Output) {
        self.feed(Side::Client, data, out);
    }

    /// Feeds bytes the target sent.
    pub fn from_server(&mut self, data: &[u8], out: &mut Output) {
        self.feed(Side::Server, data, out);
    }

    /// The channel ended: a file cut off mid-way is reported as an incomplete transfer.
    pub fn finish(&mut self, out: &mut Output) {
        if self.health != Health::Tracking {
            return;
        }
        match std::mem::replace(&mut self.state, State::Done) {
            State::Data(file) | State::DataEnd(file) | State::Sink(Asked::Data { file, .. }) => {
                self.transfer(file, false, out)
            }
            _ => {}
        }
    }

    /// Bytes held inside the tracker (a partial line, open directory names): bounded by
    /// about 1 MiB whatever the peers send.
    pub fn buffered(&self) -> usize {
        self.line.len() + self.dirs_bytes
    }

    fn refusal(&self) -> Option<&'static str> {
        match self.command.mode {
            ScpMode::Upload if !self.policy.upload => Some(crate::NO_UPLOADS),
            ScpMode::Download if !self.policy.download => Some(crate::NO_DOWNLOADS),
            _ => None,
        }
    }

    /// Refuses the whole command: the client gets the message (in `reply` when the bytes
    /// being handled came from it, else in `forward`), nothing else goes through.
    fn refuse(&mut self, reason: &str, out: &mut Output, fed_by: Side) {
        let client = if fed_by == Side::Client { &mut out.reply } else { &mut out.forward };
        client.extend_from_slice(format!("\x01keepwatch: {reason}\n").as_bytes());
        let op = match self.command.mode {
            ScpMode::Upload => Op::Write,
            ScpMode::Download => Op::Read,
        };
        out.events.push(SftpEvent::Operation {
            op,
            path: self.command.args.join(" "),
            target_path: None,
            flags: None,
            result: OpResult::Denied { reason: reason.to_string() },
        });
        out.close_channel = true;
        self.health = Health::Closed;
    }

    fn source(&self) -> Side {
        match self.command.mode {
            ScpMode::Upload => Side::Client,
            ScpMode::Download => Side::Server,
        }
    }

    fn feed(&mut self, side: Side, mut data: &[u8], out: &mut Output) {
        match self.health {
            Health::Tracking => {}
            Health::Raw => {
                if self.line_from == side {
                    let line = std::mem::take(&mut self.line);
                    out.forward_raw(&line);
                }
                out.forward_raw(data);
                return;
            }
            Health::Closed => {
                out.close_channel = true;
                return;
            }
        }
        while !data.is_empty() {
            if let (Some(reason), State::Sink(Asked::Ready)) = (self.refusal(), &self.state) {
                // The first byte of a refused command: the client gets the refusal instead
                // of the target's ready byte (-t), or in answer to its own (-f).
                return self.refuse(reason, out, side);
            }
            if matches!(self.state, State::Done) {
                out.forward_raw(data);
                return;
            }
            let source_turn =
                matches!(self.state, State::Record | State::Data(_) | State::DataEnd(_));
            if source_turn != (side == self.source()) {
                let (speaker, expected) = match side {
                    Side::Client => ("client", "target"),
                    Side::Server => ("target", "client"),
                };
                let e = ParseError::OutOfTurn { speaker, expected };
                return self.fail(side, e, data, out);
            }
            data = match self.step(data, out) {
                Ok(rest) => rest,
                Err(e) => return self.fail(side, e, data, out),
            };
        }
    }

    /// Consumes the next bytes for the current state; returns the rest.
    fn step<'d>(&mut self, data: &'d [u8], out: &mut Output) -> Result<&'d [u8], ParseError> {
        match &mut self.state {
            State::Data(file) => {
                let n =
                    usize::try_from(file.size - file.moved).unwrap_or(usize::MAX).min(data.len());
                let (chunk, rest) = data.split_at(n);
                file.hasher.update(chunk);
                out.forward.extend_from_slice(chunk);
                if let Some(content) = &mut file.content {
                    let end = out.forward.len();
                    content.pass(file.moved, end - n..end, &mut out.content);
                }
                file.moved += n as u64;
                if file.moved == file.size
                    && let State::Data(file) = std::mem::replace(&mut self.state, State::Done)
                {
                    self.state = State::DataEnd(file);
                }
                Ok(rest)
            }
            State::Sink(_) | State::DataEnd(_) | State::Record => {
                // A single `\0`, or a line. On an error nothing of this call's bytes may be
                // in `out` or `line`: the caller passes them on (or drops them) whole.
                if self.line.is_empty() && data[0] == 0 && !matches!(self.state, State::Record) {
                    self.answered(None, out)?;
                    out.forward.push(0);
                    return Ok(&data[1..]);
                }
                let (part, rest, complete) = match data.iter().position(|&b| b == b'\n') {
                    Some(i) => (&data[..=i], &data[i + 1..], true),
                    None => (data, &[][..], false),
                };
                if self.line.len() + part.len() > MAX_LINE {
                    return Err(ParseError::LineTooLong);
                }
                let held = self.line.len();
                self.line.extend_from_slice(part);
                if complete {
                    let line = std::mem::take(&mut self.line);
                    let result = if matches!(self.state, State::Record) {
                        self.record(&line, out)
                    } else {
                        // An error line's text is in no event: it goes as raw bytes.
                        self.answered(Some(&line), out).map(|()| out.forward_raw(&line))
                    };
                    self.line = line;
                    match result {
                        Ok(()) => self.line.clear(),
                        Err(e) => {
                            self.line.truncate(held);
                            return Err(e);
                        }
                    }
                }
                Ok(rest)
            }
            State::Done => {
                out.forward_raw(data);
                Ok(&[])
            }
        }
    }

    /// A `\0` (`line` is `None`) or an error line, from the sink answering or from the
    /// source ending a file's data.
    fn answered(&mut self, line: Option<&[u8]>, out: &mut Output) -> Result<(), ParseError> {
        let ok = line.is_none();
        // `\x01` is an error; `\x02`, or anything else, ends the program that reads it.
        let fatal = line.is_some_and(|l| l[0] != 1);
        let state = std::mem::replace(&mut self.state, State::Record);
        match state {
            State::DataEnd(file) if fatal => self.transfer(file, false, out),
            State::DataEnd(file) => self.state = State::Sink(Asked::Data { file, source_ok: ok }),
            State::Sink(Asked::Ready | Asked::Time) => {}
            State::Sink(Asked::Header(file)) => {
                if ok {
                    self.state =
                        if file.size == 0 { State::DataEnd(file) } else { State::Data(file) };
                } else {
                    self.refused_by_sink(file.path, line, out);
                }
            }
            State::Sink(Asked::Dir(entry)) => {
                if ok {
                    if self.dirs.len() >= MAX_DEPTH
                        || self.dirs_bytes + entry.len() > MAX_DIRS_BYTES
                    {
                        return Err(ParseError::TooDeep);
                    }
                    self.dirs_bytes += entry.len();
                    self.dirs.push(entry);
                }
            }
            State::Sink(Asked::EndDir) => {
                if let Some(entry) = self.dirs.pop() {
                    self.dirs_bytes -= entry.len();
                }
            }
            State::Sink(Asked::Data { file, source_ok }) => {
                self.transfer(file, source_ok && ok, out)
            }
            State::Record | State::Data(_) | State::Done => {}
        }
        if fatal {
            self.state = State::Done;
        }
        Ok(())
    }

    /// A whole record line from the source.
    fn record(&mut self, line: &[u8], out: &mut Output) -> Result<(), ParseError> {
        let bad = || ParseError::BadRecord { line: path_text(line) };
        let body = &line[..line.len() - 1];
        match body.first() {
            // An error from the source (a file it could not read): no answer expected. Its
            // text is in no event, so it goes as raw bytes.
            Some(1) => out.forward_raw(line),
            Some(2) => {
                out.forward_raw(line);
                self.state = State::Done;
            }
            Some(b'C' | b'D') => {
                let (size, name) = parse_header(&body[1..]).ok_or_else(bad)?;
                if name.is_empty() || name.contains(&b'/') || name == b".." || name == b"." {
                    return Err(ParseError::BadName { name: path_text(name) });
                }
                let name = path_text(name);
                if body[0] == b'D' {
                    out.forward.extend_from_slice(line);
                    // The top directory by its full path, the ones below by name.
                    let entry =
                        if self.dirs.is_empty() { self.command.top_level(&name) } else { name };
                    self.state = State::Sink(Asked::Dir(entry));
                    return Ok(());
                }
                let path = self.path(&name);
                if let Some(max) = self.policy.max_file_size.filter(|&max| size > max) {
                    self.too_big(path, max, out);
                    return Ok(());
                }
                out.forward.extend_from_slice(line);
                let content = self.content_for(size);
                self.state = State::Sink(Asked::Header(File {
                    path,
                    size,
                    moved: 0,
                    hasher: Sha256::new(),
                    content,
                }));
            }
            Some(b'E') if body.len() == 1 => {
                out.forward.extend_from_slice(line);
                self.state = State::Sink(Asked::EndDir);
            }
            Some(b'T') if body[1..].iter().all(|&b| b.is_ascii_digit() || b == b' ') => {
                out.forward.extend_from_slice(line);
                self.state = State::Sink(Asked::Time);
            }
            _ => return Err(bad()),
        }
        Ok(())
    }

    /// A content id for the next file, when capture is on; a file the record says is over
    /// the cap is skipped before its first byte.
    fn content_for(&mut self, size: u64) -> Option<Content> {
        let max = self.capture?;
        let mut content = Content::new(ContentId(self.next_content), max);
        self.next_content += 1;
        if size > max {
            content.skip(SkipReason::OverCap { max });
        }
        Some(content)
    }

    /// Refuses one file over the size limit, keeping both sides in step (see [`ScpTracker`]).
    fn too_big(&mut self, path: String, max: u64, out: &mut Output) {
        let reason = crate::too_big(max);
        let answer = format!("\x01keepwatch: {reason}\n");
        // The source gets the sink's answer; with -f the client (the sink) also hears why.
        out.reply.extend_from_slice(answer.as_bytes());
        let op = match self.command.mode {
            ScpMode::Upload => Op::Write,
            ScpMode::Download => {
                out.forward.extend_from_slice(answer.as_bytes());
                Op::Read
            }
        };
        out.events.push(SftpEvent::Operation {
            op,
            path,
            target_path: None,
            flags: None,
            result: OpResult::Denied { reason },
        });
        self.state = State::Record;
    }

    /// The sink would not take a file (`\x01` answer to its record).
    fn refused_by_sink(&mut self, path: String, line: Option<&[u8]>, out: &mut Output) {
        let message = line.map(|l| path_text(l[1..].strip_suffix(b"\n").unwrap_or(&l[1..])));
        let op = match self.command.mode {
            ScpMode::Upload => Op::Write,
            ScpMode::Download => Op::Read,
        };
        out.events.push(SftpEvent::Operation {
            op,
            path,
            target_path: None,
            flags: None,
            // SCP has no status codes: SSH_FX_FAILURE with the sink's message.
            result: OpResult::Status { code: 4, message: message.unwrap_or_default() },
        });
    }

    fn transfer(&mut self, file: File, ok: bool, out: &mut Output) {
        let complete = ok && file.moved == file.size;
        let ranges = if file.moved > 0 { vec![(0, file.moved)] } else { Vec::new() };
        out.events.push(SftpEvent::Transfer(Transfer {
            path: file.path,
            direction: match self.command.mode {
                ScpMode::Upload => TransferDirection::Upload,
                ScpMode::Download => TransferDirection::Download,
            },
            bytes: file.moved,
            size: Some(file.size),
            sha256: complete.then(|| file.hasher.finalize().into()),
            ranges,
            complete,
            capture: file.content.map(|c| c.outcome(complete.then_some(file.size))),
        }));
    }

    /// Where a record named `name` is on the target, given the open directories.
    fn path(&self, name: &str) -> String {
        match self.dirs.split_first() {
            None => self.command.top_level(name),
            Some((top, below)) => {
                let mut path = top.clone();
                for dir in below {
                    path = join(&path, dir);
                }
                join(&path, name)
            }
        }
    }

    fn fail(&mut self, side: Side, e: ParseError, rest: &[u8], out: &mut Output) {
        let direction = match side {
            Side::Client => Direction::ClientToServer,
            Side::Server => Direction::ServerToClient,
        };
        out.events.push(SftpEvent::ProtocolError { direction, reason: e.to_string() });
        // The held line is from the side whose turn it was.
        let source_turn = matches!(self.state, State::Record | State::Data(_) | State::DataEnd(_));
        self.line_from = match (source_turn, self.source()) {
            (true, source) => source,
            (false, Side::Client) => Side::Server,
            (false, Side::Server) => Side::Client,
        };
        if self.policy.allows_everything() {
            // Nothing to enforce: the channel goes on, every byte recorded as it is.
            self.health = Health::Raw;
            if self.line_from == side {
                let line = std::mem::take(&mut self.line);
                out.forward_raw(&line);
            }
            out.forward_raw(rest);
        } else {
            self.health = Health::Closed;
            out.close_channel = true;
            self.line.clear();
        }
        self.dirs.clear();
        self.dirs_bytes = 0;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

/// `<octal mode> <decimal size> <name>` after the `C` or `D`.
fn parse_header(rest: &[u8]) -> Option<(u64, &[u8])> {
    let space = rest.iter().position(|&b| b == b' ')?;
    let (mode, rest) = (&rest[..space], &rest[space + 1..]);
    if mode.is_empty() || !mode.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return None;
    }
    let space = rest.iter().position(|&b| b == b' ')?;
    let (size, name) = (&rest[..space], &rest[space + 1..]);
    if size.is_empty() || !size.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let size = std::str::from_utf8(size).ok()?.parse().ok()?;
    Some((size, name))
}
