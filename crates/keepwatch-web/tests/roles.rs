//! Every endpoint × every role, from one table: allowed, or refused (401/403/404) with
//! nothing of the session in the answer.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use ed25519_dalek::SigningKey;
use futures::future::BoxFuture;
use keepwatch_core::{ChannelKind, Role, SessionId, SessionStatus};
use keepwatch_recorder::WatchStart;
use keepwatch_recording::{Event, Pty, RecordingWriter, SessionStart, TimedEvent};
use keepwatch_store::{
    BlobStore, CommandRow, IndexProgress, SessionRow, Store, Vault, hash_password,
};
use keepwatch_web::{LiveControl, WebConfig, WebState, router};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The gateway side of a test without live sessions.
struct NoLiveSessions;

impl LiveControl for NoLiveSessions {
    fn terminate(&self, _id: SessionId, _message: &str) -> bool {
        false
    }
    fn watch(&self, _id: SessionId) -> BoxFuture<'_, Option<WatchStart>> {
        Box::pin(async { None })
    }
}

const ROLES: [&str; 5] =
    ["anonymous", "alice (user, owner)", "bob (other user)", "audrey (auditor)", "adam (admin)"];
const PEOPLE: [(&str, Role); 4] =
    [("alice", Role::User), ("bob", Role::User), ("audrey", Role::Auditor), ("adam", Role::Admin)];

struct Fixture {
    app: axum::Router,
    id: SessionId,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("kw.db")).await.unwrap();
    let blobs = BlobStore::local(dir.path()).unwrap();
    let key = SigningKey::from_bytes(&[9; 32]);
    for (name, role) in PEOPLE {
        let hash = hash_password(&format!("{name}-pw")).unwrap();
        store.add_person(name, role, Some(&hash), &[]).await.unwrap();
    }
    // One sealed session of alice's with a terminal channel.
    let id = SessionId::new();
    let start = SessionStart {
        session_id: id,
        user: "alice".into(),
        target: "web01".into(),
        target_host: "127.0.0.1:22".into(),
        target_login: "root".into(),
        client_addr: "127.0.0.1:5000".into(),
        started_at_us: 1_700_000_000_000_000,
    };
    let mut w = RecordingWriter::new(start, key.clone());
    let pty = Some(Pty { term: "xterm".into(), cols: 80, rows: 24 });
    for (at, event) in [
        (10, Event::ChannelOpen { channel: 0, kind: ChannelKind::Shell, pty }),
        (20, Event::Output { channel: 0, data: b"$ secret-output-of-alice\r\n".to_vec() }),
    ] {
        w.push(&TimedEvent { at_us: at, event });
    }
    let mut bytes = w.flush(1_700_000_000_100_000, true).unwrap();
    let seal = keepwatch_recording::Seal {
        status: SessionStatus::Closed,
        reason: None,
        ended_at_us: 1_700_000_001_000_000,
        unsigned_tail: None,
    };
    let (tail, _) = w.seal(30, seal, 1_700_000_001_000_000);
    bytes.extend(tail);
    std::fs::write(dir.path().join("recordings").join(format!("{id}.kwr")), bytes).unwrap();
    store
        .insert_session(&SessionRow {
            id,
            person: "alice".into(),
            target: "web01".into(),
            target_host: "127.0.0.1:22".into(),
            target_login: "root".into(),
            client_addr: "127.0.0.1:5000".into(),
            status: SessionStatus::Closed,
            reason: None,
            started_at_us: 1_700_000_000_000_000,
            ended_at_us: Some(1_700_000_001_000_000),
            chain_head: None,
            seal_seq: None,
            seal_signature: None,
        })
        .await
        .unwrap();
    let command = CommandRow {
        seq: 1,
        channel: 0,
        kind: "shell".into(),
        at_us: 1_700_000_000_000_020,
        start_offset_us: 20,
        end_offset_us: None,
        command: "cat notes".into(),
        prompt: "$ ".into(),
        output: "secret-output-of-alice".into(),
        confidence: "exact".into(),
        output_truncated: false,
        full_screen: false,
    };
    store.add_commands(id, &[command], IndexProgress::Complete).await.unwrap();
    let vault = Vault::new(&[3; 32]).unwrap();
    let state = WebState::new(
        store,
        blobs,
        key.verifying_key(),
        Some(vault),
        Arc::new(NoLiveSessions),
        WebConfig::default(),
    );
    Fixture { app: router(state), id, _dir: dir }
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    auth: Option<&(String, String)>,
    body: Option<Value>,
) -> (StatusCode, String, axum::http::HeaderMap) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some((cookie, csrf)) = auth {
        req = req.header("cookie", cookie).header("x-csrf-token", csrf);
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let mut req = req.body(body).unwrap();
    req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 24).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned(), headers)
}

