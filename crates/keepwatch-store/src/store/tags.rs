//! Session tags: put on and taken off a session together with their audit event (both or
//! neither), listed, and carried by listings. A call that changes nothing writes no event.

use keepwatch_core::{AuditAction, MAX_TAGS_PER_SESSION, SessionId, Tag};

use super::{Store, dispatch};
use crate::StoreError;
use crate::chain::{clean_audit, log_audit};
use crate::rows::*;

/// Putting tags on, or taking them off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TagOp {
    Add,
    Remove,
}

impl TagOp {
    pub(crate) fn op(self) -> &'static str {
        match self {
            TagOp::Add => "tag session",
            TagOp::Remove => "untag session",
        }
    }

    fn action(self) -> AuditAction {
        match self {
            TagOp::Add => AuditAction::SessionTagged,
            TagOp::Remove => AuditAction::SessionUntagged,
        }
    }
}

/// The audit event of a change, its detail naming the tags that changed (`tags a, b`).
pub(crate) fn tag_audit(template: &NewAudit, changed: &[Tag]) -> NewAudit {
    let names: Vec<&str> = changed.iter().map(Tag::as_str).collect();
    clean_audit(NewAudit { detail: format!("tags {}", names.join(", ")), ..template.clone() })
}

/// Refuses a session that would carry more than [`MAX_TAGS_PER_SESSION`] tags.
pub(crate) fn check_tag_count(session: SessionId, count: i64) -> Result<(), StoreError> {
    if count > MAX_TAGS_PER_SESSION as i64 {
        return Err(StoreError::Invalid {
            what: format!(
                "session {session} would carry {count} tags: at most {MAX_TAGS_PER_SESSION}; \
                 remove some first"
            ),
        });
    }
    Ok(())
}

impl Store {
    /// Puts `c.tags` on the session and writes a `session_tagged` event naming the ones it
    /// did not carry yet, both or neither. Tags it already carries are left as they are.
    /// Returns the tags added (none: no event).
    ///
    /// # Errors
    /// `NotFound` for an unknown session; `Invalid` when the session would carry more than
    /// [`MAX_TAGS_PER_SESSION`] tags; database failures.
    pub async fn add_session_tags(&self, c: &TagChange<'_>) -> Result<Vec<Tag>, StoreError> {
        self.change_tags(TagOp::Add, c).await
    }

    /// Takes `c.tags` off the session and writes a `session_untagged` event naming the ones
    /// it carried, both or neither. Returns the tags removed (none: no event).
    ///
    /// # Errors
    /// `NotFound` for an unknown session; database failures.
    pub async fn remove_session_tags(&self, c: &TagChange<'_>) -> Result<Vec<Tag>, StoreError> {
        self.change_tags(TagOp::Remove, c).await
    }

    async fn change_tags(&self, how: TagOp, c: &TagChange<'_>) -> Result<Vec<Tag>, StoreError> {
        let template = clean_audit(NewAudit {
            actor: c.actor.to_owned(),
            action: how.action(),
            session_id: Some(c.session),
            client_addr: c.client_addr.map(str::to_owned),
            detail: String::new(),
        });
        let k = self.signer();
        let r = dispatch!(self, b => b.change_tags(how, c, &template, k).await);
        match &r {
            Ok(changed) => log_audit(&tag_audit(&template, changed), Ok(!changed.is_empty())),
            Err(e) => log_audit(&tag_audit(&template, c.tags), Err(e)),
        }
        r
    }

    /// The session's tags, sorted, with who added each and when.
    ///
    /// # Errors
    /// Database failures only (an unknown session has no tags).
    pub async fn session_tags(&self, session: SessionId) -> Result<Vec<SessionTag>, StoreError> {
        dispatch!(self, b => b.session_tags(session).await)
    }
}
