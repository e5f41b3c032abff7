//! What the tracker reports: statements with their outcomes, copies, and the session's other
//! facts, with a one-line text form for logs and tests.

use std::fmt;
use std::sync::Arc;

use crate::frame::Side;
use crate::message::{AuthRequest, ServerMessage, TransactionStatus};

/// Something that happened on a PostgreSQL connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgEvent {
    /// The client's StartupMessage: protocol version and parameters (`user`, `database`,
    /// `application_name`, ...).
    Startup {
        major: u16,
        minor: u16,
        parameters: Vec<(String, String)>,
    },
    /// An SSLRequest or GSSENCRequest and the server's answer.
    Encryption {
        request: EncryptionRequest,
        accepted: bool,
    },
    /// A CancelRequest: the connection carries nothing else.
    CancelRequest {
        pid: i32,
        secret_key: Vec<u8>,
    },
    /// The server asked for (or accepted) authentication. Nothing the client answers is
    /// reported: passwords and proofs never appear in events.
    Authentication(AuthRequest),
    ParameterStatus {
        name: String,
        value: String,
    },
    BackendKeyData {
        pid: i32,
        secret_key: Vec<u8>,
    },
    NegotiateProtocolVersion {
        newest_minor: i32,
        unrecognized: Vec<String>,
    },
    /// An ErrorResponse before the first ReadyForQuery (a refused login, say).
    StartupError(ServerMessage),
    /// A statement as it leaves the client (a Query, or an Execute with the text and
    /// parameters of the portal it runs), before the server has seen it: what a gateway
    /// records before forwarding. Its outcome comes later as a [`Statement`] with the same
    /// `seq` (several, for a Query holding several statements).
    Sent(Sent),
    Statement(Statement),
    /// The first rows of a statement's result, when the tracker captures rows
    /// ([`crate::PgTracker::capture_rows`]); before that statement's [`Statement`].
    Rows(Rows),
    Copy(CopyTransfer),
    Notice(ServerMessage),
    /// LISTEN/NOTIFY: a notification delivered to this session.
    Notification {
        pid: i32,
        channel: String,
        payload: String,
    },
    /// An ErrorResponse that answers nothing the client sent (a FATAL at shutdown, say).
    UnsolicitedError(ServerMessage),
    /// The client said goodbye.
    Terminate,
    /// A message the tracker could not follow; see [`Unfollowed`].
    Unfollowed(Unfollowed),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptionRequest {
    Ssl,
    GssEnc,
}

/// A statement as sent; see [`PgEvent::Sent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Numbers the connection's statements from 0.
    pub seq: u64,
    pub kind: QueryKind,
    pub text: Arc<str>,
    pub parameters: Arc<[Parameter]>,
}

/// A statement and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The [`Sent`] it answers. A failed Parse, Bind, Describe or Close with no Execute
    /// behind it gets a `seq` (and a `Sent`) of its own when it is reported.
    pub seq: u64,
    pub kind: QueryKind,
    /// The SQL text, cut to [`crate::Limits::max_text_len`] bytes. For a simple Query holding
    /// several statements, each of its statements carries the whole query text. Empty when an
    /// Execute names a portal the client never bound (the server answers with an error), or a
    /// Bind names a statement prepared with SQL `PREPARE` rather than Parse.
    pub text: Arc<str>,
    /// The text's length as sent, in bytes.
    pub text_len: usize,
    /// Bound parameters, in order (extended protocol only).
    pub parameters: Arc<[Parameter]>,
    /// When the client sent it (Query, or Execute), in the caller's microseconds. For the
    /// second and later statements of one Query: when the previous one ended.
    pub started_us: u64,
    /// When its outcome arrived.
    pub ended_us: u64,
    pub outcome: Outcome,
    /// From the ReadyForQuery that followed; `None` when the connection ended before it, or
    /// when too many statements waited for one (see [`crate::Limits::max_pending`]).
    pub transaction: Option<TransactionStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// The simple query protocol (Query).
    Simple,
    /// The extended query protocol (Parse, Bind, Execute).
    Extended,
}

/// How a statement ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Complete(CommandTag),
    Error(ServerMessage),
    /// The query string held no statement.
    EmptyQuery,
    /// An Execute reached its row limit: the portal can be executed again.
    Suspended,
    /// An earlier error in the same pipeline made the server skip it (extended protocol: the
    /// server discards everything up to the next Sync).
    Skipped,
    /// The connection ended (or the server moved on) before it was answered.
    Unanswered,
}

/// A CommandComplete tag, split into the command and its row count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTag {
    /// The tag without its counts: `INSERT`, `CREATE TABLE`, `COPY`.
    pub command: String,
    /// The row count of INSERT, UPDATE, DELETE, MERGE, SELECT (and CREATE TABLE AS), MOVE,
    /// FETCH and COPY.
    pub rows: Option<u64>,
}

