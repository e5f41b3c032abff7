//! `Store::copy_into` (`keepwatch migrate`): an SQLite store copied into an empty PostgreSQL
//! database reads back the same, its chains intact, and a non-empty target is refused.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use keepwatch_core::{AuditAction, GrantPolicy, PersonName, Role, SessionStatus};
use keepwatch_recording::SealInfo;
use keepwatch_store::{
    AuditFilter, ContentCapture, Database, NewAudit, NewToken, SearchQuery, SessionFilter, Store,
    TransferFilter,
};

use crate::search::{T0, check, session, text};
use crate::support::{Backend, TestDb, postgres_database};

/// Everything a store holds, as text, to compare two stores.
async fn dump(s: &Store) -> Vec<String> {
    let mut out = Vec::new();
    for p in s.people().await.unwrap() {
        out.push(format!("{p:?}"));
    }
    for t in s.targets().await.unwrap() {
        out.push(format!("{t:?}"));
        for p in s.people().await.unwrap() {
            out.push(format!("{:?}", s.grant_policy(&p.name, &t.name).await.unwrap()));
        }
    }
    for l in s.session_listings(&SessionFilter::default()).await.unwrap() {
        out.push(format!("{l:?}"));
        out.push(format!("{:?}", s.commands(l.session.id).await.unwrap()));
    }
    out.push(format!("{:?}", s.transfers(&TransferFilter::default()).await.unwrap()));
    out.push(format!("{:?}", s.ledger().await.unwrap()));
    out.push(format!("{:?}", s.audit_chain().await.unwrap()));
    out.push(format!("{:?}", s.tokens().await.unwrap()));
    out
}

#[tokio::test]
async fn sqlite_copies_into_postgres_row_for_row() {
    let key = Arc::new(SigningKey::from_bytes(&[3; 32]));
    let src = TestDb::new(Backend::Sqlite).await;
    let s = src.store.clone().with_audit_key(key.clone());
    s.add_person("alice", Role::User, Some("hash"), &["k1".into(), "k2".into()]).await.unwrap();
    s.add_person("bob", Role::Auditor, None, &[]).await.unwrap();
    s.set_person_disabled("bob", true).await.unwrap();
    s.add_target(&keepwatch_store::NewTarget {
        require_reason: false,
        database: None,
        protocol: keepwatch_core::Protocol::Ssh,
        name: "web".into(),
        host: "h".into(),
        port: 22,
        login: "root".into(),
        secret: keepwatch_store::TargetSecret::Password(vec![0, 159, 255]),
        host_key: Some("ssh-ed25519 AAAA".into()),
        trust_on_first_use: false,
        on_recording_failure: keepwatch_core::RecordingFailure::Close,
        algorithms: Default::default(),
    })
    .await
    .unwrap();
    let policy = GrantPolicy { capture_content: Some(7), ..GrantPolicy::default() };
    s.grant("alice", "web", &policy).await.unwrap();
    let id = session(&s, "alice", "web", T0, &["cat /etc/passwd => root:x:0:0"]).await;
    let t = s
        .add_transfer(&keepwatch_store::TransferRow {
            id: 0,
            session_id: id,
            channel: 1,
            at_us: T0,
            protocol: "scp".into(),
            path: "/tmp/f".into(),
            upload: false,
            bytes: 3,
            size: None,
            sha256: None,
            complete: false,
            ranges: vec![(0, 1), (2, 3)],
            capture: None,
        })
        .await
        .unwrap();
    s.record_capture(t, &ContentCapture::Skipped { reason: "partial".into() }).await.unwrap();
    let seal = SealInfo { seq: 1, chain_head: [5; 32], signature: [6; 64], sealed_at_us: T0 };
    s.finish_session(id, SessionStatus::Closed, None, &seal, T0 + 1, &key).await.unwrap();
    let alice: PersonName = "alice".parse().unwrap();
    let audit = |action| NewAudit {
        actor: "local:root".into(),
        action,
        session_id: Some(id),
        client_addr: None,
        detail: "d".into(),
    };
    let tok = NewToken { name: "ci", role: Role::User, person: Some(&alice), sha256_hex: "ff" };
    s.add_token(&tok, audit(AuditAction::TokenCreated)).await.unwrap();
    s.audit(audit(AuditAction::SessionViewed)).await.unwrap();
    let tags = keepwatch_core::parse_tags(&["incident-42"]).unwrap();
    let tagging = keepwatch_store::TagChange {
        session: id,
        tags: &tags,
        actor: "local:root",
        client_addr: None,
    };
    s.add_session_tags(&tagging).await.unwrap();

    let (url, _guard) = postgres_database().await;
    let db = Database::Postgres(url);
    assert!(Store::is_empty_database(&db).await.unwrap());
    let dst = Store::open(&db).await.unwrap().with_audit_key(key.clone());
    assert!(Store::is_empty_database(&db).await.unwrap(), "the schema alone is still empty");
    let mut seen = Vec::new();
    let report = s.copy_into(&dst, "local:root", &mut |p| seen.push(p)).await.unwrap();
    assert_eq!(
        seen.last().map(|p| (p.rows, p.total)),
        Some((report.tables.iter().map(|t| t.1).sum(), report.tables.iter().map(|t| t.1).sum()))
    );
    assert!(
        report.tables.contains(&("commands", 1))
            && report.tables.contains(&("person_keys", 2))
            && report.tables.contains(&("session_tags", 1))
    );

    let (before, mut after) = (dump(&s).await, dump(&dst).await);
    // The copy's chain has one more event: the migration itself, chained to the copied head.
    let events = dst.audit_events(&AuditFilter::default()).await.unwrap();
    assert_eq!(events[0].action, AuditAction::StoreMigrated);
    let chain = dst.audit_chain().await.unwrap();
    assert_eq!(chain.len(), s.audit_chain().await.unwrap().len() + 1);
    let last = after.iter().position(|l| l.contains("store_migrated")).unwrap();
    after[last] = format!("{:?}", &chain[..chain.len() - 1]);
    assert_eq!(before, after);
    // Ids go on after the copied ones; search finds copied commands.
    let next = dst.add_transfer(&dst.transfer(t).await.unwrap().unwrap()).await.unwrap();
    assert!(next > t);
    check(&dst, text("ROOT:X"), &["alice web cat /etc/passwd > root:x:0:0"]).await;
    // The copy's output time spans are rebuilt: a time-bounded search finds the output.
    let hour =
        SearchQuery { since_us: Some(T0), until_us: Some(T0 + 3_600_000_000), ..text("root:x") };
    check(&dst, hour, &["alice web cat /etc/passwd > root:x:0:0"]).await;
    assert_eq!(
        dst.search(&SearchQuery { limit: 5, ..text("passwd") }).await.unwrap().hits.len(),
        1
    );

    assert!(!Store::is_empty_database(&db).await.unwrap());
    let again = s.copy_into(&dst, "local:root", &mut |_| {}).await;
    assert!(again.is_err(), "copying twice collides");
    dst.close().await;
    src.close().await;
}
