//! Webhooks (the IO side): each chosen event POSTed as JSON to a URL, signed with
//! HMAC-SHA256 (`X-Keepwatch-Signature: sha256=HEX`), retried with exponential backoff a
//! bounded number of times, then dropped (logged and counted). Each webhook is its own feed
//! task, so a slow or failing receiver holds only that task, never a session or another sink.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::format::{OutEvent, signature};
use super::sink::split_host_port;

/// How long one delivery (connect, send, the answer's status line) may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// The first retry waits this long, each further one twice as long, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// At most this much of an answer is read (its status line is all that counts).
const MAX_ANSWER: usize = 8192;

/// A parsed `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebhookUrl {
    pub(crate) https: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) path: String,
}

/// Parses the URL; an error leaves the URL out (its path may hold a token).
pub(crate) fn parse_url(s: &str) -> Result<WebhookUrl, String> {
    let bad = |why: &str| format!("url: {why} (write https://HOST[:PORT]/PATH)");
    let (https, rest) = if let Some(r) = s.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = s.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad("not http:// or https://"));
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') { format!("/{path}") } else { path.to_owned() };
    if path.contains(|c: char| c.is_ascii_control() || c == ' ') {
        return Err(bad("spaces or control characters in the path"));
    }
    let (host, port) = split_host_port(authority).map_err(bad)?;
    Ok(WebhookUrl { https, host, port: port.unwrap_or(if https { 443 } else { 80 }), path })
}

/// One configured webhook.
pub(crate) struct Webhook {
    pub(crate) url: WebhookUrl,
    pub(crate) secret: keepwatch_core::Secret<String>,
    /// Event types it carries; empty: every type.
    pub(crate) events: HashSet<String>,
    pub(crate) max_attempts: u32,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    /// Deliveries given up on since start.
    pub(crate) dropped: u64,
}

impl Webhook {
    /// The URL without its path, which may hold a token: what logs name.
    pub(crate) fn describe(&self) -> String {
        let scheme = if self.url.https { "https" } else { "http" };
        let host = &self.url.host;
        let host = if host.contains(':') { format!("[{host}]") } else { host.clone() };
        format!("{scheme}://{host}:{}/…", self.url.port)
    }

    /// Delivers each chosen event in turn, retrying each up to `max_attempts` times; always
    /// takes the batch (a delivery given up on is logged and counted). `None` when `stop`
    /// came first (the batch is left for the next start).
    pub(crate) async fn deliver(
        &mut self,
        events: &[OutEvent],
        stop: &CancellationToken,
    ) -> Option<()> {
        for e in events.iter().filter(|e| self.events.is_empty() || self.events.contains(&e.kind)) {
            let body = e.line();
            let sig = signature(self.secret.expose().as_bytes(), body.as_bytes());
            let mut backoff = FIRST_BACKOFF;
            let mut attempt = 1;
            loop {
                let r = tokio::time::timeout(POST_TIMEOUT, self.post(e, &body, &sig)).await;
                let why = match r {
                    Ok(Ok(status)) if (200..300).contains(&status) => break,
                    Ok(Ok(status)) => format!("answered {status}"),
                    Ok(Err(err)) => err.to_string(),
                    Err(_) => format!("no answer within {POST_TIMEOUT:?}"),
                };
                if attempt >= self.max_attempts {
                    self.dropped += 1;
                    tracing::error!(webhook = %self.describe(), event_id = e.id, event_type = %e.kind, attempts = attempt, dropped_total = self.dropped, reason = %why, "webhook delivery dropped after its last attempt");
                    break;
                }
                tracing::warn!(webhook = %self.describe(), event_id = e.id, attempt, reason = %why, "webhook delivery failed; retrying in {backoff:?}");
                tokio::select! {
                    _ = stop.cancelled() => return None,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                attempt += 1;
            }
        }
        Some(())
    }

    /// One POST; the answer's status code.
    async fn post(&self, e: &OutEvent, body: &str, sig: &str) -> std::io::Result<u16> {
        let u = &self.url;
        let host_header = if u.host.contains(':') {
            format!("[{}]:{}", u.host, u.port)
        } else {
            format!("{}:{}", u.host, u.port)
        };
        let req = format!(
            "POST {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: keepwatch\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\
             X-Keepwatch-Signature: {sig}\r\nX-Keepwatch-Event: {}\r\nX-Keepwatch-Id: {}\r\n\
             Connection: close\r\n\r\n{body}",
            u.path,
            body.len(),
            super::format::header_field(&e.kind, 64),
            e.id,
        );
        let s = TcpStream::connect((u.host.as_str(), u.port)).await?;
        match &self.tls {
            Some(config) if u.https => {
                let name = rustls::pki_types::ServerName::try_from(u.host.clone())
                    .map_err(|err| std::io::Error::other(format!("{}: {err}", u.host)))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone()).connect(name, s).await?;
                exchange(tls, req.as_bytes()).await
            }
            _ => exchange(s, req.as_bytes()).await,
        }
    }
}

/// Sends `req`, reads the status line of the answer.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, req: &[u8]) -> std::io::Result<u16> {
    s.write_all(req).await?;
    s.flush().await?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(2).any(|w| w == b"\r\n") && answer.len() < MAX_ANSWER {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&answer);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("the answer has no HTTP status line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("https://hooks.example/kw?x=1").unwrap();
        assert_eq!(
            u,
            WebhookUrl {
                https: true,
                host: "hooks.example".into(),
                port: 443,
                path: "/kw?x=1".into()
            }
        );
        let u = parse_url("http://127.0.0.1:8088").unwrap();
        assert_eq!((u.port, u.path.as_str()), (8088, "/"));
        for bad in ["ftp://x/", "https://", "https://x:y/", "http://x/a b"] {
            assert!(parse_url(bad).unwrap_err().contains("https://HOST"), "{bad}");
        }
    }
}
