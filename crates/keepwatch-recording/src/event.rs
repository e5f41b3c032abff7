//! The events a recording holds and their byte encoding inside a chunk payload.
//!
//! Every event is `u8 tag ‖ varint at_us ‖ fields`. Integers are LEB128 varints
//! (signed ones zigzag-encoded), byte strings and strings are a varint length
//! followed by the bytes, options are a `0`/`1` marker byte. The decoder is total:
//! every length is checked against the remaining input before anything is
//! allocated, so a hostile payload costs at most its own size.

use keepwatch_core::{ChannelKind, SessionId, SessionStatus};

/// Who a session was, recorded once as the first event of chunk 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStart {
    pub session_id: SessionId,
    /// The Keepwatch user who opened the session.
    pub user: String,
    /// The configured target's name.
    pub target: String,
    /// The host the gateway connected to.
    pub target_host: String,
    /// The login used on the target.
    pub target_login: String,
    /// The person's address as the gateway saw it.
    pub client_addr: String,
    /// Wall-clock start, unix microseconds; event times are relative to it.
    pub started_at_us: i64,
}

/// The terminal a channel asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pty {
    pub term: String,
    pub cols: u32,
    pub rows: u32,
}

/// Which way an end-of-file travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The person closed their side (the target sees EOF).
    ToTarget,
    /// The target closed its side (the person sees EOF).
    ToClient,
}

/// How and when a session ended; always the last event of a sealed recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    pub status: SessionStatus,
    pub reason: Option<String>,
    /// Wall-clock end, unix microseconds.
    pub ended_at_us: i64,
    /// Set when crash recovery sealed chunks that no checkpoint had signed: what the gateway
    /// wrote after its last signature, which nobody vouched for before this seal.
    pub unsigned_tail: Option<UnsignedTail>,
}

/// The part of a recovered recording written after its last signed checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsignedTail {
    /// The last chunk a signature covered before the seal (`None`: not even chunk 0 was
    /// signed, which a writer never does).
    pub after_seq: Option<u64>,
    /// Bytes of whole chunks after it.
    pub bytes: u64,
    /// Events in those chunks.
    pub events: u64,
}

/// One thing that happened in a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Always the first event of chunk 0, and nowhere else.
    SessionStart(SessionStart),
    ChannelOpen {
        channel: u32,
        kind: ChannelKind,
        pty: Option<Pty>,
    },
    /// Target stdout, as sent to the client; on a tunnel channel whose grant records tunnel
    /// bytes, what the tunnel carried to the person.
    Output {
        channel: u32,
        data: Vec<u8>,
    },
    /// Target stderr (SSH extended data), as sent to the client.
    ExtOutput {
        channel: u32,
        data: Vec<u8>,
    },
    /// Bytes the person sent (on a tunnel channel: what the tunnel carried to the target).
    Input {
        channel: u32,
        data: Vec<u8>,
    },
    Resize {
        channel: u32,
        cols: u32,
        rows: u32,
    },
    Eof {
        channel: u32,
        direction: Direction,
    },
    ChannelClose {
        channel: u32,
        exit_status: Option<u32>,
        exit_signal: Option<String>,
    },
    /// A message the gateway itself showed the person or noted about the session.
    Notice {
        channel: Option<u32>,
        text: String,
    },
    /// Always the last event of the last chunk.
    Seal(Seal),
    /// A port-forwarding tunnel opened through the target (`ssh -L`, `ssh -R`), or an agent
    /// channel (`ssh -A`: host `agent`, port 0).
    TunnelOpen {
        channel: u32,
        host: String,
        port: u32,
        originator: String,
    },
    /// A tunnel closed, with the bytes it carried each way.
    TunnelClose {
        channel: u32,
        bytes_to_target: u64,
        bytes_to_client: u64,
    },
    /// A file operation seen in an SFTP or SCP stream (`open`, `remove`, ...), and the
    /// target's answer (`ok`, `status 2: No such file`, `denied: ...`).
    FileOperation {
        channel: u32,
        op: String,
        path: String,
        target_path: Option<String>,
        result: String,
    },
    /// A file that moved: how many bytes, its size and SHA-256 when it moved whole, and the
    /// byte ranges covered when it did not.
    FileTransfer(FileTransfer),
    /// An environment variable the person asked to set on a channel (`SendEnv`, `SetEnv`),
    /// masked like output; `forwarded` is false when the gateway refused it.
    Env {
        channel: u32,
        name: String,
        value: String,
        forwarded: bool,
    },
    /// A statement a database client sent (a simple query, or the execution of a prepared
    /// statement), recorded before it is forwarded. Version 3.
    Statement(Statement),
    /// What came of statement `seq`. Version 3.
    StatementResult(StatementResult),
    /// The database connection's transaction status changed (`ReadyForQuery`). Version 3.
    Transaction {
        channel: u32,
        status: TransactionStatus,
    },
    /// The first rows of statement `seq`'s result, kept under a grant that captures rows.
    /// Version 4.
    Rows(Rows),
    /// Why the person opened the session, as they gave it at connect (a target with
    /// `--require-reason`). In chunk 0 right after `SessionStart`: part of the signed
    /// identity. Version 5.
    Context {
        reason: String,
    },
}

