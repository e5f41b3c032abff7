//! Walking a recording chunk by chunk with every check but signatures: seq order, the
//! hash chain, payload decoding and where the session start and seal may stand.
//!
//! [`read_events`], [`valid_prefix_len`], `verify` and `RecordingWriter::resume` are
//! all this one walk with a different visitor, so they cannot disagree about what a
//! well-formed recording is.

use keepwatch_core::SessionId;

use crate::ReadError;
use crate::chunk::{Chunk, FLAG_SIGNED, FileHeader, PayloadBuf, chunks};
use crate::crypt::DataKey;
use crate::event::{Event, Seal, SessionStart, TimedEvent};

/// What a walk learned about a well-formed recording (or prefix).
pub(crate) struct Summary {
    pub session_id: SessionId,
    pub start: SessionStart,
    /// The reason the person gave (the `Context` right after the start), if any.
    pub reason: Option<String>,
    pub chunks: u64,
    pub chain_head: [u8; 32],
    pub last_at_us: u64,
    pub seal: Option<SealedAt>,
}

pub(crate) struct SealedAt {
    pub seal: Seal,
    pub seq: u64,
    pub hash: [u8; 32],
    pub signature: [u8; 64],
    pub time_us: i64,
}

/// Hooks into a walk. `chunk` runs once the chunk's seq and chain hold, before its
/// payload is decoded (so a forged chunk reports its signature, not its payload);
/// `events` runs once the payload decoded and passed the structural checks.
pub(crate) trait Visitor {
    type Error: From<ReadError>;
    fn chunk(&mut self, _session_id: &SessionId, _chunk: &Chunk<'_>) -> Result<(), Self::Error> {
        Ok(())
    }
    fn events(&mut self, _events: &mut Vec<TimedEvent>) {}
}

/// A visitor that only wants the walk's own checks.
pub(crate) struct Structure;

impl Visitor for Structure {
    type Error = ReadError;
}

/// Walks `bytes`, opening sealed chunks as `buf` says; returns the length of the longest
/// prefix that passed every check, and the summary or the first error.
pub(crate) fn walk<V: Visitor>(
    bytes: &[u8],
    buf: PayloadBuf,
    visitor: &mut V,
) -> (usize, Result<Summary, V::Error>) {
    let mut valid_len = 0;
    let r = walk_inner(bytes, buf, visitor, &mut valid_len);
    (valid_len, r)
}

fn walk_inner<V: Visitor>(
    bytes: &[u8],
    buf: PayloadBuf,
    visitor: &mut V,
    valid_len: &mut usize,
) -> Result<Summary, V::Error> {
    let mut iter = chunks(bytes);
    let mut checker = Checker::new(buf);
    while let Some(chunk) = iter.next() {
        let chunk = chunk?;
        // A header was parsed, or `next` would have returned its error.
        let Some(header) = iter.file_header() else {
            break;
        };
        let sealed = checker.chunk(&header.session_id, &chunk, visitor)?;
        *valid_len = iter.offset();
        if sealed {
            // Whatever follows the seal, even a torn chunk header, was not written by
            // the writer that sealed.
            if iter.offset() != bytes.len() {
                return Err(ReadError::TrailingAfterSeal { offset: iter.offset() }.into());
            }
            break;
        }
    }
    checker.finish(iter.file_header().as_ref()).map_err(Into::into)
}

/// The checks of one walk that span chunks: seq order, the chain, where the session start
/// and the seal stand, and the summary so far. The whole-slice [`walk`] and the streaming
/// [`crate::StreamVerifier`] both feed it chunk by chunk, so they check the same things.
pub(crate) struct Checker {
    buf: PayloadBuf,
    events: Vec<TimedEvent>,
    summary: Option<Summary>,
    expected_seq: u64,
}

impl Checker {
    /// A checker that opens sealed chunks as `buf` says.
    pub(crate) fn new(buf: PayloadBuf) -> Self {
        Checker { buf, events: Vec::new(), summary: None, expected_seq: 0 }
    }

