//! Search on PostgreSQL: `pg_trgm` GIN indexes on `commands.command` and
//! `output_blocks.text` answer `ILIKE '%text%'` with the text's `%`, `_` and `\` escaped. The index narrows the
//! candidates by trigrams; PostgreSQL then rechecks each candidate row against the pattern
//! itself (the confirm step), so every hit is an exact case-insensitive substring, as on
//! SQLite. Texts shorter than three characters have no trigram and scan, as on SQLite.
//!
//! Newest first: a GIN index cannot hand out its matches in id order, and `pg_trgm` keeps
//! only letters and digits in its trigrams (`usr/bin/r` narrows to rows holding the words
//! `usr`, `bin` and one starting with `r`), so a bitmap scan over every command fetches and
//! rechecks every candidate before `LIMIT` (115,000 rows, 3 s, for `usr/bin/r` at 1M
//! commands), and the planner, which guesses a few dozen, picks it anyway. An unfiltered
//! search therefore first walks the newest `FIRST_WINDOW` ids in id order with bitmap scans
//! off (the row filter tests each one; ~20 ms), which is enough for any text that is not
//! rare; only if that finds fewer than `limit` hits does one statement search the older ids.
//! A time bound first becomes the range of command ids whose time spans meet it
//! (`command_spans`, the span of each 1024 ids, as SQLite's `command_blocks`), and the same
//! two steps walk only that range: ordered by id alone, the planner walked back from the
//! newest command until it met the bound (596,158 commands, 1 s, for a rare text at 1M).
//! Within a time bound, a statement through the trigram index alone gets `TRIGRAM_BUDGET`
//! and, out of time, gives way to a walk of the bound's rows in id order for `WALK_BUDGET`.
//! A person, target, session or tag filter names its sessions first, then walks windows of
//! ids from the newest, reading only those sessions' commands (`commands_session_id`) and
//! testing the text in those only, instead of fetching every trigram match. All statements
//! of a search read one snapshot (a repeatable-read transaction), so the hits are exactly
//! what one statement over everything would return.
//!
//! Output blocks are walked newest first in windows of ids that grow as they miss, and every
//! match is confirmed line by line in the text, as on SQLite. Unfiltered, the newest 256
//! blocks are read in id order and older windows through the trigram index only; a person,
//! target, session or tag filter names its sessions first and each window tests the text in
//! their blocks only, never through the trigram index. A time bound first becomes the range
//! of block ids whose time spans meet it (`output_spans`, the span of each 1024 ids, as on
//! SQLite), and only that range is walked; the plan of each window is left to the planner.
//!
//! A filtered search reads every block of its sessions when the text is in none of them
//! (about 50 µs a 4 KiB block: reading it from TOAST and lower-casing it for `ILIKE`), because
//! the trigram index is no way out: its scan alone took 40–230 ms for texts of common
//! trigrams at 1 GB, and the planner, guessing a few dozen candidates, rechecks all of them
//! rather than only the sessions' (5.6 s for `fig.y`). An index that knows the person and
//! target of each block, as SQLite's does, would be.
//!
//! The trigram indexes live on the rows themselves, so writing or deleting a row is indexing
//! or forgetting it: [`TextIndex::add`] only widens the output blocks' time spans, and
//! [`TextIndex::forget`] has nothing to do (a span that outlives its blocks is only wider than
//! it need be).

use keepwatch_core::SessionId;
use sqlx::{PgConnection, PgPool, Row};

use crate::StoreError;
use crate::decode;
use crate::error::At;
use crate::rows::*;
use crate::search::{OutputSearch, SPAN_BITS, TextIndex, block_times, like_substring, widen_spans};

