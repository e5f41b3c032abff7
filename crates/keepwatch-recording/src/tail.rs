//! Reading a recording while it is still being written, a piece at a time.
//!
//! The indexer follows a live session's spool file: it reads whatever was appended since
//! last time and hands it to [`RecordingTail::push`], which returns the events of every
//! chunk that is now whole. A chunk cut by the end of the bytes read so far is kept until
//! the rest arrives, so memory is bounded by one chunk ([`crate::MAX_CHUNK_PAYLOAD`]).
//! The same walk checks apply as in [`crate::read_events`]: file header, seq order, hash
//! chain, payload decoding, session start first, seal last. Signatures are not checked.

use std::ops::ControlFlow;

use crate::ReadError;
use crate::chunk::{FILE_HEADER_LEN, FLAG_SIGNED, PayloadBuf, chain_seed, header, parse_chunk};
use crate::crypt::DataKey;
use crate::event::TimedEvent;
use crate::read::check_events;
use keepwatch_core::SessionId;

/// An incremental reader of one recording; see the module docs.
#[derive(Default)]
pub struct RecordingTail {
    /// Bytes read but not yet consumed: at most the file header or one partial chunk.
    pending: Vec<u8>,
    /// Bytes consumed (file header and whole chunks).
    consumed: u64,
    session: Option<(SessionId, [u8; 32])>,
    expected_seq: u64,
    sealed: bool,
    buf: PayloadBuf,
}

impl RecordingTail {
    /// A reader opening sealed chunks with `key` (with `None`, a sealed chunk is an error).
    pub fn new(key: Option<DataKey>) -> Self {
        RecordingTail { buf: PayloadBuf::with_key(key), ..Self::default() }
    }

    /// A reader for [`Self::push_heads`] alone: sealed chunks are checked as stored, not
    /// opened (and hand out no events).
    pub fn heads_only() -> Self {
        RecordingTail { buf: PayloadBuf::skipping(), ..Self::default() }
    }

    /// How many bytes of the file have been pushed so far: where the next read starts.
    pub fn read_offset(&self) -> u64 {
        self.consumed + self.pending.len() as u64
    }

    /// How many bytes of the file have been handed out as events: the file header and every
    /// whole chunk so far. A chunk cut off by the end of what was pushed starts here.
    pub fn consumed_offset(&self) -> u64 {
        self.consumed
    }

    /// Gives back the decompressor and buffers while the recording is quiet (a follower of
    /// many idle sessions should not hold a chunk-sized buffer for each).
    pub fn release_buffers(&mut self) {
        self.buf.release();
        self.pending.shrink_to_fit();
    }

    /// The seal was read: nothing more can follow.
    pub fn is_sealed(&self) -> bool {
        self.sealed
    }

