//! Every endpoint × every caller, from one table: allowed, or refused (401/403/404) with
//! nothing of the session in the answer. The callers are the roles logged in from the
//! browser and API tokens: a user token bound to alice, and a user token bound to nobody
//! (made before user tokens named a person), which must see nothing at all.

use std::net::SocketAddr;
use std::sync::Arc;

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
    AuditFilter, BlobStore, CommandRow, IndexProgress, NewAudit, NewToken, OutputBlock,
    PasswordChecker, SessionRow, Store, Vault, hash_password,
};
use keepwatch_web::{LiveControl, WebConfig, WebParts, WebState, router};
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
    fn host_key_line(&self, text: &str) -> Result<String, String> {
        // The real gateway parses the key with russh; here a well-formed-looking line will do.
        let mut parts = text.split_whitespace();
        match (parts.next(), parts.next()) {
            (Some(kind @ "ssh-ed25519"), Some(b64)) if b64.starts_with("AAAA") => {
                Ok(format!("{kind} {b64}"))
            }
            _ => Err("not an OpenSSH public key".into()),
        }
    }
}

const ROLES: [&str; 7] = [
    "anonymous",
    "alice (user, owner)",
    "bob (other user)",
    "audrey (auditor)",
    "adam (admin)",
    "token:nobody (user token without a person)",
    "token:alice-ci (user token for alice)",
];
/// The callers that must never see anything of alice's session.
const STRANGERS: [usize; 2] = [2, 5];
const PEOPLE: [(&str, Role); 4] =
    [("alice", Role::User), ("bob", Role::User), ("audrey", Role::Auditor), ("adam", Role::Admin)];

struct Fixture {
    app: axum::Router,
    id: SessionId,
    store: Store,
    _dir: tempfile::TempDir,
}

/// How a caller authenticates.
enum Auth {
    /// A browser session: the cookie header value and the CSRF token.
    Browser(String, String),
    /// An API token.
    Bearer(String),
}

fn audit_by(actor: &str, action: AuditAction, detail: &str) -> NewAudit {
    NewAudit {
        actor: actor.into(),
        action,
        session_id: None,
        client_addr: None,
        detail: detail.into(),
    }
}

/// A user-role token that names no person, as databases made before issue 9 hold them
/// (`add_token` refuses to make one now; `set_token` replaces a token without a person).
const NOBODY_TOKEN: &str = "kw_nobody-token";
/// A user-role token bound to alice.
const ALICE_TOKEN: &str = "kw_alice-token";

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
            started_at_us: 1_700_000_000_000_000,
            ended_at_us: Some(1_700_000_001_000_000),
            chain_head: None,
            seal_seq: None,
            seal_signature: None,
            node: None,
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
        typed: None,
    };
    let block = OutputBlock {
        channel: 0,
        at_us: 1_700_000_000_000_030,
        start_offset_us: 30,
        end_offset_us: 30,
        text: "secret-output-of-alice\n".into(),
        marks: vec![(0, 30)],
    };
    store.add_commands(id, &[command], &[block], IndexProgress::Complete).await.unwrap();
    let token = |t: &str| keepwatch_web::sha256_hex(t);
    let created = audit_by("test", AuditAction::TokenCreated, "fixture");
    store.set_token("nobody", Role::User, &token(NOBODY_TOKEN), created.clone()).await.unwrap();
    let alice = "alice".parse().unwrap();
    let t = NewToken {
        name: "alice-ci",
        role: Role::User,
        person: Some(&alice),
        sha256_hex: &token(ALICE_TOKEN),
    };
    store.add_token(&t, created).await.unwrap();
    let vault = Vault::new(&[3; 32]).unwrap();
    let parts = WebParts {
        store: store.clone(),
        blobs,
        verifying_key: key.verifying_key(),
        vault: Some(vault),
        live: Arc::new(NoLiveSessions),
        logins: Arc::new(LoginLimiter::new(LoginLimits::default())),
        passwords: PasswordChecker::new(2, std::time::Duration::from_secs(5)),
    };
    let state = WebState::new(parts, WebConfig::default()).unwrap();
    Fixture { app: router(state), id, store, _dir: dir }
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    auth: Option<&Auth>,
    body: Option<Value>,
) -> (StatusCode, String, axum::http::HeaderMap) {
    call_from(app, method, path, auth, body, 40000).await
}

/// [`call`] from 127.0.0.1:`port`.
async fn call_from(
    app: &axum::Router,
    method: &str,
    path: &str,
    auth: Option<&Auth>,
    body: Option<Value>,
    port: u16,
) -> (StatusCode, String, axum::http::HeaderMap) {
    let mut req = Request::builder().method(method).uri(path);
    match auth {
        Some(Auth::Browser(cookie, csrf)) => {
            req = req.header("cookie", cookie).header("x-csrf-token", csrf);
        }
        Some(Auth::Bearer(token)) => req = req.header("authorization", format!("Bearer {token}")),
        None => {}
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let mut req = req.body(body).unwrap();
    req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], port))));
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 24).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned(), headers)
}

