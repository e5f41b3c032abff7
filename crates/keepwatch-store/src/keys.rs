//! Encryption at rest: each recording's own data key, wrapped by a key-encryption key (KEK).
//!
//! The KEK is the vault key's (derived from it, so it is never the key that seals target
//! secrets) or an external command, so that a KMS or HSM holds it: `COMMAND wrap` reads the
//! 32-byte data key on stdin and prints the wrapped key; `COMMAND unwrap` reads that and prints
//! the 32 bytes. Both get `KEEPWATCH_SESSION` in their environment. The store keeps only the
//! wrapped key; deleting it (retention) makes the recording unreadable for good.
//!
//! The [`Store`] holds the KEK ([`Store::with_kek`]) so that the recorder and every reader,
//! which all have a store, get keys the same way: a new key per recording, the key of a
//! recording (cached briefly), and rotation.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use keepwatch_core::SessionId;
use keepwatch_recording::DataKey;
use tokio::io::AsyncWriteExt;

use crate::{Store, StoreError, WrappedKey};

/// The `kek` of keys wrapped by the vault key's KEK.
pub(crate) const KEK_VAULT: &str = "vault";
/// The `kek` of keys wrapped by the external command.
pub(crate) const KEK_COMMAND: &str = "command";
const MAGIC: &[u8; 4] = b"kwk1";
const AAD_DOMAIN: &[u8] = b"keepwatch data key v1";
/// How long an unwrapped key stays in memory after its last use.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// Keys held in memory at most.
const CACHE_MAX: usize = 4096;
/// How long the external command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// The most a command may print.
const COMMAND_OUTPUT_MAX: usize = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the data key of session {session} does not unwrap under the {kek} key-encryption key (a wrong vault key, or the row was changed)"
    )]
    Unwrap { session: SessionId, kek: String },
    #[error(
        "the data key of session {session} is wrapped by the external command, but no [encryption] kek_command is set: set it to the command that wrapped it"
    )]
    NoCommand { session: SessionId },
    #[error("the data key of session {session} names an unknown key-encryption key {kek:?}")]
    UnknownKek { session: SessionId, kek: String },
    #[error("key-encryption command {program} failed for session {session}: {reason}")]
    Command { program: String, session: SessionId, reason: String },
    #[error("random source failed: {0}")]
    Random(String),
    #[error(
        "recordings are encrypted but this process has no key-encryption key (it opens the vault key in the data directory)"
    )]
    NoKek,
    #[error("the vault key is not 64 hex digits")]
    BadVaultKey,
}

/// The key-encryption keys a keyring can use: the vault's, and the external command if one is
/// configured (new keys are wrapped by the command when it is).
#[derive(Clone)]
pub struct Kek {
    vault: Arc<XChaCha20Poly1305>,
    command: Option<Arc<Vec<String>>>,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek").field("command", &self.command).finish_non_exhaustive()
    }
}

impl Kek {
    /// The KEK derived from the vault key (`vault_key`, 32 bytes), plus `command` (program and
    /// arguments) when set.
    pub fn new(vault_key: &[u8], command: Option<Vec<String>>) -> Self {
        let mut h = blake3::Hasher::new_derive_key("keepwatch recording key-encryption key v1");
        h.update(vault_key);
        let k = h.finalize();
        let vault = XChaCha20Poly1305::new_from_slice(k.as_bytes()).expect("a 32-byte key");
        Kek { vault: Arc::new(vault), command: command.filter(|c| !c.is_empty()).map(Arc::new) }
    }

