//! Issue 9 at the store boundary: every look decided and audited in one place, audit events
//! cleaned before they are chained, user tokens bound to a person, and token changes
//! audited together with the change.

use keepwatch_core::{AuditAction, Look, Role, SessionId, SessionStatus, Viewer};
use keepwatch_recording::audit_chain;
use keepwatch_store::{AuditFilter, LookError, NewAudit, NewToken, SessionRow, Store, StoreError};

use crate::support::{TestDb, conformance};

async fn people(db: &TestDb) {
    for (name, role) in [("alice", Role::User), ("bob", Role::User), ("audrey", Role::Auditor)] {
        db.store.add_person(name, role, None, &[]).await.unwrap();
    }
}

async fn session(store: &Store, person: &str, status: SessionStatus) -> SessionId {
    let id = SessionId::new();
    store
        .insert_session(&SessionRow {
            stated_reason: None,
            protocol: keepwatch_core::Protocol::Ssh,
            id,
            person: person.into(),
            target: "web01".into(),
            target_host: "10.0.0.5:22".into(),
            target_login: "root".into(),
            client_addr: "192.0.2.1:50000".into(),
            status,
            reason: None,
            started_at_us: 1,
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

fn viewer(actor: &str, person: Option<&str>, role: Role, addr: &str) -> Viewer {
    Viewer {
        actor: actor.into(),
        person: person.map(|p| p.parse().unwrap()),
        role,
        client_addr: Some(addr.into()),
    }
}

async fn events(store: &Store) -> Vec<(String, AuditAction, Option<SessionId>)> {
    let mut rows = store.audit_events(&AuditFilter::default()).await.unwrap();
    rows.reverse();
    rows.into_iter().map(|e| (e.actor, e.action, e.session_id)).collect()
}

fn audit(actor: &str, action: AuditAction, detail: &str) -> NewAudit {
    NewAudit {
        actor: actor.into(),
        action,
        session_id: None,
        client_addr: None,
        detail: detail.into(),
    }
}

/// Issue 9: one function decides and audits every look; a refused look writes nothing and
/// says only "not found".
async fn every_look_is_decided_and_audited_by_store_look(f: TestDb) {
    people(&f).await;
    let closed = session(&f.store, "alice", SessionStatus::Closed).await;
    let live = session(&f.store, "alice", SessionStatus::Active).await;
    let alice = viewer("alice", Some("alice"), Role::User, "192.0.2.7:1000");
    let bob = viewer("bob", Some("bob"), Role::User, "192.0.2.8:1000");
    let nobody = viewer("token:old", None, Role::User, "192.0.2.9:1000");
    let audrey = viewer("audrey", Some("audrey"), Role::Auditor, "192.0.2.10:1000");

    let row = f.store.look(&alice, closed, Look::View, "web").await.unwrap();
    assert_eq!(row.id, closed);
    assert!(f.store.look(&alice, closed, Look::Replay, "web").await.is_ok());
    for look in [Look::Export, Look::CaptureDownload] {
        let e = f.store.look(&alice, closed, look, "web").await.unwrap_err();
        assert!(matches!(e, LookError::NotFound { .. }), "{look:?}: {e}");
    }
    for v in [&bob, &nobody] {
        for look in Look::ALL {
            let e = f.store.look(v, live, look, "web").await.unwrap_err();
            assert!(matches!(e, LookError::NotFound { .. }), "{v:?} {look:?}: {e}");
            assert_eq!(e.to_string(), format!("session {live} not found"));
        }
    }
    let missing = SessionId::new();
    let e = f.store.look(&audrey, missing, Look::View, "web").await.unwrap_err();
    assert_eq!(e.to_string(), format!("session {missing} not found"));
    let e = f.store.look(&audrey, closed, Look::Watch, "web").await.unwrap_err();
    assert!(matches!(e, LookError::NotLive { status: SessionStatus::Closed, .. }), "{e}");
    for look in Look::ALL {
        f.store.look(&audrey, live, look, "web").await.unwrap();
    }

    let mut expected = vec![
        ("alice".to_owned(), AuditAction::SessionViewed, Some(closed)),
        ("alice".to_owned(), AuditAction::RecordingReplayed, Some(closed)),
    ];
    expected.extend(Look::ALL.iter().map(|l| ("audrey".to_owned(), l.action(), Some(live))));
    assert_eq!(events(&f.store).await, expected);
    let rows = f.store.audit_events(&AuditFilter::default()).await.unwrap();
    assert_eq!(rows[0].client_addr.as_deref(), Some("192.0.2.10:1000"));
    f.close().await;
}

/// Issue 9: replays are de-duplicated by the server only: per viewer, address and session.
async fn replays_are_audited_once_per_viewer_address_and_session(f: TestDb) {
    people(&f).await;
    let a = session(&f.store, "alice", SessionStatus::Closed).await;
    let b = session(&f.store, "alice", SessionStatus::Closed).await;
    let here = viewer("audrey", None, Role::Auditor, "192.0.2.1:1000");
    let other_port = viewer("audrey", None, Role::Auditor, "192.0.2.1:2000");
    let elsewhere = viewer("audrey", None, Role::Auditor, "198.51.100.1:1000");
    let someone_else = viewer("token:siem", None, Role::Auditor, "192.0.2.1:1000");
    for v in [&here, &other_port, &here, &elsewhere, &someone_else] {
        f.store.look(v, a, Look::Replay, "web").await.unwrap();
    }
    f.store.look(&here, b, Look::Replay, "web").await.unwrap();
    // Other looks are never folded into one.
    f.store.look(&here, a, Look::View, "web").await.unwrap();
    f.store.look(&here, a, Look::View, "web").await.unwrap();
    let replayed = AuditAction::RecordingReplayed;
    let viewed = AuditAction::SessionViewed;
    assert_eq!(
        events(&f.store).await,
        [
            ("audrey".to_owned(), replayed, Some(a)),
            ("audrey".to_owned(), replayed, Some(a)),
            ("token:siem".to_owned(), replayed, Some(a)),
            ("audrey".to_owned(), replayed, Some(b)),
            ("audrey".to_owned(), viewed, Some(a)),
            ("audrey".to_owned(), viewed, Some(a)),
        ]
    );
    // A fresh handle (a new CLI process) remembers nothing: its replay is audited.
    let again = f.reopen().await;
    again.look(&here, a, Look::Replay, "cli").await.unwrap();
    assert_eq!(events(&f.store).await.len(), 7);
    f.close().await;
}

/// A look whose audit event cannot be written is refused.
async fn a_failed_audit_write_refuses_the_look(f: TestDb) {
    people(&f).await;
    let id = session(&f.store, "alice", SessionStatus::Closed).await;
    f.sql(
        "CREATE TRIGGER no_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
        "CREATE FUNCTION no_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$; \
         CREATE TRIGGER no_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION no_audit();",
    )
    .await;
    let audrey = viewer("audrey", None, Role::Auditor, "192.0.2.1:1000");
    for look in [Look::View, Look::Replay, Look::Export, Look::CaptureDownload] {
        let e = f.store.look(&audrey, id, look, "web").await.unwrap_err();
        assert!(matches!(e, LookError::Audit { .. }), "{look:?}: {e}");
        assert!(e.to_string().contains("the look is refused"), "{e}");
    }
    // A replay that failed to be audited is not remembered as audited either.
    f.sql("DROP TRIGGER no_audit", "DROP TRIGGER no_audit ON audit_events").await;
    f.store.look(&audrey, id, Look::Replay, "web").await.unwrap();
    assert_eq!(events(&f.store).await.len(), 1);
    f.close().await;
}

/// Issue 9: an actor or detail from outside (an SSH login name is whatever the client
/// sends) is escaped and capped before it is chained, stored and logged.
async fn audit_fields_are_cleaned_before_they_are_chained(f: TestDb) {
    people(&f).await;
    let actor = format!("\x1b]0;pwned\x07alice\n{}", "x".repeat(300));
    let detail = format!("login as {actor}: \r\x1b[2J{}", "d".repeat(10_000));
    f.store
        .audit(NewAudit {
            actor: actor.clone(),
            action: AuditAction::LoginRefused,
            session_id: None,
            client_addr: Some("192.0.2.1:22\x1b[31m".into()),
            detail,
        })
        .await
        .unwrap();
    let row = &f.store.audit_events(&AuditFilter::default()).await.unwrap()[0];
    assert!(row.actor.starts_with("\\x1b]0;pwned\\x07alice\\nxxx"), "{}", row.actor);
    assert!(row.actor.len() <= 128 && row.actor.ends_with("more bytes cut]"), "{}", row.actor);
    assert!(row.detail.len() <= 4096 && row.detail.ends_with("more bytes cut]"));
    assert!(row.detail.contains("\\r\\x1b[2J"), "{}", row.detail);
    assert_eq!(row.client_addr.as_deref(), Some("192.0.2.1:22\\x1b[31m"));
    for text in [&row.actor, &row.detail] {
        assert!(!text.chars().any(|c| c.is_control()), "{text:?}");
    }
    // What is chained is what is stored: the chain still checks.
    let links = f.store.audit_chain().await.unwrap();
    let l = &links[0];
    let e = &l.event;
    let entry = audit_chain::AuditEntry {
        id: e.id,
        at_us: e.at_us,
        actor: &e.actor,
        action: &e.action,
        session_id: e.session_id.as_deref(),
        client_addr: e.client_addr.as_deref(),
        detail: &e.detail,
    };
    assert_eq!(Some(entry.hash(&audit_chain::genesis()).to_vec()), l.hash);
    f.close().await;
}

/// Issue 9: a user token acts for a person; token changes are audited with the change.
async fn user_tokens_name_a_person_and_token_changes_are_audited(f: TestDb) {
    people(&f).await;
    let created = || audit("local:root", AuditAction::TokenCreated, "t");
    let t = NewToken { name: "ci", role: Role::User, person: None, sha256_hex: "aa" };
    let e = f.store.add_token(&t, created()).await.unwrap_err();
    assert!(matches!(e, StoreError::Invalid { .. }), "{e}");
    let ghost = "ghost".parse().unwrap();
    let t = NewToken { person: Some(&ghost), ..t };
    let e = f.store.add_token(&t, created()).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound { kind: "person", .. }), "{e}");
    assert!(events(&f.store).await.is_empty(), "a refused change is not audited");

    let alice = "alice".parse().unwrap();
    let t = NewToken { person: Some(&alice), ..t };
    f.store.add_token(&t, created()).await.unwrap();
    let row = f.store.token_by_hash("aa").await.unwrap().unwrap();
    assert_eq!((row.role, row.person.as_ref().map(|p| p.as_str())), (Role::User, Some("alice")));
    let e = f.store.add_token(&t, created()).await.unwrap_err();
    assert!(matches!(e, StoreError::Exists { .. }), "{e}");

    let removed = || audit("local:root", AuditAction::TokenRemoved, "ci");
    f.store.remove_token("ci", removed()).await.unwrap();
    assert!(f.store.token_by_hash("aa").await.unwrap().is_none());
    let e = f.store.remove_token("ci", removed()).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
    // The same name again, as an auditor token: it does not inherit alice.
    let t = NewToken { name: "ci", role: Role::Auditor, person: None, sha256_hex: "bb" };
    f.store.add_token(&t, created()).await.unwrap();
    assert_eq!(f.store.token_by_hash("bb").await.unwrap().unwrap().person, None);
    let actions: Vec<AuditAction> = events(&f.store).await.into_iter().map(|e| e.1).collect();
    assert_eq!(
        actions,
        [AuditAction::TokenCreated, AuditAction::TokenRemoved, AuditAction::TokenCreated]
    );
    f.close().await;
}

conformance!(
    every_look_is_decided_and_audited_by_store_look,
    replays_are_audited_once_per_viewer_address_and_session,
    a_failed_audit_write_refuses_the_look,
    audit_fields_are_cleaned_before_they_are_chained,
    user_tokens_name_a_person_and_token_changes_are_audited
);
