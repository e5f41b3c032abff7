//! Versioned migrations: a database opens at the newest schema, a second open changes
//! nothing, and (SQLite) a database made by the schema keepwatch applied at every open before
//! it had migrations opens unchanged, its rows and search index intact.

use keepwatch_core::Role;
use keepwatch_store::{BlobStore, IndexState, SearchQuery, Store};

use crate::search::{HOUR_US, T0, check, session, text};
use crate::support::{Backend, TestDb, conformance};

async fn reopening_changes_nothing(db: TestDb) {
    db.store.add_person("alice", Role::User, None, &[]).await.unwrap();
    session(&db.store, "alice", "web", T0, &["uname -a"]).await;
    db.store.close().await;
    for _ in 0..2 {
        let again = db.reopen().await;
        assert!(again.person("alice").await.unwrap().is_some());
        check(&again, text("uname"), &["alice web uname -a"]).await;
        again.close().await;
    }
}

conformance!(reopening_changes_nothing);

/// The schema file of keepwatch before migrations (kept verbatim in tests/data).
const OLD_SCHEMA: &str = include_str!("../data/schema-before-migrations.sql");

async fn sqlite_raw(path: &std::path::Path, sql: &str) {
    use sqlx::{ConnectOptions, Connection};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await.unwrap();
}

/// Issue 11: a database created by the `CREATE IF NOT EXISTS` schema opens unchanged.
#[tokio::test]
async fn sqlite_database_from_before_migrations_opens_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keepwatch.db");
    sqlite_raw(&path, OLD_SCHEMA).await;
    sqlite_raw(
        &path,
        "INSERT INTO people (name, role, password_hash, created_at_us) VALUES ('alice', 'user', NULL, 1); \
         INSERT INTO person_keys (person, public_key) VALUES ('alice', 'ssh-ed25519 AAAA'); \
         INSERT INTO person_state (name, disabled) VALUES ('alice', 1); \
         INSERT INTO sessions (id, person, target, target_host, target_login, client_addr, status, started_at_us) \
           VALUES ('0195a3c4-0000-7000-8000-000000000001', 'alice', 'web', 'h:22', 'root', 'c', 'closed', 5); \
         INSERT INTO commands (id, session_id, seq, channel, kind, at_us, start_offset_us, command, prompt, \
           output, confidence, output_truncated, full_screen) VALUES (1, '0195a3c4-0000-7000-8000-000000000001', \
           1, 0, 'shell', 7, 0, 'cat /etc/shadow', '$ ', 'denied', 'exact', 0, 0); \
         INSERT INTO commands_fts (rowid, command, output) VALUES (1, 'cat /etc/shadow', 'denied');",
    )
    .await;
    let store = Store::open_sqlite(&path).await.unwrap();
    let alice = store.person("alice").await.unwrap().unwrap();
    assert_eq!((alice.disabled, alice.ssh_keys.len()), (true, 1));
    check(&store, text("etc/shad"), &["alice web cat /etc/shadow"]).await;
    // Output indexed before output blocks is found again once the session is indexed again
    // from its recording (the indexer's catch-up does that: it is not complete any more).
    check(&store, SearchQuery { since_us: Some(6), until_us: Some(8), ..text("DENIED") }, &[])
        .await;
    check(
        &store,
        SearchQuery { commands_only: true, ..text("SHADOW") },
        &["alice web cat /etc/shadow"],
    )
    .await;
    store.close().await;
    // Once adopted, the baseline is recorded and not run again.
    let store = Store::open_sqlite(&path).await.unwrap();
    assert_eq!(store.sessions(&Default::default()).await.unwrap().len(), 1);
    store.close().await;
}

