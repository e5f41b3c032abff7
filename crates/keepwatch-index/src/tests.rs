//! The indexer against a real store and spool file: what `Store::index_status` reports as a
//! live recording grows a torn chunk at a time, then seals.

use keepwatch_core::{ChannelKind, SessionId, SessionStatus};
use keepwatch_recording::{Event, Pty, RecordingWriter, Seal, SessionStart, TimedEvent};
use keepwatch_store::{
    BlobStore, IndexScope, IndexState, IndexStatus, SearchQuery, SessionRow, Store,
};

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

/// `cat big` at a prompt on channel 0, then `events` output events of 200 lines of hex each
/// (about 10 KB, that do not compress away), flushed into `spool` every 100 events.
fn cat_noise(w: &mut RecordingWriter, spool: &mut keepwatch_store::SpoolWriter, events: u64) {
    open_shell(w);
    for e in [out(2, "$ "), typed(3, "cat big\r"), out(4, "cat big\r\n")] {
        w.push(&e);
    }
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for k in 0..events {
        let text: String = (0..200)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                format!("{x:016x} {:016x} {:016x}\r\n", x.rotate_left(17), x.rotate_left(41))
            })
            .collect();
        w.push(&out(10 + k, &text));
        if k % 100 == 99 {
            append(spool, &w.flush(T0 + 10 + k as i64, false).unwrap());
        }
    }
}

/// Channel 0 opened as an 80x24 shell at 1 µs.
fn open_shell(w: &mut RecordingWriter) {
    let pty = Some(Pty { term: "xterm".into(), cols: 80, rows: 24 });
    w.push(&TimedEvent {
        at_us: 1,
        event: Event::ChannelOpen { channel: 0, kind: ChannelKind::Shell, pty },
    });
}

/// A new live session of alice's in `store`.
async fn session(store: &Store) -> SessionStart {
    let id = SessionId::new();
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
    SessionStart {
        session_id: id,
        user: "alice".into(),
        target: "web01".into(),
        target_host: "127.0.0.1:22".into(),
        target_login: "root".into(),
        client_addr: "127.0.0.1:5000".into(),
        started_at_us: T0,
    }
}

/// A store and blob store in a directory of their own, and a live session of alice's there.
struct Fixture {
    dir: std::path::PathBuf,
    store: Store,
    blobs: BlobStore,
    key: ed25519_dalek::SigningKey,
    id: SessionId,
    start: SessionStart,
}

