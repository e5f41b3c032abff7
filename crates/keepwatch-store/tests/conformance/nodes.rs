//! Node ownership (issue 11): registration, heartbeats, fencing, and claiming the sessions
//! of a silent node, one winner per session, the same on every backend.

use keepwatch_core::{NodeId, SessionId, SessionStatus};
use keepwatch_store::{SessionFilter, SessionRow, Store};

use crate::support::{TestDb, conformance};

const T0: i64 = 1_700_000_000_000_000;
const SEC: i64 = 1_000_000;

fn node(name: &str) -> NodeId {
    name.parse().unwrap()
}

async fn session(store: &Store, owner: Option<&NodeId>) -> SessionId {
    let id = SessionId::new();
    let row = SessionRow {
        stated_reason: None,
        protocol: keepwatch_core::Protocol::Ssh,
        id,
        person: "alice".into(),
        target: "web".into(),
        target_host: "10.0.0.5:22".into(),
        target_login: "root".into(),
        client_addr: "192.0.2.1:50000".into(),
        status: SessionStatus::Active,
        reason: None,
        started_at_us: T0,
        ended_at_us: None,
        chain_head: None,
        seal_seq: None,
        seal_signature: None,
        node: owner.cloned(),
    };
    store.insert_session(&row).await.unwrap();
    id
}

async fn owner(store: &Store, id: SessionId) -> Option<NodeId> {
    store.session(id).await.unwrap().unwrap().node
}

async fn heartbeats_fence_a_replaced_instance(db: TestDb) {
    let s = &db.store;
    let a = node("kw-a");
    s.register_node(&a, "first", T0).await.unwrap();
    assert!(s.node_heartbeat(&a, "first", T0 + SEC).await.unwrap());
    // A second process under the same name takes the row over; the first is fenced.
    s.register_node(&a, "second", T0 + 2 * SEC).await.unwrap();
    assert!(!s.node_heartbeat(&a, "first", T0 + 3 * SEC).await.unwrap());
    assert!(s.node_heartbeat(&a, "second", T0 + 3 * SEC).await.unwrap());
    let rows = s.nodes().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].started_at_us, rows[0].heartbeat_at_us), (T0 + 2 * SEC, T0 + 3 * SEC));
}

async fn only_a_lapsed_owner_loses_its_sessions(db: TestDb) {
    let s = &db.store;
    let (a, b, c) = (node("kw-a"), node("kw-b"), node("kw-c"));
    s.register_node(&a, "a", T0).await.unwrap();
    s.register_node(&b, "b", T0 + 20 * SEC).await.unwrap();
    let of_a = session(s, Some(&a)).await;
    let of_b = session(s, Some(&b)).await;
    let before_nodes = session(s, None).await;
    let cutoff = T0 + 10 * SEC; // a last beat at T0: lapsed; b at T0 + 20 s: alive
    // The indexer's view: each node's live sessions.
    let of = |n: &NodeId| SessionFilter { node: Some(n.clone()), ..SessionFilter::active() };
    let ids = |v: Vec<SessionRow>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(s.sessions(&of(&a)).await.unwrap()), [of_a]);
    assert_eq!(ids(s.sessions(&of(&b)).await.unwrap()), [of_b]);

    // A live node's session cannot be claimed; a lapsed node's can, once.
    assert!(!s.claim_session(of_b, Some(&b), &c, Some(cutoff)).await.unwrap());
    assert!(!s.claim_session(of_a, Some(&b), &c, Some(cutoff)).await.unwrap(), "wrong owner");
    assert!(s.claim_session(of_a, Some(&a), &c, Some(cutoff)).await.unwrap());
    assert!(!s.claim_session(of_a, Some(&a), &b, Some(cutoff)).await.unwrap(), "second claimant");
    assert_eq!(owner(s, of_a).await, Some(c.clone()));
    // The node, back, cannot recover what was taken (its own claim finds another owner).
    assert!(!s.claim_session(of_a, Some(&a), &a, None).await.unwrap());
    // A session from before nodes goes to the first node that asks.
    assert!(s.claim_session(before_nodes, None, &b, None).await.unwrap());
    assert!(!s.claim_session(before_nodes, None, &c, None).await.unwrap());
    assert_eq!(owner(s, before_nodes).await, Some(b.clone()));

    // A lapsed node is forgotten only once it owns no active session; a live one never.
    assert!(!s.forget_node(&b, cutoff).await.unwrap());
    assert!(s.forget_node(&a, cutoff).await.unwrap());
    assert!(!s.node_heartbeat(&a, "a", T0 + 30 * SEC).await.unwrap(), "a forgotten node is fenced");
    let names: Vec<String> = s.nodes().await.unwrap().iter().map(|n| n.id.to_string()).collect();
    assert_eq!(names, ["kw-b"]);
    // Sealed sessions cannot be claimed.
    s.register_node(&a, "a2", T0).await.unwrap();
    let sealed = session(s, Some(&a)).await;
    s.end_unsealed_session(sealed, SessionStatus::Interrupted, "test").await.unwrap();
    assert!(!s.claim_session(sealed, Some(&a), &c, Some(cutoff)).await.unwrap());
}

/// Each node catches up the indexing of its own sealed sessions; those of a node that is gone
/// (forgotten) are anyone's, and an unfiltered catch-up (`keepwatch index`) sees them all.
async fn each_node_catches_up_its_own_sealed_sessions(db: TestDb) {
    let s = &db.store;
    let (a, b) = (node("kw-a"), node("kw-b"));
    s.register_node(&a, "a", T0).await.unwrap();
    s.register_node(&b, "b", T0).await.unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let mut sealed = Vec::new();
    for owner in [Some(&a), Some(&b), None] {
        let id = session(s, owner).await;
        let seal = keepwatch_recording::SealInfo {
            seq: 1,
            chain_head: [5; 32],
            signature: [6; 64],
            sealed_at_us: T0,
        };
        s.finish_session(id, SessionStatus::Closed, None, &seal, T0 + 1, &key).await.unwrap();
        sealed.push(id);
    }
    let [of_a, of_b, before_nodes] = sealed[..] else { unreachable!() };
    let to_index = |n: Option<NodeId>| async move {
        let mut v = s.sessions_to_index(10, n.as_ref()).await.unwrap();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<SessionId>| {
        v.sort();
        v
    };
    assert_eq!(to_index(Some(a.clone())).await, sorted(vec![of_a, before_nodes]));
    assert_eq!(to_index(Some(b.clone())).await, sorted(vec![of_b, before_nodes]));
    assert_eq!(to_index(None).await, sorted(vec![of_a, of_b, before_nodes]));
    // b dies and is forgotten: its sealed sessions are a's to catch up.
    assert!(s.forget_node(&b, T0 + SEC).await.unwrap());
    assert_eq!(to_index(Some(a.clone())).await, sorted(vec![of_a, of_b, before_nodes]));
}

/// Heartbeats are stamped with the database's clock: on this host it is the same clock as
/// the process's, within a moment.
async fn the_database_clock_is_a_clock(db: TestDb) {
    let before = keepwatch_store::now_us();
    let at = db.store.clock_us().await.unwrap();
    let after = keepwatch_store::now_us();
    assert!(before - SEC <= at && at <= after + SEC, "{before} {at} {after}");
}

conformance!(
    heartbeats_fence_a_replaced_instance,
    only_a_lapsed_owner_loses_its_sessions,
    each_node_catches_up_its_own_sealed_sessions,
    the_database_clock_is_a_clock
);