/// What [`Event::Rows`] records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rows {
    pub channel: u32,
    pub seq: u64,
    /// The result's column names, when its description was part of the statement's answer
    /// (a simple query); empty when the client had it described earlier.
    pub columns: Vec<String>,
    /// Each row's values as text (binary ones as `\x` hex; mask rules applied); `None` is
    /// NULL. At most [`MAX_ROWS`] rows of [`MAX_COLUMNS`] values.
    pub rows: Vec<Vec<Option<String>>>,
    /// Rows of the result past the grant's number (or the capture's byte bound), counted.
    pub left_out: u64,
}

/// What [`Event::Statement`] records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub channel: u32,
    /// Numbers the session's statements from 0; its result names it.
    pub seq: u64,
    /// The SQL text (mask rules applied).
    pub text: String,
    /// Bound parameters, as text (binary ones as hex, mask rules applied); `None` is NULL.
    /// Empty for a simple query.
    pub params: Vec<Option<String>>,
    /// Sent with the extended protocol (Parse/Bind/Execute) rather than as a simple query.
    pub extended: bool,
}

/// What [`Event::StatementResult`] records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementResult {
    pub channel: u32,
    pub seq: u64,
    pub outcome: Outcome,
}

/// How a statement ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Completed: the command tag (`INSERT 0 5`, `SELECT 10`) and its row count, if any.
    Done { tag: String, rows: Option<u64> },
    /// The server refused or failed it.
    Failed { sqlstate: String, message: String },
    /// An empty query string.
    Empty,
    /// A portal ran to its row limit and waits for another Execute.
    Suspended,
    /// Not run: an earlier statement of the same pipeline failed.
    Skipped,
    /// Refused by the gateway; never reached the target.
    Refused { reason: String },
}

impl std::fmt::Display for Outcome {
    /// `INSERT 0 5`, `ERROR 42P01: relation "x" does not exist`, `refused by keepwatch: ...`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Done { tag, .. } => f.write_str(tag),
            Outcome::Failed { sqlstate, message } => write!(f, "ERROR {sqlstate}: {message}"),
            Outcome::Empty => f.write_str("empty query"),
            Outcome::Suspended => f.write_str("suspended (row limit reached)"),
            Outcome::Skipped => f.write_str("skipped (an earlier statement failed)"),
            Outcome::Refused { reason } => write!(f, "refused by keepwatch: {reason}"),
        }
    }
}

impl Event {
    /// The database events as a psql-like transcript (terminal text, `\r\n` line ends), for
    /// replay, export and watching: a statement as `=> TEXT` (its parameters on the next
    /// line), its outcome below it. `None` for every other event.
    pub fn transcript(&self) -> Option<String> {
        // Line ends become `\r\n`; every other control character is shown escaped, so a
        // statement, value or name cannot move the cursor or rewrite what an auditor sees.
        let crlf = |s: &str| {
            let mut out = String::with_capacity(s.len());
            for c in s.replace("\r\n", "\n").chars() {
                match c {
                    '\n' => out.push_str("\r\n"),
                    '\t' => out.push('\t'),
                    c if c.is_control() => out.extend(c.escape_default()),
                    c => out.push(c),
                }
            }
            out
        };
        match self {
            Event::Statement(st) => {
                let mut out = format!("=> {}\r\n", crlf(&st.text));
                if !st.params.is_empty() {
                    let shown: Vec<String> = st
                        .params
                        .iter()
                        .enumerate()
                        .map(|(i, p)| match p {
                            Some(v) => format!("${} = '{}'", i + 1, v.replace('\'', "''")),
                            None => format!("${} = NULL", i + 1),
                        })
                        .collect();
                    out.push_str(&format!("   -- {}\r\n", crlf(&shown.join(", "))));
                }
                Some(out)
            }
            Event::StatementResult(r) => Some(format!("{}\r\n\r\n", crlf(&r.outcome.to_string()))),
            Event::Rows(r) => {
                let mut out = String::new();
                if !r.columns.is_empty() {
                    out.push_str(&format!(" {}\r\n", crlf(&r.columns.join(" | "))));
                }
                for row in &r.rows {
                    let values: Vec<&str> =
                        row.iter().map(|v| v.as_deref().unwrap_or("NULL")).collect();
                    out.push_str(&format!(" {}\r\n", crlf(&values.join(" | "))));
                }
                if r.left_out > 0 {
                    out.push_str(&format!(" ({} more rows not kept)\r\n", r.left_out));
                }
                Some(out)
            }
            _ => None,
        }
    }
}

