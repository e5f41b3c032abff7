//! Connecting a russh client to an endpoint: direct TCP, or through a jump host's
//! `direct-tcpip` channel as OpenSSH's ProxyJump does. Host keys are not checked: every
//! endpoint is a loopback server the benchmark started itself.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};

/// `USER@HOST:PORT`; the user may itself hold an `@` (`alice@web01` on the gateway).
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    pub user: String,
    pub host: String,
    pub port: u16,
    /// Reach this endpoint through a `direct-tcpip` channel of the jump host.
    pub jump: Option<Box<Endpoint>>,
}

impl Endpoint {
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let (user, hostport) =
            s.rsplit_once('@').ok_or_else(|| format!("{s:?}: expected USER@HOST:PORT"))?;
        let (host, port) =
            hostport.rsplit_once(':').ok_or_else(|| format!("{s:?}: expected USER@HOST:PORT"))?;
        let port = port.parse().map_err(|_| format!("{s:?}: port {port:?} is not a number"))?;
        Ok(Endpoint { user: user.to_owned(), host: host.to_owned(), port, jump: None })
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}:{}", self.user, self.host, self.port)?;
        if let Some(j) = &self.jump {
            write!(f, " via {j}")?;
        }
        Ok(())
    }
}

pub(crate) struct AnyHostKey;

impl client::Handler for AnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// A logged-in connection; holds the jump connection (if any) alive with it.
pub(crate) struct Connected {
    pub handle: client::Handle<AnyHostKey>,
    _jump: Option<client::Handle<AnyHostKey>>,
}

fn config() -> Arc<client::Config> {
    Arc::new(client::Config {
        inactivity_timeout: None,
        // Keystrokes must leave at once, as OpenSSH's client does for interactive sessions.
        nodelay: true,
        ..Default::default()
    })
}

async fn login(
    handle: &mut client::Handle<AnyHostKey>,
    ep: &Endpoint,
    key: &Arc<PrivateKey>,
) -> anyhow::Result<()> {
    let hash = handle.best_supported_rsa_hash().await.ok().flatten().flatten();
    let auth = handle
        .authenticate_publickey(&ep.user, PrivateKeyWithHashAlg::new(key.clone(), hash))
        .await
        .with_context(|| format!("authenticating to {ep}"))?;
    if !auth.success() {
        bail!("{ep} refused the key for {}", ep.user);
    }
    Ok(())
}

/// Connects and logs in to `ep` with `key`, within `timeout`.
pub(crate) async fn connect(
    ep: &Endpoint,
    key: &Arc<PrivateKey>,
    timeout: Duration,
) -> anyhow::Result<Connected> {
    tokio::time::timeout(timeout, connect_inner(ep, key))
        .await
        .with_context(|| format!("connecting to {ep}: no session within {}s", timeout.as_secs()))?
}

/// Like [`connect`] (no jump host), also returning the local address of the connection: the
/// client address the server records.
pub(crate) async fn connect_direct(
    ep: &Endpoint,
    key: &Arc<PrivateKey>,
    timeout: Duration,
) -> anyhow::Result<(Connected, std::net::SocketAddr)> {
    let inner = async {
        let tcp = tokio::net::TcpStream::connect((ep.host.as_str(), ep.port))
            .await
            .with_context(|| format!("connecting to {ep}"))?;
        let local = tcp.local_addr().context("the connection's local address")?;
        let _ = tcp.set_nodelay(true);
        let mut handle = client::connect_stream(config(), tcp, AnyHostKey)
            .await
            .with_context(|| format!("connecting to {ep}"))?;
        login(&mut handle, ep, key).await?;
        Ok((Connected { handle, _jump: None }, local))
    };
    tokio::time::timeout(timeout, inner)
        .await
        .with_context(|| format!("connecting to {ep}: no session within {}s", timeout.as_secs()))?
}

