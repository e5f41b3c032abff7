//! Search on PostgreSQL: `pg_trgm` GIN indexes on `commands.command` and `commands.output`
//! answer `ILIKE '%text%'` with the text's `%`, `_` and `\` escaped. The index narrows the
//! candidates by trigrams; PostgreSQL then rechecks each candidate row against the pattern
//! itself (the confirm step), so every hit is an exact case-insensitive substring, as on
//! SQLite. Texts shorter than three characters have no trigram and scan, as on SQLite.
//!
//! The index lives on the command rows themselves, so writing or deleting a row is indexing
//! or forgetting it: [`TextIndex::add`] and [`TextIndex::forget`] have nothing to do.

use sqlx::{PgConnection, PgPool};

use crate::StoreError;
use crate::decode;
use crate::error::At;
use crate::rows::*;
use crate::search::{TextIndex, like_substring};

#[derive(Debug, Clone)]
pub(crate) struct TrigramIndex {
    pub(crate) pool: PgPool,
}

/// The hits and their sessions; `$1` is the pattern, `$2`..`$7` the filters, `$8` the limit.
macro_rules! search_select {
    ($matches:literal) => {
        concat!(
            "SELECT c.*, s.person, s.target FROM commands c JOIN sessions s ON s.id = c.session_id \
             WHERE ",
            $matches,
            " AND ($2::text IS NULL OR s.person = $2) AND ($3::text IS NULL OR s.target = $3) \
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
        let rows = sqlx::query(sql)
            .bind(like_substring(&q.text))
            .bind(&q.person)
            .bind(&q.target)
            .bind(q.session.map(|s| s.to_string()))
            .bind(q.since_us)
            .bind(q.until_us)
            .bind(q.commands_only)
            .bind(i64::from(q.limit))
            .fetch_all(&self.pool)
            .await
            .at(OP, &q.text)?;
        rows.iter().map(|r| decode::search_hit(r, q)).collect::<Result<_, _>>().at(OP, &q.text)
    }
}
