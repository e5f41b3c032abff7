//! Sealing a recording whose gateway died mid-session (sans-IO): what to cut, what to keep,
//! and the seal that says which part nobody had vouched for.
//!
//! A foothold on the gateway host could have edited the spool while the gateway was down:
//! cut it back, extend it, recompute the chain. Recovery therefore checks every signature
//! (a chunk signed by another key, or forged, refuses recovery outright: the caller leaves
//! the recording unsealed so `verify` keeps reporting it), keeps the whole chunks after the
//! last signed checkpoint but names them in the seal ([`UnsignedTail`]), and reports the
//! bytes it cut, so the caller can audit the cut. A spool cut back past a checkpoint cannot
//! be seen here; the anchors (the gateway's signed heads, written off the data directory)
//! catch that.

use ed25519_dalek::SigningKey;
use keepwatch_core::SessionStatus;

use crate::chunk::{Chunk, PayloadBuf};
use crate::crypt::DataKey;
use crate::event::{Seal, TimedEvent, UnsignedTail};
use crate::read::{Visitor, walk};
use crate::{ReadError, RecordingWriter, SealInfo};

/// What recovery did to one recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The recording as it must now be stored: the kept prefix and the seal.
    pub bytes: Vec<u8>,
    /// What the seal committed to.
    pub seal: SealInfo,
    /// Bytes dropped from the end (a torn write, or bytes that do not chain).
    pub cut_bytes: u64,
    /// Whole chunks kept after the last signature, if any.
    pub unsigned_tail: Option<UnsignedTail>,
}

/// Why a recording cannot be sealed by recovery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoverError {
    /// Not even chunk 0 (the session's signed identity) is whole: nothing was recorded.
    #[error("no whole first chunk: nothing was recorded")]
    Empty,
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A signed chunk does not verify under the gateway's key: the spool was forged or
    /// written under another key. Sealing it would launder the forgery.
    #[error("chunk {seq} is signed, but not by this gateway's key (forged or re-signed)")]
    Forged { seq: u64 },
}

/// Seals the recording `bytes` (a spool left unsealed) as `status` with `reason`, signed by
/// `key`, at wall-clock `now_us`. Sealed chunks are opened with `data_key` (so a chunk
/// changed under a recomputed chain is cut, and the unsigned tail's events are counted);
/// without it they are kept as stored and count no events.
///
/// # Errors
/// [`RecoverError`]: nothing whole to seal, already sealed, or a forged signature.
pub fn recover(
    bytes: &[u8],
    key: &SigningKey,
    status: SessionStatus,
    reason: Option<String>,
    now_us: i64,
    data_key: Option<&DataKey>,
) -> Result<Recovery, RecoverError> {
    struct Scan {
        key: ed25519_dalek::VerifyingKey,
        /// End offset of the last signed chunk, and its seq.
        last_signed: Option<(u64, usize)>,
        /// Per chunk: its end offset and event count, in order.
        chunks: Vec<(usize, u64)>,
        pending_end: usize,
    }
    impl Visitor for Scan {
        type Error = RecoverError;
        fn chunk(
            &mut self,
            session_id: &keepwatch_core::SessionId,
            chunk: &Chunk<'_>,
        ) -> Result<(), RecoverError> {
            let end = chunk.offset + chunk.encoded_len();
            if chunk.signature.is_some() {
                if !chunk.signature_valid(session_id, &self.key) {
                    return Err(RecoverError::Forged { seq: chunk.seq });
                }
                self.last_signed = Some((chunk.seq, end));
            }
            self.pending_end = end;
            Ok(())
        }
        fn events(&mut self, events: &mut Vec<TimedEvent>) {
            self.chunks.push((self.pending_end, events.len() as u64));
        }
    }
    let mut scan =
        Scan { key: key.verifying_key(), last_signed: None, chunks: Vec::new(), pending_end: 0 };
    let buf = data_key.map_or_else(PayloadBuf::skipping, |k| PayloadBuf::with_key(Some(k.clone())));
    let (keep, result) = walk(bytes, buf, &mut scan);
    match result {
        Ok(_) => {}
        // A broken or torn chunk ends the prefix; recovery keeps what came before it.
        Err(RecoverError::Read(_)) if keep > 0 => {}
        Err(RecoverError::Read(_)) => return Err(RecoverError::Empty),
        Err(e) => return Err(e),
    }
    let prefix = &bytes[..keep];
    let writer = RecordingWriter::resume(prefix, key.clone(), data_key.cloned())?;
    let signed_end = scan.last_signed.map_or(0, |(_, end)| end);
    let unsigned_tail = (keep > signed_end).then(|| UnsignedTail {
        after_seq: scan.last_signed.map(|(seq, _)| seq),
        bytes: (keep - signed_end) as u64,
        events: scan.chunks.iter().filter(|(end, _)| *end > signed_end).map(|(_, n)| n).sum(),
    });
    let at_us = writer.last_at_us();
    let seal = Seal { status, reason, ended_at_us: now_us, unsigned_tail };
    let (tail, info) = writer.seal(at_us, seal, now_us);
    let mut out = prefix.to_vec();
    out.extend_from_slice(&tail);
    Ok(Recovery { bytes: out, seal: info, cut_bytes: (bytes.len() - keep) as u64, unsigned_tail })
}
