//! `search`: a case-insensitive substring of the command line or its output, newest first,
//! with filters, and time bounds that stay right when ids are not in time order (a session
//! indexed after newer ones, as `reindex` does).

use keepwatch_core::{SessionId, SessionStatus};
use keepwatch_store::{CommandRow, IndexProgress, OutputBlock, SearchQuery, SessionRow, Store};

use crate::support::{TestDb, conformance};

pub(crate) const HOUR_US: i64 = 3_600_000_000;
/// 2025-01-01T00:00:00Z.
pub(crate) const T0: i64 = 1_735_689_600_000_000;

/// A session of `person` on `target` whose commands start at `at_us`, one second apart;
/// `"cmd => output"` gives a command its output (in an output block, as the indexer writes
/// it, half a second after the command), an empty command is a screen snapshot.
pub(crate) async fn session(
    store: &Store,
    person: &str,
    target: &str,
    at_us: i64,
    commands: &[&str],
) -> SessionId {
    let id = SessionId::new();
    store
        .insert_session(&SessionRow {
            stated_reason: None,
            protocol: keepwatch_core::Protocol::Ssh,
            id,
            person: person.into(),
            target: target.into(),
            target_host: "127.0.0.1".into(),
            target_login: "root".into(),
            client_addr: "127.0.0.1:1".into(),
            status: SessionStatus::Closed,
            reason: None,
            started_at_us: at_us,
            ended_at_us: None,
            chain_head: None,
            seal_seq: None,
            seal_signature: None,
            node: None,
        })
        .await
        .unwrap();
    let rows: Vec<CommandRow> = commands
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (command, output) = c.split_once(" => ").unwrap_or((c, ""));
            CommandRow {
                seq: i as u32 + 1,
                channel: 0,
                kind: if command.is_empty() { "screen" } else { "shell" }.into(),
                at_us: at_us + i as i64 * 1_000_000,
                start_offset_us: i as u64 * 1_000_000,
                end_offset_us: None,
                command: command.into(),
                prompt: "$ ".into(),
                output: output.into(),
                confidence: "exact".into(),
                output_truncated: false,
                full_screen: command.is_empty(),
                typed: None,
            }
        })
        .collect();
    let blocks: Vec<OutputBlock> = rows
        .iter()
        .filter(|r| !r.output.is_empty())
        .map(|r| {
            let at = r.start_offset_us + 500_000;
            OutputBlock {
                channel: 0,
                at_us: at_us + at as i64,
                start_offset_us: at,
                end_offset_us: at,
                text: format!("{}\n", r.output),
                marks: vec![(0, at)],
            }
        })
        .collect();
    store.add_commands(id, &rows, &blocks, IndexProgress::Complete).await.unwrap();
    id
}

/// Adds `commands` of kinds `kinds` to session `id` (which exists).
pub(crate) async fn session_commands(
    store: &Store,
    id: SessionId,
    commands: &[&str],
    kinds: &[&str],
) {
    let rows: Vec<CommandRow> = commands
        .iter()
        .zip(kinds)
        .enumerate()
        .map(|(i, (c, k))| CommandRow {
            seq: i as u32 + 1,
            channel: 0,
            kind: (*k).into(),
            at_us: T0 + i as i64,
            start_offset_us: i as u64,
            end_offset_us: None,
            command: (*c).into(),
            prompt: "$ ".into(),
            output: String::new(),
            confidence: "exact".into(),
            output_truncated: false,
            full_screen: *k == "screen",
            typed: None,
        })
        .collect();
    store.add_commands(id, &rows, &[], IndexProgress::Complete).await.unwrap();
}

/// The commands `q` finds, newest first, as `person target command`, followed by ` >
/// output line` for a hit in the output the command printed.
pub(crate) async fn check(store: &Store, q: SearchQuery, expected: &[&str]) {
    let hits = store.search(&SearchQuery { limit: 20, ..q.clone() }).await.unwrap().hits;
    let got: Vec<String> = hits
        .iter()
        .map(|h| {
            let mut s = format!("{} {} {}", h.person, h.target, h.command.command);
            if h.in_output {
                s = format!("{s} > {}", h.snippet.replace(['«', '»'], ""));
            }
            s
        })
        .collect();
    assert_eq!(got, expected, "{q:?}");
}