    /// [`Kek::new`] from the vault key as `vault.key` holds it (64 hex digits).
    ///
    /// # Errors
    /// The text is not 32 bytes of hex.
    pub fn from_vault_key_hex(text: &str, command: Option<Vec<String>>) -> Result<Self, KeyError> {
        let text = text.trim();
        let bytes: Option<Vec<u8>> = (text.len() == 64)
            .then(|| {
                (0..32).map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()).collect()
            })
            .flatten();
        let bytes = bytes.ok_or(KeyError::BadVaultKey)?;
        Ok(Self::new(&bytes, command))
    }

    /// Which KEK new keys are wrapped by.
    pub fn current(&self) -> &'static str {
        if self.command.is_some() { KEK_COMMAND } else { KEK_VAULT }
    }

    fn aad(session: SessionId) -> Vec<u8> {
        [AAD_DOMAIN, session.as_bytes().as_slice()].concat()
    }

    async fn wrap(&self, session: SessionId, key: &DataKey) -> Result<WrappedKey, KeyError> {
        if let Some(cmd) = &self.command {
            let wrapped = run(cmd, "wrap", session, key.as_bytes()).await?;
            return Ok(WrappedKey { wrapped, kek: KEK_COMMAND.into() });
        }
        let mut nonce = [0; 24];
        getrandom::fill(&mut nonce).map_err(|e| KeyError::Random(e.to_string()))?;
        let aad = Self::aad(session);
        let ct = self
            .vault
            .encrypt(&XNonce::from(nonce), Payload { msg: key.as_bytes(), aad: &aad })
            .map_err(|_| KeyError::Random("encryption failed".into()))?;
        Ok(WrappedKey { wrapped: [MAGIC.as_slice(), &nonce, &ct].concat(), kek: KEK_VAULT.into() })
    }

    async fn unwrap(&self, session: SessionId, w: &WrappedKey) -> Result<DataKey, KeyError> {
        let bytes = match w.kek.as_str() {
            KEK_VAULT => {
                let bad = || KeyError::Unwrap { session, kek: w.kek.clone() };
                let rest = w.wrapped.strip_prefix(MAGIC.as_slice()).ok_or_else(bad)?;
                if rest.len() < 24 {
                    return Err(bad());
                }
                let (nonce, ct) = rest.split_at(24);
                let nonce = XNonce::try_from(nonce).map_err(|_| bad())?;
                let aad = Self::aad(session);
                self.vault.decrypt(&nonce, Payload { msg: ct, aad: &aad }).map_err(|_| bad())?
            }
            KEK_COMMAND => {
                let cmd = self.command.as_ref().ok_or(KeyError::NoCommand { session })?;
                run(cmd, "unwrap", session, &w.wrapped).await?
            }
            other => return Err(KeyError::UnknownKek { session, kek: other.into() }),
        };
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| KeyError::Unwrap {
            session,
            kek: format!("{} (unwrapped to {} bytes, not 32)", w.kek, bytes.len()),
        })?;
        Ok(DataKey::from_bytes(arr))
    }
}

/// Runs `cmd verb` with `input` on stdin; its stdout.
async fn run(
    cmd: &[String],
    verb: &str,
    session: SessionId,
    input: &[u8],
) -> Result<Vec<u8>, KeyError> {
    let program = PathBuf::from(&cmd[0]).display().to_string();
    let fail = |reason: String| KeyError::Command { program: program.clone(), session, reason };
    let mut child = tokio::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .arg(verb)
        .env("KEEPWATCH_SESSION", session.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot start it: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let write = async move {
        let r = stdin.write_all(&input).await;
        drop(stdin);
        r
    };
    let done = tokio::time::timeout(COMMAND_TIMEOUT, async {
        let (w, out) = tokio::join!(write, child.wait_with_output());
        w.and(out)
    })
    .await
    .map_err(|_| fail(format!("no answer within {}s", COMMAND_TIMEOUT.as_secs())))?
    .map_err(|e| fail(e.to_string()))?;
    if !done.status.success() {
        let err = String::from_utf8_lossy(&done.stderr);
        let err: String = err.trim().chars().take(300).collect();
        return Err(fail(format!("{verb} exited with {}: {err}", done.status)));
    }
    if done.stdout.is_empty() || done.stdout.len() > COMMAND_OUTPUT_MAX {
        return Err(fail(format!("{verb} printed {} bytes", done.stdout.len())));
    }
    Ok(done.stdout)
}

/// What [`Keyring::rotate`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Keys re-wrapped under the current KEK.
    pub rewrapped: u64,
    /// Keys that changed or were destroyed while rotation ran (left as they were).
    pub skipped: u64,
}

