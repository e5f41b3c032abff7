//! Sessions, channels and transfers as listed: every filter applied by the database, the
//! same on every backend.

use keepwatch_core::{GrantPolicy, Role, SessionId, SessionStatus};
use keepwatch_store::{
    ChannelRow, ContentCapture, SessionFilter, SessionRow, Store, StoreError, TransferFilter,
    TransferRow,
};

use crate::search::{HOUR_US, T0};
use crate::support::{TestDb, conformance};

async fn session(
    store: &Store,
    person: &str,
    target: &str,
    status: SessionStatus,
    at: i64,
) -> SessionId {
    let id = SessionId::new();
    store
        .insert_session(&SessionRow {
            stated_reason: None,
            protocol: keepwatch_core::Protocol::Ssh,
            id,
            person: person.into(),
            target: target.into(),
            target_host: "10.0.0.5:22".into(),
            target_login: "root".into(),
            client_addr: "192.0.2.1:50000".into(),
            status,
            reason: None,
            started_at_us: at,
            ended_at_us: None,
            chain_head: None,
            seal_seq: None,
            seal_signature: None,
            node: None,
        })
        .await
        .unwrap();
    id
}

fn channel(n: u32, kind: &str, command: Option<&str>) -> ChannelRow {
    ChannelRow {
        channel: n,
        kind: kind.into(),
        command: command.map(str::to_owned),
        subsystem: None,
        pty_term: (kind == "shell").then(|| "xterm".into()),
        destination: None,
        opened_at_us: T0 + i64::from(n),
        closed_at_us: None,
        exit_status: None,
    }
}

/// The listed sessions, as the names given to their ids.
async fn listed(store: &Store, names: &[(SessionId, &str)], f: SessionFilter) -> Vec<String> {
    let name = |id: SessionId| names.iter().find(|(i, _)| *i == id).unwrap().1.to_owned();
    let rows: Vec<String> = store.sessions(&f).await.unwrap().iter().map(|s| name(s.id)).collect();
    let listings = store.session_listings(&f).await.unwrap();
    let same: Vec<String> = listings.iter().map(|l| name(l.session.id)).collect();
    assert_eq!(rows, same, "sessions and session_listings pick the same sessions for {f:?}");
    rows
}

async fn session_filters(db: TestDb) {
    let s = &db.store;
    let a1 = session(s, "alice", "web", SessionStatus::Closed, T0).await;
    let b1 = session(s, "bob", "db", SessionStatus::Active, T0 + HOUR_US).await;
    let a2 = session(s, "alice", "db", SessionStatus::Interrupted, T0 + 2 * HOUR_US).await;
    let a3 = session(s, "alice", "web", SessionStatus::Active, T0 + 3 * HOUR_US).await;
    let names = [(a1, "a1"), (b1, "b1"), (a2, "a2"), (a3, "a3")];
    let all = SessionFilter::default();
    assert_eq!(listed(s, &names, all.clone()).await, ["a3", "a2", "b1", "a1"]);
    assert_eq!(listed(s, &names, SessionFilter::active()).await, ["a3", "b1"]);
    let interrupted = SessionFilter { status: Some(SessionStatus::Interrupted), ..all.clone() };
    assert_eq!(listed(s, &names, interrupted).await, ["a2"]);
    let alice = SessionFilter { person: Some("alice".into()), ..all.clone() };
    assert_eq!(listed(s, &names, alice.clone()).await, ["a3", "a2", "a1"]);
    let alice_web = SessionFilter { target: Some("web".into()), ..alice.clone() };
    assert_eq!(listed(s, &names, alice_web).await, ["a3", "a1"]);
    let window = SessionFilter {
        since_us: Some(T0 + HOUR_US),
        until_us: Some(T0 + 2 * HOUR_US),
        ..all.clone()
    };
    assert_eq!(listed(s, &names, window).await, ["a2", "b1"]);
    let since = SessionFilter { since_us: Some(T0 + 2 * HOUR_US + 1), ..all.clone() };
    assert_eq!(listed(s, &names, since).await, ["a3"]);
    let limited = SessionFilter { limit: Some(2), ..alice };
    assert_eq!(listed(s, &names, limited).await, ["a3", "a2"]);
    let nobody = SessionFilter { person: Some("carol".into()), ..all };
    assert!(listed(s, &names, nobody).await.is_empty());
    db.close().await;
}

