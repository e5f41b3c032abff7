//! What people ran: the command rows the indexer writes, and the full-text search over them.
//!
//! Search is a substring match (SQLite FTS5 with the trigram tokenizer, so `/etc/sudoers`
//! and `-rf` match inside words), newest first. Queries shorter than three characters
//! cannot use the trigram index and fall back to a scan.

use std::collections::BTreeMap;

use keepwatch_core::SessionId;
use sqlx::Row;

use super::*;

#[cfg(test)]
mod tests;

/// Characters shown on each side of a match in a snippet.
const SNIPPET_CONTEXT: usize = 60;
/// `command_blocks` keeps the time span of each `1 << BLOCK_BITS` command ids.
const BLOCK_BITS: u32 = 10;

impl Store {
    /// Adds command rows of a session (with their search entries) and records how far the
    /// indexer got, in one transaction: whoever reads the progress also sees the rows.
    ///
    /// # Errors
    /// Database failures, including a `seq` written twice.
    pub async fn add_commands(
        &self,
        session: SessionId,
        rows: &[CommandRow],
        progress: IndexProgress,
    ) -> Result<(), StoreError> {
        let id = session.to_string();
        let mut blocks: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        let mut tx = self.pool.begin().await?;
        for c in rows {
            let rowid: i64 = sqlx::query(
                "INSERT INTO commands (session_id, seq, channel, kind, at_us, start_offset_us, \
                 end_offset_us, command, prompt, output, confidence, output_truncated, full_screen) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(&id)
            .bind(c.seq)
            .bind(c.channel)
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
            .await?
            .get(0);
            if let Some(typed) = &c.typed {
                sqlx::query("INSERT INTO command_typed (id, typed) VALUES (?, ?)")
                    .bind(rowid)
                    .bind(typed)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("INSERT INTO commands_fts (rowid, command, output) VALUES (?, ?, ?)")
                .bind(rowid)
                .bind(&c.command)
                .bind(&c.output)
                .execute(&mut *tx)
                .await?;
            let span = blocks.entry(rowid >> BLOCK_BITS).or_insert((c.at_us, c.at_us));
            *span = (span.0.min(c.at_us), span.1.max(c.at_us));
        }
        for (block, (min, max)) in blocks {
            sqlx::query(
                "INSERT INTO command_blocks (block, min_at_us, max_at_us) VALUES (?, ?, ?) \
                 ON CONFLICT (block) DO UPDATE SET min_at_us = min(min_at_us, excluded.min_at_us), \
                 max_at_us = max(max_at_us, excluded.max_at_us)",
            )
            .bind(block)
            .bind(min)
            .bind(max)
            .execute(&mut *tx)
            .await?;
        }
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
        .await?;
        if let IndexProgress::Partial { bytes } = progress {
            sqlx::query(
                "INSERT INTO index_progress (session_id, bytes_indexed) VALUES (?, ?) \
                 ON CONFLICT (session_id) DO UPDATE SET bytes_indexed = excluded.bytes_indexed",
            )
            .bind(&id)
            .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
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
        let id = session.to_string();
        let mut tx = self.pool.begin().await?;
        for k in rows {
            sqlx::query(
                "INSERT OR REPLACE INTO keyframes (session_id, channel, at_us, chunk_offset, skip_events, \
                 cols, rows, screen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&id)
            .bind(k.channel)
            .bind(k.at_us as i64)
            .bind(k.chunk_offset as i64)
            .bind(k.skip_events)
            .bind(k.cols)
            .bind(k.rows)
            .bind(&k.screen)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
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
        let row = sqlx::query(
            "SELECT * FROM keyframes WHERE session_id = ? AND channel = ? AND at_us <= ? \
             ORDER BY at_us DESC LIMIT 1",
        )
        .bind(session.to_string())
        .bind(channel)
        .bind(at_us as i64)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| KeyframeRow {
            channel: r.get::<i64, _>("channel") as u32,
            at_us: r.get::<i64, _>("at_us") as u64,
            chunk_offset: r.get::<i64, _>("chunk_offset") as u64,
            skip_events: r.get::<i64, _>("skip_events") as u32,
            cols: r.get::<i64, _>("cols") as u16,
            rows: r.get::<i64, _>("rows") as u16,
            screen: r.get("screen"),
        }))
    }

    /// Forgets what was indexed for a session (before indexing it again from the start).
    ///
    /// # Errors
    /// Database failures only.
    pub async fn clear_index(&self, session: SessionId) -> Result<(), StoreError> {
        let id = session.to_string();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO commands_fts (commands_fts, rowid, command, output) \
             SELECT 'delete', id, command, output FROM commands WHERE session_id = ?",
        )
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM commands WHERE session_id = ?")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM keyframes WHERE session_id = ?")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM index_state WHERE session_id = ?")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM index_progress WHERE session_id = ?")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Notes that a session's recording could not be indexed, and why; it is not retried
    /// until `reindex` asks for it.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn set_index_error(&self, session: SessionId, error: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO index_state (session_id, complete, commands, error, updated_at_us) \
             VALUES (?, 0, 0, ?, ?) ON CONFLICT (session_id) DO UPDATE SET error = excluded.error, \
             updated_at_us = excluded.updated_at_us",
        )
        .bind(session.to_string())
        .bind(error)
        .bind(now_us())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ended sessions whose index is missing or incomplete (and did not fail), oldest first.
    ///
    /// # Errors
    /// Database failures, or an id that does not parse.
    pub async fn sessions_to_index(&self, limit: u32) -> Result<Vec<SessionId>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.id FROM sessions s LEFT JOIN index_state i ON i.session_id = s.id \
             WHERE s.status != 'active' AND s.chain_head IS NOT NULL \
             AND (i.session_id IS NULL OR (i.complete = 0 AND i.error IS NULL)) \
             ORDER BY s.started_at_us LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| session_id(r.get("id"))).collect()
    }

    /// A session's commands in order.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn commands(&self, session: SessionId) -> Result<Vec<CommandRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.*, t.typed FROM commands c LEFT JOIN command_typed t ON t.id = c.id \
             WHERE c.session_id = ? ORDER BY c.seq",
        )
        .bind(session.to_string())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(command_row).collect())
    }

    /// Commands (and their output) containing `q.text`, newest first.
    ///
    /// # Errors
    /// Database failures, or a row that does not parse.
    pub async fn search(&self, q: &SearchQuery) -> Result<Vec<SearchHit>, StoreError> {
        // Newest first means walking the index from the newest id down; a time bound turns
        // into an id range first, so an old window does not walk every newer match.
        let (first_id, last_id) = if q.since_us.is_some() || q.until_us.is_some() {
            match self.id_range(q.since_us, q.until_us).await? {
                Some(range) => range,
                None => return Ok(Vec::new()),
            }
        } else {
            (i64::MIN, i64::MAX)
        };
        let sql = if q.text.chars().count() >= 3 {
            // Walk the matches newest first and test the filters on the narrow
            // `commands_filter` index (neighbouring ids share its pages) and on the person's
            // or target's session ids, collected once; only the hits read their wide
            // `commands` row. Filtering on `commands` and `sessions` rows directly costs two
            // random page reads per match, which dominates when a filter is selective.
            "SELECT c.*, s.person, s.target FROM ( \
                 SELECT f.rowid AS id FROM commands_fts f \
                 JOIN commands k INDEXED BY commands_filter ON k.id = f.rowid \
                 WHERE commands_fts MATCH ?1 AND f.rowid >= ?9 AND f.rowid <= ?10 \
                 AND (?2 IS NULL OR k.session_id IN (SELECT id FROM sessions WHERE person = ?2)) \
                 AND (?3 IS NULL OR k.session_id IN (SELECT id FROM sessions WHERE target = ?3)) \
                 AND (?4 IS NULL OR k.session_id = ?4) AND (?5 IS NULL OR k.at_us >= ?5) \
                 AND (?6 IS NULL OR k.at_us <= ?6) \
                 AND (?7 = 0 OR k.kind IN ('shell', 'exec', 'stdin')) \
                 ORDER BY f.rowid DESC LIMIT ?8 \
             ) hit JOIN commands c ON c.id = hit.id JOIN sessions s ON s.id = c.session_id \
             ORDER BY c.id DESC"
        } else {
            "SELECT c.*, s.person, s.target FROM commands c JOIN sessions s ON s.id = c.session_id \
             WHERE (instr(lower(c.command), lower(?1)) > 0 \
             OR (?7 = 0 AND instr(lower(c.output), lower(?1)) > 0)) \
             AND c.id >= ?9 AND c.id <= ?10 \
             AND (?2 IS NULL OR s.person = ?2) AND (?3 IS NULL OR s.target = ?3) \
             AND (?4 IS NULL OR c.session_id = ?4) AND (?5 IS NULL OR c.at_us >= ?5) \
             AND (?6 IS NULL OR c.at_us <= ?6) AND (?7 = 0 OR c.kind IN ('shell', 'exec', 'stdin')) \
             ORDER BY c.id DESC LIMIT ?8"
        };
        let pattern = if q.text.chars().count() >= 3 {
            let phrase = format!("\"{}\"", q.text.replace('"', "\"\""));
            if q.commands_only { format!("command : {phrase}") } else { phrase }
        } else {
            q.text.clone()
        };
        let rows = sqlx::query(sql)
            .bind(pattern)
            .bind(&q.person)
            .bind(&q.target)
            .bind(q.session.map(|s| s.to_string()))
            .bind(q.since_us)
            .bind(q.until_us)
            .bind(q.commands_only)
            .bind(q.limit)
            .bind(first_id)
            .bind(last_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let command = command_row(r);
                let snippet = snippet(&command, &q.text, q.commands_only);
                Ok(SearchHit {
                    session_id: session_id(r.get("session_id"))?,
                    person: r.get("person"),
                    target: r.get("target"),
                    command,
                    snippet,
                })
            })
            .collect()
    }
}