impl CommandTag {
    /// Splits a tag such as `INSERT 0 5`, `UPDATE 3`, `SELECT 10` or `CREATE TABLE`.
    pub fn parse(tag: &str) -> Self {
        let mut words = tag.split(' ');
        let command = words.next().unwrap_or_default();
        let counts: Vec<&str> = words.collect();
        let numeric = |w: &&str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit());
        let counted = matches!(
            command,
            "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "SELECT" | "MOVE" | "FETCH" | "COPY"
        );
        if counted && !counts.is_empty() && counts.iter().all(numeric) {
            let rows = counts.last().and_then(|n| n.parse().ok());
            return CommandTag { command: command.to_owned(), rows };
        }
        CommandTag { command: tag.to_owned(), rows: None }
    }
}

/// A bound parameter, rendered for the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parameter {
    Null,
    /// Sent in text format: UTF-8 (invalid sequences replaced), cut to
    /// [`crate::Limits::max_parameter_len`] bytes.
    Text {
        text: String,
        len: usize,
    },
    /// Sent in binary format: lowercase hex of the first bytes, at most
    /// [`crate::Limits::max_parameter_len`] characters.
    Binary {
        hex: String,
        len: usize,
    },
}

/// Rows of a result kept for the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rows {
    /// The statement's `seq`.
    pub seq: u64,
    /// Column names, when the result's description came with it (a simple query).
    pub columns: Vec<String>,
    /// Values rendered as parameters are; `None` is NULL.
    pub rows: Vec<Vec<Option<String>>>,
    /// Rows of the result past the capture's limits, counted only.
    pub left_out: u64,
}

impl Parameter {
    /// The value as a recording keeps it: text, binary as `\x` hex, NULL as `None`; a value
    /// cut short says how long it was.
    pub fn recorded(&self) -> Option<String> {
        match self {
            Parameter::Null => None,
            Parameter::Text { text, len } if *len > text.len() => {
                Some(format!("{text}… ({len} bytes)"))
            }
            Parameter::Text { text, .. } => Some(text.clone()),
            Parameter::Binary { hex, len } if *len * 2 > hex.len() => {
                Some(format!("\\x{hex}… ({len} bytes)"))
            }
            Parameter::Binary { hex, .. } => Some(format!("\\x{hex}")),
        }
    }
}

/// A COPY: the bytes of its CopyData messages one way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyTransfer {
    pub direction: CopyDirection,
    /// Bytes of CopyData (headers not counted).
    pub bytes: u64,
    /// SHA-256 of those bytes, in order.
    pub sha256: [u8; 32],
    /// The row count of the COPY tag, when the copy completed.
    pub rows: Option<u64>,
    /// The client's CopyFail message, when it gave up.
    pub client_failure: Option<String>,
    pub started_us: u64,
    pub ended_us: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyDirection {
    /// COPY FROM STDIN: client to server.
    In,
    /// COPY TO STDOUT: server to client.
    Out,
    /// Replication streams: both ways, counted together.
    Both,
}

/// A message the tracker could not follow: an unknown type, or one that makes no sense where
/// it arrived (a BindComplete with no Bind pending, CopyData outside a COPY). The tracker
/// carries on; the bytes are kept here so that nothing passes unrecorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfollowed {
    pub side: Side,
    /// Stream offset of the message.
    pub offset: u64,
    /// The type byte (`None` for a partial message left at the end).
    pub tag: Option<u8>,
    pub reason: &'static str,
    /// The body's length.
    pub len: usize,
    /// The body's first bytes, at most [`crate::Limits::max_raw_len`].
    pub bytes: Vec<u8>,
}

impl fmt::Display for TransactionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransactionStatus::Idle => "idle",
            TransactionStatus::InTransaction => "in transaction",
            TransactionStatus::Failed => "failed transaction",
        })
    }
}

impl fmt::Display for ServerMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.severity, self.code, self.message)
    }
}

impl fmt::Display for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Parameter::Null => f.write_str("NULL"),
            Parameter::Text { text, len } => {
                write!(f, "{text:?}")?;
                if text.len() < *len {
                    write!(f, "…({len} bytes)")?;
                }
                Ok(())
            }
            Parameter::Binary { hex, len } => {
                write!(f, "\\x{hex}")?;
                if hex.len() < 2 * len {
                    write!(f, "…({len} bytes)")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Complete(tag) => match tag.rows {
                Some(rows) => write!(f, "{} {rows}", tag.command),
                None => f.write_str(&tag.command),
            },
            Outcome::Error(e) => write!(f, "{e}"),
            Outcome::EmptyQuery => f.write_str("empty query"),
            Outcome::Suspended => f.write_str("suspended"),
            Outcome::Skipped => f.write_str("skipped"),
            Outcome::Unanswered => f.write_str("unanswered"),
        }
    }
}

