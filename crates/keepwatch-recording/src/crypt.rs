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

    /// A key of its own for one captured file of the session (so a capture never shares a
    /// nonce space with the recording), derived from this one: destroying the recording's
    /// key destroys its captures' too.
    pub fn for_capture(&self, channel: u32, content: u64) -> DataKey {
        let mut h = blake3::Hasher::new_derive_key("keepwatch capture key v1");
        h.update(&self.0);
        h.update(&channel.to_le_bytes());
        h.update(&content.to_le_bytes());
        DataKey(*h.finalize().as_bytes())
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

/// Seals a whole blob (a captured file) under `key`: `nonce ‖ ciphertext ‖ tag`, bound to
/// `context`. For blobs held whole in memory; recordings use chunk sealing.
pub fn seal_blob(key: &DataKey, context: &[u8], plain: &[u8]) -> Result<Vec<u8>, getrandom::Error> {
    let mut nonces = Nonces::new()?;
    let mut out = Vec::new();
    seal(key, &mut nonces, &SessionId::from_bytes([0; 16]), context, plain, &mut out);
    Ok(out)
}

/// Opens what [`seal_blob`] sealed; `None` when it does not open.
pub fn open_blob(key: &DataKey, context: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    open(key, &SessionId::from_bytes([0; 16]), context, sealed, &mut out).then_some(out)
}
