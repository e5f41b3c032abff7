//! Where the event feed delivers (the IO side): a JSON-lines file or stdout, and syslog
//! over UDP, TCP or TLS. A sink says whether it took a batch; the feed keeps its cursor
//! until it did. Every wait has a deadline, so a receiver that hangs never holds the feed
//! longer than one, and never a session at all (sessions do not wait on the feed).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::format::{OutEvent, SyslogOrigin, octet_counted, rfc5424};

/// How long connecting to a receiver, or writing one batch to it, may take.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A JSON-lines file (opened for every batch, so a rotated file is followed), or stdout.
pub(crate) enum FileSink {
    Stdout,
    Path(PathBuf),
}

impl FileSink {
    pub(crate) fn new(path: &str) -> FileSink {
        if path == "-" { FileSink::Stdout } else { FileSink::Path(PathBuf::from(path)) }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            FileSink::Stdout => "stdout".into(),
            FileSink::Path(p) => p.display().to_string(),
        }
    }

    /// Appends one line per event and syncs it to disk.
    pub(crate) async fn deliver(&mut self, events: &[OutEvent]) -> Result<(), String> {
        let mut buf = String::new();
        for e in events {
            buf.push_str(&e.line());
            buf.push('\n');
        }
        let write = async {
            match self {
                FileSink::Stdout => {
                    // A blocking write on its own thread: a stdout nobody reads only holds
                    // this sink, behind the deadline below.
                    let buf = buf.clone();
                    let write = tokio::task::spawn_blocking(move || {
                        use std::io::Write;
                        let mut out = std::io::stdout().lock();
                        out.write_all(buf.as_bytes())?;
                        out.flush()
                    });
                    write.await.map_err(std::io::Error::other)?
                }
                FileSink::Path(p) => {
                    let mut f = tokio::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .mode(0o600)
                        .open(&p)
                        .await?;
                    f.write_all(buf.as_bytes()).await?;
                    f.sync_data().await
                }
            }
        };
        match tokio::time::timeout(IO_TIMEOUT, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("cannot append to {}: {e}", self.describe())),
            Err(_) => Err(format!("appending to {} took over {IO_TIMEOUT:?}", self.describe())),
        }
    }
}

/// How syslog messages travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transport {
    Udp,
    Tcp,
    Tls,
}

/// A parsed `syslog = "udp://host:514"` (or `tcp://`, `tls://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyslogUrl {
    pub(crate) transport: Transport,
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl std::fmt::Display for SyslogUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Parses `udp://host[:514]`, `tcp://host[:601]` or `tls://host[:6514]` (IPv6 in brackets).
pub(crate) fn parse_syslog_url(s: &str) -> Result<SyslogUrl, String> {
    let bad = |why: &str| {
        format!(
            "[events] syslog = {s:?}: {why} (write udp://HOST:514, tcp://HOST:601 or tls://HOST:6514)"
        )
    };
    let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let (transport, default_port) = match scheme {
        "udp" => (Transport::Udp, 514),
        "tcp" => (Transport::Tcp, 601),
        "tls" => (Transport::Tls, 6514),
        _ => return Err(bad("unknown scheme")),
    };
    let (host, port) = split_host_port(rest.trim_end_matches('/')).map_err(bad)?;
    Ok(SyslogUrl { transport, host, port: port.unwrap_or(default_port) })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
pub(crate) fn split_host_port(s: &str) -> Result<(String, Option<u16>), &'static str> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("an unclosed [")?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':').ok_or("junk after ]")?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() || host.contains(|c: char| matches!(c, '/' | '@' | ' ') || c.is_control()) {
        return Err("no host, or not a plain host name");
    }
    let port = port.map(|p| p.parse::<u16>().map_err(|_| "not a port number")).transpose()?;
    Ok((host.to_owned(), port))
}

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Syslog (RFC 5424) to one receiver. UDP is fire-and-forget (a batch counts as taken once
/// sent); over TCP and TLS each message is octet-counted (RFC 6587) and a batch is taken
/// when written, so a receiver that is down holds the feed's cursor, not memory.
pub(crate) struct SyslogSink {
    url: SyslogUrl,
    tls: Option<Arc<rustls::ClientConfig>>,
    origin: SyslogOrigin,
    conn: Option<Conn>,
}

impl SyslogSink {
    pub(crate) fn new(
        url: SyslogUrl,
        tls: Option<Arc<rustls::ClientConfig>>,
        origin: SyslogOrigin,
    ) -> SyslogSink {
        SyslogSink { url, tls, origin, conn: None }
    }

    pub(crate) fn describe(&self) -> String {
        self.url.to_string()
    }

    pub(crate) async fn deliver(&mut self, events: &[OutEvent]) -> Result<(), String> {
        let messages: Vec<String> = events.iter().map(|e| rfc5424(e, &self.origin)).collect();
        let r = tokio::time::timeout(IO_TIMEOUT, self.send(&messages)).await;
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.conn = None;
                if self.url.transport == Transport::Udp {
                    // Fire-and-forget: the batch is not sent again.
                    tracing::warn!(receiver = %self.url, error = %e, "cannot send events to syslog over UDP; they are dropped");
                    return Ok(());
                }
                Err(format!("cannot send events to syslog at {}: {e}", self.url))
            }
            Err(_) => {
                self.conn = None;
                Err(format!("syslog at {} took over {IO_TIMEOUT:?} to take events", self.url))
            }
        }
    }

    async fn send(&mut self, messages: &[String]) -> std::io::Result<()> {
        let open = match &mut self.conn {
            Some(Conn::Tcp(s)) => still_open(s).await,
            Some(Conn::Tls(s)) => still_open(s).await,
            Some(Conn::Udp(_)) => true,
            None => false,
        };
        if !open {
            self.conn = Some(self.connect().await?);
        }
        match self.conn.as_mut() {
            Some(Conn::Udp(sock)) => {
                // Each datagram on its own: one too large, or a refusal the last one's ICMP
                // left behind, does not keep the others from going.
                let (mut failed, mut last) = (0, None);
                for m in messages {
                    if let Err(e) = sock.send(m.as_bytes()).await {
                        failed += 1;
                        last = Some(e);
                    }
                }
                if let Some(e) = last {
                    let n = messages.len();
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!("{failed} of {n} datagram(s) not sent: {e}"),
                    ));
                }
            }
            Some(Conn::Tcp(s)) => {
                s.write_all(&framed(messages)).await?;
                s.flush().await?;
            }
            Some(Conn::Tls(s)) => {
                s.write_all(&framed(messages)).await?;
                s.flush().await?;
            }
            None => {}
        }
        Ok(())
    }

    async fn connect(&self) -> std::io::Result<Conn> {
        let addr = (self.url.host.as_str(), self.url.port);
        Ok(match self.url.transport {
            Transport::Udp => {
                let target = tokio::net::lookup_host(addr).await?.next().ok_or_else(|| {
                    std::io::Error::other(format!("{} has no address", self.url.host))
                })?;
                let local = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                let sock = UdpSocket::bind(local).await?;
                sock.connect(target).await?;
                Conn::Udp(sock)
            }
            Transport::Tcp => {
                let s = TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                Conn::Tcp(s)
            }
            Transport::Tls => {
                let config = self
                    .tls
                    .clone()
                    .ok_or_else(|| std::io::Error::other("no TLS settings for tls://"))?;
                let name = rustls::pki_types::ServerName::try_from(self.url.host.clone())
                    .map_err(|e| std::io::Error::other(format!("{}: {e}", self.url.host)))?;
                let s = TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                let tls = tokio_rustls::TlsConnector::from(config).connect(name, s).await?;
                Conn::Tls(Box::new(tls))
            }
        })
    }
}

