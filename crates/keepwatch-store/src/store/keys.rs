//! Recordings' wrapped data keys: stored once when a recording starts, read by every reader,
//! re-wrapped by rotation, deleted (crypto-shredding) with the session by retention.

use keepwatch_core::SessionId;

use super::{Store, dispatch};
use crate::StoreError;
use crate::rows::WrappedKey;

impl Store {
    /// Stores the wrapped data key of a new recording.
    ///
    /// # Errors
    /// The session already has one; database failures.
    pub async fn put_data_key(&self, id: SessionId, key: &WrappedKey) -> Result<(), StoreError> {
        dispatch!(self, b => b.put_data_key(id, key).await)
    }

    /// The wrapped data key of a recording; `None` when it has none (written before
    /// encryption, or its key was destroyed).
    ///
    /// # Errors
    /// Database failures.
    pub async fn data_key(&self, id: SessionId) -> Result<Option<WrappedKey>, StoreError> {
        dispatch!(self, b => b.data_key(id).await)
    }

    /// Up to `limit` wrapped keys after session `after`, in session order (for rotation).
    ///
    /// # Errors
    /// Database failures.
    pub async fn data_keys_after(
        &self,
        after: Option<SessionId>,
        limit: i64,
    ) -> Result<Vec<(SessionId, WrappedKey)>, StoreError> {
        dispatch!(self, b => b.data_keys_after(after, limit).await)
    }

    /// Replaces a recording's wrapped key if it is still `old`; false when it changed (or
    /// was destroyed) meanwhile.
    ///
    /// # Errors
    /// Database failures.
    pub async fn rewrap_data_key(
        &self,
        id: SessionId,
        old: &[u8],
        new: &WrappedKey,
    ) -> Result<bool, StoreError> {
        dispatch!(self, b => b.rewrap_data_key(id, old, new).await)
    }
}