async fn login(app: &axum::Router, name: &str) -> Auth {
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
    Auth::Browser(cookie, csrf)
}

/// Method, path, body, the status each of [`ROLES`] gets, and whether it shows alice's data.
type Row = (&'static str, String, Option<Value>, [u16; 7], bool);

#[tokio::test]
async fn every_endpoint_for_every_role() {
    let f = fixture().await;
    let id = f.id.to_string();
    let mut auth = vec![None];
    for (name, _) in PEOPLE {
        auth.push(Some(login(&f.app, name).await));
    }
    auth.push(Some(Auth::Bearer(NOBODY_TOKEN.into())));
    auth.push(Some(Auth::Bearer(ALICE_TOKEN.into())));
    // (method, path, body, expected status per role in ROLES order, sees alice's data)
    let table: Vec<Row> = vec![
        ("GET", "/api/v1/openapi.json".into(), None, [200, 200, 200, 200, 200, 200, 200], false),
        ("GET", "/api/v1/me".into(), None, [401, 200, 200, 200, 200, 200, 200], false),
        ("GET", "/api/v1/sessions".into(), None, [401, 200, 200, 200, 200, 200, 200], true),
        ("GET", format!("/api/v1/sessions/{id}"), None, [401, 200, 404, 200, 200, 404, 200], true),
        (
            "GET",
            format!("/api/v1/sessions/{id}/replay"),
            None,
            [401, 200, 404, 200, 200, 404, 200],
            true,
        ),
        // A later window of the replay is the same look (and as audited: `replay_windows`).
        (
            "GET",
            format!("/api/v1/sessions/{id}/replay?from_us=1"),
            None,
            [401, 200, 404, 200, 200, 404, 200],
            true,
        ),
        // Asking for alice's sessions by name changes nothing for those who may not see them.
        (
            "GET",
            "/api/v1/sessions?user=alice".into(),
            None,
            [401, 200, 200, 200, 200, 200, 200],
            true,
        ),
        (
            "GET",
            format!("/api/v1/sessions/{id}/export"),
            None,
            [401, 403, 403, 200, 200, 403, 403],
            true,
        ),
        (
            "POST",
            format!("/api/v1/sessions/{id}/terminate"),
            Some(json!({"reason": "r"})),
            [401, 403, 403, 409, 409, 403, 403],
            false,
        ),
        // Issue 13: auditors and admins tag sessions; a bad tag names the rule.
        (
            "POST",
            format!("/api/v1/sessions/{id}/tags"),
            Some(json!({"tags": ["incident-42"]})),
            [401, 403, 403, 200, 200, 403, 403],
            false,
        ),
        (
            "POST",
            format!("/api/v1/sessions/{id}/tags"),
            Some(json!({"tags": ["no spaces"]})),
            [401, 403, 403, 400, 400, 403, 403],
            false,
        ),
        (
            "POST",
            format!("/api/v1/sessions/{}/tags", SessionId::new()),
            Some(json!({"tags": ["x"]})),
            [401, 403, 403, 404, 404, 403, 403],
            false,
        ),
        (
            "GET",
            "/api/v1/sessions?tag=incident-42".into(),
            None,
            [401, 200, 200, 200, 200, 200, 200],
            true,
        ),
        (
            "DELETE",
            format!("/api/v1/sessions/{id}/tags/incident-42"),
            None,
            [401, 403, 403, 200, 200, 403, 403],
            false,
        ),
        (
            "GET",
            "/api/v1/search?q=secret-output".into(),
            None,
            [401, 200, 200, 200, 200, 200, 200],
            true,
        ),
        (
            "GET",
            "/api/v1/search?q=secret-output&user=alice".into(),
            None,
            [401, 200, 200, 200, 200, 200, 200],
            true,
        ),
        ("GET", "/api/v1/index".into(), None, [401, 403, 403, 200, 200, 403, 403], false),
        (
            "GET",
            format!("/api/v1/index?session={id}"),
            None,
            [401, 403, 403, 200, 200, 403, 403],
            true,
        ),
        (
            "GET",
            format!("/api/v1/index?session={}", SessionId::new()),
            None,
            [401, 403, 403, 404, 404, 403, 403],
            false,
        ),
        ("GET", "/api/v1/live".into(), None, [401, 403, 403, 200, 200, 403, 403], false),
        ("GET", "/api/v1/audit".into(), None, [401, 403, 403, 200, 200, 403, 403], false),
        ("GET", "/api/v1/people".into(), None, [401, 403, 403, 403, 200, 403, 403], false),
        (
            "POST",
            "/api/v1/people".into(),
            Some(json!({"name": "newbie", "role": "user"})),
            [401, 403, 403, 403, 200, 403, 403],
            false,
        ),
        ("GET", "/api/v1/targets".into(), None, [401, 403, 403, 403, 200, 403, 403], false),
        (
            "POST",
            "/api/v1/targets".into(),
            Some(json!({"name": "db01", "host": "10.0.0.5", "login": "root", "password": "pw",
                "trust_on_first_use": true})),
            [401, 403, 403, 403, 200, 403, 403],
            false,
        ),
        // Issue 9: a target from the console names its host key or chooses trust on first use.
        (
            "POST",
            "/api/v1/targets".into(),
            Some(json!({"name": "db02", "host": "10.0.0.6", "login": "root", "password": "pw"})),
            [401, 403, 403, 403, 400, 403, 403],
            false,
        ),
        (
            "POST",
            "/api/v1/targets".into(),
            Some(json!({"name": "db03", "host": "10.0.0.7", "login": "root", "password": "pw",
                "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk comment"})),
            [401, 403, 403, 403, 200, 403, 403],
            false,
        ),
        ("GET", "/api/v1/grants".into(), None, [401, 403, 403, 403, 200, 403, 403], false),
        (
            "POST",
            "/api/v1/grants".into(),
            Some(json!({"user": "bob", "target": "db01"})),
            [401, 403, 403, 403, 200, 403, 403],
            false,
        ),
        (
            "DELETE",
            "/api/v1/grants?user=bob&target=db01".into(),
            None,
            [401, 403, 403, 403, 200, 403, 403],
            false,
        ),
        (
            "POST",
            "/api/v1/tokens".into(),
            Some(json!({"name": "ci", "role": "auditor"})),
            [401, 403, 403, 403, 200, 403, 403],
            false,
        ),
        // Issue 9: a user token acts for a person, so one without a person is refused.
        (
            "POST",
            "/api/v1/tokens".into(),
            Some(json!({"name": "ci-user", "role": "user"})),
            [401, 403, 403, 403, 400, 403, 403],
            false,
        ),
        (
            "POST",
            "/api/v1/tokens".into(),
            Some(json!({"name": "ci-bob", "role": "user", "person": "bob"})),
            [401, 403, 403, 403, 200, 403, 403],
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
            // Bob (a user) and a user token of nobody never see alice's session, even where
            // they may call the endpoint.
            if *data && STRANGERS.contains(&r) {
                assert!(
                    !text.contains("alice") && !text.contains("secret-output"),
                    "{method} {path} leaks to {role}: {text}"
                );
            }
            if *data && expected[r] == 200 && !STRANGERS.contains(&r) && !path.contains("/export") {
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
    let Auth::Browser(cookie, _) = login(&f.app, "adam").await else { unreachable!() };
    let wrong = Auth::Browser(cookie, "not-the-token".to_owned());
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

/// Issue 9: every replay window is a look, audited whatever `from_us` says; the server
/// writes one `recording_replayed` per viewer, address and session within
/// `REPLAY_AUDIT_WINDOW`.
#[tokio::test]
async fn replay_windows() {
    let f = fixture().await;
    let replays = || async {
        let filter = AuditFilter {
            action: Some(AuditAction::RecordingReplayed),
            session: Some(f.id),
            ..Default::default()
        };
        f.store.audit_events(&filter).await.unwrap()
    };
    let alice = login(&f.app, "alice").await;
    let window = |from: u64| {
        format!("/api/v1/sessions/{}/replay?from_us={from}&until_us={}", f.id, from + 15_000_000)
    };
    // A window past the start, asked first, is audited (it was not before issue 9).
    let (status, body, _) = call(&f.app, "GET", &window(5), Some(&alice), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = replays().await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0].actor.as_str(), seen[0].client_addr.as_deref()),
        ("alice", Some("127.0.0.1:40000"))
    );
    // More windows from the same place, the start included: the same look.
    for from in [0, 20, 7] {
        let (status, _, _) = call(&f.app, "GET", &window(from), Some(&alice), None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _, _) = call_from(&f.app, "GET", &window(9), Some(&alice), None, 40001).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(replays().await.len(), 1, "another port of the same address is the same viewer");
    // Another viewer, or the same one from another address, is another look.
    let audrey = login(&f.app, "audrey").await;
    call(&f.app, "GET", &window(3), Some(&audrey), None).await;
    call(&f.app, "GET", &window(3), Some(&Auth::Bearer(ALICE_TOKEN.into())), None).await;
    let seen = replays().await;
    let actors: Vec<&str> = seen.iter().map(|e| e.actor.as_str()).collect();
    assert_eq!(actors, ["token:alice-ci", "audrey", "alice"], "{seen:?}");
    // A refused look is no look: nothing is written for bob.
    let bob = login(&f.app, "bob").await;
    let (status, _, _) = call(&f.app, "GET", &window(3), Some(&bob), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(replays().await.len(), 3);
}