/// Ids walked in order before falling back to the trigram indexes.
const FIRST_WINDOW: i64 = 8192;
/// Output blocks read newest first in id order before the trigram index takes over; and the
/// blocks of a page, when the trigram index is read a page at a time.
const FIRST_BLOCKS: i64 = 256;
/// How long (ms) a time-bounded search may read through the trigram index alone: the older
/// commands of its range (after the newest `FIRST_WINDOW`), and the first page of output
/// blocks when the planner reads them so. That rechecks every row of the table holding the
/// trigrams, not only the bound's: cheap for rare trigrams (`otat`, 42 ms), seconds for
/// common ones (over a week at 1 GB, `/etc/gr`: output 2–4 s, where walking the bound's
/// blocks in id order found a page in 130–180 ms; commands 0.6–0.9 s). Out of time, the
/// statement is given up (its savepoint rolled back) and the bound's range walked in id order
/// instead, for at most `WALK_BUDGET`.
const TRIGRAM_BUDGET: u32 = 100;
/// How long (ms) a time-bounded search may walk its range in id order after the trigram index
/// ran out of time. A walk reads every row of the range that does not hold the text (50 µs an
/// output block): a wide bound and a rare text could take longer than the index did. Out of
/// time, the rest of the range is read through the trigram index after all, unbounded, as
/// before there was a budget: the worst case is that plus the two budgets and one window of
/// the walk (8,192 output blocks, about 0.4 s).
const WALK_BUDGET: u32 = 500;
/// The most output blocks one statement returns (4 MiB of text, at 4 KiB a block).
const WINDOW_ROWS: i64 = 1024;

#[derive(Debug, Clone)]
pub(crate) struct TrigramIndex {
    pub(crate) pool: PgPool,
}

/// The hits of an unfiltered or time-bounded search among commands `$6` < id <= `$7`, newest
/// first; `$1` is the pattern, `$2`/`$3` the time bounds, `$4` commands only, `$5` the limit.
/// (A person, target, session or tag filter takes [`TrigramIndex::sessions_windows`].)
const COMMANDS_WINDOW: &str = "SELECT c.*, s.person, s.target FROM commands c \
     JOIN sessions s ON s.id = c.session_id \
     WHERE c.command ILIKE $1 ESCAPE '\\' AND c.id > $6 AND c.id <= $7 \
     AND ($2::bigint IS NULL OR c.at_us >= $2) AND ($3::bigint IS NULL OR c.at_us <= $3) \
     AND (NOT $4 OR c.kind IN ('shell', 'exec', 'stdin')) \
     ORDER BY c.id DESC LIMIT $5";

/// One window of output blocks holding the text, newest first; `$1` is the pattern, `$2` <
/// id <= `$3` the window, `$4`..`$9` the filters; `$matches` tests the text, and may test
/// `$10`, the filtered sessions' ids; `$limit` bounds the rows by the parameter after those.
macro_rules! output_window {
    ($matches:literal, $limit:literal) => {
        concat!(
            "SELECT b.id, b.session_id, b.channel, b.at_us, b.start_offset_us, \
             b.end_offset_us, b.marks, s.person, s.target, b.text AS body \
             FROM output_blocks b JOIN sessions s ON s.id = b.session_id \
             WHERE b.id > $2 AND b.id <= $3 AND ",
            $matches,
            " AND ($4::text IS NULL OR s.person = $4) AND ($5::text IS NULL OR s.target = $5) \
             AND ($6::text IS NULL OR b.session_id = $6) \
             AND ($7::bigint IS NULL OR b.at_us + b.end_offset_us - b.start_offset_us >= $7) \
             AND ($8::bigint IS NULL OR b.at_us <= $8) \
             AND ($9::text IS NULL OR b.session_id IN (SELECT session_id FROM session_tags WHERE tag = $9)) \
             ORDER BY b.id DESC",
            $limit
        )
    };
}

/// Binds `$1`..`$9` of an [`output_window!`] statement: the pattern, the window, the filters.
macro_rules! bind_window {
    ($query:expr, $pattern:expr, $low:expr, $high:expr, $q:expr) => {
        $query
            .bind(&$pattern)
            .bind($low)
            .bind($high)
            .bind(&$q.person)
            .bind(&$q.target)
            .bind($q.session.map(|s| s.to_string()))
            .bind($q.since_us)
            .bind($q.until_us)
            .bind($q.tag.as_ref().map(|t| t.to_ascii_lowercase()))
    };
}

impl TextIndex for TrigramIndex {
    type Conn = PgConnection;

    /// The trigram indexes take the rows in themselves; commands and output blocks widen
    /// their ids' time spans (`command_spans`, `output_spans`).
    async fn add(
        &self,
        conn: &mut PgConnection,
        _session: SessionId,
        rows: &[(i64, &CommandRow)],
        blocks: &[(i64, &OutputBlock)],
    ) -> Result<(), sqlx::Error> {
        let commands = rows.iter().map(|(id, c)| (*id, c.at_us, c.at_us));
        widen(conn, Spans::Commands, commands).await?;
        widen(conn, Spans::Output, blocks.iter().map(|(id, b)| block_times(*id, b))).await
    }