fn framed(messages: &[String]) -> Vec<u8> {
    messages.iter().flat_map(|m| octet_counted(m)).collect()
}

/// Whether a syslog connection is still open: a read that would wait means it is (a
/// receiver sends nothing; TLS session tickets are taken in by the read), an end or an error
/// that the receiver closed it or went away. Checked before each batch, so a restarted
/// receiver is reconnected to instead of taking a batch into a dead socket.
async fn still_open<S: AsyncRead + Unpin>(s: &mut S) -> bool {
    let mut probe = [0u8; 512];
    // A zero timeout polls the read once.
    match tokio::time::timeout(Duration::ZERO, s.read(&mut probe)).await {
        Err(_) => true,
        Ok(Ok(0) | Err(_)) => false,
        Ok(Ok(_)) => true,
    }
}

/// TLS settings for a receiver: its CA from `ca_pem` (PEM file contents), or the system's
/// roots; ring as the provider, as everywhere in keepwatch.
pub(crate) fn client_tls(ca_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("the CA file: {e}"))?;
                roots.add(cert).map_err(|e| format!("the CA file: {e}"))?;
            }
            if roots.is_empty() {
                return Err("the CA file holds no certificate".into());
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("no system CA certificates found; name a CA file".into());
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_urls() {
        let check = |s: &str, t: Transport, host: &str, port: u16| {
            assert_eq!(
                parse_syslog_url(s).unwrap(),
                SyslogUrl { transport: t, host: host.into(), port },
                "{s}"
            );
        };
        check("udp://logs.example", Transport::Udp, "logs.example", 514);
        check("tcp://10.0.0.1:1601", Transport::Tcp, "10.0.0.1", 1601);
        check("tls://[::1]:6514", Transport::Tls, "::1", 6514);
        check("tls://[::1]", Transport::Tls, "::1", 6514);
        for bad in [
            "logs:514",
            "http://x",
            "udp://",
            "udp://x:port",
            "tcp://a@b:1",
            "tls://[::1",
            "udp://a\r\nb",
        ] {
            let e = parse_syslog_url(bad).unwrap_err();
            assert!(e.contains("udp://HOST:514"), "{bad}: {e}");
        }
        assert_eq!(parse_syslog_url("tls://[::1]:7").unwrap().to_string(), "tls://[::1]:7");
    }
}