async fn login(app: &axum::Router, name: &str) -> (String, String) {
    let (status, body, headers) = call(
        app,
        "POST",
        "/api/v1/login",
        None,
        Some(json!({ "name": name, "password": format!("{name}-pw") })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cookie = headers["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let csrf = serde_json::from_str::<Value>(&body).unwrap()["csrf"].as_str().unwrap().to_owned();
    (cookie, csrf)
}

/// Method, path, body, the status each of [`ROLES`] gets, and whether it shows alice's data.
type Row = (&'static str, String, Option<Value>, [u16; 5], bool);

#[tokio::test]
async fn every_endpoint_for_every_role() {
    let f = fixture().await;
    let id = f.id.to_string();
    let mut auth = vec![None];
    for (name, _) in PEOPLE {
        auth.push(Some(login(&f.app, name).await));
    }
    // (method, path, body, expected status per role in ROLES order, sees alice's data)
    let table: Vec<Row> = vec![
        ("GET", "/api/v1/openapi.json".into(), None, [200, 200, 200, 200, 200], false),
        ("GET", "/api/v1/me".into(), None, [401, 200, 200, 200, 200], false),
        ("GET", "/api/v1/sessions".into(), None, [401, 200, 200, 200, 200], true),
        ("GET", format!("/api/v1/sessions/{id}"), None, [401, 200, 404, 200, 200], true),
        ("GET", format!("/api/v1/sessions/{id}/replay"), None, [401, 200, 404, 200, 200], true),
        ("GET", format!("/api/v1/sessions/{id}/export"), None, [401, 403, 403, 200, 200], true),
        (
            "POST",
            format!("/api/v1/sessions/{id}/terminate"),
            Some(json!({"reason": "r"})),
            [401, 403, 403, 409, 409],
            false,
        ),
        ("GET", "/api/v1/search?q=secret-output".into(), None, [401, 200, 200, 200, 200], true),
        ("GET", "/api/v1/index".into(), None, [401, 403, 403, 200, 200], false),
        ("GET", format!("/api/v1/index?session={id}"), None, [401, 403, 403, 200, 200], true),
        (
            "GET",
            format!("/api/v1/index?session={}", SessionId::new()),
            None,
            [401, 403, 403, 404, 404],
            false,
        ),
        ("GET", "/api/v1/live".into(), None, [401, 403, 403, 200, 200], false),
        ("GET", "/api/v1/audit".into(), None, [401, 403, 403, 200, 200], false),
        ("GET", "/api/v1/people".into(), None, [401, 403, 403, 403, 200], false),
        (
            "POST",
            "/api/v1/people".into(),
            Some(json!({"name": "newbie", "role": "user"})),
            [401, 403, 403, 403, 200],
            false,
        ),
        ("GET", "/api/v1/targets".into(), None, [401, 403, 403, 403, 200], false),
        (
            "POST",
            "/api/v1/targets".into(),
            Some(json!({"name": "db01", "host": "10.0.0.5", "login": "root", "password": "pw"})),
            [401, 403, 403, 403, 200],
            false,
        ),
        ("GET", "/api/v1/grants".into(), None, [401, 403, 403, 403, 200], false),
        (
            "POST",
            "/api/v1/grants".into(),
            Some(json!({"user": "bob", "target": "db01"})),
            [401, 403, 403, 403, 200],
            false,
        ),
        (
            "DELETE",
            "/api/v1/grants?user=bob&target=db01".into(),
            None,
            [401, 403, 403, 403, 200],
            false,
        ),
        (
            "POST",
            "/api/v1/tokens".into(),
            Some(json!({"name": "ci", "role": "auditor"})),
            [401, 403, 403, 403, 200],
            false,
        ),
    ];
    for (method, path, body, expected, data) in &table {
        for (r, role) in ROLES.iter().enumerate() {
            let (status, text, _) =
                call(&f.app, method, path, auth[r].as_ref(), body.clone()).await;
            assert_eq!(status.as_u16(), expected[r], "{method} {path} as {role}: {text}");
            if !status.is_success() {
                assert!(text.starts_with("{\"error\""), "{method} {path} as {role}: {text}");
                // Only what the request itself named (a 404 repeats the id asked for).
                let leaks = ["alice", "web01", "secret-output", "127.0.0.1"];
                assert!(
                    !leaks.iter().any(|l| text.contains(l)),
                    "{method} {path} as {role} leaks: {text}"
                );
            }
            // Bob (a user) never sees alice's session, even where he may call the endpoint.
            if *data && r == 2 {
                assert!(
                    !text.contains("alice") && !text.contains("secret-output"),
                    "{method} {path} leaks to bob: {text}"
                );
            }
            if *data && expected[r] == 200 && r != 2 && !path.contains("/export") {
                assert!(
                    text.contains(&id) || text.contains("secret-output"),
                    "{method} {path} as {role}: {text}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_state_change_needs_the_csrf_token() {
    let f = fixture().await;
    let (cookie, _) = login(&f.app, "adam").await;
    let wrong = (cookie, "not-the-token".to_owned());
    let (status, text, _) = call(
        &f.app,
        "POST",
        "/api/v1/tokens",
        Some(&wrong),
        Some(json!({"name": "x", "role": "user"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("X-CSRF-Token"));
}
