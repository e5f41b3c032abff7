//! What people ran: the command rows and keyframes the indexer writes, the full-text search
//! over them ([`crate::search`]), and how far the index is.
//!
//! The indexer writes its progress with the rows it produced (`add_commands`); the length of
//! the recording is read from the blob store when asked, because a live recording grows
//! between two indexer ticks and the difference is exactly what a reader wants to know.

use std::borrow::Cow;

use keepwatch_core::{NodeId, SessionId};

use super::{Backend, Store, dispatch, storable};
use crate::decode::IndexRow;
use crate::rows::*;
use crate::{BlobStore, StoreError};

impl Store {
    /// Adds command rows and output blocks of a session (with their search entries) and
    /// records how far the indexer got, in one transaction: whoever reads the progress also
    /// sees the rows.
    ///
    /// # Errors
    /// Database failures, including a `seq` written twice.
    pub async fn add_commands(
        &self,
        session: SessionId,
        rows: &[CommandRow],
        blocks: &[OutputBlock],
        progress: IndexProgress,
    ) -> Result<(), StoreError> {
        let rows: Cow<[CommandRow]> = if rows.iter().any(holds_nul) {
            Cow::Owned(rows.iter().map(without_nul).collect())
        } else {
            Cow::Borrowed(rows)
        };
        let blocks: Cow<[OutputBlock]> = if blocks.iter().any(|b| b.text.contains('\0')) {
            // U+FFFD is three bytes where NUL was one: the marks' offsets move with it.
            Cow::Owned(blocks.iter().map(block_without_nul).collect())
        } else {
            Cow::Borrowed(blocks)
        };
        dispatch!(self, b => b.add_commands(session, &rows, &blocks, progress).await)
    }

    /// Adds terminal keyframes of a session (a keyframe written twice is kept once).
    ///
    /// # Errors
    /// Database failures only.
    pub async fn add_keyframes(
        &self,
        session: SessionId,
        rows: &[KeyframeRow],
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        dispatch!(self, b => b.add_keyframes(session, rows).await)
    }

    /// The last keyframe of a channel at or before `at_us`.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn keyframe_before(
        &self,
        session: SessionId,
        channel: u32,
        at_us: u64,
    ) -> Result<Option<KeyframeRow>, StoreError> {
        dispatch!(self, b => b.keyframe_before(session, channel, at_us).await)
    }

    /// Forgets what was indexed for a session (before indexing it again from the start).
    ///
    /// # Errors
    /// Database failures only.
    pub async fn clear_index(&self, session: SessionId) -> Result<(), StoreError> {
        dispatch!(self, b => b.clear_index(session).await)
    }

    /// Notes that a session's recording could not be indexed, and why; it is not retried
    /// until `reindex` asks for it.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn set_index_error(&self, session: SessionId, error: &str) -> Result<(), StoreError> {
        dispatch!(self, b => b.set_index_error(session, error).await)
    }

    /// Ended sessions whose index is missing or incomplete (and did not fail), oldest first.
    /// With `node`, only those that node should catch up: its own, those from before nodes,
    /// and those of a node no longer registered (dead and forgotten), so that two nodes do
    /// not index the same session at once.
    ///
    /// # Errors
    /// Database failures, or an id that does not parse.
    pub async fn sessions_to_index(
        &self,
        limit: u32,
        node: Option<&NodeId>,
    ) -> Result<Vec<SessionId>, StoreError> {
        dispatch!(self, b => b.sessions_to_index(limit, node).await)
    }

    /// The `limit` command lines (shell, exec, SQL, file operations) run most often since
    /// `since_us`, with how many times each ran, most first.
    ///
    /// # Errors
    /// Database failures.
    pub async fn top_commands(
        &self,
        since_us: i64,
        limit: u32,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        dispatch!(self, b => b.top_commands(since_us, limit).await)
    }

    /// Every command row of `session`, in order.
    ///
    /// # Errors
    /// Database failures.
    pub async fn commands(&self, session: SessionId) -> Result<Vec<CommandRow>, StoreError> {
        dispatch!(self, b => b.commands(session).await)
    }

    /// Command lines and lines of output containing `q.text` case-insensitively, newest
    /// first. What the index does not hold yet is not in the answer: ask
    /// [`Store::search_gaps`] which sessions that is.
    ///
    /// # Errors
    /// Database failures, or a row that does not parse.
    pub async fn search(&self, q: &SearchQuery) -> Result<SearchAnswer, StoreError> {
        let q = if q.text.contains('\0') {
            Cow::Owned(SearchQuery { text: storable(&q.text), ..q.clone() })
        } else {
            Cow::Borrowed(q)
        };
        dispatch!(self, b => b.search(&q).await)
    }

    /// Finishes giving the search index what a schema upgrade took out of it (SQLite's
    /// output index after migrations 0014 and 0015: every output block written before, from
    /// its stored text), a batch per transaction; returns at once when there is nothing to
    /// do, and on PostgreSQL. Opening a store does not wait for it: `keepwatch run` drives it
    /// in the background, any process may (each goes on from where the last stopped), and
    /// meanwhile the sessions whose output is not in the index yet are not complete in
    /// [`Store::index_status`] and [`Store::search_gaps`].
    ///
    /// # Errors
    /// Database failures; what was given before stays given.
    pub async fn finish_index_rebuild(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(b) => b.index.finish_rebuild().await,
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// The sessions a search `q` could match whose index is not complete (live, not caught
    /// up yet, or failed), so an answer can say where it may be missing matches. Filtered by
    /// the query's person, target, session, tag and time bounds (never someone else's
    /// sessions for a person's own search); the oldest [`IndexGaps::LISTED`], and how many.
    ///
    /// # Errors
    /// Database or blob store failures.
    pub async fn search_gaps(
        &self,
        blobs: &BlobStore,
        q: &SearchQuery,
    ) -> Result<IndexGaps, StoreError> {
        let rows = dispatch!(self, b => b.index_rows(IndexScope::UnfinishedFor(q)).await)?;
        let total = rows.len() as u64;
        let mut gaps = Vec::with_capacity(rows.len().min(IndexGaps::LISTED));
        for row in rows.into_iter().take(IndexGaps::LISTED) {
            let (person, target) = (row.person.clone(), row.target.clone());
            // Never complete: the query leaves those out.
            let status = status_of(blobs, row).await?;
            gaps.push(IndexGap {
                session_id: status.session_id,
                person,
                target,
                state: status.state,
                session_status: status.session_status,
                bytes_indexed: status.bytes_indexed,
                bytes_recorded: status.bytes_recorded,
                error: status.error,
            });
        }
        Ok(IndexGaps { listed: gaps, total })
    }

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
        let rows = dispatch!(self, b => b.index_rows(scope).await)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(status_of(blobs, r).await?);
        }
        Ok(out)
    }
}

