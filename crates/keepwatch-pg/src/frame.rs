//! Splitting one direction's byte stream into whole messages, with a bound on their size.

use std::fmt;

/// Which peer sent the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The client (psql, a driver).
    Frontend,
    /// The PostgreSQL server.
    Backend,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Frontend => "frontend",
            Side::Backend => "backend",
        })
    }
}

/// How the next message on a stream is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameMode {
    /// A length, then a body whose first four bytes say what it is: the frontend's
    /// StartupMessage, SSLRequest, GSSENCRequest and CancelRequest.
    Startup,
    /// One byte: the backend's answer to SSLRequest (`S` or `N`) or GSSENCRequest (`G` or
    /// `N`). Any other byte is the start of a typed message (an old server's ErrorResponse).
    NegotiationReply,
    /// A type byte, a length, then a body: everything else.
    Typed,
}

/// One whole message, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub side: Side,
    /// How it was framed.
    pub mode: FrameMode,
    /// Offset of its first byte in the stream, counting from the first byte fed.
    pub offset: u64,
    /// The type byte of a typed message, or the byte of a negotiation reply; `None` for the
    /// startup-phase packets.
    pub tag: Option<u8>,
    /// What follows the length (empty for a negotiation reply).
    pub body: &'a [u8],
}

/// PostgreSQL refuses startup packets longer than this (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_PACKET_LEN: u32 = 10_000;

const SSL_REQUEST_CODE: u32 = 80_877_103;
const GSSENC_REQUEST_CODE: u32 = 80_877_104;
const CANCEL_REQUEST_CODE: u32 = 80_877_102;

/// A malformed message: what was wrong, in which message, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseMessageError {
    #[error(
        "{side} {message} at offset {offset} declares {length} bytes, over the limit of {limit}"
    )]
    TooLong { side: Side, message: String, offset: u64, length: u32, limit: u32 },
    #[error("{side} {message} at offset {offset} declares length {length}, less than its header")]
    TooShort { side: Side, message: String, offset: u64, length: i64 },
    #[error("{side} {message} at offset {offset}: {problem} at byte {at} of its body")]
    Malformed { side: Side, message: &'static str, offset: u64, at: usize, problem: &'static str },
    #[error("{side} startup packet at offset {offset} asks for protocol {major}.{minor}, not 3.x")]
    UnsupportedProtocol { side: Side, offset: u64, major: u16, minor: u16 },
}

/// Splits one direction's stream into [`Frame`]s. Holds at most one partial message between
/// calls (plus whatever the caller pushes at once), and refuses a declared length over its
/// limit before buffering any of it.
#[derive(Debug)]
pub struct FrameReader {
    side: Side,
    mode: FrameMode,
    max_message_len: u32,
    buf: Vec<u8>,
    /// Index in `buf` of the first byte not yet handed out.
    start: usize,
    /// Stream offset of `buf[start]`.
    offset: u64,
}

impl FrameReader {
    /// A reader for the frontend stream (starting with the startup phase) or the backend
    /// stream (typed from the first byte). A message whose declared length (type byte not
    /// counted) is over `max_message_len` is an error.
    pub fn new(side: Side, max_message_len: u32) -> Self {
        let mode = match side {
            Side::Frontend => FrameMode::Startup,
            Side::Backend => FrameMode::Typed,
        };
        FrameReader { side, mode, max_message_len, buf: Vec::new(), start: 0, offset: 0 }
    }

    pub fn side(&self) -> Side {
        self.side
    }

    /// How the next message will be framed.
    pub fn mode(&self) -> FrameMode {
        self.mode
    }

    /// Starts a frontend reader past the startup phase: typed messages from the first byte.
    pub fn start_typed(&mut self) {
        self.mode = FrameMode::Typed;
    }

    /// Tells a backend reader that the next byte answers an SSLRequest or GSSENCRequest.
    pub fn expect_negotiation_reply(&mut self) {
        self.mode = FrameMode::NegotiationReply;
    }

