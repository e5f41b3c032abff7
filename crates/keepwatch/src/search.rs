//! `keepwatch search`, `keepwatch reindex` and `keepwatch index status`: what people ran and
//! saw, across sessions, and how far the index has got.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use keepwatch_core::{AuditAction, SessionId};
use keepwatch_store::{
    CommandRow, IndexScope, IndexState, IndexStatus, NewAudit, SearchQuery, SessionFilter, Store,
    StoreError,
};
use serde_json::{Value, json};

pub(crate) use keepwatch_web::{command_json, index_status_json, search_json};

use crate::datadir::DataDir;
use crate::output::{local_actor, parse_time, print_json, rfc3339, table};

#[derive(Args)]
pub(crate) struct SearchArgs {
    /// Text to find in commands and their output: a case-insensitive substring, so paths
    /// and flags match inside words (`/etc/sudoers`, `-rf`).
    query: String,
    /// Only this person's sessions.
    #[arg(long, value_name = "U")]
    user: Option<String>,
    /// Only sessions to this target.
    #[arg(long, value_name = "T")]
    target: Option<String>,
    /// Only commands started at or after TIME (RFC 3339, a date, or an age like 2h, 7d).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only commands started at or before TIME.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Match command lines only, not output or screen snapshots.
    #[arg(long)]
    commands_only: bool,
    /// Only sessions tagged TAG (`keepwatch tag`).
    #[arg(long, value_name = "TAG")]
    tag: Option<keepwatch_core::Tag>,
    /// At most this many hits, newest first.
    #[arg(long, value_name = "N", default_value_t = 20)]
    limit: u32,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct ReindexArgs {
    /// Sessions to index again from their recordings.
    ids: Vec<SessionId>,
    /// Every session.
    #[arg(long)]
    all: bool,
}

#[derive(Subcommand)]
pub(crate) enum IndexCommand {
    /// How far the search index is behind the recordings: one row per session not fully
    /// indexed (live sessions always are), or for the sessions named. A session is complete
    /// once its recording ended and every event of it is indexed; until then the row says
    /// how many bytes of the recording (file header and whole chunks) the indexer has read
    /// of how many there are now.
    Status(IndexStatusArgs),
}

#[derive(Args)]
pub(crate) struct IndexStatusArgs {
    /// Sessions to report whatever their state (default: every session not fully indexed).
    ids: Vec<SessionId>,
    #[arg(long)]
    json: bool,
}

/// Microseconds as `+M:SS.mmm`, the offset `replay --at` takes.
pub(crate) fn offset(us: u64) -> String {
    let ms = us / 1000;
    format!("+{}:{:02}.{:03}", ms / 60_000, ms / 1000 % 60, ms % 1000)
}

/// One line per command for `show`: number, offset, kind and text.
pub(crate) fn command_cells(c: &CommandRow) -> Vec<String> {
    let text = match (c.kind.as_str(), c.confidence.as_str()) {
        ("screen", _) => format!("[screen] {}", first_line(&c.output)),
        (_, "unknown") => "[not echoed: text unknown]".into(),
        _ => c.command.replace('\n', " ⏎ "),
    };
    let text = match &c.typed {
        Some(typed) => format!("{text}   (typed: {typed})"),
        None => text,
    };
    vec![c.seq.to_string(), offset(c.start_offset_us), c.kind.clone(), text]
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim()
}

pub(crate) async fn search(dir: &DataDir, a: SearchArgs) -> anyhow::Result<ExitCode> {
    if a.query.is_empty() {
        bail!("the search text is empty");
    }
    let store = dir.store().await?;
    let q = SearchQuery {
        text: a.query.clone(),
        person: a.user,
        target: a.target,
        session: None,
        since_us: a.since.as_deref().map(parse_time).transpose().context("--since")?,
        until_us: a.until.as_deref().map(parse_time).transpose().context("--until")?,
        commands_only: a.commands_only,
        tag: a.tag.as_ref().map(|t| t.to_string()),
        limit: a.limit.max(1),
    };
    store
        .audit(NewAudit {
            actor: local_actor(),
            action: AuditAction::Searched,
            session_id: None,
            client_addr: None,
            detail: json!({ "query": a.query, "commands_only": a.commands_only }).to_string(),
        })
        .await
        .context("cannot write the audit event; refusing to search unaudited")?;
    let answer = store.search(&q).await?;
    let blobs = dir.blobs()?;
    let gaps = store.search_gaps(&blobs, &q).await?;
    if a.json {
        print_json(&search_json(&answer, &gaps));
        return Ok(ExitCode::SUCCESS);
    }
    if answer.hits.is_empty() {
        eprintln!("keepwatch: no match for {:?}", a.query);
    } else {
        let rows: Vec<Vec<String>> = answer
            .hits
            .iter()
            .map(|h| {
                let at = match (h.in_output, h.command.seq) {
                    (false, seq) => format!("{} #{seq}", offset(h.offset_us)),
                    (true, 0) => format!("{} output", offset(h.offset_us)),
                    (true, seq) => format!("{} output of #{seq}", offset(h.offset_us)),
                };
                vec![
                    h.session_id.to_string(),
                    h.person.clone(),
                    h.target.clone(),
                    rfc3339(h.at_us),
                    at,
                    h.snippet.clone(),
                ]
            })
            .collect();
        table(&["SESSION", "USER", "TARGET", "AT", "OFFSET", "MATCH"], &rows);
        eprintln!("replay a hit: keepwatch replay SESSION --at OFFSET (or --at-command N)");
    }
    if answer.stopped_early {
        eprintln!(
            "keepwatch: the search stopped after reading as much output as one search may; older \
             output was not searched: narrow it (--user, --target, --since, --until)"
        );
    }
    if !gaps.is_empty() {
        let named: Vec<String> = gaps
            .listed
            .iter()
            .map(|g| match (&g.error, g.bytes_recorded) {
                (Some(e), _) => format!("{} (not indexed: {e})", g.session_id),
                (None, _) if g.state == IndexState::Rebuilding => format!(
                    "{} (output stored before the upgrade not searchable yet)",
                    g.session_id
                ),
                (None, Some(of)) => {
                    format!("{} ({} of {of} bytes indexed)", g.session_id, g.bytes_indexed)
                }
                (None, None) => format!("{} ({} bytes indexed)", g.session_id, g.bytes_indexed),
            })
            .collect();
        let more = gaps.total.saturating_sub(gaps.listed.len() as u64);
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        eprintln!(
            "keepwatch: {} session(s) not fully indexed yet, matches there may be missing: {}{more}",
            gaps.total,
            named.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// How many times `reindex` tries a session that another writer is indexing at the same time.
const REINDEX_TRIES: u32 = 5;

pub(crate) async fn reindex(dir: &DataDir, a: ReindexArgs) -> anyhow::Result<ExitCode> {
    if a.ids.is_empty() != a.all {
        bail!("name sessions to reindex, or pass --all (not both)");
    }
    let store = dir.store().await?;
    let blobs = dir.blobs()?;
    let ids = if a.all { all_sessions(&store).await? } else { a.ids };
    let bar = indicatif::ProgressBar::new(ids.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} reindexing [{bar:30}] {pos}/{len} sessions, {msg} read, eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let (mut commands, mut bytes, mut failed) = (0u64, 0u64, 0usize);
    for id in &ids {
        let mut seen = |n: u64| {
            bytes += n;
            bar.set_message(indicatif::HumanBytes(bytes).to_string());
        };
        // A running gateway's indexer may catch the session up while it is cleared and
        // rewritten here: a conflict is two writers, not a bad recording, so try again.
        let mut tries = 0;
        let done = loop {
            tries += 1;
            match keepwatch_index::reindex(&store, &blobs, *id, &mut seen).await {
                Err(keepwatch_index::IndexError::Store(StoreError::Conflict { .. }))
                    if tries < REINDEX_TRIES => {}
                other => break other,
            }
        };
        match done {
            Ok(n) => commands += u64::from(n),
            Err(e) => {
                failed += 1;
                bar.suspend(|| eprintln!("keepwatch: session {id}: {e}"));
                store.set_index_error(*id, &e.to_string()).await?;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    store
        .audit(NewAudit {
            actor: local_actor(),
            action: AuditAction::Reindexed,
            session_id: (ids.len() == 1).then(|| ids[0]),
            client_addr: None,
            detail: format!("{} session(s), {commands} command(s)", ids.len()),
        })
        .await?;
    eprintln!(
        "keepwatch: reindexed {} session(s): {commands} command(s), {} read{}",
        ids.len() - failed,
        indicatif::HumanBytes(bytes),
        if failed > 0 { format!(", {failed} failed") } else { String::new() }
    );
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

pub(crate) async fn index(dir: &DataDir, c: IndexCommand) -> anyhow::Result<ExitCode> {
    let IndexCommand::Status(a) = c;
    let store = dir.store().await?;
    let blobs = dir.blobs()?;
    let scope =
        if a.ids.is_empty() { IndexScope::Unfinished } else { IndexScope::Sessions(&a.ids) };
    let rows = store.index_status(&blobs, scope).await?;
    if a.json {
        print_json(&Value::Array(rows.iter().map(index_status_json).collect()));
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        eprintln!("keepwatch: every session is fully indexed");
        return Ok(ExitCode::SUCCESS);
    }
    let cells: Vec<Vec<String>> = rows.iter().map(index_status_cells).collect();
    table(&["SESSION", "STATUS", "INDEX", "INDEXED", "UPDATED", "ERROR"], &cells);
    Ok(ExitCode::SUCCESS)
}

fn index_status_cells(s: &IndexStatus) -> Vec<String> {
    let indexed = match s.bytes_recorded {
        Some(recorded) => format!("{} of {recorded} bytes", s.bytes_indexed),
        None => format!("{} bytes, no recording found", s.bytes_indexed),
    };
    vec![
        s.session_id.to_string(),
        s.session_status.as_str().to_owned(),
        s.state.as_str().to_owned(),
        indexed,
        s.updated_at_us.map_or_else(|| "never".to_owned(), rfc3339),
        s.error.clone().unwrap_or_default(),
    ]
}

async fn all_sessions(store: &Store) -> anyhow::Result<Vec<SessionId>> {
    let mut ids: Vec<SessionId> =
        store.sessions(&SessionFilter::default()).await?.iter().map(|s| s.id).collect();
    ids.reverse();
    Ok(ids)
}

/// Lists what `show` prints under "commands".
pub(crate) fn print_commands(commands: &[CommandRow]) {
    // Database statements carry their outcome (command tag or error) in one more column.
    if commands.iter().any(|c| c.kind == "sql") {
        let rows: Vec<Vec<String>> = commands
            .iter()
            .map(|c| {
                let mut cells = command_cells(c);
                let outcome = if c.kind == "sql" { first_line(&c.output) } else { "" };
                cells.push(outcome.to_owned());
                cells
            })
            .collect();
        table(&["#", "OFFSET", "KIND", "COMMAND", "OUTCOME"], &rows);
        return;
    }
    let rows: Vec<Vec<String>> = commands.iter().map(command_cells).collect();
    table(&["#", "OFFSET", "KIND", "COMMAND"], &rows);
}

/// An offset into a recording as `offset` prints it (`+1:02.500`), or `H:MM:SS`, `M:SS`,
/// or seconds (`62.5`, `62.5s`); in microseconds.
pub(crate) fn parse_offset(s: &str) -> anyhow::Result<u64> {
    let t = s.trim().trim_start_matches('+').trim_end_matches('s');
    let mut secs = 0f64;
    for part in t.split(':') {
        let v: f64 =
            part.parse().ok().filter(|v: &f64| v.is_finite() && *v >= 0.0).with_context(|| {
                format!(
                    "{s:?} is not an offset: use +M:SS.mmm (as search prints), H:MM:SS or seconds"
                )
            })?;
        secs = secs * 60.0 + v;
    }
    Ok((secs * 1e6) as u64)
}
