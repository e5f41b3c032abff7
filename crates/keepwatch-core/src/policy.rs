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

    fn rank(self) -> u8 {
        match self {
            Role::User => 0,
            Role::Auditor => 1,
            Role::Admin => 2,
        }
    }

    /// Whether this role includes everything `min` may do.
    pub fn at_least(self, min: Role) -> bool {
        self.rank() >= min.rank()
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

/// What a grant allows beyond logging in: file transfers and port forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantPolicy {
    /// Files may be written on the target (SFTP/SCP uploads, and changes such as rename).
    pub upload: bool,
    /// Files may be read from the target.
    pub download: bool,
    /// Largest file that may move, in bytes.
    pub max_file_size: Option<u64>,
    /// `HOST:PORT` patterns (`*` matches any run of characters) that `ssh -L` may reach.
    pub forward_to: Vec<String>,
    /// `ssh -R` may open listening ports on the target.
    pub remote_forward: bool,
    /// `ssh -A` may make the person's agent usable on the target.
    pub agent_forward: bool,
    /// The bytes carried by `ssh -L`/`-R` tunnels go into the recording, not only their counts.
    pub record_tunnel_bytes: bool,
    /// Keep a copy of each transferred file's content in the blob store, for files that move
    /// whole, in order and within this many bytes; `None` keeps no copies.
    pub capture_content: Option<u64>,
    /// Database targets: every statement is parsed, and one that could write is refused
    /// before it reaches the target.
    pub read_only: bool,
    /// Database targets: statement kinds refused, as their leading keywords in upper case
    /// (`DROP`, `ALTER TABLE`, `TRUNCATE`); a rule matches every kind it begins.
    pub deny_statements: Vec<String>,
    /// Database targets: tables no statement may name (unqualified; compared without case).
    pub deny_tables: Vec<String>,
    /// Database targets: the first this many rows of each result go into the recording,
    /// masked value by value; `None` records none.
    pub capture_rows: Option<u32>,
}

/// The capture cap when a grant keeps file content without naming one.
pub const DEFAULT_CAPTURE_MAX_BYTES: u64 = 64 << 20;

impl Default for GrantPolicy {
    fn default() -> Self {
        GrantPolicy {
            upload: true,
            download: true,
            max_file_size: None,
            forward_to: Vec::new(),
            remote_forward: false,
            agent_forward: false,
            record_tunnel_bytes: false,
            capture_content: None,
            read_only: false,
            deny_statements: Vec::new(),
            deny_tables: Vec::new(),
            capture_rows: None,
        }
    }
}

impl GrantPolicy {
    /// Whether local forwarding to `host:port` is allowed.
    pub fn forward_allowed(&self, host: &str, port: u32) -> bool {
        let dest = format!("{host}:{port}");
        self.forward_to.iter().any(|p| glob_match(p, &dest))
    }
}

/// `*` matches any run of bytes; everything else matches itself (ASCII case-insensitive,
/// since host names are).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    glob_bytes(pattern.as_bytes(), text.as_bytes())
}

fn glob_bytes(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        // Collapse runs of `*` so hostile patterns cannot make this exponential.
        Some((b'*', rest)) if rest.first() == Some(&b'*') => glob_bytes(rest, text),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob_bytes(rest, &text[i..])),
        Some((c, rest)) => {
            text.first().is_some_and(|t| t.eq_ignore_ascii_case(c)) && glob_bytes(rest, &text[1..])
        }
    }
}

#[cfg(test)]
mod grant_tests {
    use super::GrantPolicy;

    fn check(patterns: &[&str], host: &str, port: u32, expected: bool) {
        let g = GrantPolicy {
            forward_to: patterns.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert_eq!(g.forward_allowed(host, port), expected, "{patterns:?} vs {host}:{port}");
    }

    #[test]
    fn forward_patterns() {
        check(&[], "db", 5432, false);
        check(&["db:5432"], "db", 5432, true);
        check(&["db:5432"], "db", 5433, false);
        check(&["db:5432"], "DB", 5432, true);
        check(&["*.internal:443"], "api.internal", 443, true);
        check(&["*.internal:443"], "api.internal.evil:443", 443, false);
        check(&["10.0.0.*:*"], "10.0.0.7", 22, true);
        check(&["localhost:*"], "localhost", 8080, true);
        check(&["localhost:80"], "localhost", 8080, false);
    }
}
