//! Keepwatch behind a load balancer: the PROXY protocol header (HAProxy's, versions 1 and 2)
//! that a balancer sends before the client's bytes, so the address Keepwatch records and
//! limits by is the person's, not the balancer's.
//!
//! What it sees: the first bytes of a connection accepted from a trusted balancer. What it
//! decides: the client's address, or a refusal (no header, a malformed one, one too slow or
//! too long). It reads exactly the header and nothing after it, so the connection is handed
//! on with the client's first byte unread. Parsing is `ppp`'s; the reading, the bounds and
//! who is trusted are here. A connection from an address that is not a trusted balancer is
//! refused outright when the protocol is on: otherwise anyone could claim any address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line the specification allows, `\r\n` included.
const V1_MAX: usize = 107;
/// The longest v2 header read (the fixed part and up to this much address and TLV data).
const V2_MAX_BODY: usize = 1024;

/// Who may send a header, and how long they have to send it.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Balancers (addresses or CIDR ranges) whose connections must start with a header.
    pub trusted: Vec<Cidr>,
    /// How long a header may take.
    pub timeout: Duration,
}

/// An address range: `10.0.0.0/8`, `::1/128`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

/// Why a range did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address or a CIDR range (e.g. 10.0.0.0/8)")]
pub struct ParseCidrError(String);

impl std::str::FromStr for Cidr {
    type Err = ParseCidrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseCidrError(s.to_owned());
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b.trim().parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(err)?,
            None => max,
        };
        Ok(Cidr { addr, bits })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            // An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            (_, ip) => ip,
        };
        let (net, ip, width) = match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                (u128::from(n.to_bits()), u128::from(i.to_bits()), 32)
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => (n.to_bits(), i.to_bits(), 128),
            _ => return false,
        };
        let shift = width - u32::from(self.bits);
        shift >= width || (net >> shift) == (ip >> shift)
    }
}

impl ProxyConfig {
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(peer))
    }
}

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{peer} is not a trusted balancer, and the PROXY protocol is on")]
    Untrusted { peer: SocketAddr },
    #[error("no PROXY protocol header from {peer} within {secs} s")]
    Timeout { peer: SocketAddr, secs: u64 },
    #[error("malformed PROXY protocol header from {peer}: {reason}")]
    Malformed { peer: SocketAddr, reason: String },
    #[error("cannot read the PROXY protocol header from {peer}: {source}")]
    Io { peer: SocketAddr, source: std::io::Error },
}

/// Reads the header a trusted balancer at `peer` sent, and returns the client's address it
/// names (`peer` itself for a `LOCAL` header, such as a balancer's health check).
///
/// # Errors
/// [`ProxyError`]: an untrusted peer, a missing, slow, malformed or oversized header.
pub async fn read_header<R: AsyncRead + Unpin>(
    stream: &mut R,
    peer: SocketAddr,
    cfg: &ProxyConfig,
) -> Result<SocketAddr, ProxyError> {
    if !cfg.trusts(peer.ip()) {
        return Err(ProxyError::Untrusted { peer });
    }
    let secs = cfg.timeout.as_secs();
    match tokio::time::timeout(cfg.timeout, read_exact_header(stream, peer)).await {
        Ok(r) => r,
        Err(_) => Err(ProxyError::Timeout { peer, secs }),
    }
}

async fn read_exact_header<R: AsyncRead + Unpin>(
    stream: &mut R,
    peer: SocketAddr,
) -> Result<SocketAddr, ProxyError> {
    let io = |source| ProxyError::Io { peer, source };
    let bad = |reason: String| ProxyError::Malformed { peer, reason };
    // 16 bytes: the whole v2 fixed part, or the start of a v1 line (the shortest is
    // "PROXY UNKNOWN\r\n", 15 bytes, so read the first 15 and then one more if needed).
    let mut head = vec![0u8; 15];
    stream.read_exact(&mut head).await.map_err(io)?;
    if head.starts_with(b"PROXY ") {
        while !head.ends_with(b"\r\n") {
            if head.len() >= V1_MAX {
                return Err(bad(format!("a version 1 line longer than {V1_MAX} bytes")));
            }
            let mut b = [0u8; 1];
            stream.read_exact(&mut b).await.map_err(io)?;
            head.push(b[0]);
        }
    } else if head[..12] == V2_SIGNATURE {
        let mut rest = [0u8; 1];
        stream.read_exact(&mut rest).await.map_err(io)?;
        head.push(rest[0]);
        let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
        if len > V2_MAX_BODY {
            return Err(bad(format!("a version 2 body of {len} bytes (at most {V2_MAX_BODY})")));
        }
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await.map_err(io)?;
        head.extend_from_slice(&body);
    } else {
        return Err(bad("the connection does not start with a PROXY header".into()));
    }
    client_address(&head, peer).map_err(bad)
}