    async fn forget(&self, _conn: &mut PgConnection, _session: &str) -> Result<(), sqlx::Error> {
        Ok(())
    }

    async fn query_commands(&self, q: &SearchQuery) -> Result<Vec<SearchHit>, StoreError> {
        const OP: &str = "search";
        if q.limit == 0 {
            return Ok(Vec::new());
        }
        let pattern = like_substring(&q.text);
        let mut tx = self.pool.begin().await.at(OP, &q.text)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .at(OP, &q.text)?;
        let mut hits = Vec::new();
        if q.is_filtered() {
            // Planned for the values at hand, not once for any: a generic plan cannot know how
            // many ids `ANY` holds, nor use `commands_at` for `$2::bigint IS NULL OR c.at_us >=
            // $2` (6.4 s for one time-bounded search where the custom plan took 1 s).
            sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
                .execute(&mut *tx)
                .await
                .at(OP, &q.text)?;
        }
        if q.names_sessions() {
            let ids = named_sessions(&mut tx, q).await.at(OP, &q.text)?;
            if !ids.is_empty() {
                self.sessions_windows(&mut tx, q, &pattern, &ids, &mut hits).await?;
            }
            tx.commit().await.at(OP, &q.text)?;
            return Ok(hits);
        }
        // The newest FIRST_WINDOW ids (of those a time bound leaves) are read in id order, the
        // trigram index off, and only then the older ones through it: see the module's doc.
        if let Some((floor, high)) = commands_range(&mut tx, q).await.at(OP, &q.text)? {
            let split = high.saturating_sub(FIRST_WINDOW).max(floor);
            sqlx::query("SET LOCAL enable_bitmapscan = off")
                .execute(&mut *tx)
                .await
                .at(OP, &q.text)?;
            self.window(&mut tx, q, &pattern, (split, high), &mut hits).await?;
            sqlx::query("SET LOCAL enable_bitmapscan = on")
                .execute(&mut *tx)
                .await
                .at(OP, &q.text)?;
            if hits.len() < q.limit as usize && split > floor {
                let rest = (floor, split);
                let bounded = floor > i64::MIN;
                // Bounded in time: the trigram index within its budget, then a walk of the
                // range in id order within its own, then the trigram index without one.
                let mut done = false;
                let budgets: &[(u32, &str)] = if bounded {
                    &[
                        (TRIGRAM_BUDGET, "SET LOCAL enable_bitmapscan = on"),
                        (WALK_BUDGET, "SET LOCAL enable_bitmapscan = off"),
                    ]
                } else {
                    &[]
                };
                for &(budget, setting) in budgets {
                    sqlx::query(setting).execute(&mut *tx).await.at(OP, &q.text)?;
                    let statement = async |conn: &mut PgConnection| {
                        self.window(conn, q, &pattern, rest, &mut hits).await
                    };
                    done = within_budget(&mut tx, budget, statement).await?.is_some();
                    if done {
                        break;
                    }
                }
                if !done {
                    sqlx::query("SET LOCAL enable_bitmapscan = on")
                        .execute(&mut *tx)
                        .await
                        .at(OP, &q.text)?;
                    self.window(&mut tx, q, &pattern, rest, &mut hits).await?;
                }
            }
        }
        tx.commit().await.at(OP, &q.text)?;
        Ok(hits)
    }

