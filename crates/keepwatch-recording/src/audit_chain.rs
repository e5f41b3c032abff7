//! The audit trail's hash chain: every audit event hashes the one before it, so removing or
//! editing an event (not only the latest) breaks the chain `verify` walks.
//!
//! Entry hash: `BLAKE3(prev ‖ id ‖ at_us ‖ len‖actor ‖ len‖action ‖ len‖session ‖
//! len‖client ‖ len‖detail)`, integers little-endian, lengths as u64 (absent = `u64::MAX`);
//! `prev` is the previous entry's hash or [`GENESIS`]. Signed like ledger entries, under its
//! own domain.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// The `prev` of the first audit event: `BLAKE3("keepwatch-audit-v1")`.
pub fn genesis() -> [u8; 32] {
    *blake3::hash(b"keepwatch-audit-v1").as_bytes()
}

/// Domain of audit signatures.
const SIGN_DOMAIN: &[u8] = b"keepwatch-audit-entry-v1";

/// One audit event as hashed.
pub struct AuditEntry<'a> {
    pub id: i64,
    pub at_us: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub session_id: Option<&'a str>,
    pub client_addr: Option<&'a str>,
    pub detail: &'a str,
}

impl AuditEntry<'_> {
    pub fn hash(&self, prev: &[u8; 32]) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(prev);
        h.update(&self.id.to_le_bytes());
        h.update(&self.at_us.to_le_bytes());
        for field in [Some(self.actor), Some(self.action), self.session_id, self.client_addr] {
            field_into(&mut h, field);
        }
        field_into(&mut h, Some(self.detail));
        *h.finalize().as_bytes()
    }
}

fn field_into(h: &mut blake3::Hasher, field: Option<&str>) {
    match field {
        Some(s) => {
            h.update(&(s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
        None => {
            h.update(&u64::MAX.to_le_bytes());
        }
    }
}

fn message(hash: &[u8; 32]) -> Vec<u8> {
    [SIGN_DOMAIN, hash.as_slice()].concat()
}

/// `Ed25519("keepwatch-audit-entry-v1" ‖ hash)`.
pub fn sign(key: &SigningKey, hash: &[u8; 32]) -> [u8; 64] {
    key.sign(&message(hash)).to_bytes()
}

pub fn verify_sig(key: &VerifyingKey, hash: &[u8; 32], sig: &[u8; 64]) -> bool {
    key.verify_strict(&message(hash), &Signature::from_bytes(sig)).is_ok()
}
