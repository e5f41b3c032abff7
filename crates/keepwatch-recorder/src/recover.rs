//! Crash recovery: sessions left `active` by a gateway that died are sealed `interrupted`.
//!
//! Recovery never stops the gateway from starting: a session it cannot seal is marked and
//! audited instead, and the next one is tried.

use keepwatch_core::{AuditAction, NodeId, SessionId, SessionStatus};
use keepwatch_recording::{RecoverError, UnsignedTail, recover};
use keepwatch_store::{Layout, NewAudit, SessionFilter, now_us};

use crate::{RecorderContext, RecorderError, finish};

/// The audit actor of what the gateway does on its own.
pub const SYSTEM_ACTOR: &str = "keepwatch";

/// What recovery did with one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// Sealed `interrupted`; `cut_bytes` of torn or broken tail were dropped, and
    /// `unsigned_tail` names what was kept after the last checkpoint.
    Sealed { cut_bytes: u64, unsigned_tail: Option<UnsignedTail> },
    /// The recording never started (no spool, or not even its first chunk whole): the target
    /// was never contacted, so the row and spool were removed, like a refused start.
    NeverStarted,
    /// The recording could not be sealed (forged signatures, unreadable): the row is marked
    /// `interrupted` with the reason and the spool is left as it is for `verify` to report.
    Unsealed { reason: String },
}

/// Seals every session of this node (and every session from before nodes) that the
/// database still calls active (see [`Recovered`]), auditing each; another node's sessions
/// are left alone. Returns what happened to each. Call after registering the node and
/// before accepting connections.
///
/// # Errors
/// Only when the list of active sessions cannot be read; one session's failure is recorded
/// in its [`Recovered`] and the others go on.
pub async fn recover_interrupted(
    ctx: &RecorderContext,
) -> Result<Vec<(SessionId, Recovered)>, RecorderError> {
    let active = ctx.store.sessions(&SessionFilter::active()).await.map_err(store_error)?;
    let mut out = Vec::new();
    for s in active {
        // Claimed with the same statement as a survivor's claim: a session a survivor has
        // just taken (this node having been silent too long) is its to seal, not this
        // node's, and one from before nodes goes to the first node that asks.
        let from = match &s.node {
            Some(node) if *node != ctx.node => continue,
            owner => owner.as_ref(),
        };
        if !ctx.store.claim_session(s.id, from, &ctx.node, None).await.map_err(store_error)? {
            continue;
        }
        let outcome = recover_now(ctx, s.id, "gateway stopped while the session ran").await;
        out.push((s.id, outcome));
    }
    Ok(out)
}

/// Seals the sessions of every other node whose heartbeat is older than `lapsed_before_us`
/// (that node died), claiming each first so that of several survivors one seals it; then
/// forgets each such node once it owns no active session. Returns each sealed session
/// with the node it was taken from.
///
/// # Errors
/// Only when the nodes or the sessions cannot be read; one session's failure is recorded
/// in its [`Recovered`] and the others go on.
pub async fn recover_lapsed_nodes(
    ctx: &RecorderContext,
    lapsed_before_us: i64,
) -> Result<Vec<(NodeId, SessionId, Recovered)>, RecorderError> {
    let lapsed: Vec<NodeId> = ctx
        .store
        .nodes()
        .await
        .map_err(store_error)?
        .into_iter()
        .filter(|n| n.id != ctx.node && n.heartbeat_at_us < lapsed_before_us)
        .map(|n| n.id)
        .collect();
    let mut out = Vec::new();
    for dead in lapsed {
        let filter = SessionFilter { node: Some(dead.clone()), ..SessionFilter::active() };
        for s in ctx.store.sessions(&filter).await.map_err(store_error)? {
            let claimed = ctx
                .store
                .claim_session(s.id, Some(&dead), &ctx.node, Some(lapsed_before_us))
                .await
                .map_err(store_error)?;
            if !claimed {
                continue;
            }
            let reason = format!("gateway node {dead} stopped answering while the session ran");
            tracing::warn!(session_id = %s.id, node = %dead, "claimed a session of a silent node");
            let outcome = recover_now(ctx, s.id, &reason).await;
            out.push((dead.clone(), s.id, outcome));
        }
        if ctx.store.forget_node(&dead, lapsed_before_us).await.map_err(store_error)? {
            tracing::warn!(node = %dead, "forgot a node that stopped answering");
        }
    }
    Ok(out)
}

