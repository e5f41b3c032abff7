//! The indexer against a real store and spool file: what `Store::index_status` reports as a
//! live recording grows a torn chunk at a time, then seals.

use keepwatch_core::{ChannelKind, SessionId, SessionStatus};
use keepwatch_recording::{Event, Pty, RecordingWriter, Seal, SessionStart, TimedEvent};
use keepwatch_store::{BlobStore, IndexScope, IndexState, IndexStatus, SessionRow, Store};

use crate::Indexer;

const T0: i64 = 1_750_000_000_000_000;

fn out(at_us: u64, s: &str) -> TimedEvent {
    TimedEvent { at_us, event: Event::Output { channel: 0, data: s.as_bytes().to_vec() } }
}

fn typed(at_us: u64, s: &str) -> TimedEvent {
    TimedEvent { at_us, event: Event::Input { channel: 0, data: s.as_bytes().to_vec() } }
}

async fn status(store: &Store, blobs: &BlobStore, id: SessionId) -> IndexStatus {
    store.index_status(blobs, IndexScope::Sessions(&[id])).await.unwrap().remove(0)
}

fn append(spool: &mut keepwatch_store::SpoolWriter, bytes: &[u8]) {
    spool.append(bytes, false).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_recording_is_indexed_up_to_its_last_whole_chunk_then_completed() {
    let dir = std::env::temp_dir().join(format!("keepwatch-index-status-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open_sqlite(&dir.join("kw.db")).await.unwrap();
    let blobs = BlobStore::local(&dir).unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let id = SessionId::new();
    let start = SessionStart {
        session_id: id,
        user: "alice".into(),
        target: "web01".into(),
        target_host: "127.0.0.1:22".into(),
        target_login: "root".into(),
        client_addr: "127.0.0.1:5000".into(),
        started_at_us: T0,
    };
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
            status: SessionStatus::Active,
            reason: None,
            started_at_us: T0,
            ended_at_us: None,
            chain_head: None,
            seal_seq: None,
            seal_signature: None,
            node: None,
        })
        .await
        .unwrap();
    let mut spool = blobs.spool().create(id, &[]).unwrap();
    let mut w = RecordingWriter::new(start, key.clone());
    let pty = Some(Pty { term: "xterm".into(), cols: 80, rows: 24 });
    let open = Event::ChannelOpen { channel: 0, kind: ChannelKind::Shell, pty };
    w.push(&TimedEvent { at_us: 1, event: open });
    for e in [out(2, "$ "), typed(3, "echo one\r"), out(4, "echo one\r\none\r\n$ ")] {
        w.push(&e);
    }
    let first = w.flush(T0 + 5, false).unwrap();
    append(&mut spool, &first);
    for e in [typed(6, "echo two\r"), out(7, "echo two\r\ntwo\r\n$ ")] {
        w.push(&e);
    }
    let second = w.flush(T0 + 8, false).unwrap();
    let (torn, rest) = second.split_at(second.len() / 2);
    append(&mut spool, torn);

    let mut indexer = Indexer::new(store.clone(), blobs.clone());
    let s = status(&store, &blobs, id).await;
    assert_eq!((s.state, s.bytes_indexed, s.updated_at_us), (IndexState::Behind, 0, None));
    assert_eq!(s.bytes_recorded, Some((first.len() + torn.len()) as u64));

    // The torn chunk is read but not counted: only whole chunks are indexed.
    indexer.tick().await.unwrap();
    let s = status(&store, &blobs, id).await;
    assert_eq!(s.state, IndexState::Behind);
    assert_eq!(s.bytes_indexed, first.len() as u64);
    assert_eq!(s.bytes_recorded, Some((first.len() + torn.len()) as u64));
    assert!(s.updated_at_us.is_some());
    assert_eq!(s.commands, 1, "echo one ended at the next prompt");

    append(&mut spool, rest);
    indexer.tick().await.unwrap();
    let s = status(&store, &blobs, id).await;
    let whole = (first.len() + second.len()) as u64;
    assert_eq!(
        (s.state, s.bytes_indexed, s.bytes_recorded),
        (IndexState::Behind, whole, Some(whole))
    );
    assert_eq!(s.commands, 2);
    let unfinished = store.index_status(&blobs, IndexScope::Unfinished).await.unwrap();
    assert_eq!(unfinished, [s], "a live session is never complete");

    // Sealed and moved into the store: complete, and no longer listed as unfinished.
    let seal = Seal {
        status: SessionStatus::Closed,
        reason: None,
        ended_at_us: T0 + 10,
        unsigned_tail: None,
    };
    let (tail, info) = w.seal(9, seal, T0 + 10);
    append(&mut spool, &tail);
    store.finish_session(id, SessionStatus::Closed, None, &info, T0 + 10, &key).await.unwrap();
    blobs.commit_whole(id).await.unwrap();
    indexer.tick().await.unwrap();
    let s = status(&store, &blobs, id).await;
    let all = whole + tail.len() as u64;
    assert_eq!(s.session_status, SessionStatus::Closed);
    assert_eq!(
        (s.state, s.bytes_indexed, s.bytes_recorded),
        (IndexState::Complete, all, Some(all))
    );
    assert!(store.index_status(&blobs, IndexScope::Unfinished).await.unwrap().is_empty());
    let commands: Vec<String> =
        store.commands(id).await.unwrap().into_iter().map(|c| c.command).collect();
    assert_eq!(commands, ["echo one", "echo two"]);

    // Reindexed where the recording cannot be read (another node's disk): an error, and the
    // index it had is kept.
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let unreadable = BlobStore::local(&elsewhere).unwrap();
    assert!(crate::reindex(&store, &unreadable, id, &mut |_| {}).await.is_err());
    assert_eq!(store.commands(id).await.unwrap().len(), 2, "the index survives");
    assert_eq!(status(&store, &blobs, id).await.state, IndexState::Complete);
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
