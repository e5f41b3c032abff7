//! The gateway's side of the target: a russh client with the vaulted credential and the
//! target's host key pinned (or pinned on first use).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use keepwatch_core::Secret;
use keepwatch_store::{Algorithms, TargetRow, TargetSecret};
use russh::client;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};

/// Why the target could not be reached; the message is shown to the person.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("target {target} unreachable: {reason}")]
    Unreachable { target: String, reason: String },
    #[error("target {target} host key mismatch: expected {expected}, got {got}")]
    HostKeyMismatch { target: String, expected: String, got: String },
    #[error("target {target} refused the vaulted credential for {login}")]
    CredentialRefused { target: String, login: String },
    #[error("target {target} credential unusable: {reason}")]
    BadSecret { target: String, reason: String },
    #[error("target {target} refused: {reason}")]
    TargetChanged { target: String, reason: String },
}

/// `ssh-ed25519 AAAA…` for a key, without comment.
pub fn host_key_line(key: &PublicKey) -> String {
    let mut k = key.clone();
    k.set_comment("");
    k.to_openssh().unwrap_or_default().trim().to_owned()
}

/// The outcome of the host key check, kept for the caller to explain a refusal or pin a key.
#[derive(Debug, Clone, Default)]
pub(crate) struct SeenKey {
    pub line: Option<String>,
    pub mismatch: Option<String>,
}

pub(crate) struct UpstreamHandler {
    pinned: Option<PublicKey>,
    seen: Arc<Mutex<SeenKey>>,
    forwarded: tokio::sync::mpsc::Sender<Forwarded>,
    agents: tokio::sync::mpsc::Sender<russh::Channel<client::Msg>>,
}

/// A connection the target accepted on a port `ssh -R` asked it to listen on.
pub(crate) struct Forwarded {
    pub channel: russh::Channel<client::Msg>,
    pub connected: (String, u32),
    pub originator: (String, u32),
}

impl client::Handler for UpstreamHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = server_public_key else {
            return Ok(false);
        };
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.line = Some(host_key_line(key));
        match &self.pinned {
            Some(p) if p.key_data() == key.key_data() => Ok(true),
            Some(p) => {
                seen.mismatch = Some(p.fingerprint(HashAlg::Sha256).to_string());
                Ok(false)
            }
            // Trust on first use: the caller pins `seen.line` once the login succeeds.
            None => Ok(true),
        }
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: russh::Channel<client::Msg>,
        connected_address: &str,
        connected_port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        // Only a session whose grant allowed `ssh -R` ever asked the target to listen, and it
        // drains this queue; a full or closed queue refuses rather than buffers.
        match self.forwarded.try_reserve() {
            Ok(slot) => {
                reply.accept().await;
                slot.send(Forwarded {
                    channel,
                    connected: (connected_address.to_owned(), connected_port),
                    originator: (originator_address.to_owned(), originator_port),
                });
            }
            Err(_) => reply.reject(russh::ChannelOpenFailure::AdministrativelyProhibited).await,
        }
        Ok(())
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        channel: russh::Channel<client::Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        // The queue is drained only by a session whose grant allows `ssh -A` (and closed for
        // the others), so a target cannot reach the person's agent unasked.
        match self.agents.try_reserve() {
            Ok(slot) => {
                reply.accept().await;
                slot.send(channel);
            }
            Err(_) => reply.reject(russh::ChannelOpenFailure::AdministrativelyProhibited).await,
        }
        Ok(())
    }
}

pub(crate) struct Upstream {
    pub handle: client::Handle<UpstreamHandler>,
    /// Connections to ports the target listens on for `ssh -R`.
    pub forwarded: tokio::sync::mpsc::Receiver<Forwarded>,
    /// Connections to the agent socket the target offers for `ssh -A`.
    pub agents: tokio::sync::mpsc::Receiver<russh::Channel<client::Msg>>,
    /// Set when trust-on-first-use saw a key that should now be pinned.
    pub first_seen_key: Option<String>,
}

