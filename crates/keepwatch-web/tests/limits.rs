//! Issue 10, the console's bounds, through the router without a socket: replay pages capped
//! by events, bytes and bytes read and followed to the end; the heavy-request pool answering
//! 503; verification cached per recording version; the login limiter shared with SSH; console
//! sessions ended by their lifetime, their person's state and the per-person cap; tokens of a
//! disabled person refused. Each test fails without the bound it checks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use ed25519_dalek::SigningKey;
use futures::future::BoxFuture;
use keepwatch_core::{
    AuditAction, ChannelKind, LoginLimiter, LoginLimits, Role, SessionId, SessionStatus,
};
use keepwatch_recorder::WatchStart;
use keepwatch_recording::{Event, Pty, RecordingWriter, SessionStart, TimedEvent};
use keepwatch_store::{
    AuditFilter, BlobStore, NewAudit, NewToken, PasswordChecker, SessionRow, Store, hash_password,
};
use keepwatch_web::{LiveControl, WebConfig, WebParts, WebState, router};
use serde_json::{Value, json};
use tower::ServiceExt;

struct NoLiveSessions;

impl LiveControl for NoLiveSessions {
    fn terminate(&self, _id: SessionId, _message: &str) -> bool {
        false
    }
    fn watch(&self, _id: SessionId) -> BoxFuture<'_, Option<WatchStart>> {
        Box::pin(async { None })
    }
    fn host_key_line(&self, _text: &str) -> Result<String, String> {
        Err("not in these tests".into())
    }
}

const STARTED: i64 = 1_700_000_000_000_000;

struct Fixture {
    app: axum::Router,
    state: Arc<WebState>,
    store: Store,
    logins: Arc<LoginLimiter>,
    dir: tempfile::TempDir,
}

fn recording_path(dir: &tempfile::TempDir, id: SessionId) -> std::path::PathBuf {
    dir.path().join("recordings").join(format!("{id}.kwr"))
}

/// A store with audrey (auditor) and alice (user), each with the password `NAME-pw`.
async fn fixture(config: WebConfig, limits: LoginLimits) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("kw.db")).await.unwrap();
    let blobs = BlobStore::local(dir.path()).unwrap();
    for (name, role) in [("audrey", Role::Auditor), ("alice", Role::User)] {
        let hash = hash_password(&format!("{name}-pw")).unwrap();
        store.add_person(name, role, Some(&hash), &[]).await.unwrap();
    }
    let logins = Arc::new(LoginLimiter::new(limits));
    let parts = WebParts {
        store: store.clone(),
        blobs,
        verifying_key: key().verifying_key(),
        vault: None,
        live: Arc::new(NoLiveSessions),
        logins: logins.clone(),
        passwords: PasswordChecker::new(2, Duration::from_secs(30)),
    };
    let state = WebState::new(parts, config).unwrap();
    Fixture { app: router(state.clone()), state, store, logins, dir }
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

/// A sealed session of alice's: `events` after a terminal channel 0 opens at 1 µs, written
/// in chunks of `per_chunk` events; its row matches the recording.
async fn session(f: &Fixture, events: &[TimedEvent], per_chunk: usize) -> SessionId {
    let id = SessionId::new();
    let start = SessionStart {
        session_id: id,
        user: "alice".into(),
        target: "web01".into(),
        target_host: "127.0.0.1:22".into(),
        target_login: "root".into(),
        client_addr: "127.0.0.1:5000".into(),
        started_at_us: STARTED,
    };
    let mut w = RecordingWriter::new(start, key());
    let pty = Some(Pty { term: "xterm".into(), cols: 80, rows: 24 });
    w.push(&TimedEvent {
        at_us: 1,
        event: Event::ChannelOpen { channel: 0, kind: ChannelKind::Shell, pty },
    });
    let mut bytes = Vec::new();
    for (i, e) in events.iter().enumerate() {
        w.push(e);
        if (i + 1) % per_chunk == 0 {
            bytes.extend(w.flush(STARTED, i % (per_chunk * 4) == 0).unwrap_or_default());
        }
    }
    let last = events.last().map_or(1, |e| e.at_us);
    let seal = keepwatch_recording::Seal {
        status: SessionStatus::Closed,
        reason: None,
        ended_at_us: STARTED + last as i64 + 1,
        unsigned_tail: None,
    };
    let (tail, info) = w.seal(last + 1, seal, STARTED + last as i64 + 1);
    bytes.extend(tail);
    std::fs::create_dir_all(f.dir.path().join("recordings")).unwrap();
    std::fs::write(recording_path(&f.dir, id), bytes).unwrap();
    f.store
        .insert_session(&SessionRow {
            stated_reason: None,
            protocol: keepwatch_core::Protocol::Ssh,
            id,
            person: "alice".into(),
            target: "web01".into(),
            target_host: "127.0.0.1:22".into(),
            target_login: "root".into(),
            client_addr: "127.0.0.1:5000".into(),
            status: SessionStatus::Closed,
            reason: None,
            started_at_us: STARTED,
            ended_at_us: Some(STARTED + last as i64 + 1),
            chain_head: Some(info.chain_head),
            seal_seq: Some(info.seq),
            seal_signature: Some(info.signature.to_vec()),
            node: None,
        })
        .await
        .unwrap();
    let ended = STARTED + last as i64 + 1;
    f.store.finish_session(id, SessionStatus::Closed, None, &info, ended, &key()).await.unwrap();
    id
}

