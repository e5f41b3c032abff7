//! The byte layout of a recording: the file header, chunk framing, the hash chain and
//! the signed-message format. Reading here is framing only; `read.rs` checks the chain.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use keepwatch_core::SessionId;

use crate::crypt::{self, DataKey, SEAL_OVERHEAD};
use crate::event::{self, TimedEvent};
use crate::{FORMAT_VERSIONS, MAX_CHUNK_PAYLOAD, ReadError};

pub(crate) const FILE_MAGIC: &[u8; 6] = b"KWREC\0";
/// Magic (6) + version (2) + session id (16).
pub const FILE_HEADER_LEN: usize = 24;
pub(crate) const CHUNK_MAGIC: &[u8; 4] = b"KWCH";
/// Magic (4) + seq (8) + time (8) + flags (1) + uncompressed length (4) + stored length (4).
pub const CHUNK_HEADER_LEN: usize = 29;
pub(crate) const HASH_LEN: usize = 32;
pub(crate) const SIG_LEN: usize = 64;

/// The chunk carries a signature after its hash.
pub const FLAG_SIGNED: u8 = 1 << 0;
/// The payload is stored as one zstd frame.
pub const FLAG_ZSTD: u8 = 1 << 1;
/// The chunk's last event is the seal.
pub const FLAG_SEAL: u8 = 1 << 2;
/// The payload is sealed under the recording's data key (format 6): `nonce ‖ ciphertext ‖
/// tag`, the ciphertext being the payload as it would otherwise be stored.
pub const FLAG_ENCRYPTED: u8 = 1 << 3;
pub(crate) const KNOWN_FLAGS: u8 = FLAG_SIGNED | FLAG_ZSTD | FLAG_SEAL | FLAG_ENCRYPTED;

const SEED_DOMAIN: &[u8] = b"keepwatch-recording-v1";
const CHECKPOINT_DOMAIN: &[u8] = b"keepwatch-checkpoint-v1";

/// The fixed start of every recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub version: u16,
    pub session_id: SessionId,
}

impl FileHeader {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(FILE_MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(self.session_id.as_bytes());
    }
}

/// Parses the file header at the start of `bytes`.
///
/// # Errors
/// The input is shorter than a header, does not start with the magic, or names a
/// format version this reader does not know.
pub fn header(bytes: &[u8]) -> Result<FileHeader, ReadError> {
    if bytes.is_empty() {
        return Err(ReadError::Empty);
    }
    if bytes.len() < FILE_HEADER_LEN {
        if !FILE_MAGIC.starts_with(&bytes[..bytes.len().min(FILE_MAGIC.len())]) {
            return Err(ReadError::BadMagic);
        }
        return Err(ReadError::TruncatedHeader { len: bytes.len() });
    }
    if &bytes[..6] != FILE_MAGIC {
        return Err(ReadError::BadMagic);
    }
    let version = u16::from_le_bytes([bytes[6], bytes[7]]);
    if !FORMAT_VERSIONS.contains(&version) {
        return Err(ReadError::UnsupportedVersion { version });
    }
    let mut id = [0; 16];
    id.copy_from_slice(&bytes[8..24]);
    Ok(FileHeader { version, session_id: SessionId::from_bytes(id) })
}

/// The hash chunk 0 chains onto: binds the chain to the session id in the header.
pub fn chain_seed(session_id: &SessionId) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(SEED_DOMAIN);
    h.update(session_id.as_bytes());
    *h.finalize().as_bytes()
}

/// `BLAKE3(prev ‖ chunk header ‖ payload as stored)`.
pub(crate) fn chunk_hash(prev: &[u8; 32], header: &[u8], payload: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(header);
    h.update(payload);
    *h.finalize().as_bytes()
}

pub(crate) struct ChunkHeader {
    pub seq: u64,
    pub time_us: i64,
    pub flags: u8,
    pub uncompressed_len: u32,
    pub stored_len: u32,
}

impl ChunkHeader {
    pub(crate) fn to_bytes(&self) -> [u8; CHUNK_HEADER_LEN] {
        let mut b = [0; CHUNK_HEADER_LEN];
        b[0..4].copy_from_slice(CHUNK_MAGIC);
        b[4..12].copy_from_slice(&self.seq.to_le_bytes());
        b[12..20].copy_from_slice(&self.time_us.to_le_bytes());
        b[20] = self.flags;
        b[21..25].copy_from_slice(&self.uncompressed_len.to_le_bytes());
        b[25..29].copy_from_slice(&self.stored_len.to_le_bytes());
        b
    }
}

