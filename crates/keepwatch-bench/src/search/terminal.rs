//! Indexing terminal output (issue 14): a synthetic interactive session (a prompt, commands,
//! and their output: numbered lines, log lines, coloured listings, a progress bar) of
//! `--terminal-mb` MB of output, run through the indexer's `SessionIndexer` (terminal model,
//! command extractor, transcript, output blocks) in 4 MiB pieces as the indexer reads them,
//! each piece's rows and blocks written through `Store::add_commands` into a fresh SQLite
//! database. Reports the extraction rate alone, the rate with the writes, and the size of
//! what was written against the text indexed.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use keepwatch_core::{ChannelKind, SessionId, SessionStatus};
use keepwatch_index::SessionIndexer;
use keepwatch_recording::{Event, Pty, TimedEvent};
use keepwatch_store::{IndexProgress, SearchQuery, SessionRow, Store};

use super::corpus::Rng;

/// Bytes of output per output event (what one SSH channel data message carries, about).
const EVENT_BYTES: usize = 16 * 1024;
/// Output bytes between writes to the store (the indexer's piece).
const PIECE_BYTES: usize = 4 << 20;
/// Targets from the issue.
const RATE_TARGET_MB_S: f64 = 50.0;
const SIZE_TARGET: f64 = 1.5;

pub(crate) struct Report {
    pub backend: &'static str,
    pub output_mb: f64,
    pub text_mb: f64,
    pub extract_s: f64,
    pub store_s: f64,
    pub db_mb: f64,
    pub fts_mb: Option<f64>,
    pub found: bool,
}

/// The events of the synthetic session: about `mb` MB of output.
fn session_events(mb: u64, seed: u64) -> (Vec<TimedEvent>, u64) {
    let mut rng = Rng::new(seed ^ 0x7E2A_11AA_0000_0014);
    let mut events = Vec::new();
    let pty = Some(Pty { term: "xterm-256color".into(), cols: 120, rows: 40 });
    let mut at = 1_000u64;
    let mut push = |at: &mut u64, event: Event| {
        *at += 1_000;
        events.push(TimedEvent { at_us: *at, event });
    };
    push(&mut at, Event::ChannelOpen { channel: 0, kind: ChannelKind::Shell, pty });
    let prompt = "deploy@web-07:~$ ";
    push(&mut at, Event::Output { channel: 0, data: prompt.as_bytes().to_vec() });
    let (mut output, target) = (0u64, mb * 1_000_000);
    let mut line_no = 0u64;
    let mut command = 0u64;
    while output < target {
        command += 1;
        let kind = rng.index(4);
        let line = match kind {
            0 => format!("seq 1 {} | sed 's/^/KWLINE-/'", 100_000),
            1 => "journalctl -u nginx --since today".to_owned(),
            2 => "ls -la --color=always /var/lib/docker/overlay2".to_owned(),
            _ => "rsync -a --info=progress2 /srv/data backup:/srv/data".to_owned(),
        };
        push(&mut at, Event::Input { channel: 0, data: format!("{line}\r").into_bytes() });
        push(&mut at, Event::Output { channel: 0, data: format!("{line}\r\n").into_bytes() });
        // About 4 MB per command, in events of EVENT_BYTES.
        let size = 1_000_000 + rng.below(6_000_000) as usize;
        let mut text = String::with_capacity(size + 256);
        while text.len() < size {
            match kind {
                0 => {
                    line_no += 1;
                    let _ = write!(text, "KWLINE-{line_no}\r\n");
                }
                1 => {
                    let _ = write!(
                        text,
                        "Dec 01 10:{:02}:{:02} web-07 nginx[{}]: 10.{}.{}.{} - - \"GET /api/v1/items/{} HTTP/1.1\" {} {} \"-\" \"curl/8.{}\"\r\n",
                        rng.below(60),
                        rng.below(60),
                        1000 + rng.below(9000),
                        rng.below(256),
                        rng.below(256),
                        rng.below(256),
                        rng.below(1_000_000),
                        [200, 200, 200, 304, 404, 500][rng.index(6)],
                        rng.below(100_000),
                        rng.below(10),
                    );
                }
                2 => {
                    let _ = write!(
                        text,
                        "drwx--x--- {} root root {:>6} Dec  1 10:{:02} \x1b[01;34m{:016x}{:016x}\x1b[0m\r\n",
                        rng.below(9) + 1,
                        rng.below(100_000),
                        rng.below(60),
                        rng.below(u64::MAX),
                        rng.below(u64::MAX),
                    );
                }
                _ => {
                    let done = rng.below(1_000_000_000);
                    let _ = write!(
                        text,
                        "\r{done:>14} {:>3}%  {:>6.2}MB/s    0:00:{:02} (xfr#{}, to-chk={}/{})",
                        rng.below(100),
                        rng.below(100_000) as f64 / 100.0,
                        rng.below(60),
                        rng.below(10_000),
                        rng.below(100_000),
                        rng.below(100_000) + 100_000,
                    );
                    if rng.below(40) == 0 {
                        let _ =
                            write!(text, "\r\nsrv/data/part-{:08}.parquet\r\n", rng.below(1 << 30));
                    }
                }
            }
        }
        text.push_str("\r\n");
        output += text.len() as u64;
        let bytes = text.into_bytes();
        for piece in bytes.chunks(EVENT_BYTES) {
            push(&mut at, Event::Output { channel: 0, data: piece.to_vec() });
        }
        let marker = format!("KW-DONE-{command}\r\n{prompt}");
        push(&mut at, Event::Output { channel: 0, data: marker.into_bytes() });
    }
    push(&mut at, Event::Input { channel: 0, data: b"exit\r".to_vec() });
    push(&mut at, Event::Output { channel: 0, data: b"exit\r\nlogout\r\n".to_vec() });
    push(&mut at, Event::ChannelClose { channel: 0, exit_status: Some(0), exit_signal: None });
    (events, command)
}