    /// Output blocks holding the text, newest first, in growing windows of ids; each
    /// confirmed in its text.
    async fn query_output(&self, q: &SearchQuery) -> Result<SearchAnswer, StoreError> {
        const OP: &str = "search output";
        let pattern = like_substring(&q.text);
        let mut found = OutputSearch::new(q);
        let mut tx = self.pool.begin().await.at(OP, &q.text)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .at(OP, &q.text)?;
        let last: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM output_blocks")
            .fetch_one(&mut *tx)
            .await
            .at(OP, &q.text)?;
        // The statements below are prepared once and run with every filter combination: a
        // plan made for the values at hand, not a generic one for any.
        sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
            .execute(&mut *tx)
            .await
            .at(OP, &q.text)?;
        let mut high = last.unwrap_or(0);
        // A time bound becomes the range of block ids whose spans meet it: the windows walk
        // that range only, not every newer block.
        let mut floor = 0;
        if q.since_us.is_some() || q.until_us.is_some() {
            let Some((low, last)) = span_range(&mut tx, Spans::Output, q).await.at(OP, &q.text)?
            else {
                return Ok(found.finish());
            };
            floor = low;
            high = high.min(last);
            // Spans are 1024 ids wide: the newest block that starts by the end of the bound
            // and the oldest that ends after its start narrow the range to the ids that can
            // match (each a walk of the primary key, reading no text).
            let (low_id, high_id): (Option<i64>, Option<i64>) = sqlx::query_as(
                "SELECT (SELECT min(id) FROM output_blocks WHERE id > $1 AND id <= $2 \
                 AND ($3::bigint IS NULL OR at_us + end_offset_us - start_offset_us >= $3)), \
                 (SELECT max(id) FROM output_blocks WHERE id > $1 AND id <= $2 \
                 AND ($4::bigint IS NULL OR at_us <= $4))",
            )
            .bind(floor)
            .bind(high)
            .bind(q.since_us)
            .bind(q.until_us)
            .fetch_one(&mut *tx)
            .await
            .at(OP, &q.text)?;
            let Some((low_id, high_id)) = low_id.zip(high_id) else { return Ok(found.finish()) };
            floor = low_id - 1;
            high = high_id;
        }
        // A person, target, session or tag filter names its sessions first: each window then
        // tests the text in their blocks only (below).
        let sessions = if q.names_sessions() {
            let ids = named_sessions(&mut tx, q).await.at(OP, &q.text)?;
            if ids.is_empty() {
                return Ok(found.finish());
            }
            Some(ids)
        } else {
            None
        };
        // Without a trigram the trigram index cannot help: every window is read in id order.
        // A time bound is steered as an unfiltered search is, within its range of ids.
        let steer = !found.trigrams().is_empty() && !q.names_sessions();
        let mut round = 0;
        // `next_batch` only says whether to go on. Unfiltered, the first window is the newest
        // `FIRST_BLOCKS` ids, read in id order (the trigram index off): a common text is found
        // there, and reading a few hundred blocks costs less than the index's bitmap of every
        // block holding those trigrams. After it, windows from `FIRST_WINDOW` up, doubling,
        // through the trigram index only (a plain index scan over the window off: it would
        // read every block of the window, 8,192 of them for a text that is in none).
        // Through the trigram index, the planner reads a window one of two ways. Guessing many
        // candidates, it intersects the index's bitmap with the window's ids (`BitmapAnd`):
        // 44 ms for `filesystem` over 8,192 ids. Guessing a few dozen (a text of many
        // trigrams), it rechecks every block of the table holding the trigrams and tests the
        // ids after: a window then costs as much as the whole range (1.25 s for `/tmp/backup`
        // at 1 GB, whatever the window), and walking windows pays it again each time. So the
        // first such window asks the planner (`EXPLAIN`), and in the second case the search
        // reads the whole range left, newest first, a page of `FIRST_BLOCKS` matching blocks
        // at a time.
        let mut paged = false;
        // Bounded in time and paged, the first page may take `TRIGRAM_BUDGET` only: see there.
        let bounded = q.since_us.is_some() || q.until_us.is_some();
        let (mut race, mut walked) = (false, None::<std::time::Instant>);
        while high > floor && found.next_batch().is_some() {
            // A walk out of its budget goes back to paging through the trigram index.
            if walked.is_some_and(|at| at.elapsed().as_millis() >= u128::from(WALK_BUDGET)) {
                set_all(&mut tx, THROUGH_TRIGRAMS).await.at(OP, &q.text)?;
                (paged, walked) = (true, None);
            }
            // Windows of a walk stay small, so its budget is looked at every few hundred ms.
            let window = match (round, walked) {
                (0, _) => FIRST_BLOCKS,
                (_, Some(_)) => FIRST_WINDOW,
                _ => FIRST_WINDOW << (round - 1).min(32),
            };
            let mut low = high.saturating_sub(window).max(floor);
            if steer && round <= 1 {
                let settings = if round == 0 { IN_ID_ORDER } else { THROUGH_TRIGRAMS };
                set_all(&mut tx, settings).await.at(OP, &q.text)?;
            }
            if steer && round == 1 {
                let explain = concat!(
                    "EXPLAIN ",
                    output_window!("b.text ILIKE $1 ESCAPE '\\'", " LIMIT $10")
                );
                let plan: Vec<String> =
                    bind_window!(sqlx::query_scalar(explain), pattern, low, high, q)
                        .bind(WINDOW_ROWS)
                        .fetch_all(&mut *tx)
                        .await
                        .at(OP, &q.text)?;
                paged = rechecks_whole_index(&plan);
                race = paged && bounded;
            }
            if paged {
                low = floor;
            }
            round += 1;
            // Filtered, the text is tested only in the sessions' blocks: `CASE` fixes that
            // order (PostgreSQL orders plain conditions by its own cost guess, and put `ILIKE`,
            // about 50 µs a block, before the session test: every block of the window read and
            // lower-cased, 490 ms for 8,192 ids where the guarded form takes 19 ms), and keeps
            // the trigram index out of the plan (its bitmap of every block holding the text is
            // bounded by nothing; the filter's own blocks are bounded by its history).
            let sql = if sessions.is_some() {
                output_window!(
                    "b.session_id = ANY($10) AND CASE WHEN b.session_id = ANY($10) \
                     THEN b.text ILIKE $1 ESCAPE '\\' END",
                    " LIMIT $11"
                )
            } else {
                output_window!("b.text ILIKE $1 ESCAPE '\\'", " LIMIT $10")
            };
            // A statement holds at most a page of blocks in memory, however many of a wide
            // window hold the text. Walking in id order, a page is about the blocks the limit
            // asks for: every block more is one more read.
            let page = match (paged, walked) {
                (true, _) => FIRST_BLOCKS,
                (false, Some(_)) => i64::from(q.limit).clamp(16, WINDOW_ROWS),
                (false, None) => WINDOW_ROWS,
            };
            let mut query = bind_window!(sqlx::query(sql), pattern, low, high, q);
            if let Some(ids) = &sessions {
                query = query.bind(ids);
            }
            let rows = if std::mem::take(&mut race) {
                let statement = async |conn: &mut PgConnection| {
                    query.bind(page).fetch_all(conn).await.at(OP, &q.text)
                };
                match within_budget(&mut tx, TRIGRAM_BUDGET, statement).await? {
                    Some(rows) => rows,
                    None => {
                        // Out of time: the range is walked newest first in id order instead.
                        set_all(&mut tx, IN_ID_ORDER).await.at(OP, &q.text)?;
                        (paged, walked) = (false, Some(std::time::Instant::now()));
                        continue;
                    }
                }
            } else {
                query.bind(page).fetch_all(&mut *tx).await.at(OP, &q.text)?
            };
            for r in &rows {
                if let Some(c) = decode::output_candidate(r, false).at(OP, &q.text)? {
                    found.confirm(&c);
                }
            }
            high = match rows.last() {
                // A full page: the rest lies below its oldest block.
                Some(oldest) if rows.len() as i64 == page => {
                    oldest.try_get::<i64, _>("id").at(OP, &q.text)? - 1
                }
                _ => low,
            };
        }
        tx.commit().await.at(OP, &q.text)?;
        Ok(found.finish())
    }