/// A database indexed before `command_blocks` existed gets its time spans at adoption.
#[tokio::test]
async fn sqlite_time_bounds_in_a_database_indexed_before_command_blocks() {
    let db = TestDb::new(Backend::Sqlite).await;
    session(&db.store, "bob", "db", T0, &["echo old-1"]).await;
    session(&db.store, "alice", "web", T0 + 48 * HOUR_US, &["echo new-1"]).await;
    db.store.close().await;
    // What such a database looked like: no spans, no nodes, no console logins or anchors,
    // and no migrations table yet.
    sqlite_raw(
        &db.sqlite_path(),
        "DROP TABLE command_blocks; DROP TABLE _sqlx_migrations; DROP INDEX sessions_node_active; \
         ALTER TABLE sessions DROP COLUMN node; DROP TABLE nodes; DROP TABLE web_logins; DROP TABLE anchors; \
         ALTER TABLE sessions DROP COLUMN protocol; ALTER TABLE targets DROP COLUMN protocol; \
         ALTER TABLE targets DROP COLUMN database_name; ALTER TABLE targets DROP COLUMN tls; \
         ALTER TABLE targets DROP COLUMN tls_ca; ALTER TABLE people DROP COLUMN scram_verifier; \
         ALTER TABLE grant_options DROP COLUMN read_only; \
         ALTER TABLE grant_options DROP COLUMN deny_statements; ALTER TABLE grant_options DROP COLUMN deny_tables; \
         ALTER TABLE grant_options DROP COLUMN capture_rows; \
         ALTER TABLE targets DROP COLUMN require_reason; ALTER TABLE sessions DROP COLUMN stated_reason; \
         DROP TABLE session_tags; DROP TABLE retention_policies; DROP TABLE legal_holds; DROP TABLE data_keys; \
         DROP TABLE output_blocks; DROP TABLE output_fts; DROP TABLE output_spans; \
         DROP INDEX commands_channel_start;",
    )
    .await;
    let store = db.reopen().await;
    let window = |since: i64, until: i64| SearchQuery {
        since_us: Some(since),
        until_us: Some(until),
        ..text("echo")
    };
    check(&store, window(T0 - HOUR_US, T0 + HOUR_US), &["bob db echo old-1"]).await;
    check(&store, window(T0 + 47 * HOUR_US, T0 + 49 * HOUR_US), &["alice web echo new-1"]).await;
    store.close().await;
}

/// Migration 0014 changed what SQLite's output index holds (each block's distinct trigrams):
/// the blocks written before it are given to the new index from their own stored text
/// (`finish_index_rebuild`, which the store's opening does not wait for), so their output is
/// found without reading a recording again. Until then their sessions are not complete in
/// the index status and a search names them. A block whose text cannot be read is left out
/// and its session marked as not fully indexed (the indexer then indexes it again from its
/// recording).
#[tokio::test]
async fn sqlite_output_indexed_before_trigram_tokens_is_found_after_the_upgrade() {
    let db = TestDb::new(Backend::Sqlite).await;
    let old = session(&db.store, "alice", "web", T0, &["cat notes => KW-before-0014 line"]).await;
    let bad = session(&db.store, "bob", "db", T0, &["cat more => KW-unreadable line"]).await;
    db.store.close().await;
    sqlite_raw(
        &db.sqlite_path(),
        &format!(
            "DROP TABLE output_fts; CREATE VIRTUAL TABLE output_fts USING fts5 (text, \
             content = '', contentless_delete = 1, detail = 'none', tokenize = 'trigram'); \
             DELETE FROM _sqlx_migrations WHERE version = 14; \
             UPDATE output_blocks SET body = x'00' WHERE session_id = '{bad}';"
        ),
    )
    .await;
    // Opened, and not given yet: the old output is not found, and the search says where.
    let store = db.reopen().await;
    check(&store, text("kw-before-0014"), &[]).await;
    // Output written meanwhile goes to the index as it is: found at once.
    session(&store, "carol", "web", T0, &["cat new => KW-after line"]).await;
    check(&store, text("kw-after"), &["carol web cat new > KW-after line"]).await;
    let blobs = BlobStore::local(db.dir()).unwrap();
    let gaps = store.search_gaps(&blobs, &text("kw-before-0014")).await.unwrap();
    let mut named: Vec<_> = gaps.listed.iter().map(|g| (g.session_id, g.state)).collect();
    named.sort_by_key(|(id, _)| *id);
    let mut expected = vec![(old, IndexState::Rebuilding), (bad, IndexState::Rebuilding)];
    expected.sort_by_key(|(id, _)| *id);
    assert_eq!((named, gaps.total), (expected, 2));
    let carol = SearchQuery { person: Some("carol".into()), ..text("kw") };
    assert!(store.search_gaps(&blobs, &carol).await.unwrap().is_empty());
    store.finish_index_rebuild().await.unwrap();
    store.close().await;
    for _ in 0..2 {
        let store = db.reopen().await;
        // Given: nothing left to do, and only the unreadable block's session is behind.
        store.finish_index_rebuild().await.unwrap();
        let gaps = store.search_gaps(&blobs, &text("kw")).await.unwrap();
        let named: Vec<_> = gaps.listed.iter().map(|g| g.session_id).collect();
        assert_eq!(named, [bad]);
        check(&store, text("kw-before-0014"), &["alice web cat notes > KW-before-0014 line"]).await;
        // The rebuilt entries carry their session's person and target (migration 0015).
        let alice_web = SearchQuery {
            person: Some("alice".into()),
            target: Some("web".into()),
            ..text("kw-before-0014")
        };
        check(&store, alice_web.clone(), &["alice web cat notes > KW-before-0014 line"]).await;
        check(&store, SearchQuery { target: Some("db".into()), ..alice_web }, &[]).await;
        store.close().await;
    }
    use sqlx::{ConnectOptions, Connection};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db.sqlite_path())
        .connect()
        .await
        .unwrap();
    let complete: Vec<(String, bool)> =
        sqlx::query_as("SELECT session_id, complete FROM index_state ORDER BY complete")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(complete.first(), Some(&(bad.to_string(), false)), "{complete:?}");
    assert_eq!(complete.iter().filter(|(_, c)| *c).count(), 2, "{complete:?}");
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name = 'output_fts_rebuild'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(pending, 0, "the rebuild is done with");
    conn.close().await.unwrap();
}

