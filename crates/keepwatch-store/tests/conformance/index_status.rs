//! `index_status`: each state a session's index can be in, with the bytes it covers, from
//! one table of sessions.

use keepwatch_core::{SessionId, SessionStatus};
use keepwatch_store::{
    BlobStore, IndexGaps, IndexProgress, IndexScope, SearchQuery, SessionRow, Store, StoreError,
};

use crate::support::{TestDb, conformance};

struct Env<'a> {
    store: &'a Store,
    blobs: BlobStore,
    dir: &'a std::path::Path,
}

impl<'a> Env<'a> {
    fn new(db: &'a TestDb) -> Env<'a> {
        let blobs = BlobStore::local(db.dir()).unwrap();
        Env { store: &db.store, blobs, dir: db.dir() }
    }

    /// A session started at `at` (its name's place in the table) with a recording of
    /// `recorded` bytes in the spool (live) or the store (ended), or none.
    async fn session(&self, at: i64, status: SessionStatus, recorded: Option<usize>) -> SessionId {
        let id = SessionId::new();
        self.store
            .insert_session(&SessionRow {
                stated_reason: None,
                protocol: keepwatch_core::Protocol::Ssh,
                id,
                person: "alice".into(),
                target: "web01".into(),
                target_host: "127.0.0.1".into(),
                target_login: "root".into(),
                client_addr: "127.0.0.1:1".into(),
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
        if let Some(len) = recorded {
            let dir = if status == SessionStatus::Active { "spool" } else { "recordings" };
            std::fs::write(self.dir.join(dir).join(format!("{id}.kwr")), vec![0u8; len]).unwrap();
        }
        id
    }

    /// The status of `scope`, one line per session: name, session status, index state,
    /// bytes indexed / recorded, commands, and whether an update time and an error are set.
    async fn check(&self, names: &[(SessionId, &str)], scope: IndexScope<'_>, expected: &[&str]) {
        let got: Vec<String> = self
            .store
            .index_status(&self.blobs, scope)
            .await
            .unwrap()
            .iter()
            .map(|s| {
                let name = names.iter().find(|(id, _)| *id == s.session_id).unwrap().1;
                let recorded = s.bytes_recorded.map_or("-".into(), |b| b.to_string());
                format!(
                    "{name} {} {} {}/{recorded} commands={} updated={} error={}",
                    s.session_status.as_str(),
                    s.state.as_str(),
                    s.bytes_indexed,
                    s.commands,
                    s.updated_at_us.is_some(),
                    s.error.as_deref().unwrap_or("-"),
                )
            })
            .collect();
        assert_eq!(got, expected);
    }
}

async fn each_state_with_the_bytes_it_covers(db: TestDb) {
    let env = Env::new(&db);
    let s = &env.store;
    let never = env.session(1, SessionStatus::Closed, Some(300)).await;
    let live = env.session(2, SessionStatus::Active, Some(250)).await;
    let done = env.session(3, SessionStatus::Closed, Some(400)).await;
    let failed = env.session(4, SessionStatus::Closed, Some(50)).await;
    let lost = env.session(5, SessionStatus::Interrupted, None).await;
    let names =
        [(never, "never"), (live, "live"), (done, "done"), (failed, "failed"), (lost, "lost")];

    s.add_commands(live, &[], &[], IndexProgress::Partial { bytes: 100 }).await.unwrap();
    s.add_commands(done, &[], &[], IndexProgress::Partial { bytes: 120 }).await.unwrap();
    s.add_commands(done, &[], &[], IndexProgress::Complete).await.unwrap();
    s.add_commands(failed, &[], &[], IndexProgress::Partial { bytes: 20 }).await.unwrap();
    s.set_index_error(failed, "recording of session x cannot be read: bad magic").await.unwrap();

    env.check(
        &names,
        IndexScope::Unfinished,
        &[
            "never closed behind 0/300 commands=0 updated=false error=-",
            "live active behind 100/250 commands=0 updated=true error=-",
            "failed closed error 20/50 commands=0 updated=true \
             error=recording of session x cannot be read: bad magic",
            "lost interrupted behind 0/- commands=0 updated=false error=-",
        ],
    )
    .await;
    // A search names the sessions whose index is not complete, within its own filters.
    let blobs = &env.blobs;
    let gaps = |q: SearchQuery| async move {
        let gaps = s.search_gaps(blobs, &q).await.unwrap();
        assert_eq!(gaps.total, gaps.listed.len() as u64);
        gaps.listed
            .iter()
            .map(|g| names.iter().find(|(id, _)| *id == g.session_id).unwrap().1)
            .collect::<Vec<_>>()
    };
    let all = SearchQuery { text: "x".into(), ..SearchQuery::default() };
    assert_eq!(gaps(all.clone()).await, ["never", "live", "failed", "lost"]);
    assert_eq!(gaps(SearchQuery { session: Some(live), ..all.clone() }).await, ["live"]);
    assert!(gaps(SearchQuery { person: Some("nobody".into()), ..all.clone() }).await.is_empty());
    assert!(gaps(SearchQuery { tag: Some("incident".into()), ..all.clone() }).await.is_empty());
    // Named sessions come in the order asked, complete ones included.
    env.check(
        &names,
        IndexScope::Sessions(&[done, live]),
        &[
            "done closed complete 400/400 commands=0 updated=true error=-",
            "live active behind 100/250 commands=0 updated=true error=-",
        ],
    )
    .await;

    // The live recording grows: the status follows it without the indexer writing.
    let spool = env.dir.join("spool").join(format!("{live}.kwr"));
    std::fs::write(&spool, vec![0u8; 900]).unwrap();
    env.check(
        &names,
        IndexScope::Sessions(&[live]),
        &["live active behind 100/900 commands=0 updated=true error=-"],
    )
    .await;
    // A later piece replaces the progress; starting over forgets it.
    s.add_commands(live, &[], &[], IndexProgress::Partial { bytes: 900 }).await.unwrap();
    env.check(
        &names,
        IndexScope::Sessions(&[live]),
        &["live active behind 900/900 commands=0 updated=true error=-"],
    )
    .await;
    s.clear_index(live).await.unwrap();
    env.check(
        &names,
        IndexScope::Sessions(&[live]),
        &["live active behind 0/900 commands=0 updated=false error=-"],
    )
    .await;
    // An indexed session that succeeds again loses its error.
    s.add_commands(failed, &[], &[], IndexProgress::Complete).await.unwrap();
    env.check(
        &names,
        IndexScope::Sessions(&[failed]),
        &["failed closed complete 50/50 commands=0 updated=true error=-"],
    )
    .await;

    let unknown = SessionId::new();
    let err = s.index_status(&env.blobs, IndexScope::Sessions(&[unknown])).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { kind: "session", .. }), "{err}");
    drop(env);
    db.close().await;
}

/// After an upgrade every session is indexed again: a search lists the oldest
/// `IndexGaps::LISTED` of them (each costs a look at its recording) and counts the rest.
async fn a_search_lists_a_bounded_number_of_gaps(db: TestDb) {
    let env = Env::new(&db);
    let s = &env.store;
    let n = IndexGaps::LISTED + 5;
    let mut ids = Vec::with_capacity(n);
    for at in 0..n {
        ids.push(env.session(at as i64 + 1, SessionStatus::Closed, None).await);
    }
    let q = SearchQuery { text: "x".into(), ..SearchQuery::default() };
    let gaps = s.search_gaps(&env.blobs, &q).await.unwrap();
    assert_eq!(gaps.total, n as u64);
    let listed: Vec<SessionId> = gaps.listed.iter().map(|g| g.session_id).collect();
    assert_eq!(listed, ids[..IndexGaps::LISTED], "the oldest, oldest first");
    // One indexed whole drops out of both.
    s.add_commands(ids[0], &[], &[], IndexProgress::Complete).await.unwrap();
    let gaps = s.search_gaps(&env.blobs, &q).await.unwrap();
    assert_eq!((gaps.total, gaps.listed[0].session_id), (n as u64 - 1, ids[1]));
    drop(env);
    db.close().await;
}

conformance!(each_state_with_the_bytes_it_covers, a_search_lists_a_bounded_number_of_gaps);
