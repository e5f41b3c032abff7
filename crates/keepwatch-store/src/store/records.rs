//! What happened: sessions, channels, transfers, the ledger of sealed sessions, the audit
//! trail and API tokens.

use keepwatch_core::metrics::{METRICS, Refused};
use keepwatch_core::{PersonName, Role, SessionId, SessionStatus};

use super::{Store, dispatch};
use crate::StoreError;
use crate::chain::{clean_audit, log_audit};
use crate::rows::*;

/// A token about to be stored.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub name: &'a str,
    pub role: Role,
    /// Required for the `user` role: a user token sees only this person's sessions.
    pub person: Option<&'a PersonName>,
    pub sha256_hex: &'a str,
}

impl Store {
    // ---- sessions ----

    /// # Errors
    /// Database failures only.
    pub async fn insert_session(&self, s: &SessionRow) -> Result<(), StoreError> {
        dispatch!(self, b => b.insert_session(s).await)
    }

    /// Removes a session row whose recording could not be started (so no session exists
    /// without a recording; the refusal is kept as an audit event instead).
    ///
    /// # Errors
    /// Database failures only.
    pub async fn delete_unrecorded_session(&self, id: SessionId) -> Result<(), StoreError> {
        dispatch!(self, b => b.delete_unrecorded_session(id).await)
    }

