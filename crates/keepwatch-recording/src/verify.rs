//! Verifying a recording: the structural walk plus every checkpoint and seal signature.

use ed25519_dalek::VerifyingKey;
use keepwatch_core::SessionId;

use crate::ReadError;
use crate::chunk::Chunk;
use crate::event::{Seal, SessionStart};
use crate::read::{Visitor, walk};
use crate::writer::SealInfo;

/// A recording that passed [`verify`].
///
/// Chunks up to `last_checkpoint_seq` are vouched for by the key; chunks after it hold
/// the chain but are signed by nobody yet (the tail of an active session, or of one
/// whose gateway died). A sealed recording has `last_checkpoint_seq == seal_info.seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub start: SessionStart,
    /// `None` for an active session, or a sealed one whose tail was cut off: the
    /// caller compares with what the database says.
    pub seal: Option<Seal>,
    pub seal_info: Option<SealInfo>,
    /// The hash of the last chunk.
    pub chain_head: [u8; 32],
    /// How many chunks the recording holds.
    pub chunks: u64,
    /// The seq of the last signed chunk (checkpoint or seal).
    pub last_checkpoint_seq: Option<u64>,
}

/// Why a recording failed [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("chunk {seq} signature invalid")]
    SignatureInvalid { seq: u64 },
}

/// Checks a whole recording against the gateway's public key: everything
/// [`crate::read_events`] checks, plus that every signed chunk (checkpoint or seal) is
/// signed by `key` over its seq, chain hash and time. Needs no secret.
///
/// # Errors
/// The first failed check, naming the chunk seq and, where it helps, the byte offset.
pub fn verify(bytes: &[u8], key: &VerifyingKey) -> Result<Verified, VerifyError> {
    struct Signatures<'k> {
        key: &'k VerifyingKey,
        last_signed: Option<u64>,
    }
    impl Visitor for Signatures<'_> {
        type Error = VerifyError;
        fn chunk(&mut self, session_id: &SessionId, chunk: &Chunk<'_>) -> Result<(), VerifyError> {
            if chunk.signature.is_some() {
                if !chunk.signature_valid(session_id, self.key) {
                    return Err(VerifyError::SignatureInvalid { seq: chunk.seq });
                }
                self.last_signed = Some(chunk.seq);
            }
            Ok(())
        }
    }
    let mut v = Signatures { key, last_signed: None };
    let summary = walk(bytes, &mut v).1?;
    let (seal, seal_info) = match summary.seal {
        Some(s) => (
            Some(s.seal),
            Some(SealInfo {
                seq: s.seq,
                chain_head: s.hash,
                signature: s.signature,
                sealed_at_us: s.time_us,
            }),
        ),
        None => (None, None),
    };
    Ok(Verified {
        start: summary.start,
        seal,
        seal_info,
        chain_head: summary.chain_head,
        chunks: summary.chunks,
        last_checkpoint_seq: v.last_signed,
    })
}