/// Runs the phase in `dir` (a fresh SQLite database there), or in the empty PostgreSQL
/// database `postgres`.
pub(crate) async fn run(
    dir: &Path,
    postgres: Option<&str>,
    mb: u64,
    seed: u64,
) -> anyhow::Result<Report> {
    let (events, commands) = session_events(mb, seed);
    let output_bytes: u64 = events
        .iter()
        .map(|e| match &e.event {
            Event::Output { data, .. } => data.len() as u64,
            _ => 0,
        })
        .sum();
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let db = dir.join("terminal.db");
    let _ = std::fs::remove_file(&db);
    let store = match postgres {
        Some(url) => Store::open(&keepwatch_store::Database::Postgres(url.to_owned())).await,
        None => Store::open_sqlite(&db).await,
    }
    .context("cannot create the terminal database")?;
    let id = SessionId::new();
    let started_at_us = 1_764_000_000_000_000;
    store
        .insert_session(&SessionRow {
            stated_reason: None,
            protocol: keepwatch_core::Protocol::Ssh,
            id,
            person: "deploy".into(),
            target: "web-07".into(),
            target_host: "10.0.0.7:22".into(),
            target_login: "deploy".into(),
            client_addr: "10.0.0.1:50000".into(),
            status: SessionStatus::Closed,
            reason: None,
            started_at_us,
            ended_at_us: None,
            chain_head: None,
            seal_seq: None,
            seal_signature: None,
            node: None,
        })
        .await?;
    let mut ix = SessionIndexer::new();
    ix.event(&TimedEvent {
        at_us: 0,
        event: Event::SessionStart(keepwatch_recording::SessionStart {
            session_id: id,
            user: "deploy".into(),
            target: "web-07".into(),
            target_host: "10.0.0.7:22".into(),
            target_login: "deploy".into(),
            client_addr: "10.0.0.1:50000".into(),
            started_at_us,
        }),
    });
    let (mut extract, mut write) = (Duration::ZERO, Duration::ZERO);
    let (mut piece, mut text_bytes) = (0usize, 0u64);
    let last = events.len() - 1;
    for (i, e) in events.iter().enumerate() {
        let t = Instant::now();
        ix.event(e);
        if let Event::Output { data, .. } = &e.event {
            piece += data.len();
        }
        if piece < PIECE_BYTES && i != last {
            extract += t.elapsed();
            continue;
        }
        piece = 0;
        if i == last {
            ix.finish(e.at_us);
        }
        let rows = ix.drain_rows();
        let blocks = ix.drain_blocks();
        extract += t.elapsed();
        text_bytes += rows.iter().map(|r| r.command.len() as u64).sum::<u64>();
        text_bytes += blocks.iter().map(|b| b.text.len() as u64).sum::<u64>();
        let t = Instant::now();
        let progress =
            if i == last { IndexProgress::Complete } else { IndexProgress::Partial { bytes: 0 } };
        store.add_commands(id, &rows, &blocks, progress).await?;
        write += t.elapsed();
    }
    // Spot check: the last line of numbered output and the last command's marker.
    let q = |text: String| SearchQuery { text, limit: 5, ..SearchQuery::default() };
    let line = store.search(&q(format!("KWLINE-{}", lines_printed(&events)))).await?.hits;
    let done = store.search(&q(format!("KW-DONE-{commands}"))).await?.hits;
    let found = !line.is_empty() && done.len() == 1;
    store.close().await;
    let (db_mb, fts_mb) = match postgres {
        Some(url) => {
            let pool = super::pg_connect(url).await?;
            let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                .fetch_one(&pool)
                .await?;
            let index: i64 =
                sqlx::query_scalar("SELECT pg_relation_size('output_blocks_text_trgm')")
                    .fetch_one(&pool)
                    .await?;
            pool.close().await;
            (size as f64 / 1e6, Some(index as f64 / 1e6))
        }
        None => {
            let fts = fts_bytes(&db).await.map(|b| b as f64 / 1e6);
            let size = std::fs::metadata(&db).with_context(|| format!("{}", db.display()))?.len();
            (size as f64 / 1e6, fts)
        }
    };
    Ok(Report {
        backend: if postgres.is_some() { "PostgreSQL" } else { "SQLite" },
        output_mb: output_bytes as f64 / 1e6,
        text_mb: text_bytes as f64 / 1e6,
        extract_s: extract.as_secs_f64(),
        store_s: write.as_secs_f64(),
        db_mb,
        fts_mb,
        found,
    })
}

