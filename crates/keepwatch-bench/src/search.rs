//! The search index at scale: builds a fresh store (an SQLite file by default, or an empty
//! PostgreSQL database given by `--database`) full of synthetic sessions and commands through
//! `Store::add_commands` (one transaction per session, as the indexer writes), then times
//! `Store::search` for several classes of query, many different query strings each,
//! interleaved so every class sees the same machine conditions.

mod corpus;
mod terminal;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use keepwatch_store::{Database, IndexProgress, SearchQuery, Store};

use self::corpus::{DAY_US, END_US, Plan, Rng, SPAN_DAYS, Size};

/// The database file inside `--dir`.
const DB_FILE: &str = "search-bench.db";
/// Targets from the issue, per query.
const P50_TARGET_MS: f64 = 50.0;
const P99_TARGET_MS: f64 = 200.0;

#[derive(clap::Args)]
pub(crate) struct SearchArgs {
    /// Directory for the benchmark's SQLite database (created if missing); needed unless
    /// `--database` names a PostgreSQL database.
    #[arg(long, value_name = "DIR", required_unless_present = "database")]
    dir: Option<PathBuf>,
    /// A `postgres://` URL: benchmark PostgreSQL instead of SQLite. The database must exist
    /// and be empty (no tables) unless `--reuse`.
    #[arg(long, value_name = "URL", env = "KW_SEARCH_DATABASE")]
    database: Option<String>,
    /// Synthetic sessions.
    #[arg(long, env = "KW_SEARCH_SESSIONS", default_value_t = 10_000)]
    sessions: u32,
    /// Commands across all sessions.
    #[arg(long, env = "KW_SEARCH_COMMANDS", default_value_t = 1_000_000)]
    commands: u64,
    /// Output text across all commands, in MB (10^6 bytes).
    #[arg(long, env = "KW_SEARCH_OUTPUT_MB", default_value_t = 1000)]
    output_mb: u64,
    /// Different query strings timed per class.
    #[arg(long, env = "KW_SEARCH_QUERIES", default_value_t = 200)]
    queries: usize,
    /// Hits asked for per query (`keepwatch search` asks for 20 unless told otherwise).
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Seed of the generator: the same seed and sizes give the same corpus and queries.
    #[arg(long, env = "KW_SEARCH_SEED", default_value_t = 1)]
    seed: u64,
    /// Time the queries against the database a previous run with the same seed and sizes
    /// left in DIR (or in the `--database`), instead of building it again.
    #[arg(long)]
    reuse: bool,
    /// Before the search build: this many MB of synthetic terminal output indexed through
    /// the indexer into a database of its own (rates and index size); 0 skips it.
    #[arg(long, env = "KW_SEARCH_TERMINAL_MB", default_value_t = 256)]
    terminal_mb: u64,
    /// The terminal phase writes into this empty PostgreSQL database instead of SQLite.
    #[arg(long, value_name = "URL")]
    terminal_postgres: Option<String>,
    /// Write every timed query as `class<TAB>ms<TAB>hits<TAB>query` to this file.
    #[arg(long, value_name = "FILE")]
    raw: Option<PathBuf>,
    /// Time only this class of query (repeat for more): word, rare, substring,
    /// substring+user, substring+target, substring+time, commands-only. The queries are the
    /// same as in a run of every class.
    #[arg(long = "class", value_name = "CLASS", value_parser = Class::parse)]
    classes: Vec<Class>,
}

/// A kind of query, timed separately.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Word,
    Rare,
    Substring,
    ByUser,
    ByTarget,
    ByTime,
    CommandsOnly,
}

impl Class {
    const ALL: [Class; 7] = [
        Class::Word,
        Class::Rare,
        Class::Substring,
        Class::ByUser,
        Class::ByTarget,
        Class::ByTime,
        Class::CommandsOnly,
    ];