    /// Appends the next bytes of the file and adds the events of every chunk they
    /// complete to `out`.
    ///
    /// # Errors
    /// The bytes are not a well-formed recording (then this reader is done with it).
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<TimedEvent>) -> Result<(), ReadError> {
        self.push_chunks(bytes, |_, events| out.extend_from_slice(events))
    }

    /// Like [`Self::push`], handing over the events chunk by chunk with the file offset
    /// where each chunk starts (a reader can later start there: [`events_from_chunk`]).
    ///
    /// # Errors
    /// The bytes are not a well-formed recording (then this reader is done with it).
    pub fn push_chunks(
        &mut self,
        bytes: &[u8],
        mut each: impl FnMut(u64, &[TimedEvent]),
    ) -> Result<(), ReadError> {
        self.push_walk(bytes, |offset, _, _, events| each(offset, events))
    }

    /// Like [`Self::push`], handing over each whole chunk's seq and chain hash instead of
    /// its events (what anchors name).
    ///
    /// # Errors
    /// The bytes are not a well-formed recording (then this reader is done with it).
    pub fn push_heads(
        &mut self,
        bytes: &[u8],
        mut each: impl FnMut(u64, [u8; 32]),
    ) -> Result<(), ReadError> {
        self.push_walk(bytes, |_, seq, hash, _| each(seq, hash))
    }

    fn push_walk(
        &mut self,
        bytes: &[u8],
        mut each: impl FnMut(u64, u64, [u8; 32], &[TimedEvent]),
    ) -> Result<(), ReadError> {
        if self.sealed && !bytes.is_empty() {
            return Err(ReadError::TrailingAfterSeal { offset: self.consumed as usize });
        }
        self.pending.extend_from_slice(bytes);
        let (session_id, mut prev_hash) = match self.session {
            Some(s) => s,
            None if self.pending.len() < FILE_HEADER_LEN => return Ok(()),
            None => {
                let h = header(&self.pending)?;
                self.pending.drain(..FILE_HEADER_LEN);
                self.consumed = FILE_HEADER_LEN as u64;
                *self.session.insert((h.session_id, chain_seed(&h.session_id)))
            }
        };
        let mut pos = 0;
        let mut events = Vec::new();
        while pos < self.pending.len() && !self.sealed {
            let chunk = match parse_chunk(&self.pending, pos, prev_hash) {
                Ok(c) => c,
                Err(ReadError::TruncatedChunkHeader { .. } | ReadError::TruncatedChunk { .. }) => {
                    break;
                }
                // Offsets in framing errors count from the first unconsumed byte.
                Err(e) => return Err(e),
            };
            let offset = self.consumed as usize + pos;
            if chunk.seq != self.expected_seq {
                return Err(ReadError::Missing { expected: self.expected_seq, found: chunk.seq });
            }
            if chunk.computed_hash() != chunk.hash {
                return Err(ReadError::ChainBroken { seq: chunk.seq, offset });
            }
            if chunk.is_seal() && chunk.flags & FLAG_SIGNED == 0 {
                return Err(ReadError::SealNotSigned { seq: chunk.seq });
            }
            if chunk.is_encrypted() && (chunk.seq == 0 || chunk.is_seal()) {
                return Err(ReadError::SealedMetadata { seq: chunk.seq });
            }
            events.clear();
            if chunk.decode_into(&mut self.buf, &session_id, &mut events)? {
                self.sealed = check_events(&session_id, &chunk, &events)?.is_some();
            }
            each(offset as u64, chunk.seq, chunk.hash, &events);
            prev_hash = chunk.hash;
            self.expected_seq += 1;
            pos += chunk.encoded_len();
        }
        self.pending.drain(..pos);
        self.consumed += pos as u64;
        self.session = Some((session_id, prev_hash));
        if self.sealed && !self.pending.is_empty() {
            return Err(ReadError::TrailingAfterSeal { offset: self.consumed as usize });
        }
        Ok(())
    }
}

/// The events of the whole chunks at the start of `bytes`, which must begin at a chunk (an
/// offset [`RecordingTail::push_chunks`] reported): for starting playback in the middle of a
/// long recording. It checks framing and decoding but not the hash chain (that needs every
/// chunk before; `verify` checks the whole). Stops quietly at a cut-off chunk; returns the
/// events and how many bytes of whole chunks they came from.
///
/// # Errors
/// A chunk that does not frame or decode (or is sealed and `key` does not open it).
pub fn events_from_chunk(
    bytes: &[u8],
    session_id: &SessionId,
    key: Option<&DataKey>,
) -> Result<(Vec<TimedEvent>, usize), ReadError> {
    let mut out = Vec::new();
    let used = for_each_chunk(bytes, session_id, key, |_, events| {
        out.extend_from_slice(events);
        ControlFlow::Continue(())
    })?;
    Ok((out, used))
}

/// Like [`events_from_chunk`], one chunk at a time: `each` gets the offset of the chunk in
/// `bytes` and its events, and may stop the walk. Returns how many bytes of whole chunks
/// were walked (including the one `each` stopped at).
///
/// # Errors
/// A chunk that does not frame or decode (or is sealed and `key` does not open it).
pub fn for_each_chunk(
    bytes: &[u8],
    session_id: &SessionId,
    key: Option<&DataKey>,
    mut each: impl FnMut(usize, &[TimedEvent]) -> ControlFlow<()>,
) -> Result<usize, ReadError> {
    let mut buf = PayloadBuf::with_key(key.cloned());
    let mut events = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let chunk = match parse_chunk(bytes, pos, [0; 32]) {
            Ok(c) => c,
            Err(ReadError::TruncatedChunkHeader { .. } | ReadError::TruncatedChunk { .. }) => break,
            Err(e) => return Err(e),
        };
        events.clear();
        chunk.decode_into(&mut buf, session_id, &mut events)?;
        let at = pos;
        pos += chunk.encoded_len();
        if each(at, &events).is_break() {
            break;
        }
    }
    Ok(pos)
}
