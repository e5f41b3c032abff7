//! The credential vault: target secrets encrypted at rest with XChaCha20-Poly1305.
//!
//! The target's name is the associated data, so a ciphertext copied onto another target's
//! row does not decrypt.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use keepwatch_core::Secret;

const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("vault key must be 32 bytes, found {0}")]
    KeyLength(usize),
    #[error("secret of target {target} does not decrypt (wrong vault key or tampered row)")]
    Decrypt { target: String },
    #[error("random source failed: {0}")]
    Random(String),
}

pub struct Vault {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault([redacted])")
    }
}

impl Vault {
    /// # Errors
    /// The key must be exactly 32 bytes.
    pub fn new(key: &[u8]) -> Result<Self, VaultError> {
        let cipher =
            XChaCha20Poly1305::new_from_slice(key).map_err(|_| VaultError::KeyLength(key.len()))?;
        Ok(Vault { cipher })
    }

    /// Generates a fresh 32-byte key.
    ///
    /// # Errors
    /// Fails only if the system random source fails.
    pub fn generate_key() -> Result<[u8; 32], VaultError> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|e| VaultError::Random(e.to_string()))?;
        Ok(k)
    }

    /// Encrypts `plaintext` for `target`: nonce ‖ ciphertext.
    ///
    /// # Errors
    /// Fails only if the system random source fails.
    pub fn seal(&self, target: &str, plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| VaultError::Random(e.to_string()))?;
        let ct = self
            .cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad: target.as_bytes() })
            .map_err(|_| VaultError::Decrypt { target: target.to_owned() })?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// # Errors
    /// A wrong key, a different target or a tampered ciphertext fail.
    pub fn open(&self, target: &str, sealed: &[u8]) -> Result<Secret<Vec<u8>>, VaultError> {
        let err = || VaultError::Decrypt { target: target.to_owned() };
        if sealed.len() < NONCE_LEN {
            return Err(err());
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                &XNonce::try_from(nonce).map_err(|_| err())?,
                Payload { msg: ct, aad: target.as_bytes() },
            )
            .map(Secret::new)
            .map_err(|_| err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let v = Vault::new(&Vault::generate_key().unwrap()).unwrap();
        let sealed = v.seal("web01", b"s3cret").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(v.open("web01", &sealed).unwrap().expose(), b"s3cret");
        assert!(v.open("web02", &sealed).is_err(), "bound to the target name");
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(v.open("web01", &bad).is_err());
        let other = Vault::new(&Vault::generate_key().unwrap()).unwrap();
        assert!(other.open("web01", &sealed).is_err());
    }
}
