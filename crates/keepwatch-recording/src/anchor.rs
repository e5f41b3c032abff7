//! Anchors: the gateway's signed statement, written at least every minute to a sink it
//! cannot rewrite (an append-only file elsewhere, syslog), of how far history reached: the
//! ledger's head, the audit trail's head, and each live recording's latest signed
//! checkpoint. Deleting the newest sessions or audit events, or cutting a crashed session's
//! spool back past a checkpoint, leaves the store behind the newest anchor, which `verify
//! --anchor` reports.
//!
//! One anchor is one line of text, so it travels through syslog unchanged:
//!
//! ```text
//! KWANCHOR1 at=<unix µs> ledger=<entries>:<head hex|-> audit=<last id>:<head hex|->
//!   live=<session>:<seq>:<head hex>,... sig=<ed25519 hex>
//! ```
//!
//! (one line; `live=-` when no session is live). The signature covers
//! `"keepwatch-anchor-v1" ‖ at ‖ entries ‖ ledger head ‖ last id ‖ audit head ‖ count ‖
//! (session ‖ seq ‖ head)*`, integers little-endian, absent heads as 32 zero bytes.

use std::fmt::Write as _;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use keepwatch_core::SessionId;

const MAGIC: &str = "KWANCHOR1";
const SIGN_DOMAIN: &[u8] = b"keepwatch-anchor-v1";

/// A live recording's latest signed checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveHead {
    pub session: SessionId,
    /// The seq of the chunk the checkpoint signed.
    pub seq: u64,
    /// That chunk's chain hash.
    pub head: [u8; 32],
}

/// What an anchor states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub at_us: i64,
    /// Ledger entries so far, and the hash of the last (`None` while empty).
    pub ledger_entries: u64,
    pub ledger_head: Option<[u8; 32]>,
    /// The id of the newest audit event, and its chain hash (`None` while empty).
    pub audit_last_id: i64,
    pub audit_head: Option<[u8; 32]>,
    pub live: Vec<LiveHead>,
}

/// A line that is not a well-formed anchor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an anchor line: {reason}")]
pub struct ParseAnchorError {
    reason: String,
}

fn bad(reason: impl Into<String>) -> ParseAnchorError {
    ParseAnchorError { reason: reason.into() }
}

impl Anchor {
    fn message(&self) -> Vec<u8> {
        let mut m = SIGN_DOMAIN.to_vec();
        m.extend_from_slice(&self.at_us.to_le_bytes());
        m.extend_from_slice(&self.ledger_entries.to_le_bytes());
        m.extend_from_slice(&self.ledger_head.unwrap_or([0; 32]));
        m.extend_from_slice(&self.audit_last_id.to_le_bytes());
        m.extend_from_slice(&self.audit_head.unwrap_or([0; 32]));
        m.extend_from_slice(&(self.live.len() as u64).to_le_bytes());
        for l in &self.live {
            m.extend_from_slice(l.session.as_bytes());
            m.extend_from_slice(&l.seq.to_le_bytes());
            m.extend_from_slice(&l.head);
        }
        m
    }

