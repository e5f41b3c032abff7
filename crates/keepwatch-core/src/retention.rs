//! How long recordings are kept, and what holds them longer: the decision for one session,
//! given the retention policies and the legal holds (no IO; the store keeps both, `keepwatch
//! retention apply` and the gateway's daily round act on the answer).
//!
//! A session is kept forever unless a policy covers it (a policy keeps sessions a time
//! after they end, at least a second, at most a hundred years). When several do, the longest keeps
//! it (a policy never shortens another's promise). A hold on the session, its person, its
//! target or one of its tags keeps it whatever the policies say, until released. A live
//! session is never deleted.

use std::fmt;
use std::str::FromStr;

use crate::{Protocol, SessionId, SessionStatus};

/// What a retention policy covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyScope {
    /// Every session.
    All,
    Target(String),
    Protocol(Protocol),
    Tag(String),
}

/// What a legal hold covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldScope {
    Session(SessionId),
    Person(String),
    Target(String),
    Tag(String),
}

/// Why a scope could not be read back (an edited row, or a newer version's kind).
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} scope {kind:?} (value {value:?})")]
pub struct ParseScopeError {
    what: &'static str,
    kind: String,
    value: String,
}

impl PolicyScope {
    /// The kind and value as stored.
    pub fn parts(&self) -> (&'static str, String) {
        match self {
            PolicyScope::All => ("all", String::new()),
            PolicyScope::Target(t) => ("target", t.clone()),
            PolicyScope::Protocol(p) => ("protocol", p.as_str().to_owned()),
            PolicyScope::Tag(t) => ("tag", t.clone()),
        }
    }

    /// Reads a scope stored as `parts`.
    ///
    /// # Errors
    /// An unknown kind or protocol.
    pub fn from_parts(kind: &str, value: &str) -> Result<Self, ParseScopeError> {
        let bad = || ParseScopeError { what: "policy", kind: kind.into(), value: value.into() };
        Ok(match kind {
            "all" => PolicyScope::All,
            "target" => PolicyScope::Target(value.into()),
            "protocol" => PolicyScope::Protocol(value.parse().map_err(|_| bad())?),
            "tag" => PolicyScope::Tag(value.into()),
            _ => return Err(bad()),
        })
    }

    fn covers(&self, s: &SessionFacts) -> bool {
        match self {
            PolicyScope::All => true,
            PolicyScope::Target(t) => *t == s.target,
            PolicyScope::Protocol(p) => *p == s.protocol,
            PolicyScope::Tag(t) => s.tags.contains(t),
        }
    }
}

impl fmt::Display for PolicyScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.parts() {
            ("all", _) => f.write_str("all sessions"),
            (kind, value) => write!(f, "{kind} {value}"),
        }
    }
}

impl HoldScope {
    /// The kind and value as stored.
    pub fn parts(&self) -> (&'static str, String) {
        match self {
            HoldScope::Session(id) => ("session", id.to_string()),
            HoldScope::Person(p) => ("person", p.clone()),
            HoldScope::Target(t) => ("target", t.clone()),
            HoldScope::Tag(t) => ("tag", t.clone()),
        }
    }

    /// Reads a scope stored as `parts`.
    ///
    /// # Errors
    /// An unknown kind or a session id that does not parse.
    pub fn from_parts(kind: &str, value: &str) -> Result<Self, ParseScopeError> {
        let bad = || ParseScopeError { what: "hold", kind: kind.into(), value: value.into() };
        Ok(match kind {
            "session" => HoldScope::Session(value.parse().map_err(|_| bad())?),
            "person" => HoldScope::Person(value.into()),
            "target" => HoldScope::Target(value.into()),
            "tag" => HoldScope::Tag(value.into()),
            _ => return Err(bad()),
        })
    }

    fn covers(&self, s: &SessionFacts) -> bool {
        match self {
            HoldScope::Session(id) => *id == s.id,
            HoldScope::Person(p) => *p == s.person,
            HoldScope::Target(t) => *t == s.target,
            HoldScope::Tag(t) => s.tags.contains(t),
        }
    }
}

