//! Keepwatch's vocabulary: the ids, roles, states and policy decisions every other crate speaks.
//!
//! Nothing here does IO, so every rule can be tested with plain values.

mod admission;
mod audit;
mod id;
mod limit;
mod login;
mod look;
mod mask;
pub mod metrics;
mod policy;
mod redact;
pub mod retention;
mod secret;
mod tag;
mod text;

pub use admission::{Admission, Full, Slot};
pub use audit::{AuditAction, ParseAuditActionError};
pub use id::{
    NodeId, ParseNodeIdError, ParsePersonNameError, ParseSessionIdError, PersonName, SessionId,
};
pub use limit::{Attempt, Locked, LoginLimiter, LoginLimits, MAX_COUNTED_NAME, RefusalAudit};
pub use login::{LoginName, ParseLoginNameError, valid_name};
pub use look::{Look, LookDecision, SessionScope, Viewer, may_look};
pub use mask::{
    ChannelMask, DEFAULT_MASK_RULES, MaskRule, MaskRuleError, MaskSpan, OutputMask, apply_spans,
    clip_spans, mask_marker, mask_pieces,
};
pub use policy::{
    AccessDecision, DEFAULT_CAPTURE_MAX_BYTES, Denial, GrantPolicy, RecordingFailure, Role,
    authorize_connect, glob_match,
};
pub use redact::{
    DEFAULT_SECRET_PROMPTS, InputPiece, SecretInputDetector, default_secret_prompts, strip_escapes,
};
pub use secret::Secret;
pub use tag::{
    MAX_TAG_LEN, MAX_TAGS_PER_SESSION, ParseTagError, TAG_RULE, Tag, parse_tags, valid_tag,
};
pub use text::{MAX_ACTOR_BYTES, MAX_DETAIL_BYTES, clean, escape_controls, needs_escape};

use std::fmt;
use std::str::FromStr;

/// The state of a session as shown to auditors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionStatus {
    /// Running now.
    Active,
    /// Ended normally by the person or the target.
    Closed,
    /// Ended by an auditor or by the gateway shutting down.
    Terminated,
    /// The gateway died while the session ran; sealed on the next start.
    Interrupted,
    /// Never reached the target (unreachable, credential refused, host key mismatch).
    Refused,
}

impl SessionStatus {
    pub const ALL: [SessionStatus; 5] = [
        SessionStatus::Active,
        SessionStatus::Closed,
        SessionStatus::Terminated,
        SessionStatus::Interrupted,
        SessionStatus::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Active => "active",
            SessionStatus::Closed => "closed",
            SessionStatus::Terminated => "terminated",
            SessionStatus::Interrupted => "interrupted",
            SessionStatus::Refused => "refused",
        }
    }
}

impl fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown session status string.
#[derive(Debug, thiserror::Error)]
#[error("unknown session status {0:?}")]
pub struct ParseStatusError(String);

impl FromStr for SessionStatus {
    type Err = ParseStatusError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| ParseStatusError(s.to_owned()))
    }
}

/// The protocol a target speaks and its sessions run: which front end serves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    #[default]
    Ssh,
    Postgres,
}

impl Protocol {
    pub const ALL: [Protocol; 2] = [Protocol::Ssh, Protocol::Postgres];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Ssh => "ssh",
            Protocol::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown protocol name.
#[derive(Debug, thiserror::Error)]
#[error("unknown protocol {0:?} (known: ssh, postgres)")]
pub struct ParseProtocolError(String);

impl FromStr for Protocol {
    type Err = ParseProtocolError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| ParseProtocolError(s.to_owned()))
    }
}

/// What an SSH channel was opened for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelKind {
    Shell,
    Exec { command: Vec<u8> },
    Subsystem { name: String },
}

impl ChannelKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ChannelKind::Shell => "shell",
            ChannelKind::Exec { .. } => "exec",
            ChannelKind::Subsystem { .. } => "subsystem",
        }
    }
}
