//! One person's connection: encryption, the startup packet, SCRAM-SHA-256 with their
//! Keepwatch password, then the session (opened through the session layer) and the relay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use keepwatch_core::{AuditAction, LoginName, RefusalAudit, Slot};
use keepwatch_pg::{
    FrameReader, FrontendMessage, SCRAM_SHA_256, ScramServer, ScramVerifier, Side, wire,
};
use keepwatch_store::NewAudit;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::{CancelKey, PgGatewayContext};

/// A byte stream, plain or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub(crate) type Stream = Box<dyn Io>;

/// A whole message as read: the frame, owned (its type byte is `None` for startup packets).
pub(crate) struct Message {
    pub side: Side,
    pub mode: keepwatch_pg::FrameMode,
    pub offset: u64,
    pub tag: Option<u8>,
    pub body: Vec<u8>,
}

impl Message {
    /// The frame again, to decode.
    pub(crate) fn frame(&self) -> keepwatch_pg::Frame<'_> {
        let Message { side, mode, offset, tag, ref body } = *self;
        keepwatch_pg::Frame { side, mode, offset, tag, body }
    }
}

/// Reads the next whole message from `stream` through `reader`; `None` at a clean end.
pub(crate) async fn read_message(
    stream: &mut (impl AsyncRead + Unpin + ?Sized),
    reader: &mut FrameReader,
) -> Result<Option<Message>, String> {
    let mut buf = [0u8; 8192];
    loop {
        match reader.next_frame() {
            Ok(Some(f)) => {
                let (side, mode, offset, tag) = (f.side, f.mode, f.offset, f.tag);
                return Ok(Some(Message { side, mode, offset, tag, body: f.body.to_vec() }));
            }
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return if reader.buffered() == 0 {
                Ok(None)
            } else {
                Err("the connection ended inside a message".into())
            };
        }
        reader.push(&buf[..n]);
    }
}

/// A FATAL ErrorResponse with `code`, sent before the connection is closed.
pub(crate) async fn fatal(stream: &mut (impl AsyncWrite + Unpin + ?Sized), code: &str, text: &str) {
    if let Ok(bytes) = wire::error_response("FATAL", code, text) {
        let _ = stream.write_all(&bytes).await;
        let _ = stream.flush().await;
    }
}

/// A logged-in person, their target and what their client asked for.
pub(crate) struct LoggedIn {
    pub stream: Stream,
    pub person: String,
    pub target: String,
    /// The startup packet's other parameters (`application_name`, `client_encoding`, ...),
    /// passed on to the target.
    pub parameters: Vec<(String, String)>,
    pub peer: SocketAddr,
}

pub(crate) async fn run(
    ctx: Arc<PgGatewayContext>,
    socket: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    shutdown: CancellationToken,
) {
    let grace = ctx.config.login_grace;
    let login = tokio::time::timeout(grace, login(&ctx, socket, peer)).await;
    // Logged in (or gone): the pre-login slot and the grace no longer apply.
    drop(slot);
    let logged_in = match login {
        Ok(Some(l)) => l,
        Ok(None) => return,
        Err(_) => {
            tracing::debug!(%peer, "postgres connection closed: no login within the grace time");
            return;
        }
    };
    crate::relay::run(ctx, logged_in, shutdown).await;
}