impl Fixture {
    async fn new(name: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!("keepwatch-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open_sqlite(&dir.join("kw.db")).await.unwrap();
        let blobs = BlobStore::local(&dir).unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let start = session(&store).await;
        Fixture { dir, store, blobs, key, id: start.session_id, start }
    }

    /// Seals the recording `w` wrote into `spool` and moves it into the store.
    async fn seal(&self, w: RecordingWriter, spool: &mut keepwatch_store::SpoolWriter, at: u64) {
        self.seal_session(self.id, w, spool, at).await;
    }

    /// The same for session `id`.
    async fn seal_session(
        &self,
        id: SessionId,
        w: RecordingWriter,
        spool: &mut keepwatch_store::SpoolWriter,
        at: u64,
    ) {
        let ended_at_us = T0 + at as i64;
        let seal =
            Seal { status: SessionStatus::Closed, reason: None, ended_at_us, unsigned_tail: None };
        let (tail, info) = w.seal(at, seal, ended_at_us);
        append(spool, &tail);
        self.store
            .finish_session(id, SessionStatus::Closed, None, &info, ended_at_us, &self.key)
            .await
            .unwrap();
        self.blobs.commit_whole(id).await.unwrap();
    }

    /// Ticks until session `id` is fully indexed (at most 100 ticks).
    async fn tick_until_complete(&self, indexer: &mut Indexer, id: SessionId) -> IndexStatus {
        for _ in 0..100 {
            indexer.tick().await.unwrap();
            let s = status(&self.store, &self.blobs, id).await;
            if s.state == IndexState::Complete {
                return s;
            }
        }
        panic!("not indexed in 100 ticks: {:?}", status(&self.store, &self.blobs, id).await);
    }

    async fn close(self) {
        self.store.close().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_recording_is_indexed_up_to_its_last_whole_chunk_then_completed() {
    let f = Fixture::new("index-status").await;
    let (store, blobs, id) = (&f.store, &f.blobs, f.id);
    let mut spool = blobs.spool().create(id, &[]).unwrap();
    let mut w = RecordingWriter::new(f.start.clone(), f.key.clone());
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
    let s = status(store, blobs, id).await;
    assert_eq!((s.state, s.bytes_indexed, s.updated_at_us), (IndexState::Behind, 0, None));
    assert_eq!(s.bytes_recorded, Some((first.len() + torn.len()) as u64));

    // The torn chunk is read but not counted: only whole chunks are indexed.
    indexer.tick().await.unwrap();
    let s = status(store, blobs, id).await;
    assert_eq!(s.state, IndexState::Behind);
    assert_eq!(s.bytes_indexed, first.len() as u64);
    assert_eq!(s.bytes_recorded, Some((first.len() + torn.len()) as u64));
    assert!(s.updated_at_us.is_some());
    assert_eq!(s.commands, 1, "echo one ended at the next prompt");

    append(&mut spool, rest);
    indexer.tick().await.unwrap();
    let s = status(store, blobs, id).await;
    let whole = (first.len() + second.len()) as u64;
    assert_eq!(
        (s.state, s.bytes_indexed, s.bytes_recorded),
        (IndexState::Behind, whole, Some(whole))
    );
    assert_eq!(s.commands, 2);
    let unfinished = store.index_status(blobs, IndexScope::Unfinished).await.unwrap();
    assert_eq!(unfinished, [s], "a live session is never complete");

    // Sealed and moved into the store: complete, and no longer listed as unfinished.
    f.seal(w, &mut spool, 9).await;
    indexer.tick().await.unwrap();
    let s = status(store, blobs, id).await;
    let all = blobs.recording_len(id).await.unwrap().unwrap();
    assert_eq!(s.session_status, SessionStatus::Closed);
    assert_eq!(
        (s.state, s.bytes_indexed, s.bytes_recorded),
        (IndexState::Complete, all, Some(all))
    );
    assert!(store.index_status(blobs, IndexScope::Unfinished).await.unwrap().is_empty());
    let commands: Vec<String> =
        store.commands(id).await.unwrap().into_iter().map(|c| c.command).collect();
    assert_eq!(commands, ["echo one", "echo two"]);

    // Reindexed where the recording cannot be read (another node's disk): an error, and the
    // index it had is kept.
    let elsewhere = f.dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let unreadable = BlobStore::local(&elsewhere).unwrap();
    assert!(crate::reindex(store, &unreadable, id, &mut |_| {}).await.is_err());
    assert_eq!(store.commands(id).await.unwrap().len(), 2, "the index survives");
    assert_eq!(status(store, blobs, id).await.state, IndexState::Complete);
    f.close().await;
}

/// A database that refuses the indexer's writes (busy, down) for a while costs a live session
/// nothing: what is indexed stays searchable, and once writes succeed again the rows that
/// could not be written are there. The follower used to be dropped and started over, which
/// cleared the session's index first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_keeps_the_index_and_is_made_later() {
    let f = Fixture::new("index-refused").await;
    let (store, blobs, id) = (&f.store, &f.blobs, f.id);
    let mut spool = blobs.spool().create(id, &[]).unwrap();
    let mut w = RecordingWriter::new(f.start.clone(), f.key.clone());
    open_shell(&mut w);
    for e in [out(2, "$ "), typed(3, "echo one\r"), out(4, "echo one\r\none\r\n$ ")] {
        w.push(&e);
    }
    let first = w.flush(T0 + 5, false).unwrap();
    append(&mut spool, &first);
    let mut indexer = Indexer::new(store.clone(), blobs.clone());
    indexer.tick().await.unwrap();
    let commands = |store: &Store| {
        let store = store.clone();
        async move {
            let rows = store.commands(id).await.unwrap();
            rows.into_iter().map(|c| c.command).collect::<Vec<_>>()
        }
    };
    assert_eq!(commands(store).await, ["echo one"]);

    // The database refuses every new command row.
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", f.dir.join("kw.db").display()))
        .await
        .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse BEFORE INSERT ON commands BEGIN SELECT RAISE(ABORT, 'refused'); END",
    )
    .execute(&db)
    .await
    .unwrap();
    for e in [typed(6, "echo two\r"), out(7, "echo two\r\ntwo\r\n$ ")] {
        w.push(&e);
    }
    let second = w.flush(T0 + 8, false).unwrap();
    append(&mut spool, &second);
    for _ in 0..2 {
        let e = indexer.tick().await.expect_err("the write is refused");
        assert!(matches!(e, crate::IndexError::Store(_)), "{e:?}");
        assert_eq!(commands(store).await, ["echo one"], "what was indexed stays");
        let s = status(store, blobs, id).await;
        assert_eq!((s.state, s.bytes_indexed), (IndexState::Behind, first.len() as u64));
    }

    sqlx::query("DROP TRIGGER refuse").execute(&db).await.unwrap();
    db.close().await;
    indexer.tick().await.unwrap();
    assert_eq!(commands(store).await, ["echo one", "echo two"]);
    let s = status(store, blobs, id).await;
    assert_eq!(s.bytes_indexed, (first.len() + second.len()) as u64);
    f.seal(w, &mut spool, 9).await;
    assert_eq!(f.tick_until_complete(&mut indexer, id).await.commands, 2);
    f.close().await;
}

/// A recording whose extraction panics (a bug in the terminal model that a hostile byte
/// stream could hit, planted here) is one session's failure: the tick goes on, the others
/// are indexed, the error is noted on the session, and the session is not followed again
/// from the start every tick (which would clear what was indexed of it and panic again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_extracting_one_recording_is_noted_on_it_and_stops_no_other() {
    let f = Fixture::new("index-panic").await;
    let (store, blobs) = (&f.store, &f.blobs);
    let one_command = |start: SessionStart, command: &str| {
        let id = start.session_id;
        let mut w = RecordingWriter::new(start, f.key.clone());
        let mut spool = blobs.spool().create(id, &[]).unwrap();
        open_shell(&mut w);
        let shown = format!("{command}\r\n$ ");
        for e in [out(2, "$ "), typed(3, &format!("{command}\r")), out(4, &shown)] {
            w.push(&e);
        }
        append(&mut spool, &w.flush(T0 + 5, false).unwrap());
        (w, spool)
    };
    let poisoned = session(store).await;
    let bad = poisoned.session_id;
    let _bad = one_command(poisoned, "echo bad");
    crate::PANIC_IN.lock().unwrap().push(bad);
    let good = f.id;
    let (mut w, mut spool) = one_command(f.start.clone(), "echo good");