impl fmt::Display for HoldScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, value) = self.parts();
        write!(f, "{kind} {value}")
    }
}

/// A retention policy: sessions in `scope` are kept `keep_s` seconds after they end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub id: i64,
    pub scope: PolicyScope,
    pub keep_s: u64,
}

/// A legal hold in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub id: i64,
    pub scope: HoldScope,
}

/// What the decision needs to know of a session.
#[derive(Debug, Clone)]
pub struct SessionFacts {
    pub id: SessionId,
    pub person: String,
    pub target: String,
    pub protocol: Protocol,
    pub tags: Vec<String>,
    pub status: SessionStatus,
    /// Unix microseconds; `None` while it runs.
    pub ended_at_us: Option<i64>,
}

/// What becomes of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No policy covers it (or it still runs): kept.
    Kept,
    /// Kept until this time (unix microseconds) by `policy`.
    KeptUntil { until_us: i64, policy: i64 },
    /// Past its policy's time, but held by these holds.
    Held { holds: Vec<i64>, policy: i64 },
    /// Past `policy`'s time and held by nothing: to be deleted.
    Delete { policy: i64 },
}

#[cfg(test)]
const DAY_US: i64 = 86_400 * 1_000_000;

/// The decision for session `s` at `now_us`.
pub fn decide(s: &SessionFacts, policies: &[Policy], holds: &[Hold], now_us: i64) -> Decision {
    let (Some(ended), false) = (s.ended_at_us, s.status == SessionStatus::Active) else {
        return Decision::Kept;
    };
    let Some(longest) =
        policies.iter().filter(|p| p.scope.covers(s)).max_by_key(|p| (p.keep_s, -p.id))
    else {
        return Decision::Kept;
    };
    let keep_us = i64::try_from(longest.keep_s).unwrap_or(i64::MAX).saturating_mul(1_000_000);
    let until_us = ended.saturating_add(keep_us);
    if now_us < until_us {
        return Decision::KeptUntil { until_us, policy: longest.id };
    }
    let held: Vec<i64> = holds.iter().filter(|h| h.scope.covers(s)).map(|h| h.id).collect();
    if held.is_empty() {
        Decision::Delete { policy: longest.id }
    } else {
        Decision::Held { holds: held, policy: longest.id }
    }
}

/// The longest time a policy keeps sessions: 100 years.
pub const MAX_KEEP_S: u64 = 100 * 365 * 86_400;

/// A time as `--keep` takes it, in seconds: `400d`, `12w`, `2y` (365 days), `36h`, `90m`,
/// `30s`; a plain number is days.
///
/// # Errors
/// Not a positive number with one of those units, or more than 100 years.
pub fn parse_keep(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "d"),
    };
    let per: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => return Err(format!("{text:?} is not a duration: use 400d, 12w, 2y, 36h, 90m or 30s")),
    };
    let n: u64 = num.parse().map_err(|_| format!("{text:?} is not a duration (400d, 12w, 2y)"))?;
    match n.checked_mul(per) {
        Some(s) if s > 0 && s <= MAX_KEEP_S => Ok(s),
        _ => Err(format!("{text:?}: keep between 1 second and 100 years")),
    }
}

/// A time in seconds the way `--keep` would write it (`400d`, `36h`, `90s`).
pub fn show_keep(s: u64) -> String {
    for (unit, per) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s.is_multiple_of(per) {
            return format!("{}{unit}", s / per);
        }
    }
    format!("{s}s")
}