    fn name(self) -> &'static str {
        match self {
            Class::Word => "word",
            Class::Rare => "rare",
            Class::Substring => "substring",
            Class::ByUser => "substring+user",
            Class::ByTarget => "substring+target",
            Class::ByTime => "substring+time",
            Class::CommandsOnly => "commands-only",
        }
    }

    fn parse(name: &str) -> Result<Class, String> {
        Class::ALL.into_iter().find(|c| c.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Class::ALL.iter().map(|c| c.name()).collect();
            format!("no class {name:?}; the classes are {}", names.join(", "))
        })
    }

    fn describe(self) -> &'static str {
        match self {
            Class::Word => "common word (`error`, `nginx`, `publickey`, ...)",
            Class::Rare => {
                "rare word (planted in 1–13 commands: one line each, two in a command line)"
            }
            Class::Substring => "substring (`sudoers`, `-rf`, `/etc/ssh`, ...)",
            Class::ByUser => "substring `--user U`",
            Class::ByTarget => "substring `--target T`",
            Class::ByTime => "substring `--since`/`--until` (1–7 days)",
            Class::CommandsOnly => "substring `--commands-only`",
        }
    }
}

struct Case {
    class: Class,
    query: SearchQuery,
    /// Known number of hits (rare words only).
    expected: Option<u64>,
}

struct Timed {
    ms: f64,
    hits: usize,
}

struct Build {
    sessions: u32,
    commands: u64,
    text_bytes: u64,
    output_bytes: u64,
    wall: Duration,
    /// Time spent inside the store calls (the rest is the generator, overlapped).
    store: Duration,
}

