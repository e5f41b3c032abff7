//! How far the indexer got with each session: the one answer to "is the index of this
//! session complete, and if not, how much of its recording does it cover?".
//!
//! The indexer writes its progress with the rows it produced (`add_commands`); the length of
//! the recording is read from the blob store when asked, because a live recording grows
//! between two indexer ticks and the difference is exactly what a reader wants to know.

use keepwatch_core::SessionId;
use sqlx::Row;

use super::*;
use crate::BlobStore;

#[cfg(test)]
mod tests;

/// Every session with what the indexer wrote for it (a macro, so the queries stay literal).
macro_rules! status_select {
    () => {
        "SELECT s.id, s.status, i.complete, i.commands, i.error, i.updated_at_us, \
         p.bytes_indexed FROM sessions s LEFT JOIN index_state i ON i.session_id = s.id \
         LEFT JOIN index_progress p ON p.session_id = s.id"
    };
}

impl Store {
    /// The index status of the sessions in `scope`: complete (the recording ended and every
    /// event is indexed), behind (with how many bytes of the recording are indexed and how
    /// long it is now) or error.
    ///
    /// # Errors
    /// Database or blob store failures; `NotFound` for a session in
    /// [`IndexScope::Sessions`] that does not exist.
    pub async fn index_status(
        &self,
        blobs: &BlobStore,
        scope: IndexScope<'_>,
    ) -> Result<Vec<IndexStatus>, StoreError> {
        let rows = match scope {
            IndexScope::Unfinished => {
                sqlx::query(concat!(
                    status_select!(),
                    " WHERE i.session_id IS NULL OR i.complete = 0 OR i.error IS NOT NULL \
                     ORDER BY s.started_at_us, s.id"
                ))
                .fetch_all(&self.pool)
                .await?
            }
            IndexScope::Sessions(ids) => {
                let mut rows = Vec::with_capacity(ids.len());
                for id in ids {
                    let row = sqlx::query(concat!(status_select!(), " WHERE s.id = ?"))
                        .bind(id.to_string())
                        .fetch_optional(&self.pool)
                        .await?
                        .ok_or_else(|| StoreError::NotFound {
                            kind: "session",
                            name: id.to_string(),
                        })?;
                    rows.push(row);
                }
                rows
            }
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            // The row first, then the length: a recording only grows, so what was indexed
            // is never reported past what was recorded.
            let session_id: SessionId =
                r.get::<String, _>("id").parse().map_err(|e| corrupt("sessions.id", e))?;
            let bytes_recorded = blobs.recording_len(session_id).await?;
            out.push(status_row(r, session_id, bytes_recorded)?);
        }
        Ok(out)
    }
}

fn status_row(
    r: &sqlx::sqlite::SqliteRow,
    session_id: SessionId,
    bytes_recorded: Option<u64>,
) -> Result<IndexStatus, StoreError> {
    let status: String = r.get("status");
    let complete = r.get::<Option<bool>, _>("complete").unwrap_or(false);
    let error: Option<String> = r.get("error");
    let state = match (&error, complete) {
        (Some(_), _) => IndexState::Error,
        (None, true) => IndexState::Complete,
        (None, false) => IndexState::Behind,
    };
    let progress = r.get::<Option<i64>, _>("bytes_indexed").map(|b| b.max(0) as u64);
    let bytes_indexed = match state {
        IndexState::Complete => bytes_recorded.or(progress).unwrap_or(0),
        IndexState::Behind | IndexState::Error => progress.unwrap_or(0),
    };
    Ok(IndexStatus {
        session_id,
        session_status: status.parse().map_err(|e| corrupt("sessions.status", e))?,
        state,
        bytes_indexed,
        bytes_recorded,
        commands: r.get::<Option<i64>, _>("commands").unwrap_or(0).max(0) as u32,
        updated_at_us: r.get("updated_at_us"),
        error,
    })
}