/// An algorithm name the gateway cannot speak.
#[derive(Debug, thiserror::Error)]
#[error("unknown {kind} algorithm {name:?} (known: {known})")]
pub struct UnknownAlgorithm {
    kind: &'static str,
    name: String,
    known: String,
}

fn names<N: Copy>(
    kind: &'static str,
    wanted: &[String],
    all: &[&N],
    parse: impl Fn(&str) -> Option<N>,
    show: impl Fn(&N) -> String,
) -> Result<Vec<N>, UnknownAlgorithm> {
    wanted
        .iter()
        .map(|w| {
            parse(w).ok_or_else(|| UnknownAlgorithm {
                kind,
                name: w.clone(),
                known: all.iter().map(|n| show(n)).collect::<Vec<_>>().join(", "),
            })
        })
        .collect()
}

/// The algorithms to offer a target: the gateway's modern defaults, with each list the
/// target names replacing the default one (for devices that only speak older algorithms).
///
/// # Errors
/// Names russh does not implement are refused, naming the ones it does.
pub(crate) fn preferred_for(a: &Algorithms) -> Result<russh::Preferred, UnknownAlgorithm> {
    use russh::{cipher, kex, mac};
    use std::borrow::Cow;
    let mut p = crate::preferred();
    if !a.kex.is_empty() {
        let mut k = names(
            "key exchange",
            &a.kex,
            kex::ALL_KEX_ALGORITHMS,
            |s| kex::Name::try_from(s).ok(),
            |n| n.as_ref().to_owned(),
        )?;
        // Keep the protocol extensions (ext-info, strict kex) that are not algorithms.
        k.extend([kex::EXTENSION_SUPPORT_AS_CLIENT, kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT]);
        p.kex = Cow::Owned(k);
    }
    if !a.ciphers.is_empty() {
        p.cipher = Cow::Owned(names(
            "cipher",
            &a.ciphers,
            cipher::ALL_CIPHERS,
            |s| cipher::Name::try_from(s).ok(),
            |n| n.as_ref().to_owned(),
        )?);
    }
    if !a.macs.is_empty() {
        p.mac = Cow::Owned(names(
            "MAC",
            &a.macs,
            mac::ALL_MAC_ALGORITHMS,
            |s| mac::Name::try_from(s).ok(),
            |n| n.as_ref().to_owned(),
        )?);
    }
    if !a.host_key.is_empty() {
        let keys = a
            .host_key
            .iter()
            .map(|h| {
                russh::keys::Algorithm::new(h).map_err(|_| UnknownAlgorithm {
                    kind: "host key",
                    name: h.clone(),
                    known: "ssh-ed25519, ecdsa-sha2-nistp256, rsa-sha2-512, rsa-sha2-256, ssh-rsa"
                        .into(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        p.key = Cow::Owned(keys);
    }
    Ok(p)
}

/// Checks that every algorithm a target names is one the gateway speaks.
///
/// # Errors
/// The first unknown name, with the known ones.
pub fn check_algorithms(a: &Algorithms) -> Result<(), UnknownAlgorithm> {
    preferred_for(a).map(|_| ())
}

fn client_config(preferred: russh::Preferred) -> client::Config {
    client::Config {
        window_size: 8 << 20,
        maximum_packet_size: 32768,
        preferred,
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        nodelay: true,
        ..Default::default()
    }
}

/// Connects and authenticates to `target` with its decrypted `secret`. The whole of it
/// (TCP, key exchange, authentication) must finish within `timeout`: a target that accepts
/// the connection and then hangs is as unreachable as one that does not answer.
pub(crate) async fn connect(
    target: &TargetRow,
    secret: Secret<Vec<u8>>,
    timeout: Duration,
) -> Result<Upstream, UpstreamError> {
    match tokio::time::timeout(timeout, connect_within(target, secret)).await {
        Ok(r) => r,
        Err(_) => Err(UpstreamError::Unreachable {
            target: target.name.clone(),
            reason: format!("no answer within {}s", timeout.as_secs()),
        }),
    }
}

async fn connect_within(
    target: &TargetRow,
    secret: Secret<Vec<u8>>,
) -> Result<Upstream, UpstreamError> {
    let name = target.name.clone();
    let unreachable = |reason: String| UpstreamError::Unreachable { target: name.clone(), reason };
    let pinned = match &target.host_key {
        Some(line) => {
            Some(PublicKey::from_openssh(line).map_err(|e| UpstreamError::BadSecret {
                target: name.clone(),
                reason: format!("pinned host key does not parse: {e}"),
            })?)
        }
        None if target.trust_on_first_use => None,
        None => {
            return Err(UpstreamError::BadSecret {
                target: name.clone(),
                reason: "no host key pinned and trust-on-first-use is off".into(),
            });
        }
    };
    let seen = Arc::new(Mutex::new(SeenKey::default()));
    let (forwarded_tx, forwarded) = tokio::sync::mpsc::channel(16);
    let (agents_tx, agents) = tokio::sync::mpsc::channel(16);
    let handler = UpstreamHandler {
        pinned: pinned.clone(),
        seen: seen.clone(),
        forwarded: forwarded_tx,
        agents: agents_tx,
    };
    let addr = (target.host.as_str(), target.port);
    let preferred = preferred_for(&target.algorithms)
        .map_err(|e| UpstreamError::BadSecret { target: name.clone(), reason: e.to_string() })?;
    let mut handle = match client::connect(Arc::new(client_config(preferred)), addr, handler).await
    {
        Ok(h) => h,
        Err(e) => {
            let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(expected) = seen.mismatch {
                let got = seen
                    .line
                    .and_then(|l| PublicKey::from_openssh(&l).ok())
                    .map(|k| k.fingerprint(HashAlg::Sha256).to_string())
                    .unwrap_or_default();
                return Err(UpstreamError::HostKeyMismatch { target: name, expected, got });
            }
            return Err(unreachable(describe(&e)));
        }
    };
    let login = target.login.clone();
    let auth = match &target.secret {
        TargetSecret::Password(_) => {
            let pw = String::from_utf8(secret.expose().clone()).map_err(|_| {
                UpstreamError::BadSecret {
                    target: name.clone(),
                    reason: "vaulted password is not UTF-8".into(),
                }
            })?;
            handle.authenticate_password(&login, pw).await
        }
        TargetSecret::PrivateKey(_) => {
            let text = String::from_utf8_lossy(secret.expose()).into_owned();
            let key =
                PrivateKey::from_openssh(text.trim()).map_err(|e| UpstreamError::BadSecret {
                    target: name.clone(),
                    reason: format!("vaulted key does not parse: {e}"),
                })?;
            let hash = handle.best_supported_rsa_hash().await.ok().flatten().flatten();
            handle
                .authenticate_publickey(&login, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
                .await
        }
    };
    match auth {
        Ok(r) if r.success() => {}
        Ok(_) => return Err(UpstreamError::CredentialRefused { target: name, login }),
        Err(e) => return Err(unreachable(describe(&e))),
    }
    let first_seen_key = if pinned.is_none() {
        seen.lock().unwrap_or_else(|e| e.into_inner()).line.clone()
    } else {
        None
    };
    Ok(Upstream { handle, forwarded, agents, first_seen_key })
}

/// A short reason for a connection error, such as `connection refused`.
fn describe(e: &russh::Error) -> String {
    match e {
        russh::Error::IO(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            std::io::ErrorKind::TimedOut => "connection timed out".into(),
            _ => io.to_string().to_lowercase(),
        },
        other => other.to_string().to_lowercase(),
    }
}
