//! Crash recovery: sessions left `active` by a gateway that died are sealed `interrupted`.
//!
//! Recovery never stops the gateway from starting: a session it cannot seal is marked and
//! audited instead, and the next one is tried.

use keepwatch_core::{AuditAction, SessionId, SessionStatus};
use keepwatch_recording::{RecoverError, UnsignedTail, recover};
use keepwatch_store::{NewAudit, SessionFilter, now_us};

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

/// Seals every session the database still calls active (see [`Recovered`]), auditing each.
/// Returns what happened to each. Call before accepting connections.
///
/// # Errors
/// Only when the list of active sessions cannot be read; one session's failure is recorded
/// in its [`Recovered`] and the others go on.
pub async fn recover_interrupted(
    ctx: &RecorderContext,
) -> Result<Vec<(SessionId, Recovered)>, RecorderError> {
    let active =
        ctx.store.sessions(&SessionFilter::active()).await.map_err(|source| {
            RecorderError::Store { id: SessionId::from_bytes([0; 16]), source }
        })?;
    let mut out = Vec::new();
    for s in active {
        let outcome = recover_now(ctx, s.id, "gateway stopped while the session ran").await;
        out.push((s.id, outcome));
    }
    Ok(out)
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
    let path = ctx.blobs.spool_path(id);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // No spool: either the recording never started (the target was never contacted),
            // or the file was removed after channels ran. The second is history: keep the
            // session, marked, for `verify` to report, rather than remove it as never started.
            return match ctx.store.channels(id).await {
                Ok(channels) if channels.is_empty() => never_started(ctx, id).await,
                Ok(channels) => {
                    let why = format!(
                        "its recording {} is missing ({} channel(s) had run)",
                        path.display(),
                        channels.len()
                    );
                    unsealed(ctx, id, why).await
                }
                Err(e) => {
                    unsealed(
                        ctx,
                        id,
                        format!("{} missing, and its channels unreadable: {e}", path.display()),
                    )
                    .await
                }
            };
        }
        Err(e) => return unsealed(ctx, id, format!("cannot read {}: {e}", path.display())).await,
    };
    let reason = reason.to_owned();
    let ended = now_us();
    let r = match recover(
        &bytes,
        &ctx.signing_key,
        SessionStatus::Interrupted,
        Some(reason.clone()),
        ended,
    ) {
        Ok(r) => r,
        Err(RecoverError::Empty) => return never_started(ctx, id).await,
        Err(e) => {
            return unsealed(ctx, id, format!("recovery refused to seal {}: {e}", path.display()))
                .await;
        }
    };
    // The sealed bytes replace the spool atomically: a crash now leaves one or the other.
    let tmp = path.with_extension("recovering");
    let written = std::fs::write(&tmp, &r.bytes)
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return unsealed(ctx, id, format!("cannot write {}: {e}", path.display())).await;
    }
    if let Err(e) = finish(ctx, id, SessionStatus::Interrupted, Some(&reason), &r.seal, ended).await
    {
        return unsealed(ctx, id, format!("sealed, but cannot store the seal: {e}")).await;
    }
    Recovered::Sealed { cut_bytes: r.cut_bytes, unsigned_tail: r.unsigned_tail }
}

async fn never_started(ctx: &RecorderContext, id: SessionId) -> Recovered {
    let _ = std::fs::remove_file(ctx.blobs.spool_path(id));
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
