//! The ledger: every sealed recording appended to one global hash chain, so that
//! deleting or replacing a whole recording (which its own chain cannot show) breaks it.
//!
//! Entry `n` hashes `prev ‖ n ‖ session id ‖ the recording's chain head ‖ sealed_at_us`
//! (integers little-endian), with `prev` the previous entry's hash or [`GENESIS`].
//! The store keeps the entries; this module only computes and signs them.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use keepwatch_core::SessionId;

/// The `prev` of the first entry: `BLAKE3("keepwatch-ledger-v1")`.
pub const GENESIS: [u8; 32] = [
    0xe8, 0x71, 0x0a, 0xb8, 0x32, 0xd4, 0xb4, 0xbf, 0xc4, 0xcb, 0x9e, 0x28, 0x95, 0x5b, 0x74, 0xa2,
    0xf4, 0x49, 0x58, 0xa5, 0x6d, 0xda, 0x55, 0x8d, 0xa5, 0x7d, 0x87, 0x1e, 0x31, 0x27, 0xd8, 0xfd,
];

/// Domain of ledger signatures, distinct from recording checkpoints.
const SIGN_DOMAIN: &[u8] = b"keepwatch-ledger-entry-v1";

/// The hash of ledger entry `seq`.
pub fn entry_hash(
    prev: &[u8; 32],
    seq: u64,
    session_id: &SessionId,
    chain_head: &[u8; 32],
    sealed_at_us: i64,
) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(&seq.to_le_bytes());
    h.update(session_id.as_bytes());
    h.update(chain_head);
    h.update(&sealed_at_us.to_le_bytes());
    *h.finalize().as_bytes()
}

fn message(hash: &[u8; 32]) -> [u8; 57] {
    let mut m = [0; 57];
    m[..25].copy_from_slice(SIGN_DOMAIN);
    m[25..].copy_from_slice(hash);
    m
}

/// Signs an entry hash: `Ed25519("keepwatch-ledger-entry-v1" ‖ hash)`.
pub fn sign(key: &SigningKey, hash: &[u8; 32]) -> [u8; 64] {
    key.sign(&message(hash)).to_bytes()
}

/// Whether `sig` is `key`'s signature over the entry hash.
pub fn verify_sig(key: &VerifyingKey, hash: &[u8; 32], sig: &[u8; 64]) -> bool {
    key.verify_strict(&message(hash), &Signature::from_bytes(sig)).is_ok()
}
