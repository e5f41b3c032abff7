//! Encoding the messages a gateway sends itself, with `pgwire`'s codecs: authentication
//! requests to a client, password and SASL answers to a target, and errors.

use bytes::{Bytes, BytesMut};
use pgwire::messages::Message;
use pgwire::messages::response::ErrorResponse;
use pgwire::messages::startup::{Authentication, Password, SASLInitialResponse, SASLResponse};

use crate::message::AuthRequest;
use crate::scram::ScramError;

/// A message could not be encoded (too long for its type, or a request `pgwire` cannot
/// write).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode {message}: {reason}")]
pub struct EncodeMessageError {
    pub message: &'static str,
    pub reason: String,
}

fn encode(message: &'static str, m: &impl Message) -> Result<Vec<u8>, EncodeMessageError> {
    let mut buf = BytesMut::new();
    m.encode(&mut buf).map_err(|e| EncodeMessageError { message, reason: e.to_string() })?;
    Ok(buf.to_vec())
}

/// An Authentication message asking the client for `request`.
///
/// # Errors
///
/// GSS, SSPI and unknown requests, which a gateway does not send.
pub fn authentication(request: &AuthRequest) -> Result<Vec<u8>, EncodeMessageError> {
    let m = match request {
        AuthRequest::Ok => Authentication::Ok,
        AuthRequest::KerberosV5 => Authentication::KerberosV5,
        AuthRequest::CleartextPassword => Authentication::CleartextPassword,
        AuthRequest::Md5Password { salt } => Authentication::MD5Password(salt.to_vec()),
        AuthRequest::Sasl { mechanisms } => Authentication::SASL(mechanisms.clone()),
        AuthRequest::SaslContinue(data) => Authentication::SASLContinue(Bytes::from(data.clone())),
        AuthRequest::SaslFinal(data) => Authentication::SASLFinal(Bytes::from(data.clone())),
        other => {
            let reason = format!("{other:?} is not supported");
            return Err(EncodeMessageError { message: "Authentication", reason });
        }
    };
    encode("Authentication", &m)
}

/// A PasswordMessage (cleartext, or the `md5...` string of [`crate::md5_password`]).
///
/// # Errors
///
/// Longer than the protocol allows.
pub fn password_message(password: &str) -> Result<Vec<u8>, EncodeMessageError> {
    encode("PasswordMessage", &Password::new(password.to_owned()))
}

/// A SASLInitialResponse choosing `mechanism`, with its first message.
///
/// # Errors
///
/// Longer than the protocol allows.
pub fn sasl_initial_response(mechanism: &str, data: &[u8]) -> Result<Vec<u8>, EncodeMessageError> {
    let m = SASLInitialResponse::new(mechanism.to_owned(), Some(Bytes::copy_from_slice(data)));
    encode("SASLInitialResponse", &m)
}

/// A SASLResponse.
///
/// # Errors
///
/// Longer than the protocol allows.
pub fn sasl_response(data: &[u8]) -> Result<Vec<u8>, EncodeMessageError> {
    encode("SASLResponse", &SASLResponse::new(Bytes::copy_from_slice(data)))
}

/// An ErrorResponse with severity (`ERROR`, `FATAL`), SQLSTATE and message.
///
/// # Errors
///
/// Longer than the protocol allows.
pub fn error_response(
    severity: &str,
    code: &str,
    message: &str,
) -> Result<Vec<u8>, EncodeMessageError> {
    let fields = vec![
        (b'S', severity.to_owned()),
        (b'V', severity.to_owned()),
        (b'C', code.to_owned()),
        (b'M', message.to_owned()),
    ];
    encode("ErrorResponse", &ErrorResponse::new(fields))
}

/// Splits a SASLInitialResponse body (a `p` message the client sent after an
/// AuthenticationSASL) into its mechanism and data.
///
/// # Errors
///
/// The body is not a SASLInitialResponse.
pub fn parse_sasl_initial_response(body: &[u8]) -> Result<(String, &[u8]), ScramError> {
    let bad = |problem| ScramError::Malformed { message: "SASLInitialResponse", problem };
    let nul = body.iter().position(|&b| b == 0).ok_or_else(|| bad("no mechanism"))?;
    let mechanism = String::from_utf8_lossy(&body[..nul]).into_owned();
    let rest = &body[nul + 1..];
    let len = rest.get(..4).ok_or_else(|| bad("no data length"))?;
    let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    let data = &rest[4..];
    match usize::try_from(len) {
        Ok(n) if n == data.len() => Ok((mechanism, data)),
        Err(_) if len == -1 && data.is_empty() => Ok((mechanism, data)),
        _ => Err(bad("data length differs from what follows")),
    }
}
