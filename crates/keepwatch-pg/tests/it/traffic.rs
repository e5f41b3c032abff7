//! Real traffic: psql and `pgbench -M prepared` talk to the machine's PostgreSQL through a
//! TCP tee that feeds both directions to a tracker in the order they pass.

use std::time::Instant;

use keepwatch_pg::{
    CopyDirection, Limits, Outcome, PgEvent, PgTracker, QueryKind, Side, Statement,
    TransactionStatus,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::postgres::{ADDR, psql_direct, require_postgres, unique};

/// Copies one direction, handing each chunk to the tracker's channel before forwarding it,
/// so the tracker sees a request before the answer it causes.
async fn pump(
    side: Side,
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    seen: mpsc::Sender<(Side, Vec<u8>)>,
) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if seen.send((side, buf[..n].to_vec())).await.is_err() {
            break;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Relays every connection to PostgreSQL until `client` (the program using it) exits, and
/// returns what the trackers saw, one list per connection in the order they ended.
async fn tee(
    client: tokio::process::Command,
    port_arg: impl FnOnce(u16) -> Vec<String>,
) -> (std::process::Output, Vec<Vec<PgEvent>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (done_tx, mut done_rx) = mpsc::channel(16);
    let accept = tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let done = done_tx.clone();
            tokio::spawn(async move {
                let _ = done.send(relay(socket).await).await;
            });
        }
    });
    let mut client = client;
    let out = client
        .args(port_arg(port))
        .env("PGSSLMODE", "disable")
        .output()
        .await
        .expect("the client runs (apt-get install postgresql-client postgresql-contrib)");
    accept.abort();
    let _ = accept.await;
    let mut connections = Vec::new();
    while let Some(events) = done_rx.recv().await {
        connections.push(events);
    }
    (out, connections)
}

/// Relays one connection and returns what the tracker saw.
async fn relay(client: TcpStream) -> Vec<PgEvent> {
    let server = TcpStream::connect(ADDR).await.unwrap();
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let (tx, mut rx) = mpsc::channel(256);
    tokio::spawn(pump(Side::Frontend, client_read, server_write, tx.clone()));
    tokio::spawn(pump(Side::Backend, server_read, client_write, tx));
    let start = Instant::now();
    let mut tracker = PgTracker::new(Limits::default());
    let mut events = Vec::new();
    while let Some((side, bytes)) = rx.recv().await {
        let now = start.elapsed().as_micros() as u64;
        match side {
            Side::Frontend => tracker.from_frontend(&bytes, now, &mut events),
            Side::Backend => tracker.from_backend(&bytes, now, &mut events),
        }
        .unwrap_or_else(|e| panic!("the tracker gave up on real traffic: {e}"));
    }
    tracker.finish(start.elapsed().as_micros() as u64, &mut events);
    events
}

