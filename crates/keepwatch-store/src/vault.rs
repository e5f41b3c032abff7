//! The credential vault: target secrets encrypted at rest with XChaCha20-Poly1305.
//!
//! The associated data is the whole target row as it decides where the secret goes and how
//! ([`TargetBinding`]: name, host, port, login, secret kind, pinned host key, trust on first
//! use, recording failure policy and algorithms). Someone who can edit the database but does
//! not hold the vault key cannot point `web01` at their own host, unpin its host key or turn
//! a password into a key: the secret no longer decrypts for the edited row, so the gateway
//! refuses the session and the password never leaves it.
//!
//! Ciphertexts are versioned: `kwv2` ‖ nonce ‖ ciphertext. Older ones (nonce ‖ ciphertext,
//! bound to the target's name only) are recognised by [`Vault::is_legacy`]; they are opened
//! only by [`Vault::open_legacy`], which `keepwatch run` uses once at start to seal them again
//! with their row's current contents (audited), never on the way to a target.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use keepwatch_core::{Protocol, RecordingFailure, Secret};

use crate::rows::{Algorithms, DatabaseTarget, NewTarget, TargetRow, TargetSecret};

const NONCE_LEN: usize = 24;
/// The first bytes of a ciphertext bound to a whole target row.
const MAGIC_V2: &[u8; 4] = b"kwv2";
/// Domain separation for the associated data.
const BINDING_DOMAIN: &[u8] = b"keepwatch target secret binding v2";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("vault key must be 32 bytes, found {0}")]
    KeyLength(usize),
    #[error(
        "secret of target {target} does not decrypt for the target as it is now: its row was changed outside keepwatch (or the vault key is wrong)"
    )]
    Decrypt { target: String },
    #[error(
        "secret of target {target} was sealed before targets were bound to their rows; `keepwatch run` seals it again at start"
    )]
    Legacy { target: String },
    #[error("random source failed: {0}")]
    Random(String),
}

/// What kind of credential a target's secret is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    Password,
    PrivateKey,
}

impl SecretKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::Password => "password",
            SecretKind::PrivateKey => "key",
        }
    }
}

/// Everything of a target's row a secret is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetBinding<'a> {
    pub name: &'a str,
    pub host: &'a str,
    pub port: u16,
    pub login: &'a str,
    pub kind: SecretKind,
    pub host_key: Option<&'a str>,
    pub trust_on_first_use: bool,
    pub on_recording_failure: RecordingFailure,
    pub algorithms: &'a Algorithms,
    pub protocol: Protocol,
    pub database: Option<&'a DatabaseTarget>,
}

impl TargetBinding<'_> {
    /// The associated data: every field, length-prefixed, after a domain string.
    fn associated_data(&self) -> Vec<u8> {
        fn field(out: &mut Vec<u8>, b: &[u8]) {
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            out.extend_from_slice(b);
        }
        fn list(out: &mut Vec<u8>, items: &[String]) {
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for i in items {
                field(out, i.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(256);
        field(&mut out, BINDING_DOMAIN);
        field(&mut out, self.name.as_bytes());
        field(&mut out, self.host.as_bytes());
        out.extend_from_slice(&self.port.to_be_bytes());
        field(&mut out, self.login.as_bytes());
        field(&mut out, self.kind.as_str().as_bytes());
        match self.host_key {
            Some(k) => {
                out.push(1);
                field(&mut out, k.as_bytes());
            }
            None => out.push(0),
        }
        out.push(u8::from(self.trust_on_first_use));
        field(&mut out, self.on_recording_failure.as_str().as_bytes());
        list(&mut out, &self.algorithms.kex);
        list(&mut out, &self.algorithms.host_key);
        list(&mut out, &self.algorithms.ciphers);
        list(&mut out, &self.algorithms.macs);
        // Appended only for protocols after SSH, so secrets sealed before targets had a
        // protocol still open; a target moved to another protocol does not.
        if self.protocol != Protocol::Ssh {
            field(&mut out, self.protocol.as_str().as_bytes());
            match self.database {
                None => out.push(0),
                Some(d) => {
                    out.push(1);
                    field(&mut out, d.name.as_bytes());
                    field(&mut out, d.tls.as_str().as_bytes());
                    match &d.ca {
                        None => out.push(0),
                        Some(ca) => {
                            out.push(1);
                            field(&mut out, ca.as_bytes());
                        }
                    }
                }
            }
        }
        out
    }
}

impl std::fmt::Display for TargetBinding<'_> {
    /// `root@10.0.0.5:22 (password, host key ssh-ed25519 AAAA…)`, for audit events.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}:{} ({}", self.login, self.host, self.port, self.kind.as_str())?;
        if let Some(d) = self.database {
            write!(f, ", {} database {}, tls {}", self.protocol, d.name, d.tls.as_str())?;
            if d.ca.is_some() {
                f.write_str(" with its own CA")?;
            }
        }
        match (self.host_key, self.trust_on_first_use) {
            (Some(k), _) => write!(f, ", host key {k}")?,
            (None, true) => f.write_str(", host key pinned on first use")?,
            (None, false) => f.write_str(", no host key")?,
        }
        write!(f, ", on recording failure {}", self.on_recording_failure.as_str())?;
        let a = self.algorithms;
        for (what, names) in [
            ("kex", &a.kex),
            ("host key algorithms", &a.host_key),
            ("ciphers", &a.ciphers),
            ("macs", &a.macs),
        ] {
            if !names.is_empty() {
                write!(f, ", {what} {}", names.join(","))?;
            }
        }
        f.write_str(")")
    }
}

