//! Encryption at rest (format 6): a recording's data chunks are sealed with XChaCha20-Poly1305
//! under the recording's own [`DataKey`] before they are hashed, so the hash chain and the
//! signatures cover the ciphertext and `verify` needs no key.
//!
//! A sealed payload is `nonce (24) ‖ ciphertext ‖ tag (16)`; the associated data binds it to
//! its place: the session id and the whole chunk header (seq, time, flags, both lengths).
//! Chunk 0 (the session's identity) and the seal chunk stay in clear, so the identity, the
//! reason and how the session ended can be checked without the key; every chunk of data is
//! sealed. Who holds the data keys, and how they are wrapped, is the store's business.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use keepwatch_core::SessionId;

/// Bytes a sealed payload adds: the nonce and the tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const AAD_DOMAIN: &[u8] = b"keepwatch-chunk-v1";

/// One recording's data key (32 bytes). Never written anywhere in clear: the store keeps it
/// wrapped by a key-encryption key. Zeroed when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey([u8; 32]);

impl DataKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        DataKey(bytes)
    }

    /// A fresh key from the operating system's random source.
    ///
    /// # Errors
    /// The random source failed.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut k = [0; 32];
        getrandom::fill(&mut k)?;
        Ok(DataKey(k))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

/// Nonces of one writer: a random prefix drawn when the writer got its key, then a counter.
/// A resumed recording draws a new prefix, so no nonce repeats under one key.
pub(crate) struct Nonces {
    prefix: [u8; 16],
    next: u64,
}

impl Nonces {
    pub(crate) fn new() -> Result<Self, getrandom::Error> {
        let mut prefix = [0; 16];
        getrandom::fill(&mut prefix)?;
        Ok(Nonces { prefix, next: 0 })
    }

    fn take(&mut self) -> [u8; NONCE_LEN] {
        let mut n = [0; NONCE_LEN];
        n[..16].copy_from_slice(&self.prefix);
        n[16..].copy_from_slice(&self.next.to_le_bytes());
        self.next += 1;
        n
    }
}

fn aad(session_id: &SessionId, header: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(AAD_DOMAIN.len() + 16 + header.len());
    a.extend_from_slice(AAD_DOMAIN);
    a.extend_from_slice(session_id.as_bytes());
    a.extend_from_slice(header);
    a
}

/// Seals `plain` into `out` (cleared first) as `nonce ‖ ciphertext ‖ tag`. `header` is the
/// chunk header the sealed payload will sit under (its stored length already counting
/// [`SEAL_OVERHEAD`]).
pub(crate) fn seal(
    key: &DataKey,
    nonces: &mut Nonces,
    session_id: &SessionId,
    header: &[u8],
    plain: &[u8],
    out: &mut Vec<u8>,
) {
    let nonce = nonces.take();
    let cipher = XChaCha20Poly1305::new_from_slice(key.as_bytes()).expect("a 32-byte key");
    // Encryption only fails on inputs past 2^38 bytes; chunks are at most 16 MiB.
    let ct = cipher
        .encrypt(&XNonce::from(nonce), Payload { msg: plain, aad: &aad(session_id, header) })
        .expect("chunk within the AEAD's limits");
    out.clear();
    out.reserve(ct.len() + NONCE_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
}

/// Opens a sealed payload into `out` (cleared first); false when it does not open (wrong key,
/// or the bytes or their header were changed).
pub(crate) fn open(
    key: &DataKey,
    session_id: &SessionId,
    header: &[u8],
    sealed: &[u8],
    out: &mut Vec<u8>,
) -> bool {
    if sealed.len() < SEAL_OVERHEAD {
        return false;
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let Ok(nonce) = XNonce::try_from(nonce) else {
        return false;
    };
    let cipher = XChaCha20Poly1305::new_from_slice(key.as_bytes()).expect("a 32-byte key");
    match cipher.decrypt(&nonce, Payload { msg: ct, aad: &aad(session_id, header) }) {
        Ok(plain) => {
            *out = plain;
            true
        }
        Err(_) => false,
    }
}

/// Captured files (`captures/<session>/<transfer>`) are sealed as a stream: a header
/// (`KWCAP1`, two zero bytes, a random 32-byte salt), then the content in segments of
/// [`CAPTURE_SEGMENT`] bytes, each `ciphertext ‖ tag`, the last one (shorter, possibly empty)
/// marked last in its nonce. Each file has a key of its own, derived from the session's data
/// key and the salt, so destroying the session's key destroys its captures' too, and no nonce
/// is shared with the recording; the nonce is the segment's number and the last-segment flag,
/// so segments cannot be reordered, dropped or cut off at the end unnoticed.
pub const CAPTURE_SEGMENT: usize = 64 * 1024;
const CAPTURE_MAGIC: &[u8; 8] = b"KWCAP1\0\0";
const CAPTURE_HEADER: usize = CAPTURE_MAGIC.len() + 32;
const CAPTURE_AAD: &[u8] = b"keepwatch-capture-v1";

fn capture_cipher(key: &DataKey, salt: &[u8]) -> XChaCha20Poly1305 {
    let mut h = blake3::Hasher::new_derive_key("keepwatch capture key v1");
    h.update(key.as_bytes());
    h.update(salt);
    let mut file_key = *h.finalize().as_bytes();
    let cipher = XChaCha20Poly1305::new_from_slice(&file_key).expect("a 32-byte key");
    zeroize::Zeroize::zeroize(&mut file_key);
    cipher
}

fn capture_nonce(segment: u64, last: bool) -> XNonce {
    let mut n = [0; NONCE_LEN];
    n[..8].copy_from_slice(&segment.to_le_bytes());
    n[8] = u8::from(last);
    XNonce::from(n)
}

fn capture_aad(session: &SessionId) -> Vec<u8> {
    [CAPTURE_AAD, session.as_bytes()].concat()
}

/// Seals one captured file as it is written; see [`CAPTURE_SEGMENT`].
pub struct CaptureSealer {
    cipher: XChaCha20Poly1305,
    aad: Vec<u8>,
    segment: u64,
    pending: Vec<u8>,
}

impl CaptureSealer {
    /// A sealer for a file of `session` under its data key, and the header to write first.
    ///
    /// # Errors
    /// The random source failed.
    pub fn new(key: &DataKey, session: &SessionId) -> Result<(Self, Vec<u8>), getrandom::Error> {
        let mut salt = [0; 32];
        getrandom::fill(&mut salt)?;
        let header = [CAPTURE_MAGIC.as_slice(), &salt].concat();
        let sealer = CaptureSealer {
            cipher: capture_cipher(key, &salt),
            aad: capture_aad(session),
            segment: 0,
            pending: Vec::new(),
        };
        Ok((sealer, header))
    }

    fn seal_segment(&mut self, plain: &[u8], last: bool, out: &mut Vec<u8>) {
        let nonce = capture_nonce(self.segment, last);
        self.segment += 1;
        // Segments are 64 KiB, far within the AEAD's limits.
        let ct = self
            .cipher
            .encrypt(&nonce, Payload { msg: plain, aad: &self.aad })
            .expect("segment within the AEAD's limits");
        out.extend_from_slice(&ct);
    }

    /// Takes `plain` and appends every whole segment it completes to `out`. A full segment is
    /// held back until more comes, since only [`Self::finish`] knows which one is last.
    pub fn push(&mut self, plain: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(plain);
        let mut at = 0;
        while self.pending.len() - at > CAPTURE_SEGMENT {
            let seg = std::mem::take(&mut self.pending);
            self.seal_segment(&seg[at..at + CAPTURE_SEGMENT], false, out);
            self.pending = seg;
            at += CAPTURE_SEGMENT;
        }
        self.pending.drain(..at);
    }

    /// Appends the last segment (what is held, possibly nothing) to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        let rest = std::mem::take(&mut self.pending);
        self.seal_segment(&rest, true, out);
    }
}

/// Why a captured file does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    #[error("it is not a sealed capture (no KWCAP1 header)")]
    NotSealed,
    #[error(
        "segment {segment} does not open under the session's key (changed, moved or another session's)"
    )]
    Damaged { segment: u64 },
    #[error("it ends before its last segment (cut off)")]
    Truncated,
}