    async fn owner(
        &self,
        session: SessionId,
        channel: u32,
        offset_us: u64,
    ) -> Result<Option<CommandRow>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM commands WHERE session_id = $1 AND channel = $2 \
             AND start_offset_us <= $3 AND kind NOT IN ('screen', 'env') \
             ORDER BY start_offset_us DESC, seq DESC LIMIT 1",
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

/// Output blocks read in id order: the primary key walked, the trigram index off.
const IN_ID_ORDER: [&str; 2] =
    ["SET LOCAL enable_bitmapscan = off", "SET LOCAL enable_indexscan = on"];
/// Output blocks read through the trigram index (a bitmap), not by walking the primary key.
const THROUGH_TRIGRAMS: [&str; 2] =
    ["SET LOCAL enable_bitmapscan = on", "SET LOCAL enable_indexscan = off"];

/// Runs each of `settings` (`SET LOCAL` statements) in order.
async fn set_all(tx: &mut PgConnection, settings: [&'static str; 2]) -> Result<(), sqlx::Error> {
    for setting in settings {
        sqlx::query(setting).execute(&mut *tx).await?;
    }
    Ok(())
}

/// Runs `statement` within `budget` ms, under a savepoint: `None` when it ran out of time,
/// rolled back to the savepoint (the transaction goes on). The budget ends with it.
async fn within_budget<T>(
    tx: &mut PgConnection,
    budget: u32,
    statement: impl AsyncFnOnce(&mut PgConnection) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    const OP: &str = "search";
    sqlx::query("SAVEPOINT budget").execute(&mut *tx).await.at(OP, "budget")?;
    let setting = format!("SET LOCAL statement_timeout = {budget}");
    sqlx::query(sqlx::AssertSqlSafe(setting)).execute(&mut *tx).await.at(OP, "budget")?;
    let (end, done) = match statement(&mut *tx).await {
        Ok(done) => ("RELEASE SAVEPOINT budget", Some(done)),
        Err(e) if cancelled(&e) => ("ROLLBACK TO SAVEPOINT budget", None),
        Err(e) => return Err(e),
    };
    for setting in [end, "SET LOCAL statement_timeout = 0"] {
        sqlx::query(setting).execute(&mut *tx).await.at(OP, "budget")?;
    }
    Ok(done)
}

/// Whether a statement failed for running out of its `statement_timeout`.
fn cancelled(e: &StoreError) -> bool {
    use std::error::Error;
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(sqlx::Error::Database(db)) = s.downcast_ref::<sqlx::Error>() {
            return db.code().as_deref() == Some("57014");
        }
        source = s.source();
    }
    false
}

/// Whether a plan (`EXPLAIN`'s lines) reads output blocks through the trigram index alone,
/// rechecking every block that holds the trigrams before it tests the window's ids.
fn rechecks_whole_index(plan: &[String]) -> bool {
    plan.iter().any(|l| l.contains("Bitmap Index Scan on output_blocks_text_trgm"))
        && !plan.iter().any(|l| l.contains("BitmapAnd"))
}

/// Which ids' time spans to read or widen.
#[derive(Debug, Clone, Copy)]
enum Spans {
    Commands,
    Output,
}

/// Widens the time spans (`command_spans` or `output_spans`) of the ids `(id, first, last)`
/// cover to take their times in.
async fn widen(
    conn: &mut PgConnection,
    spans: Spans,
    times: impl Iterator<Item = (i64, i64, i64)>,
) -> Result<(), sqlx::Error> {
    let sql = match spans {
        Spans::Commands => {
            "INSERT INTO command_spans (span, min_at_us, max_at_us) VALUES ($1, $2, $3) \
             ON CONFLICT (span) DO UPDATE SET \
             min_at_us = least(command_spans.min_at_us, excluded.min_at_us), \
             max_at_us = greatest(command_spans.max_at_us, excluded.max_at_us)"
        }
        Spans::Output => {
            "INSERT INTO output_spans (span, min_at_us, max_at_us) VALUES ($1, $2, $3) \
             ON CONFLICT (span) DO UPDATE SET \
             min_at_us = least(output_spans.min_at_us, excluded.min_at_us), \
             max_at_us = greatest(output_spans.max_at_us, excluded.max_at_us)"
        }
    };
    for (span, (min, max)) in widen_spans(times) {
        sqlx::query(sql).bind(span).bind(min).bind(max).execute(&mut *conn).await?;
    }
    Ok(())
}

/// The ids `floor` < id <= the span range's end whose spans (`command_spans` or
/// `output_spans`) meet the time bounds, as one range; `None` when no id can.
async fn span_range(
    tx: &mut PgConnection,
    spans: Spans,
    q: &SearchQuery,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    let sql = match spans {
        Spans::Commands => {
            "SELECT min(span), max(span) FROM command_spans \
             WHERE ($1::bigint IS NULL OR max_at_us >= $1) AND ($2::bigint IS NULL OR min_at_us <= $2)"
        }
        Spans::Output => {
            "SELECT min(span), max(span) FROM output_spans \
             WHERE ($1::bigint IS NULL OR max_at_us >= $1) AND ($2::bigint IS NULL OR min_at_us <= $2)"
        }
    };
    let (first, last): (Option<i64>, Option<i64>) =
        sqlx::query_as(sql).bind(q.since_us).bind(q.until_us).fetch_one(tx).await?;
    Ok(first
        .zip(last)
        .map(|(first, last)| (((first << SPAN_BITS) - 1).max(0), ((last + 1) << SPAN_BITS) - 1)))
}

/// The command ids `floor` < id <= `high` an unfiltered or time-bounded search walks: every
/// command, or those within the time bounds' spans (`command_spans`) from the first command
/// at or after the start to the last at or before the end (each a walk of the primary key
/// within a span, reading no text); `None` when there is none.
async fn commands_range(
    tx: &mut PgConnection,
    q: &SearchQuery,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    let last: Option<i64> =
        sqlx::query_scalar("SELECT max(id) FROM commands").fetch_one(&mut *tx).await?;
    let Some(last) = last else { return Ok(None) };
    if q.since_us.is_none() && q.until_us.is_none() {
        return Ok(Some((i64::MIN, last)));
    }
    let Some((floor, high)) = span_range(&mut *tx, Spans::Commands, q).await? else {
        return Ok(None);
    };
    let (low_id, high_id): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT min(id) FROM commands WHERE id > $1 AND id <= $2 \
         AND ($3::bigint IS NULL OR at_us >= $3)), \
         (SELECT max(id) FROM commands WHERE id > $1 AND id <= $2 \
         AND ($4::bigint IS NULL OR at_us <= $4))",
    )
    .bind(floor)
    .bind(high.min(last))
    .bind(q.since_us)
    .bind(q.until_us)
    .fetch_one(tx)
    .await?;
    Ok(low_id.zip(high_id).filter(|(low, high)| low <= high).map(|(low, high)| (low - 1, high)))
}