fn store_error(source: keepwatch_store::StoreError) -> RecorderError {
    RecorderError::Store { id: SessionId::from_bytes([0; 16]), source }
}

/// Seals one session from its spool as `interrupted` with `reason` (see [`Recovered`]),
/// audited and logged.
pub(crate) async fn recover_now(ctx: &RecorderContext, id: SessionId, reason: &str) -> Recovered {
    let outcome = recover_one(ctx, id, reason).await;
    {
        let s = id;
        let detail = match &outcome {
            Recovered::Sealed { cut_bytes, unsigned_tail } => {
                let mut d = "sealed interrupted".to_owned();
                if *cut_bytes > 0 {
                    d.push_str(&format!("; cut {cut_bytes} bytes of torn or broken tail"));
                }
                if let Some(t) = unsigned_tail {
                    let after = t.after_seq.map_or("the start".into(), |s| format!("chunk {s}"));
                    d.push_str(&format!(
                        "; kept {} bytes ({} events) after {after} that no checkpoint had signed",
                        t.bytes, t.events
                    ));
                }
                d
            }
            Recovered::NeverStarted => {
                "removed: its recording never started, so the target was never contacted".into()
            }
            Recovered::Unsealed { reason } => format!("left unsealed: {reason}"),
        };
        tracing::warn!(session_id = %s, %detail, "recovered session");
        let audit = NewAudit {
            actor: SYSTEM_ACTOR.into(),
            action: AuditAction::SessionRecovered,
            session_id: Some(s),
            client_addr: None,
            detail,
        };
        if let Err(e) = ctx.store.audit(audit).await {
            tracing::error!(session_id = %s, error = %e, "cannot audit a recovered session");
        }
    }
    outcome
}

async fn recover_one(ctx: &RecorderContext, id: SessionId, reason: &str) -> Recovered {
    let spool = ctx.blobs.spool();
    let location = spool.location(id);
    if !spool.contains(id)
        && ctx.blobs.archive().layout() == Layout::Segmented
        && let Err(e) = restore_from_archive(ctx, id).await
    {
        return unsealed(ctx, id, format!("cannot restore {location} from the archive: {e}")).await;
    }
    let bytes = match spool.read_all(id) {
        Ok(Some(b)) => b,
        Ok(None) => {
            // No spool: either the recording never started (the target was never contacted),
            // or the file was removed after channels ran. The second is history: keep the
            // session, marked, for `verify` to report, rather than remove it as never started.
            return match ctx.store.channels(id).await {
                Ok(channels) if channels.is_empty() => never_started(ctx, id).await,
                Ok(channels) => {
                    let why = format!(
                        "its recording {location} is missing ({} channel(s) had run)",
                        channels.len()
                    );
                    unsealed(ctx, id, why).await
                }
                Err(e) => {
                    let why = format!("{location} missing, and its channels unreadable: {e}");
                    unsealed(ctx, id, why).await
                }
            };
        }
        Err(e) => return unsealed(ctx, id, format!("cannot read {location}: {e}")).await,
    };
    let reason = reason.to_owned();
    let ended = now_us();
    // With its data key, recovery opens the sealed chunks (a changed one is cut, the unsigned
    // tail's events are counted); without it, it seals what chains (the seal is in clear).
    let data_key = ctx.store.recording_key(id).await.unwrap_or_else(|e| {
        tracing::warn!(session_id = %id, error = %e, "recovering without the data key");
        None
    });
    let r = match recover(
        &bytes,
        &ctx.signing_key,
        SessionStatus::Interrupted,
        Some(reason.clone()),
        ended,
        data_key.as_ref(),
    ) {
        Ok(r) => r,
        Err(RecoverError::Empty) => return never_started(ctx, id).await,
        Err(e) => {
            return unsealed(ctx, id, format!("recovery refused to seal {location}: {e}")).await;
        }
    };
    drop(bytes);
    // The sealed bytes replace the spool atomically: a crash now leaves one or the other.
    if let Err(e) = spool.replace(id, &r.bytes) {
        return unsealed(ctx, id, format!("cannot write {location}: {e}")).await;
    }
    if let Err(e) =
        finish(ctx, id, SessionStatus::Interrupted, Some(&reason), &r.seal, ended, None).await
    {
        return unsealed(ctx, id, format!("sealed, but cannot store the seal: {e}")).await;
    }
    Recovered::Sealed { cut_bytes: r.cut_bytes, unsigned_tail: r.unsigned_tail }
}