    /// Ends a session that could not be sealed (crash recovery found its recording forged or
    /// unreadable): the row says `status` and why, with no seal, so `verify` keeps reporting
    /// the recording.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn end_unsealed_session(
        &self,
        id: SessionId,
        status: SessionStatus,
        reason: &str,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.end_unsealed_session(id, status, reason).await)
    }

    /// Records the seal of a session and appends it to the ledger, in one transaction that
    /// the database serialises with every other ledger append (see `chain.rs`).
    ///
    /// # Errors
    /// Database failures only.
    pub async fn finish_session(
        &self,
        id: SessionId,
        status: SessionStatus,
        reason: Option<&str>,
        seal: &keepwatch_recording::SealInfo,
        ended_at_us: i64,
        ledger_key: &ed25519_dalek::SigningKey,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.finish_session(id, status, reason, seal, ended_at_us, ledger_key).await)
    }

    /// # Errors
    /// Database failures, or a row that does not parse.
    pub async fn session(&self, id: SessionId) -> Result<Option<SessionRow>, StoreError> {
        dispatch!(self, b => b.session(id).await)
    }

    /// Sessions matching `f`, newest first.
    ///
    /// # Errors
    /// Database failures, or a row that does not parse.
    pub async fn sessions(&self, f: &SessionFilter) -> Result<Vec<SessionRow>, StoreError> {
        dispatch!(self, b => b.sessions(f).await)
    }

    /// Sessions matching `f`, newest first, each with its channels and last command (two
    /// queries, whatever the number of sessions).
    ///
    /// # Errors
    /// Database failures, or a row that does not parse.
    pub async fn session_listings(
        &self,
        f: &SessionFilter,
    ) -> Result<Vec<SessionListing>, StoreError> {
        dispatch!(self, b => b.session_listings(f).await)
    }

    // ---- channels ----

    /// # Errors
    /// Database failures only.
    pub async fn add_channel(&self, session: SessionId, c: &ChannelRow) -> Result<(), StoreError> {
        let clean = |t: &Option<String>| t.as_deref().map(super::storable);
        let c = ChannelRow {
            command: clean(&c.command),
            subsystem: clean(&c.subsystem),
            pty_term: clean(&c.pty_term),
            destination: clean(&c.destination),
            ..c.clone()
        };
        dispatch!(self, b => b.add_channel(session, &c).await)
    }

    /// # Errors
    /// Database failures only.
    pub async fn close_channel(
        &self,
        session: SessionId,
        channel: u32,
        exit_status: Option<u32>,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.close_channel(session, channel, exit_status).await)
    }

    /// # Errors
    /// Database failures, or a row that does not parse.
    pub async fn channels(&self, session: SessionId) -> Result<Vec<ChannelRow>, StoreError> {
        dispatch!(self, b => b.channels(session).await)
    }

    // ---- transfers ----

    /// Stores a transfer (its `id` and `capture` are ignored) and returns its new id.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn add_transfer(&self, t: &TransferRow) -> Result<i64, StoreError> {
        // An SFTP path is any bytes the client sends, a NUL too.
        let t = if t.path.contains('\0') {
            std::borrow::Cow::Owned(TransferRow { path: super::storable(&t.path), ..t.clone() })
        } else {
            std::borrow::Cow::Borrowed(t)
        };
        dispatch!(self, b => b.add_transfer(&t).await)
    }

    /// Records whether a transfer's content was kept.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn record_capture(
        &self,
        transfer_id: i64,
        capture: &ContentCapture,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.record_capture(transfer_id, capture).await)
    }

    /// One transfer by id.
    ///
    /// # Errors
    /// Database failures, or a row that does not parse.
    pub async fn transfer(&self, id: i64) -> Result<Option<TransferRow>, StoreError> {
        dispatch!(self, b => b.transfer(id).await)
    }

    /// Transfers matching `f`, newest first.
    ///
    /// # Errors
    /// Database failures, or a row that does not parse.
    pub async fn transfers(&self, f: &TransferFilter) -> Result<Vec<TransferRow>, StoreError> {
        dispatch!(self, b => b.transfers(f).await)
    }

    // ---- ledger ----

    /// # Errors
    /// Database failures, or a row that does not parse.
    pub async fn ledger(&self) -> Result<Vec<LedgerRow>, StoreError> {
        dispatch!(self, b => b.ledger().await)
    }

    /// How many ledger entries there are and the hash of the last (`None` while empty),
    /// for anchors.
    ///
    /// # Errors
    /// Database failures, or a row that does not parse.
    pub async fn ledger_head(&self) -> Result<Option<(u64, [u8; 32])>, StoreError> {
        dispatch!(self, b => b.ledger_head().await)
    }

    // ---- audit ----

    /// The id of the newest audit event in the chain and its hash (`None` while empty), for
    /// anchors.
    ///
    /// # Errors
    /// Database failures, or a row that does not parse.
    pub async fn audit_head(&self) -> Result<Option<(i64, [u8; 32])>, StoreError> {
        dispatch!(self, b => b.audit_head().await)
    }

    /// The chain hash stored for audit event `id`, if the chain has it.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn audit_link(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, b => b.audit_link(id).await)
    }

    /// Writes an audit event with its chain link. Also logged, so an audit write failure
    /// is never silent. The actor, client address and detail are cleaned first: what is
    /// hashed into the chain, stored, logged and later printed holds no control character
    /// and has a bounded length.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn audit(&self, a: NewAudit) -> Result<(), StoreError> {
        let a = clean_audit(a);
        if let Some(why) = Refused::of_audit(a.action) {
            METRICS.refused(why);
        }
        let r = dispatch!(self, b => b.audit(&a, self.signer()).await);
        log_audit(&a, r.as_ref().map(|_| true));
        r
    }

    /// Audit events matching `f`, newest first.
    ///
    /// # Errors
    /// Database failures, or a row whose action or session id does not parse (`verify`
    /// says why).
    pub async fn audit_events(&self, f: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        dispatch!(self, b => b.audit_events(f).await)
    }

    /// At most `limit` audit events with an id above `after`, oldest first, exactly as
    /// stored: how the event feed follows the trail (ids grow in the order events commit,
    /// see `chain.rs`). Raw rather than typed, so that a row with an action this version
    /// does not know (or one edited by hand) is still sent instead of stopping the feed.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn audit_events_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredAudit>, StoreError> {
        dispatch!(self, b => b.audit_events_after(after, limit).await)
    }

    /// Every audit event, oldest first, with its chain hash and signature (absent when the
    /// event has no chain row), for `verify`.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn audit_chain(&self) -> Result<Vec<AuditLink>, StoreError> {
        dispatch!(self, b => b.audit_chain().await)
    }

    /// Chain rows whose event is gone (an audit event deleted from under its chain row).
    ///
    /// # Errors
    /// Database failures only.
    pub async fn orphaned_audit_links(&self) -> Result<Vec<i64>, StoreError> {
        dispatch!(self, b => b.orphaned_audit_links().await)
    }

    // ---- API tokens ----

    /// Stores a token and its audit event `audit`, both or neither.
    ///
    /// # Errors
    /// `Invalid` for a `user` token without a person; `NotFound` when the person does not
    /// exist; `Exists` when a token of that name exists; database failures.
    pub async fn add_token(&self, t: &NewToken<'_>, audit: NewAudit) -> Result<(), StoreError> {
        if t.role == Role::User && t.person.is_none() {
            return Err(StoreError::Invalid {
                what: format!("token {}: a user token must name the person it acts for", t.name),
            });
        }
        let a = clean_audit(audit);
        let k = self.signer();
        let r =
            dispatch!(self, b => b.add_token(t.name, t.role, t.person, t.sha256_hex, &a, k).await);
        log_audit(&a, r.as_ref().map(|_| true));
        r
    }

    /// Replaces the token of `name` (the CLI's local credential at each start) and writes
    /// its audit event, both or neither. The token acts for no person.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn set_token(
        &self,
        name: &str,
        role: Role,
        sha256_hex: &str,
        audit: NewAudit,
    ) -> Result<(), StoreError> {
        let a = clean_audit(audit);
        let k = self.signer();
        let r = dispatch!(self, b => b.set_token(name, role, sha256_hex, &a, k).await);
        log_audit(&a, r.as_ref().map(|_| true));
        r
    }

    /// The token whose SHA-256 is `sha256_hex`, noting its use.
    ///
    /// # Errors
    /// Database failures, or a stored role or person that does not parse.
    pub async fn token_by_hash(&self, sha256_hex: &str) -> Result<Option<TokenRow>, StoreError> {
        dispatch!(self, b => b.token_by_hash(sha256_hex).await)
    }

    /// # Errors
    /// Database failures, or a stored role or person that does not parse.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        dispatch!(self, b => b.tokens().await)
    }

    /// Removes a token and writes its audit event `audit`, both or neither.
    ///
    /// # Errors
    /// `NotFound` when there is no such token (nothing is audited then).
    pub async fn remove_token(&self, name: &str, audit: NewAudit) -> Result<(), StoreError> {
        let a = clean_audit(audit);
        let k = self.signer();
        let r = dispatch!(self, b => b.remove_token(name, &a, k).await);
        log_audit(&a, r.as_ref().map(|_| true));
        r
    }
}