/// The ids of the sessions a person, target, session or tag filter names.
async fn named_sessions(
    tx: &mut PgConnection,
    q: &SearchQuery,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM sessions WHERE ($1::text IS NULL OR person = $1) \
         AND ($2::text IS NULL OR target = $2) AND ($3::text IS NULL OR id = $3) \
         AND ($4::text IS NULL OR id IN (SELECT session_id FROM session_tags WHERE tag = $4))",
    )
    .bind(&q.person)
    .bind(&q.target)
    .bind(q.session.map(|s| s.to_string()))
    .bind(q.tag.as_ref().map(|t| t.to_ascii_lowercase()))
    .fetch_all(tx)
    .await
}

impl TrigramIndex {
    /// Appends the hits among the commands of sessions `ids`, newest first, up to `q.limit`
    /// in all: windows of ids from the newest, doubling, each reading only those sessions'
    /// commands (`commands_session_id`) and testing the text in those only (the `CASE` fixes
    /// that order, and keeps the trigram index out: its bitmap of every command holding the
    /// text is bounded by nothing, the sessions' commands by their history). A common text
    /// is found in the first window; a text in none of them costs one read of each.
    /// Ordered by `c.id + 0`, which no index gives: ordered by `c.id`, the planner walks the
    /// primary key backwards hoping to meet `LIMIT` soon, and reads every command of the
    /// window when the text is rare (730 ms for the whole history of the busiest person,
    /// where the session index takes 43 ms).
    async fn sessions_windows(
        &self,
        tx: &mut PgConnection,
        q: &SearchQuery,
        pattern: &str,
        ids: &[String],
        hits: &mut Vec<SearchHit>,
    ) -> Result<(), StoreError> {
        const OP: &str = "search";
        let (first, last): (Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT min(id), max(id) FROM commands")
                .fetch_one(&mut *tx)
                .await
                .at(OP, &q.text)?;
        let Some((first, mut high)) = first.zip(last) else { return Ok(()) };
        let mut round = 0;
        while high >= first && hits.len() < q.limit as usize {
            let low = high.saturating_sub(FIRST_WINDOW << round.min(32));
            round += 1;
            let rows = sqlx::query(
                "SELECT c.*, s.person, s.target FROM commands c \
                 JOIN sessions s ON s.id = c.session_id \
                 WHERE c.id > $1 AND c.id <= $2 AND c.session_id = ANY($3) \
                 AND ($4::bigint IS NULL OR c.at_us >= $4) AND ($5::bigint IS NULL OR c.at_us <= $5) \
                 AND (NOT $6 OR c.kind IN ('shell', 'exec', 'stdin')) \
                 AND CASE WHEN c.session_id = ANY($3) THEN c.command ILIKE $7 ESCAPE '\\' END \
                 ORDER BY c.id + 0 DESC LIMIT $8",
            )
            .bind(low)
            .bind(high)
            .bind(ids)
            .bind(q.since_us)
            .bind(q.until_us)
            .bind(q.commands_only)
            .bind(pattern)
            .bind(i64::from(q.limit) - hits.len() as i64)
            .fetch_all(&mut *tx)
            .await
            .at(OP, &q.text)?;
            for r in &rows {
                hits.push(decode::search_hit(r, q).at(OP, &q.text)?);
            }
            high = low;
        }
        Ok(())
    }

    /// Appends the hits with `low < id <= high`, newest first, up to `q.limit` in all.
    async fn window(
        &self,
        tx: &mut PgConnection,
        q: &SearchQuery,
        pattern: &str,
        (low, high): (i64, i64),
        hits: &mut Vec<SearchHit>,
    ) -> Result<(), StoreError> {
        const OP: &str = "search";
        let rows = sqlx::query(COMMANDS_WINDOW)
            .bind(pattern)
            .bind(q.since_us)
            .bind(q.until_us)
            .bind(q.commands_only)
            .bind(i64::from(q.limit) - hits.len() as i64)
            .bind(low)
            .bind(high)
            .fetch_all(tx)
            .await
            .at(OP, &q.text)?;
        for r in &rows {
            hits.push(decode::search_hit(r, q).at(OP, &q.text)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{cancelled, rechecks_whole_index};
    use crate::error::At;

    /// A statement out of its `statement_timeout` is told from any other failure, as the
    /// store reports it (the budgets above fall back on it), against a real server.
    #[tokio::test]
    async fn a_statement_out_of_time_is_told_apart() {
        use sqlx::Connection;
        let url = std::env::var("KEEPWATCH_TEST_POSTGRES")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {url} ({e}): start it (`pg_ctlcluster 15 main \
                 start`) or set KEEPWATCH_TEST_POSTGRES"
            )
        });
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("SAVEPOINT s").execute(&mut *tx).await.unwrap();
        sqlx::query("SET LOCAL statement_timeout = 100").execute(&mut *tx).await.unwrap();
        let slow = sqlx::query("SELECT pg_sleep(1)").execute(&mut *tx).await.at("search", "x");
        assert!(cancelled(&slow.unwrap_err()));
        // Rolled back to its savepoint, the transaction goes on, without the budget.
        for setting in ["ROLLBACK TO SAVEPOINT s", "SET LOCAL statement_timeout = 0"] {
            sqlx::query(setting).execute(&mut *tx).await.unwrap();
        }
        let wrong = sqlx::query("SELECT 1/0").execute(&mut *tx).await.at("search", "x");
        assert!(!cancelled(&wrong.unwrap_err()));
        sqlx::query("ROLLBACK TO SAVEPOINT s").execute(&mut *tx).await.unwrap();
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut *tx).await.unwrap();
        assert_eq!(one, 1);
    }

