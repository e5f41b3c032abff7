//! Search on SQLite: an FTS5 index with the trigram tokenizer over command lines
//! (`commands_fts`, external content over `commands`), so `/etc/sudoers` and `-rf` match
//! inside words, case-insensitively; and one over output blocks (`output_fts`: contentless,
//! no positions, so about a third of the text's size, given each block's distinct trigrams
//! as tokens, and a token of its session's person and one of its target: `trigrams.rs`),
//! asked for the blocks holding every trigram of the text (and the person's or target's
//! token, when the search names one), each confirmed in the block's (zstd) text. Queries
//! shorter than
//! three characters cannot use trigrams and scan (output: the newest blocks, bounded).
//!
//! Newest first means walking the index from the newest id down; `command_blocks` and
//! `output_spans` keep the span of times of each 1024 ids (of commands, of output blocks),
//! so a search bounded in time walks only the ids that can hold such lines.

use keepwatch_core::SessionId;

use sqlx::{SqliteConnection, SqlitePool};

use crate::StoreError;
use crate::decode;
use crate::error::At;
use crate::rows::*;
use crate::search::{OutputSearch, SPAN_BITS, TextIndex, block_times, widen_spans};

use super::trigrams::{block_entry, needle_tokens, person_token, target_token};

/// Which ids' time spans to read.
#[derive(Debug, Clone, Copy)]
enum Spans {
    Commands,
    Output,
}

#[derive(Debug, Clone)]
pub(crate) struct Fts5Index {
    pub(crate) pool: SqlitePool,
}

impl TextIndex for Fts5Index {
    type Conn = SqliteConnection;

    async fn add(
        &self,
        conn: &mut SqliteConnection,
        session: SessionId,
        rows: &[(i64, &CommandRow)],
        output: &[(i64, &OutputBlock)],
    ) -> Result<(), sqlx::Error> {
        // A session removed meanwhile (retention) has no owner: its blocks, like its rows,
        // are found by no search, as before the tokens.
        let owner: Option<(String, String)> = if output.is_empty() {
            None
        } else {
            sqlx::query_as("SELECT person, target FROM sessions WHERE id = ?")
                .bind(session.to_string())
                .fetch_optional(&mut *conn)
                .await?
        };
        let owner = owner.as_ref().map(|(person, target)| (person.as_str(), target.as_str()));
        for chunk in output.chunks(super::indexing::BLOCKS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::new("INSERT INTO output_fts (rowid, trigrams) ");
            insert.push_values(chunk, |mut row, (rowid, b)| {
                row.push_bind(*rowid).push_bind(block_entry(&b.text, owner));
            });
            insert.build().execute(&mut *conn).await?;
        }
        add_spans(conn, Spans::Output, output.iter().map(|(rowid, b)| block_times(*rowid, b)))
            .await?;
        for (rowid, c) in rows {
            sqlx::query("INSERT INTO commands_fts (rowid, command) VALUES (?, ?)")
                .bind(rowid)
                .bind(&c.command)
                .execute(&mut *conn)
                .await?;
        }
        add_spans(conn, Spans::Commands, rows.iter().map(|(rowid, c)| (*rowid, c.at_us, c.at_us)))
            .await?;
        Ok(())
    }