async fn listings_carry_channels_and_the_last_command(db: TestDb) {
    let s = &db.store;
    let a = session(s, "alice", "web", SessionStatus::Active, T0).await;
    let b = session(s, "bob", "web", SessionStatus::Active, T0 + 1).await;
    s.add_channel(a, &channel(0, "shell", None)).await.unwrap();
    s.add_channel(a, &channel(1, "exec", Some("uptime"))).await.unwrap();
    s.close_channel(a, 1, Some(0)).await.unwrap();
    crate::search::session_commands(s, a, &["ls", "", "whoami"], &["shell", "screen", "shell"])
        .await;
    let listed = s.session_listings(&SessionFilter::active()).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].session.id, b);
    assert!(listed[0].channels.is_empty() && listed[0].last_command.is_none());
    let l = &listed[1];
    assert_eq!(l.session.id, a);
    assert_eq!(l.last_command.as_deref(), Some("whoami"));
    let chans: Vec<(u32, &str, Option<u32>)> =
        l.channels.iter().map(|c| (c.channel, c.kind.as_str(), c.exit_status)).collect();
    assert_eq!(chans, [(0, "shell", None), (1, "exec", Some(0))]);
    assert_eq!(l.channels, s.channels(a).await.unwrap());
    // A client's exec line may hold any bytes, a NUL too (which PostgreSQL's text cannot):
    // the row is kept on both backends, the NUL as U+FFFD.
    s.add_channel(b, &channel(2, "exec", Some("printf 'a\0b'"))).await.unwrap();
    let kept = s.channels(b).await.unwrap();
    assert_eq!(kept[0].command.as_deref(), Some("printf 'a\u{fffd}b'"));
    db.close().await;
}

fn transfer(session: SessionId, at: i64, path: &str, sha256: Option<&str>) -> TransferRow {
    TransferRow {
        id: 0,
        session_id: session,
        channel: 0,
        at_us: at,
        protocol: "sftp".into(),
        path: path.into(),
        upload: true,
        bytes: 10,
        size: Some(10),
        sha256: sha256.map(str::to_owned),
        complete: true,
        ranges: vec![(0, 10)],
        capture: None,
    }
}

async fn transfer_filters(db: TestDb) {
    let s = &db.store;
    let a = session(s, "alice", "web", SessionStatus::Closed, T0).await;
    let b = session(s, "bob", "db", SessionStatus::Closed, T0).await;
    let t1 =
        s.add_transfer(&transfer(a, T0 + 1, "/etc/ssh/sshd_config", Some("ab12"))).await.unwrap();
    let t2 = s.add_transfer(&transfer(a, T0 + 2, "/home/alice/100%_done.TXT", None)).await.unwrap();
    let t3 = s.add_transfer(&transfer(b, T0 + 3, "/ETC/hosts", Some("cd34"))).await.unwrap();
    let t4 = s.add_transfer(&transfer(b, T0 + 4, "/home/bob/100x-done.txt", None)).await.unwrap();
    assert!(t1 < t2 && t2 < t3 && t3 < t4, "ids grow");
    s.record_capture(t2, &ContentCapture::Skipped { reason: "too big".into() }).await.unwrap();
    s.record_capture(t2, &ContentCapture::Captured { bytes: 10 }).await.unwrap();
    let ids = |f: TransferFilter| async move {
        s.transfers(&f).await.unwrap().iter().map(|t| t.id).collect::<Vec<_>>()
    };
    let all = TransferFilter::default();
    assert_eq!(ids(all.clone()).await, [t4, t3, t2, t1]);
    assert_eq!(ids(TransferFilter { person: Some("alice".into()), ..all.clone() }).await, [t2, t1]);
    assert_eq!(ids(TransferFilter { target: Some("db".into()), ..all.clone() }).await, [t4, t3]);
    assert_eq!(ids(TransferFilter { session: Some(b), ..all.clone() }).await, [t4, t3]);
    assert_eq!(ids(TransferFilter { sha256: Some("AB12".into()), ..all.clone() }).await, [t1]);
    // `--path`: `*` spans `/`, letters match in any ASCII case, `%` and `_` are literal.
    let path = |p: &str| TransferFilter { path: Some(p.into()), ..all.clone() };
    assert_eq!(ids(path("/etc/*")).await, [t3, t1]);
    assert_eq!(ids(path("*/100%_done.txt")).await, [t2]);
    assert_eq!(ids(path("*done*")).await, [t4, t2]);
    assert_eq!(ids(path("/home/*.txt")).await, [t4, t2]);
    assert_eq!(ids(path("/etc")).await, Vec::<i64>::new());
    assert_eq!(ids(path("*")).await, [t4, t3, t2, t1]);
    for (p, t) in [("/etc/*", "/ETC/hosts"), ("*/100%_done.txt", "/home/alice/100%_done.TXT")] {
        assert!(keepwatch_core::glob_match(p, t), "the same rule as glob_match: {p} {t}");
    }
    let one = s.transfer(t2).await.unwrap().unwrap();
    assert_eq!(one.capture, Some(ContentCapture::Captured { bytes: 10 }));
    assert_eq!(one.ranges, [(0, 10)]);
    assert!(s.transfer(t4 + 100).await.unwrap().is_none());
    // An SFTP path is any bytes the client sent: one with a NUL is kept (as U+FFFD) on both.
    let t5 = s.add_transfer(&transfer(b, T0 + 5, "/tmp/a\0b", None)).await.unwrap();
    assert_eq!(s.transfer(t5).await.unwrap().unwrap().path, "/tmp/a\u{fffd}b");
    db.close().await;
}