    fn lines(plan: &str) -> Vec<String> {
        plan.lines().map(str::to_owned).collect()
    }

    /// Plans PostgreSQL 15 made for one window of a 1 GB store (trimmed).
    #[test]
    fn a_plan_through_the_trigram_index_alone_is_paged() {
        let alone = lines(
            "Sort  (cost=550.41..550.41 rows=1 width=8)\n\
             ->  Bitmap Heap Scan on output_blocks b  (cost=445.07..542.09 rows=1 width=45)\n\
                   Recheck Cond: (text ~~* '%docker ps%'::text)\n\
                   Filter: ((id > 237868) AND (id <= 246060))\n\
                   ->  Bitmap Index Scan on output_blocks_text_trgm  (cost=0.00..444.18 rows=25)",
        );
        assert!(rechecks_whole_index(&alone));
        let intersected = lines(
            "Sort  (cost=2448.52..2449.77 rows=498 width=8)\n\
             ->  Bitmap Heap Scan on output_blocks b  (cost=770.99..2426.21 rows=498 width=8)\n\
                   ->  BitmapAnd  (cost=770.99..770.99 rows=498 width=0)\n\
                         ->  Bitmap Index Scan on output_blocks_pkey  (cost=0.00..174.65)\n\
                         ->  Bitmap Index Scan on output_blocks_text_trgm  (cost=0.00..595.85)",
        );
        assert!(!rechecks_whole_index(&intersected));
        let scan = lines("Seq Scan on output_blocks b  (cost=0.00..12.00 rows=1 width=8)");
        assert!(!rechecks_whole_index(&scan));
    }
}