    let mut indexer = Indexer::new(store.clone(), blobs.clone());
    indexer.tick().await.expect("one session's panic is not the tick's failure");
    let b = status(store, blobs, bad).await;
    assert_eq!(b.state, IndexState::Error, "{b:?}");
    assert!(b.error.as_deref().is_some_and(|e| e.contains("panic")), "{b:?}");
    assert_eq!(status(store, blobs, good).await.commands, 1);

    for e in [typed(6, "echo again\r"), out(7, "echo again\r\n$ ")] {
        w.push(&e);
    }
    append(&mut spool, &w.flush(T0 + 8, false).unwrap());
    indexer.tick().await.unwrap();
    assert_eq!(status(store, blobs, good).await.commands, 2);
    // Not followed again (that would clear its index and note the panic anew).
    let b2 = status(store, blobs, bad).await;
    assert_eq!((b2.state, b2.updated_at_us), (IndexState::Error, b.updated_at_us), "{b2:?}");
    f.close().await;
}

/// Issue 14: a session prints 50 MB of numbered lines at a prompt. Followed live, a search
/// meanwhile names it as not fully indexed; once sealed, every 10,000th line and the final
/// marker are found, each at a moment its line was on the screen (from the output event
/// before the one that printed it to the one after), as output of the command; `reindex`
/// gives the same answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabytes_of_lines_are_all_found_at_their_moment() {
    /// Lines per output event, and events per recording flush.
    const PER_EVENT: u64 = 2048;
    const PER_FLUSH: u64 = 64;
    let f = Fixture::new("index-50mb").await;
    let (store, blobs, id) = (&f.store, &f.blobs, f.id);
    let mut spool = blobs.spool().create(id, &[]).unwrap();
    let mut w = RecordingWriter::new(f.start.clone(), f.key.clone());
    let pty = Some(Pty { term: "xterm".into(), cols: 80, rows: 24 });
    let open = Event::ChannelOpen { channel: 0, kind: ChannelKind::Shell, pty };
    w.push(&TimedEvent { at_us: 1, event: open });
    let command = "seq 1 2900000 | sed 's/^/KWLINE-/;s/$/:/'";
    for e in [out(2, "$ "), typed(3, &format!("{command}\r")), out(4, &format!("{command}\r\n"))] {
        w.push(&e);
    }
    // Lines 1..=LINES, 2048 per event, event k at 10 + 1000 k µs.
    const LINES: u64 = 2_900_000;
    let at = |event: u64| 10 + 1000 * event;
    let mut indexer = Indexer::new(store.clone(), blobs.clone());
    let (mut printed, mut event) = (0u64, 0u64);
    while printed < LINES {
        let last = (printed + PER_EVENT).min(LINES);
        let text: String = (printed + 1..=last).map(|n| format!("KWLINE-{n}:\r\n")).collect();
        w.push(&out(at(event), &text));
        (printed, event) = (last, event + 1);
        if event % PER_FLUSH == 0 {
            append(&mut spool, &w.flush(T0 + at(event) as i64, false).unwrap());
        }
        if event == PER_FLUSH * 4 {
            // Part of it is indexed: a search meanwhile says the session is behind.
            indexer.tick().await.unwrap();
            let q = SearchQuery { text: "KWLINE-".into(), limit: 5, ..SearchQuery::default() };
            let gaps = store.search_gaps(blobs, &q).await.unwrap();
            assert_eq!((gaps.listed.len(), gaps.total), (1, 1), "{gaps:?}");
            let g = &gaps.listed[0];
            assert_eq!((g.session_id, g.state), (id, IndexState::Behind));
            assert!(g.bytes_indexed > 0 && Some(g.bytes_indexed) <= g.bytes_recorded, "{g:?}");
            assert!(!store.search(&q).await.unwrap().hits.is_empty(), "found while live");
        }
    }
    let done_at = at(event);
    w.push(&out(done_at, "KW-DONE-2\r\n$ "));
    w.push(&typed(done_at + 1, "exit\r"));
    w.push(&out(done_at + 2, "exit\r\n"));
    if let Some(bytes) = w.flush(T0 + done_at as i64, false) {
        append(&mut spool, &bytes);
    }
    f.seal(w, &mut spool, done_at + 3).await;
    f.tick_until_complete(&mut indexer, id).await;
    assert!(store.search_gaps(blobs, &SearchQuery::default()).await.unwrap().is_empty());

    let answers = |store: Store| async move {
        let mut out = Vec::new();
        for n in (10_000..=LINES).step_by(10_000).chain([LINES]) {
            let q =
                SearchQuery { text: format!("KWLINE-{n}:"), limit: 5, ..SearchQuery::default() };
            let answer = store.search(&q).await.unwrap();
            assert!(!answer.stopped_early);
            assert_eq!(answer.hits.len(), 1, "line {n}: {:?}", answer.hits);
            let h = &answer.hits[0];
            assert!(h.in_output, "line {n}");
            assert_eq!(h.snippet, format!("«KWLINE-{n}:»"));
            // Printed by event k = (n - 1) / 2048: the moment is one when the line was on
            // the screen, from the event before (a screenful scrolls off at the next) to
            // the next (the last screenful, read when the prompt came back).
            let k = (n - 1) / PER_EVENT;
            let from = if k == 0 { 4 } else { at(k - 1) };
            assert!((from..=at(k + 1)).contains(&h.offset_us), "line {n} at {}", h.offset_us);
            assert_eq!(h.command.command, command, "line {n}");
            out.push((n, h.offset_us, h.at_us, h.command.seq));
        }
        let q = SearchQuery { text: "kw-done-2".into(), limit: 5, ..SearchQuery::default() };
        let done = store.search(&q).await.unwrap().hits;
        assert_eq!(done.len(), 1, "{done:?}");
        assert!((at(event - 1)..=done_at).contains(&done[0].offset_us), "{:?}", done[0]);
        out.push((0, done[0].offset_us, done[0].at_us, done[0].command.seq));
        out
    };
    let live = answers(store.clone()).await;
    let rows = store.commands(id).await.unwrap();
    crate::reindex(store, blobs, id, &mut |_| {}).await.unwrap();
    assert_eq!(answers(store.clone()).await, live, "reindex answers as live indexing did");
    assert_eq!(store.commands(id).await.unwrap(), rows);
    f.close().await;
}