/// The client's address in a whole header (`peer` for `LOCAL` and `UNKNOWN`).
///
/// # Errors
/// The header does not parse, or names a protocol that is not TCP.
pub fn client_address(header: &[u8], peer: SocketAddr) -> Result<SocketAddr, String> {
    match ppp::HeaderResult::parse(header) {
        ppp::HeaderResult::V1(Ok(h)) => match h.addresses {
            ppp::v1::Addresses::Tcp4(a) => {
                Ok(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
            }
            ppp::v1::Addresses::Tcp6(a) => {
                Ok(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
            }
            ppp::v1::Addresses::Unknown => Ok(peer),
        },
        ppp::HeaderResult::V2(Ok(h)) => match (h.command, h.addresses) {
            (ppp::v2::Command::Local, _) => Ok(peer),
            (_, ppp::v2::Addresses::IPv4(a)) => {
                Ok(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
            }
            (_, ppp::v2::Addresses::IPv6(a)) => {
                Ok(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
            }
            (_, other) => Err(format!("a version 2 header for {other:?}, not TCP")),
        },
        ppp::HeaderResult::V1(Err(e)) => Err(format!("version 1: {e}")),
        ppp::HeaderResult::V2(Err(e)) => Err(format!("version 2: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ProxyConfig {
        ProxyConfig {
            trusted: vec!["127.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()],
            timeout: Duration::from_secs(2),
        }
    }

    fn balancer() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    async fn check(bytes: &[u8]) -> (Result<SocketAddr, String>, Vec<u8>) {
        let mut r = bytes;
        let got = read_header(&mut r, balancer(), &cfg()).await.map_err(|e| e.to_string());
        (got, r.to_vec())
    }

    #[tokio::test]
    async fn version_1_and_2_name_the_client_and_leave_its_bytes_unread() {
        let (got, rest) = check(b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 2222\r\nSSH-2.0-x\r\n").await;
        assert_eq!(got.unwrap(), "192.0.2.7:51234".parse().unwrap());
        assert_eq!(rest, b"SSH-2.0-x\r\n");
        let (got, _) = check(b"PROXY TCP6 2001:db8::7 2001:db8::1 51234 2222\r\n").await;
        assert_eq!(got.unwrap(), "[2001:db8::7]:51234".parse().unwrap());
        let (got, _) = check(b"PROXY UNKNOWN\r\n").await;
        assert_eq!(got.unwrap(), balancer());
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[
            0x21, 0x11, 0, 12, 192, 0, 2, 9, 10, 0, 0, 1, 0xc8, 0x1c, 0x08, 0xae,
        ]);
        v2.extend_from_slice(b"SSH-2.0-x");
        let (got, rest) = check(&v2).await;
        assert_eq!(got.unwrap(), "192.0.2.9:51228".parse().unwrap());
        assert_eq!(rest, b"SSH-2.0-x");
    }

    #[tokio::test]
    async fn missing_malformed_oversized_slow_or_untrusted_headers_are_refused() {
        for bad in [
            &b"SSH-2.0-OpenSSH_9.2p1\r\n"[..],
            b"PROXY TCP4 not-an-address 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 2222 and then a great deal more text that never ends with a line end at all ........\r\n",
        ] {
            assert!(check(bad).await.0.is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(check(&v2).await.0.unwrap_err().contains("at most"));
        let (mut slow, _keep) = tokio::io::duplex(64);
        let fast = ProxyConfig { timeout: Duration::from_millis(50), ..cfg() };
        let e = read_header(&mut slow, balancer(), &fast).await.unwrap_err();
        assert!(matches!(e, ProxyError::Timeout { .. }), "{e}");
        let stranger: SocketAddr = "192.0.2.50:1".parse().unwrap();
        let mut r = &b"PROXY UNKNOWN\r\n"[..];
        let e = read_header(&mut r, stranger, &cfg()).await.unwrap_err();
        assert!(matches!(e, ProxyError::Untrusted { .. }), "{e}");
    }

    #[test]
    fn ranges() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()), "v4-mapped");
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
    }
}
