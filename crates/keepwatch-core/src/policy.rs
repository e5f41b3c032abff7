//! Policy decisions: who may connect where, and what happens when recording fails.

use std::fmt;
use std::str::FromStr;

/// What a person may do (DESIGN.md invariant 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Connects to granted targets.
    User,
    /// Searches, replays, watches and terminates sessions.
    Auditor,
    /// Manages people, targets, grants and policy.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?} (expected user, auditor or admin)")]
pub struct ParseRoleError(String);

impl FromStr for Role {
    type Err = ParseRoleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Role::User),
            "auditor" => Ok(Role::Auditor),
            "admin" => Ok(Role::Admin),
            _ => Err(ParseRoleError(s.to_owned())),
        }
    }
}

/// What a target does when its recording cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordingFailure {
    /// End the session with a message (the default: no session runs unrecorded).
    #[default]
    Close,
    /// Keep the session going unrecorded and raise an audit event.
    Continue,
}

impl RecordingFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingFailure::Close => "close",
            RecordingFailure::Continue => "continue",
        }
    }
}

impl FromStr for RecordingFailure {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "close" => Ok(RecordingFailure::Close),
            "continue" => Ok(RecordingFailure::Continue),
            _ => Err(format!("unknown on_recording_failure {s:?} (expected close or continue)")),
        }
    }
}

/// The outcome of asking whether a person may open a session to a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessDecision {
    Allow,
    Deny(Denial),
}

/// Why a connection was denied. Shown to auditors, never to the person (who only learns
/// that access was denied, so a refusal does not reveal which part failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    UnknownPerson,
    BadCredential,
    UnknownTarget,
    NotGranted,
    PersonDisabled,
}

impl Denial {
    pub fn as_str(&self) -> &'static str {
        match self {
            Denial::UnknownPerson => "unknown person",
            Denial::BadCredential => "wrong password or key",
            Denial::UnknownTarget => "unknown target",
            Denial::NotGranted => "target not granted",
            Denial::PersonDisabled => "person disabled",
        }
    }
}

/// Decides whether an authenticated person may reach a target.
///
/// `granted` is whether a grant links the person to the target; every role needs a grant to
/// connect, since auditing others' sessions does not imply logging into their servers.
pub fn authorize_connect(target_exists: bool, granted: bool) -> AccessDecision {
    if !target_exists {
        AccessDecision::Deny(Denial::UnknownTarget)
    } else if !granted {
        AccessDecision::Deny(Denial::NotGranted)
    } else {
        AccessDecision::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_needs_target_and_grant() {
        assert_eq!(authorize_connect(true, true), AccessDecision::Allow);
        assert_eq!(authorize_connect(true, false), AccessDecision::Deny(Denial::NotGranted));
        assert_eq!(authorize_connect(false, true), AccessDecision::Deny(Denial::UnknownTarget));
    }

    #[test]
    fn roles_round_trip() {
        for r in [Role::User, Role::Auditor, Role::Admin] {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
