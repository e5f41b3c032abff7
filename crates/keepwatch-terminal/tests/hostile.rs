//! Garbage and hostile streams: the extractor neither panics nor grows without bound, and still finds the next command.

use expect_test::{Expect, expect};
use keepwatch_terminal::{CommandExtractor, ExtractorConfig};

enum Ev<'a> {
    Out(&'a [u8]),
    In(&'a [u8]),
    Resize(u16, u16),
}

use Ev::{In, Out, Resize};

/// Feeds the events (time = index), then a plain `$ ` prompt, `echo ok` and
/// the next prompt, and renders every command extracted.
fn check(cfg: ExtractorConfig, events: &[Ev<'_>], expect: Expect) {
    let mut ex = CommandExtractor::new(cfg);
    let mut t = 0;
    let tail = [
        Out(b"\r\n$ "),
        In(b"e"),
        Out(b"e"),
        In(b"cho ok"),
        Out(b"cho ok"),
        In(b"\r"),
        Out(b"\r\nok\r\n$ "),
    ];
    for ev in events.iter().chain(tail.iter()) {
        t += 1;
        match ev {
            Out(d) => ex.output(t, d),
            In(d) => ex.input(t, d),
            Resize(c, r) => ex.resize(t, *c, *r),
        }
    }
    let mut out = String::new();
    for c in ex.finish() {
        let text: String = c.text.chars().take(40).collect();
        let output: String = c.output.chars().take(40).collect();
        out += &format!(
            "{text:?} ({} bytes) {} output={output:?} ({} bytes{})\n",
            c.text.len(),
            c.confidence.as_str(),
            c.output.len(),
            if c.output_truncated { ", truncated" } else { "" }
        );
    }
    out += &format!("screen tail: {:?}", ex.screen_text().lines().last().unwrap_or(""));
    expect.assert_eq(&out);
}

#[test]
fn invalid_utf8_and_unterminated_sequences() {
    check(
        ExtractorConfig::default(),
        &[
            Out(b"\xff\xfe\xc3"),
            Out(b"\x28 split \xe2\x82"),
            Out(b"\xac euro\r\n"),
            Out(b"\x1b]0;never terminated title "),
            Out(&[b'x'; 100_000]),
            Out(b"\x07\x1b[1;2;3;4;5;6;7;8;9;10;11;12;13;14;15;16;17;18;19;20;21"),
            Out(b"\x1bP unterminated dcs"),
            Out(b"\x1b\\"),
        ],
        expect![[r#"
            "echo ok" (7 bytes) exact output="ok" (2 bytes)
            screen tail: "$""#]],
    );
}

#[test]
fn ten_megabyte_line() {
    let line = vec![b'a'; 10 << 20];
    check(
        ExtractorConfig::default(),
        &[Out(b"$ "), In(b"cat big\r"), Out(b"cat big\r\n"), Out(&line)],
        expect![[r#"
            "cat big" (7 bytes) exact output="aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" (65536 bytes, truncated)
            "echo ok" (7 bytes) exact output="ok" (2 bytes)
            screen tail: "$""#]],
    );
}

#[test]
fn huge_resizes_are_clamped() {
    check(
        ExtractorConfig::default(),
        &[
            Resize(u16::MAX, u16::MAX),
            Out(b"\x1b[999999;999999Hfar away"),
            Resize(0, 0),
            Out(b"tiny"),
            Resize(80, 24),
        ],
        expect![[r#"
            "echo ok" (7 bytes) exact output="ok" (2 bytes)
            screen tail: "$""#]],
    );
}

#[test]
fn pending_commands_are_capped() {
    let cfg = ExtractorConfig { max_pending_commands: 3, ..ExtractorConfig::default() };
    let mut ex = CommandExtractor::new(cfg);
    ex.output(0, b"$ ");
    for i in 0..10u64 {
        ex.input(i * 10 + 1, b"l");
        ex.output(i * 10 + 2, b"l");
        ex.input(i * 10 + 3, b"s\r");
        ex.output(i * 10 + 4, b"s\r\n$ ");
    }
    let got: Vec<_> = ex.finish().into_iter().map(|c| c.started_at_us).collect();
    assert_eq!(got, [73, 83, 93]);
    assert_eq!(ex.dropped_commands(), 7);
}

#[test]
fn command_text_is_capped() {
    let cfg = ExtractorConfig { max_command_text: 100, ..ExtractorConfig::default() };
    let long = vec![b'y'; 5000];
    check(
        cfg,
        &[Out(b"$ "), In(b"e"), Out(b"e"), In(&long), Out(&long), In(b"\r"), Out(b"\r\n")],
        expect![[r#"
            "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy" (100 bytes) inferred output="" (0 bytes)
            "echo ok" (7 bytes) exact output="ok" (2 bytes)
            screen tail: "$""#]],
    );
}

#[test]
fn random_bytes_do_not_panic() {
    // A small xorshift stream: deterministic garbage in all three directions.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut ex = CommandExtractor::new(ExtractorConfig::default());
    for t in 0..2000 {
        let n = usize::try_from(next() % 512).unwrap();
        let data: Vec<u8> = (0..n).map(|_| (next() & 0xff) as u8).collect();
        match next() % 8 {
            0..=4 => ex.output(t, &data),
            5 | 6 => ex.input(t, &data),
            _ => ex.resize(t, (next() % 300) as u16, (next() % 100) as u16),
        }
        let _ = ex.drain();
    }
    let _ = ex.finish();
}