/// Encryption, startup and authentication. `None` when the connection ends here (refused,
/// a cancel request served, or gone).
async fn login(ctx: &PgGatewayContext, socket: TcpStream, peer: SocketAddr) -> Option<LoggedIn> {
    let mut stream: Stream = Box::new(socket);
    let mut reader = FrameReader::new(Side::Frontend, keepwatch_pg::MAX_STARTUP_PACKET_LEN);
    let mut tls = false;
    let (user, parameters) = loop {
        let msg = match read_message(&mut stream, &mut reader).await {
            Ok(Some(m)) => m,
            Ok(None) => return None,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "postgres connection refused: bad startup");
                return None;
            }
        };
        match FrontendMessage::decode(&msg.frame()) {
            Ok(FrontendMessage::SslRequest) if !tls => {
                stream.write_all(b"S").await.ok()?;
                // Anything sent after the request but before the handshake would be
                // plaintext injected into the TLS session: refuse it.
                if reader.buffered() > 0 {
                    return None;
                }
                let acceptor = tokio_rustls::TlsAcceptor::from(ctx.tls.clone());
                match acceptor.accept(stream).await {
                    Ok(s) => stream = Box::new(s),
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "postgres TLS handshake failed");
                        return None;
                    }
                }
                tls = true;
                reader = FrameReader::new(Side::Frontend, keepwatch_pg::MAX_STARTUP_PACKET_LEN);
            }
            Ok(FrontendMessage::GssEncRequest) if !tls => {
                stream.write_all(b"N").await.ok()?;
            }
            Ok(FrontendMessage::CancelRequest { pid, secret_key }) => {
                let key = CancelKey { pid, secret: secret_key.to_vec() };
                crate::upstream::cancel(ctx, &key, peer).await;
                return None;
            }
            Ok(FrontendMessage::Startup { major: 3, parameters, .. }) => {
                let mut user = None;
                let mut rest = Vec::new();
                for (name, value) in parameters {
                    match &*name {
                        "user" => user = Some(value.into_owned()),
                        // The target's row names the database; the client's is checked below.
                        "database" => rest.push(("database".to_owned(), value.into_owned())),
                        _ => rest.push((name.into_owned(), value.into_owned())),
                    }
                }
                break (user.unwrap_or_default(), rest);
            }
            Ok(FrontendMessage::Startup { major, minor, .. }) => {
                let text =
                    format!("unsupported frontend protocol {major}.{minor}: keepwatch speaks 3.x");
                fatal(&mut stream, "0A000", &text).await;
                return None;
            }
            Ok(_) | Err(_) => {
                fatal(&mut stream, "08P01", "invalid startup packet").await;
                return None;
            }
        }
    };
    if !tls {
        let text = "keepwatch accepts PostgreSQL connections only over TLS: connect with sslmode=require (or verify-full with the gateway's certificate)";
        fatal(&mut stream, "28000", text).await;
        return None;
    }
    let name = match LoginName::parse(&user) {
        Ok(LoginName { person, target: Some(target) }) => (person, target),
        _ => {
            let text = format!(
                "keepwatch: log in as USER@TARGET (user={user:?} names no target); for example psql \"host=GATEWAY user=alice@pgprod dbname=app sslmode=require\""
            );
            fatal(&mut stream, "28000", &text).await;
            return None;
        }
    };
    let (person, target) = name;
    if !authenticate(ctx, &mut stream, &mut reader, &person, &user, peer).await {
        return None;
    }
    if reader.buffered() > 0 {
        // A client speaks only after ReadyForQuery; bytes before it are not a session.
        fatal(&mut stream, "08P01", "keepwatch: data sent before the login completed").await;
        return None;
    }
    Some(LoggedIn { stream, person, target, parameters, peer })
}