    async fn forget(&self, conn: &mut SqliteConnection, session: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO commands_fts (commands_fts, rowid, command) \
             SELECT 'delete', id, command FROM commands WHERE session_id = ?",
        )
        .bind(session)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "DELETE FROM output_fts WHERE rowid IN \
             (SELECT id FROM output_blocks WHERE session_id = ?)",
        )
        .bind(session)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn query_commands(&self, q: &SearchQuery) -> Result<Vec<SearchHit>, StoreError> {
        const OP: &str = "search";
        // A time bound turns into an id range first, so an old window does not walk every
        // newer match.
        let (first_id, last_id) = if q.since_us.is_some() || q.until_us.is_some() {
            match self.id_range(q.since_us, q.until_us).await? {
                Some(range) => range,
                None => return Ok(Vec::new()),
            }
        } else {
            (i64::MIN, i64::MAX)
        };
        let trigram = q.text.chars().count() >= 3;
        let sql = if trigram {
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
                 AND (?11 IS NULL OR k.session_id IN (SELECT session_id FROM session_tags WHERE tag = ?11)) \
                 ORDER BY f.rowid DESC LIMIT ?8 \
             ) hit JOIN commands c ON c.id = hit.id JOIN sessions s ON s.id = c.session_id \
             ORDER BY c.id DESC"
        } else {
            "SELECT c.*, s.person, s.target FROM commands c JOIN sessions s ON s.id = c.session_id \
             WHERE instr(lower(c.command), lower(?1)) > 0 AND c.id >= ?9 AND c.id <= ?10 \
             AND (?2 IS NULL OR s.person = ?2) AND (?3 IS NULL OR s.target = ?3) \
             AND (?4 IS NULL OR c.session_id = ?4) AND (?5 IS NULL OR c.at_us >= ?5) \
             AND (?6 IS NULL OR c.at_us <= ?6) AND (?7 = 0 OR c.kind IN ('shell', 'exec', 'stdin')) \
             AND (?11 IS NULL OR c.session_id IN (SELECT session_id FROM session_tags WHERE tag = ?11)) \
             ORDER BY c.id DESC LIMIT ?8"
        };
        let pattern =
            if trigram { format!("\"{}\"", q.text.replace('"', "\"\"")) } else { q.text.clone() };
        let rows = sqlx::query(sql)
            .bind(pattern)
            .bind(&q.person)
            .bind(&q.target)
            .bind(q.session.map(|s| s.to_string()))
            .bind(q.since_us)
            .bind(q.until_us)
            .bind(q.commands_only)
            .bind(i64::from(q.limit))
            .bind(first_id)
            .bind(last_id)
            .bind(q.tag.as_ref().map(|t| t.to_ascii_lowercase()))
            .fetch_all(&self.pool)
            .await
            .at(OP, &q.text)?;
        rows.iter().map(|r| decode::search_hit(r, q)).collect::<Result<_, _>>().at(OP, &q.text)
    }

    /// Output blocks holding the text, newest first, each confirmed in its text.
    async fn query_output(&self, q: &SearchQuery) -> Result<SearchAnswer, StoreError> {
        const OP: &str = "search output";
        let mut found = OutputSearch::new(q);
        // Tokens are digits and letters only: nothing in them needs quoting. A person or
        // target filter is a token of the index too (`owner_tokens`), so the index offers
        // only their blocks.
        let mut tokens = needle_tokens(&q.text, 12);
        let owners_in_index = !tokens.is_empty();
        if owners_in_index {
            tokens.extend(q.person.as_deref().map(person_token));
            tokens.extend(q.target.as_deref().map(target_token));
        }
        let pattern = tokens.join(" AND ");
        // One round's candidates: the index's (or, for a text under three characters, every
        // block), newest first, each with its body only when it passes the filters. A
        // session or tag filter (and a person or target filter the index did not take) is
        // applied to the candidates' ids first, against the set of those sessions' block ids
        // (built once per statement from the narrow session index), so a block of another
        // session costs no read of its row; `+` keeps SQLite from turning that set into one
        // index lookup per id.
        let sessions = session_filter(q, !owners_in_index);
        let allowed = |id: &str| match &sessions {
            Some(sessions) => format!(
                " AND +{id} IN (SELECT id FROM output_blocks INDEXED BY output_blocks_session \
                 WHERE session_id IN ({sessions}))"
            ),
            None => String::new(),
        };
        let candidates = if pattern.is_empty() {
            format!(
                "SELECT id FROM output_blocks WHERE id < ?1 AND id >= ?10 AND ?2 = ?2{} \
                 ORDER BY id DESC LIMIT ?9",
                allowed("id")
            )
        } else {
            format!(
                "SELECT rowid AS id FROM output_fts WHERE output_fts MATCH ?2 AND rowid < ?1 \
                 AND rowid >= ?10{} ORDER BY rowid DESC LIMIT ?9",
                allowed("rowid")
            )
        };
        // A time bound turns into a range of block ids first.
        let (first_id, last_id) = if q.since_us.is_some() || q.until_us.is_some() {
            match self.span_range(Spans::Output, q.since_us, q.until_us).await? {
                Some(range) => range,
                None => return Ok(found.finish()),
            }
        } else {
            (i64::MIN, i64::MAX - 1)
        };
        let sql = format!(
            "SELECT b.id, b.session_id, b.channel, b.at_us, b.start_offset_us, b.end_offset_us, \
             b.marks, s.person, s.target, CASE WHEN (?3 IS NULL OR s.person = ?3) \
             AND (?4 IS NULL OR s.target = ?4) AND (?5 IS NULL OR b.session_id = ?5) \
             AND (?6 IS NULL OR b.at_us + b.end_offset_us - b.start_offset_us >= ?6) \
             AND (?7 IS NULL OR b.at_us <= ?7) \
             AND (?8 IS NULL OR b.session_id IN (SELECT session_id FROM session_tags WHERE tag = ?8)) \
             THEN b.body END AS body \
             FROM ({candidates}) hit JOIN output_blocks b ON b.id = hit.id \
             JOIN sessions s ON s.id = b.session_id ORDER BY b.id DESC"
        );
        let mut before = last_id + 1;
        while let Some(batch) = found.next_batch() {
            // `candidates` is put together from constant pieces above, not from input.
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(before)
                .bind(&pattern)
                .bind(&q.person)
                .bind(&q.target)
                .bind(q.session.map(|s| s.to_string()))
                .bind(q.since_us)
                .bind(q.until_us)
                .bind(q.tag.as_ref().map(|t| t.to_ascii_lowercase()))
                .bind(batch as i64)
                .bind(first_id)
                .fetch_all(&self.pool)
                .await
                .at(OP, &q.text)?;
            for r in &rows {
                if let Some(c) = decode::output_candidate(r, true).at(OP, &q.text)? {
                    found.confirm(&c);
                }
            }
            match rows.last() {
                Some(last) if rows.len() == batch => {
                    before = decode::output_candidate_id(last).at(OP, &q.text)?;
                }
                _ => break,
            }
        }
        Ok(found.finish())
    }

    async fn owner(
        &self,
        session: SessionId,
        channel: u32,
        offset_us: u64,
    ) -> Result<Option<CommandRow>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM commands WHERE session_id = ? AND channel = ? AND start_offset_us <= ? \
             AND kind NOT IN ('screen', 'env') ORDER BY start_offset_us DESC, seq DESC LIMIT 1",
        )
        .bind(session.to_string())
        .bind(i64::from(channel))
        .bind(offset_us as i64)
        .fetch_optional(&self.pool)
        .await
        .at("search output", session)?;
        row.as_ref().map(decode::command).transpose().at("search output", session)
    }
}