fn statements(events: &[PgEvent]) -> Vec<&Statement> {
    events
        .iter()
        .filter_map(|e| match e {
            PgEvent::Statement(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_session_through_a_tee() {
    require_postgres();
    let table = unique("kw_psql");
    let copy_in = "3\tthree\n4\tfour\n";
    let script = format!(
        "CREATE TABLE {table} (a int PRIMARY KEY, b text);\n\
         INSERT INTO {table} VALUES (1, 'one'), (2, 'two');\n\
         INSERT INTO {table} VALUES (1, 'again');\n\
         BEGIN;\n\
         UPDATE {table} SET b = 'uno' WHERE a = 1;\n\
         ROLLBACK;\n\
         COPY {table} FROM STDIN;\n\
         {copy_in}\\.\n\
         COPY (SELECT * FROM {table} ORDER BY a) TO STDOUT;\n\
         DROP TABLE {table};\n"
    );
    let path = std::env::temp_dir().join(format!("{table}.sql"));
    std::fs::write(&path, &script).unwrap();

    let mut psql = tokio::process::Command::new("psql");
    psql.args(["-X", "-q", "-f"]).arg(&path);
    let (out, connections) =
        tee(psql, |port| vec![format!("host=127.0.0.1 port={port} dbname=test user=root")]).await;
    std::fs::remove_file(&path).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("duplicate key"), "psql saw the failing INSERT: {stderr}");
    assert_eq!(connections.len(), 1);
    let events = &connections[0];

    let unfollowed: Vec<_> =
        events.iter().filter(|e| matches!(e, PgEvent::Unfollowed(_))).collect();
    assert!(unfollowed.is_empty(), "{unfollowed:?}");
    assert!(events.iter().any(|e| matches!(e, PgEvent::BackendKeyData { .. })));
    assert!(matches!(events.last(), Some(PgEvent::Terminate)), "{:?}", events.last());

    let seen: Vec<String> = statements(events)
        .iter()
        .map(|s| {
            assert_eq!(s.kind, QueryKind::Simple);
            assert!(s.started_us <= s.ended_us);
            let status = s.transaction.map_or("none".into(), |t| t.to_string());
            format!("{} -> {} ({status})", s.text.trim_end_matches(';'), s.outcome)
        })
        .collect();
    let expected = [
        format!("CREATE TABLE {table} (a int PRIMARY KEY, b text) -> CREATE TABLE (idle)"),
        format!("INSERT INTO {table} VALUES (1, 'one'), (2, 'two') -> INSERT 2 (idle)"),
        format!(
            "INSERT INTO {table} VALUES (1, 'again') -> ERROR 23505: duplicate key value \
             violates unique constraint \"{table}_pkey\" (idle)"
        ),
        "BEGIN -> BEGIN (in transaction)".to_owned(),
        format!("UPDATE {table} SET b = 'uno' WHERE a = 1 -> UPDATE 1 (in transaction)"),
        "ROLLBACK -> ROLLBACK (idle)".to_owned(),
        format!("COPY {table} FROM STDIN -> COPY 2 (idle)"),
        format!("COPY (SELECT * FROM {table} ORDER BY a) TO STDOUT -> COPY 4 (idle)"),
        format!("DROP TABLE {table} -> DROP TABLE (idle)"),
    ];
    assert_eq!(seen, expected, "{events:#?}");

    let copies: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            PgEvent::Copy(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(copies.len(), 2);
    assert_eq!(copies[0].direction, CopyDirection::In);
    // psql before 18 sends the `\.` end marker line as copy data too.
    let sent = format!("{copy_in}\\.\n");
    assert_eq!(copies[0].bytes, sent.len() as u64);
    assert_eq!(copies[0].sha256, sha256(sent.as_bytes()));
    assert_eq!(copies[0].rows, Some(2));
    let copy_out = format!("1\tone\n2\ttwo\n{copy_in}");
    assert_eq!(copies[1].direction, CopyDirection::Out);
    assert_eq!(copies[1].bytes, copy_out.len() as u64);
    assert_eq!(copies[1].sha256, sha256(copy_out.as_bytes()));
    assert_eq!(copies[1].rows, Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_prepared_through_a_tee() {
    require_postgres();
    let table = unique("kw_bench");
    psql_direct(&[&format!("CREATE TABLE {table} (id int PRIMARY KEY, n int)")]);
    let script = format!(
        "\\set id random(1, 1000000)\n\
         INSERT INTO {table} VALUES (:id, 7) ON CONFLICT (id) DO UPDATE SET n = {table}.n + 1;\n\
         SELECT n * 2 FROM {table} WHERE id = :id;\n"
    );
    let path = std::env::temp_dir().join(format!("{table}.pgbench"));
    std::fs::write(&path, &script).unwrap();

    let mut pgbench = tokio::process::Command::new("pgbench");
    pgbench.args(["-n", "-M", "prepared", "-c", "1", "-t", "5", "-h", "127.0.0.1", "-U", "root"]);
    pgbench.arg("-f").arg(&path);
    let (out, connections) =
        tee(pgbench, |port| vec!["-p".into(), port.to_string(), "test".into()]).await;
    std::fs::remove_file(&path).unwrap();
    psql_direct(&[&format!("DROP TABLE {table}")]);
    assert!(out.status.success(), "pgbench: {}", String::from_utf8_lossy(&out.stderr));
    // pgbench opens a setup connection, then one per client.
    let events: Vec<PgEvent> = connections.into_iter().flatten().collect();

    let unfollowed: Vec<_> =
        events.iter().filter(|e| matches!(e, PgEvent::Unfollowed(_))).collect();
    assert!(unfollowed.is_empty(), "{unfollowed:?}");
    let ours: Vec<&Statement> =
        statements(&events).into_iter().filter(|s| s.text.contains(&table)).collect();
    assert_eq!(ours.len(), 10, "five transactions of two statements");
    for pair in ours.chunks(2) {
        let (insert, select) = (pair[0], pair[1]);
        assert_eq!(insert.kind, QueryKind::Extended);
        assert!(insert.text.contains("VALUES ($1, 7)"), "{}", insert.text);
        assert_eq!(insert.parameters.len(), 1);
        let id = insert.parameters[0].to_string();
        assert!(id.trim_matches('"').parse::<u32>().is_ok(), "id parameter {id}");
        assert!(
            matches!(&insert.outcome, Outcome::Complete(t) if t.command == "INSERT" && t.rows == Some(1))
        );
        assert_eq!(insert.transaction, Some(TransactionStatus::Idle));
        assert!(select.text.contains("WHERE id = $1"), "{}", select.text);
        assert_eq!(select.parameters[0].to_string(), id, "the same :id in both");
        assert!(
            matches!(&select.outcome, Outcome::Complete(t) if t.command == "SELECT" && t.rows == Some(1))
        );
    }
}