/// A session's index status: its row, and its recording's length read after it (a
/// recording only grows, so what was indexed is never reported past what was recorded).
async fn status_of(blobs: &BlobStore, r: IndexRow) -> Result<IndexStatus, StoreError> {
    let bytes_recorded = blobs.recording_len(r.session_id).await?;
    let state = match (&r.error, r.complete, r.output_pending) {
        (Some(_), _, _) => IndexState::Error,
        (None, false, _) => IndexState::Behind,
        (None, true, true) => IndexState::Rebuilding,
        (None, true, false) => IndexState::Complete,
    };
    let progress = r.bytes_indexed.map(|b| b.max(0) as u64);
    let bytes_indexed = match state {
        IndexState::Complete | IndexState::Rebuilding => bytes_recorded.or(progress).unwrap_or(0),
        IndexState::Behind | IndexState::Error => progress.unwrap_or(0),
    };
    Ok(IndexStatus {
        session_id: r.session_id,
        session_status: r.status,
        state,
        bytes_indexed,
        bytes_recorded,
        commands: r.commands.clamp(0, i64::from(u32::MAX)) as u32,
        updated_at_us: r.updated_at_us,
        error: r.error,
    })
}

fn holds_nul(c: &CommandRow) -> bool {
    [&c.command, &c.prompt, &c.output].iter().any(|t| t.contains('\0'))
        || c.typed.as_ref().is_some_and(|t| t.contains('\0'))
}

fn block_without_nul(b: &OutputBlock) -> OutputBlock {
    let mut text = String::with_capacity(b.text.len());
    let mut marks = Vec::with_capacity(b.marks.len());
    let mut next = b.marks.iter().peekable();
    for (i, c) in b.text.char_indices() {
        while let Some(&&(at, t)) = next.peek() {
            if at as usize > i {
                break;
            }
            marks.push((text.len() as u32, t));
            next.next();
        }
        text.push(if c == '\0' { '\u{fffd}' } else { c });
    }
    marks.extend(next.map(|&(_, t)| (text.len() as u32, t)));
    OutputBlock { text, marks, ..b.clone() }
}

fn without_nul(c: &CommandRow) -> CommandRow {
    CommandRow {
        command: storable(&c.command),
        prompt: storable(&c.prompt),
        output: storable(&c.output),
        typed: c.typed.as_deref().map(storable),
        ..c.clone()
    }
}
