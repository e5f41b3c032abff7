//! Turning events into chunk bytes: the sans-IO writer on the relay's data path.
//!
//! The caller owns the file and the clock: it pushes events, and every second or so
//! (or when [`RecordingWriter::pending_len`] passes ~1 MiB) calls `flush` and appends
//! the returned bytes to the file. Pushing only appends to one reused buffer; a flush
//! compresses with one reused zstd context.

use std::fmt;

use ed25519_dalek::SigningKey;
use keepwatch_core::SessionId;

use crate::chunk::{
    self, ChunkHeader, FLAG_ENCRYPTED, FLAG_SEAL, FLAG_SIGNED, FLAG_ZSTD, FileHeader, PayloadBuf,
    chain_seed, chunk_hash,
};
use crate::crypt::{self, DataKey, Nonces, SEAL_OVERHEAD};
use crate::event::{self, Event, Seal, SessionStart, TimedEvent};
use crate::read::{Structure, walk};
use crate::{FORMAT_VERSION, MAX_CHUNK_PAYLOAD, ReadError};

/// Data events (output, stderr, input) longer than this are stored as several events
/// of at most this many bytes, all at the same time.
pub const MAX_DATA_EVENT: usize = 1 << 20;

/// Any other byte string (names, commands, notices, reasons) is cut to this many bytes
/// (on a char boundary) so that one event always fits in a chunk. Nothing coming from
/// SSH is this long: its packets are at most 256 KiB.
pub const MAX_FIELD_LEN: usize = 1 << 20;

/// zstd level 1: the writer sits on the data path, so speed beats ratio.
const ZSTD_LEVEL: i32 = 1;

/// Payloads shorter than this are stored raw: zstd's frame overhead would eat the gain.
const MIN_COMPRESS: usize = 64;

/// Past a flush, buffers larger than this are given back rather than kept per session.
const KEEP_CAPACITY: usize = 4 << 20;

/// After a chunk that zstd could not shrink, this many chunks are stored raw untried.
const SKIP_AFTER_INCOMPRESSIBLE: u32 = 8;
/// The smallest chunk whose failure to compress makes the writer skip the next ones.
const SKIP_MIN_PAYLOAD: usize = 64 << 10;

/// What the seal chunk committed to: stored in the database and appended to the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealInfo {
    pub seq: u64,
    /// The hash of the seal chunk, which commits to the whole recording.
    pub chain_head: [u8; 32],
    pub signature: [u8; 64],
    /// The seal chunk's time (the `now_us` given to `seal`).
    pub sealed_at_us: i64,
}

/// Encodes one session's events into chunks.
///
/// Pending events are kept in segments of at most [`MAX_CHUNK_PAYLOAD`] bytes; a flush
/// emits one chunk per segment. With a caller that flushes once `pending_len()` reaches
/// 1 MiB there is only ever one segment, as no single push adds more than it splits
/// into `MAX_DATA_EVENT` pieces; a caller that pushes 20 MiB at once gets two chunks
/// from the next flush rather than an oversized one.
pub struct RecordingWriter {
    session_id: SessionId,
    key: SigningKey,
    /// Encoded events not yet flushed.
    pending: Vec<u8>,
    /// Offsets in `pending` where a new segment (chunk) starts.
    cuts: Vec<usize>,
    /// Compression output, reused.
    scratch: Vec<u8>,
    /// Created on first use and dropped by [`RecordingWriter::release_buffers`]; `None`
    /// also when zstd could not allocate a context (chunks are then stored raw).
    compressor: Option<zstd::bulk::Compressor<'static>>,
    /// Chunks still to store raw without trying zstd, after one that did not compress:
    /// a stream of random bytes (an encrypted file, a compressed archive) stays cheap.
    skip_compress: u32,
    header_written: bool,
    next_seq: u64,
    chain_head: [u8; 32],
    last_signature: Option<[u8; 64]>,
    last_at_us: u64,
    /// Set when the recording is encrypted: every chunk of data is sealed under this key.
    sealing: Option<(DataKey, Nonces)>,
    /// Sealed payloads, reused.
    sealed: Vec<u8>,
    /// Everything pending is the session's identity or its seal (kept in clear).
    pending_is_metadata: bool,
    /// The first pending segment is the identity (chunk 0), cut from the data pushed after
    /// it before the first flush: it stays in clear.
    first_segment_clear: bool,
}

