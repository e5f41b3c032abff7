//! Verifying a recording: the structural walk plus every checkpoint and seal signature, over
//! the whole file at once or streamed a piece at a time.

use ed25519_dalek::VerifyingKey;
use keepwatch_core::SessionId;

use crate::ReadError;
use crate::chunk::{
    CHUNK_HEADER_LEN, Chunk, FILE_HEADER_LEN, FileHeader, PayloadBuf, chain_seed, encoded_len,
    header, parse_chunk,
};
use crate::crypt::DataKey;
use crate::event::{Seal, SessionStart};
use crate::read::{Checker, Visitor};
use crate::writer::SealInfo;

/// A recording that passed [`verify`].
///
/// Chunks up to `last_checkpoint_seq` are vouched for by the key; chunks after it hold
/// the chain but are signed by nobody yet (the tail of an active session, or of one
/// whose gateway died). A sealed recording has `last_checkpoint_seq == seal_info.seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub start: SessionStart,
    /// The reason the person gave at connect, signed with the start (version 5).
    pub reason: Option<String>,
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
    /// An archived recording's segments do not match its signed manifest.
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
}

/// Checks a whole recording against the gateway's public key: everything
/// [`crate::read_events`] checks, plus that every signed chunk (checkpoint or seal) is
/// signed by `key` over its seq, chain hash and time. Needs no secret: chunks sealed under a
/// data key are checked as stored (the chain and signatures cover the ciphertext), not
/// opened. The same as feeding all of `bytes` to one [`StreamVerifier`].
///
/// # Errors
/// The first failed check, naming the chunk seq and, where it helps, the byte offset.
pub fn verify(bytes: &[u8], key: &VerifyingKey) -> Result<Verified, VerifyError> {
    let mut v = StreamVerifier::new(*key);
    v.push(bytes)?;
    v.finish()
}

pub(crate) struct Signatures {
    pub(crate) key: VerifyingKey,
    pub(crate) last_signed: Option<u64>,
}

impl Visitor for Signatures {
    type Error = VerifyError;
    fn chunk(&mut self, session_id: &SessionId, chunk: &Chunk<'_>) -> Result<(), VerifyError> {
        if chunk.signature.is_some() {
            if !chunk.signature_valid(session_id, &self.key) {
                return Err(VerifyError::SignatureInvalid { seq: chunk.seq });
            }
            self.last_signed = Some(chunk.seq);
        }
        Ok(())
    }
}

/// [`verify`] a piece at a time, for recordings too big to hold: push the file's bytes in
/// order, in pieces of any size, then [`StreamVerifier::finish`]. It holds at most one chunk
/// ([`crate::MAX_CHUNK_PAYLOAD`] and its framing) besides the piece being pushed, and gives
/// the same answer as [`verify`] over the whole file (the same framing, the same
/// [`Checker`], the same end-of-input rules).
pub struct StreamVerifier {
    signatures: Signatures,
    checker: Checker,
    header: Option<FileHeader>,
    prev_hash: [u8; 32],
    /// The file header, or a chunk cut off by the end of the last piece; starts at
    /// `consumed`.
    pub(crate) pending: Vec<u8>,
    /// Bytes checked: the file header and whole chunks.
    consumed: usize,
    sealed: bool,
    failed: Option<VerifyError>,
}

impl StreamVerifier {
    /// A verifier that checks sealed chunks as stored, without opening them.
    pub fn new(key: VerifyingKey) -> Self {
        Self::with_buf(key, PayloadBuf::skipping())
    }

    /// A verifier that also opens every sealed chunk with `data_key` and checks its events.
    pub fn with_data_key(key: VerifyingKey, data_key: DataKey) -> Self {
        Self::with_buf(key, PayloadBuf::with_key(Some(data_key)))
    }

    fn with_buf(key: VerifyingKey, buf: PayloadBuf) -> Self {
        StreamVerifier {
            signatures: Signatures { key, last_signed: None },
            checker: Checker::new(buf),
            header: None,
            prev_hash: [0; 32],
            pending: Vec::new(),
            consumed: 0,
            sealed: false,
            failed: None,
        }
    }

    /// Bytes pushed so far: where the next piece starts in the file.
    pub fn offset(&self) -> u64 {
        (self.consumed + self.pending.len()) as u64
    }

    /// The seal was read: nothing may follow.
    pub fn is_sealed(&self) -> bool {
        self.sealed
    }