pub(crate) async fn run(args: SearchArgs) -> anyhow::Result<()> {
    if args.sessions == 0 || args.commands < u64::from(args.sessions) {
        bail!("need at least one session and at least one command per session");
    }
    let target = Target::from_args(&args)?;
    if args.terminal_mb > 0 && !args.reuse {
        let dir = match &args.dir {
            Some(d) => d.join("terminal"),
            None => std::env::temp_dir().join(format!("keepwatch-terminal-{}", std::process::id())),
        };
        let report =
            terminal::run(&dir, args.terminal_postgres.as_deref(), args.terminal_mb, args.seed)
                .await?;
        report.print();
        let _ = std::fs::remove_dir_all(&dir);
        println!();
    }
    let size = Size {
        sessions: args.sessions,
        commands: args.commands,
        output_bytes: args.output_mb * 1_000_000,
    };
    let plan = Plan::new(size, args.seed);
    let backend = target.backend();
    println!("backend {backend} {}", target.database().describe());
    target.check(args.reuse).await?;
    let build = if args.reuse { None } else { Some(build(&target.database(), &plan).await?) };
    if build.is_some() {
        target.analyze().await?;
    }
    let db_bytes = target.size().await?;
    if let Some(b) = &build {
        let store_s = b.store.as_secs_f64();
        println!(
            "build backend={backend} sessions={} commands={} text_mb={:.1} output_mb={:.1} seconds={:.1} store_seconds={:.1} commands_per_s={:.0} mb_per_s={:.1} db_mb={:.0}",
            b.sessions,
            b.commands,
            b.text_bytes as f64 / 1e6,
            b.output_bytes as f64 / 1e6,
            b.wall.as_secs_f64(),
            store_s,
            b.commands as f64 / store_s,
            b.text_bytes as f64 / 1e6 / store_s,
            db_bytes as f64 / 1e6,
        );
    } else {
        println!("reuse backend={backend} db_mb={:.0}", db_bytes as f64 / 1e6);
    }

    let cases = cases(&plan, args.queries, args.limit, args.seed);
    let db = target.database();
    let store = Store::open(&db).await.with_context(|| format!("cannot open {}", db.describe()))?;
    let mut raw = match &args.raw {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => None,
    };
    let mut results: Vec<(Class, Vec<Timed>, u32)> =
        Class::ALL.iter().map(|c| (*c, Vec::new(), 0)).collect();
    // Round-robin over the classes: one query of each, then the next.
    let mut queues: Vec<_> = cases.iter().map(|c| c.iter()).collect();
    for _ in 0..args.queries {
        for (ci, queue) in queues.iter_mut().enumerate() {
            let Some(case) = queue.next() else { continue };
            let class = case.class;
            if !args.classes.is_empty() && !args.classes.contains(&class) {
                continue;
            }
            let started = Instant::now();
            let hits = store
                .search(&case.query)
                .await
                .with_context(|| format!("search {:?} ({})", case.query.text, class.name()))?
                .hits;
            let ms = started.elapsed().as_secs_f64() * 1e3;
            if let Some(w) = raw.as_mut() {
                writeln!(w, "{}\t{ms:.3}\t{}\t{}", class.name(), hits.len(), case.query.text)?;
            }
            if case.expected.is_some_and(|e| e != hits.len() as u64) {
                eprintln!(
                    "search-bench: {:?} found {} lines, expected {}",
                    case.query.text,
                    hits.len(),
                    case.expected.unwrap_or_default()
                );
                results[ci].2 += 1;
            }
            results[ci].1.push(Timed { ms, hits: hits.len() });
        }
    }
    if let Some(mut w) = raw {
        w.flush()?;
    }
    store.close().await;

    let mut rows = Vec::new();
    for (class, timed, wrong) in results.iter().filter(|(_, timed, _)| !timed.is_empty()) {
        let mut ms: Vec<f64> = timed.iter().map(|t| t.ms).collect();
        ms.sort_by(f64::total_cmp);
        let (p50, p99, max) = (percentile(&ms, 0.50), percentile(&ms, 0.99), ms[ms.len() - 1]);
        let mean_hits = timed.iter().map(|t| t.hits).sum::<usize>() as f64 / timed.len() as f64;
        let full = timed.iter().filter(|t| t.hits == args.limit as usize).count();
        let pass = p50 < P50_TARGET_MS && p99 < P99_TARGET_MS;
        println!(
            "query backend={backend} class={} n={} p50_ms={p50:.2} p99_ms={p99:.2} max_ms={max:.2} mean_hits={mean_hits:.1} full_pages={full} wrong={wrong} target={}",
            class.name(),
            ms.len(),
            if pass { "pass" } else { "miss" },
        );
        rows.push((*class, p50, p99, max, mean_hits, full, ms.len(), pass));
    }

    println!();
    if let Some(b) = &build {
        let store_s = b.store.as_secs_f64();
        println!(
            "Index build ({backend}): {} sessions, {} commands, {:.0} MB of text ({:.0} MB output) \
             in {:.0} s: **{:.0} commands/s, {:.1} MB/s**; {} {:.0} MB.",
            b.sessions,
            b.commands,
            b.text_bytes as f64 / 1e6,
            b.output_bytes as f64 / 1e6,
            store_s,
            b.commands as f64 / store_s,
            b.text_bytes as f64 / 1e6 / store_s,
            target.size_label(),
            db_bytes as f64 / 1e6,
        );
        println!();
    }
    println!(
        "| Query ({backend}, limit {}) | n | p50 ms | p99 ms | max ms | hits (mean) | full pages | target |",
        args.limit
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    for (class, p50, p99, max, mean_hits, full, n, pass) in rows {
        println!(
            "| {} | {n} | {p50:.1} | {p99:.1} | {max:.1} | {mean_hits:.1} | {full} | {} |",
            class.describe(),
            if pass { "pass" } else { "**miss**" },
        );
    }
    let wrong: u32 = results.iter().map(|r| r.2).sum();
    if wrong > 0 {
        bail!("{wrong} rare-word queries found a different number of lines than were planted");
    }
    Ok(())
}

/// Generates the corpus on a thread of its own and writes it through the store, session by
/// session, timing the store calls.
async fn build(db: &Database, plan: &Plan) -> anyhow::Result<Build> {
    let store =
        Store::open(db).await.with_context(|| format!("cannot create {}", db.describe()))?;
    let started = Instant::now();
    let mut b = Build {
        sessions: 0,
        commands: 0,
        text_bytes: 0,
        output_bytes: 0,
        wall: Duration::ZERO,
        store: Duration::ZERO,
    };
    let total = plan.size.commands;
    let mut next_report = total / 10;
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        scope.spawn(move || {
            for item in plan.generator() {
                if tx.blocking_send(item).is_err() {
                    break;
                }
            }
        });
        let handle = tokio::runtime::Handle::current();
        tokio::task::block_in_place(|| {
            handle.block_on(async {
                while let Some((session, rows)) = rx.recv().await {
                    let t = Instant::now();
                    store.insert_session(&session).await.context("insert_session")?;
                    // Output goes into blocks, as the indexer cuts it.
                    let mut blocks = keepwatch_index::Blocks::default();
                    for r in &rows {
                        let mut text = r.output.clone();
                        if !text.is_empty() && !text.ends_with('\n') {
                            text.push('\n');
                        }
                        blocks.push(session.started_at_us, r.channel, r.start_offset_us, &text);
                    }
                    let blocks = blocks.drain(session.started_at_us);
                    store
                        .add_commands(session.id, &rows, &blocks, IndexProgress::Complete)
                        .await
                        .context("add_commands")?;
                    b.store += t.elapsed();
                    b.sessions += 1;
                    b.commands += rows.len() as u64;
                    for r in &rows {
                        b.output_bytes += r.output.len() as u64;
                        b.text_bytes += (r.output.len() + r.command.len()) as u64;
                    }
                    if b.commands >= next_report && next_report > 0 {
                        eprintln!(
                            "search-bench: {}% ({} commands, {:.0} MB, {:.0} s)",
                            b.commands * 100 / total,
                            b.commands,
                            b.text_bytes as f64 / 1e6,
                            started.elapsed().as_secs_f64()
                        );
                        next_report += total / 10;
                    }
                }
                anyhow::Ok(())
            })
        })
    })?;
    store.close().await;
    b.wall = started.elapsed();
    Ok(b)
}

