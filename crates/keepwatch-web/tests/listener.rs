//! Issue 10, the web listener on a real socket: a client that does not finish its request
//! head (slowloris) or body in time is cut off, an idle kept-alive connection too; at most
//! `max_connections` are served at once and the others wait in the kernel's backlog until
//! one closes; handlers see the client's address; a shutdown stops the listener.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use keepwatch_web::{ListenerConfig, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

fn app() -> Router {
    Router::new()
        .route("/addr", get(|ConnectInfo(a): ConnectInfo<SocketAddr>| async move { a.to_string() }))
        .route("/echo", post(|body: String| async move { body }))
}

struct Server {
    addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn start(config: ListenerConfig) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(serve(listener, app(), config, stop.clone()));
    Server { addr, stop, task }
}

/// Reads until the server closes the connection (or `limit` passes); what came, and when.
async fn read_to_close(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Duration>) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), s.read(&mut buf)).await {
            Err(_) => return (got, None),
            Ok(Ok(0) | Err(_)) => return (got, Some(started.elapsed())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// One request on `s`, kept alive; the response head and body as text.
async fn request(s: &mut TcpStream, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") || !complete(&got) {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the response: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).unwrap()
}

fn complete(got: &[u8]) -> bool {
    let text = String::from_utf8_lossy(got);
    let Some((head, body)) = text.split_once("\r\n\r\n") else { return false };
    let len = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    body.len() >= len
}

/// Issue 10: half a request head, then silence: the server closes the connection after the
/// header timeout instead of holding it; so it does with an idle kept-alive connection.
#[tokio::test]
async fn a_slow_request_head_is_cut_off() {
    let config =
        ListenerConfig { header_timeout: Duration::from_millis(500), ..Default::default() };
    let server = start(config).await;

    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /addr HTTP/1.1\r\nHost: t\r\nX-Slow: ").await.unwrap();
    let (_, closed) = read_to_close(&mut slow, Duration::from_secs(10)).await;
    let closed = closed.expect("the server never closed a half-sent request head");
    assert!(closed >= Duration::from_millis(400), "closed after {closed:?}");

    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let (_, closed) = read_to_close(&mut silent, Duration::from_secs(10)).await;
    assert!(closed.is_some(), "a connection that sends nothing is closed too");

    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    let local = idle.local_addr().unwrap();
    let reply = request(&mut idle, "/addr").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with(&local.to_string()), "ConnectInfo is the client: {reply}");
    let (_, closed) = read_to_close(&mut idle, Duration::from_secs(10)).await;
    assert!(closed.is_some(), "an idle kept-alive connection is closed");
    server.stop.cancel();
    server.task.await.unwrap();
}

/// Issue 10: a request body that does not arrive in time is refused (400), so a slow body
/// cannot hold a connection either.
#[tokio::test]
async fn a_slow_request_body_is_refused() {
    let config = ListenerConfig { body_timeout: Duration::from_millis(300), ..Default::default() };
    let server = start(config).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly ten b")
        .await
        .unwrap();
    let (got, closed) = read_to_close(&mut s, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(closed.is_some());
    // A body that comes whole is fine.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await
    .unwrap();
    let (got, _) = read_to_close(&mut s, Duration::from_secs(10)).await;
    assert!(String::from_utf8_lossy(&got).ends_with("hello"));
    server.stop.cancel();
    server.task.await.unwrap();
}

/// Issue 10: with N connections open, connection N+1 is not served (it waits in the
/// kernel's backlog) until one of the N closes; then it is.
#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let config = ListenerConfig {
        max_connections: 4,
        header_timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let server = start(config).await;
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        assert!(request(&mut s, "/addr").await.starts_with("HTTP/1.1 200"));
        open.push(s);
    }
    let mut extra = TcpStream::connect(server.addr).await.unwrap();
    extra.write_all(b"GET /addr HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let waited = tokio::time::timeout(Duration::from_millis(500), extra.read(&mut buf)).await;
    assert!(waited.is_err(), "connection 5 was served while 4 were open");
    drop(open.pop());
    let (got, closed) = read_to_close(&mut extra, Duration::from_secs(10)).await;
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"), "{got:?}");
    assert!(closed.is_some());
    server.stop.cancel();
    drop(open);
    server.task.await.unwrap();
}

/// The listener stops on shutdown: no new connection is served after it.
#[tokio::test]
async fn shutdown_stops_the_listener() {
    let server = start(ListenerConfig::default()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    assert!(request(&mut s, "/addr").await.starts_with("HTTP/1.1 200"));
    server.stop.cancel();
    // The kept-alive connection is closed gracefully and the listener returns.
    tokio::time::timeout(Duration::from_secs(10), server.task).await.unwrap().unwrap();
    assert!(TcpStream::connect(server.addr).await.is_err(), "still listening");
}