impl TargetSecret {
    pub fn secret_kind(&self) -> SecretKind {
        match self {
            TargetSecret::Password(_) => SecretKind::Password,
            TargetSecret::PrivateKey(_) => SecretKind::PrivateKey,
        }
    }
}

impl TargetRow {
    /// What this row's secret must be sealed for.
    pub fn binding(&self) -> TargetBinding<'_> {
        TargetBinding {
            name: &self.name,
            host: &self.host,
            port: self.port,
            login: &self.login,
            kind: self.secret.secret_kind(),
            host_key: self.host_key.as_deref(),
            trust_on_first_use: self.trust_on_first_use,
            on_recording_failure: self.on_recording_failure,
            algorithms: &self.algorithms,
            protocol: self.protocol,
            database: self.database.as_ref(),
        }
    }
}

impl NewTarget {
    /// What this target's secret must be sealed for (its kind is the variant of `secret`,
    /// whatever the bytes inside).
    pub fn binding(&self) -> TargetBinding<'_> {
        TargetBinding {
            name: &self.name,
            host: &self.host,
            port: self.port,
            login: &self.login,
            kind: self.secret.secret_kind(),
            host_key: self.host_key.as_deref(),
            trust_on_first_use: self.trust_on_first_use,
            on_recording_failure: self.on_recording_failure,
            algorithms: &self.algorithms,
            protocol: self.protocol,
            database: self.database.as_ref(),
        }
    }

    /// Seals `plaintext` as this target's secret, bound to the rest of the row (which must
    /// not change afterwards).
    ///
    /// # Errors
    /// Fails only if the system random source fails.
    pub fn seal_secret(&mut self, vault: &Vault, plaintext: &[u8]) -> Result<(), VaultError> {
        let sealed = vault.seal(&self.binding(), plaintext)?;
        self.secret = match self.secret {
            TargetSecret::Password(_) => TargetSecret::Password(sealed),
            TargetSecret::PrivateKey(_) => TargetSecret::PrivateKey(sealed),
        };
        Ok(())
    }
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

    /// Encrypts `plaintext` for the target row `binding`: `kwv2` ‖ nonce ‖ ciphertext.
    ///
    /// # Errors
    /// Fails only if the system random source fails.
    pub fn seal(
        &self,
        binding: &TargetBinding<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| VaultError::Random(e.to_string()))?;
        let aad = binding.associated_data();
        let ct = self
            .cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad: &aad })
            .map_err(|_| VaultError::Decrypt { target: binding.name.to_owned() })?;
        let mut out = Vec::with_capacity(MAGIC_V2.len() + NONCE_LEN + ct.len());
        out.extend_from_slice(MAGIC_V2);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypts a secret for the target row `binding`.
    ///
    /// # Errors
    /// `Legacy` for a ciphertext bound to the name only; `Decrypt` when any bound field of
    /// the row differs from what it was sealed for, the key is wrong or the bytes were
    /// changed.
    pub fn open(
        &self,
        binding: &TargetBinding<'_>,
        sealed: &[u8],
    ) -> Result<Secret<Vec<u8>>, VaultError> {
        let Some(rest) = sealed.strip_prefix(MAGIC_V2.as_slice()) else {
            return Err(VaultError::Legacy { target: binding.name.to_owned() });
        };
        self.decrypt(binding.name, rest, &binding.associated_data())
    }

    /// Whether `sealed` predates row binding (bound to the target's name only).
    pub fn is_legacy(sealed: &[u8]) -> bool {
        !sealed.starts_with(MAGIC_V2)
    }

    /// Decrypts a legacy secret (bound to the target's name only). Only for sealing it
    /// again with [`Vault::seal`]: a legacy secret is never used to reach a target.
    ///
    /// # Errors
    /// A wrong key, a different target or a tampered ciphertext fail.
    pub fn open_legacy(&self, target: &str, sealed: &[u8]) -> Result<Secret<Vec<u8>>, VaultError> {
        self.decrypt(target, sealed, target.as_bytes())
    }

    fn decrypt(
        &self,
        target: &str,
        sealed: &[u8],
        aad: &[u8],
    ) -> Result<Secret<Vec<u8>>, VaultError> {
        let err = || VaultError::Decrypt { target: target.to_owned() };
        if sealed.len() < NONCE_LEN {
            return Err(err());
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(&XNonce::try_from(nonce).map_err(|_| err())?, Payload { msg: ct, aad })
            .map(Secret::new)
            .map_err(|_| err())
    }

    /// The legacy format, for tests of the re-sealing of old databases.
    #[doc(hidden)]
    pub fn seal_legacy(&self, target: &str, plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> TargetRow {
        TargetRow {
            require_reason: false,
            name: "web01".into(),
            host: "10.0.0.5".into(),
            port: 22,
            login: "root".into(),
            secret: TargetSecret::Password(Vec::new()),
            host_key: Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA".into()),
            trust_on_first_use: false,
            on_recording_failure: RecordingFailure::Close,
            algorithms: Algorithms::default(),
            protocol: Protocol::Ssh,
            database: None,
            created_at_us: 0,
        }
    }

    #[test]
    fn seal_open_and_tamper() {
        let v = Vault::new(&Vault::generate_key().unwrap()).unwrap();
        let t = target();
        let sealed = v.seal(&t.binding(), b"s3cret").unwrap();
        assert!(sealed.starts_with(b"kwv2") && !Vault::is_legacy(&sealed));
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(v.open(&t.binding(), &sealed).unwrap().expose(), b"s3cret");
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(v.open(&t.binding(), &bad).is_err());
        let other = Vault::new(&Vault::generate_key().unwrap()).unwrap();
        assert!(other.open(&t.binding(), &sealed).is_err());
    }

    /// Issue 9: every field that decides where the secret goes, and how, is bound.
    #[test]
    fn every_bound_field_counts() {
        let v = Vault::new(&Vault::generate_key().unwrap()).unwrap();
        let t = target();
        let sealed = v.seal(&t.binding(), b"s3cret").unwrap();
        type Edit = (&'static str, fn(&mut TargetRow));
        let edits: Vec<Edit> = vec![
            ("name", |t| t.name = "web02".into()),
            ("host", |t| t.host = "203.0.113.9".into()),
            ("port", |t| t.port = 2222),
            ("login", |t| t.login = "admin".into()),
            ("kind", |t| t.secret = TargetSecret::PrivateKey(Vec::new())),
            ("host key removed", |t| t.host_key = None),
            ("host key changed", |t| t.host_key = Some("ssh-ed25519 AAAAother".into())),
            ("trust on first use", |t| t.trust_on_first_use = true),
            ("protocol", |t| t.protocol = Protocol::Postgres),
            ("recording failure", |t| t.on_recording_failure = RecordingFailure::Continue),
            ("kex", |t| t.algorithms.kex = vec!["diffie-hellman-group1-sha1".into()]),
            ("host key algorithms", |t| t.algorithms.host_key = vec!["ssh-rsa".into()]),
            ("ciphers", |t| t.algorithms.ciphers = vec!["aes128-cbc".into()]),
            ("macs", |t| t.algorithms.macs = vec!["hmac-sha1".into()]),
            // Moving a name between lists must not keep the encoding equal.
            ("list boundaries", |t| {
                t.algorithms.kex = vec!["a".into()];
                t.algorithms.host_key = Vec::new();
            }),
        ];
        for (what, edit) in edits {
            let mut changed = target();
            edit(&mut changed);
            let err = v.open(&changed.binding(), &sealed).unwrap_err();
            assert!(matches!(err, VaultError::Decrypt { .. }), "{what}: {err}");
        }
        // created_at is not bound: it decides nothing.
        let mut later = target();
        later.created_at_us = 42;
        assert!(v.open(&later.binding(), &sealed).is_ok());
    }

    #[test]
    fn legacy_secrets_are_recognised_and_opened_only_by_name() {
        let v = Vault::new(&Vault::generate_key().unwrap()).unwrap();
        let legacy = v.seal_legacy("web01", b"old").unwrap();
        assert!(Vault::is_legacy(&legacy));
        let err = v.open(&target().binding(), &legacy).unwrap_err();
        assert!(matches!(err, VaultError::Legacy { .. }), "{err}");
        assert_eq!(v.open_legacy("web01", &legacy).unwrap().expose(), b"old");
        assert!(v.open_legacy("web02", &legacy).is_err(), "bound to the target name");
    }
}
