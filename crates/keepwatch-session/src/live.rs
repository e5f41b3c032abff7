//! The sessions live on this node, whatever their protocol.

use std::collections::HashMap;
use std::sync::Mutex;

use keepwatch_core::SessionId;
use keepwatch_recorder::{Recorder, WatchStart};
use tokio::sync::watch;

/// Termination switches and recorders of the sessions running on this node. Touched only
/// when a session starts, ends or is terminated, never on the data path.
#[derive(Default)]
pub struct LiveRegistry(Mutex<HashMap<SessionId, Live>>);

/// A live session's termination switch (the reason, once set) and its recorder (for watchers).
type Live = (watch::Sender<Option<String>>, Recorder);

impl LiveRegistry {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Live>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn insert(
        &self,
        id: SessionId,
        recorder: Recorder,
    ) -> watch::Receiver<Option<String>> {
        let (tx, rx) = watch::channel(None);
        self.map().insert(id, (tx, recorder));
        rx
    }

    pub(crate) fn remove(&self, id: SessionId) {
        self.map().remove(&id);
    }

    /// Asks a live session to end with `reason` shown to the person. Returns false if the
    /// session is not live on this node.
    pub fn terminate(&self, id: SessionId, reason: &str) -> bool {
        match self.map().get(&id) {
            Some((tx, _)) => {
                tx.send_replace(Some(reason.to_owned()));
                true
            }
            None => false,
        }
    }

    /// Asks every live session to end with `reason` shown to the person.
    pub fn terminate_all(&self, reason: &str) {
        for (tx, _) in self.map().values() {
            tx.send_replace(Some(reason.to_owned()));
        }
    }

    /// The sessions live on this node now.
    pub fn ids(&self) -> Vec<SessionId> {
        self.map().keys().copied().collect()
    }

    /// Starts watching a live session (see `Recorder::watch`); `None` when it is not live.
    pub async fn watch(&self, id: SessionId) -> Option<WatchStart> {
        let recorder = self.map().get(&id).map(|(_, r)| r.clone())?;
        recorder.watch().await
    }
}
