//! The transcript (issue 14): every line the screen showed, once, with a moment it was on the
//! screen, whatever scrolled past, was cleared or rewrapped, and whether or not a prompt was
//! ever recognised.

use keepwatch_terminal::{CommandExtractor, ExtractorConfig};

fn extractor(cols: u16, rows: u16) -> CommandExtractor {
    CommandExtractor::new(ExtractorConfig { cols, rows, ..ExtractorConfig::default() })
}

/// The transcript as `time|line` for each line.
fn lines(pieces: &[(u64, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (at, text) in pieces {
        out.extend(text.lines().map(|l| format!("{at}|{l}")));
    }
    out
}

#[test]
fn lines_that_scroll_past_in_small_writes_are_all_there_once() {
    let mut ex = extractor(80, 5);
    let mut all = Vec::new();
    for i in 1..=50u64 {
        ex.output(i, format!("line-{i}\r\n").as_bytes());
        all.extend(ex.drain_transcript());
    }
    ex.finish();
    all.extend(ex.drain_transcript());
    let got = lines(&all);
    assert_eq!(got.len(), 50, "{got:?}");
    for (i, line) in got.iter().enumerate() {
        let n = i as u64 + 1;
        let (at, text) = line.split_once('|').unwrap();
        assert_eq!(text, format!("line-{n}"));
        // Scrolled off when line n + 4 came: it was on the screen at the write before.
        let at: u64 = at.parse().unwrap();
        assert!(at >= n && at <= n + 4, "{line}");
    }
}

#[test]
fn a_cleared_screen_and_a_resize_lose_nothing() {
    let mut ex = extractor(20, 10);
    ex.output(1, b"$ ");
    ex.input(2, b"cat notes\r");
    ex.output(3, b"cat notes\r\nsecret plan A\r\nsecret plan B\r\n$ ");
    ex.input(4, b"clear\r");
    ex.output(5, b"clear\r\n\x1b[H\x1b[2J\x1b[3J$ ");
    ex.output(6, b"a line longer than twenty columns, wrapped\r\n$ ");
    ex.resize(7, 10, 10);
    ex.output(8, b"after\r\n$ ");
    ex.finish();
    let text: String = ex.drain_transcript().into_iter().map(|(_, t)| t).collect();
    assert_eq!(text.matches("secret plan A").count(), 1, "{text}");
    assert_eq!(text.matches("secret plan B").count(), 1, "{text}");
    assert!(text.contains("$ cat notes\n"), "{text}");
    assert_eq!(text.matches("a line longer than twenty columns, wrapped").count(), 1, "{text}");
    assert!(text.contains("after\n"), "{text}");
}

#[test]
fn bulk_output_skipped_by_the_fast_path_is_in_the_transcript() {
    let mut ex = extractor(80, 24);
    ex.output(1, b"$ ");
    ex.input(2, b"seq 1 100000\r");
    ex.output(3, b"seq 1 100000\r\n");
    let mut all = Vec::new();
    let mut n = 0;
    for t in 0..100u64 {
        let chunk: String = (0..1000)
            .map(|_| {
                n += 1;
                format!("{n}\r\n")
            })
            .collect();
        ex.output(10 + t, chunk.as_bytes());
        all.extend(ex.drain_transcript());
    }
    ex.output(200, b"$ ");
    ex.finish();
    all.extend(ex.drain_transcript());
    let text: String = all.iter().map(|(_, t)| t.as_str()).collect();
    let numbers: Vec<u64> = text.lines().filter_map(|l| l.parse().ok()).collect();
    assert_eq!(numbers, (1..=100_000).collect::<Vec<_>>());
}
