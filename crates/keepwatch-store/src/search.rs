//! Full-text search over what people ran and saw, behind its own interface.
//!
//! [`TextIndex`] is what the rest of the store needs from a search index: entries written
//! in the same transaction as the command rows they index (so the index progress a reader
//! sees always has its hits), entries forgotten with a session's rows, and queries. Every
//! backend has one in its own database: FTS5 with the trigram tokenizer on SQLite
//! (`sqlite/search.rs`), `pg_trgm` GIN indexes on PostgreSQL (`postgres/search.rs`). Both
//! answer the same question the same way: a case-insensitive substring of the command line
//! (or its output), newest first; an index could move out of the database (a search engine)
//! by implementing this trait, at the price of that shared transaction.

use crate::StoreError;
use crate::rows::{CommandRow, SearchHit, SearchQuery};

/// Characters shown on each side of a match in a snippet.
const SNIPPET_CONTEXT: usize = 60;

/// A backend's full-text index over command rows.
pub(crate) trait TextIndex {
    /// The connection the command rows are written on, inside their transaction.
    type Conn;

    /// Indexes freshly inserted command rows (`(id, row)`), in their transaction.
    async fn add(
        &self,
        conn: &mut Self::Conn,
        rows: &[(i64, &CommandRow)],
    ) -> Result<(), sqlx::Error>;

    /// Forgets the entries of `session`'s rows, before they are deleted in the same
    /// transaction.
    async fn forget(&self, conn: &mut Self::Conn, session: &str) -> Result<(), sqlx::Error>;

    /// Command rows containing `q.text`, newest first, at most `q.limit`.
    async fn query(&self, q: &SearchQuery) -> Result<Vec<SearchHit>, StoreError>;
}

/// `text` as a `LIKE` pattern that matches it literally anywhere (`\` escapes).
pub(crate) fn like_substring(text: &str) -> String {
    format!("%{}%", like_escape(text))
}

/// `glob` (`*` matches anything, `/` included; nothing else is special) as a `LIKE`
/// pattern (`\` escapes), the SQL form of `keepwatch_core::glob_match`.
pub(crate) fn like_glob(glob: &str) -> String {
    glob.split('*').map(like_escape).collect::<Vec<_>>().join("%")
}

fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The text around the first match (command line first, then output), marked `«...»`.
/// Matching here is ASCII case-insensitive; when the index matched by other case rules,
/// the snippet is the start of the text.
pub(crate) fn snippet(c: &CommandRow, needle: &str, commands_only: bool) -> String {
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

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_are_literal_but_for_the_glob_star() {
        assert_eq!(super::like_substring("100%_a\\b"), "%100\\%\\_a\\\\b%");
        assert_eq!(super::like_glob("*/etc/*_x"), "%/etc/%\\_x");
        assert_eq!(super::like_glob("plain"), "plain");
    }
}