struct Reply {
    status: StatusCode,
    body: String,
    headers: axum::http::HeaderMap,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

async fn call(
    f: &Fixture,
    method: &str,
    path: &str,
    auth: &[(&str, String)],
    body: Option<Value>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in auth {
        req = req.header(*k, v);
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let mut req = req.body(body).unwrap();
    req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 1], 40000))));
    let res = f.app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 28).await.unwrap();
    Reply { status, body: String::from_utf8_lossy(&bytes).into_owned(), headers }
}

/// Logs in; the cookie and CSRF headers of the browser session.
async fn login(f: &Fixture, name: &str) -> Vec<(&'static str, String)> {
    let r = call(
        f,
        "POST",
        "/api/v1/login",
        &[],
        Some(json!({ "name": name, "password": format!("{name}-pw") })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let cookie = r.headers["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let csrf = r.json()["csrf"].as_str().unwrap().to_owned();
    vec![("cookie", cookie), ("x-csrf-token", csrf)]
}

fn output(at_us: u64, channel: u32, data: &[u8]) -> TimedEvent {
    TimedEvent { at_us, event: Event::Output { channel, data: data.to_vec() } }
}

/// Issue 10: a recording far bigger than one page is replayed completely by following the
/// pages, every page within the caps, and the text (with characters cut between events and
/// pages) is exactly what one uncapped window gives. Another channel's heavy output makes
/// pages stop at the scan cap too.
#[tokio::test]
async fn replay_pages_cover_a_long_recording_within_the_caps() {
    let mut config = WebConfig { person_recheck: Duration::ZERO, ..Default::default() };
    config.replay.max_events = 300;
    config.replay.max_bytes = 64 << 10;
    config.replay.max_scan_bytes = 1 << 20;
    let f = fixture(config.clone(), LoginLimits::default()).await;
    // 3000 events of "€" characters cut at odd places, a resize now and then, and a second
    // channel pouring out incompressible-ish bytes between them.
    let text = "€uro ".repeat(40_000);
    let bytes = text.as_bytes();
    let mut events = Vec::new();
    let mut at = 10;
    let mut pos = 0;
    let mut n = 0u64;
    while pos < bytes.len() {
        let len = (37 + (n * 13) % 61) as usize;
        let end = (pos + len).min(bytes.len());
        at += 100;
        events.push(output(at, 0, &bytes[pos..end]));
        if n.is_multiple_of(500) {
            events.push(TimedEvent {
                at_us: at,
                event: Event::Resize { channel: 0, cols: 100 + (n % 7) as u32, rows: 30 },
            });
        }
        if n.is_multiple_of(10) {
            let noise: Vec<u8> =
                (0..8192u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
            events.push(output(at, 1, &noise));
        }
        pos = end;
        n += 1;
    }
    let id = session(&f, &events, 50).await;
    let all =
        keepwatch_recording::read_events(&std::fs::read(recording_path(&f.dir, id)).unwrap(), None)
            .unwrap();
    let whole = keepwatch_web::playback::replay_window(&all, Some(0), 0, None).unwrap();
    assert!(whole.events.len() > 3000);

    let auth = login(&f, "audrey").await;
    let mut got: Vec<Value> = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => format!("/api/v1/sessions/{id}/replay?channel=0&from_us=0"),
            Some(c) => format!("/api/v1/sessions/{id}/replay?channel=0&cursor={c}"),
        };
        let r = call(&f, "GET", &path, &auth, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let v = r.json();
        let page = v["events"].as_array().unwrap();
        assert!(page.len() <= config.replay.max_events, "page of {} events", page.len());
        let page_bytes = serde_json::to_string(page).unwrap().len();
        assert!(page_bytes <= config.replay.max_bytes, "page of {page_bytes} bytes of events");
        assert!(
            r.body.len() <= config.replay.max_bytes + 4096,
            "response of {} bytes",
            r.body.len()
        );
        assert_eq!(v["truncated"], json!(v["next"].is_string()));
        if pages == 0 {
            assert_eq!((v["cols"].clone(), v["rows"].clone()), (json!(80), json!(24)));
        }
        got.extend(page.iter().cloned());
        pages += 1;
        assert!(pages < 1000, "pages never end");
        match v["next"].as_str() {
            Some(c) => {
                assert!(v["next_from_us"].as_u64().is_some());
                cursor = Some(c.to_owned());
            }
            None => break,
        }
    }
    assert!(pages > 10, "{pages} pages");
    assert_eq!(got.len(), whole.events.len(), "as many events as one window");
    assert_eq!(got, whole.events, "the same events as one window");
    let joined: String =
        got.iter().filter(|e| e[1] == "o").map(|e| e[2].as_str().unwrap()).collect();
    assert_eq!(joined, text, "no character lost or mangled at a page boundary");
}

/// Issue 10: a cursor is bound to the session it was given for, and cannot be forged.
#[tokio::test]
async fn a_forged_or_foreign_cursor_is_refused() {
    let mut config = WebConfig { person_recheck: Duration::ZERO, ..Default::default() };
    config.replay.max_events = 2;
    let f = fixture(config, LoginLimits::default()).await;
    let events: Vec<_> = (0..10).map(|i| output(10 + i, 0, b"line\r\n")).collect();
    let a = session(&f, &events, 3).await;
    let b = session(&f, &events, 3).await;
    let auth = login(&f, "audrey").await;
    let r = call(&f, "GET", &format!("/api/v1/sessions/{a}/replay?from_us=0"), &auth, None).await;
    let next = r.json()["next"].as_str().unwrap().to_owned();
    let ok =
        call(&f, "GET", &format!("/api/v1/sessions/{a}/replay?cursor={next}"), &auth, None).await;
    assert_eq!(ok.status, StatusCode::OK);
    let other =
        call(&f, "GET", &format!("/api/v1/sessions/{b}/replay?cursor={next}"), &auth, None).await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST, "{}", other.body);
    let mut forged = next.into_bytes();
    forged[2] = if forged[2] == b'0' { b'1' } else { b'0' };
    let forged = String::from_utf8(forged).unwrap();
    let r =
        call(&f, "GET", &format!("/api/v1/sessions/{a}/replay?cursor={forged}"), &auth, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
}

/// Issue 10: heavy requests take a permit; beyond the pool a request waits the bounded
/// time and gets 503 with Retry-After. A streamed export holds its permit until its body
/// is read or dropped.
#[tokio::test]
async fn heavy_requests_beyond_the_pool_get_503() {
    let mut config = WebConfig { person_recheck: Duration::ZERO, ..Default::default() };
    config.heavy.permits = 1;
    config.heavy.wait = Duration::from_millis(100);
    let f = fixture(config, LoginLimits::default()).await;
    // Several MiB of output that does not compress, so the recording file is many export
    // pieces and the export is still streaming while nobody reads it (repetitive output
    // compressed into one piece, the export finished at once and gave its permit back).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..200_000u32)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'!' + (x % 94) as u8
        })
        .collect();
    let events: Vec<_> = (0..40).map(|i| output(10 + i, 0, &noise)).collect();
    let id = session(&f, &events, 1).await;
    let auth = login(&f, "audrey").await;

    let mut req = Request::builder().uri(format!("/api/v1/sessions/{id}/export"));
    for (k, v) in &auth {
        req = req.header(*k, v);
    }
    let mut req = req.body(Body::empty()).unwrap();
    req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 1], 40000))));
    let export = f.app.clone().oneshot(req).await.unwrap();
    assert_eq!(export.status(), StatusCode::OK);

    for path in [
        format!("/api/v1/sessions/{id}/replay?from_us=0"),
        "/api/v1/search?q=abc".to_owned(),
        format!("/api/v1/sessions/{id}"),
    ] {
        let r = call(&f, "GET", &path, &auth, None).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {}", r.body);
        assert_eq!(r.headers["retry-after"], "1", "{path}");
    }
    // Read to the end, the export is whole asciicast and gives its permit back.
    let body = axum::body::to_bytes(export.into_body(), 1 << 30).await.unwrap();
    let lines: Vec<&str> = std::str::from_utf8(&body).unwrap().lines().collect();
    assert!(
        lines[0].contains("\"version\":2") && lines[0].contains("\"width\":80"),
        "{}",
        lines[0]
    );
    assert_eq!(lines.len(), 41);
    let r = call(&f, "GET", &format!("/api/v1/sessions/{id}/replay?from_us=0"), &auth, None).await;
    assert_eq!(r.status, StatusCode::OK);
}