/// SCRAM-SHA-256 with the person's Keepwatch password. Counted by the login limiter before
/// it is checked, audited either way; an unknown person costs the same exchange.
async fn authenticate(
    ctx: &PgGatewayContext,
    stream: &mut Stream,
    reader: &mut FrameReader,
    person: &str,
    user: &str,
    peer: SocketAddr,
) -> bool {
    let store = &ctx.sessions.store;
    let audit = |action, detail: String| NewAudit {
        actor: person.to_owned(),
        action,
        session_id: None,
        client_addr: Some(peer.to_string()),
        detail,
    };
    let refuse = |why: String| async move {
        if let RefusalAudit::Write { suppressed } = ctx.logins.refusal(peer.ip(), Instant::now()) {
            let more = if suppressed > 0 {
                format!(" ({suppressed} more refused from this address since the last one audited)")
            } else {
                String::new()
            };
            let detail = format!("login {user:?} by postgres scram: {why}{more}");
            if let Err(e) = store.audit(audit(AuditAction::LoginRefused, detail)).await {
                tracing::error!(error = %e, "cannot write audit event");
            }
        }
    };
    let attempt = match ctx.logins.begin(person, peer.ip(), Instant::now()) {
        Ok(a) => a,
        Err(locked) => {
            let why =
                format!("too many failed logins; locked for {} s", locked.retry_after.as_secs());
            refuse(why.clone()).await;
            fatal(stream, "28000", &format!("keepwatch: {why}")).await;
            return false;
        }
    };
    let row = match store.person(person).await {
        Ok(row) => row,
        Err(e) => {
            tracing::error!(error = %e, "store failed");
            fatal(stream, "58000", "keepwatch: internal error; login refused").await;
            return false;
        }
    };
    let known = row.as_ref().filter(|p| !p.disabled);
    let stored = known.and_then(|p| p.scram_verifier.as_deref()).and_then(|v| v.parse().ok());
    let has_verifier = stored.is_some();
    // Unknown, disabled or without a verifier: the same exchange against a verifier nobody
    // knows the password of (made once, so that no login costs more than another), refused
    // at the end.
    let verifier = match stored {
        Some(v) => v,
        None => match nobodys_verifier() {
            Some(v) => v,
            None => return false,
        },
    };
    let passed = match scram_exchange(stream, reader, verifier).await {
        Ok(passed) => passed,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "postgres authentication failed");
            refuse(format!("authentication broke off: {e}")).await;
            fatal(stream, "28P01", &format!("password authentication failed for user \"{user}\""))
                .await;
            return false;
        }
    };
    if passed && has_verifier {
        ctx.logins.succeeded(attempt);
        let detail = format!("login {user:?} by postgres scram");
        if let Err(e) = store.audit(audit(AuditAction::LoginSucceeded, detail)).await {
            tracing::error!(error = %e, "cannot write audit event");
            fatal(stream, "58000", "keepwatch: internal error; login refused").await;
            return false;
        }
        return true;
    }
    let why = match (&row, known, has_verifier) {
        (None, _, _) => "no such person",
        (Some(_), None, _) => "the person is disabled",
        (_, Some(_), false) => "no PostgreSQL password is set for this person",
        _ => "wrong password",
    };
    refuse(why.into()).await;
    let text = if known.is_some() && !has_verifier {
        format!(
            "keepwatch: {person} has no password for PostgreSQL logins yet; an admin sets one with `keepwatch user passwd {person} --password-stdin`"
        )
    } else {
        format!("password authentication failed for user \"{user}\"")
    };
    fatal(stream, "28P01", &text).await;
    false
}

/// A verifier of a random password, made once.
fn nobodys_verifier() -> Option<ScramVerifier> {
    static VERIFIER: std::sync::OnceLock<Option<ScramVerifier>> = std::sync::OnceLock::new();
    VERIFIER
        .get_or_init(|| {
            let mut pw = [0u8; 24];
            getrandom::fill(&mut pw).ok()?;
            ScramVerifier::new(&format!("{pw:?}")).ok()
        })
        .clone()
}

/// The server side of SCRAM-SHA-256: `Ok(true)` when the client proved the password (the
/// server-final message has been sent), `Ok(false)` when its proof was wrong.
async fn scram_exchange(
    stream: &mut Stream,
    reader: &mut FrameReader,
    verifier: ScramVerifier,
) -> Result<bool, String> {
    use keepwatch_pg::AuthRequest;
    let mut server = ScramServer::new(verifier).map_err(|e| e.to_string())?;
    let ask = wire::authentication(&AuthRequest::Sasl { mechanisms: vec![SCRAM_SHA_256.into()] })
        .map_err(|e| e.to_string())?;
    stream.write_all(&ask).await.map_err(|e| e.to_string())?;
    let first = expect_password_message(stream, reader).await?;
    let (mechanism, data) = wire::parse_sasl_initial_response(&first).map_err(|e| e.to_string())?;
    let server_first = server.client_first(&mechanism, data).map_err(|e| e.to_string())?;
    let cont = wire::authentication(&AuthRequest::SaslContinue(server_first.into_bytes()))
        .map_err(|e| e.to_string())?;
    stream.write_all(&cont).await.map_err(|e| e.to_string())?;
    let last = expect_password_message(stream, reader).await?;
    match server.client_final(&last) {
        Ok(server_final) => {
            let fin = wire::authentication(&AuthRequest::SaslFinal(server_final.into_bytes()))
                .map_err(|e| e.to_string())?;
            stream.write_all(&fin).await.map_err(|e| e.to_string())?;
            Ok(true)
        }
        Err(keepwatch_pg::ScramError::WrongProof) => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}

async fn expect_password_message(
    stream: &mut Stream,
    reader: &mut FrameReader,
) -> Result<Vec<u8>, String> {
    match read_message(stream, reader).await? {
        Some(Message { tag: Some(b'p'), body, .. }) => Ok(body),
        Some(_) => Err("expected a SASL response".into()),
        None => Err("the client left during authentication".into()),
    }
}
