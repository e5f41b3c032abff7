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

/// The name of a person (`alice`): letters, digits, `.`, `_` and `-`, at most 64 bytes
/// ([`crate::valid_name`]), so it never needs escaping.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PersonName(String);

impl PersonName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonName({:?})", self.0)
    }
}

/// A string that is not a person's name.
#[derive(Debug, thiserror::Error)]
#[error("{input:?} is not a person's name (1-64 letters, digits, '.', '_' or '-')")]
pub struct ParsePersonNameError {
    input: String,
}

impl FromStr for PersonName {
    type Err = ParsePersonNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if crate::valid_name(s) {
            Ok(PersonName(s.to_owned()))
        } else {
            Err(ParsePersonNameError { input: s.to_owned() })
        }
    }
}

/// The name of one gateway node (`kw-a`, `node-3f9c1a2b`): letters, digits, `.`, `_` and `-`,
/// at most 64 bytes, like a person's name. Every session belongs to the node that runs it;
/// only that node recovers it, unless its heartbeat lapses and a survivor claims it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(String);

impl NodeId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A fresh node name, `node-` and 8 random hex digits.
    pub fn generate() -> Self {
        // The last bytes of a v7 UUID are random.
        let b = uuid::Uuid::now_v7().into_bytes();
        NodeId(format!("node-{:02x}{:02x}{:02x}{:02x}", b[12], b[13], b[14], b[15]))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({:?})", self.0)
    }
}

/// A string that is not a node's name.
#[derive(Debug, thiserror::Error)]
#[error("{input:?} is not a node name (1-64 letters, digits, '.', '_' or '-')")]
pub struct ParseNodeIdError {
    input: String,
}

impl FromStr for NodeId {
    type Err = ParseNodeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if crate::valid_name(s) {
            Ok(NodeId(s.to_owned()))
        } else {
            Err(ParseNodeIdError { input: s.to_owned() })
        }
    }
}