async fn verify_of(f: &Fixture, id: SessionId, auth: &[(&str, String)]) -> Value {
    call(f, "GET", &format!("/api/v1/sessions/{id}"), auth, None).await.json()["verify"].clone()
}

async fn me(f: &Fixture, auth: Vec<(&'static str, String)>) -> StatusCode {
    call(f, "GET", "/api/v1/me", &auth, None).await.status
}

fn set_mtime(path: &std::path::Path, t: std::time::SystemTime) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(t).unwrap();
}

/// Issue 10: the detail verifies the recording once and keeps the result while the
/// recording's version (place, length, modification time, inode) is the same: a byte
/// flipped in place with the old modification time put back is not read again (the cache
/// answers), and as soon as the file's version changes it is verified again.
#[tokio::test]
async fn verification_is_cached_per_recording_version() {
    let config = WebConfig { person_recheck: Duration::ZERO, ..Default::default() };
    let f = fixture(config, LoginLimits::default()).await;
    let events: Vec<_> = (0..100).map(|i| output(10 + i, 0, b"hello\r\n")).collect();
    let id = session(&f, &events, 10).await;
    let auth = login(&f, "audrey").await;
    let v = verify_of(&f, id, &auth).await;
    assert_eq!(v["intact"], json!(true), "{v}");
    assert_eq!(f.state.cached_verifications(), 1);

    let path = recording_path(&f.dir, id);
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::File::options().write(true).open(&path).unwrap();
        file.seek(SeekFrom::Start(at as u64)).unwrap();
        file.write_all(&bytes[at..=at]).unwrap();
    }
    set_mtime(&path, mtime);
    assert_eq!(verify_of(&f, id, &auth).await["intact"], json!(true), "answered from the cache");
    set_mtime(&path, mtime + Duration::from_secs(1));
    let v = verify_of(&f, id, &auth).await;
    assert_eq!(v["intact"], json!(false), "{v}");
    assert!(v["problems"][0].as_str().unwrap().contains("not intact"), "{v}");
}