/// The sessions a query's session (`?5`) and tag (`?8`) filters, and with `owners` its
/// person (`?3`) and target (`?4`) filters, allow, as a subquery of constant text; `None`
/// without such a filter.
fn session_filter(q: &SearchQuery, owners: bool) -> Option<String> {
    let conditions: Vec<&str> = [
        (owners && q.person.is_some(), "person = ?3"),
        (owners && q.target.is_some(), "target = ?4"),
        (q.session.is_some(), "id = ?5"),
        (q.tag.is_some(), "id IN (SELECT session_id FROM session_tags WHERE tag = ?8)"),
    ]
    .into_iter()
    .filter_map(|(set, condition)| set.then_some(condition))
    .collect();
    (!conditions.is_empty())
        .then(|| format!("SELECT id FROM sessions WHERE {}", conditions.join(" AND ")))
}

/// The pause between two batches of the rebuild, so that other writers get the lock. With
/// 50 ms a session's row waited at most 180 ms (p99 108 ms) and the rebuild gave 2,068 blocks
/// a second, against 3,214 without a pause (100 ms: 132 ms at most, 1,509 blocks a second).
const REBUILD_GAP: std::time::Duration = std::time::Duration::from_millis(50);

/// Where the rebuild of the output index stands (`output_fts_rebuild`'s next and last block
/// ids), while it has not finished.
async fn rebuild_state(conn: &mut SqliteConnection) -> Result<Option<(i64, i64)>, sqlx::Error> {
    let there: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name = 'output_fts_rebuild'")
            .fetch_one(&mut *conn)
            .await?;
    if there == 0 {
        return Ok(None);
    }
    sqlx::query_as("SELECT next_id, last_id FROM output_fts_rebuild")
        .fetch_one(conn)
        .await
        .map(Some)
}