impl FromStr for PolicyScope {
    type Err = ParseScopeError;
    /// `all`, or `KIND:VALUE` (`target:web01`, `protocol:postgres`, `tag:pci`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            None => PolicyScope::from_parts(s, ""),
            Some((k, v)) => PolicyScope::from_parts(k, v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(target: &str, tags: &[&str], ended_days_ago: Option<i64>) -> SessionFacts {
        SessionFacts {
            id: SessionId::new(),
            person: "alice".into(),
            target: target.into(),
            protocol: Protocol::Ssh,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            status: if ended_days_ago.is_some() {
                SessionStatus::Closed
            } else {
                SessionStatus::Active
            },
            ended_at_us: ended_days_ago.map(|d| NOW - d * DAY_US),
        }
    }

    const NOW: i64 = 1_800_000_000_000_000;

    fn policy(id: i64, scope: PolicyScope, days: u64) -> Policy {
        Policy { id, scope, keep_s: days * 86_400 }
    }

    #[test]
    fn the_longest_covering_policy_decides_and_holds_override_it() {
        let policies = [
            policy(1, PolicyScope::All, 30),
            policy(2, PolicyScope::Target("db01".into()), 400),
            policy(3, PolicyScope::Tag("short".into()), 1),
        ];
        // Past 30 days: deleted by the default policy.
        let old = facts("web01", &[], Some(31));
        assert_eq!(decide(&old, &policies, &[], NOW), Decision::Delete { policy: 1 });
        // A shorter policy never shortens a longer one's promise.
        let tagged = facts("web01", &["short"], Some(10));
        assert!(matches!(
            decide(&tagged, &policies, &[], NOW),
            Decision::KeptUntil { policy: 1, .. }
        ));
        let db = facts("db01", &[], Some(31));
        assert_eq!(
            decide(&db, &policies, &[], NOW),
            Decision::KeptUntil { until_us: NOW - 31 * DAY_US + 400 * DAY_US, policy: 2 }
        );
        // Nothing covers it: kept; live: kept.
        assert_eq!(decide(&old, &policies[1..2], &[], NOW), Decision::Kept);
        assert_eq!(decide(&facts("web01", &[], None), &policies, &[], NOW), Decision::Kept);
        // Holds by session, person, target or tag keep it.
        for scope in [
            HoldScope::Session(old.id),
            HoldScope::Person("alice".into()),
            HoldScope::Target("web01".into()),
        ] {
            let holds = [Hold { id: 7, scope }];
            assert_eq!(
                decide(&old, &policies, &holds, NOW),
                Decision::Held { holds: vec![7], policy: 1 }
            );
        }
        let holds = [Hold { id: 8, scope: HoldScope::Tag("legal".into()) }];
        assert_eq!(decide(&old, &policies, &holds, NOW), Decision::Delete { policy: 1 });
        let legal = facts("web01", &["legal"], Some(31));
        assert!(matches!(decide(&legal, &policies, &holds, NOW), Decision::Held { .. }));
    }

    #[test]
    fn durations_and_scopes_read_back() {
        let day = 86_400;
        assert_eq!(parse_keep("400d"), Ok(400 * day));
        assert_eq!(parse_keep("12w"), Ok(84 * day));
        assert_eq!(parse_keep("2y"), Ok(730 * day));
        assert_eq!(parse_keep("30"), Ok(30 * day));
        assert_eq!(parse_keep("36h"), Ok(36 * 3600));
        assert_eq!(parse_keep("1s"), Ok(1));
        assert!(parse_keep("0d").is_err());
        assert!(parse_keep("1x").is_err());
        assert!(parse_keep("999y").is_err());
        assert_eq!(show_keep(400 * day), "400d");
        assert_eq!(show_keep(36 * 3600), "36h");
        assert_eq!(show_keep(61), "61s");
        for s in [
            PolicyScope::All,
            PolicyScope::Target("web01".into()),
            PolicyScope::Protocol(Protocol::Postgres),
            PolicyScope::Tag("pci".into()),
        ] {
            let (k, v) = s.parts();
            assert_eq!(PolicyScope::from_parts(k, &v).unwrap(), s);
        }
        assert!(PolicyScope::from_parts("planet", "x").is_err());
        let id = SessionId::new();
        let (k, v) = HoldScope::Session(id).parts();
        assert_eq!(HoldScope::from_parts(k, &v).unwrap(), HoldScope::Session(id));
        assert!(HoldScope::from_parts("session", "nope").is_err());
    }
}