/// Where the benchmark's store lives.
enum Target {
    /// `search-bench.db` in this directory.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by URL.
    Postgres(String),
}

impl Target {
    fn from_args(args: &SearchArgs) -> anyhow::Result<Self> {
        if let Some(url) = args.database.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                bail!("--database: expected a postgres:// URL (SQLite is the default, in --dir)");
            }
            return Ok(Target::Postgres(url.to_owned()));
        }
        let Some(dir) = &args.dir else {
            bail!("--dir is needed for SQLite (or pass --database postgres://...)");
        };
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Target::Sqlite(dir.clone()))
    }

    fn backend(&self) -> &'static str {
        match self {
            Target::Sqlite(_) => "sqlite",
            Target::Postgres(_) => "postgres",
        }
    }

    fn database(&self) -> Database {
        match self {
            Target::Sqlite(dir) => Database::Sqlite(dir.join(DB_FILE)),
            Target::Postgres(url) => Database::Postgres(url.clone()),
        }
    }

    fn size_label(&self) -> &'static str {
        match self {
            Target::Sqlite(_) => "database on disk",
            Target::Postgres(_) => "pg_database_size",
        }
    }

    /// Without `reuse`, the database must not exist yet (SQLite) or must have no tables
    /// (PostgreSQL); with it, it must hold a store.
    async fn check(&self, reuse: bool) -> anyhow::Result<()> {
        match self {
            Target::Sqlite(dir) => {
                let db = dir.join(DB_FILE);
                if reuse && !db.exists() {
                    bail!("--reuse: {} does not exist", db.display());
                }
                if !reuse && db.exists() {
                    bail!(
                        "{} already exists (remove it, or pass --reuse to time queries only)",
                        db.display()
                    );
                }
            }
            Target::Postgres(url) => {
                let pool = pg_connect(url).await?;
                let tables: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM information_schema.tables \
                     WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
                )
                .fetch_one(&pool)
                .await
                .context("cannot list the tables of the PostgreSQL database")?;
                pool.close().await;
                let describe = self.database().describe();
                if reuse && tables == 0 {
                    bail!("--reuse: {describe} has no tables (build it first, without --reuse)");
                }
                if !reuse && tables > 0 {
                    bail!(
                        "{describe} is not empty ({tables} tables): give an empty database \
                         (CREATE DATABASE ...), or pass --reuse to time queries only"
                    );
                }
            }
        }
        Ok(())
    }

    /// On PostgreSQL, `ANALYZE` after the bulk load, as autovacuum would on a default server
    /// (without statistics the planner guesses, and the search plans it picks can be far
    /// slower); timed and reported apart from the build. Nothing to do on SQLite.
    async fn analyze(&self) -> anyhow::Result<()> {
        if let Target::Postgres(url) = self {
            let pool = pg_connect(url).await?;
            let t = Instant::now();
            sqlx::query("ANALYZE").execute(&pool).await.context("ANALYZE")?;
            println!("analyze backend=postgres seconds={:.1}", t.elapsed().as_secs_f64());
            pool.close().await;
        }
        Ok(())
    }

    /// Bytes: the SQLite files, or `pg_database_size` of the PostgreSQL database.
    async fn size(&self) -> anyhow::Result<u64> {
        match self {
            Target::Sqlite(dir) => db_size(dir),
            Target::Postgres(url) => {
                let pool = pg_connect(url).await?;
                let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                    .fetch_one(&pool)
                    .await
                    .context("pg_database_size")?;
                pool.close().await;
                Ok(bytes.max(0) as u64)
            }
        }
    }
}