impl Store {
    /// The command ids that can hold commands started within the bounds (a superset, from
    /// `command_blocks`), or `None` when no command can.
    async fn id_range(
        &self,
        since_us: Option<i64>,
        until_us: Option<i64>,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        let row = sqlx::query(
            "SELECT min(block), max(block) FROM command_blocks \
             WHERE (?1 IS NULL OR max_at_us >= ?1) AND (?2 IS NULL OR min_at_us <= ?2)",
        )
        .bind(since_us)
        .bind(until_us)
        .fetch_one(&self.pool)
        .await?;
        let (first, last): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
        Ok(first.zip(last).map(|(first, last)| {
            (first << BLOCK_BITS, ((last + 1) << BLOCK_BITS).saturating_sub(1))
        }))
    }
}

fn session_id(s: String) -> Result<SessionId, StoreError> {
    s.parse().map_err(|e| corrupt("commands.session_id", e))
}

fn command_row(r: &sqlx::sqlite::SqliteRow) -> CommandRow {
    CommandRow {
        seq: r.get::<i64, _>("seq") as u32,
        channel: r.get::<i64, _>("channel") as u32,
        kind: r.get("kind"),
        at_us: r.get("at_us"),
        start_offset_us: r.get::<i64, _>("start_offset_us") as u64,
        end_offset_us: r.get::<Option<i64>, _>("end_offset_us").map(|v| v as u64),
        command: r.get("command"),
        prompt: r.get("prompt"),
        output: r.get("output"),
        confidence: r.get("confidence"),
        output_truncated: r.get("output_truncated"),
        full_screen: r.get("full_screen"),
        // Only the per-session listing joins it in.
        typed: r.try_get("typed").ok().flatten(),
    }
}

/// The text around the first match (command line first, then output), marked `«...»`.
/// Matching here is ASCII case-insensitive; when the index matched by other case rules,
/// the snippet is the start of the text.
fn snippet(c: &CommandRow, needle: &str, commands_only: bool) -> String {
    let sources: &[&str] = if commands_only { &[&c.command] } else { &[&c.command, &c.output] };
    let lower_needle = needle.to_ascii_lowercase();
    for text in sources {
        if let Some(at) = text.to_ascii_lowercase().find(&lower_needle) {
            let end = at + needle.len();
            let from = floor_char(text, at.saturating_sub(SNIPPET_CONTEXT));
            let to = floor_char(text, (end + SNIPPET_CONTEXT).min(text.len()));
            let one_line = |s: &str| s.replace(['\r', '\n'], " ");
            return format!(
                "{}{}«{}»{}{}",
                if from > 0 { "…" } else { "" },
                one_line(&text[from..at]),
                one_line(&text[at..end]),
                one_line(&text[end..to]),
                if to < text.len() { "…" } else { "" },
            );
        }
    }
    let first = sources[0];
    first[..floor_char(first, 2 * SNIPPET_CONTEXT)].replace(['\r', '\n'], " ")
}

fn floor_char(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