impl fmt::Debug for RecordingWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingWriter")
            .field("session_id", &self.session_id)
            .field("key", &"[redacted]")
            .field("pending_len", &self.pending.len())
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl RecordingWriter {
    /// A writer for a new recording; queues `start` as the first event, at time 0.
    pub fn new(start: SessionStart, key: SigningKey) -> Self {
        let session_id = start.session_id;
        let mut w = Self::empty(session_id, key);
        w.append(0, &Event::SessionStart(start));
        w
    }

    fn empty(session_id: SessionId, key: SigningKey) -> Self {
        RecordingWriter {
            session_id,
            key,
            pending: Vec::new(),
            cuts: Vec::new(),
            scratch: Vec::new(),
            compressor: None,
            skip_compress: 0,
            header_written: false,
            next_seq: 0,
            chain_head: chain_seed(&session_id),
            last_signature: None,
            last_at_us: 0,
            sealing: None,
            sealed: Vec::new(),
            pending_is_metadata: true,
            first_segment_clear: false,
        }
    }

    /// Encrypts the recording (format 6): every chunk holding data is sealed under `key`
    /// before it is hashed; the session's identity (chunk 0) and the seal stay in clear.
    ///
    /// # Errors
    /// The random source for the nonces failed.
    pub fn encrypted(mut self, key: DataKey) -> Result<Self, getrandom::Error> {
        self.sealing = Some((key, Nonces::new()?));
        Ok(self)
    }

    /// Continues a recording after a crash. `valid_prefix` must be exactly the file cut
    /// to [`crate::valid_prefix_len`]; `key` must be the key it was written with. The
    /// caller then pushes nothing more and seals it as `Interrupted`.
    ///
    /// # Errors
    /// The prefix is not a whole, well-formed, unsealed recording: empty (start a new
    /// recording instead), torn, broken, or already sealed.
    /// `data_key` opens the prefix's sealed chunks (for the time of the last event); the
    /// seal is written in clear either way.
    pub fn resume(
        valid_prefix: &[u8],
        key: SigningKey,
        data_key: Option<DataKey>,
    ) -> Result<Self, ReadError> {
        let buf = match data_key {
            Some(k) => PayloadBuf::with_key(Some(k)),
            None => PayloadBuf::skipping(),
        };
        let summary = walk(valid_prefix, buf, &mut Structure).1?;
        if let Some(sealed) = summary.seal {
            return Err(ReadError::AlreadySealed {
                session_id: summary.session_id,
                seq: sealed.seq,
            });
        }
        let mut w = Self::empty(summary.session_id, key);
        w.header_written = true;
        w.next_seq = summary.chunks;
        w.chain_head = summary.chain_head;
        w.last_at_us = summary.last_at_us;
        Ok(w)
    }

    /// Queues an event. Data longer than [`MAX_DATA_EVENT`] is split into several events.
    ///
    /// `SessionStart` and `Seal` are not pushed: the writer writes them itself (`new`
    /// and [`RecordingWriter::seal`]). Pushing one is a bug, caught by a debug
    /// assertion and otherwise ignored, since it would make the recording unreadable.
    pub fn push(&mut self, ev: &TimedEvent) {
        if matches!(ev.event, Event::SessionStart(_) | Event::Seal(_)) {
            debug_assert!(false, "push of {:?} (the writer writes it itself)", ev.event);
            return;
        }
        self.append(ev.at_us, &ev.event);
    }

    fn append(&mut self, at_us: u64, ev: &Event) {
        self.last_at_us = at_us;
        let metadata =
            matches!(ev, Event::SessionStart(_) | Event::Context { .. } | Event::Seal(_));
        if !metadata
            && self.pending_is_metadata
            && self.sealing.is_some()
            && self.next_seq == 0
            && !self.pending.is_empty()
        {
            // Data pushed before chunk 0 was flushed: the identity is cut into a chunk of its
            // own, which stays in clear.
            self.cuts.push(self.pending.len());
            self.first_segment_clear = true;
        }
        self.pending_is_metadata &= metadata;
        match event::as_data(ev) {
            Some((tag, channel, data)) => {
                // `chunks` yields nothing for empty data, which is still an event.
                let pieces = data.chunks(MAX_DATA_EVENT);
                let empty = data.is_empty().then_some(data);
                for piece in empty.into_iter().chain(pieces) {
                    let start = self.pending.len();
                    event::encode_data(&mut self.pending, tag, at_us, channel, piece);
                    self.cut_before_if_full(start);
                }
            }
            _ => {
                let start = self.pending.len();
                event::encode(&mut self.pending, at_us, ev, MAX_FIELD_LEN);
                self.cut_before_if_full(start);
            }
        }
    }

    /// If the event just appended at `start` made its segment too large, starts a new
    /// segment with it. One event is always far smaller than a chunk.
    fn cut_before_if_full(&mut self, start: usize) {
        let seg_start = self.cuts.last().copied().unwrap_or(0);
        if self.pending.len() - seg_start > MAX_CHUNK_PAYLOAD && start > seg_start {
            self.cuts.push(start);
        }
    }

    /// Frees the buffers and the zstd context of a writer with nothing pending, so an idle
    /// session costs little memory; they come back on the next flush that needs them.
    pub fn release_buffers(&mut self) {
        if self.pending.is_empty() {
            self.pending = Vec::new();
            self.scratch = Vec::new();
            self.sealed = Vec::new();
            self.cuts = Vec::new();
            self.compressor = None;
        }
    }

    /// Uncompressed bytes waiting for the next flush.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The session this writer records.
    pub fn session_id(&self) -> SessionId {
        self.session_id
    }

    /// The hash of the last chunk produced (the chain seed before the first).
    pub fn chain_head(&self) -> [u8; 32] {
        self.chain_head
    }

    /// The seq the next chunk will carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The time of the last event pushed (or found by `resume`), for sealing after it.
    pub fn last_at_us(&self) -> u64 {
        self.last_at_us
    }

    /// Cuts everything pending into a chunk (more than one only past
    /// [`MAX_CHUNK_PAYLOAD`]), preceded by the file header the first time. With
    /// `checkpoint` the last chunk is signed, and a chunk is produced even with nothing
    /// pending. `None` when there is nothing to write.
    pub fn flush(&mut self, now_us: i64, checkpoint: bool) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.flush_into(&mut out, now_us, checkpoint).then_some(out)
    }

    /// [`RecordingWriter::flush`] appending to the caller's buffer, so it can be reused.
    /// Returns whether anything was appended.
    pub fn flush_into(&mut self, out: &mut Vec<u8>, now_us: i64, checkpoint: bool) -> bool {
        self.flush_inner(out, now_us, if checkpoint { FLAG_SIGNED } else { 0 })
    }

    /// Queues the seal as the last event and flushes everything, the last chunk signed
    /// and marked as the seal. Returns the final bytes and what they commit to.
    /// In an encrypted recording the data still pending goes first, in a chunk of its own,
    /// so that the seal chunk holds the seal alone, in clear.
    pub fn seal(mut self, at_us: u64, seal: Seal, now_us: i64) -> (Vec<u8>, SealInfo) {
        let mut out = Vec::new();
        if self.sealing.is_some() && !self.pending.is_empty() && !self.pending_is_metadata {
            self.flush_inner(&mut out, now_us, 0);
        }
        self.append(at_us, &Event::Seal(seal));
        self.flush_inner(&mut out, now_us, FLAG_SIGNED | FLAG_SEAL);
        let info = SealInfo {
            seq: self.next_seq - 1,
            chain_head: self.chain_head,
            // flush_inner signs the last chunk when FLAG_SIGNED is given.
            signature: self.last_signature.unwrap_or([0; 64]),
            sealed_at_us: now_us,
        };
        (out, info)
    }

    /// `last_flags` go on the last chunk of this flush only.
    fn flush_inner(&mut self, out: &mut Vec<u8>, now_us: i64, last_flags: u8) -> bool {
        if self.pending.is_empty() && last_flags == 0 {
            return false;
        }
        let segments = self.cuts.len() + 1;
        out.reserve(
            chunk::FILE_HEADER_LEN
                + self.pending.len()
                + segments * (chunk::CHUNK_HEADER_LEN + chunk::HASH_LEN + chunk::SIG_LEN),
        );
        if !self.header_written {
            FileHeader { version: FORMAT_VERSION, session_id: self.session_id }.encode(out);
            self.header_written = true;
        }
        let mut start = 0;
        for (i, end) in self.cuts.iter().copied().chain([self.pending.len()]).enumerate() {
            let flags = if i + 1 == segments { last_flags } else { 0 };
            let payload = &self.pending[start..end];
            start = end;
            let mut flags = flags;
            let tried = self.skip_compress == 0 && payload.len() >= MIN_COMPRESS;
            self.skip_compress = self.skip_compress.saturating_sub(1);
            if tried && self.compressor.is_none() {
                self.compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
            }
            let compressed = if tried {
                compress(self.compressor.as_mut(), payload, &mut self.scratch)
            } else {
                None
            };
            // Only bulk data decides: a small chunk that does not shrink says little.
            if tried && compressed.is_none() && payload.len() >= SKIP_MIN_PAYLOAD {
                self.skip_compress = SKIP_AFTER_INCOMPRESSIBLE;
            }
            let stored = match compressed {
                Some(c) => {
                    flags |= FLAG_ZSTD;
                    c
                }
                None => payload,
            };
            let clear = self.pending_is_metadata || (i == 0 && self.first_segment_clear);
            let encrypt = match &mut self.sealing {
                Some(s) if !clear => Some(s),
                _ => None,
            };
            let stored_len = stored.len() + if encrypt.is_some() { SEAL_OVERHEAD } else { 0 };
            if encrypt.is_some() {
                flags |= FLAG_ENCRYPTED;
            }
            let header = ChunkHeader {
                seq: self.next_seq,
                time_us: now_us,
                flags,
                uncompressed_len: payload.len() as u32,
                stored_len: stored_len as u32,
            }
            .to_bytes();
            let stored = match encrypt {
                Some((key, nonces)) => {
                    crypt::seal(key, nonces, &self.session_id, &header, stored, &mut self.sealed);
                    &self.sealed[..]
                }
                None => stored,
            };
            let hash = chunk_hash(&self.chain_head, &header, stored);
            out.extend_from_slice(&header);
            out.extend_from_slice(stored);
            out.extend_from_slice(&hash);
            if flags & FLAG_SIGNED != 0 {
                let sig = chunk::sign(&self.key, &self.session_id, self.next_seq, &hash, now_us);
                out.extend_from_slice(&sig);
                self.last_signature = Some(sig);
            }
            self.chain_head = hash;
            self.next_seq += 1;
        }
        self.pending.clear();
        self.cuts.clear();
        self.pending_is_metadata = true;
        self.first_segment_clear = false;
        for buf in [&mut self.pending, &mut self.scratch, &mut self.sealed] {
            if buf.capacity() > KEEP_CAPACITY {
                buf.clear();
                buf.shrink_to(KEEP_CAPACITY);
            }
        }
        true
    }
}

/// Compresses `payload` into `scratch`; `None` when that would not make it smaller
/// (incompressible data is stored raw, so a chunk never grows).
fn compress<'s>(
    compressor: Option<&mut zstd::bulk::Compressor<'static>>,
    payload: &[u8],
    scratch: &'s mut Vec<u8>,
) -> Option<&'s [u8]> {
    let compressor = compressor?;
    if payload.len() < MIN_COMPRESS {
        return None;
    }
    scratch.clear();
    // With no more room than the input, zstd fails fast on data it cannot shrink.
    scratch.reserve_exact(payload.len());
    match compressor.compress_to_buffer(payload, scratch) {
        Ok(n) if n < payload.len() && n == scratch.len() => Some(&scratch[..]),
        _ => None,
    }
}