impl Event {
    /// What channel `ch`'s screen shows of this event: its output, or a database event's
    /// psql-like transcript ([`Event::transcript`]); `None` for everything else and for
    /// other channels.
    pub fn shown_on(&self, ch: u32) -> Option<std::borrow::Cow<'_, [u8]>> {
        use std::borrow::Cow;
        let channel = match self {
            Event::Output { channel, data } | Event::ExtOutput { channel, data } => {
                return (*channel == ch).then_some(Cow::Borrowed(data.as_slice()));
            }
            Event::Statement(s) => s.channel,
            Event::StatementResult(r) => r.channel,
            Event::Rows(r) => r.channel,
            _ => return None,
        };
        (channel == ch).then(|| self.transcript()).flatten().map(|t| Cow::Owned(t.into_bytes()))
    }
}

/// A database connection's transaction status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionStatus {
    Idle,
    InTransaction,
    Failed,
}

impl TransactionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionStatus::Idle => "idle",
            TransactionStatus::InTransaction => "in transaction",
            TransactionStatus::Failed => "failed transaction",
        }
    }
}

/// What [`Event::FileTransfer`] records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTransfer {
    pub channel: u32,
    pub path: String,
    /// `true` for a file written on the target, `false` for one read from it.
    pub upload: bool,
    pub bytes: u64,
    pub size: Option<u64>,
    pub sha256: Option<[u8; 32]>,
    pub ranges: Vec<(u64, u64)>,
    pub complete: bool,
}

/// An event and when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedEvent {
    /// Microseconds since the session started.
    pub at_us: u64,
    pub event: Event,
}