async fn pg_connect(url: &str) -> anyhow::Result<sqlx::PgPool> {
    sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(url).await.with_context(|| {
        format!("cannot connect to {}", Database::Postgres(url.to_owned()).describe())
    })
}

/// The bytes of the database and its WAL and shared-memory files.
fn db_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(DB_FILE) {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// `n` different queries per class, in `Class::ALL` order.
fn cases(plan: &Plan, n: usize, limit: u32, seed: u64) -> Vec<Vec<Case>> {
    let mut rng = Rng::new(seed ^ 0x5EA2_C4B3_9C4E_11E5);
    let q = |text: &str| SearchQuery { text: text.to_owned(), limit, ..SearchQuery::default() };
    let mut words = corpus::vocabulary_words();
    shuffle(&mut rng, &mut words);
    // Each substring class gets its own strings (so no class runs on another's warm pages).
    let substrings = corpus::substrings(&mut rng, n * 5);
    let mut subs = substrings.chunks(n);
    Class::ALL
        .iter()
        .map(|&class| {
            (0..n)
                .map(|i| {
                    let (query, expected) = match class {
                        Class::Word => (q(&words[i % words.len()]), None),
                        Class::Rare => {
                            let m = i % plan.markers.len();
                            let expected = plan.marker_hits(m).min(u64::from(limit));
                            (q(&plan.markers[m].word), Some(expected))
                        }
                        _ => (SearchQuery::default(), None),
                    };
                    Case { class, query, expected }
                })
                .collect::<Vec<_>>()
        })
        .map(|mut cases| {
            let class = cases[0].class;
            if matches!(class, Class::Word | Class::Rare) {
                return cases;
            }
            let strings = subs.next().unwrap_or_default();
            for (i, case) in cases.iter_mut().enumerate() {
                let mut query = q(&strings[i % strings.len()]);
                match class {
                    Class::ByUser => {
                        query.person = Some(plan.people[rng.index(plan.people.len())].clone())
                    }
                    Class::ByTarget => {
                        query.target = Some(plan.targets[rng.index(plan.targets.len())].clone());
                    }
                    Class::ByTime => {
                        let len = rng.range(1, 7) as i64 * DAY_US;
                        let from = END_US - SPAN_DAYS * DAY_US
                            + rng.below((SPAN_DAYS * DAY_US - len) as u64) as i64;
                        query.since_us = Some(from);
                        query.until_us = Some(from + len);
                    }
                    Class::CommandsOnly => query.commands_only = true,
                    _ => {}
                }
                case.query = query;
            }
            cases
        })
        .collect()
}

fn shuffle<T>(rng: &mut Rng, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.index(i + 1));
    }
}
