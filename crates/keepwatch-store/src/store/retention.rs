//! Retention policies, legal holds, and deleting a session by policy, each with its audit
//! event in the same transaction. A deletion's event (`session_deleted`) is the tombstone:
//! `verify` tells a session deleted by policy from one that went missing by it.

use keepwatch_core::retention::{HoldScope, PolicyScope};
use keepwatch_core::{AuditAction, SessionId};

use super::{Store, dispatch};
use crate::StoreError;
use crate::chain::{clean_audit, log_audit};
use crate::rows::*;

impl Store {
    /// Adds a policy (and `audit`, both or neither); returns its id.
    ///
    /// # Errors
    /// Database failures.
    pub async fn add_retention_policy(
        &self,
        scope: &PolicyScope,
        keep_s: u64,
        audit: NewAudit,
    ) -> Result<i64, StoreError> {
        let a = clean_audit(audit);
        let (k, by) = (self.signer(), a.actor.clone());
        let r = dispatch!(self, b => b.add_retention_policy(scope, keep_s, &by, &a, k).await);
        log_audit(&a, r.as_ref().map(|_| true));
        r
    }

    /// Every policy, oldest first.
    ///
    /// # Errors
    /// Database failures, or a row that does not decode.
    pub async fn retention_policies(&self) -> Result<Vec<RetentionRow>, StoreError> {
        dispatch!(self, b => b.retention_policies().await)
    }

    /// Removes policy `id` (and writes `audit`, both or neither); false when there is none.
    ///
    /// # Errors
    /// Database failures.
    pub async fn remove_retention_policy(
        &self,
        id: i64,
        audit: NewAudit,
    ) -> Result<bool, StoreError> {
        let a = clean_audit(audit);
        let k = self.signer();
        let r = dispatch!(self, b => b.remove_retention_policy(id, &a, k).await);
        log_audit(&a, r.as_ref().map(|d| *d));
        r
    }

    /// Places a hold (and writes `audit`, both or neither); returns its id.
    ///
    /// # Errors
    /// Database failures.
    pub async fn place_hold(
        &self,
        scope: &HoldScope,
        reason: &str,
        audit: NewAudit,
    ) -> Result<i64, StoreError> {
        let a = clean_audit(audit);
        let (k, by) = (self.signer(), a.actor.clone());
        let reason = keepwatch_core::clean(reason, keepwatch_core::MAX_DETAIL_BYTES);
        let r = dispatch!(self, b => b.place_hold(scope, &reason, &by, &a, k).await);
        log_audit(&a, r.as_ref().map(|_| true));
        r
    }

    /// The holds in force (and the released ones too with `released_too`), oldest first.
    ///
    /// # Errors
    /// Database failures, or a row that does not decode.
    pub async fn holds(&self, released_too: bool) -> Result<Vec<HoldRow>, StoreError> {
        dispatch!(self, b => b.holds(released_too).await)
    }

    /// Releases hold `id` (and writes `audit`, both or neither); false when it is not in
    /// force.
    ///
    /// # Errors
    /// Database failures.
    pub async fn release_hold(
        &self,
        id: i64,
        reason: &str,
        audit: NewAudit,
    ) -> Result<bool, StoreError> {
        let a = clean_audit(audit);
        let (k, by) = (self.signer(), a.actor.clone());
        let reason = keepwatch_core::clean(reason, keepwatch_core::MAX_DETAIL_BYTES);
        let r = dispatch!(self, b => b.release_hold(id, &by, &reason, &a, k).await);
        log_audit(&a, r.as_ref().map(|d| *d));
        r
    }

    /// Deletes an ended session's rows (index entries, commands, channels, transfers and the
    /// row itself; its ledger entry stays) and writes its tombstone `audit`
    /// (`session_deleted`), both or neither. False when the session is not there or not
    /// sealed. The recording's bytes are the caller's to delete, after this.
    ///
    /// # Errors
    /// Database failures; `Invalid` when `audit` is not a `session_deleted` event for it.
    pub async fn delete_ended_session(
        &self,
        id: SessionId,
        audit: NewAudit,
    ) -> Result<bool, StoreError> {
        if audit.action != AuditAction::SessionDeleted || audit.session_id != Some(id) {
            return Err(StoreError::Invalid {
                what: format!("deleting session {id} needs its session_deleted event"),
            });
        }
        let a = clean_audit(audit);
        let k = self.signer();
        let r = dispatch!(self, b => b.delete_ended_session(id, &a, k).await);
        if matches!(r, Ok(true)) {
            // Its data key went with the rows: nothing of it stays in this process either.
            self.forget_recording_key(id);
        }
        log_audit(&a, r.as_ref().map(|d| *d));
        r
    }

    /// The tombstones: every `session_deleted` event, newest first.
    ///
    /// # Errors
    /// Database failures.
    pub async fn tombstones(&self) -> Result<Vec<AuditRow>, StoreError> {
        let f = AuditFilter { action: Some(AuditAction::SessionDeleted), ..Default::default() };
        self.audit_events(&f).await
    }
}