/// Issue 10: web logins count in the limiter the SSH gateway shares: failures through SSH
/// lock the web login (429 with Retry-After), a right password does not get through a lock
/// (counted before it is checked), and refusals are audited in bounded number with the
/// count of those that were not.
#[tokio::test]
async fn web_logins_share_the_ssh_limiter() {
    let config = WebConfig { person_recheck: Duration::ZERO, ..Default::default() };
    let limits = LoginLimits {
        per_name: 3,
        audit_burst: 1,
        audit_every: Duration::from_millis(300),
        ..Default::default()
    };
    let f = fixture(config, limits).await;
    // Two failed SSH password logins for alice, from another address.
    let ssh = "198.51.100.7".parse().unwrap();
    for _ in 0..2 {
        let _failed = f.logins.begin("alice", ssh, Instant::now()).unwrap();
    }
    let wrong = json!({ "name": "alice", "password": "nope" });
    let r = call(&f, "POST", "/api/v1/login", &[], Some(wrong.clone())).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let right = json!({ "name": "alice", "password": "alice-pw" });
    let r = call(&f, "POST", "/api/v1/login", &[], Some(right)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait > 800, "locked for the window: {wait}");
    // A burst of refusals: the first audited, the rest counted into a later one.
    let deadline = Instant::now() + Duration::from_secs(10);
    let detail = loop {
        let r = call(&f, "POST", "/api/v1/login", &[], Some(wrong.clone())).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        let filter = AuditFilter { action: Some(AuditAction::LoginRefused), ..Default::default() };
        let rows = f.store.audit_events(&filter).await.unwrap();
        if let Some(row) = rows.iter().find(|r| r.detail.contains("more refused")) {
            break row.detail.clone();
        }
        assert!(Instant::now() < deadline, "no audit with the suppressed count: {rows:?}");
    };
    assert!(detail.starts_with("web login: too many failed logins"), "{detail}");
    let filter = AuditFilter { action: Some(AuditAction::LoginRefused), ..Default::default() };
    let audited = f.store.audit_events(&filter).await.unwrap().len();
    assert!(audited <= 4, "{audited} refusals audited one by one");
}