async fn people_targets_and_grants(db: TestDb) {
    let s = &db.store;
    s.add_person(
        "alice",
        Role::User,
        Some("$argon2id$x"),
        &["ssh-ed25519 A".into(), "ssh-ed25519 B".into()],
    )
    .await
    .unwrap();
    let e = s.add_person("alice", Role::Admin, None, &[]).await.unwrap_err();
    assert!(matches!(e, StoreError::Exists { kind: "person", .. }), "{e}");
    let p = s.person("alice").await.unwrap().unwrap();
    assert_eq!(p.ssh_keys, ["ssh-ed25519 A", "ssh-ed25519 B"], "keys in the order added");
    assert!(!p.disabled);
    assert!(s.set_person_disabled("alice", true).await.unwrap());
    assert!(s.person("alice").await.unwrap().unwrap().disabled);
    assert!(!s.set_person_disabled("ghost", true).await.unwrap());
    assert!(s.set_person_role("alice", Role::Auditor).await.unwrap());
    assert_eq!(s.people().await.unwrap()[0].role, Role::Auditor);

    let t = keepwatch_store::NewTarget {
        require_reason: false,
        database: None,
        protocol: keepwatch_core::Protocol::Ssh,
        name: "web".into(),
        host: "10.0.0.5".into(),
        port: 2222,
        login: "root".into(),
        secret: keepwatch_store::TargetSecret::PrivateKey(vec![1, 2, 3]),
        host_key: None,
        trust_on_first_use: true,
        on_recording_failure: keepwatch_core::RecordingFailure::Continue,
        algorithms: keepwatch_store::Algorithms {
            kex: vec!["a".into(), "b".into()],
            ..Default::default()
        },
    };
    s.add_target(&t).await.unwrap();
    let e = s.add_target(&t).await.unwrap_err();
    assert!(matches!(e, StoreError::Exists { kind: "target", .. }), "{e}");
    let row = s.target("web").await.unwrap().unwrap();
    assert_eq!((row.port, row.trust_on_first_use, row.algorithms.kex.len()), (2222, true, 2));
    assert_eq!(row.secret, t.secret);

    let e = s.grant("ghost", "web", &GrantPolicy::default()).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound { kind: "person", .. }), "{e}");
    let policy = GrantPolicy {
        upload: false,
        max_file_size: Some(5),
        forward_to: vec!["db:5432".into()],
        agent_forward: true,
        capture_content: Some(1 << 20),
        read_only: true,
        deny_statements: vec!["DROP".into(), "ALTER TABLE".into()],
        deny_tables: vec!["payroll".into()],
        capture_rows: Some(5),
        ..GrantPolicy::default()
    };
    s.grant("alice", "web", &policy).await.unwrap();
    let got = s.grant_policy("alice", "web").await.unwrap().unwrap();
    assert_eq!(format!("{got:?}"), format!("{policy:?}"));
    assert!(s.is_granted("alice", "web").await.unwrap());
    assert_eq!(s.granted_targets("alice").await.unwrap(), ["web"]);
    // Removing the person removes the grant; the target stays.
    assert!(s.remove_person("alice").await.unwrap());
    assert!(!s.is_granted("alice", "web").await.unwrap());
    assert!(s.target("web").await.unwrap().is_some());
    assert!(!s.remove_person("alice").await.unwrap());
    db.close().await;
}

conformance!(
    session_filters,
    listings_carry_channels_and_the_last_command,
    transfer_filters,
    people_targets_and_grants
);