/// Opens a sealed captured file as its pieces arrive; see [`CAPTURE_SEGMENT`].
pub struct CaptureOpener {
    key: DataKey,
    aad: Vec<u8>,
    cipher: Option<XChaCha20Poly1305>,
    segment: u64,
    pending: Vec<u8>,
}

impl CaptureOpener {
    pub fn new(key: DataKey, session: &SessionId) -> Self {
        CaptureOpener {
            key,
            aad: capture_aad(session),
            cipher: None,
            segment: 0,
            pending: Vec::new(),
        }
    }

    fn open_segment(
        &mut self,
        at: usize,
        len: usize,
        last: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), CaptureError> {
        let segment = self.segment;
        let cipher = self.cipher.as_ref().expect("header read");
        let nonce = capture_nonce(segment, last);
        let sealed = &self.pending[at..at + len];
        let plain = cipher
            .decrypt(&nonce, Payload { msg: sealed, aad: &self.aad })
            .map_err(|_| CaptureError::Damaged { segment })?;
        out.extend_from_slice(&plain);
        self.segment += 1;
        Ok(())
    }

    /// Takes the next piece of the stored file and appends what it opens to `out`.
    ///
    /// # Errors
    /// The header is not a capture's, or a segment does not open.
    pub fn push(&mut self, piece: &[u8], out: &mut Vec<u8>) -> Result<(), CaptureError> {
        self.pending.extend_from_slice(piece);
        let mut at = 0;
        if self.cipher.is_none() {
            if self.pending.len() < CAPTURE_HEADER {
                return Ok(());
            }
            if &self.pending[..CAPTURE_MAGIC.len()] != CAPTURE_MAGIC {
                return Err(CaptureError::NotSealed);
            }
            self.cipher =
                Some(capture_cipher(&self.key, &self.pending[CAPTURE_MAGIC.len()..CAPTURE_HEADER]));
            at = CAPTURE_HEADER;
        }
        let whole = CAPTURE_SEGMENT + TAG_LEN;
        let result = loop {
            if self.pending.len() - at <= whole {
                break Ok(());
            }
            if let Err(e) = self.open_segment(at, whole, false, out) {
                break Err(e);
            }
            at += whole;
        };
        self.pending.drain(..at);
        result
    }

    /// Opens the last segment and appends it to `out`.
    ///
    /// # Errors
    /// The file was cut off, or its last segment does not open.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), CaptureError> {
        if self.cipher.is_none() {
            return Err(
                if self.pending.len() >= CAPTURE_MAGIC.len()
                    && &self.pending[..CAPTURE_MAGIC.len()] != CAPTURE_MAGIC
                {
                    CaptureError::NotSealed
                } else {
                    CaptureError::Truncated
                },
            );
        }
        if self.pending.len() < TAG_LEN {
            return Err(CaptureError::Truncated);
        }
        let len = self.pending.len();
        // A cut at a segment boundary leaves a whole segment that was not sealed as last.
        self.open_segment(0, len, true, out).map_err(|e| match e {
            CaptureError::Damaged { .. } if len == CAPTURE_SEGMENT + TAG_LEN => {
                CaptureError::Truncated
            }
            e => e,
        })
    }
}