pub(crate) fn text(t: &str) -> SearchQuery {
    SearchQuery { text: t.into(), ..SearchQuery::default() }
}

async fn filters(db: TestDb) {
    let s = &db.store;
    session(s, "alice", "web", T0, &["cat /etc/sudoers", " => top: sudoers open"]).await;
    session(s, "bob", "db", T0 + HOUR_US, &["sudo rm -rf /tmp/x", "ls => sudoers.d"]).await;
    check(
        s,
        text("sudoers"),
        &[
            "bob db ls > sudoers.d",
            // A screen's text, found as output of the command running then.
            "alice web cat /etc/sudoers > top: sudoers open",
            "alice web cat /etc/sudoers",
        ],
    )
    .await;
    check(s, text("-rf"), &["bob db sudo rm -rf /tmp/x"]).await;
    check(
        s,
        SearchQuery { person: Some("alice".into()), ..text("sudoers") },
        &["alice web cat /etc/sudoers > top: sudoers open", "alice web cat /etc/sudoers"],
    )
    .await;
    check(
        s,
        SearchQuery { target: Some("db".into()), ..text("sudoers") },
        &["bob db ls > sudoers.d"],
    )
    .await;
    check(
        s,
        SearchQuery { commands_only: true, ..text("sudoers") },
        &["alice web cat /etc/sudoers"],
    )
    .await;
    check(s, SearchQuery { person: Some("carol".into()), ..text("sudoers") }, &[]).await;
    // Person and target together (on SQLite both are tokens of the output index).
    let bob_db =
        SearchQuery { person: Some("bob".into()), target: Some("db".into()), ..text("sudoers") };
    check(s, bob_db.clone(), &["bob db ls > sudoers.d"]).await;
    check(s, SearchQuery { person: Some("alice".into()), ..bob_db }, &[]).await;
    // Two characters: no trigram, a scan.
    check(s, text("rm"), &["bob db sudo rm -rf /tmp/x"]).await;
    db.close().await;
}

/// Hits are exact substrings, case-insensitively: never a command that merely shares
/// trigrams with the text, and `%`, `_`, `\` and `"` are literal.
async fn exact_substrings_any_case(db: TestDb) {
    let s = &db.store;
    session(
        s,
        "alice",
        "web",
        T0,
        &[
            "echo abcdef",
            "echo defabc",
            "grep 100% /var/log/x",
            "grep 100x /var/log/x",
            "ls a_b",
            "ls axb",
            "echo C:\\Temp",
            "echo \"quoted\" => said \"QUOTED\"",
            "SYSTEMCTL Restart nginx",
        ],
    )
    .await;
    check(s, text("abcdef"), &["alice web echo abcdef"]).await;
    check(s, text("cdefa"), &[]).await;
    check(s, text("100%"), &["alice web grep 100% /var/log/x"]).await;
    check(s, text("a_b"), &["alice web ls a_b"]).await;
    check(s, text("c:\\temp"), &["alice web echo C:\\Temp"]).await;
    check(
        s,
        text("\"quoted\""),
        &["alice web echo \"quoted\" > said \"QUOTED\"", "alice web echo \"quoted\""],
    )
    .await;
    check(s, text("systemctl restart"), &["alice web SYSTEMCTL Restart nginx"]).await;
    check(s, text("RESTART NGINX"), &["alice web SYSTEMCTL Restart nginx"]).await;
    // In the output only.
    check(s, SearchQuery { commands_only: true, ..text("said") }, &[]).await;
    check(s, text("SAID"), &["alice web echo \"quoted\" > said \"QUOTED\""]).await;
    let hits = s.search(&SearchQuery { limit: 5, ..text("restart") }).await.unwrap().hits;
    assert_eq!(hits[0].snippet, "SYSTEMCTL «Restart» nginx");
    db.close().await;
}