/// The KEK and the unwrapped keys lately used, shared by every clone of a [`Store`].
#[derive(Debug)]
pub(crate) struct KeyState {
    kek: Kek,
    cache: Mutex<HashMap<SessionId, (DataKey, Instant)>>,
}

impl KeyState {
    pub(crate) fn new(kek: Kek) -> Self {
        KeyState { kek, cache: Default::default() }
    }

    fn remember(&self, session: SessionId, key: &DataKey) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(session, (key.clone(), Instant::now()));
    }

    fn cached(&self, session: SessionId) -> Option<DataKey> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match cache.get_mut(&session) {
            Some((k, at)) if at.elapsed() < CACHE_TTL => {
                *at = Instant::now();
                Some(k.clone())
            }
            _ => None,
        }
    }
}

impl Store {
    /// Reads (and, for the recorder, creates) recordings' data keys with `kek`.
    pub fn with_kek(mut self, kek: Kek) -> Self {
        self.keys = Some(Arc::new(KeyState::new(kek)));
        self
    }

    fn key_state(&self) -> Result<&KeyState, KeyError> {
        self.keys.as_deref().ok_or(KeyError::NoKek)
    }

    /// A fresh data key for a new recording, wrapped and stored before it is used.
    ///
    /// # Errors
    /// No KEK on this handle, or the random source, the KEK command or the database failed:
    /// the recording must not start.
    pub async fn new_data_key(&self, session: SessionId) -> Result<DataKey, KeyError> {
        let keys = self.key_state()?;
        let key = DataKey::generate().map_err(|e| KeyError::Random(e.to_string()))?;
        let wrapped = keys.kek.wrap(session, &key).await?;
        self.put_data_key(session, &wrapped).await?;
        keys.remember(session, &key);
        Ok(key)
    }

    /// The data key of a recording; `None` when it has none (a recording from before
    /// encryption, or one whose key was destroyed: its sealed chunks cannot be read).
    ///
    /// # Errors
    /// The recording has a key but this handle no KEK, the key does not unwrap, the KEK
    /// command failed, or the database did.
    pub async fn recording_key(&self, session: SessionId) -> Result<Option<DataKey>, KeyError> {
        if let Some(k) = self.keys.as_deref().and_then(|k| k.cached(session)) {
            return Ok(Some(k));
        }
        let Some(w) = self.data_key(session).await? else {
            return Ok(None);
        };
        let keys = self.key_state()?;
        let key = keys.kek.unwrap(session, &w).await?;
        keys.remember(session, &key);
        Ok(Some(key))
    }

    /// Forgets a recording's key held in memory (after it was destroyed).
    pub fn forget_recording_key(&self, session: SessionId) {
        if let Some(k) = self.keys.as_deref() {
            k.cache.lock().unwrap_or_else(|e| e.into_inner()).remove(&session);
        }
    }

    /// Which KEK new keys are wrapped by (`vault` or `command`); `None` without one.
    pub fn current_kek(&self) -> Option<&'static str> {
        self.keys.as_deref().map(|k| k.kek.current())
    }

    /// Re-wraps every data key under the current KEK (the command when one is set): each
    /// key is unwrapped with the KEK that wrapped it and wrapped again with a fresh nonce (or
    /// by the command, which may use its newest key version). `each` is told after every key.
    ///
    /// # Errors
    /// A key that does not unwrap stops rotation (the ones before it are done; run it again
    /// once fixed); no KEK; the database or the command failed.
    pub async fn rotate_data_keys(
        &self,
        mut each: impl FnMut(&Rotation),
    ) -> Result<Rotation, KeyError> {
        let keys = self.key_state()?;
        let mut done = Rotation::default();
        let mut after = None;
        loop {
            let page = self.data_keys_after(after, 500).await?;
            let Some((last, _)) = page.last() else {
                return Ok(done);
            };
            after = Some(*last);
            for (id, old) in page {
                let key = keys.kek.unwrap(id, &old).await?;
                let new = keys.kek.wrap(id, &key).await?;
                if self.rewrap_data_key(id, &old.wrapped, &new).await? {
                    done.rewrapped += 1;
                } else {
                    done.skipped += 1;
                }
                each(&done);
            }
        }
    }
}