/// A stored block as the rebuild reads it: id, body, and its session's person and target.
type StoredBlock = (i64, Vec<u8>, Option<String>, Option<String>);

impl Fts5Index {
    /// The ids of the output blocks `finish_rebuild` has yet to give the output index, while
    /// there are any.
    pub(crate) async fn rebuild_left(&self) -> Result<Option<(i64, i64)>, StoreError> {
        const OP: &str = "read index status";
        let mut tx = self.pool.begin().await.at(OP, "")?;
        let state = rebuild_state(&mut tx).await.at(OP, "")?;
        Ok(state.filter(|(next, last)| next <= last))
    }

    /// Gives `output_fts` the blocks written before migrations 0014 and 0015 changed what it
    /// holds (`output_fts_rebuild` says which are left), from their stored text, a batch a
    /// transaction: another process driving it meanwhile goes on from where this one is
    /// ([`crate::Store::finish_index_rebuild`]).
    /// A block whose text cannot be read is left out, and its session marked as not fully
    /// indexed, so the indexer indexes it again from its recording.
    pub(crate) async fn finish_rebuild(&self) -> Result<(), StoreError> {
        const OP: &str = "rebuild output search index";
        let mut conn = self.pool.acquire().await.at(OP, "")?;
        if rebuild_state(&mut conn).await.at(OP, "")?.is_none() {
            return Ok(());
        }
        drop(conn);
        let mut announced = false;
        // A store of many GB takes minutes: say how far it is every so often.
        let mut said_at = std::time::Instant::now();
        loop {
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.at(OP, "")?;
            let Some((next, last)) = rebuild_state(&mut tx).await.at(OP, "")? else {
                return Ok(());
            };
            if !announced && next <= last {
                tracing::info!(
                    from = next,
                    to = last,
                    "giving output blocks to the new search index"
                );
                announced = true;
            } else if said_at.elapsed() >= std::time::Duration::from_secs(10) {
                tracing::info!(
                    at = next,
                    to = last,
                    "still giving output blocks to the search index"
                );
                said_at = std::time::Instant::now();
            }
            let blocks: Vec<StoredBlock> = sqlx::query_as(
                "SELECT b.id, b.body, s.person, s.target FROM output_blocks b \
                 LEFT JOIN sessions s ON s.id = b.session_id \
                 WHERE b.id >= ? AND b.id <= ? ORDER BY b.id LIMIT ?",
            )
            .bind(next)
            .bind(last)
            .bind(super::indexing::BLOCKS_PER_STATEMENT as i64)
            .fetch_all(&mut *tx)
            .await
            .at(OP, "")?;
            let Some(&(end, ..)) = blocks.last() else {
                sqlx::query("DROP TABLE output_fts_rebuild").execute(&mut *tx).await.at(OP, "")?;
                tx.commit().await.at(OP, "")?;
                if announced {
                    tracing::info!("output search index rebuilt");
                }
                return Ok(());
            };
            let mut tokens = Vec::with_capacity(blocks.len());
            for (id, body, person, target) in &blocks {
                match crate::decode::unpack_text(body) {
                    Ok(text) => {
                        let owner = person.as_deref().zip(target.as_deref());
                        tokens.push((*id, block_entry(&text, owner)));
                    }
                    Err(e) => {
                        tracing::warn!(
                            block = id,
                            "output block left out of the search index: {}: {}",
                            e.what,
                            e.detail
                        );
                        sqlx::query(
                            "UPDATE index_state SET complete = 0 WHERE session_id = \
                             (SELECT session_id FROM output_blocks WHERE id = ?)",
                        )
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .at(OP, id)?;
                    }
                }
            }
            if !tokens.is_empty() {
                let mut insert =
                    sqlx::QueryBuilder::new("INSERT INTO output_fts (rowid, trigrams) ");
                insert.push_values(&tokens, |mut row, (id, t)| {
                    row.push_bind(*id).push_bind(t);
                });
                insert.build().execute(&mut *tx).await.at(OP, "")?;
            }
            sqlx::query("UPDATE output_fts_rebuild SET next_id = ?")
                .bind(end + 1)
                .execute(&mut *tx)
                .await
                .at(OP, "")?;
            tx.commit().await.at(OP, "")?;
            // Writers waiting for the lock (a session starting, the indexer) poll for it now
            // and then: without a gap the next batch takes it again first (a session's row
            // waited up to 3.8 s, p99 1.9 s, while 20,000 blocks were given).
            tokio::time::sleep(REBUILD_GAP).await;
        }
    }

