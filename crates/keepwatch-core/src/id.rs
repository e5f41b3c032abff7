//! Newtype ids.

use std::fmt;
use std::str::FromStr;

/// The identity of one recorded session. Time-ordered (UUIDv7) so ids sort by start.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(uuid::Uuid);

impl SessionId {
    pub fn new() -> Self {
        SessionId(uuid::Uuid::now_v7())
    }
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        SessionId(uuid::Uuid::from_bytes(bytes))
    }
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl Default for SessionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// A string that is not a session id.
#[derive(Debug, thiserror::Error)]
#[error("{input:?} is not a session id (expected a UUID such as 0193f1c2-...)")]
pub struct ParseSessionIdError {
    input: String,
}

impl FromStr for SessionId {
    type Err = ParseSessionIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s.trim())
            .map(SessionId)
            .map_err(|_| ParseSessionIdError { input: s.to_owned() })
    }
}