    /// Appends bytes from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes held that are not yet part of a whole message.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Stream offset of the next byte to be framed.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The held bytes of an unfinished message.
    pub fn partial(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// The next whole message, or `None` until more bytes arrive.
    ///
    /// # Errors
    ///
    /// A declared length under the header's size or over the limit: the stream cannot be
    /// followed past it, and the reader stays stuck on it.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, ParseMessageError> {
        let avail = &self.buf[self.start..];
        let offset = self.offset;
        let (mode, tag, header, body_len) = match self.mode {
            FrameMode::NegotiationReply => match avail.first() {
                None => return Ok(None),
                Some(&byte @ (b'S' | b'N' | b'G')) => {
                    self.mode = FrameMode::Typed;
                    self.start += 1;
                    self.offset += 1;
                    let frame = Frame {
                        side: self.side,
                        mode: FrameMode::NegotiationReply,
                        offset,
                        tag: Some(byte),
                        body: &[],
                    };
                    return Ok(Some(frame));
                }
                Some(_) => {
                    self.mode = FrameMode::Typed;
                    return self.next_frame();
                }
            },
            FrameMode::Startup => {
                let Some(length) = read_u32(avail, 0) else { return Ok(None) };
                let message = "startup packet";
                let limit = MAX_STARTUP_PACKET_LEN.min(self.max_message_len);
                if length < 8 {
                    return Err(self.too_short(message.into(), offset, length.into()));
                }
                if length > limit {
                    return Err(self.too_long(message.into(), offset, length, limit));
                }
                (FrameMode::Startup, None, 4, length as usize - 4)
            }
            FrameMode::Typed => {
                let (Some(&tag), Some(length)) = (avail.first(), read_u32(avail, 1)) else {
                    return Ok(None);
                };
                let length = i64::from(length as i32);
                if length < 4 {
                    return Err(self.too_short(message_name(self.side, tag), offset, length));
                }
                let length = length as u32;
                if length > self.max_message_len {
                    let name = message_name(self.side, tag);
                    return Err(self.too_long(name, offset, length, self.max_message_len));
                }
                (FrameMode::Typed, Some(tag), 5, length as usize - 4)
            }
        };
        if avail.len() < header + body_len {
            return Ok(None);
        }
        let body_start = self.start + header;
        let end = body_start + body_len;
        if mode == FrameMode::Startup {
            // Only the requests that precede a StartupMessage keep the stream untyped.
            let code = read_u32(&self.buf[body_start..end], 0);
            if !matches!(code, Some(SSL_REQUEST_CODE | GSSENC_REQUEST_CODE | CANCEL_REQUEST_CODE)) {
                self.mode = FrameMode::Typed;
            }
        }
        self.start = end;
        self.offset += (header + body_len) as u64;
        let body = &self.buf[body_start..end];
        Ok(Some(Frame { side: self.side, mode, offset, tag, body }))
    }

    fn too_short(&self, message: String, offset: u64, length: i64) -> ParseMessageError {
        ParseMessageError::TooShort { side: self.side, message, offset, length }
    }

    fn too_long(&self, message: String, offset: u64, length: u32, limit: u32) -> ParseMessageError {
        ParseMessageError::TooLong { side: self.side, message, offset, length, limit }
    }
}

pub(crate) fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

pub(crate) fn startup_code(body: &[u8]) -> Option<u32> {
    read_u32(body, 0)
}

pub(crate) const fn is_ssl_request(code: u32) -> bool {
    code == SSL_REQUEST_CODE
}

pub(crate) const fn is_gssenc_request(code: u32) -> bool {
    code == GSSENC_REQUEST_CODE
}

pub(crate) const fn is_cancel_request(code: u32) -> bool {
    code == CANCEL_REQUEST_CODE
}

/// The protocol's name for a typed message, for errors and logs.
pub fn message_name(side: Side, tag: u8) -> String {
    let name = match (side, tag) {
        (Side::Frontend, b'Q') => "Query",
        (Side::Frontend, b'P') => "Parse",
        (Side::Frontend, b'B') => "Bind",
        (Side::Frontend, b'E') => "Execute",
        (Side::Frontend, b'D') => "Describe",
        (Side::Frontend, b'C') => "Close",
        (Side::Frontend, b'S') => "Sync",
        (Side::Frontend, b'H') => "Flush",
        (Side::Frontend, b'X') => "Terminate",
        (Side::Frontend, b'p') => "PasswordMessage",
        (Side::Frontend, b'F') => "FunctionCall",
        (Side::Frontend, b'f') => "CopyFail",
        (_, b'd') => "CopyData",
        (_, b'c') => "CopyDone",
        (Side::Backend, b'R') => "Authentication",
        (Side::Backend, b'S') => "ParameterStatus",
        (Side::Backend, b'K') => "BackendKeyData",
        (Side::Backend, b'v') => "NegotiateProtocolVersion",
        (Side::Backend, b'1') => "ParseComplete",
        (Side::Backend, b'2') => "BindComplete",
        (Side::Backend, b'3') => "CloseComplete",
        (Side::Backend, b's') => "PortalSuspended",
        (Side::Backend, b'C') => "CommandComplete",
        (Side::Backend, b'I') => "EmptyQueryResponse",
        (Side::Backend, b'Z') => "ReadyForQuery",
        (Side::Backend, b'E') => "ErrorResponse",
        (Side::Backend, b'N') => "NoticeResponse",
        (Side::Backend, b'A') => "NotificationResponse",
        (Side::Backend, b't') => "ParameterDescription",
        (Side::Backend, b'T') => "RowDescription",
        (Side::Backend, b'D') => "DataRow",
        (Side::Backend, b'n') => "NoData",
        (Side::Backend, b'G') => "CopyInResponse",
        (Side::Backend, b'H') => "CopyOutResponse",
        (Side::Backend, b'W') => "CopyBothResponse",
        (Side::Backend, b'V') => "FunctionCallResponse",
        _ => return format!("message of unknown type {:?}", char::from(tag)),
    };
    name.to_owned()
}