/// The message a checkpoint or seal signature covers:
/// `"keepwatch-checkpoint-v1" ‖ session id ‖ seq ‖ chunk hash ‖ time_us`.
pub(crate) fn signed_message(
    session_id: &SessionId,
    seq: u64,
    hash: &[u8; 32],
    time_us: i64,
) -> [u8; 87] {
    let mut m = [0; 87];
    m[..23].copy_from_slice(CHECKPOINT_DOMAIN);
    m[23..39].copy_from_slice(session_id.as_bytes());
    m[39..47].copy_from_slice(&seq.to_le_bytes());
    m[47..79].copy_from_slice(hash);
    m[79..87].copy_from_slice(&time_us.to_le_bytes());
    m
}

pub(crate) fn sign(
    key: &SigningKey,
    session_id: &SessionId,
    seq: u64,
    hash: &[u8; 32],
    time_us: i64,
) -> [u8; 64] {
    key.sign(&signed_message(session_id, seq, hash, time_us)).to_bytes()
}

/// One chunk as it sits in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk<'a> {
    pub seq: u64,
    /// The writer's wall clock when the chunk was cut, unix microseconds.
    pub time_us: i64,
    pub flags: u8,
    pub uncompressed_len: u32,
    /// The payload as stored (compressed when `flags & FLAG_ZSTD`).
    pub payload: &'a [u8],
    /// The hash this chunk chains onto: the previous chunk's stored hash, or the chain
    /// seed for the first chunk.
    pub prev_hash: [u8; 32],
    /// The hash stored in the chunk.
    pub hash: [u8; 32],
    pub signature: Option<[u8; 64]>,
    /// Where the chunk starts in the file.
    pub offset: usize,
}

impl Chunk<'_> {
    pub(crate) fn header(&self) -> ChunkHeader {
        ChunkHeader {
            seq: self.seq,
            time_us: self.time_us,
            flags: self.flags,
            uncompressed_len: self.uncompressed_len,
            stored_len: self.payload.len() as u32,
        }
    }

    /// The bytes the chunk takes in the file.
    pub fn encoded_len(&self) -> usize {
        CHUNK_HEADER_LEN
            + self.payload.len()
            + HASH_LEN
            + if self.signature.is_some() { SIG_LEN } else { 0 }
    }

    /// The hash the chunk should carry given `prev_hash`: when it differs from `hash`,
    /// the chain is broken at this chunk.
    pub fn computed_hash(&self) -> [u8; 32] {
        chunk_hash(&self.prev_hash, &self.header().to_bytes(), self.payload)
    }

    pub fn is_seal(&self) -> bool {
        self.flags & FLAG_SEAL != 0
    }

    /// Whether the payload is sealed under the recording's data key.
    pub fn is_encrypted(&self) -> bool {
        self.flags & FLAG_ENCRYPTED != 0
    }

    /// Whether the chunk's signature is `key`'s over this chunk (false when unsigned).
    pub fn signature_valid(&self, session_id: &SessionId, key: &VerifyingKey) -> bool {
        let Some(sig) = self.signature else {
            return false;
        };
        let msg = signed_message(session_id, self.seq, &self.hash, self.time_us);
        key.verify_strict(&msg, &Signature::from_bytes(&sig)).is_ok()
    }

    /// Opens (with `key`, when sealed), decompresses and decodes the payload. Checks only
    /// this chunk, not the chain. `session_id` is the recording's (sealed payloads are bound
    /// to it).
    ///
    /// # Errors
    /// The payload is sealed and `key` is `None` or does not open it, or it does not
    /// decompress to its declared length or does not decode.
    pub fn events(
        &self,
        session_id: &SessionId,
        key: Option<&DataKey>,
    ) -> Result<Vec<TimedEvent>, ReadError> {
        let mut out = Vec::new();
        self.decode_into(&mut PayloadBuf::with_key(key.cloned()), session_id, &mut out)?;
        Ok(out)
    }

    /// Decodes into `out`, reusing `buf`'s decompressor and buffers across chunks. False
    /// (and nothing decoded) when the chunk is sealed and `buf` skips sealed chunks.
    pub(crate) fn decode_into(
        &self,
        buf: &mut PayloadBuf,
        session_id: &SessionId,
        out: &mut Vec<TimedEvent>,
    ) -> Result<bool, ReadError> {
        let seq = self.seq;
        let mut opened = std::mem::take(&mut buf.opened);
        let stored = if self.is_encrypted() {
            match &buf.keys {
                Keys::Required => return Err(ReadError::NoDataKey { seq }),
                Keys::Skip => return Ok(false),
                Keys::Key(key) => {
                    let header = self.header().to_bytes();
                    if !crypt::open(key, session_id, &header, self.payload, &mut opened) {
                        return Err(ReadError::Decrypt { seq });
                    }
                    &opened[..]
                }
            }
        } else {
            self.payload
        };
        let r = if self.flags & FLAG_ZSTD != 0 {
            buf.decompress(seq, stored, self.uncompressed_len as usize).and_then(|p| {
                event::decode_all(p, out).map_err(|reason| ReadError::Decode { seq, reason })
            })
        } else if stored.len() != self.uncompressed_len as usize {
            Err(ReadError::Decompress { seq, reason: "opened payload has the wrong length".into() })
        } else {
            event::decode_all(stored, out).map_err(|reason| ReadError::Decode { seq, reason })
        };
        opened.clear();
        buf.opened = opened;
        r.map(|()| true)
    }
}