impl fmt::Display for PgEvent {
    /// One line, times left out (tests compare these).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgEvent::Startup { major, minor, parameters } => {
                write!(f, "startup {major}.{minor}")?;
                for (name, value) in parameters {
                    write!(f, " {name}={value:?}")?;
                }
                Ok(())
            }
            PgEvent::Encryption { request, accepted } => {
                let verdict = if *accepted { "accepted" } else { "refused" };
                write!(f, "{request:?} request {verdict}")
            }
            PgEvent::CancelRequest { pid, secret_key } => {
                write!(f, "cancel request pid={pid} key={}", hex(secret_key))
            }
            PgEvent::Authentication(request) => write!(f, "authentication {request:?}"),
            PgEvent::Sent(s) => {
                write!(f, "sent #{} {:?} {:?}", s.seq, s.kind, s.text)?;
                if !s.parameters.is_empty() {
                    write!(f, " params={:?}", s.parameters)?;
                }
                Ok(())
            }
            PgEvent::ParameterStatus { name, value } => write!(f, "parameter {name}={value:?}"),
            PgEvent::BackendKeyData { pid, secret_key } => {
                write!(f, "backend key pid={pid} key={}", hex(secret_key))
            }
            PgEvent::NegotiateProtocolVersion { newest_minor, unrecognized } => {
                write!(f, "negotiate protocol 3.{newest_minor} unrecognized={unrecognized:?}")
            }
            PgEvent::StartupError(e) => write!(f, "startup error {e}"),
            PgEvent::Rows(r) => {
                write!(f, "rows #{} columns={:?} rows={:?}", r.seq, r.columns, r.rows)?;
                if r.left_out > 0 {
                    write!(f, " left_out={}", r.left_out)?;
                }
                Ok(())
            }
            PgEvent::Statement(s) => {
                let kind = match s.kind {
                    QueryKind::Simple => "simple",
                    QueryKind::Extended => "extended",
                };
                write!(f, "{kind} {:?}", &*s.text)?;
                if s.text.len() < s.text_len {
                    write!(f, "…({} bytes)", s.text_len)?;
                }
                if !s.parameters.is_empty() {
                    f.write_str(" [")?;
                    for (i, p) in s.parameters.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        write!(f, "{p}")?;
                    }
                    f.write_str("]")?;
                }
                write!(f, " -> {}", s.outcome)?;
                match s.transaction {
                    Some(t) => write!(f, " ({t})"),
                    None => f.write_str(" (no status)"),
                }
            }
            PgEvent::Copy(c) => {
                write!(f, "copy {:?} {} bytes sha256={}", c.direction, c.bytes, hex(&c.sha256))?;
                if let Some(rows) = c.rows {
                    write!(f, " rows={rows}")?;
                }
                if let Some(failure) = &c.client_failure {
                    write!(f, " failed by client: {failure:?}")?;
                }
                Ok(())
            }
            PgEvent::Notice(n) => write!(f, "notice {n}"),
            PgEvent::Notification { pid, channel, payload } => {
                write!(f, "notification pid={pid} {channel}: {payload:?}")
            }
            PgEvent::UnsolicitedError(e) => write!(f, "unsolicited error {e}"),
            PgEvent::Terminate => f.write_str("terminate"),
            PgEvent::Unfollowed(u) => {
                let tag =
                    u.tag.map_or_else(|| "partial".to_owned(), |t| format!("{:?}", char::from(t)));
                write!(
                    f,
                    "unfollowed {} {tag} at {}: {} ({} bytes: {})",
                    u.side,
                    u.offset,
                    u.reason,
                    u.len,
                    hex(&u.bytes)
                )
            }
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::CommandTag;

    #[test]
    fn command_tags_split_into_command_and_rows() {
        let check = |tag: &str, command: &str, rows: Option<u64>| {
            let parsed = CommandTag::parse(tag);
            assert_eq!((parsed.command.as_str(), parsed.rows), (command, rows), "{tag}");
        };
        check("INSERT 0 5", "INSERT", Some(5));
        check("UPDATE 3", "UPDATE", Some(3));
        check("DELETE 0", "DELETE", Some(0));
        check("SELECT 10", "SELECT", Some(10));
        check("MERGE 2", "MERGE", Some(2));
        check("COPY 4", "COPY", Some(4));
        check("FETCH 1", "FETCH", Some(1));
        check("MOVE 7", "MOVE", Some(7));
        check("CREATE TABLE", "CREATE TABLE", None);
        check("BEGIN", "BEGIN", None);
        check("SELECT x", "SELECT x", None);
        check("", "", None);
    }
}
