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
use keepwatch_core::SessionId;

use crate::rows::{CommandRow, OutputBlock, SearchAnswer, SearchHit, SearchQuery};

/// Characters shown on each side of a match in a snippet.
const SNIPPET_CONTEXT: usize = 60;

/// A backend's full-text index over command rows.
pub(crate) trait TextIndex {
    /// The connection the command rows are written on, inside their transaction.
    type Conn;

    /// Indexes `session`'s freshly inserted command rows (`(id, row)`, their command lines)
    /// and output blocks (`(id, block)`), in their transaction.
    async fn add(
        &self,
        conn: &mut Self::Conn,
        session: SessionId,
        rows: &[(i64, &CommandRow)],
        blocks: &[(i64, &OutputBlock)],
    ) -> Result<(), sqlx::Error>;

    /// Forgets the entries of `session`'s rows and blocks, before they are deleted in the
    /// same transaction.
    async fn forget(&self, conn: &mut Self::Conn, session: &str) -> Result<(), sqlx::Error>;

    /// Command lines containing `q.text`, newest first, at most `q.limit`.
    async fn query_commands(&self, q: &SearchQuery) -> Result<Vec<SearchHit>, StoreError>;

    /// Output lines containing `q.text`, newest first, at most `q.limit`; their `command` is
    /// only a placeholder with the channel ([`TextIndex::owner`] fills it in).
    async fn query_output(&self, q: &SearchQuery) -> Result<SearchAnswer, StoreError>;

    /// The command of `channel` that was running (or last started) at `offset_us`: not a
    /// screen snapshot or an environment variable, which print nothing of their own.
    async fn owner(
        &self,
        session: SessionId,
        channel: u32,
        offset_us: u64,
    ) -> Result<Option<CommandRow>, StoreError>;

    /// Command lines and output lines containing `q.text`, newest first, at most
    /// `q.limit`; an output line names the command running then.
    async fn query(&self, q: &SearchQuery) -> Result<SearchAnswer, StoreError> {
        let mut hits = self.query_commands(q).await?;
        let mut stopped_early = false;
        if !q.commands_only && q.limit > 0 {
            let out = self.query_output(q).await?;
            stopped_early = out.stopped_early;
            hits.extend(out.hits);
        }
        let mut answer = SearchAnswer::merged(hits, q.limit, stopped_early);
        // Only the hits kept need their command, so it is looked up after the merge.
        for hit in answer.hits.iter_mut().filter(|h| h.in_output) {
            if let Some(owner) =
                self.owner(hit.session_id, hit.command.channel, hit.offset_us).await?
            {
                hit.command = owner;
            }
        }
        Ok(answer)
    }
}

/// Output blocks read and confirmed per query at most (64 MiB of text); past it the answer
/// says the search stopped early. A text under three characters has no trigram and reads
/// the newest blocks until then.
pub(crate) const MAX_BLOCKS_READ: usize = (64 << 20) / OutputBlock::TARGET;
/// Candidates the index may give per query at most (those a filter drops after reading
/// them included; a backend may drop other sessions' blocks before they count).
const MAX_CANDIDATES: usize = 4 * MAX_BLOCKS_READ;

/// An output block the index gave, with what a hit in it needs.
pub(crate) struct Candidate {
    pub(crate) session_id: SessionId,
    pub(crate) person: String,
    pub(crate) target: String,
    pub(crate) block: OutputBlock,
}

/// One query's walk over output blocks, newest first: the candidates a backend reads are
/// confirmed here, line by line, until the limit or the bounds.
pub(crate) struct OutputSearch<'q> {
    q: &'q SearchQuery,
    needle: String,
    hits: Vec<SearchHit>,
    read: usize,
    candidates: usize,
    stopped_early: bool,
}

impl<'q> OutputSearch<'q> {
    pub(crate) fn new(q: &'q SearchQuery) -> Self {
        OutputSearch {
            q,
            needle: fold_needle(&q.text),
            hits: Vec::new(),
            read: 0,
            candidates: 0,
            stopped_early: false,
        }
    }

    /// The trigrams to ask the index for (none: scan): of the text as given, which the
    /// index folds the way it folded the output (a character at a time); the confirmation
    /// folds both sides here.
    pub(crate) fn trigrams(&self) -> Vec<String> {
        needle_trigrams(&self.q.text, 12)
    }

    /// How many candidates to read next, or `None` when done: enough hits, or a bound hit
    /// (then the answer says it stopped early).
    pub(crate) fn next_batch(&mut self) -> Option<usize> {
        if self.hits.len() >= self.q.limit as usize {
            return None;
        }
        if self.read >= MAX_BLOCKS_READ || self.candidates >= MAX_CANDIDATES {
            self.stopped_early = true;
            return None;
        }
        // Few first (a common text is found in the newest blocks), more as they miss.
        let batch =
            (16usize << (self.candidates / 64).min(6)).min(MAX_CANDIDATES - self.candidates);
        self.candidates += batch;
        Some(batch)
    }

