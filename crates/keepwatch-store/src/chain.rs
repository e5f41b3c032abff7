//! The two hash chains the store appends to, computed the same way for every backend: the
//! ledger of sealed sessions and the audit trail.
//!
//! **The chain-append rule.** An append reads the chain's head and writes the next link in
//! one transaction that the *database* serialises, never a lock in this process: several
//! gateways (and the CLI) may write to one database. SQLite takes its write lock up front
//! (`BEGIN IMMEDIATE`); PostgreSQL takes a transaction-scoped advisory lock per chain
//! (`pg_advisory_xact_lock`) before it inserts, so audit event ids, drawn from a sequence
//! while the lock is held, grow in commit order, which is the order the chain links them.

use ed25519_dalek::SigningKey;
use keepwatch_core::SessionId;
use keepwatch_recording::{SealInfo, audit_chain, ledger};

use crate::rows::NewAudit;

/// The next ledger entry after `prev` (`None`: the chain is empty).
pub(crate) struct LedgerLink {
    pub(crate) seq: u64,
    pub(crate) prev: [u8; 32],
    pub(crate) hash: [u8; 32],
    pub(crate) signature: [u8; 64],
}

pub(crate) fn ledger_link(
    prev: Option<(u64, [u8; 32])>,
    id: SessionId,
    seal: &SealInfo,
    key: &SigningKey,
) -> LedgerLink {
    let (seq, prev) = match prev {
        Some((seq, hash)) => (seq + 1, hash),
        None => (0, ledger::GENESIS),
    };
    let hash = ledger::entry_hash(&prev, seq, &id, &seal.chain_head, seal.sealed_at_us);
    LedgerLink { seq, prev, hash, signature: ledger::sign(key, &hash) }
}

/// The chain link of audit event `id` written at `at_us`, after the link `prev` (`None`:
/// the first event). Unsigned without a key (`verify` reports it).
pub(crate) fn audit_link(
    prev: Option<Vec<u8>>,
    id: i64,
    at_us: i64,
    a: &NewAudit,
    key: Option<&SigningKey>,
) -> ([u8; 32], Option<Vec<u8>>) {
    let prev = prev.and_then(|p| <[u8; 32]>::try_from(p).ok()).unwrap_or_else(audit_chain::genesis);
    let session = a.session_id.map(|s| s.to_string());
    let entry = audit_chain::AuditEntry {
        id,
        at_us,
        actor: &a.actor,
        action: a.action.as_str(),
        session_id: session.as_deref(),
        client_addr: a.client_addr.as_deref(),
        detail: &a.detail,
    };
    let hash = entry.hash(&prev);
    (hash, key.map(|k| audit_chain::sign(k, &hash).to_vec()))
}

/// `a` as it may be stored: no control characters, bounded lengths.
pub(crate) fn clean_audit(a: NewAudit) -> NewAudit {
    use keepwatch_core::{MAX_ACTOR_BYTES, MAX_DETAIL_BYTES, clean};
    NewAudit {
        actor: clean(&a.actor, MAX_ACTOR_BYTES),
        action: a.action,
        session_id: a.session_id,
        client_addr: a.client_addr.map(|c| clean(&c, MAX_ACTOR_BYTES)),
        detail: clean(&a.detail, MAX_DETAIL_BYTES),
    }
}

/// Logs an audit event as written (or not), with the cleaned fields: no control character
/// reaches the log either, and a failed write is logged as loudly as a written one.
/// `written` is whether the event was written (`Ok(false)`: its change found nothing to do).
pub(crate) fn log_audit(a: &NewAudit, written: Result<bool, &crate::StoreError>) {
    let session_id = a.session_id.map(|s| s.to_string());
    match written {
        Ok(true) => {
            tracing::info!(actor = %a.actor, action = a.action.as_str(), ?session_id, client = ?a.client_addr, detail = %a.detail, "audit")
        }
        Ok(false) => {}
        Err(e) => {
            let source = std::error::Error::source(e).map(|s| s.to_string());
            tracing::error!(actor = %a.actor, action = a.action.as_str(), ?session_id, client = ?a.client_addr, detail = %a.detail, error = %e, ?source, "audit event not written")
        }
    }
}
