//! `search` filters, and time bounds that stay right when ids are not in time order (a
//! session indexed after newer ones, as `reindex` does).

use keepwatch_core::{SessionId, SessionStatus};

use crate::{CommandRow, IndexProgress, SearchQuery, SessionRow, Store};

const HOUR_US: i64 = 3_600_000_000;
/// 2025-01-01T00:00:00Z.
const T0: i64 = 1_735_689_600_000_000;

struct Db {
    store: Store,
    path: std::path::PathBuf,
}

impl Db {
    async fn new(name: &str) -> Db {
        let path = std::env::temp_dir()
            .join(format!("keepwatch-store-search-{name}-{}.db", std::process::id()));
        remove(&path);
        let store = Store::open_sqlite(&path).await.unwrap();
        Db { store, path }
    }

    /// A session of `person` on `target` whose commands start at `at_us`, one second apart.
    async fn session(&self, person: &str, target: &str, at_us: i64, commands: &[&str]) {
        let id = SessionId::new();
        self.store
            .insert_session(&SessionRow {
                id,
                person: person.into(),
                target: target.into(),
                target_host: "127.0.0.1".into(),
                target_login: "root".into(),
                client_addr: "127.0.0.1:1".into(),
                status: SessionStatus::Closed,
                reason: None,
                started_at_us: at_us,
                ended_at_us: None,
                chain_head: None,
                seal_seq: None,
                seal_signature: None,
            })
            .await
            .unwrap();
        let rows: Vec<CommandRow> = commands
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (command, output) = c.split_once(" => ").unwrap_or((c, ""));
                CommandRow {
                    seq: i as u32 + 1,
                    channel: 0,
                    kind: if command.is_empty() { "screen" } else { "shell" }.into(),
                    at_us: at_us + i as i64 * 1_000_000,
                    start_offset_us: i as u64 * 1_000_000,
                    end_offset_us: None,
                    command: command.into(),
                    prompt: "$ ".into(),
                    output: output.into(),
                    confidence: "exact".into(),
                    output_truncated: false,
                    full_screen: command.is_empty(),
                    typed: None,
                }
            })
            .collect();
        self.store.add_commands(id, &rows, IndexProgress::Complete).await.unwrap();
    }

    /// The commands `q` finds, newest first, as `person target command`.
    async fn check(&self, q: SearchQuery, expected: &[&str]) {
        let hits = self.store.search(&SearchQuery { limit: 20, ..q }).await.unwrap();
        let got: Vec<String> = hits
            .iter()
            .map(|h| format!("{} {} {}", h.person, h.target, h.command.command))
            .collect();
        assert_eq!(got, expected);
    }

    async fn close(self) {
        self.store.close().await;
        remove(&self.path);
    }
}

fn remove(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

fn text(t: &str) -> SearchQuery {
    SearchQuery { text: t.into(), ..SearchQuery::default() }
}

#[tokio::test]
async fn filters() {
    let db = Db::new("filters").await;
    db.session("alice", "web", T0, &["cat /etc/sudoers", " => top: sudoers open"]).await;
    db.session("bob", "db", T0 + HOUR_US, &["sudo rm -rf /tmp/x", "ls => sudoers.d"]).await;
    db.check(text("sudoers"), &["bob db ls", "alice web ", "alice web cat /etc/sudoers"]).await;
    db.check(text("-rf"), &["bob db sudo rm -rf /tmp/x"]).await;
    db.check(
        SearchQuery { person: Some("alice".into()), ..text("sudoers") },
        &["alice web ", "alice web cat /etc/sudoers"],
    )
    .await;
    db.check(SearchQuery { target: Some("db".into()), ..text("sudoers") }, &["bob db ls"]).await;
    db.check(
        SearchQuery { commands_only: true, ..text("sudoers") },
        &["alice web cat /etc/sudoers"],
    )
    .await;
    db.check(SearchQuery { person: Some("carol".into()), ..text("sudoers") }, &[]).await;
    // Two characters: no trigram, a scan.
    db.check(text("rm"), &["bob db sudo rm -rf /tmp/x"]).await;
    db.close().await;
}

#[tokio::test]
async fn time_bounds_cover_a_session_indexed_late() {
    let db = Db::new("time").await;
    // A recent session long enough to span two id blocks, then an old one indexed after it,
    // so the old commands have the highest ids.
    let recent: Vec<String> = (0..1500).map(|i| format!("echo recent-{i}")).collect();
    let recent: Vec<&str> = recent.iter().map(String::as_str).collect();
    db.session("alice", "web", T0 + 48 * HOUR_US, &recent).await;
    db.session("bob", "db", T0, &["echo old-1", "echo old-2"]).await;

    let window = |since: i64, until: i64| SearchQuery {
        since_us: Some(since),
        until_us: Some(until),
        ..text("echo")
    };
    db.check(window(T0 - HOUR_US, T0 + HOUR_US), &["bob db echo old-2", "bob db echo old-1"]).await;
    db.check(
        SearchQuery { until_us: Some(T0 + HOUR_US), ..text("old-") },
        &["bob db echo old-2", "bob db echo old-1"],
    )
    .await;
    db.check(
        window(T0 + 48 * HOUR_US + 1_000_000_000, T0 + 48 * HOUR_US + 1_000_500_000),
        &["alice web echo recent-1000"],
    )
    .await;
    db.check(window(T0 + 10 * HOUR_US, T0 + 20 * HOUR_US), &[]).await;
    db.check(SearchQuery { since_us: Some(T0 + 49 * HOUR_US), ..text("echo") }, &[]).await;
    // Two characters take the scan, with the same bounds.
    db.check(window(T0 - HOUR_US, T0 + HOUR_US), &["bob db echo old-2", "bob db echo old-1"]).await;
    db.check(
        SearchQuery { since_us: Some(T0 - HOUR_US), until_us: Some(T0 + HOUR_US), ..text("ol") },
        &["bob db echo old-2", "bob db echo old-1"],
    )
    .await;
    db.close().await;
}

#[tokio::test]
async fn time_bounds_in_a_database_indexed_before_command_blocks() {
    let mut db = Db::new("backfill").await;
    db.session("bob", "db", T0, &["echo old-1"]).await;
    db.session("alice", "web", T0 + 48 * HOUR_US, &["echo new-1"]).await;
    sqlx::query("DELETE FROM command_blocks").execute(&db.store.pool).await.unwrap();
    db.store.close().await;
    db.store = Store::open_sqlite(&db.path).await.unwrap();
    let window = |since: i64, until: i64| SearchQuery {
        since_us: Some(since),
        until_us: Some(until),
        ..text("echo")
    };
    db.check(window(T0 - HOUR_US, T0 + HOUR_US), &["bob db echo old-1"]).await;
    db.check(window(T0 + 47 * HOUR_US, T0 + 49 * HOUR_US), &["alice web echo new-1"]).await;
    db.close().await;
}