/// Any text is a query, whatever bytes it holds (the API takes it from a URL): a NUL, control
/// characters, astral planes and lone combining marks find what holds them or nothing, and
/// never fail the store.
async fn any_text_is_a_query(db: TestDb) {
    let s = &db.store;
    session(s, "alice", "web", T0, &["echo ab\u{1}c \u{10362f}", "printf x"]).await;
    for q in ["\0", "a\0b", "\u{1}", "\u{301}", "%\0_", "\u{10362f}\0", "\u{fffd}", "\\\0"] {
        let hits = s.search(&text(q)).await;
        assert!(hits.is_ok(), "{q:?}: {hits:?}");
    }
    check(s, text("\u{10362f}"), &["alice web echo ab\u{1}c \u{10362f}"]).await;
    check(s, text("b\u{1}c"), &["alice web echo ab\u{1}c \u{10362f}"]).await;
    check(s, text("b\0c"), &[]).await;
    // A NUL in what ran (binary output of an exec) is kept, as U+FFFD, and found by a query
    // holding it; PostgreSQL's text cannot hold the NUL itself.
    session(s, "bob", "db", T0 + HOUR_US, &["cat blob => x\0y\0z"]).await;
    check(s, text("x\0y"), &["bob db cat blob > x\u{fffd}y\u{fffd}z"]).await;
    check(s, text("y\u{fffd}z"), &["bob db cat blob > x\u{fffd}y\u{fffd}z"]).await;
    db.close().await;
}

