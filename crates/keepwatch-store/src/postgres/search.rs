//! Search on PostgreSQL: `pg_trgm` GIN indexes on `commands.command` and `commands.output`
//! answer `ILIKE '%text%'` with the text's `%`, `_` and `\` escaped. The index narrows the
//! candidates by trigrams; PostgreSQL then rechecks each candidate row against the pattern
//! itself (the confirm step), so every hit is an exact case-insensitive substring, as on
//! SQLite. Texts shorter than three characters have no trigram and scan, as on SQLite.
//!
//! Newest first, in windows of ids: a GIN index cannot hand out its matches in id order, so
//! one statement over every command has to fetch and sort every match before `LIMIT` (all
//! 100,000 rows holding a common word), or walk the id index newest first testing every row
//! (every row, when the text is rare): whichever the planner guesses, one of the two is
//! slow. [`TextIndex::query`] asks instead for the newest `FIRST_WINDOW` ids, then for the
//! next ones back in windows `GROWTH` times wider, until it has `limit` hits or has covered
//! every id. Each window is planned for its own bounds, common text stops in the first
//! window, and rare text costs a few windows more than one statement over everything. All
//! windows read one snapshot (a repeatable-read transaction), so the hits are exactly what
//! one statement would return.
//!
//! The index lives on the command rows themselves, so writing or deleting a row is indexing
//! or forgetting it: [`TextIndex::add`] and [`TextIndex::forget`] have nothing to do.

use sqlx::{PgConnection, PgPool};

use crate::StoreError;
use crate::decode;
use crate::error::At;
use crate::rows::*;
use crate::search::{TextIndex, like_substring};

/// Ids in the first (newest) window.
const FIRST_WINDOW: i64 = 8192;
/// Each window back is this many times wider than the one before.
const GROWTH: i64 = 4;

#[derive(Debug, Clone)]
pub(crate) struct TrigramIndex {
    pub(crate) pool: PgPool,
}

/// The hits and their sessions; `$1` is the pattern, `$2`..`$7` the filters, `$8` the limit,
/// `$9` < id <= `$10` the window.
macro_rules! search_select {
    ($matches:literal) => {
        concat!(
            "SELECT c.*, s.person, s.target FROM commands c JOIN sessions s ON s.id = c.session_id \
             WHERE ",
            $matches,
            " AND c.id > $9 AND c.id <= $10 \
             AND ($2::text IS NULL OR s.person = $2) AND ($3::text IS NULL OR s.target = $3) \
             AND ($4::text IS NULL OR c.session_id = $4) AND ($5::bigint IS NULL OR c.at_us >= $5) \
             AND ($6::bigint IS NULL OR c.at_us <= $6) \
             AND (NOT $7 OR c.kind IN ('shell', 'exec', 'stdin')) \
             ORDER BY c.id DESC LIMIT $8"
        )
    };
}

impl TextIndex for TrigramIndex {
    type Conn = PgConnection;

    async fn add(
        &self,
        _conn: &mut PgConnection,
        _rows: &[(i64, &CommandRow)],
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }

    async fn forget(&self, _conn: &mut PgConnection, _session: &str) -> Result<(), sqlx::Error> {
        Ok(())
    }

    async fn query(&self, q: &SearchQuery) -> Result<Vec<SearchHit>, StoreError> {
        const OP: &str = "search";
        // Two statements rather than `$7 OR ...` inside the match: a generic plan could not
        // tell which trigram indexes to use.
        let sql = if q.commands_only {
            search_select!("c.command ILIKE $1 ESCAPE '\\'")
        } else {
            search_select!("(c.command ILIKE $1 ESCAPE '\\' OR c.output ILIKE $1 ESCAPE '\\')")
        };
        if q.limit == 0 {
            return Ok(Vec::new());
        }
        let pattern = like_substring(&q.text);
        let session = q.session.map(|s| s.to_string());
        let mut tx = self.pool.begin().await.at(OP, &q.text)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .at(OP, &q.text)?;
        let (first, last): (Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT min(id), max(id) FROM commands")
                .fetch_one(&mut *tx)
                .await
                .at(OP, &q.text)?;
        let mut hits = Vec::new();
        let Some((first, last)) = first.zip(last) else { return Ok(hits) };
        // One session's commands are few and indexed by session: no windows needed.
        let mut width = if q.session.is_some() { i64::MAX } else { FIRST_WINDOW };
        let mut high = last;
        while hits.len() < q.limit as usize {
            let low = high.saturating_sub(width);
            // The oldest window is open below, so every id is covered exactly once.
            let low = if low < first { i64::MIN } else { low };
            let rows = sqlx::query(sql)
                .bind(&pattern)
                .bind(&q.person)
                .bind(&q.target)
                .bind(&session)
                .bind(q.since_us)
                .bind(q.until_us)
                .bind(q.commands_only)
                .bind(i64::from(q.limit) - hits.len() as i64)
                .bind(low)
                .bind(high)
                .fetch_all(&mut *tx)
                .await
                .at(OP, &q.text)?;
            for r in &rows {
                hits.push(decode::search_hit(r, q).at(OP, &q.text)?);
            }
            if low == i64::MIN {
                break;
            }
            high = low;
            width = width.saturating_mul(GROWTH);
        }
        tx.commit().await.at(OP, &q.text)?;
        Ok(hits)
    }
}
