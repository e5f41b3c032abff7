//! Crash recovery: sessions left `active` by a gateway that died are sealed `interrupted`.

use keepwatch_core::{SessionId, SessionStatus};
use keepwatch_recording::{RecordingWriter, Seal, valid_prefix_len};
use keepwatch_store::{SessionFilter, now_us};

use crate::{RecorderContext, RecorderError, finish};

/// Seals every session the database still calls active: the spool is cut back to its last
/// whole chunk (a torn write is dropped) and a signed `interrupted` seal is appended, so the
/// recording verifies. Returns the sessions it sealed. Call before accepting connections.
///
/// # Errors
/// Fails on the first session that cannot be recovered; the others stay for the next try.
pub async fn recover_interrupted(ctx: &RecorderContext) -> Result<Vec<SessionId>, RecorderError> {
    let active = ctx
        .store
        .sessions(&SessionFilter { active_only: true, ..Default::default() })
        .await
        .map_err(|source| RecorderError::Store { id: SessionId::from_bytes([0; 16]), source })?;
    let mut sealed = Vec::new();
    for s in active {
        let path = ctx.blobs.spool_path(s.id);
        let io_err = |e: std::io::Error| RecorderError::Failed {
            id: s.id,
            reason: format!("cannot recover {}: {e}", path.display()),
        };
        let bytes = std::fs::read(&path).map_err(io_err)?;
        let keep = valid_prefix_len(&bytes);
        let writer =
            RecordingWriter::resume(&bytes[..keep], (*ctx.signing_key).clone()).map_err(|e| {
                RecorderError::Failed {
                    id: s.id,
                    reason: format!("cannot resume {}: {e}", path.display()),
                }
            })?;
        let at_us = writer.last_at_us();
        let ended = now_us();
        let reason = "gateway stopped while the session ran".to_owned();
        let (tail, info) = writer.seal(
            at_us,
            Seal {
                status: SessionStatus::Interrupted,
                reason: Some(reason.clone()),
                ended_at_us: ended,
            },
            ended,
        );
        let mut out = bytes;
        out.truncate(keep);
        out.extend_from_slice(&tail);
        std::fs::write(&path, &out).map_err(io_err)?;
        std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(io_err)?;
        finish(ctx, s.id, SessionStatus::Interrupted, Some(&reason), &info, ended).await?;
        tracing::warn!(session_id = %s.id, dropped_bytes = out.len().saturating_sub(keep), "sealed interrupted session");
        sealed.push(s.id);
    }
    Ok(sealed)
}
