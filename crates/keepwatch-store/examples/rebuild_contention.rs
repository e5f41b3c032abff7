//! How long a small write (a session's row) waits while SQLite's upgrade rebuild of the
//! output index runs beside it, as it does in `keepwatch run` since stop 28.
//!
//! `cargo run --release -p keepwatch-store --example rebuild_contention -- [BLOCKS]` writes
//! BLOCKS (20,000) output blocks of about 4 KB of log-like text into a fresh store in a
//! temporary directory, times 100 session inserts (20 ms apart) on the quiet store, puts the
//! store into the state migration 0015 leaves it in (an empty output index, every block to
//! give back), then runs `Store::finish_index_rebuild` and times session inserts, 20 ms apart,
//! until it is done. Prints the rebuild's rate and the two latency summaries.

use std::time::{Duration, Instant};

use keepwatch_core::{SessionId, SessionStatus};
use keepwatch_store::{IndexProgress, OutputBlock, SessionRow, Store};

fn row(id: SessionId, at: i64) -> SessionRow {
    SessionRow {
        stated_reason: None,
        protocol: keepwatch_core::Protocol::Ssh,
        id,
        person: "alice".into(),
        target: "web".into(),
        target_host: "h".into(),
        target_login: "root".into(),
        client_addr: "c".into(),
        status: SessionStatus::Closed,
        reason: None,
        started_at_us: at,
        ended_at_us: None,
        chain_head: None,
        seal_seq: None,
        seal_signature: None,
        node: None,
    }
}

/// `n` session inserts, 20 ms apart: how long each took.
async fn writes(store: &Store, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        store.insert_session(&row(SessionId::new(), i as i64)).await.expect("insert a session");
        out.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    out
}

fn summary(mut v: Vec<Duration>) -> String {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1000.0;
    format!("n={} p50={:.1} ms p99={:.1} ms max={:.1} ms", v.len(), at(0.5), at(0.99), at(1.0))
}

#[tokio::main]
async fn main() {
    let blocks: usize = std::env::args().nth(1).map_or(20_000, |a| a.parse().expect("BLOCKS"));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("kw.db");
    let store = Store::open_sqlite(&path).await.expect("open the store");
    let per_session = 200;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for s in 0..blocks.div_ceil(per_session) {
        let id = SessionId::new();
        store.insert_session(&row(id, s as i64)).await.expect("insert a session");
        let written: Vec<OutputBlock> = (0..per_session)
            .map(|b| {
                let mut text = String::new();
                while text.len() < 4000 {
                    x = x
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    text.push_str(&format!("line {b} {x:016x} error nginx GET /api/{}\n", x % 977));
                }
                OutputBlock {
                    channel: 0,
                    at_us: b as i64,
                    start_offset_us: b as u64,
                    end_offset_us: b as u64,
                    text,
                    marks: vec![(0, b as u64)],
                }
            })
            .collect();
        store.add_commands(id, &[], &written, IndexProgress::Complete).await.expect("add blocks");
    }
    let quiet = writes(&store, 100).await;
    store.close().await;
    {
        use sqlx::{ConnectOptions, Connection};
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .connect()
            .await
            .expect("connect");
        sqlx::raw_sql(
            "DROP TABLE output_fts; CREATE VIRTUAL TABLE output_fts USING fts5 (trigrams, \
             content = '', contentless_delete = 1, detail = 'none', tokenize = 'ascii'); \
             CREATE TABLE output_fts_rebuild (next_id INTEGER NOT NULL, last_id INTEGER NOT NULL); \
             INSERT INTO output_fts_rebuild SELECT 0, max(id) FROM output_blocks;",
        )
        .execute(&mut conn)
        .await
        .expect("empty the output index");
        conn.close().await.expect("close");
    }
    let store = Store::open_sqlite(&path).await.expect("open the store");
    let started = Instant::now();
    let rebuild = {
        let store = store.clone();
        tokio::spawn(async move { store.finish_index_rebuild().await.expect("rebuild") })
    };
    let mut during = Vec::new();
    while !rebuild.is_finished() {
        during.extend(writes(&store, 1).await);
    }
    let took = started.elapsed().as_secs_f64();
    println!("{blocks} blocks given back in {took:.1} s ({:.0} blocks/s)", blocks as f64 / took);
    println!("session insert, quiet:          {}", summary(quiet));
    println!("session insert, during rebuild: {}", summary(during));
    store.close().await;
}