/// Like [`connect`], from the local address `source` (a loopback alias such as
/// `127.0.0.200` needs no setup), and without a jump host.
pub(crate) async fn connect_from(
    ep: &Endpoint,
    key: &Arc<PrivateKey>,
    timeout: Duration,
    source: std::net::IpAddr,
) -> anyhow::Result<Connected> {
    let inner = async {
        let tcp = tcp_from(source, &ep.host, ep.port).await?;
        let mut handle = client::connect_stream(config(), tcp, AnyHostKey)
            .await
            .with_context(|| format!("connecting to {ep} from {source}"))?;
        login(&mut handle, ep, key).await?;
        Ok(Connected { handle, _jump: None })
    };
    tokio::time::timeout(timeout, inner).await.with_context(|| {
        format!("connecting to {ep} from {source}: no login within {}s", timeout.as_secs())
    })?
}

/// Logs in to `ep` from `source` with a password, within `timeout`, and leaves again.
///
/// # Errors
/// Connecting failed, or the password was refused (the error says so).
pub(crate) async fn password_login_from(
    ep: &Endpoint,
    password: &str,
    timeout: Duration,
    source: std::net::IpAddr,
) -> anyhow::Result<()> {
    let inner = async {
        let tcp = tcp_from(source, &ep.host, ep.port).await?;
        let mut handle = client::connect_stream(config(), tcp, AnyHostKey)
            .await
            .with_context(|| format!("connecting to {ep} from {source}"))?;
        let auth = handle
            .authenticate_password(&ep.user, password)
            .await
            .with_context(|| format!("authenticating to {ep}"))?;
        let _ = handle.disconnect(russh::Disconnect::ByApplication, "", "").await;
        if !auth.success() {
            bail!("{ep} refused the password of {}", ep.user);
        }
        Ok(())
    };
    tokio::time::timeout(timeout, inner).await.with_context(|| {
        format!("password login to {ep} from {source}: no answer within {}s", timeout.as_secs())
    })?
}

/// A TCP connection to `host:port` from the local address `source`.
pub(crate) async fn tcp_from(
    source: std::net::IpAddr,
    host: &str,
    port: u16,
) -> anyhow::Result<tokio::net::TcpStream> {
    let addr = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("cannot resolve {host}"))?
        .find(|a| a.is_ipv4() == source.is_ipv4())
        .with_context(|| format!("{host} has no address of the kind of {source}"))?;
    let socket = if source.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .context("cannot make a socket")?;
    socket
        .bind(std::net::SocketAddr::new(source, 0))
        .with_context(|| format!("cannot bind to {source}"))?;
    let tcp = socket
        .connect(addr)
        .await
        .with_context(|| format!("connecting to {addr} from {source}"))?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// The client settings every drill connection uses.
pub(crate) fn client_config() -> Arc<client::Config> {
    config()
}

async fn connect_inner(ep: &Endpoint, key: &Arc<PrivateKey>) -> anyhow::Result<Connected> {
    match &ep.jump {
        None => {
            let mut handle = client::connect(config(), (ep.host.as_str(), ep.port), AnyHostKey)
                .await
                .with_context(|| format!("connecting to {ep}"))?;
            login(&mut handle, ep, key).await?;
            Ok(Connected { handle, _jump: None })
        }
        Some(jump) => {
            let mut jh = client::connect(config(), (jump.host.as_str(), jump.port), AnyHostKey)
                .await
                .with_context(|| format!("connecting to jump host {jump}"))?;
            login(&mut jh, jump, key).await?;
            let tunnel = jh
                .channel_open_direct_tcpip(ep.host.clone(), u32::from(ep.port), "127.0.0.1", 0)
                .await
                .with_context(|| {
                    format!("opening a tunnel from {jump} to {}:{}", ep.host, ep.port)
                })?;
            let mut handle = client::connect_stream(config(), tunnel.into_stream(), AnyHostKey)
                .await
                .with_context(|| format!("connecting to {ep}"))?;
            login(&mut handle, ep, key).await?;
            Ok(Connected { handle, _jump: Some(jh) })
        }
    }
}
