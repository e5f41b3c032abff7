//! Console logins in the database (issue 11): one node's login is another's, expiry and the
//! per-person cap are the same on every backend, and an expired login is gone for good.

use keepwatch_core::Role;
use keepwatch_store::{WebLoginLimits, WebLoginRow};

use crate::support::{TestDb, conformance};

const T0: i64 = 1_700_000_000_000_000;
const SEC: i64 = 1_000_000;

const LIMITS: WebLoginLimits =
    WebLoginLimits { idle_us: 60 * SEC, lifetime_us: 3600 * SEC, per_person: 2 };

fn login(person: &str, at: i64) -> WebLoginRow {
    WebLoginRow {
        person: person.parse().unwrap(),
        role: Role::Auditor,
        person_created_at_us: T0 - SEC,
        csrf: format!("csrf-{person}-{at}"),
        started_at_us: at,
        last_seen_at_us: at,
    }
}

async fn a_login_is_found_touched_and_removed(db: TestDb) {
    let s = &db.store;
    s.add_web_login("h1", &login("alice", T0), LIMITS).await.unwrap();
    assert!(s.web_login("nope", T0, LIMITS).await.unwrap().is_none());
    // Seen within the touch interval: not written again.
    let got = s.web_login("h1", T0 + SEC, LIMITS).await.unwrap().unwrap();
    assert_eq!(got, login("alice", T0));
    // Later it is marked seen, so it outlives its first idle deadline.
    let got = s.web_login("h1", T0 + 50 * SEC, LIMITS).await.unwrap().unwrap();
    assert_eq!(got.last_seen_at_us, T0 + 50 * SEC);
    assert!(s.web_login("h1", T0 + 100 * SEC, LIMITS).await.unwrap().is_some());
    // A second store on the same database (another node) sees it too.
    let other = db.reopen().await;
    assert!(other.web_login("h1", T0 + 101 * SEC, LIMITS).await.unwrap().is_some());
    other.remove_web_login("h1").await.unwrap();
    assert!(s.web_login("h1", T0 + 102 * SEC, LIMITS).await.unwrap().is_none());
    assert_eq!(s.web_login_count().await.unwrap(), 0);
    let dup = s.add_web_login("h2", &login("bob", T0), LIMITS).await;
    assert!(dup.is_ok());
    let dup = s.add_web_login("h2", &login("bob", T0 + SEC), LIMITS).await;
    assert!(matches!(dup, Err(keepwatch_store::StoreError::Exists { .. })), "{dup:?}");
}

async fn idle_and_lifetime_expiry_delete_the_login(db: TestDb) {
    let s = &db.store;
    s.add_web_login("idle", &login("alice", T0), LIMITS).await.unwrap();
    assert!(s.web_login("idle", T0 + 61 * SEC, LIMITS).await.unwrap().is_none());
    // Gone, not just refused: a clock set back later does not revive it.
    assert!(s.web_login("idle", T0, LIMITS).await.unwrap().is_none());
    s.add_web_login("old", &login("bob", T0), LIMITS).await.unwrap();
    let mut at = T0;
    while at < T0 + 3600 * SEC - 30 * SEC {
        at += 30 * SEC;
        assert!(
            s.web_login("old", at, LIMITS).await.unwrap().is_some(),
            "at +{}s",
            (at - T0) / SEC
        );
    }
    assert!(s.web_login("old", T0 + 3600 * SEC, LIMITS).await.unwrap().is_none());
    // A new login sweeps the expired ones of everyone.
    s.add_web_login("c1", &login("carol", T0), LIMITS).await.unwrap();
    s.add_web_login("c2", &login("dave", T0 + 4000 * SEC), LIMITS).await.unwrap();
    assert_eq!(s.web_login_count().await.unwrap(), 1);
}

async fn a_person_keeps_only_their_most_recent_logins(db: TestDb) {
    let s = &db.store;
    s.add_web_login("a1", &login("alice", T0), LIMITS).await.unwrap();
    s.add_web_login("a2", &login("alice", T0 + SEC), LIMITS).await.unwrap();
    s.add_web_login("b1", &login("bob", T0 + SEC), LIMITS).await.unwrap();
    // a1 is used again, so a2 is now the least recently used and makes way.
    assert!(s.web_login("a1", T0 + 20 * SEC, LIMITS).await.unwrap().is_some());
    s.add_web_login("a3", &login("alice", T0 + 21 * SEC), LIMITS).await.unwrap();
    let now = T0 + 22 * SEC;
    assert!(s.web_login("a1", now, LIMITS).await.unwrap().is_some());
    assert!(s.web_login("a2", now, LIMITS).await.unwrap().is_none());
    assert!(s.web_login("a3", now, LIMITS).await.unwrap().is_some());
    assert!(s.web_login("b1", now, LIMITS).await.unwrap().is_some(), "bob's login is his own");
}

conformance!(
    a_login_is_found_touched_and_removed,
    idle_and_lifetime_expiry_delete_the_login,
    a_person_keeps_only_their_most_recent_logins
);