/// How a reader treats chunks sealed under a data key.
#[derive(Default, Clone)]
pub(crate) enum Keys {
    /// A sealed chunk is an error: the caller wanted every event and gave no key.
    #[default]
    Required,
    /// Sealed chunks are checked as stored (chain, signatures) but not opened: `verify`
    /// without a key, and finding where a torn spool ends.
    Skip,
    /// Sealed chunks are opened with this key.
    Key(DataKey),
}

/// A decompressor and output buffers reused across the chunks of one read, and the key
/// sealed chunks open with.
#[derive(Default)]
pub(crate) struct PayloadBuf {
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
    out: Vec<u8>,
    opened: Vec<u8>,
    pub(crate) keys: Keys,
}

impl PayloadBuf {
    /// Opens sealed chunks with `key`; with `None`, a sealed chunk is an error.
    pub(crate) fn with_key(key: Option<DataKey>) -> Self {
        PayloadBuf { keys: key.map_or(Keys::Required, Keys::Key), ..Default::default() }
    }

    /// Checks sealed chunks as stored without opening them.
    pub(crate) fn skipping() -> Self {
        PayloadBuf { keys: Keys::Skip, ..Default::default() }
    }

    /// Gives back the buffers and the decompressor, keeping the key.
    pub(crate) fn release(&mut self) {
        let keys = std::mem::take(&mut self.keys);
        *self = PayloadBuf { keys, ..Default::default() };
    }

    fn decompress(&mut self, seq: u64, stored: &[u8], want: usize) -> Result<&[u8], ReadError> {
        let fail = |reason: String| ReadError::Decompress { seq, reason };
        // Framing already bounds `want` by MAX_CHUNK_PAYLOAD; the frame must also
        // declare exactly that size, so a lie costs nothing before it is caught.
        match zstd::zstd_safe::get_frame_content_size(stored) {
            Ok(Some(n)) if n == want as u64 => {}
            Ok(Some(n)) => {
                return Err(fail(format!("frame declares {n} bytes, chunk header {want}")));
            }
            Ok(None) => return Err(fail("frame does not declare its size".into())),
            Err(_) => return Err(fail("not a zstd frame".into())),
        }
        let d = match &mut self.decompressor {
            Some(d) => d,
            None => self
                .decompressor
                .insert(zstd::bulk::Decompressor::new().map_err(|e| fail(e.to_string()))?),
        };
        self.out.clear();
        self.out
            .try_reserve_exact(want)
            .map_err(|_| fail(format!("cannot allocate {want} bytes")))?;
        let n = d.decompress_to_buffer(stored, &mut self.out).map_err(|e| fail(e.to_string()))?;
        if n != want || self.out.len() != want {
            return Err(fail(format!("got {n} bytes, chunk header says {want}")));
        }
        Ok(&self.out)
    }
}

/// Splits a recording into chunks; see [`chunks`].
pub struct ChunkIter<'a> {
    bytes: &'a [u8],
    pos: usize,
    prev_hash: [u8; 32],
    header: Option<FileHeader>,
    done: bool,
}