    /// Confirms the text in a candidate (that passed the filters) and keeps its hits.
    pub(crate) fn confirm(&mut self, c: &Candidate) {
        self.read += 1;
        let room = (self.q.limit as usize).saturating_sub(self.hits.len());
        let b = &c.block;
        let dated =
            find_in_block(&b.text, &self.needle, usize::MAX).into_iter().filter_map(|(at, end)| {
                let offset_us = b.offset_at(at);
                let at_us =
                    b.at_us.saturating_add(offset_us.saturating_sub(b.start_offset_us) as i64);
                let outside = self.q.since_us.is_some_and(|s| at_us < s)
                    || self.q.until_us.is_some_and(|u| at_us > u);
                (!outside).then_some((at, end, offset_us, at_us))
            });
        let dated: Vec<_> = dated.collect();
        // Newest first: the block's last matching lines.
        for &(at, end, offset_us, at_us) in dated.iter().rev().take(room) {
            self.hits.push(SearchHit {
                session_id: c.session_id,
                person: c.person.clone(),
                target: c.target.clone(),
                command: CommandRow {
                    seq: 0,
                    channel: b.channel,
                    kind: "output".into(),
                    at_us,
                    start_offset_us: offset_us,
                    end_offset_us: None,
                    command: String::new(),
                    prompt: String::new(),
                    output: String::new(),
                    confidence: "exact".into(),
                    output_truncated: false,
                    full_screen: false,
                    typed: None,
                },
                in_output: true,
                offset_us,
                at_us,
                snippet: block_snippet(&b.text, at, end),
            });
        }
    }

    /// The hits (their owner commands still to be looked up by the backend).
    pub(crate) fn finish(self) -> SearchAnswer {
        SearchAnswer { hits: self.hits, stopped_early: self.stopped_early }
    }
}

impl SearchAnswer {
    /// Command-line hits and output hits as one answer: newest first, at most `limit`.
    pub(crate) fn merged(mut hits: Vec<SearchHit>, limit: u32, stopped_early: bool) -> Self {
        hits.sort_by_key(|h| std::cmp::Reverse(h.at_us));
        hits.truncate(limit as usize);
        SearchAnswer { hits, stopped_early }
    }
}

/// Time spans are kept per `1 << SPAN_BITS` ids (SQLite's `command_blocks`, both backends'
/// `output_spans`).
pub(crate) const SPAN_BITS: u32 = 10;

/// The time span each `1 << SPAN_BITS` ids of `(id, first, last)` cover, span by span in
/// ascending order (the order every writer takes their rows in, so two cannot deadlock).
pub(crate) fn widen_spans(
    times: impl Iterator<Item = (i64, i64, i64)>,
) -> std::collections::BTreeMap<i64, (i64, i64)> {
    let mut widened = std::collections::BTreeMap::new();
    for (id, first, last) in times {
        let span = widened.entry(id >> SPAN_BITS).or_insert((first, last));
        *span = (std::cmp::min(span.0, first), std::cmp::max(span.1, last));
    }
    widened
}

/// The times an output block's lines span: its first line's and its last's.
pub(crate) fn block_times(id: i64, b: &OutputBlock) -> (i64, i64, i64) {
    let last = b.at_us.saturating_add(b.end_offset_us.saturating_sub(b.start_offset_us) as i64);
    (id, b.at_us, last)
}

