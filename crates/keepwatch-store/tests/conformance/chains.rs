//! The chain-append rule: the ledger and the audit chain stay one unbroken chain when several
//! handles (several gateway processes, the CLI) append at once, because the database, not
//! a lock in one process, serialises the appends; audit ids grow in the order the chain
//! links them.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use keepwatch_core::{AuditAction, SessionId, SessionStatus};
use keepwatch_recording::{SealInfo, audit_chain, ledger};
use keepwatch_store::{NewAudit, SessionRow, Store};

use crate::support::{TestDb, conformance};

const WRITERS: usize = 3;
const EACH: usize = 15;

fn key() -> Arc<SigningKey> {
    Arc::new(SigningKey::from_bytes(&[7; 32]))
}

async fn concurrent_audit_appends_form_one_chain(db: TestDb) {
    let mut handles = vec![db.store.clone().with_audit_key(key())];
    for _ in 1..WRITERS {
        handles.push(db.reopen().await.with_audit_key(key()));
    }
    let tasks = handles.iter().enumerate().map(|(w, store)| async move {
        for i in 0..EACH {
            store
                .audit(NewAudit {
                    actor: format!("writer-{w}"),
                    action: AuditAction::Searched,
                    session_id: None,
                    client_addr: None,
                    detail: format!("event {i}"),
                })
                .await
                .unwrap();
        }
    });
    futures::future::join_all(tasks).await;

    let links = db.store.audit_chain().await.unwrap();
    assert_eq!(links.len(), WRITERS * EACH);
    let verifying = key().verifying_key();
    let mut prev = audit_chain::genesis();
    let mut last_id = 0;
    for l in &links {
        let e = &l.event;
        assert!(e.id > last_id, "ids grow in chain order: {} after {last_id}", e.id);
        last_id = e.id;
        let entry = audit_chain::AuditEntry {
            id: e.id,
            at_us: e.at_us,
            actor: &e.actor,
            action: &e.action,
            session_id: e.session_id.as_deref(),
            client_addr: e.client_addr.as_deref(),
            detail: &e.detail,
        };
        let hash = entry.hash(&prev);
        assert_eq!(
            l.hash.as_deref(),
            Some(hash.as_slice()),
            "event {} links to the one before",
            e.id
        );
        let sig: [u8; 64] = l.signature.clone().unwrap().try_into().unwrap();
        assert!(audit_chain::verify_sig(&verifying, &hash, &sig));
        prev = hash;
    }
    assert_eq!(db.store.audit_head().await.unwrap(), Some((last_id, prev)));
    assert!(db.store.orphaned_audit_links().await.unwrap().is_empty());
    for h in &handles[1..] {
        h.close().await;
    }
    db.close().await;
}

async fn live_session(store: &Store) -> SessionId {
    let id = SessionId::new();
    store
        .insert_session(&SessionRow {
            stated_reason: None,
            protocol: keepwatch_core::Protocol::Ssh,
            id,
            person: "alice".into(),
            target: "web".into(),
            target_host: "h:22".into(),
            target_login: "root".into(),
            client_addr: "c".into(),
            status: SessionStatus::Active,
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

async fn concurrent_ledger_appends_form_one_chain(db: TestDb) {
    let mut handles = vec![db.store.clone()];
    for _ in 1..WRITERS {
        handles.push(db.reopen().await);
    }
    let mut ids = Vec::new();
    for h in &handles {
        let mut mine = Vec::new();
        for _ in 0..EACH {
            mine.push(live_session(h).await);
        }
        ids.push(mine);
    }
    let k = key();
    let tasks = handles.iter().zip(&ids).map(|(store, mine)| {
        let k = k.clone();
        async move {
            for (i, id) in mine.iter().enumerate() {
                let seal = SealInfo {
                    seq: 3,
                    chain_head: [i as u8; 32],
                    signature: [9; 64],
                    sealed_at_us: 1000 + i as i64,
                };
                store
                    .finish_session(*id, SessionStatus::Closed, None, &seal, 2000, &k)
                    .await
                    .unwrap();
            }
        }
    });
    futures::future::join_all(tasks).await;

    let rows = db.store.ledger().await.unwrap();
    assert_eq!(rows.len(), WRITERS * EACH);
    let mut prev = ledger::GENESIS;
    for (n, r) in rows.iter().enumerate() {
        assert_eq!(r.seq, n as u64);
        assert_eq!(r.prev_hash, prev, "entry {n} links to the one before");
        let hash = ledger::entry_hash(&prev, r.seq, &r.session_id, &r.chain_head, r.sealed_at_us);
        assert_eq!(r.hash, hash);
        let sig: [u8; 64] = r.signature.clone().try_into().unwrap();
        assert!(ledger::verify_sig(&k.verifying_key(), &hash, &sig));
        prev = hash;
    }
    assert_eq!(db.store.ledger_head().await.unwrap(), Some((rows.len() as u64, prev)));
    let sealed = db.store.session(ids[0][0]).await.unwrap().unwrap();
    assert_eq!(
        (sealed.status, sealed.seal_seq, sealed.ended_at_us),
        (SessionStatus::Closed, Some(3), Some(2000))
    );
    for h in &handles[1..] {
        h.close().await;
    }
    db.close().await;
}

conformance!(concurrent_audit_appends_form_one_chain, concurrent_ledger_appends_form_one_chain);

/// The event feed's tail: events after an id, oldest first, a page at a time, exactly as
/// stored (an action this version does not know is returned, not an error that would stop
/// the feed).
async fn audit_events_after_pages_oldest_first(db: TestDb) {
    let store = db.store.clone().with_audit_key(key());
    assert!(store.audit_events_after(0, 10).await.unwrap().is_empty());
    for i in 0..5 {
        store
            .audit(NewAudit {
                actor: "alice".into(),
                action: AuditAction::Searched,
                session_id: None,
                client_addr: Some("10.0.0.1".into()),
                detail: format!("event {i}"),
            })
            .await
            .unwrap();
    }
    let first = store.audit_events_after(0, 2).await.unwrap();
    let details: Vec<_> = first.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(details, ["event 0", "event 1"]);
    assert_eq!(first[0].action, "searched");
    assert_eq!(first[0].client_addr.as_deref(), Some("10.0.0.1"));
    let rest = store.audit_events_after(first[1].id, 10).await.unwrap();
    let details: Vec<_> = rest.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(details, ["event 2", "event 3", "event 4"]);
    assert!(rest.windows(2).all(|w| w[0].id < w[1].id));
    let head = store.audit_head().await.unwrap().unwrap().0;
    assert_eq!(head, rest[2].id);
    assert!(store.audit_events_after(head, 10).await.unwrap().is_empty());

    let edit = format!("UPDATE audit_events SET action = 'from_the_future' WHERE id = {head}");
    db.sql(&edit, &edit).await;
    let edited = store.audit_events_after(head - 1, 10).await.unwrap();
    assert_eq!(edited[0].action, "from_the_future");
    db.close().await;
}

conformance!(audit_events_after_pages_oldest_first);