/// Iterates over the chunks of a recording, checking the file header first and then
/// each chunk's framing (magic, known flags, lengths within the input and within
/// [`MAX_CHUNK_PAYLOAD`]). It does not check seq order, the chain or signatures.
/// Stops after the first error.
pub fn chunks(bytes: &[u8]) -> ChunkIter<'_> {
    ChunkIter { bytes, pos: 0, prev_hash: [0; 32], header: None, done: false }
}

impl ChunkIter<'_> {
    /// The file header, once the first item has been taken and the header was valid.
    pub fn file_header(&self) -> Option<FileHeader> {
        self.header
    }

    /// The byte offset just past the last chunk returned.
    pub fn offset(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for ChunkIter<'a> {
    type Item = Result<Chunk<'a>, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.header.is_none() {
            match header(self.bytes) {
                Ok(h) => {
                    self.header = Some(h);
                    self.pos = FILE_HEADER_LEN;
                    self.prev_hash = chain_seed(&h.session_id);
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        if self.pos == self.bytes.len() {
            self.done = true;
            return None;
        }
        let r = parse_chunk(self.bytes, self.pos, self.prev_hash);
        match &r {
            Ok(c) => {
                self.pos += c.encoded_len();
                self.prev_hash = c.hash;
            }
            Err(_) => self.done = true,
        }
        Some(r)
    }
}

pub(crate) fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

pub(crate) fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

/// The bytes a chunk takes in the file, from its header (at least [`CHUNK_HEADER_LEN`]
/// bytes whose framing [`parse_chunk`] accepted).
pub(crate) fn encoded_len(rest: &[u8]) -> usize {
    let stored_len = le_u32(&rest[25..]) as usize;
    let signed = rest[20] & FLAG_SIGNED != 0;
    CHUNK_HEADER_LEN + stored_len + HASH_LEN + if signed { SIG_LEN } else { 0 }
}

pub(crate) fn parse_chunk(
    bytes: &[u8],
    offset: usize,
    prev_hash: [u8; 32],
) -> Result<Chunk<'_>, ReadError> {
    let rest = &bytes[offset..];
    let magic_len = rest.len().min(CHUNK_MAGIC.len());
    if rest[..magic_len] != CHUNK_MAGIC[..magic_len] {
        return Err(ReadError::BadChunkMagic { offset });
    }
    if rest.len() < CHUNK_HEADER_LEN {
        return Err(ReadError::TruncatedChunkHeader { offset });
    }
    let seq = le_u64(&rest[4..]);
    let time_us = le_u64(&rest[12..]) as i64;
    let flags = rest[20];
    let uncompressed_len = le_u32(&rest[21..]);
    let stored_len = le_u32(&rest[25..]) as usize;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(ReadError::UnknownFlags { seq, offset, flags });
    }
    let overhead = if flags & FLAG_ENCRYPTED != 0 { SEAL_OVERHEAD } else { 0 };
    if uncompressed_len as usize > MAX_CHUNK_PAYLOAD || stored_len > MAX_CHUNK_PAYLOAD + overhead {
        return Err(ReadError::PayloadTooLarge {
            seq,
            offset,
            len: u64::from(uncompressed_len).max(stored_len as u64),
        });
    }
    if stored_len < overhead
        || (flags & FLAG_ZSTD == 0 && stored_len != uncompressed_len as usize + overhead)
    {
        return Err(ReadError::LengthMismatch {
            seq,
            offset,
            stored: stored_len as u32,
            uncompressed: uncompressed_len,
        });
    }
    let signed = flags & FLAG_SIGNED != 0;
    let total = CHUNK_HEADER_LEN + stored_len + HASH_LEN + if signed { SIG_LEN } else { 0 };
    if rest.len() < total {
        return Err(ReadError::TruncatedChunk { seq, offset });
    }
    let payload = &rest[CHUNK_HEADER_LEN..CHUNK_HEADER_LEN + stored_len];
    let after = &rest[CHUNK_HEADER_LEN + stored_len..total];
    let mut hash = [0; 32];
    hash.copy_from_slice(&after[..HASH_LEN]);
    let signature = signed.then(|| {
        let mut s = [0; 64];
        s.copy_from_slice(&after[HASH_LEN..]);
        s
    });
    Ok(Chunk { seq, time_us, flags, uncompressed_len, payload, prev_hash, hash, signature, offset })
}