    /// Checks the next `bytes` of the file, as far as they complete chunks.
    ///
    /// # Errors
    /// The first failed check (every later call gives it again).
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), VerifyError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.push_inner(bytes);
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    fn push_inner(&mut self, mut input: &[u8]) -> Result<(), VerifyError> {
        if self.sealed && !input.is_empty() {
            return Err(ReadError::TrailingAfterSeal { offset: self.consumed }.into());
        }
        let session_id = match self.header {
            Some(h) => h.session_id,
            None => {
                let take = (FILE_HEADER_LEN - self.pending.len()).min(input.len());
                self.pending.extend_from_slice(&input[..take]);
                input = &input[take..];
                if self.pending.len() < FILE_HEADER_LEN {
                    return Ok(());
                }
                let h = header(&self.pending)?;
                self.header = Some(h);
                self.prev_hash = chain_seed(&h.session_id);
                self.pending.clear();
                self.consumed = FILE_HEADER_LEN;
                h.session_id
            }
        };
        // A chunk the last piece cut off: complete it from this one.
        while !self.pending.is_empty() {
            let need = match parse_chunk(&self.pending, 0, self.prev_hash) {
                Ok(_) => 0,
                Err(ReadError::TruncatedChunkHeader { .. }) => {
                    CHUNK_HEADER_LEN - self.pending.len()
                }
                Err(ReadError::TruncatedChunk { .. }) => {
                    encoded_len(&self.pending) - self.pending.len()
                }
                Err(e) => return Err(at(e, self.consumed).into()),
            };
            if need == 0 {
                let pending = std::mem::take(&mut self.pending);
                self.check_chunk(&session_id, &pending, 0)?;
                if self.sealed && !input.is_empty() {
                    return Err(ReadError::TrailingAfterSeal { offset: self.consumed }.into());
                }
                break;
            }
            if input.is_empty() {
                return Ok(());
            }
            let take = need.min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
        }
        // Whole chunks straight from the piece; the cut-off end waits for the next one.
        let mut pos = 0;
        while pos < input.len() {
            if self.sealed {
                return Err(ReadError::TrailingAfterSeal { offset: self.consumed }.into());
            }
            match parse_chunk(input, pos, self.prev_hash) {
                Ok(_) => pos += self.check_chunk(&session_id, input, pos)?,
                Err(ReadError::TruncatedChunkHeader { .. } | ReadError::TruncatedChunk { .. }) => {
                    break;
                }
                Err(e) => return Err(at(e, self.consumed).into()),
            }
        }
        self.pending.extend_from_slice(&input[pos..]);
        Ok(())
    }

    /// Checks the whole chunk at `pos` of `bytes`; returns its length.
    fn check_chunk(
        &mut self,
        session_id: &SessionId,
        bytes: &[u8],
        pos: usize,
    ) -> Result<usize, VerifyError> {
        let mut chunk =
            parse_chunk(bytes, pos, self.prev_hash).map_err(|e| at(e, self.consumed))?;
        chunk.offset = self.consumed;
        self.sealed = self.checker.chunk(session_id, &chunk, &mut self.signatures)?;
        self.prev_hash = chunk.hash;
        let len = chunk.encoded_len();
        self.consumed += len;
        Ok(len)
    }

    /// The end of the file: the verdict on all of it.
    ///
    /// # Errors
    /// The first failed check, as [`verify`] gives it.
    pub fn finish(self) -> Result<Verified, VerifyError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let Some(h) = self.header else {
            return Err(header(&self.pending).err().unwrap_or(ReadError::Empty).into());
        };
        if !self.pending.is_empty() {
            // A chunk cut off by the end of the file.
            let e = match parse_chunk(&self.pending, 0, self.prev_hash) {
                Err(e) => at(e, self.consumed),
                Ok(c) => ReadError::TruncatedChunk { seq: c.seq, offset: self.consumed },
            };
            return Err(e.into());
        }
        let summary = self.checker.finish(Some(&h))?;
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
            reason: summary.reason,
            seal,
            seal_info,
            chain_head: summary.chain_head,
            chunks: summary.chunks,
            last_checkpoint_seq: self.signatures.last_signed,
        })
    }
}

/// A framing error found at `pos` of a piece, with the file offset of that place instead.
fn at(e: ReadError, offset: usize) -> ReadError {
    match e {
        ReadError::BadChunkMagic { .. } => ReadError::BadChunkMagic { offset },
        ReadError::TruncatedChunkHeader { .. } => ReadError::TruncatedChunkHeader { offset },
        ReadError::TruncatedChunk { seq, .. } => ReadError::TruncatedChunk { seq, offset },
        ReadError::UnknownFlags { seq, flags, .. } => {
            ReadError::UnknownFlags { seq, offset, flags }
        }
        ReadError::PayloadTooLarge { seq, len, .. } => {
            ReadError::PayloadTooLarge { seq, offset, len }
        }
        ReadError::LengthMismatch { seq, stored, uncompressed, .. } => {
            ReadError::LengthMismatch { seq, offset, stored, uncompressed }
        }
        other => other,
    }
}