/// The rebuild runs beside the indexer now: a session indexed again meanwhile (its rows and
/// blocks cleared, among them blocks the rebuild had not given the index yet, then written
/// again) is found by its new output only, the others' old output is found once given, and
/// the output index stays whole.
#[tokio::test]
async fn sqlite_a_session_indexed_again_during_the_rebuild() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dave = session(&db.store, "dave", "web", T0, &["cat a => KW-dave-old line"]).await;
    session(&db.store, "erin", "db", T0, &["cat b => KW-erin-old line"]).await;
    db.store.close().await;
    // The store as migration 0015 leaves it: an empty output index, every block to give.
    sqlite_raw(
        &db.sqlite_path(),
        "DROP TABLE output_fts; CREATE VIRTUAL TABLE output_fts USING fts5 (trigrams, \
         content = '', contentless_delete = 1, detail = 'none', tokenize = 'ascii'); \
         CREATE TABLE output_fts_rebuild (next_id INTEGER NOT NULL, last_id INTEGER NOT NULL); \
         INSERT INTO output_fts_rebuild SELECT 0, max(id) FROM output_blocks;",
    )
    .await;
    let store = db.reopen().await;
    store.clear_index(dave).await.unwrap();
    let rows = vec![keepwatch_store::CommandRow {
        seq: 1,
        channel: 0,
        kind: "shell".into(),
        at_us: T0,
        start_offset_us: 0,
        end_offset_us: None,
        command: "cat a".into(),
        prompt: "$ ".into(),
        output: "KW-dave-new line".into(),
        confidence: "exact".into(),
        output_truncated: false,
        full_screen: false,
        typed: None,
    }];
    let block = keepwatch_store::OutputBlock {
        channel: 0,
        at_us: T0 + 500_000,
        start_offset_us: 500_000,
        end_offset_us: 500_000,
        text: "KW-dave-new line\n".into(),
        marks: vec![(0, 500_000)],
    };
    let complete = keepwatch_store::IndexProgress::Complete;
    store.add_commands(dave, &rows, &[block], complete).await.unwrap();
    check(&store, text("kw-dave-new"), &["dave web cat a > KW-dave-new line"]).await;
    store.finish_index_rebuild().await.unwrap();
    check(&store, text("kw-dave-old"), &[]).await;
    check(&store, text("kw-dave-new"), &["dave web cat a > KW-dave-new line"]).await;
    check(&store, text("kw-erin-old"), &["erin db cat b > KW-erin-old line"]).await;
    let blobs = BlobStore::local(db.dir()).unwrap();
    assert!(store.search_gaps(&blobs, &text("kw")).await.unwrap().is_empty());
    store.close().await;
    sqlite_raw(
        &db.sqlite_path(),
        "INSERT INTO output_fts (output_fts, rank) VALUES ('integrity-check', 0)",
    )
    .await;
}