    /// The signed line, without a line end.
    pub fn to_line(&self, key: &SigningKey) -> String {
        let sig = key.sign(&self.message()).to_bytes();
        let head = |h: &Option<[u8; 32]>| h.as_ref().map_or("-".to_owned(), |h| hex(h));
        let mut line = format!(
            "{MAGIC} at={} ledger={}:{} audit={}:{} live=",
            self.at_us,
            self.ledger_entries,
            head(&self.ledger_head),
            self.audit_last_id,
            head(&self.audit_head),
        );
        if self.live.is_empty() {
            line.push('-');
        }
        for (i, l) in self.live.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(line, "{sep}{}:{}:{}", l.session, l.seq, hex(&l.head));
        }
        let _ = write!(line, " sig={}", hex(&sig));
        line
    }

    /// Finds an anchor in `line` (anything before `KWANCHOR1`, such as a syslog header, is
    /// skipped) and checks its signature against `key`.
    ///
    /// # Errors
    /// The line holds no well-formed anchor; [`Parsed::signed`] says whether `key` signed it.
    pub fn parse(line: &str, key: &VerifyingKey) -> Result<Parsed, ParseAnchorError> {
        let start = line.find(MAGIC).ok_or_else(|| bad("no KWANCHOR1"))?;
        let mut fields = line[start + MAGIC.len()..].split_whitespace();
        let mut field = |name: &str| {
            fields
                .next()
                .and_then(|f| f.strip_prefix(name)?.strip_prefix('='))
                .ok_or_else(|| bad(format!("missing {name}=")))
        };
        let at_us = field("at")?.parse().map_err(|_| bad("at= is not a number"))?;
        let (ledger_entries, ledger_head) = pair(field("ledger")?, "ledger")?;
        let (audit_last_id, audit_head) = pair(field("audit")?, "audit")?;
        let live_text = field("live")?;
        let sig_text = field("sig")?;
        let mut live = Vec::new();
        if live_text != "-" {
            for item in live_text.split(',') {
                let mut parts = item.split(':');
                let (Some(s), Some(seq), Some(h), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err(bad(format!("live entry {item:?}")));
                };
                live.push(LiveHead {
                    session: s.parse().map_err(|_| bad(format!("session id {s:?}")))?,
                    seq: seq.parse().map_err(|_| bad(format!("seq {seq:?}")))?,
                    head: unhex32(h).ok_or_else(|| bad(format!("head {h:?}")))?,
                });
            }
        }
        let sig = unhex::<64>(sig_text).ok_or_else(|| bad("sig= is not 64 hex bytes"))?;
        let anchor = Anchor {
            at_us,
            ledger_entries,
            ledger_head,
            audit_last_id: i64::try_from(audit_last_id).map_err(|_| bad("audit id too large"))?,
            audit_head,
            live,
        };
        let signed = key.verify_strict(&anchor.message(), &Signature::from_bytes(&sig)).is_ok();
        Ok(Parsed { anchor, signed })
    }
}

/// An anchor read back, and whether the trusted key signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub anchor: Anchor,
    pub signed: bool,
}

fn pair(text: &str, what: &str) -> Result<(u64, Option<[u8; 32]>), ParseAnchorError> {
    let (n, h) = text.split_once(':').ok_or_else(|| bad(format!("{what}= needs N:HEAD")))?;
    let n = n.parse().map_err(|_| bad(format!("{what}= count {n:?}")))?;
    let h = if h == "-" {
        None
    } else {
        Some(unhex32(h).ok_or_else(|| bad(format!("{what}= head {h:?}")))?)
    };
    Ok((n, h))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    unhex::<32>(s)
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 || !s.is_ascii() {
        return None;
    }
    let mut out = [0; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Anchor {
        Anchor {
            at_us: 1_700_000_000_000_000,
            ledger_entries: 3,
            ledger_head: Some([1; 32]),
            audit_last_id: 42,
            audit_head: Some([2; 32]),
            live: vec![LiveHead {
                session: "0193f1c2-0000-7000-8000-000000000001".parse().unwrap(),
                seq: 7,
                head: [3; 32],
            }],
        }
    }

    #[test]
    fn round_trip_through_a_syslog_line_and_tampering() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let line = sample().to_line(&key);
        let syslog = format!("<134>Nov 30 12:00:00 gw keepwatch[1]: {line}");
        let parsed = Anchor::parse(&syslog, &key.verifying_key()).unwrap();
        assert!(parsed.signed);
        assert_eq!(parsed.anchor, sample());
        let other = SigningKey::from_bytes(&[6; 32]).verifying_key();
        assert!(!Anchor::parse(&line, &other).unwrap().signed, "another key");
        let edited = line.replace("ledger=3:", "ledger=2:");
        assert!(!Anchor::parse(&edited, &key.verifying_key()).unwrap().signed, "edited");
        let empty = Anchor { ledger_head: None, audit_head: None, live: vec![], ..sample() };
        let back = Anchor::parse(&empty.to_line(&key), &key.verifying_key()).unwrap();
        assert_eq!(back.anchor, empty);
        assert!(back.signed);
        for junk in ["", "KWANCHOR1", "KWANCHOR1 at=x", &line[..line.len() - 3]] {
            assert!(Anchor::parse(junk, &key.verifying_key()).is_err(), "{junk:?}");
        }
    }
}