    /// Checks `chunk` (already framed, chained onto the chunk before it) and hands it to
    /// `visitor`; true when it holds the seal.
    pub(crate) fn chunk<V: Visitor>(
        &mut self,
        session_id: &SessionId,
        chunk: &Chunk<'_>,
        visitor: &mut V,
    ) -> Result<bool, V::Error> {
        if chunk.seq != self.expected_seq {
            return Err(ReadError::Missing { expected: self.expected_seq, found: chunk.seq }.into());
        }
        if chunk.computed_hash() != chunk.hash {
            return Err(ReadError::ChainBroken { seq: chunk.seq, offset: chunk.offset }.into());
        }
        if chunk.is_seal() && chunk.flags & FLAG_SIGNED == 0 {
            return Err(ReadError::SealNotSigned { seq: chunk.seq }.into());
        }
        if chunk.is_encrypted() && (chunk.seq == 0 || chunk.is_seal()) {
            return Err(ReadError::SealedMetadata { seq: chunk.seq }.into());
        }
        visitor.chunk(session_id, chunk)?;

        let events = &mut self.events;
        events.clear();
        // A sealed chunk not opened (no key wanted) adds no events: its place in the chain
        // and its signature are all that is checked.
        let decoded = chunk.decode_into(&mut self.buf, session_id, events)?;
        let seal = if decoded { check_events(session_id, chunk, events)? } else { None };
        let s = match &mut self.summary {
            Some(s) => s,
            None => {
                // check_events made sure chunk 0 starts with a matching session start.
                let Some(TimedEvent { event: Event::SessionStart(start), .. }) = events.first()
                else {
                    return Err(ReadError::NoSessionStart.into());
                };
                let reason = match events.get(1).map(|e| &e.event) {
                    Some(Event::Context { reason }) => Some(reason.clone()),
                    _ => None,
                };
                self.summary.insert(Summary {
                    session_id: *session_id,
                    start: start.clone(),
                    reason,
                    chunks: 0,
                    chain_head: [0; 32],
                    last_at_us: 0,
                    seal: None,
                })
            }
        };
        s.chunks += 1;
        s.chain_head = chunk.hash;
        if let Some(last) = events.last() {
            s.last_at_us = last.at_us;
        }
        if let (Some(seal), Some(signature)) = (seal, chunk.signature) {
            s.seal = Some(SealedAt {
                seal,
                seq: chunk.seq,
                hash: chunk.hash,
                signature,
                time_us: chunk.time_us,
            });
        }
        let sealed = s.seal.is_some();
        visitor.events(events);
        self.expected_seq += 1;
        Ok(sealed)
    }

    /// The summary once the input has ended, `header` being the file header if one was read.
    pub(crate) fn finish(self, header: Option<&FileHeader>) -> Result<Summary, ReadError> {
        match (self.summary, header) {
            (Some(s), _) => Ok(s),
            (None, Some(h)) => Err(ReadError::NoChunks { session_id: h.session_id }),
            // Unreachable: without a header the iterator yields its error first.
            (None, None) => Err(ReadError::BadMagic),
        }
    }
}

/// Where the session start and the seal may stand; returns the seal if this chunk ends
/// with one.
pub(crate) fn check_events(
    session_id: &SessionId,
    chunk: &Chunk<'_>,
    events: &[TimedEvent],
) -> Result<Option<Seal>, ReadError> {
    let seq = chunk.seq;
    if seq == 0 {
        match events.first().map(|e| &e.event) {
            Some(Event::SessionStart(start)) if start.session_id != *session_id => {
                return Err(ReadError::SessionMismatch {
                    header: *session_id,
                    event: start.session_id,
                });
            }
            Some(Event::SessionStart(_)) => {}
            _ => return Err(ReadError::NoSessionStart),
        }
    }
    let last = events.len().wrapping_sub(1);
    let mut seal = None;
    for (i, ev) in events.iter().enumerate() {
        match &ev.event {
            Event::SessionStart(_) if seq != 0 || i != 0 => {
                return Err(ReadError::SessionStartMisplaced { seq });
            }
            // The reason is part of the identity: right after the start, or nowhere.
            Event::Context { .. } if seq != 0 || i != 1 => {
                return Err(ReadError::ContextMisplaced { seq });
            }
            Event::Seal(_) if i != last => return Err(ReadError::SealNotLast { seq }),
            Event::Seal(s) => seal = Some(s.clone()),
            _ => {}
        }
    }
    if seal.is_some() != chunk.is_seal() {
        return Err(ReadError::SealFlagMismatch { seq });
    }
    Ok(seal)
}

/// Every event of a recording, in order, after checking its structure: the file
/// header, chunk framing, seq order, the hash chain, payload decoding, the session
/// start first and the seal last. Signatures are not checked (see [`crate::verify`]).
/// A recording without a seal (still active, or cut short) reads fine; to read an
/// active recording whose last chunk may be half-written, pass
/// `&bytes[..valid_prefix_len(bytes)]`. Chunks sealed under a data key (format 6) are
/// opened with `key`.
///
/// # Errors
/// The first check that fails, with the chunk seq and byte offset where known; a sealed
/// chunk without `key`, or one `key` does not open.
pub fn read_events(bytes: &[u8], key: Option<&DataKey>) -> Result<Vec<TimedEvent>, ReadError> {
    struct Collect(Vec<TimedEvent>);
    impl Visitor for Collect {
        type Error = ReadError;
        fn events(&mut self, events: &mut Vec<TimedEvent>) {
            self.0.append(events);
        }
    }
    let mut c = Collect(Vec::new());
    walk(bytes, PayloadBuf::with_key(key.cloned()), &mut c).1?;
    Ok(c.0)
}

/// The length of the longest prefix of `bytes` made of the file header and whole,
/// well-formed chunks whose hash chain holds, ending at the seal if there is one.
/// Zero when not even chunk 0 is whole. Crash recovery cuts the file to this length
/// (dropping a torn tail write) and then resumes it. Sealed chunks count as stored (the
/// chain covers their ciphertext); they are not opened. Never panics.
pub fn valid_prefix_len(bytes: &[u8]) -> usize {
    walk(bytes, PayloadBuf::skipping(), &mut Structure).0
}
