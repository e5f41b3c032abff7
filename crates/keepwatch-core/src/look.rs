//! Looking at a recorded session: who may, and what the audit trail calls it.
//!
//! Every look (view, replay, export, watch, terminate, capture download), from the web and
//! the CLI alike, is decided by [`may_look`]; `keepwatch_store::Store::look` does the IO
//! around it (load the session, decide, write the audit event). A look the caller may not
//! make is answered exactly like a session that does not exist.

use crate::{AuditAction, PersonName, Role, SessionStatus};

/// One kind of look at a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Look {
    /// Its metadata, channels, transfers and commands (`show`, session detail).
    View,
    /// Its terminal output (`replay`, every replay window of the console).
    Replay,
    /// The whole recording as a file (`export`).
    Export,
    /// Its live output (`watch`).
    Watch,
    /// Ending it (`kill`, terminate).
    Terminate,
    /// The kept copy of one of its transferred files (`transfers get`).
    CaptureDownload,
}

impl Look {
    pub const ALL: [Look; 6] = [
        Look::View,
        Look::Replay,
        Look::Export,
        Look::Watch,
        Look::Terminate,
        Look::CaptureDownload,
    ];

    /// The audit event every such look writes.
    pub fn action(self) -> AuditAction {
        match self {
            Look::View => AuditAction::SessionViewed,
            Look::Replay => AuditAction::RecordingReplayed,
            Look::Export => AuditAction::RecordingExported,
            Look::Watch => AuditAction::SessionWatched,
            Look::Terminate => AuditAction::SessionTerminated,
            Look::CaptureDownload => AuditAction::CaptureDownloaded,
        }
    }

    /// Whether the person whose session it is may make this look (auditors always may).
    pub fn owner_may(self) -> bool {
        matches!(self, Look::View | Look::Replay)
    }

    /// Whether the look only makes sense while the session runs.
    pub fn needs_live(self) -> bool {
        matches!(self, Look::Watch | Look::Terminate)
    }
}

/// Who is looking: what the audit trail names, the person they are (if any), their role,
/// and where they called from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The person, `token:NAME`, or `local:OS_USER` (the CLI).
    pub actor: String,
    /// The person whose own sessions the viewer may see; `None` for a viewer that is nobody
    /// (an auditor's API token, or a user token made before tokens named a person).
    pub person: Option<PersonName>,
    pub role: Role,
    pub client_addr: Option<String>,
}

/// Which sessions a viewer's lists and searches cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionScope {
    /// Every session (auditor and admin).
    All,
    /// Only this person's.
    Person(PersonName),
    /// None at all: a `user` viewer that is no person.
    Nothing,
}

impl SessionScope {
    /// Whether a session of `owner` is in scope.
    pub fn covers(&self, owner: &str) -> bool {
        match self {
            SessionScope::All => true,
            SessionScope::Person(p) => p.as_str() == owner,
            SessionScope::Nothing => false,
        }
    }
}

impl Viewer {
    /// Sees every session (auditor, admin).
    pub fn sees_all(&self) -> bool {
        self.role.at_least(Role::Auditor)
    }

    /// The sessions this viewer's lists and searches may show.
    pub fn scope(&self) -> SessionScope {
        match (&self.person, self.sees_all()) {
            (_, true) => SessionScope::All,
            (Some(p), false) => SessionScope::Person(p.clone()),
            (None, false) => SessionScope::Nothing,
        }
    }
}

/// The answer to "may this viewer make this look at a session of `owner`?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookDecision {
    Allow,
    /// Not allowed: answered as if the session did not exist (no hint that it does).
    NotFound,
    /// Allowed, but the look needs a live session and this one is not.
    NotLive(SessionStatus),
}

/// Decides a look. View and replay: the session's own person or an auditor; everything
/// else: an auditor. Watching and terminating also need the session to be live (checked
/// only once the viewer may look at all, so the status leaks to no one else).
pub fn may_look(viewer: &Viewer, owner: &str, status: SessionStatus, look: Look) -> LookDecision {
    let own = viewer.person.as_ref().is_some_and(|p| p.as_str() == owner);
    let allowed = viewer.sees_all() || (own && look.owner_may());
    if !allowed {
        LookDecision::NotFound
    } else if look.needs_live() && status != SessionStatus::Active {
        LookDecision::NotLive(status)
    } else {
        LookDecision::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer(person: Option<&str>, role: Role) -> Viewer {
        Viewer {
            actor: person.unwrap_or("token:t").to_owned(),
            person: person.map(|p| p.parse().unwrap()),
            role,
            client_addr: None,
        }
    }

    /// One row per viewer: the decision for each look, in `Look::ALL` order, on alice's
    /// active session (`A` allow, `-` not found) and on her closed one (`L` not live).
    fn check(v: &Viewer, active: &str, closed: &str) {
        let show = |status| {
            Look::ALL
                .iter()
                .map(|l| match may_look(v, "alice", status, *l) {
                    LookDecision::Allow => 'A',
                    LookDecision::NotFound => '-',
                    LookDecision::NotLive(_) => 'L',
                })
                .collect::<String>()
        };
        assert_eq!(show(SessionStatus::Active), active, "{v:?} on an active session");
        assert_eq!(show(SessionStatus::Closed), closed, "{v:?} on a closed session");
    }

    #[test]
    fn who_may_look() {
        //                                               V R E W T C
        check(&viewer(Some("alice"), Role::User), "AA----", "AA----");
        check(&viewer(Some("bob"), Role::User), "------", "------");
        check(&viewer(None, Role::User), "------", "------");
        check(&viewer(Some("audrey"), Role::Auditor), "AAAAAA", "AAALLA");
        check(&viewer(None, Role::Auditor), "AAAAAA", "AAALLA");
        check(&viewer(Some("adam"), Role::Admin), "AAAAAA", "AAALLA");
        // An owner who is also an auditor looks as an auditor.
        check(&viewer(Some("alice"), Role::Auditor), "AAAAAA", "AAALLA");
    }

    #[test]
    fn scopes() {
        assert_eq!(viewer(None, Role::User).scope(), SessionScope::Nothing);
        assert_eq!(
            viewer(Some("alice"), Role::User).scope(),
            SessionScope::Person("alice".parse().unwrap())
        );
        assert_eq!(viewer(None, Role::Auditor).scope(), SessionScope::All);
        assert!(!SessionScope::Nothing.covers("alice"));
        assert!(SessionScope::Person("alice".parse().unwrap()).covers("alice"));
        assert!(!SessionScope::Person("alice".parse().unwrap()).covers("bob"));
    }

    #[test]
    fn every_look_has_its_own_action() {
        let mut actions: Vec<_> = Look::ALL.iter().map(|l| l.action().as_str()).collect();
        actions.sort();
        actions.dedup();
        assert_eq!(actions.len(), Look::ALL.len());
    }
}
