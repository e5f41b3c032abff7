//! The Keepwatch recording format: session events encoded into an append-only stream of
//! hash-chained, signed chunks, and the reader that checks such a stream.
//!
//! Pure: no IO, no clock. [`RecordingWriter`] turns events into bytes for the caller to
//! append to a file; [`chunks`], [`read_events`], [`verify`] and [`valid_prefix_len`]
//! read bytes back, and [`StreamVerifier`] verifies a recording a piece at a time.
//! `docs/recording-format.md` describes the bytes.
//!
//! **Invariant:** reading is total. Any input gives `Ok` or an error, never a panic, and
//! nothing is allocated beyond the input's size or [`MAX_CHUNK_PAYLOAD`].

pub mod anchor;
pub mod audit_chain;
mod chunk;
mod crypt;
mod event;
pub mod ledger;
pub mod manifest;
mod read;
mod recover;
mod tail;
mod verify;
mod writer;

#[cfg(test)]
mod tests;

pub use chunk::{
    CHUNK_HEADER_LEN, Chunk, ChunkIter, FILE_HEADER_LEN, FLAG_ENCRYPTED, FLAG_SEAL, FLAG_SIGNED,
    FLAG_ZSTD, FileHeader, chain_seed, chunks, header,
};
pub use crypt::{
    CAPTURE_SEGMENT, CaptureError, CaptureOpener, CaptureSealer, DataKey, SEAL_OVERHEAD,
};
pub use event::{
    DecodeError, Direction, Event, FileTransfer, MAX_COLUMNS, MAX_PARAMS, MAX_ROWS, Outcome, Pty,
    Rows, Seal, SessionStart, Statement, StatementResult, TimedEvent, TransactionStatus,
    UnsignedTail,
};
pub use read::{read_events, valid_prefix_len};
pub use recover::{RecoverError, Recovery, recover};
pub use tail::{RecordingTail, events_from_chunk, for_each_chunk};
pub use verify::{StreamVerifier, Verified, VerifyError, verify};
pub use writer::{MAX_DATA_EVENT, MAX_FIELD_LEN, RecordingWriter, SealInfo};

use keepwatch_core::SessionId;

/// A public key's fingerprint as people compare it: `SHA256:` and the unpadded base64 of the
/// SHA-256 of its 32 bytes, the way OpenSSH prints key fingerprints.
pub fn fingerprint(key: &ed25519_dalek::VerifyingKey) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(key.as_bytes());
    format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest))
}

/// The format version the writer puts in the file header: 2 added environment events and
/// the seal of a recovered recording, 3 the database statement events, 4 captured result
/// rows, 5 the reason a person gave for a session, 6 chunks sealed under the recording's
/// data key ([`FLAG_ENCRYPTED`]). Readers take [`FORMAT_VERSIONS`] and refuse others.
pub const FORMAT_VERSION: u16 = 6;

/// The versions readers accept (each version is the next without its new events).
pub const FORMAT_VERSIONS: std::ops::RangeInclusive<u16> = 1..=FORMAT_VERSION;

/// The largest payload a chunk may hold, uncompressed (and stored). Enforced on write
/// and on read.
pub const MAX_CHUNK_PAYLOAD: usize = 16 << 20;

/// Why bytes are not a well-formed recording (signatures aside: see [`VerifyError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("recording is empty")]
    Empty,
    #[error("not a keepwatch recording (bad magic)")]
    BadMagic,
    #[error("file header truncated: {len} of {FILE_HEADER_LEN} bytes")]
    TruncatedHeader { len: usize },
    #[error(
        "unsupported recording format version {version} (this reader knows 1 to {FORMAT_VERSION})"
    )]
    UnsupportedVersion { version: u16 },
    #[error("recording {session_id} has no chunks")]
    NoChunks { session_id: SessionId },
    #[error("no chunk magic at byte {offset}")]
    BadChunkMagic { offset: usize },
    #[error("chunk header at byte {offset} truncated")]
    TruncatedChunkHeader { offset: usize },
    #[error("chunk {seq} at byte {offset} truncated")]
    TruncatedChunk { seq: u64, offset: usize },
    #[error("chunk {seq} at byte {offset}: unknown flags {flags:#04x}")]
    UnknownFlags { seq: u64, offset: usize, flags: u8 },
    #[error("chunk {seq} at byte {offset}: payload of {len} bytes exceeds {MAX_CHUNK_PAYLOAD}")]
    PayloadTooLarge { seq: u64, offset: usize, len: u64 },
    #[error(
        "chunk {seq} at byte {offset}: stored length {stored} differs from uncompressed length {uncompressed}"
    )]
    LengthMismatch { seq: u64, offset: usize, stored: u32, uncompressed: u32 },
    #[error("chunk {expected} missing (found chunk {found})")]
    Missing { expected: u64, found: u64 },
    #[error("chunk {seq} at byte {offset}: hash chain broken")]
    ChainBroken { seq: u64, offset: usize },
    #[error("payload of chunk {seq} does not decompress: {reason}")]
    Decompress { seq: u64, reason: String },
    #[error("payload of chunk {seq} does not decode: {reason}")]
    Decode { seq: u64, reason: DecodeError },
    #[error("chunk 0 does not start with the session start")]
    NoSessionStart,
    #[error("chunk {seq}: session start after the first event")]
    SessionStartMisplaced { seq: u64 },
    #[error("chunk {seq}: the session's reason is not right after the session start")]
    ContextMisplaced { seq: u64 },
    #[error("session start names session {event} but the file header names {header}")]
    SessionMismatch { header: SessionId, event: SessionId },
    #[error("chunk {seq} is encrypted and no data key was given to read it")]
    NoDataKey { seq: u64 },
    #[error(
        "chunk {seq} does not decrypt under the recording's data key (the key is wrong, or the chunk was changed)"
    )]
    Decrypt { seq: u64 },
    #[error("chunk {seq} is encrypted, but the session's identity and its seal are kept in clear")]
    SealedMetadata { seq: u64 },
    #[error("chunk {seq}: seal is not the last event")]
    SealNotLast { seq: u64 },
    #[error("chunk {seq}: seal flag does not match its events")]
    SealFlagMismatch { seq: u64 },
    #[error("chunk {seq}: seal is not signed")]
    SealNotSigned { seq: u64 },
    #[error("unexpected bytes after seal at byte {offset}")]
    TrailingAfterSeal { offset: usize },
    #[error("recording {session_id} already sealed at chunk {seq}")]
    AlreadySealed { session_id: SessionId, seq: u64 },
}
