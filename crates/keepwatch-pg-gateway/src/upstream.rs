//! The gateway's connection to a database target: TCP, TLS as the target's row says, the
//! startup packet, and the login with the vaulted password by whichever method the server
//! asks for. The person never sees that password, nor the target's cancel key.

use std::net::SocketAddr;
use std::time::Duration;

use keepwatch_core::{AuditAction, SessionId};
use keepwatch_pg::{
    AuthRequest, BackendMessage, FrameReader, PINNED_SETTINGS, Side, StatementRules, TargetLogin,
};
use keepwatch_store::{NewAudit, TargetRow, TlsMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{Message, Stream, read_message};
use crate::{CancelKey, PgGatewayContext};

/// The target backend a client's cancel key stands for.
#[derive(Debug, Clone)]
pub(crate) struct Backend {
    pub session: SessionId,
    pub addr: String,
    pub pid: i32,
    pub secret: Vec<u8>,
}

/// A logged-in connection to the target.
pub(crate) struct Upstream {
    pub stream: Stream,
    /// What the server said after the login, up to and including ReadyForQuery (parameter
    /// statuses, notices), to pass on to the client; its BackendKeyData is kept apart.
    pub greeting: Vec<u8>,
    /// The target's own cancel key (never shown to the client).
    pub key: Option<(i32, Vec<u8>)>,
    /// Bytes the server sent after its ReadyForQuery, read along with it.
    pub leftover: Vec<u8>,
}

/// Startup parameters a client may pass to the target; others (`options`, `replication`,
/// ...) are dropped, so a client cannot change what the gateway follows.
const PASSED_PARAMETERS: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "IntervalStyle",
    "extra_float_digits",
    "search_path",
];

/// Whether the client's startup parameter `name` goes to the target.
pub(crate) fn passed(name: &str) -> bool {
    PASSED_PARAMETERS.contains(&name)
}

