//! Decoding whole frames into messages, checked byte by byte.
//!
//! The bodies are decoded here rather than with `pgwire`'s `Message::decode`: its decoders
//! read integers and lengths without checking what is left (`get_u16`, `split_to`, which
//! panic on a short body) and read past the end of the frame they were given, and a gateway
//! must not panic on a hostile peer. Every read here is checked, and an error names the
//! message and the byte. `pgwire` encodes the messages the gateway itself sends.

use std::borrow::Cow;

use crate::frame::{
    Frame, FrameMode, ParseMessageError, Side, is_cancel_request, is_gssenc_request,
    is_ssl_request, startup_code,
};

/// Bytes of text as the peer sent them, decoded as UTF-8 (invalid sequences replaced).
pub type WireText<'a> = Cow<'a, str>;

/// A message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontendMessage<'a> {
    SslRequest,
    GssEncRequest,
    CancelRequest {
        pid: i32,
        secret_key: &'a [u8],
    },
    Startup {
        major: u16,
        minor: u16,
        parameters: Vec<(WireText<'a>, WireText<'a>)>,
    },
    /// PasswordMessage, SASLInitialResponse, SASLResponse or GSSResponse: which one depends
    /// on what the server asked for, so the body is left as it is.
    Password(&'a [u8]),
    Query {
        text: WireText<'a>,
    },
    Parse {
        statement: WireText<'a>,
        text: WireText<'a>,
        parameter_types: Vec<u32>,
    },
    Bind(Bind<'a>),
    Execute {
        portal: WireText<'a>,
        max_rows: i32,
    },
    Describe {
        target: Target,
        name: WireText<'a>,
    },
    Close {
        target: Target,
        name: WireText<'a>,
    },
    Sync,
    Flush,
    Terminate,
    CopyData(&'a [u8]),
    CopyDone,
    CopyFail {
        message: WireText<'a>,
    },
    /// The legacy fast-path function call; not decoded.
    FunctionCall(&'a [u8]),
    /// A type byte the protocol does not define for clients.
    Unknown {
        tag: u8,
        body: &'a [u8],
    },
}

/// A Bind message: which prepared statement, into which portal, with which values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind<'a> {
    pub portal: WireText<'a>,
    pub statement: WireText<'a>,
    /// None: all text; one: it applies to all; else one per parameter.
    pub parameter_formats: Vec<i16>,
    /// `None` is SQL NULL.
    pub parameters: Vec<Option<&'a [u8]>>,
    pub result_formats: Vec<i16>,
}

impl Bind<'_> {
    /// Whether parameter `index` is sent in binary.
    pub fn is_binary(&self, index: usize) -> bool {
        let format = match self.parameter_formats.as_slice() {
            [] => 0,
            [one] => *one,
            many => many.get(index).copied().unwrap_or(0),
        };
        format == 1
    }
}

/// What Describe and Close name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Statement,
    Portal,
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendMessage<'a> {
    /// The one-byte answer to SSLRequest or GSSENCRequest: `S` or `G` (`accepted`: TLS or
    /// GSSAPI encryption follows) or `N`.
    EncryptionReply {
        accepted: bool,
    },
    Authentication(AuthRequest),
    ParameterStatus {
        name: WireText<'a>,
        value: WireText<'a>,
    },
    BackendKeyData {
        pid: i32,
        secret_key: &'a [u8],
    },
    NegotiateProtocolVersion {
        newest_minor: i32,
        unrecognized: Vec<WireText<'a>>,
    },
    ParseComplete,
    BindComplete,
    CloseComplete,
    PortalSuspended,
    NoData,
    EmptyQueryResponse,
    CommandComplete {
        tag: WireText<'a>,
    },
    ReadyForQuery(TransactionStatus),
    ErrorResponse(ServerMessage),
    NoticeResponse(ServerMessage),
    NotificationResponse {
        pid: i32,
        channel: WireText<'a>,
        payload: WireText<'a>,
    },
    ParameterDescription(&'a [u8]),
    RowDescription(&'a [u8]),
    DataRow(&'a [u8]),
    CopyInResponse,
    CopyOutResponse,
    CopyBothResponse,
    CopyData(&'a [u8]),
    CopyDone,
    FunctionCallResponse(&'a [u8]),
    /// A type byte the protocol does not define for servers.
    Unknown {
        tag: u8,
        body: &'a [u8],
    },
}

/// What the server asks the client to authenticate with (`Authentication*` messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequest {
    Ok,
    KerberosV5,
    CleartextPassword,
    Md5Password {
        salt: [u8; 4],
    },
    Gss,
    GssContinue(Vec<u8>),
    Sspi,
    Sasl {
        mechanisms: Vec<String>,
    },
    SaslContinue(Vec<u8>),
    SaslFinal(Vec<u8>),
    /// A request code the protocol does not define.
    Other(i32),
}

/// The transaction status in ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    Idle,
    InTransaction,
    /// In a transaction block whose statements fail until it ends.
    Failed,
}

/// The fields of an ErrorResponse or NoticeResponse that say what happened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerMessage {
    /// Not localized when the server sends `V` (9.6 and later), else the `S` field.
    pub severity: String,
    /// SQLSTATE.
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl ServerMessage {
    fn from_fields(fields: Vec<(u8, WireText<'_>)>) -> Self {
        let mut m = ServerMessage::default();
        let mut localized_severity = String::new();
        for (code, value) in fields {
            let value = value.into_owned();
            match code {
                b'V' => m.severity = value,
                b'S' => localized_severity = value,
                b'C' => m.code = value,
                b'M' => m.message = value,
                b'D' => m.detail = Some(value),
                b'H' => m.hint = Some(value),
                _ => {}
            }
        }
        if m.severity.is_empty() {
            m.severity = localized_severity;
        }
        m
    }
}

/// Reads a body with every access checked.
pub(crate) struct Cursor<'a> {
    frame: &'a Frame<'a>,
    message: &'static str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(frame: &'a Frame<'a>, message: &'static str) -> Self {
        Cursor { frame, message, pos: 0 }
    }

    fn error(&self, problem: &'static str) -> ParseMessageError {
        ParseMessageError::Malformed {
            side: self.frame.side,
            message: self.message,
            offset: self.frame.offset,
            at: self.pos,
            problem,
        }
    }

    pub(crate) fn bytes(
        &mut self,
        n: usize,
        problem: &'static str,
    ) -> Result<&'a [u8], ParseMessageError> {
        let body: &'a [u8] = self.frame.body;
        let end = self.pos.checked_add(n).filter(|&end| end <= body.len());
        let Some(end) = end else { return Err(self.error(problem)) };
        let b = &body[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn u8(&mut self) -> Result<u8, ParseMessageError> {
        Ok(self.bytes(1, "body ends before a byte field")?[0])
    }

    pub(crate) fn i16(&mut self) -> Result<i16, ParseMessageError> {
        let b = self.bytes(2, "body ends inside a 16-bit field")?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, ParseMessageError> {
        let b = self.bytes(4, "body ends inside a 32-bit field")?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A count that must not be negative.
    fn count16(&mut self) -> Result<usize, ParseMessageError> {
        let at = self.pos;
        let n = self.i16()?;
        usize::try_from(n).map_err(|_| {
            self.pos = at;
            self.error("negative count")
        })
    }

    pub(crate) fn cstr(&mut self) -> Result<WireText<'a>, ParseMessageError> {
        let body: &'a [u8] = self.frame.body;
        let rest = &body[self.pos..];
        let Some(nul) = rest.iter().position(|&b| b == 0) else {
            return Err(self.error("string without its terminating zero byte"));
        };
        self.pos += nul + 1;
        Ok(String::from_utf8_lossy(&rest[..nul]))
    }

    fn rest(&mut self) -> &'a [u8] {
        let body: &'a [u8] = self.frame.body;
        let rest = &body[self.pos..];
        self.pos = body.len();
        rest
    }

    fn finish(self) -> Result<(), ParseMessageError> {
        if self.pos == self.frame.body.len() { Ok(()) } else { Err(self.error("trailing bytes")) }
    }

    /// Format codes must be 0 (text) or 1 (binary).
    fn format_codes(&mut self) -> Result<Vec<i16>, ParseMessageError> {
        let n = self.count16()?;
        let mut codes = Vec::with_capacity(n.min(self.frame.body.len() / 2));
        for _ in 0..n {
            let at = self.pos;
            let code = self.i16()?;
            if !(0..=1).contains(&code) {
                self.pos = at;
                return Err(self.error("format code neither 0 (text) nor 1 (binary)"));
            }
            codes.push(code);
        }
        Ok(codes)
    }
}

/// Secret keys are 4 bytes in protocol 3.0 and up to 256 in 3.2.
const MAX_SECRET_KEY_LEN: usize = 256;

impl<'a> FrontendMessage<'a> {
    /// Decodes a frame from the frontend stream.
    ///
    /// # Errors
    ///
    /// The body does not match what its type requires (a short field, a string without its
    /// zero byte, trailing bytes, a bad count or format code), or a startup packet asks for
    /// a protocol other than 3.x.
    pub fn decode(frame: &'a Frame<'a>) -> Result<Self, ParseMessageError> {
        debug_assert_eq!(frame.side, Side::Frontend);
        let Some(tag) = frame.tag else { return decode_startup(frame) };
        let mut c = Cursor::new(frame, "message");
        let message = match tag {
            b'Q' => {
                c.message = "Query";
                FrontendMessage::Query { text: c.cstr()? }
            }
            b'P' => {
                c.message = "Parse";
                let statement = c.cstr()?;
                let text = c.cstr()?;
                let n = c.count16()?;
                let mut parameter_types = Vec::with_capacity(n.min(frame.body.len() / 4));
                for _ in 0..n {
                    parameter_types.push(c.i32()? as u32);
                }
                FrontendMessage::Parse { statement, text, parameter_types }
            }
            b'B' => {
                c.message = "Bind";
                FrontendMessage::Bind(decode_bind(&mut c)?)
            }
            b'E' => {
                c.message = "Execute";
                FrontendMessage::Execute { portal: c.cstr()?, max_rows: c.i32()? }
            }
            b'D' | b'C' => {
                c.message = if tag == b'D' { "Describe" } else { "Close" };
                let target = match c.u8()? {
                    b'S' => Target::Statement,
                    b'P' => Target::Portal,
                    _ => {
                        c.pos -= 1;
                        return Err(c.error("target neither S (statement) nor P (portal)"));
                    }
                };
                let name = c.cstr()?;
                if tag == b'D' {
                    FrontendMessage::Describe { target, name }
                } else {
                    FrontendMessage::Close { target, name }
                }
            }
            b'S' => {
                c.message = "Sync";
                FrontendMessage::Sync
            }
            b'H' => {
                c.message = "Flush";
                FrontendMessage::Flush
            }
            b'X' => {
                c.message = "Terminate";
                FrontendMessage::Terminate
            }
            b'c' => {
                c.message = "CopyDone";
                FrontendMessage::CopyDone
            }
            b'f' => {
                c.message = "CopyFail";
                FrontendMessage::CopyFail { message: c.cstr()? }
            }
            b'd' => FrontendMessage::CopyData(c.rest()),
            b'p' => FrontendMessage::Password(c.rest()),
            b'F' => FrontendMessage::FunctionCall(c.rest()),
            _ => FrontendMessage::Unknown { tag, body: c.rest() },
        };
        c.finish()?;
        Ok(message)
    }
}

fn decode_bind<'a>(c: &mut Cursor<'a>) -> Result<Bind<'a>, ParseMessageError> {
    let portal = c.cstr()?;
    let statement = c.cstr()?;
    let parameter_formats = c.format_codes()?;
    let n = c.count16()?;
    let mut parameters = Vec::with_capacity(n.min(c.frame.body.len() / 4));
    for _ in 0..n {
        let at = c.pos;
        let len = c.i32()?;
        if len == -1 {
            parameters.push(None);
            continue;
        }
        let Ok(len) = usize::try_from(len) else {
            c.pos = at;
            return Err(c.error("parameter length below -1"));
        };
        parameters.push(Some(c.bytes(len, "parameter value runs past the end")?));
    }
    if parameter_formats.len() > 1 && parameter_formats.len() != parameters.len() {
        return Err(c.error("parameter format count differs from the parameter count"));
    }
    let result_formats = c.format_codes()?;
    Ok(Bind { portal, statement, parameter_formats, parameters, result_formats })
}

fn decode_startup<'a>(frame: &'a Frame<'a>) -> Result<FrontendMessage<'a>, ParseMessageError> {
    let mut c = Cursor::new(frame, "startup packet");
    let code = startup_code(frame.body).ok_or_else(|| c.error("body shorter than its code"))?;
    c.pos = 4;
    let message = if is_ssl_request(code) {
        c.message = "SSLRequest";
        FrontendMessage::SslRequest
    } else if is_gssenc_request(code) {
        c.message = "GSSENCRequest";
        FrontendMessage::GssEncRequest
    } else if is_cancel_request(code) {
        c.message = "CancelRequest";
        let pid = c.i32()?;
        let secret_key = c.rest();
        if secret_key.is_empty() || secret_key.len() > MAX_SECRET_KEY_LEN {
            return Err(c.error("secret key not 1 to 256 bytes long"));
        }
        FrontendMessage::CancelRequest { pid, secret_key }
    } else {
        c.message = "StartupMessage";
        let (major, minor) = ((code >> 16) as u16, code as u16);
        if major != 3 {
            return Err(ParseMessageError::UnsupportedProtocol {
                side: frame.side,
                offset: frame.offset,
                major,
                minor,
            });
        }
        let mut parameters = Vec::new();
        loop {
            let name = c.cstr()?;
            if name.is_empty() {
                break;
            }
            parameters.push((name, c.cstr()?));
        }
        FrontendMessage::Startup { major, minor, parameters }
    };
    c.finish()?;
    Ok(message)
}

impl<'a> BackendMessage<'a> {
    /// Decodes a frame from the backend stream.
    ///
    /// # Errors
    ///
    /// The body does not match what its type requires (see [`FrontendMessage::decode`]).
    pub fn decode(frame: &'a Frame<'a>) -> Result<Self, ParseMessageError> {
        debug_assert_eq!(frame.side, Side::Backend);
        let Some(tag) = frame.tag else {
            let c = Cursor::new(frame, "startup packet");
            return Err(c.error("a backend stream has no untyped packets"));
        };
        if frame.mode == FrameMode::NegotiationReply {
            return Ok(BackendMessage::EncryptionReply { accepted: tag != b'N' });
        }
        let mut c = Cursor::new(frame, "message");
        let message = match tag {
            b'R' => {
                c.message = "Authentication";
                BackendMessage::Authentication(decode_auth(&mut c)?)
            }
            b'S' => {
                c.message = "ParameterStatus";
                BackendMessage::ParameterStatus { name: c.cstr()?, value: c.cstr()? }
            }
            b'K' => {
                c.message = "BackendKeyData";
                let pid = c.i32()?;
                let secret_key = c.rest();
                if secret_key.is_empty() || secret_key.len() > MAX_SECRET_KEY_LEN {
                    return Err(c.error("secret key not 1 to 256 bytes long"));
                }
                BackendMessage::BackendKeyData { pid, secret_key }
            }
            b'v' => {
                c.message = "NegotiateProtocolVersion";
                let newest_minor = c.i32()?;
                let at = c.pos;
                let n = usize::try_from(c.i32()?).map_err(|_| {
                    c.pos = at;
                    c.error("negative count")
                })?;
                let mut unrecognized = Vec::new();
                for _ in 0..n {
                    unrecognized.push(c.cstr()?);
                }
                BackendMessage::NegotiateProtocolVersion { newest_minor, unrecognized }
            }
            b'1' => empty(&mut c, "ParseComplete", BackendMessage::ParseComplete),
            b'2' => empty(&mut c, "BindComplete", BackendMessage::BindComplete),
            b'3' => empty(&mut c, "CloseComplete", BackendMessage::CloseComplete),
            b's' => empty(&mut c, "PortalSuspended", BackendMessage::PortalSuspended),
            b'n' => empty(&mut c, "NoData", BackendMessage::NoData),
            b'I' => empty(&mut c, "EmptyQueryResponse", BackendMessage::EmptyQueryResponse),
            b'c' => empty(&mut c, "CopyDone", BackendMessage::CopyDone),
            b'C' => {
                c.message = "CommandComplete";
                BackendMessage::CommandComplete { tag: c.cstr()? }
            }
            b'Z' => {
                c.message = "ReadyForQuery";
                let status = match c.u8()? {
                    b'I' => TransactionStatus::Idle,
                    b'T' => TransactionStatus::InTransaction,
                    b'E' => TransactionStatus::Failed,
                    _ => {
                        c.pos -= 1;
                        return Err(c.error("transaction status not I, T or E"));
                    }
                };
                BackendMessage::ReadyForQuery(status)
            }
            b'E' | b'N' => {
                c.message = if tag == b'E' { "ErrorResponse" } else { "NoticeResponse" };
                let mut fields = Vec::new();
                loop {
                    let code = c.u8()?;
                    if code == 0 {
                        break;
                    }
                    fields.push((code, c.cstr()?));
                }
                let m = ServerMessage::from_fields(fields);
                if tag == b'E' {
                    BackendMessage::ErrorResponse(m)
                } else {
                    BackendMessage::NoticeResponse(m)
                }
            }
            b'A' => {
                c.message = "NotificationResponse";
                BackendMessage::NotificationResponse {
                    pid: c.i32()?,
                    channel: c.cstr()?,
                    payload: c.cstr()?,
                }
            }
            b'G' | b'H' | b'W' => {
                c.message = match tag {
                    b'G' => "CopyInResponse",
                    b'H' => "CopyOutResponse",
                    _ => "CopyBothResponse",
                };
                let at = c.pos;
                if c.u8()? > 1 {
                    c.pos = at;
                    return Err(c.error("copy format neither 0 (text) nor 1 (binary)"));
                }
                let n = c.count16()?;
                for _ in 0..n {
                    c.i16()?;
                }
                match tag {
                    b'G' => BackendMessage::CopyInResponse,
                    b'H' => BackendMessage::CopyOutResponse,
                    _ => BackendMessage::CopyBothResponse,
                }
            }
            b't' => BackendMessage::ParameterDescription(c.rest()),
            b'T' => BackendMessage::RowDescription(c.rest()),
            b'D' => BackendMessage::DataRow(c.rest()),
            b'd' => BackendMessage::CopyData(c.rest()),
            b'V' => BackendMessage::FunctionCallResponse(c.rest()),
            _ => BackendMessage::Unknown { tag, body: c.rest() },
        };
        c.finish()?;
        Ok(message)
    }
}

fn empty<'a>(
    c: &mut Cursor<'_>,
    name: &'static str,
    message: BackendMessage<'a>,
) -> BackendMessage<'a> {
    c.message = name;
    message
}

fn decode_auth(c: &mut Cursor<'_>) -> Result<AuthRequest, ParseMessageError> {
    Ok(match c.i32()? {
        0 => AuthRequest::Ok,
        2 => AuthRequest::KerberosV5,
        3 => AuthRequest::CleartextPassword,
        5 => {
            let salt = c.bytes(4, "md5 salt shorter than 4 bytes")?;
            AuthRequest::Md5Password { salt: [salt[0], salt[1], salt[2], salt[3]] }
        }
        7 => AuthRequest::Gss,
        8 => AuthRequest::GssContinue(c.rest().to_vec()),
        9 => AuthRequest::Sspi,
        10 => {
            let mut mechanisms = Vec::new();
            loop {
                let name = c.cstr()?;
                if name.is_empty() {
                    break;
                }
                mechanisms.push(name.into_owned());
            }
            AuthRequest::Sasl { mechanisms }
        }
        11 => AuthRequest::SaslContinue(c.rest().to_vec()),
        12 => AuthRequest::SaslFinal(c.rest().to_vec()),
        other => {
            c.rest();
            AuthRequest::Other(other)
        }
    })
}