/// Issue 14: one live session with a 40 MB backlog does not delay another's few commands:
/// the first tick indexes the small one whole and leaves the big one behind (40 MB take the
/// indexer longer than a tick's budget), though the big one is newer (listed first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_in_one_session_does_not_hold_up_another() {
    let f = Fixture::new("index-fair").await;
    let (store, blobs) = (&f.store, &f.blobs);
    let small = f.id;
    let mut light = RecordingWriter::new(f.start.clone(), f.key.clone());
    let mut light_spool = blobs.spool().create(small, &[]).unwrap();
    open_shell(&mut light);
    for e in [out(2, "$ "), typed(3, "echo hi\r"), out(4, "echo hi\r\nhi\r\n$ ")] {
        light.push(&e);
    }
    append(&mut light_spool, &light.flush(T0 + 5, false).unwrap());
    let heavy_start = session(store).await;
    let big = heavy_start.session_id;
    let mut heavy = RecordingWriter::new(heavy_start, f.key.clone());
    let mut heavy_spool = blobs.spool().create(big, &[]).unwrap();
    cat_noise(&mut heavy, &mut heavy_spool, 2_500);

    let mut indexer = Indexer::new(store.clone(), blobs.clone());
    indexer.tick().await.unwrap();
    let s = status(store, blobs, small).await;
    assert_eq!((s.commands, Some(s.bytes_indexed)), (1, s.bytes_recorded), "{s:?}");
    let h = status(store, blobs, big).await;
    assert!(Some(h.bytes_indexed) < h.bytes_recorded, "the big one waits its turn: {h:?}");
    // It gets there in later ticks.
    for _ in 0..100 {
        indexer.tick().await.unwrap();
        let h = status(store, blobs, big).await;
        if Some(h.bytes_indexed) == h.bytes_recorded {
            break;
        }
    }
    let h = status(store, blobs, big).await;
    assert_eq!(Some(h.bytes_indexed), h.bytes_recorded, "{h:?}");
    f.close().await;
}

