//! What the indexer writes, in SQLite: command rows (with their search entries), terminal
//! keyframes and how far each session is indexed.
//!
//! Each write takes SQLite's write lock at its start (`BEGIN IMMEDIATE`): a transaction that
//! reads first (the next block id) and writes after fails at once with `SQLITE_BUSY` when the
//! gateway committed in between, without waiting out the busy timeout.

use keepwatch_core::{NodeId, SessionId};

use super::Sqlite;
use crate::decode::{self, IndexRow};
use crate::error::At;
use crate::rows::*;
use crate::search::{TextIndex, encode_marks};
use crate::{StoreError, now_us};

/// Output blocks written per statement (9 values each, well under SQLite's 32,766).
pub(super) const BLOCKS_PER_STATEMENT: usize = 256;

/// Every session with what the indexer wrote for it (a macro, so the queries stay literal).
macro_rules! status_select {
    ($pending:expr) => {
        concat!(
            "SELECT s.id, s.person, s.target, s.status, i.complete, ",
            $pending,
            " AS output_pending, i.commands, i.error, i.updated_at_us, \
             p.bytes_indexed FROM sessions s LEFT JOIN index_state i ON i.session_id = s.id \
             LEFT JOIN index_progress p ON p.session_id = s.id"
        )
    };
}

/// Whether session `s` has output blocks with ids from `$from` to `$to` (the blocks the output
/// index has not been given yet, while `Fts5Index::finish_rebuild` runs; an empty range
/// otherwise): its output is not all searchable yet (`IndexState::Rebuilding`).
macro_rules! rebuild_pending {
    ($from:literal, $to:literal) => {
        concat!(
            "(",
            $from,
            " <= ",
            $to,
            " AND EXISTS (SELECT 1 FROM output_blocks b \
             WHERE b.session_id = s.id AND b.id >= ",
            $from,
            " AND b.id <= ",
            $to,
            "))"
        )
    };
}