fn startup_packet(params: &[(String, String)]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes());
    for (name, value) in params {
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// A typed message's bytes: type, length, body.
pub(crate) fn frame_bytes(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(tag);
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Connects and logs in. The error is one line for the person and the audit.
pub(crate) async fn connect(
    target: &TargetRow,
    password: &str,
    client_params: &[(String, String)],
    timeout: Duration,
    max_message_len: u32,
    rules: &StatementRules,
) -> Result<Upstream, String> {
    let Some(db) = &target.database else {
        return Err(format!("target {} names no database", target.name));
    };
    let addr = format!("{}:{}", target.host, target.port);
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("cannot reach target {} at {addr}: {e}", target.name)),
        Err(_) => {
            return Err(format!(
                "target {} at {addr} did not answer within {} s",
                target.name,
                timeout.as_secs()
            ));
        }
    };
    let _ = tcp.set_nodelay(true);
    let mut stream: Stream = Box::new(tcp);
    if db.tls != TlsMode::Disable {
        let mut request = 8u32.to_be_bytes().to_vec();
        request.extend_from_slice(&80_877_103u32.to_be_bytes());
        stream.write_all(&request).await.map_err(|e| e.to_string())?;
        let mut answer = [0u8; 1];
        stream.read_exact(&mut answer).await.map_err(|e| e.to_string())?;
        if answer[0] != b'S' {
            return Err(format!(
                "target {} does not offer TLS, which its row requires (tls {})",
                target.name,
                db.tls.as_str()
            ));
        }
        let config = crate::tls::client_config(db.tls, db.ca.as_deref())?;
        let name = crate::tls::server_name(&target.host)?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let tls = connector.connect(name, stream).await.map_err(|e| {
            format!("TLS with target {} failed ({}): {e}", target.name, db.tls.as_str())
        })?;
        stream = Box::new(tls);
    }
    let mut params = vec![("user".to_owned(), target.login.clone())];
    params.push(("database".to_owned(), db.name.clone()));
    params.extend(client_params.iter().filter(|(n, _)| passed(n)).cloned());
    if !rules.is_empty() {
        // The settings the rules' parser reads statements under, whatever the client asked
        // for and whatever the role's or database's defaults say (startup wins over both).
        params.retain(|(n, _)| !PINNED_SETTINGS.iter().any(|(p, _)| n.eq_ignore_ascii_case(p)));
        for (name, value) in PINNED_SETTINGS {
            params.push(((*name).to_owned(), (*value).to_owned()));
        }
    }
    if rules.read_only() {
        // Under the gateway's parser check, the server's own guard: a view or a function
        // that writes fails too. The check refuses statements that would lift it.
        params.push(("default_transaction_read_only".to_owned(), "on".to_owned()));
    }
    stream.write_all(&startup_packet(&params)).await.map_err(|e| e.to_string())?;
    let mut reader = FrameReader::new(Side::Backend, max_message_len);
    let mut login = TargetLogin::new(&target.login, password);
    let mut greeting = Vec::new();
    let mut key = None;
    let mut authenticated = false;
    loop {
        let msg: Message =
            match tokio::time::timeout(timeout, read_message(&mut stream, &mut reader)).await {
                Ok(Ok(Some(m))) => m,
                Ok(Ok(None)) => {
                    return Err(format!(
                        "target {} closed the connection during login",
                        target.name
                    ));
                }
                Ok(Err(e)) => return Err(format!("target {}: {e}", target.name)),
                Err(_) => {
                    return Err(format!(
                        "target {} did not finish the login within {} s",
                        target.name,
                        timeout.as_secs()
                    ));
                }
            };
        let (tag, body) = (msg.tag.unwrap_or(0), msg.body.as_slice());
        let frame = msg.frame();
        let message =
            BackendMessage::decode(&frame).map_err(|e| format!("target {}: {e}", target.name))?;
        match message {
            BackendMessage::Authentication(request) => {
                if request == AuthRequest::Ok {
                    authenticated = true;
                }
                let answer = login
                    .respond(&request)
                    .map_err(|e| format!("logging into target {} failed: {e}", target.name))?;
                if let Some(bytes) = answer {
                    stream.write_all(&bytes).await.map_err(|e| e.to_string())?;
                }
            }
            BackendMessage::ErrorResponse(m) => {
                let what = if authenticated {
                    "refused the session"
                } else {
                    "refused the vaulted credential"
                };
                return Err(format!("target {} {what}: {} ({})", target.name, m.message, m.code));
            }
            BackendMessage::BackendKeyData { pid, secret_key } => {
                key = Some((pid, secret_key.to_vec()))
            }
            BackendMessage::ReadyForQuery(_) if authenticated => {
                greeting.extend_from_slice(&frame_bytes(tag, body));
                let leftover = reader.partial().to_vec();
                return Ok(Upstream { stream, greeting, key, leftover });
            }
            BackendMessage::ParameterStatus { .. }
            | BackendMessage::NoticeResponse(_)
            | BackendMessage::NegotiateProtocolVersion { .. }
                if authenticated =>
            {
                greeting.extend_from_slice(&frame_bytes(tag, body));
            }
            other => {
                return Err(format!("target {} sent {other:?} during login", target.name));
            }
        }
    }
}

/// Serves a client's CancelRequest: the key it gives is one this gateway handed out, so
/// the request goes to the backend it stands for with that backend's real key. Audited;
/// an unknown key is ignored (as PostgreSQL does).
pub(crate) async fn cancel(ctx: &PgGatewayContext, key: &CancelKey, peer: SocketAddr) {
    let Some(backend) = ctx.backend_for(key) else {
        tracing::debug!(%peer, "cancel request with an unknown key ignored");
        return;
    };
    let audit = NewAudit {
        actor: format!("postgres-cancel:{peer}"),
        action: AuditAction::SessionCancelRequested,
        session_id: Some(backend.session),
        client_addr: Some(peer.to_string()),
        detail: format!("cancel request forwarded to the target backend {}", backend.pid),
    };
    if let Err(e) = ctx.sessions.store.audit(audit).await {
        tracing::error!(error = %e, "cannot write audit event");
    }
    let mut packet = ((12 + backend.secret.len()) as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(&80_877_102u32.to_be_bytes());
    packet.extend_from_slice(&backend.pid.to_be_bytes());
    packet.extend_from_slice(&backend.secret);
    let timeout = ctx.config.connect_timeout;
    let sent = tokio::time::timeout(timeout, async {
        let mut s = TcpStream::connect(&backend.addr).await?;
        s.write_all(&packet).await?;
        s.shutdown().await
    })
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        tracing::warn!(session_id = %backend.session, "cannot forward a cancel request to the target");
    }
}