/// Issue 10: a console session ends as soon as its person is disabled, given another role
/// or removed (and added again), and after its lifetime however busy it is; a person holds
/// a bounded number of sessions; a token bound to a disabled person stops working.
#[tokio::test]
async fn console_sessions_end_when_they_should() {
    let config =
        WebConfig { person_recheck: Duration::ZERO, sessions_per_person: 2, ..Default::default() };
    let f = fixture(config, LoginLimits::default()).await;

    let a = login(&f, "alice").await;
    assert_eq!(me(&f, a.clone()).await, StatusCode::OK);
    f.store.set_person_disabled("alice", true).await.unwrap();
    assert_eq!(me(&f, a.clone()).await, StatusCode::UNAUTHORIZED, "disabled");
    f.store.set_person_disabled("alice", false).await.unwrap();
    assert_eq!(me(&f, a).await, StatusCode::UNAUTHORIZED, "ended, not suspended");

    let a = login(&f, "alice").await;
    f.store.set_person_role("alice", Role::Auditor).await.unwrap();
    assert_eq!(me(&f, a).await, StatusCode::UNAUTHORIZED, "role changed");
    f.store.set_person_role("alice", Role::User).await.unwrap();

    let a = login(&f, "alice").await;
    f.store.remove_person("alice").await.unwrap();
    let hash = hash_password("alice-pw").unwrap();
    f.store.add_person("alice", Role::User, Some(&hash), &[]).await.unwrap();
    assert_eq!(me(&f, a).await, StatusCode::UNAUTHORIZED, "removed and added again");

    // At most two sessions each: the third login ends the least recently used.
    let first = login(&f, "alice").await;
    let second = login(&f, "alice").await;
    assert_eq!(me(&f, second.clone()).await, StatusCode::OK);
    let _third = login(&f, "alice").await;
    assert_eq!(me(&f, first).await, StatusCode::UNAUTHORIZED, "over the per-person cap");
    assert_eq!(me(&f, second).await, StatusCode::OK);
    assert_eq!(f.state.browser_sessions().await.unwrap(), 2);

    // A token for alice works until she is disabled.
    let token = "kw_alice-token";
    let alice = "alice".parse().unwrap();
    let t = NewToken {
        name: "alice-ci",
        role: Role::User,
        person: Some(&alice),
        sha256_hex: &keepwatch_web::sha256_hex(token),
    };
    let created = NewAudit {
        actor: "test".into(),
        action: AuditAction::TokenCreated,
        session_id: None,
        client_addr: None,
        detail: "fixture".into(),
    };
    f.store.add_token(&t, created).await.unwrap();
    let bearer = vec![("authorization", format!("Bearer {token}"))];
    assert_eq!(me(&f, bearer.clone()).await, StatusCode::OK);
    f.store.set_person_disabled("alice", true).await.unwrap();
    assert_eq!(me(&f, bearer).await, StatusCode::UNAUTHORIZED, "token of a disabled person");
}

/// Issue 10: a console session lasts at most its lifetime, even when it is never idle.
#[tokio::test]
async fn a_busy_session_still_ends_at_its_lifetime() {
    let config = WebConfig {
        person_recheck: Duration::ZERO,
        session_lifetime: Duration::from_millis(400),
        ..Default::default()
    };
    let f = fixture(config, LoginLimits::default()).await;
    let started = Instant::now();
    let a = login(&f, "audrey").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = call(&f, "GET", "/api/v1/me", &a, None).await.status;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(Instant::now() < deadline, "the session outlived its lifetime");
    }
    assert!(started.elapsed() >= Duration::from_millis(400));
}