/// Issue 14: an ended session caught up from its recording (after a restart or an upgrade)
/// takes turns with the live ones like any other: with a 26 MB recording to read again (more
/// than a tick's budget, as in the test above), the first tick indexes a live session's
/// command and leaves the big one behind, and the next tick indexes the live session's next
/// command first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catching_up_a_big_session_does_not_hold_up_a_live_one() {
    let f = Fixture::new("index-catch-up").await;
    let (store, blobs) = (&f.store, &f.blobs);
    let big_start = session(store).await;
    let big = big_start.session_id;
    let mut heavy = RecordingWriter::new(big_start, f.key.clone());
    let mut heavy_spool = blobs.spool().create(big, &[]).unwrap();
    cat_noise(&mut heavy, &mut heavy_spool, 2_500);
    heavy.push(&out(3_000, "KW-BIG-DONE\r\n$ "));
    f.seal_session(big, heavy, &mut heavy_spool, 3_001).await;

    let small = f.id;
    let mut light = RecordingWriter::new(f.start.clone(), f.key.clone());
    let mut light_spool = blobs.spool().create(small, &[]).unwrap();
    open_shell(&mut light);
    for e in [out(2, "$ "), typed(3, "echo one\r"), out(4, "echo one\r\none\r\n$ ")] {
        light.push(&e);
    }
    append(&mut light_spool, &light.flush(T0 + 5, false).unwrap());

    let mut indexer = Indexer::new(store.clone(), blobs.clone());
    indexer.tick().await.unwrap();
    let s = status(store, blobs, small).await;
    assert_eq!((s.commands, Some(s.bytes_indexed)), (1, s.bytes_recorded), "{s:?}");
    let h = status(store, blobs, big).await;
    assert_eq!(h.state, IndexState::Behind, "{h:?}");
    assert!(h.bytes_indexed > 0 && Some(h.bytes_indexed) < h.bytes_recorded, "{h:?}");

    for e in [typed(6, "echo two\r"), out(7, "echo two\r\ntwo\r\n$ ")] {
        light.push(&e);
    }
    append(&mut light_spool, &light.flush(T0 + 8, false).unwrap());
    indexer.tick().await.unwrap();
    let s = status(store, blobs, small).await;
    assert_eq!((s.commands, Some(s.bytes_indexed)), (2, s.bytes_recorded), "{s:?}");
    // (Whether it is done by now depends on the machine's speed.)
    let h2 = status(store, blobs, big).await;
    assert!(h2.bytes_indexed > h.bytes_indexed, "the big one moves on: {h2:?}");

    f.tick_until_complete(&mut indexer, big).await;
    let q = SearchQuery { text: "kw-big-done".into(), limit: 5, ..SearchQuery::default() };
    assert_eq!(store.search(&q).await.unwrap().hits.len(), 1);
    f.close().await;
}