/// `marks` as bytes: varint pairs of (byte offset, offset_us), each a delta from the one
/// before.
pub(crate) fn encode_marks(marks: &[(u32, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(marks.len() * 4);
    let (mut b0, mut t0) = (0u64, 0u64);
    for &(b, t) in marks {
        varint(&mut out, u64::from(b).wrapping_sub(b0));
        varint(&mut out, t.wrapping_sub(t0));
        (b0, t0) = (u64::from(b), t);
    }
    out
}

/// The marks [`encode_marks`] wrote; `None` when the bytes are not such a list.
pub(crate) fn decode_marks(mut bytes: &[u8]) -> Option<Vec<(u32, u64)>> {
    let mut out = Vec::new();
    let (mut b, mut t) = (0u64, 0u64);
    while !bytes.is_empty() {
        b = b.wrapping_add(read_varint(&mut bytes)?);
        t = t.wrapping_add(read_varint(&mut bytes)?);
        out.push((u32::try_from(b).ok()?, t));
    }
    Some(out)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// `text` folded for case-insensitive matching (Unicode lower case), with the byte offset
/// in `text` of every byte of the folded string.
fn fold(text: &str) -> (String, Vec<u32>) {
    let mut folded = String::with_capacity(text.len());
    let mut origin = Vec::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        let before = folded.len();
        if c.is_ascii() {
            folded.push(c.to_ascii_lowercase());
        } else {
            folded.extend(c.to_lowercase());
        }
        origin.resize(folded.len(), i as u32);
        debug_assert!(folded.len() > before);
    }
    (folded, origin)
}

/// The lower-cased needle, as every match in output is confirmed against it.
pub(crate) fn fold_needle(needle: &str) -> String {
    fold(needle).0
}

/// Where `needle` (already [`fold_needle`]ed) occurs in `text`, case-insensitively: the byte
/// ranges in `text`, at most `limit`, one per line (the first match of each line).
pub(crate) fn find_in_block(text: &str, needle: &str, limit: usize) -> Vec<(usize, usize)> {
    if needle.is_empty() || limit == 0 {
        return Vec::new();
    }
    // Most output is ASCII: folded byte for byte, so offsets need no map.
    let (folded, origin) = if text.is_ascii() {
        if !needle.is_ascii() {
            return Vec::new();
        }
        (text.to_ascii_lowercase(), None)
    } else {
        let (folded, origin) = fold(text);
        (folded, Some(origin))
    };
    let to_text = |i: usize| match &origin {
        None => i,
        Some(o) => o.get(i).map_or(text.len(), |&b| b as usize),
    };
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = folded[from..].find(needle) {
        let at = from + i;
        let end = at + needle.len();
        let (start_byte, end_byte) = (to_text(at), to_text(end));
        out.push((start_byte, end_byte.max(start_byte)));
        if out.len() == limit {
            break;
        }
        // Next line: one hit per line is enough to open it.
        from = match folded[end..].find('\n') {
            Some(nl) => end + nl + 1,
            None => break,
        };
    }
    out
}

/// The snippet of an output match at `text[at..end]`: the rest of its line around it.
pub(crate) fn block_snippet(text: &str, at: usize, end: usize) -> String {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
    let from = floor_char(text, at.saturating_sub(SNIPPET_CONTEXT).max(line_start));
    let to = floor_char(text, (end + SNIPPET_CONTEXT).min(line_end));
    let from = from.max(line_start);
    let one_line = |s: &str| s.replace('\r', " ");
    format!(
        "{}{}«{}»{}{}",
        if from > line_start { "…" } else { "" },
        one_line(&text[from..at]),
        one_line(&text[at..end]),
        one_line(&text[end..to.max(end)]),
        if to < line_end { "…" } else { "" },
    )
}

/// Distinct trigrams (three characters) of the needle, at most `max`, spread over it: every
/// block holding the needle holds them all.
pub(crate) fn needle_trigrams(folded: &str, max: usize) -> Vec<String> {
    let chars: Vec<char> = folded.chars().collect();
    if chars.len() < 3 {
        return Vec::new();
    }
    let all: Vec<String> = chars.windows(3).map(|w| w.iter().collect()).collect();
    let mut picked: Vec<String> = Vec::new();
    let step = (all.len() as f64 / max as f64).max(1.0);
    let mut i = 0.0;
    while (i as usize) < all.len() && picked.len() < max {
        let t = &all[i as usize];
        if !picked.contains(t) {
            picked.push(t.clone());
        }
        i += step;
    }
    if let Some(last) = all.last()
        && !picked.contains(last)
    {
        picked.push(last.clone());
    }
    picked
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
    use super::*;

    #[test]
    fn marks_round_trip_and_refuse_garbage() {
        let marks = vec![(0, 5), (100, 5_000_000), (16_000, 5_000_001)];
        assert_eq!(decode_marks(&encode_marks(&marks)), Some(marks));
        assert_eq!(decode_marks(&[0x80]), None);
        assert_eq!(decode_marks(&[]), Some(vec![]));
    }

    #[test]
    fn matches_in_a_block_are_case_insensitive_one_per_line() {
        let text = "Alpha beta ALPHA\nnothing\nİstanbul alpha\n";
        let hits = find_in_block(text, &fold_needle("alpha"), 10);
        assert_eq!(hits.len(), 2);
        assert_eq!(&text[hits[0].0..hits[0].1], "Alpha");
        assert_eq!(&text[hits[1].0..hits[1].1], "alpha");
        assert_eq!(block_snippet(text, hits[1].0, hits[1].1), "İstanbul «alpha»");
        assert_eq!(find_in_block(text, &fold_needle("İSTANBUL"), 10).len(), 1);
        assert_eq!(needle_trigrams("abcd", 8), ["abc", "bcd"]);
        assert!(needle_trigrams("ab", 8).is_empty());
    }

    #[test]
    fn a_block_dates_its_text_by_its_marks() {
        let b = OutputBlock {
            channel: 0,
            at_us: 0,
            start_offset_us: 10,
            end_offset_us: 30,
            text: "one\ntwo\nthree\n".into(),
            marks: vec![(0, 10), (4, 20), (8, 30)],
        };
        assert_eq!([0, 3, 4, 7, 8, 12].map(|i| b.offset_at(i)), [10, 10, 20, 20, 30, 30]);
    }

    #[test]
    fn like_patterns_are_literal_but_for_the_glob_star() {
        assert_eq!(super::like_substring("100%_a\\b"), "%100\\%\\_a\\\\b%");
        assert_eq!(super::like_glob("*/etc/*_x"), "%/etc/%\\_x");
        assert_eq!(super::like_glob("plain"), "plain");
    }
}