/// The newest hits, at most `limit`, for a common word.
async fn newest_first_within_the_limit(db: TestDb) {
    let s = &db.store;
    let many: Vec<String> = (0..50).map(|i| format!("echo common-{i:02}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let id = session(s, "alice", "web", T0, &many).await;
    let hits = s.search(&SearchQuery { limit: 3, ..text("common") }).await.unwrap().hits;
    let got: Vec<&str> = hits.iter().map(|h| h.command.command.as_str()).collect();
    assert_eq!(got, ["echo common-49", "echo common-48", "echo common-47"]);
    assert!(hits.iter().all(|h| h.session_id == id));
    let hits = s
        .search(&SearchQuery { limit: 2, session: Some(SessionId::new()), ..text("common") })
        .await
        .unwrap()
        .hits;
    assert!(hits.is_empty());
    db.close().await;
}

async fn time_bounds_cover_a_session_indexed_late(db: TestDb) {
    let s = &db.store;
    // A recent session long enough to span two id blocks, then an old one indexed after
    // it, so the old commands have the highest ids.
    let recent: Vec<String> = (0..1500).map(|i| format!("echo recent-{i}")).collect();
    let recent: Vec<&str> = recent.iter().map(String::as_str).collect();
    session(s, "alice", "web", T0 + 48 * HOUR_US, &recent).await;
    session(s, "bob", "db", T0, &["echo old-1", "echo old-2"]).await;

    let window = |since: i64, until: i64| SearchQuery {
        since_us: Some(since),
        until_us: Some(until),
        ..text("echo")
    };
    check(s, window(T0 - HOUR_US, T0 + HOUR_US), &["bob db echo old-2", "bob db echo old-1"]).await;
    check(
        s,
        SearchQuery { until_us: Some(T0 + HOUR_US), ..text("old-") },
        &["bob db echo old-2", "bob db echo old-1"],
    )
    .await;
    check(
        s,
        window(T0 + 48 * HOUR_US + 1_000_000_000, T0 + 48 * HOUR_US + 1_000_500_000),
        &["alice web echo recent-1000"],
    )
    .await;
    check(s, window(T0 + 10 * HOUR_US, T0 + 20 * HOUR_US), &[]).await;
    check(s, SearchQuery { since_us: Some(T0 + 49 * HOUR_US), ..text("echo") }, &[]).await;
    // Two characters take the scan, with the same bounds.
    check(
        s,
        SearchQuery { since_us: Some(T0 - HOUR_US), until_us: Some(T0 + HOUR_US), ..text("ol") },
        &["bob db echo old-2", "bob db echo old-1"],
    )
    .await;
    db.close().await;
}

/// A session indexed again from scratch leaves no stale hits behind.
async fn cleared_sessions_are_not_found(db: TestDb) {
    let s = &db.store;
    let id = session(s, "alice", "web", T0, &["echo forgotten-word"]).await;
    check(s, text("forgotten-word"), &["alice web echo forgotten-word"]).await;
    s.clear_index(id).await.unwrap();
    check(s, text("forgotten-word"), &[]).await;
    assert!(s.commands(id).await.unwrap().is_empty());
    db.close().await;
}

/// Hits on both sides of PostgreSQL's first window (the newest 8,192 ids, walked in order
/// before one statement searches the older ids, `postgres/search.rs`) come out in order, a
/// limit reached exactly at the boundary stops there, and the rest continue below it; a
/// person filter finds its one command below the window, and another person's hits on both
/// sides of it, newest first. On SQLite there is no window and the
/// answers must be the same.
async fn hits_across_id_windows(db: TestDb) {
    const FIRST_WINDOW: usize = 8192;
    let s = &db.store;
    let n = FIRST_WINDOW + 100;
    // Indexes from the newest: 0 is the last command, FIRST_WINDOW - 1 the oldest in the
    // first window, FIRST_WINDOW the newest below it.
    let needles = [0, 1, FIRST_WINDOW - 1, FIRST_WINDOW, FIRST_WINDOW + 1, n - 1];
    let commands: Vec<String> = (0..n)
        .map(|i| {
            let from_newest = n - 1 - i;
            if needles.contains(&from_newest) {
                format!("echo needle-{from_newest}")
            } else {
                format!("echo filler-{i}")
            }
        })
        .collect();
    let commands: Vec<&str> = commands.iter().map(String::as_str).collect();
    // Bob's one command first: the oldest id, below every window boundary.
    session(s, "bob", "db", T0 - HOUR_US, &["echo needle-bob"]).await;
    session(s, "alice", "web", T0, &commands).await;
    let all: Vec<String> = needles.iter().map(|i| format!("alice web echo needle-{i}")).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();

    let limited = |limit: u32| SearchQuery { limit, ..text("needle-") };
    let found = |answer: keepwatch_store::SearchAnswer| -> Vec<String> {
        answer
            .hits
            .into_iter()
            .map(|h| format!("{} {} {}", h.person, h.target, h.command.command))
            .collect()
    };
    // The limit met exactly by the first window's hits.
    assert_eq!(found(s.search(&limited(3)).await.unwrap()), all[..3]);
    // One past the boundary, then two.
    assert_eq!(found(s.search(&limited(4)).await.unwrap()), all[..4]);
    assert_eq!(found(s.search(&limited(5)).await.unwrap()), all[..5]);
    // Everything, bob's oldest command last.
    let mut everything = all.clone();
    everything.push("bob db echo needle-bob");
    check(s, text("needle-"), &everything).await;
    // A filter that only the oldest command passes, found through every window.
    check(
        s,
        SearchQuery { person: Some("bob".into()), ..text("needle") },
        &["bob db echo needle-bob"],
    )
    .await;
    // A rare text in the oldest window only.
    check(s, text("needle-8291"), &["alice web echo needle-8291"]).await;
    // Filtered (PostgreSQL walks windows of ids over the person's commands): the limit met
    // by the first window, then across the boundary, then everything.
    let alice = |limit: u32| SearchQuery { limit, person: Some("alice".into()), ..text("needle-") };
    assert_eq!(found(s.search(&alice(3)).await.unwrap()), all[..3]);
    assert_eq!(found(s.search(&alice(4)).await.unwrap()), all[..4]);
    assert_eq!(found(s.search(&alice(20)).await.unwrap()), all);
    // Time-bounded (PostgreSQL walks the range of ids the bound's spans give, newest first,
    // the newest FIRST_WINDOW of them apart): every alice command but the newest is within,
    // more than a window's worth, and bob's is before it. The limit met in the first window,
    // across the boundary, and past everything.
    let newest_within = T0 + (n as i64 - 2) * 1_000_000;
    let within = |limit: u32| SearchQuery {
        limit,
        since_us: Some(T0),
        until_us: Some(newest_within),
        ..text("needle-")
    };
    assert_eq!(found(s.search(&within(2)).await.unwrap()), all[1..3]);
    assert_eq!(found(s.search(&within(4)).await.unwrap()), all[1..5]);
    assert_eq!(found(s.search(&within(20)).await.unwrap()), all[1..]);
    // A bound that holds only the oldest of alice's commands, and one only bob's.
    let at =
        |at_us: i64| SearchQuery { since_us: Some(at_us), until_us: Some(at_us), ..text("needle") };
    check(s, at(T0), &["alice web echo needle-8291"]).await;
    check(s, at(T0 - HOUR_US), &["bob db echo needle-bob"]).await;
    db.close().await;
}

/// Output lines are found wherever they are in a long output, one hit per line, newest
/// first, each at the moment its block's marks give it and as output of the command running
/// then; a time bound applies to the line, not the block.
async fn every_output_line_at_its_moment(db: TestDb) {
    let s = &db.store;
    let id = session(s, "alice", "web", T0, &["seq 1 3000", "echo done"]).await;
    // Lines 1..=3000 printed 1 ms apart from 0.1 s on, in blocks of 1000 lines; the
    // second command started at 1 s (so lines from 900 on are dated after it).
    let blocks: Vec<OutputBlock> = (0..3)
        .map(|b| {
            let mut text = String::new();
            let mut marks = Vec::new();
            for line in b * 1000 + 1..=(b + 1) * 1000 {
                marks.push((text.len() as u32, 100_000 + line as u64 * 1000));
                text.push_str(&format!("kwline-{line}\n"));
            }
            OutputBlock {
                channel: 0,
                at_us: T0 + marks[0].1 as i64,
                start_offset_us: marks[0].1,
                end_offset_us: marks.last().unwrap().1,
                text,
                marks,
            }
        })
        .collect();
    s.add_commands(id, &[], &blocks, IndexProgress::Complete).await.unwrap();
    let hits = s.search(&SearchQuery { limit: 20, ..text("kwline-2999") }).await.unwrap().hits;
    assert_eq!(hits.len(), 1);
    let h = &hits[0];
    assert!(h.in_output);
    assert_eq!((h.offset_us, h.at_us), (100_000 + 2_999_000, T0 + 3_099_000));
    assert_eq!((h.command.seq, h.command.command.as_str()), (2, "echo done"));
    assert_eq!(h.snippet, "«kwline-2999»");
    check(s, text("kwline-800"), &["alice web seq 1 3000 > kwline-800"]).await;
    // Newest first, one per line, across blocks.
    let newest = s.search(&SearchQuery { limit: 3, ..text("kwline-") }).await.unwrap().hits;
    let snippets: Vec<&str> = newest.iter().map(|h| h.snippet.as_str()).collect();
    assert_eq!(snippets, ["«kwline-»3000", "«kwline-»2999", "«kwline-»2998"]);
    // The line's own time decides, within a block.
    let window = SearchQuery {
        since_us: Some(T0 + 100_000 + 1_500_000),
        until_us: Some(T0 + 100_000 + 1_502_000),
        ..text("kwline-1")
    };
    let lines = ["1502", "1501", "1500"].map(|n| format!("alice web echo done > kwline-{n}"));
    check(s, window, &lines.each_ref().map(String::as_str)).await;
    db.close().await;
}

/// `n` output blocks of one line each, `line(b)` for block `b`, a millisecond apart from 1 s
/// into the session (block ids follow `b`).
fn one_line_blocks(n: usize, line: impl Fn(usize) -> String) -> Vec<OutputBlock> {
    (0..n)
        .map(|b| {
            let at = 1_000_000 + b as u64 * 1000;
            OutputBlock {
                channel: 0,
                at_us: T0 + at as i64,
                start_offset_us: at,
                end_offset_us: at,
                text: format!("{}\n", line(b)),
                marks: vec![(0, at)],
            }
        })
        .collect()
}

/// Output blocks on both sides of PostgreSQL's first window (the newest 256 blocks, read in
/// id order before the trigram index takes over): a rare text is found in every block that
/// holds it, newest first, and a common one stops at the limit in the newest blocks.
async fn output_hits_across_windows(db: TestDb) {
    let s = &db.store;
    let id = session(s, "alice", "web", T0, &["cat big"]).await;
    let needles = [0usize, 299, 599];
    let blocks = one_line_blocks(600, |b| {
        let line = if needles.contains(&b) { "kwneedle" } else { "filler" };
        format!("{line} {b} common")
    });
    s.add_commands(id, &[], &blocks, IndexProgress::Complete).await.unwrap();
    check(
        s,
        text("kwneedle"),
        &[
            "alice web cat big > kwneedle 599 common",
            "alice web cat big > kwneedle 299 common",
            "alice web cat big > kwneedle 0 common",
        ],
    )
    .await;
    let newest = s.search(&SearchQuery { limit: 3, ..text("common") }).await.unwrap();
    let snippets: Vec<&str> = newest.hits.iter().map(|h| h.snippet.as_str()).collect();
    assert_eq!(snippets, ["kwneedle 599 «common»", "filler 598 «common»", "filler 597 «common»"]);
    db.close().await;
}

/// More hits below PostgreSQL's first window than one statement returns (a page of 256
/// blocks through the trigram index alone, at most 1,024 otherwise): every one found, newest
/// first, up to the limit, filtered or not.
async fn output_hits_over_more_than_a_page(db: TestDb) {
    let s = &db.store;
    let id = session(s, "alice", "web", T0, &["cat big"]).await;
    // The newest 300 blocks hold filler only; the 1,100 below them the text.
    let blocks = one_line_blocks(1400, |b| {
        if b < 1100 { format!("kw-page-marker {b}") } else { format!("filler {b}") }
    });
    s.add_commands(id, &[], &blocks, IndexProgress::Complete).await.unwrap();
    let expected: Vec<String> = (0..1100).rev().map(|b| format!("«kw-page-marker» {b}")).collect();
    for person in [None, Some("alice".to_owned())] {
        let q = SearchQuery { limit: 1100, person: person.clone(), ..text("kw-page-marker") };
        let hits = s.search(&q).await.unwrap().hits;
        let got: Vec<&str> = hits.iter().map(|h| h.snippet.as_str()).collect();
        assert_eq!(got, expected, "{person:?}");
    }
    db.close().await;
}

/// Output time bounds stay right when block ids are not in time order (an old session's
/// output indexed after newer output, over more than one span of 1024 ids) and when a block's
/// lines span hours (its last line, not its first, decides for a late bound).
async fn output_time_bounds_cover_output_indexed_late(db: TestDb) {
    let s = &db.store;
    let recent_at = T0 + 48 * HOUR_US;
    let recent = session(s, "alice", "web", recent_at, &["cat log"]).await;
    // 2,047 blocks: ids 1 to 2,047 (two spans), so the old block starts a span of its own.
    let blocks: Vec<OutputBlock> = (0..2047u64)
        .map(|b| {
            let at = 1_000_000 + b * 1000;
            OutputBlock {
                channel: 0,
                at_us: recent_at + at as i64,
                start_offset_us: at,
                end_offset_us: at,
                text: format!("recent-{b} tick\n"),
                marks: vec![(0, at)],
            }
        })
        .collect();
    s.add_commands(recent, &[], &blocks, IndexProgress::Complete).await.unwrap();
    let old = session(s, "bob", "db", T0, &["tail -f app.log"]).await;
    let first = "old-first tick\n";
    let long = OutputBlock {
        channel: 0,
        at_us: T0 + 1_000_000,
        start_offset_us: 1_000_000,
        end_offset_us: 1_000_000 + 10 * HOUR_US as u64,
        text: format!("{first}old-last tick\n"),
        marks: vec![(0, 1_000_000), (first.len() as u32, 1_000_000 + 10 * HOUR_US as u64)],
    };
    s.add_commands(old, &[], &[long], IndexProgress::Complete).await.unwrap();

    let window = |since: i64, until: i64| SearchQuery {
        since_us: Some(since),
        until_us: Some(until),
        ..text("tick")
    };
    let minute = 60_000_000;
    let ten_hours = T0 + 1_000_000 + 10 * HOUR_US;
    check(
        s,
        window(ten_hours - minute, ten_hours + minute),
        &["bob db tail -f app.log > old-last tick"],
    )
    .await;
    check(
        s,
        SearchQuery { until_us: Some(T0 + HOUR_US), ..text("tick") },
        &["bob db tail -f app.log > old-first tick"],
    )
    .await;
    let middle = recent_at + 1_000_000 + 1_000_000;
    check(
        s,
        window(middle, middle + 2000),
        &[
            "alice web cat log > recent-1002 tick",
            "alice web cat log > recent-1001 tick",
            "alice web cat log > recent-1000 tick",
        ],
    )
    .await;
    check(
        s,
        SearchQuery { since_us: Some(recent_at + 1_000_000 + 2_046_000), ..text("tick") },
        &["alice web cat log > recent-2046 tick"],
    )
    .await;
    check(s, window(T0 + 20 * HOUR_US, T0 + 30 * HOUR_US), &[]).await;
    db.close().await;
}

conformance!(
    output_time_bounds_cover_output_indexed_late,
    output_hits_across_windows,
    output_hits_over_more_than_a_page,
    every_output_line_at_its_moment,
    filters,
    exact_substrings_any_case,
    newest_first_within_the_limit,
    time_bounds_cover_a_session_indexed_late,
    cleared_sessions_are_not_found,
    hits_across_id_windows,
    any_text_is_a_query
);