/// After an upgrade that emptied SQLite's output index (migration 0015), the store opens at
/// once and says which sessions' output is not searchable yet; `Indexer::run` gives it back
/// from the stored blocks beside its ticks, after which it is found and nothing is behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_gives_stored_output_back_to_the_index_after_an_upgrade() {
    let f = Fixture::new("index-rebuild").await;
    let (blobs, id) = (&f.blobs, f.id);
    let mut spool = blobs.spool().create(id, &[]).unwrap();
    let mut w = RecordingWriter::new(f.start.clone(), f.key.clone());
    open_shell(&mut w);
    for e in [out(2, "$ "), typed(3, "cat notes\r"), out(4, "cat notes\r\nKW-GIVEN-BACK\r\n$ ")] {
        w.push(&e);
    }
    append(&mut spool, &w.flush(T0 + 5, false).unwrap());
    f.seal(w, &mut spool, 6).await;
    f.tick_until_complete(&mut Indexer::new(f.store.clone(), blobs.clone()), id).await;
    let q = SearchQuery { text: "kw-given-back".into(), limit: 5, ..SearchQuery::default() };
    assert_eq!(f.store.search(&q).await.unwrap().hits.len(), 1);
    f.store.close().await;

    // The store as migration 0015 leaves it: an empty output index, every block to give.
    {
        use sqlx::{ConnectOptions, Connection};
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(f.dir.join("kw.db"))
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql(
            "DROP TABLE output_fts; CREATE VIRTUAL TABLE output_fts USING fts5 (trigrams, \
             content = '', contentless_delete = 1, detail = 'none', tokenize = 'ascii'); \
             CREATE TABLE output_fts_rebuild (next_id INTEGER NOT NULL, last_id INTEGER NOT NULL); \
             INSERT INTO output_fts_rebuild SELECT 0, max(id) FROM output_blocks;",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let store = Store::open_sqlite(&f.dir.join("kw.db")).await.unwrap();
    assert!(store.search(&q).await.unwrap().hits.is_empty());
    assert_eq!(status(&store, blobs, id).await.state, IndexState::Rebuilding);
    let gaps = store.search_gaps(blobs, &q).await.unwrap();
    assert_eq!(gaps.listed.iter().map(|g| g.session_id).collect::<Vec<_>>(), [id]);

    let shutdown = tokio_util::sync::CancellationToken::new();
    let every = std::time::Duration::from_secs(3600);
    let run = tokio::spawn(Indexer::new(store.clone(), blobs.clone()).run(every, shutdown.clone()));
    // The index says when it is done: the session is complete again.
    let given = async {
        while status(&store, blobs, id).await.state != IndexState::Complete {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), given)
        .await
        .expect("the stored output given back within a minute");
    assert_eq!(store.search(&q).await.unwrap().hits.len(), 1);
    assert!(store.search_gaps(blobs, &q).await.unwrap().is_empty());
    shutdown.cancel();
    run.await.unwrap();
    store.close().await;
    let _ = std::fs::remove_dir_all(&f.dir);
}