/// The highest `KWLINE-` number printed.
fn lines_printed(events: &[TimedEvent]) -> u64 {
    for e in events.iter().rev() {
        if let Event::Output { data, .. } = &e.event
            && let Some(at) = memrfind(data, b"KWLINE-")
        {
            let digits: String = data[at + 7..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .map(|&b| b as char)
                .collect();
            if let Ok(n) = digits.parse() {
                return n;
            }
        }
    }
    0
}

fn memrfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

/// Bytes of the output index itself (FTS5's shadow tables for `output_fts`), from `dbstat`
/// (`None` where SQLite was built without it).
async fn fts_bytes(db: &Path) -> Option<u64> {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let pool = sqlx::SqlitePool::connect(&url).await.ok()?;
    let bytes: Option<i64> =
        sqlx::query_scalar("SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'output_fts%'")
            .fetch_one(&pool)
            .await
            .ok()?;
    pool.close().await;
    bytes.map(|b| b.max(0) as u64)
}

impl Report {
    pub(crate) fn print(&self) {
        let rate = self.output_mb / self.extract_s;
        let with_store = self.output_mb / (self.extract_s + self.store_s);
        let ratio = self.db_mb / self.text_mb;
        println!(
            "terminal backend={} output_mb={:.1} text_mb={:.1} extract_s={:.1} store_s={:.1} extract_mb_per_s={rate:.1} with_store_mb_per_s={with_store:.1} db_mb={:.1} db_per_text={ratio:.2} fts_mb={} found={}",
            self.backend,
            self.output_mb,
            self.text_mb,
            self.extract_s,
            self.store_s,
            self.db_mb,
            self.fts_mb.map_or("-".into(), |f| format!("{f:.1}")),
            self.found,
        );
        println!();
        println!("| Terminal output indexed ({}, one core) | measured | target |", self.backend);
        println!("|---|---:|---|");
        let mark = |ok: bool| if ok { "met" } else { "**missed**" };
        println!(
            "| extraction: terminal model, commands, transcript, blocks | {rate:.1} MB/s | ≥ {RATE_TARGET_MB_S} MB/s: {} |",
            mark(rate >= RATE_TARGET_MB_S)
        );
        println!(
            "| extraction and writes (`add_commands`, 4 MiB pieces) | {with_store:.1} MB/s | ≥ {RATE_TARGET_MB_S} MB/s: {} |",
            mark(with_store >= RATE_TARGET_MB_S)
        );
        println!(
            "| database ÷ text indexed ({:.1} MB ÷ {:.1} MB) | {ratio:.2}× | ≤ {SIZE_TARGET}×: {} |",
            self.db_mb,
            self.text_mb,
            mark(ratio <= SIZE_TARGET)
        );
        if let Some(fts) = self.fts_mb {
            println!("| of which the output's trigram index | {:.2}× | |", fts / self.text_mb);
        }
        println!(
            "| the last numbered line and the last command's marker found | {} | |",
            if self.found { "yes" } else { "**no**" }
        );
    }
}