/// Rebuilds a session's spool file from the segments its writer uploaded (the node that ran
/// it lost its disk, or another node recovers it): the segments that follow each other from
/// byte 0, in order. What they hold is checked by recovery like any spool. Nothing archived
/// leaves the spool empty.
async fn restore_from_archive(
    ctx: &RecorderContext,
    id: SessionId,
) -> Result<(), keepwatch_store::StoreError> {
    let archive = ctx.blobs.archive();
    let segments = archive.segments(id).await?;
    if segments.is_empty() {
        return Ok(());
    }
    let mut out = ctx.blobs.spool().restore(id)?;
    let mut at = 0u64;
    for s in segments {
        if s.start != at {
            continue; // a second copy of a range already taken, or a gap: stop there
        }
        let mut from = 0;
        while from < s.size {
            let to = s.size.min(from + (1 << 20));
            let Some(piece) = archive.read_object_range(&s.key, from..to).await? else { break };
            if piece.is_empty() {
                break;
            }
            from += piece.len() as u64;
            out.append(&piece)?;
        }
        at += from;
        if from != s.size {
            break;
        }
    }
    tracing::warn!(session_id = %id, bytes = at, "no spool file: restored it from the archive's segments");
    out.finish()
}

/// Archives the spool files of sessions that were sealed but not yet archived when the
/// gateway stopped (a local archive: moved now; a segmented one: uploaded in the
/// background). Call after [`recover_interrupted`].
///
/// # Errors
/// The spool or the database cannot be read.
pub async fn archive_sealed_spools(ctx: &RecorderContext) -> Result<usize, RecorderError> {
    let none = SessionId::from_bytes([0; 16]);
    let spooled = ctx
        .blobs
        .spool()
        .recordings()
        .map_err(|source| RecorderError::Store { id: none, source })?;
    let mut n = 0;
    for (id, _) in spooled {
        let row =
            ctx.store.session(id).await.map_err(|source| RecorderError::Store { id, source })?;
        if row.is_none_or(|r| r.chain_head.is_none()) {
            continue; // live elsewhere, or left for verify to report
        }
        match ctx.blobs.archive().layout() {
            Layout::Whole => {
                if let Err(e) = ctx.blobs.commit_whole(id).await {
                    tracing::error!(session_id = %id, error = %e, "cannot move a sealed spool into the archive");
                    continue;
                }
            }
            Layout::Segmented => ctx.shipper.archive_sealed(id),
        }
        n += 1;
    }
    Ok(n)
}

async fn never_started(ctx: &RecorderContext, id: SessionId) -> Recovered {
    let _ = ctx.blobs.spool().remove(id);
    if let Err(e) = ctx.store.delete_unrecorded_session(id).await {
        return Recovered::Unsealed {
            reason: format!("its recording never started, and the row cannot be removed: {e}"),
        };
    }
    Recovered::NeverStarted
}

async fn unsealed(ctx: &RecorderContext, id: SessionId, reason: String) -> Recovered {
    if let Err(e) = ctx.store.end_unsealed_session(id, SessionStatus::Interrupted, &reason).await {
        tracing::error!(session_id = %id, error = %e, "cannot mark an unrecoverable session");
    }
    Recovered::Unsealed { reason }
}