/// Why a chunk payload is not a sequence of events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("event cut short at payload byte {at}")]
    Truncated { at: usize },
    #[error("varint too long at payload byte {at}")]
    VarintOverflow { at: usize },
    #[error("value {value} does not fit in 32 bits at payload byte {at}")]
    OutOfRange { value: u64, at: usize },
    #[error("unknown event tag {tag} at payload byte {at}")]
    UnknownTag { tag: u8, at: usize },
    #[error("unknown {what} {value} at payload byte {at}")]
    UnknownCode { what: &'static str, value: u8, at: usize },
    #[error("{what} is not utf-8 at payload byte {at}")]
    NotUtf8 { what: &'static str, at: usize },
}

// Tags are part of the format: never renumber, only add (with a new version).
const TAG_SESSION_START: u8 = 1;
const TAG_CHANNEL_OPEN: u8 = 2;
const TAG_OUTPUT: u8 = 3;
const TAG_EXT_OUTPUT: u8 = 4;
const TAG_INPUT: u8 = 5;
const TAG_RESIZE: u8 = 6;
const TAG_EOF: u8 = 7;
const TAG_CHANNEL_CLOSE: u8 = 8;
const TAG_NOTICE: u8 = 9;
const TAG_SEAL: u8 = 10;
const TAG_TUNNEL_OPEN: u8 = 11;
const TAG_TUNNEL_CLOSE: u8 = 12;
const TAG_FILE_OPERATION: u8 = 13;
const TAG_FILE_TRANSFER: u8 = 14;
// Version 2.
const TAG_ENV: u8 = 15;
/// A seal with an unsigned tail (crash recovery); tag 10 is a seal without one.
const TAG_SEAL_RECOVERED: u8 = 16;
// Version 3.
const TAG_STATEMENT: u8 = 17;
const TAG_STATEMENT_RESULT: u8 = 18;
const TAG_TRANSACTION: u8 = 19;
// Version 4.
const TAG_ROWS: u8 = 20;
/// Version 5.
const TAG_CONTEXT: u8 = 21;
/// A statement records at most this many parameters; more are left out.
pub const MAX_PARAMS: usize = 1024;
/// A rows event keeps at most this many rows; more are left out.
pub const MAX_ROWS: usize = 1000;
/// A row keeps at most this many values (PostgreSQL's own limit of columns).
pub const MAX_COLUMNS: usize = 1664;

const OUTCOME_DONE: u8 = 0;
const OUTCOME_FAILED: u8 = 1;
const OUTCOME_EMPTY: u8 = 2;
const OUTCOME_SUSPENDED: u8 = 3;
const OUTCOME_SKIPPED: u8 = 4;
const OUTCOME_REFUSED: u8 = 5;
/// A transfer records at most this many ranges; more are merged into the last one.
const MAX_RANGES: usize = 1024;

const KIND_SHELL: u8 = 0;
const KIND_EXEC: u8 = 1;
const KIND_SUBSYSTEM: u8 = 2;

fn status_code(status: SessionStatus) -> u8 {
    match status {
        SessionStatus::Active => 0,
        SessionStatus::Closed => 1,
        SessionStatus::Terminated => 2,
        SessionStatus::Interrupted => 3,
        SessionStatus::Refused => 4,
    }
}

fn status_from_code(code: u8) -> Option<SessionStatus> {
    Some(match code {
        0 => SessionStatus::Active,
        1 => SessionStatus::Closed,
        2 => SessionStatus::Terminated,
        3 => SessionStatus::Interrupted,
        4 => SessionStatus::Refused,
        _ => return None,
    })
}

/// Appends the encoding of `ev` to `out`, with every byte string cut to `max_field`
/// bytes (on a char boundary for strings). The writer passes a bound so one event can
/// never outgrow a chunk; data events are split before they get here.
pub(crate) fn encode(out: &mut Vec<u8>, at_us: u64, event: &Event, max_field: usize) {
    let put_str = |out: &mut Vec<u8>, s: &str| put_bytes(out, floor_char(s, max_field).as_bytes());
    let put_raw = |out: &mut Vec<u8>, b: &[u8]| put_bytes(out, &b[..b.len().min(max_field)]);
    let tag = match event {
        Event::SessionStart(_) => TAG_SESSION_START,
        Event::ChannelOpen { .. } => TAG_CHANNEL_OPEN,
        Event::Output { .. } => TAG_OUTPUT,
        Event::ExtOutput { .. } => TAG_EXT_OUTPUT,
        Event::Input { .. } => TAG_INPUT,
        Event::Resize { .. } => TAG_RESIZE,
        Event::Eof { .. } => TAG_EOF,
        Event::ChannelClose { .. } => TAG_CHANNEL_CLOSE,
        Event::Notice { .. } => TAG_NOTICE,
        Event::Seal(s) if s.unsigned_tail.is_some() => TAG_SEAL_RECOVERED,
        Event::Seal(_) => TAG_SEAL,
        Event::TunnelOpen { .. } => TAG_TUNNEL_OPEN,
        Event::TunnelClose { .. } => TAG_TUNNEL_CLOSE,
        Event::FileOperation { .. } => TAG_FILE_OPERATION,
        Event::FileTransfer(_) => TAG_FILE_TRANSFER,
        Event::Env { .. } => TAG_ENV,
        Event::Statement(_) => TAG_STATEMENT,
        Event::StatementResult(_) => TAG_STATEMENT_RESULT,
        Event::Transaction { .. } => TAG_TRANSACTION,
        Event::Rows(_) => TAG_ROWS,
        Event::Context { .. } => TAG_CONTEXT,
    };
    out.push(tag);
    put_varint(out, at_us);
    match event {
        Event::SessionStart(s) => {
            out.extend_from_slice(s.session_id.as_bytes());
            put_str(out, &s.user);
            put_str(out, &s.target);
            put_str(out, &s.target_host);
            put_str(out, &s.target_login);
            put_str(out, &s.client_addr);
            put_i64(out, s.started_at_us);
        }
        Event::ChannelOpen { channel, kind, pty } => {
            put_varint(out, u64::from(*channel));
            match kind {
                ChannelKind::Shell => out.push(KIND_SHELL),
                ChannelKind::Exec { command } => {
                    out.push(KIND_EXEC);
                    put_raw(out, command);
                }
                ChannelKind::Subsystem { name } => {
                    out.push(KIND_SUBSYSTEM);
                    put_str(out, name);
                }
            }
            match pty {
                None => out.push(0),
                Some(p) => {
                    out.push(1);
                    put_str(out, &p.term);
                    put_varint(out, u64::from(p.cols));
                    put_varint(out, u64::from(p.rows));
                }
            }
        }
        Event::Output { channel, data }
        | Event::ExtOutput { channel, data }
        | Event::Input { channel, data } => {
            put_varint(out, u64::from(*channel));
            put_raw(out, data);
        }
        Event::Resize { channel, cols, rows } => {
            put_varint(out, u64::from(*channel));
            put_varint(out, u64::from(*cols));
            put_varint(out, u64::from(*rows));
        }
        Event::Eof { channel, direction } => {
            put_varint(out, u64::from(*channel));
            out.push(match direction {
                Direction::ToTarget => 0,
                Direction::ToClient => 1,
            });
        }
        Event::ChannelClose { channel, exit_status, exit_signal } => {
            put_varint(out, u64::from(*channel));
            match exit_status {
                None => out.push(0),
                Some(code) => {
                    out.push(1);
                    put_varint(out, u64::from(*code));
                }
            }
            match exit_signal {
                None => out.push(0),
                Some(sig) => {
                    out.push(1);
                    put_str(out, sig);
                }
            }
        }
        Event::Notice { channel, text } => {
            match channel {
                None => out.push(0),
                Some(ch) => {
                    out.push(1);
                    put_varint(out, u64::from(*ch));
                }
            }
            put_str(out, text);
        }
        Event::Context { reason } => put_str(out, reason),
        Event::Seal(seal) => {
            out.push(status_code(seal.status));
            match &seal.reason {
                None => out.push(0),
                Some(r) => {
                    out.push(1);
                    put_str(out, r);
                }
            }
            put_i64(out, seal.ended_at_us);
            if let Some(tail) = &seal.unsigned_tail {
                match tail.after_seq {
                    None => out.push(0),
                    Some(seq) => {
                        out.push(1);
                        put_varint(out, seq);
                    }
                }
                put_varint(out, tail.bytes);
                put_varint(out, tail.events);
            }
        }
        Event::Env { channel, name, value, forwarded } => {
            put_varint(out, u64::from(*channel));
            put_str(out, name);
            put_str(out, value);
            out.push(u8::from(*forwarded));
        }
        Event::TunnelOpen { channel, host, port, originator } => {
            put_varint(out, u64::from(*channel));
            put_str(out, host);
            put_varint(out, u64::from(*port));
            put_str(out, originator);
        }
        Event::TunnelClose { channel, bytes_to_target, bytes_to_client } => {
            put_varint(out, u64::from(*channel));
            put_varint(out, *bytes_to_target);
            put_varint(out, *bytes_to_client);
        }
        Event::FileOperation { channel, op, path, target_path, result } => {
            put_varint(out, u64::from(*channel));
            put_str(out, op);
            put_str(out, path);
            match target_path {
                None => out.push(0),
                Some(t) => {
                    out.push(1);
                    put_str(out, t);
                }
            }
            put_str(out, result);
        }
        Event::FileTransfer(t) => {
            put_varint(out, u64::from(t.channel));
            put_str(out, &t.path);
            out.push(u8::from(t.upload));
            put_varint(out, t.bytes);
            match t.size {
                None => out.push(0),
                Some(size) => {
                    out.push(1);
                    put_varint(out, size);
                }
            }
            match &t.sha256 {
                None => out.push(0),
                Some(h) => {
                    out.push(1);
                    out.extend_from_slice(h);
                }
            }
            let ranges = &t.ranges[..t.ranges.len().min(MAX_RANGES)];
            put_varint(out, ranges.len() as u64);
            for (start, end) in ranges {
                put_varint(out, *start);
                put_varint(out, *end);
            }
            out.push(u8::from(t.complete));
        }
        Event::Statement(st) => {
            put_varint(out, u64::from(st.channel));
            put_varint(out, st.seq);
            put_str(out, &st.text);
            out.push(u8::from(st.extended));
            let params = &st.params[..st.params.len().min(MAX_PARAMS)];
            put_varint(out, params.len() as u64);
            for p in params {
                match p {
                    None => out.push(0),
                    Some(v) => {
                        out.push(1);
                        put_str(out, v);
                    }
                }
            }
        }
        Event::StatementResult(r) => {
            put_varint(out, u64::from(r.channel));
            put_varint(out, r.seq);
            match &r.outcome {
                Outcome::Done { tag, rows } => {
                    out.push(OUTCOME_DONE);
                    put_str(out, tag);
                    match rows {
                        None => out.push(0),
                        Some(n) => {
                            out.push(1);
                            put_varint(out, *n);
                        }
                    }
                }
                Outcome::Failed { sqlstate, message } => {
                    out.push(OUTCOME_FAILED);
                    put_str(out, sqlstate);
                    put_str(out, message);
                }
                Outcome::Empty => out.push(OUTCOME_EMPTY),
                Outcome::Suspended => out.push(OUTCOME_SUSPENDED),
                Outcome::Skipped => out.push(OUTCOME_SKIPPED),
                Outcome::Refused { reason } => {
                    out.push(OUTCOME_REFUSED);
                    put_str(out, reason);
                }
            }
        }
        Event::Transaction { channel, status } => {
            put_varint(out, u64::from(*channel));
            out.push(match status {
                TransactionStatus::Idle => 0,
                TransactionStatus::InTransaction => 1,
                TransactionStatus::Failed => 2,
            });
        }
        Event::Rows(r) => {
            put_varint(out, u64::from(r.channel));
            put_varint(out, r.seq);
            let columns = &r.columns[..r.columns.len().min(MAX_COLUMNS)];
            put_varint(out, columns.len() as u64);
            for c in columns {
                put_str(out, c);
            }
            let rows = &r.rows[..r.rows.len().min(MAX_ROWS)];
            put_varint(out, rows.len() as u64);
            for row in rows {
                let row = &row[..row.len().min(MAX_COLUMNS)];
                put_varint(out, row.len() as u64);
                for v in row {
                    match v {
                        None => out.push(0),
                        Some(v) => {
                            out.push(1);
                            put_str(out, v);
                        }
                    }
                }
            }
            let kept = rows.len() as u64;
            put_varint(out, r.left_out + (r.rows.len() as u64 - kept));
        }
    }
}

/// The parts of a data event (output, stderr, input), so the writer can split one
/// large event into several without copying its data.
pub(crate) fn as_data(event: &Event) -> Option<(u8, u32, &[u8])> {
    match event {
        Event::Output { channel, data } => Some((TAG_OUTPUT, *channel, data)),
        Event::ExtOutput { channel, data } => Some((TAG_EXT_OUTPUT, *channel, data)),
        Event::Input { channel, data } => Some((TAG_INPUT, *channel, data)),
        _ => None,
    }
}

/// Appends a data event given by [`as_data`]'s parts.
pub(crate) fn encode_data(out: &mut Vec<u8>, tag: u8, at_us: u64, channel: u32, data: &[u8]) {
    out.push(tag);
    put_varint(out, at_us);
    put_varint(out, u64::from(channel));
    put_bytes(out, data);
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn floor_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Decodes a whole payload into events, appending them to `out`.
pub(crate) fn decode_all(payload: &[u8], out: &mut Vec<TimedEvent>) -> Result<(), DecodeError> {
    let mut r = Decoder { buf: payload, pos: 0 };
    while r.pos < payload.len() {
        out.push(r.event()?);
    }
    Ok(())
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Decoder<'_> {
    fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError::Truncated { at: self.pos })?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            // The tenth byte may only carry the top bit of a u64.
            if i == 9 && b > 1 {
                return Err(DecodeError::VarintOverflow { at: start });
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::VarintOverflow { at: start })
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let at = self.pos;
        let value = self.varint()?;
        u32::try_from(value).map_err(|_| DecodeError::OutOfRange { value, at })
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        let z = self.varint()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self
            .buf
            .get(self.pos..)
            .and_then(|rest| rest.get(..N))
            .ok_or(DecodeError::Truncated { at: self.pos })?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        self.pos += N;
        Ok(out)
    }

    /// A length-prefixed byte string, borrowed; the length is checked against what is
    /// left before anything is copied.
    fn bytes(&mut self) -> Result<&[u8], DecodeError> {
        let at = self.pos;
        let len = self.varint()?;
        let rest = &self.buf[self.pos..];
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= rest.len())
            .ok_or(DecodeError::Truncated { at })?;
        self.pos += len;
        Ok(&rest[..len])
    }

    fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let at = self.pos;
        let b = self.bytes()?;
        std::str::from_utf8(b).map(str::to_owned).map_err(|_| DecodeError::NotUtf8 { what, at })
    }

    fn code(&mut self, what: &'static str, max: u8) -> Result<u8, DecodeError> {
        let at = self.pos;
        let value = self.u8()?;
        if value > max {
            return Err(DecodeError::UnknownCode { what, value, at });
        }
        Ok(value)
    }

    /// A count of items that each take at least one byte, at most `max`: more than that, or
    /// more than the bytes left, is corrupt.
    fn count(&mut self, max: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.varint()?;
        if n > max as u64 || n > (self.buf.len() - self.pos) as u64 {
            return Err(DecodeError::OutOfRange { value: n, at });
        }
        Ok(n as usize)
    }

    fn present(&mut self) -> Result<bool, DecodeError> {
        Ok(self.code("option marker", 1)? == 1)
    }

    fn event(&mut self) -> Result<TimedEvent, DecodeError> {
        let tag_at = self.pos;
        let tag = self.u8()?;
        if !(TAG_SESSION_START..=TAG_CONTEXT).contains(&tag) {
            return Err(DecodeError::UnknownTag { tag, at: tag_at });
        }
        let at_us = self.varint()?;
        let event = match tag {
            TAG_SESSION_START => Event::SessionStart(SessionStart {
                session_id: SessionId::from_bytes(self.fixed()?),
                user: self.string("user")?,
                target: self.string("target")?,
                target_host: self.string("target host")?,
                target_login: self.string("target login")?,
                client_addr: self.string("client address")?,
                started_at_us: self.i64()?,
            }),
            TAG_CHANNEL_OPEN => {
                let channel = self.u32()?;
                let kind = match self.code("channel kind", KIND_SUBSYSTEM)? {
                    KIND_SHELL => ChannelKind::Shell,
                    KIND_EXEC => ChannelKind::Exec { command: self.bytes()?.to_vec() },
                    _ => ChannelKind::Subsystem { name: self.string("subsystem name")? },
                };
                let pty = if self.present()? {
                    Some(Pty {
                        term: self.string("terminal type")?,
                        cols: self.u32()?,
                        rows: self.u32()?,
                    })
                } else {
                    None
                };
                Event::ChannelOpen { channel, kind, pty }
            }
            TAG_OUTPUT | TAG_EXT_OUTPUT | TAG_INPUT => {
                let channel = self.u32()?;
                let data = self.bytes()?.to_vec();
                match tag {
                    TAG_OUTPUT => Event::Output { channel, data },
                    TAG_EXT_OUTPUT => Event::ExtOutput { channel, data },
                    _ => Event::Input { channel, data },
                }
            }
            TAG_RESIZE => {
                Event::Resize { channel: self.u32()?, cols: self.u32()?, rows: self.u32()? }
            }
            TAG_EOF => Event::Eof {
                channel: self.u32()?,
                direction: match self.code("direction", 1)? {
                    0 => Direction::ToTarget,
                    _ => Direction::ToClient,
                },
            },
            TAG_CHANNEL_CLOSE => Event::ChannelClose {
                channel: self.u32()?,
                exit_status: if self.present()? { Some(self.u32()?) } else { None },
                exit_signal: if self.present()? { Some(self.string("exit signal")?) } else { None },
            },
            TAG_NOTICE => Event::Notice {
                channel: if self.present()? { Some(self.u32()?) } else { None },
                text: self.string("notice text")?,
            },
            TAG_CONTEXT => Event::Context { reason: self.string("reason")? },
            TAG_TUNNEL_OPEN => Event::TunnelOpen {
                channel: self.u32()?,
                host: self.string("tunnel host")?,
                port: self.u32()?,
                originator: self.string("tunnel originator")?,
            },
            TAG_TUNNEL_CLOSE => Event::TunnelClose {
                channel: self.u32()?,
                bytes_to_target: self.varint()?,
                bytes_to_client: self.varint()?,
            },
            TAG_FILE_OPERATION => Event::FileOperation {
                channel: self.u32()?,
                op: self.string("file operation")?,
                path: self.string("file path")?,
                target_path: if self.present()? {
                    Some(self.string("file target path")?)
                } else {
                    None
                },
                result: self.string("file operation result")?,
            },
            TAG_FILE_TRANSFER => {
                let channel = self.u32()?;
                let path = self.string("file path")?;
                let upload = self.code("transfer direction", 1)? == 1;
                let bytes = self.varint()?;
                let size = if self.present()? { Some(self.varint()?) } else { None };
                let sha256 = if self.present()? { Some(self.fixed()?) } else { None };
                let at = self.pos;
                let n = self.varint()?;
                // Each range takes at least two bytes: a count beyond that is corrupt, and
                // checking first keeps a hostile count from allocating.
                if n > MAX_RANGES as u64 || n * 2 > (self.buf.len() - self.pos) as u64 {
                    return Err(DecodeError::OutOfRange { value: n, at });
                }
                let mut ranges = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    ranges.push((self.varint()?, self.varint()?));
                }
                let complete = self.code("transfer completeness", 1)? == 1;
                Event::FileTransfer(FileTransfer {
                    channel,
                    path,
                    upload,
                    bytes,
                    size,
                    sha256,
                    ranges,
                    complete,
                })
            }
            TAG_ENV => Event::Env {
                channel: self.u32()?,
                name: self.string("environment variable name")?,
                value: self.string("environment variable value")?,
                forwarded: self.code("environment forwarded", 1)? == 1,
            },
            TAG_STATEMENT => {
                let channel = self.u32()?;
                let seq = self.varint()?;
                let text = self.string("statement text")?;
                let extended = self.code("statement protocol", 1)? == 1;
                let at = self.pos;
                let n = self.varint()?;
                // Each parameter takes at least one byte: a count beyond that is corrupt.
                if n > MAX_PARAMS as u64 || n > (self.buf.len() - self.pos) as u64 {
                    return Err(DecodeError::OutOfRange { value: n, at });
                }
                let mut params = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    params.push(if self.present()? {
                        Some(self.string("statement parameter")?)
                    } else {
                        None
                    });
                }
                Event::Statement(Statement { channel, seq, text, params, extended })
            }
            TAG_STATEMENT_RESULT => {
                let channel = self.u32()?;
                let seq = self.varint()?;
                let outcome = match self.code("statement outcome", OUTCOME_REFUSED)? {
                    OUTCOME_DONE => Outcome::Done {
                        tag: self.string("command tag")?,
                        rows: if self.present()? { Some(self.varint()?) } else { None },
                    },
                    OUTCOME_FAILED => Outcome::Failed {
                        sqlstate: self.string("sqlstate")?,
                        message: self.string("error message")?,
                    },
                    OUTCOME_EMPTY => Outcome::Empty,
                    OUTCOME_SUSPENDED => Outcome::Suspended,
                    OUTCOME_SKIPPED => Outcome::Skipped,
                    _ => Outcome::Refused { reason: self.string("refusal reason")? },
                };
                Event::StatementResult(StatementResult { channel, seq, outcome })
            }
            TAG_TRANSACTION => Event::Transaction {
                channel: self.u32()?,
                status: match self.code("transaction status", 2)? {
                    0 => TransactionStatus::Idle,
                    1 => TransactionStatus::InTransaction,
                    _ => TransactionStatus::Failed,
                },
            },
            TAG_ROWS => {
                let channel = self.u32()?;
                let seq = self.varint()?;
                let n = self.count(MAX_COLUMNS)?;
                let mut columns = Vec::with_capacity(n);
                for _ in 0..n {
                    columns.push(self.string("column name")?);
                }
                let n = self.count(MAX_ROWS)?;
                let mut rows = Vec::with_capacity(n);
                for _ in 0..n {
                    let width = self.count(MAX_COLUMNS)?;
                    let mut row = Vec::with_capacity(width);
                    for _ in 0..width {
                        row.push(if self.present()? {
                            Some(self.string("row value")?)
                        } else {
                            None
                        });
                    }
                    rows.push(row);
                }
                let left_out = self.varint()?;
                Event::Rows(Rows { channel, seq, columns, rows, left_out })
            }
            // The range check above leaves only TAG_SEAL and TAG_SEAL_RECOVERED.
            _ => {
                let at = self.pos;
                let code = self.u8()?;
                let status = status_from_code(code).ok_or(DecodeError::UnknownCode {
                    what: "session status",
                    value: code,
                    at,
                })?;
                let reason = if self.present()? { Some(self.string("seal reason")?) } else { None };
                let ended_at_us = self.i64()?;
                let unsigned_tail = if tag == TAG_SEAL_RECOVERED {
                    Some(UnsignedTail {
                        after_seq: if self.present()? { Some(self.varint()?) } else { None },
                        bytes: self.varint()?,
                        events: self.varint()?,
                    })
                } else {
                    None
                };
                Event::Seal(Seal { status, reason, ended_at_us, unsigned_tail })
            }
        };
        Ok(TimedEvent { at_us, event })
    }
}