impl Sqlite {
    pub(crate) async fn add_commands(
        &self,
        session: SessionId,
        rows: &[CommandRow],
        blocks: &[OutputBlock],
        progress: IndexProgress,
    ) -> Result<(), StoreError> {
        const OP: &str = "add commands of session";
        let id = session.to_string();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.at(OP, session)?;
        let mut added = Vec::with_capacity(rows.len());
        for c in rows {
            let rowid: i64 = sqlx::query_scalar(
                "INSERT INTO commands (session_id, seq, channel, kind, at_us, start_offset_us, \
                 end_offset_us, command, prompt, output, confidence, output_truncated, full_screen) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(&id)
            .bind(i64::from(c.seq))
            .bind(i64::from(c.channel))
            .bind(&c.kind)
            .bind(c.at_us)
            .bind(c.start_offset_us as i64)
            .bind(c.end_offset_us.map(|v| v as i64))
            .bind(&c.command)
            .bind(&c.prompt)
            .bind(&c.output)
            .bind(&c.confidence)
            .bind(c.output_truncated)
            .bind(c.full_screen)
            .fetch_one(&mut *tx)
            .await
            .at(OP, session)?;
            if let Some(typed) = &c.typed {
                sqlx::query("INSERT INTO command_typed (id, typed) VALUES (?, ?)")
                    .bind(rowid)
                    .bind(typed)
                    .execute(&mut *tx)
                    .await
                    .at(OP, session)?;
            }
            added.push((rowid, c));
        }
        // Many rows per statement: each statement is a round trip to SQLite's thread. The
        // ids are given here (the transaction holds the only write lock).
        let next: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) + 1 FROM output_blocks")
            .fetch_one(&mut *tx)
            .await
            .at(OP, session)?;
        let stored: Vec<(i64, &OutputBlock)> =
            blocks.iter().enumerate().map(|(i, b)| (next + i as i64, b)).collect();
        for chunk in stored.chunks(BLOCKS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO output_blocks (id, session_id, channel, at_us, start_offset_us, \
                 end_offset_us, text_len, body, marks) ",
            );
            insert.push_values(chunk, |mut row, (rowid, b)| {
                row.push_bind(*rowid)
                    .push_bind(&id)
                    .push_bind(i64::from(b.channel))
                    .push_bind(b.at_us)
                    .push_bind(b.start_offset_us as i64)
                    .push_bind(b.end_offset_us as i64)
                    .push_bind(b.text.len() as i64)
                    .push_bind(decode::pack_text(&b.text))
                    .push_bind(encode_marks(&b.marks));
            });
            insert.build().execute(&mut *tx).await.at(OP, session)?;
        }
        self.index.add(&mut *tx, session, &added, &stored).await.at(OP, session)?;
        sqlx::query(
            "INSERT INTO index_state (session_id, complete, commands, error, updated_at_us) \
             VALUES (?, ?, ?, NULL, ?) ON CONFLICT (session_id) DO UPDATE SET \
             complete = excluded.complete, commands = commands + excluded.commands, error = NULL, \
             updated_at_us = excluded.updated_at_us",
        )
        .bind(&id)
        .bind(progress == IndexProgress::Complete)
        .bind(rows.len() as i64)
        .bind(now_us())
        .execute(&mut *tx)
        .await
        .at(OP, session)?;
        if let IndexProgress::Partial { bytes } = progress {
            sqlx::query(
                "INSERT INTO index_progress (session_id, bytes_indexed) VALUES (?, ?) \
                 ON CONFLICT (session_id) DO UPDATE SET bytes_indexed = excluded.bytes_indexed",
            )
            .bind(&id)
            .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .at(OP, session)?;
        }
        tx.commit().await.at(OP, session)
    }

    pub(crate) async fn add_keyframes(
        &self,
        session: SessionId,
        rows: &[KeyframeRow],
    ) -> Result<(), StoreError> {
        const OP: &str = "add keyframes of session";
        let id = session.to_string();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.at(OP, session)?;
        for k in rows {
            sqlx::query(
                "INSERT OR REPLACE INTO keyframes (session_id, channel, at_us, chunk_offset, skip_events, \
                 cols, rows, screen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&id)
            .bind(i64::from(k.channel))
            .bind(k.at_us as i64)
            .bind(k.chunk_offset as i64)
            .bind(i64::from(k.skip_events))
            .bind(i64::from(k.cols))
            .bind(i64::from(k.rows))
            .bind(&k.screen)
            .execute(&mut *tx)
            .await
            .at(OP, session)?;
        }
        tx.commit().await.at(OP, session)
    }

    pub(crate) async fn keyframe_before(
        &self,
        session: SessionId,
        channel: u32,
        at_us: u64,
    ) -> Result<Option<KeyframeRow>, StoreError> {
        const OP: &str = "read keyframe of session";
        let row = sqlx::query(
            "SELECT * FROM keyframes WHERE session_id = ? AND channel = ? AND at_us <= ? \
             ORDER BY at_us DESC LIMIT 1",
        )
        .bind(session.to_string())
        .bind(i64::from(channel))
        .bind(at_us as i64)
        .fetch_optional(&self.pool)
        .await
        .at(OP, session)?;
        row.as_ref().map(decode::keyframe).transpose().at(OP, session)
    }

    pub(crate) async fn clear_index(&self, session: SessionId) -> Result<(), StoreError> {
        const OP: &str = "clear index of session";
        let id = session.to_string();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.at(OP, session)?;
        self.index.forget(&mut *tx, &id).await.at(OP, session)?;
        for sql in [
            "DELETE FROM commands WHERE session_id = ?",
            "DELETE FROM output_blocks WHERE session_id = ?",
            "DELETE FROM keyframes WHERE session_id = ?",
            "DELETE FROM index_state WHERE session_id = ?",
            "DELETE FROM index_progress WHERE session_id = ?",
        ] {
            sqlx::query(sql).bind(&id).execute(&mut *tx).await.at(OP, session)?;
        }
        tx.commit().await.at(OP, session)
    }

    pub(crate) async fn set_index_error(
        &self,
        session: SessionId,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO index_state (session_id, complete, commands, error, updated_at_us) \
             VALUES (?, 0, 0, ?, ?) ON CONFLICT (session_id) DO UPDATE SET error = excluded.error, \
             updated_at_us = excluded.updated_at_us",
        )
        .bind(session.to_string())
        .bind(error)
        .bind(now_us())
        .execute(&self.pool)
        .await
        .at("set index error of session", session)?;
        Ok(())
    }

    pub(crate) async fn sessions_to_index(
        &self,
        limit: u32,
        node: Option<&NodeId>,
    ) -> Result<Vec<SessionId>, StoreError> {
        const OP: &str = "list sessions to index";
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT s.id FROM sessions s LEFT JOIN index_state i ON i.session_id = s.id \
             WHERE s.status != 'active' AND s.chain_head IS NOT NULL \
             AND (i.session_id IS NULL OR (i.complete = 0 AND i.error IS NULL)) \
             AND (?2 IS NULL OR s.node = ?2 OR s.node = '' \
                  OR NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = s.node)) \
             ORDER BY s.started_at_us LIMIT ?1",
        )
        .bind(i64::from(limit))
        .bind(node.map(NodeId::as_str))
        .fetch_all(&self.pool)
        .await
        .at(OP, "")?;
        ids.iter()
            .map(|s| s.parse().map_err(|e| crate::error::BadValue::new("sessions.id", e)))
            .collect::<Result<_, _>>()
            .at(OP, "")
    }

    pub(crate) async fn top_commands(
        &self,
        since_us: i64,
        limit: u32,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        const OP: &str = "count commands";
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT command, count(*) AS n FROM commands WHERE at_us >= ? \
             AND kind NOT IN ('env', 'screen') AND command <> '' \
             GROUP BY command ORDER BY n DESC, command LIMIT ?",
        )
        .bind(since_us)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .at(OP, "")?;
        Ok(rows)
    }

    pub(crate) async fn commands(&self, session: SessionId) -> Result<Vec<CommandRow>, StoreError> {
        const OP: &str = "list commands of session";
        let rows = sqlx::query(
            "SELECT c.*, t.typed FROM commands c LEFT JOIN command_typed t ON t.id = c.id \
             WHERE c.session_id = ? ORDER BY c.seq",
        )
        .bind(session.to_string())
        .fetch_all(&self.pool)
        .await
        .at(OP, session)?;
        rows.iter().map(decode::command).collect::<Result<_, _>>().at(OP, session)
    }

    pub(crate) async fn search(&self, q: &SearchQuery) -> Result<SearchAnswer, StoreError> {
        self.index.query(q).await
    }

    pub(crate) async fn index_rows(
        &self,
        scope: IndexScope<'_>,
    ) -> Result<Vec<IndexRow>, StoreError> {
        const OP: &str = "read index status";
        let everyone = SearchQuery::default();
        let pending = self.index.rebuild_left().await?.unwrap_or((1, 0));
        let rows = match scope {
            IndexScope::Unfinished | IndexScope::UnfinishedFor(_) => {
                let q = match scope {
                    IndexScope::UnfinishedFor(q) => q,
                    _ => &everyone,
                };
                sqlx::query(concat!(
                    status_select!(rebuild_pending!("?7", "?8")),
                    " WHERE (i.session_id IS NULL OR i.complete = 0 OR i.error IS NOT NULL OR ",
                    rebuild_pending!("?7", "?8"),
                    ") \
                 AND (?1 IS NULL OR s.person = ?1) AND (?2 IS NULL OR s.target = ?2) \
                 AND (?3 IS NULL OR s.id = ?3) AND (?4 IS NULL OR s.started_at_us <= ?4) \
                 AND (?5 IS NULL OR s.ended_at_us IS NULL OR s.ended_at_us >= ?5) \
                 AND (?6 IS NULL OR s.id IN (SELECT session_id FROM session_tags WHERE tag = ?6)) \
                 ORDER BY s.started_at_us, s.id"
                ))
                .bind(&q.person)
                .bind(&q.target)
                .bind(q.session.map(|s| s.to_string()))
                .bind(q.until_us)
                .bind(q.since_us)
                .bind(q.tag.as_ref().map(|t| t.to_ascii_lowercase()))
                .bind(pending.0)
                .bind(pending.1)
                .fetch_all(&self.pool)
                .await
                .at(OP, "")?
            }
            IndexScope::Sessions(ids) => {
                let mut rows = Vec::with_capacity(ids.len());
                for id in ids {
                    let row = sqlx::query(concat!(
                        status_select!(rebuild_pending!("?2", "?3")),
                        " WHERE s.id = ?1"
                    ))
                    .bind(id.to_string())
                    .bind(pending.0)
                    .bind(pending.1)
                    .fetch_optional(&self.pool)
                    .await
                    .at(OP, id)?
                    .ok_or_else(|| StoreError::NotFound {
                        op: OP,
                        kind: "session",
                        id: id.to_string(),
                    })?;
                    rows.push(row);
                }
                rows
            }
        };
        rows.iter().map(decode::index_row).collect::<Result<_, _>>().at(OP, "")
    }
}