    /// The command ids that can hold commands started within the bounds (a superset, from
    /// `command_blocks`), or `None` when no command can.
    async fn id_range(
        &self,
        since_us: Option<i64>,
        until_us: Option<i64>,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        self.span_range(Spans::Commands, since_us, until_us).await
    }

    /// The ids (of commands, or of output blocks) whose time spans (`command_blocks`,
    /// `output_spans`: the span of each 1024 ids) meet the bounds, as one range.
    async fn span_range(
        &self,
        spans: Spans,
        since_us: Option<i64>,
        until_us: Option<i64>,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        let sql = match spans {
            Spans::Commands => {
                "SELECT min(block), max(block) FROM command_blocks \
                 WHERE (?1 IS NULL OR max_at_us >= ?1) AND (?2 IS NULL OR min_at_us <= ?2)"
            }
            Spans::Output => {
                "SELECT min(span), max(span) FROM output_spans \
                 WHERE (?1 IS NULL OR max_at_us >= ?1) AND (?2 IS NULL OR min_at_us <= ?2)"
            }
        };
        let (first, last): (Option<i64>, Option<i64>) = sqlx::query_as(sql)
            .bind(since_us)
            .bind(until_us)
            .fetch_one(&self.pool)
            .await
            .at("search", "time bounds")?;
        Ok(first
            .zip(last)
            .map(|(first, last)| (first << SPAN_BITS, ((last + 1) << SPAN_BITS).saturating_sub(1))))
    }
}

/// Widens the time spans (`command_blocks` or `output_spans`) of the ids `(id, first, last)`
/// cover to take their times in.
async fn add_spans(
    conn: &mut SqliteConnection,
    spans: Spans,
    times: impl Iterator<Item = (i64, i64, i64)>,
) -> Result<(), sqlx::Error> {
    let widened = widen_spans(times);
    let sql = match spans {
        Spans::Commands => {
            "INSERT INTO command_blocks (block, min_at_us, max_at_us) VALUES (?, ?, ?) \
             ON CONFLICT (block) DO UPDATE SET min_at_us = min(min_at_us, excluded.min_at_us), \
             max_at_us = max(max_at_us, excluded.max_at_us)"
        }
        Spans::Output => {
            "INSERT INTO output_spans (span, min_at_us, max_at_us) VALUES (?, ?, ?) \
             ON CONFLICT (span) DO UPDATE SET min_at_us = min(min_at_us, excluded.min_at_us), \
             max_at_us = max(max_at_us, excluded.max_at_us)"
        }
    };
    for (span, (min, max)) in widened {
        sqlx::query(sql).bind(span).bind(min).bind(max).execute(&mut *conn).await?;
    }
    Ok(())
}
