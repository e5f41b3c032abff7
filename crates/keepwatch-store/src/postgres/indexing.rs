//! What the indexer writes, in PostgreSQL: command rows (with their search entries), terminal
//! keyframes and how far each session is indexed.

use keepwatch_core::{NodeId, SessionId};

use super::Postgres;
use crate::decode::{self, IndexRow};
use crate::error::At;
use crate::rows::*;
use crate::search::{TextIndex, encode_marks};
use crate::{StoreError, now_us};

/// Output blocks written per statement (9 values each, well under PostgreSQL's 65,535).
const BLOCKS_PER_STATEMENT: usize = 256;

/// Every session with what the indexer wrote for it (a macro, so the queries stay literal).
macro_rules! status_select {
    () => {
        "SELECT s.id, s.person, s.target, s.status, i.complete, i.commands, i.error, i.updated_at_us, \
         p.bytes_indexed FROM sessions s LEFT JOIN index_state i ON i.session_id = s.id \
         LEFT JOIN index_progress p ON p.session_id = s.id"
    };
}

impl Postgres {
    pub(crate) async fn add_commands(
        &self,
        session: SessionId,
        rows: &[CommandRow],
        blocks: &[OutputBlock],
        progress: IndexProgress,
    ) -> Result<(), StoreError> {
        const OP: &str = "add commands of session";
        let id = session.to_string();
        let mut tx = self.pool.begin().await.at(OP, session)?;
        let mut added = Vec::with_capacity(rows.len());
        for c in rows {
            let rowid: i64 = sqlx::query_scalar(
                "INSERT INTO commands (session_id, seq, channel, kind, at_us, start_offset_us, \
                 end_offset_us, command, prompt, output, confidence, output_truncated, full_screen) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
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
                sqlx::query("INSERT INTO command_typed (id, typed) VALUES ($1, $2)")
                    .bind(rowid)
                    .bind(typed)
                    .execute(&mut *tx)
                    .await
                    .at(OP, session)?;
            }
            added.push((rowid, c));
        }
        // Ids drawn from the sequence first, so the index sees each block with its id; then
        // many rows per statement (each statement is a round trip).
        let ids: Vec<i64> = if blocks.is_empty() {
            Vec::new()
        } else {
            sqlx::query_scalar(
                "SELECT nextval(pg_get_serial_sequence('output_blocks', 'id')) \
                 FROM generate_series(1, $1)",
            )
            .bind(blocks.len() as i64)
            .fetch_all(&mut *tx)
            .await
            .at(OP, session)?
        };
        let stored: Vec<(i64, &OutputBlock)> = ids.into_iter().zip(blocks).collect();
        for chunk in stored.chunks(BLOCKS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO output_blocks (id, session_id, channel, at_us, start_offset_us, \
                 end_offset_us, text_len, text, marks) ",
            );
            insert.push_values(chunk, |mut row, (rowid, b)| {
                row.push_bind(*rowid)
                    .push_bind(&id)
                    .push_bind(i64::from(b.channel))
                    .push_bind(b.at_us)
                    .push_bind(b.start_offset_us as i64)
                    .push_bind(b.end_offset_us as i64)
                    .push_bind(b.text.len() as i64)
                    .push_bind(&b.text)
                    .push_bind(encode_marks(&b.marks));
            });
            insert.build().execute(&mut *tx).await.at(OP, session)?;
        }
        self.index.add(&mut *tx, session, &added, &stored).await.at(OP, session)?;
        sqlx::query(
            "INSERT INTO index_state (session_id, complete, commands, error, updated_at_us) \
             VALUES ($1, $2, $3, NULL, $4) ON CONFLICT (session_id) DO UPDATE SET \
             complete = excluded.complete, commands = index_state.commands + excluded.commands, error = NULL, \
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
                "INSERT INTO index_progress (session_id, bytes_indexed) VALUES ($1, $2) \
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
        let mut tx = self.pool.begin().await.at(OP, session)?;
        for k in rows {
            sqlx::query(
                "INSERT INTO keyframes (session_id, channel, at_us, chunk_offset, skip_events, \
                 cols, rows, screen) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (session_id, channel, at_us) DO UPDATE SET chunk_offset = excluded.chunk_offset, \
                 skip_events = excluded.skip_events, cols = excluded.cols, rows = excluded.rows, \
                 screen = excluded.screen",
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
            "SELECT * FROM keyframes WHERE session_id = $1 AND channel = $2 AND at_us <= $3 \
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
        let mut tx = self.pool.begin().await.at(OP, session)?;
        self.index.forget(&mut *tx, &id).await.at(OP, session)?;
        for sql in [
            "DELETE FROM commands WHERE session_id = $1",
            "DELETE FROM output_blocks WHERE session_id = $1",
            "DELETE FROM keyframes WHERE session_id = $1",
            "DELETE FROM index_state WHERE session_id = $1",
            "DELETE FROM index_progress WHERE session_id = $1",
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
             VALUES ($1, false, 0, $2, $3) ON CONFLICT (session_id) DO UPDATE SET error = excluded.error, \
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
             AND (i.session_id IS NULL OR (NOT i.complete AND i.error IS NULL)) \
             AND ($2::text IS NULL OR s.node = $2 OR s.node = '' \
                  OR NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = s.node)) \
             ORDER BY s.started_at_us LIMIT $1",
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
            "SELECT command, count(*) AS n FROM commands WHERE at_us >= $1 \
             AND kind NOT IN ('env', 'screen') AND command <> '' \
             GROUP BY command ORDER BY n DESC, command LIMIT $2",
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
             WHERE c.session_id = $1 ORDER BY c.seq",
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
        let rows = match scope {
            IndexScope::Unfinished | IndexScope::UnfinishedFor(_) => {
                let q = match scope {
                    IndexScope::UnfinishedFor(q) => q,
                    _ => &everyone,
                };
                sqlx::query(concat!(
                status_select!(),
                " WHERE (i.session_id IS NULL OR NOT i.complete OR i.error IS NOT NULL) \
                 AND ($1::text IS NULL OR s.person = $1) AND ($2::text IS NULL OR s.target = $2) \
                 AND ($3::text IS NULL OR s.id = $3) AND ($4::bigint IS NULL OR s.started_at_us <= $4) \
                 AND ($5::bigint IS NULL OR s.ended_at_us IS NULL OR s.ended_at_us >= $5) \
                 AND ($6::text IS NULL OR s.id IN (SELECT session_id FROM session_tags WHERE tag = $6)) \
                 ORDER BY s.started_at_us, s.id"
            ))
            .bind(&q.person)
            .bind(&q.target)
            .bind(q.session.map(|s| s.to_string()))
            .bind(q.until_us)
            .bind(q.since_us)
            .bind(q.tag.as_ref().map(|t| t.to_ascii_lowercase()))
            .fetch_all(&self.pool)
            .await
            .at(OP, "")?
            }
            IndexScope::Sessions(ids) => {
                let mut rows = Vec::with_capacity(ids.len());
                for id in ids {
                    let row = sqlx::query(concat!(status_select!(), " WHERE s.id = $1"))
                        .bind(id.to_string())
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
