//! Data-driven tests of the legacy SCP tracker: scripted bytes from each side in, a
//! transcript of what was forwarded, answered and recorded out, the same whatever the
//! chunking.

use std::fmt::Write as _;

use expect_test::{Expect, expect};
use sha2::{Digest, Sha256};

use crate::{Output, ScpTracker, SftpEvent, TransferPolicy};

#[derive(Debug, Clone)]
enum Step {
    C(Vec<u8>),
    S(Vec<u8>),
    Finish,
}

use Step::{C, Finish, S};

fn c(b: &[u8]) -> Step {
    C(b.to_vec())
}

fn s(b: &[u8]) -> Step {
    S(b.to_vec())
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    /// Forwarded bytes the tracker handed out to be recorded as they are, each way.
    raw_to_server: Vec<u8>,
    raw_to_client: Vec<u8>,
    events: Vec<SftpEvent>,
    close: bool,
}

fn run(command: &str, policy: TransferPolicy, steps: &[Step], chunk: usize) -> Totals {
    let mut t = ScpTracker::new(command.as_bytes(), policy).expect("an scp command");
    let mut totals = Totals::default();
    let mut out = Output::default();
    for step in steps {
        let (data, from_client): (&[u8], bool) = match step {
            C(b) => (b, true),
            S(b) => (b, false),
            Finish => {
                t.finish(&mut out);
                totals.events.append(&mut out.events);
                continue;
            }
        };
        for piece in data.chunks(chunk.max(1)) {
            if from_client {
                t.from_client(piece, &mut out);
                totals.to_server.extend_from_slice(&out.forward);
                totals.to_client.extend_from_slice(&out.reply);
                totals.raw_to_server.extend(out.raw_bytes().flatten());
            } else {
                t.from_server(piece, &mut out);
                totals.to_client.extend_from_slice(&out.forward);
                totals.to_server.extend_from_slice(&out.reply);
                totals.raw_to_client.extend(out.raw_bytes().flatten());
            }
            totals.events.append(&mut out.events);
            totals.close |= out.close_channel;
            out.clear();
            assert!(t.buffered() <= 2 << 20);
        }
    }
    totals
}

/// Bytes as text, control characters escaped, long runs cut.
fn show(bytes: &[u8]) -> String {
    if bytes.len() > 80 {
        return format!("{}...({} bytes)", show(&bytes[..40]), bytes.len());
    }
    let mut s = String::new();
    for chunk in bytes.utf8_chunks() {
        for ch in chunk.valid().chars() {
            let _ = match ch {
                '\0' => write!(s, "\\0"),
                '\n' => write!(s, "\\n"),
                c if c.is_control() => write!(s, "\\x{:02x}", c as u32),
                c => write!(s, "{c}"),
            };
        }
        for b in chunk.invalid() {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s
}

fn transcript(command: &str, policy: TransferPolicy, steps: &[Step]) -> String {
    let mut t = ScpTracker::new(command.as_bytes(), policy).expect("an scp command");
    let mut text = String::new();
    let mut out = Output::default();
    for step in steps {
        out.clear();
        let input: &[u8] = match step {
            C(b) => {
                t.from_client(b, &mut out);
                let _ = writeln!(text, "c {}", show(b));
                b
            }
            S(b) => {
                t.from_server(b, &mut out);
                let _ = writeln!(text, "s {}", show(b));
                b
            }
            Finish => {
                t.finish(&mut out);
                let _ = writeln!(text, "finish");
                &[]
            }
        };
        if out.forward != input {
            let what = if out.forward.is_empty() { "nothing".into() } else { show(&out.forward) };
            let _ = writeln!(text, "  forward: {what}");
        }
        if !out.reply.is_empty() {
            let _ = writeln!(text, "  reply: {}", show(&out.reply));
        }
        for raw in out.raw_bytes() {
            let _ = writeln!(text, "  raw: {}", show(raw));
        }
        for e in &out.events {
            let _ = writeln!(text, "  = {e}");
        }
        if out.close_channel {
            let _ = writeln!(text, "  close channel");
        }
    }
    text
}

fn check(
    command: &str,
    policy: TransferPolicy,
    steps: &[Step],
    expected: Expect,
) -> Vec<SftpEvent> {
    let whole = run(command, policy, steps, usize::MAX);
    for chunk in [1, 2, 3, 7] {
        assert_eq!(run(command, policy, steps, chunk), whole, "fed {chunk} bytes at a time");
    }
    expected.assert_eq(&transcript(command, policy, steps));
    whole.events
}

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn hashes(events: &[SftpEvent]) -> Vec<(String, Option<[u8; 32]>)> {
    events
        .iter()
        .filter_map(|e| match e {
            SftpEvent::Transfer(t) => Some((t.path.clone(), t.sha256)),
            _ => None,
        })
        .collect()
}

const A: &[u8] = b"hello, world\n";
const B: &[u8] = b"\0\x01\x02binary\xff\n\0";

/// `scp -r dir host:/srv/dst` with two files in `dir`.
#[test]
fn upload_directory_of_two_files() {
    let steps = [
        s(b"\0"),
        c(b"D0755 0 dir\n"),
        s(b"\0"),
        c(b"C0644 13 a.txt\n"),
        s(b"\0"),
        c(&[A, b"\0"].concat()),
        s(b"\0"),
        c(format!("C0600 {} b.bin\n", B.len()).as_bytes()),
        s(b"\0"),
        c(&[B, b"\0"].concat()),
        s(b"\0"),
        c(b"E\n"),
        s(b"\0"),
    ];
    let events = check(
        "scp -r -d -t /srv/dst",
        TransferPolicy::default(),
        &steps,
        expect![[r#"
            s \0
            c D0755 0 dir\n
            s \0
            c C0644 13 a.txt\n
            s \0
            c hello, world\n\0
            s \0
              = upload "/srv/dst/dir/a.txt" bytes=13 size=13 sha256=853ff93762a06ddbf722c4ebe9ddd66d8f63ddaea97f521c3ecc20da7c976020 ranges=[0..13] complete
            c C0600 12 b.bin\n
            s \0
            c \0\x01\x02binary\xff\n\0\0
            s \0
              = upload "/srv/dst/dir/b.bin" bytes=12 size=12 sha256=b28df70bcf75afc8d4233561519ba158a57675a51f264fad68ae177979b69f81 ranges=[0..12] complete
            c E\n
            s \0
        "#]],
    );
    assert_eq!(
        hashes(&events),
        [
            ("/srv/dst/dir/a.txt".to_string(), Some(sha(A))),
            ("/srv/dst/dir/b.bin".to_string(), Some(sha(B)))
        ]
    );
}

/// `scp -rp host:/srv/src/dir .`: times records, two files, nested directory.
#[test]
fn download_directory_of_two_files() {
    let steps = [
        c(b"\0"),
        s(b"D0755 0 dir\n"),
        c(b"\0"),
        s(b"T1700000000 0 1700000000 0\n"),
        c(b"\0"),
        s(b"C0644 13 a.txt\n"),
        c(b"\0"),
        s(&[A, b"\0"].concat()),
        c(b"\0"),
        s(b"D0755 0 sub\n"),
        c(b"\0"),
        s(format!("C0600 {} b.bin\n", B.len()).as_bytes()),
        c(b"\0"),
        s(&[B, b"\0"].concat()),
        c(b"\0"),
        s(b"E\n"),
        c(b"\0"),
        s(b"E\n"),
        c(b"\0"),
    ];
    let events = check(
        "scp -r -p -f /srv/src/dir",
        TransferPolicy::default(),
        &steps,
        expect![[r#"
        c \0
        s D0755 0 dir\n
        c \0
        s T1700000000 0 1700000000 0\n
        c \0
        s C0644 13 a.txt\n
        c \0
        s hello, world\n\0
        c \0
          = download "/srv/src/dir/a.txt" bytes=13 size=13 sha256=853ff93762a06ddbf722c4ebe9ddd66d8f63ddaea97f521c3ecc20da7c976020 ranges=[0..13] complete
        s D0755 0 sub\n
        c \0
        s C0600 12 b.bin\n
        c \0
        s \0\x01\x02binary\xff\n\0\0
        c \0
          = download "/srv/src/dir/sub/b.bin" bytes=12 size=12 sha256=b28df70bcf75afc8d4233561519ba158a57675a51f264fad68ae177979b69f81 ranges=[0..12] complete
        s E\n
        c \0
        s E\n
        c \0
    "#]],
    );
    assert_eq!(
        hashes(&events),
        [
            ("/srv/src/dir/a.txt".to_string(), Some(sha(A))),
            ("/srv/src/dir/sub/b.bin".to_string(), Some(sha(B)))
        ]
    );
}

/// The sink refuses a file (it cannot create it); the source skips it and sends the next.
/// An empty file; a source that could not read a file reports it instead of a record.
#[test]
fn refusals_from_the_other_side() {
    let steps = [
        s(b"\0"),
        c(b"C0644 5 shadow\n"),
        s(b"\x01scp: /etc/shadow: Permission denied\n"),
        c(b"C0644 0 empty\n"),
        s(b"\0"),
        c(b"\0"),
        s(b"\0"),
        c(b"\x01scp: missing.txt: No such file or directory\n"),
    ];
    check(
        "scp -d -t /etc",
        TransferPolicy::default(),
        &steps,
        expect![[r#"
            s \0
            c C0644 5 shadow\n
            s \x01scp: /etc/shadow: Permission denied\n
              raw: \x01scp: /etc/shadow: Permission denied\n
              = write "/etc/shadow": status FAILURE "scp: /etc/shadow: Permission denied"
            c C0644 0 empty\n
            s \0
            c \0
            s \0
              = upload "/etc/empty" bytes=0 size=0 sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 ranges=[] complete
            c \x01scp: missing.txt: No such file or directory\n
              raw: \x01scp: missing.txt: No such file or directory\n
        "#]],
    );
}

/// A file whose source failed half-way (the data is still sent in full, then an error
/// instead of `\0`), and one cut off by the channel's end.
#[test]
fn broken_files() {
    let steps = [
        c(b"\0"),
        s(b"C0644 4 a\n"),
        c(b"\0"),
        s(b"abcd\x01scp: a: Input/output error\n"),
        c(b"\0"),
        s(b"C0644 10 b\n"),
        c(b"\0"),
        s(b"0123"),
        Finish,
    ];
    check(
        "scp -f a b",
        TransferPolicy::default(),
        &steps,
        expect![[r#"
            c \0
            s C0644 4 a\n
            c \0
            s abcd\x01scp: a: Input/output error\n
              raw: \x01scp: a: Input/output error\n
            c \0
              = download "a" bytes=4 size=4 ranges=[0..4] incomplete
            s C0644 10 b\n
            c \0
            s 0123
            finish
              = download "b" bytes=4 size=10 ranges=[0..4] incomplete
        "#]],
    );
}

/// Refused commands: `start` refuses before anything runs; run anyway, the first byte the
/// client waits for is replaced by the refusal.
#[test]
fn refused_commands() {
    let no_up = TransferPolicy { upload: false, ..TransferPolicy::default() };
    let no_down = TransferPolicy { download: false, ..TransferPolicy::default() };
    let mut t = ScpTracker::new(b"scp -t /srv", no_up).unwrap();
    let mut out = Output::default();
    assert!(t.start(&mut out));
    expect![[r#"
        reply: "\u{1}keepwatch: uploads are not allowed on this target\n"
        events: [Operation { op: Write, path: "/srv", target_path: None, flags: None, result: Denied { reason: "uploads are not allowed on this target" } }]
        close: true"#]]
    .assert_eq(&format!(
        "reply: {:?}\nevents: {:?}\nclose: {}",
        String::from_utf8_lossy(&out.reply),
        out.events,
        out.close_channel
    ));
    assert!(!ScpTracker::new(b"scp -f /srv/x", no_up).unwrap().start(&mut Output::default()));

    check(
        "scp -t /srv",
        no_up,
        &[s(b"\0"), c(b"C0644 1 x\n"), s(b"\0")],
        expect![[r#"
        s \0
          forward: \x01keepwatch: uploads are not allowed on this target\n
          = write "/srv": denied: uploads are not allowed on this target
          close channel
        c C0644 1 x\n
          forward: nothing
          close channel
        s \0
          forward: nothing
          close channel
    "#]],
    );
    check(
        "scp -f /srv/x",
        no_down,
        &[c(b"\0"), s(b"C0644 1 x\n")],
        expect![[r#"
        c \0
          forward: nothing
          reply: \x01keepwatch: downloads are not allowed on this target\n
          = read "/srv/x": denied: downloads are not allowed on this target
          close channel
        s C0644 1 x\n
          forward: nothing
          close channel
    "#]],
    );
}

/// Files over the limit are refused one by one; both sides stay in step and the next file
/// goes through.
#[test]
fn files_over_the_size_limit() {
    let policy = TransferPolicy { max_file_size: Some(13), ..TransferPolicy::default() };
    let up = [
        s(b"\0"),
        c(b"C0644 14 big\n"),
        c(b"C0644 13 a.txt\n"),
        s(b"\0"),
        c(&[A, b"\0"].concat()),
        s(b"\0"),
    ];
    check(
        "scp -d -t /srv",
        policy,
        &up,
        expect![[r#"
        s \0
        c C0644 14 big\n
          forward: nothing
          reply: \x01keepwatch: files over 13 bytes are not allowed on this target\n
          = write "/srv/big": denied: files over 13 bytes are not allowed on this target
        c C0644 13 a.txt\n
        s \0
        c hello, world\n\0
        s \0
          = upload "/srv/a.txt" bytes=13 size=13 sha256=853ff93762a06ddbf722c4ebe9ddd66d8f63ddaea97f521c3ecc20da7c976020 ranges=[0..13] complete
    "#]],
    );
    let down = [
        c(b"\0"),
        s(b"C0644 99999 big\n"),
        s(b"C0644 13 a.txt\n"),
        c(b"\0"),
        s(&[A, b"\0"].concat()),
        c(b"\0"),
    ];
    check(
        "scp -f /srv/big /srv/a.txt",
        policy,
        &down,
        expect![[r#"
        c \0
        s C0644 99999 big\n
          forward: \x01keepwatch: files over 13 bytes are not allowed on this target\n
          reply: \x01keepwatch: files over 13 bytes are not allowed on this target\n
          = read "/srv/big": denied: files over 13 bytes are not allowed on this target
        s C0644 13 a.txt\n
        c \0
        s hello, world\n\0
        c \0
          = download "/srv/a.txt" bytes=13 size=13 sha256=853ff93762a06ddbf722c4ebe9ddd66d8f63ddaea97f521c3ecc20da7c976020 ranges=[0..13] complete
    "#]],
    );
}

/// Bytes out of turn, bad records and names: recorded, then pass-through (nothing to
/// enforce) or closed (a policy to enforce).
#[test]
fn protocol_errors() {
    let open = TransferPolicy::default();
    let strict = TransferPolicy { max_file_size: Some(1 << 30), ..TransferPolicy::default() };
    check(
        "scp -t /srv",
        open,
        &[c(b"C0644 1 x\n"), s(b"\0")],
        expect![[r#"
            c C0644 1 x\n
              raw: C0644 1 x\n
              = protocol error from client: scp client sent bytes while the target had the turn
            s \0
              raw: \0
        "#]],
    );
    check(
        "scp -t /srv",
        strict,
        &[s(b"\0"), c(b"X nonsense\n"), c(b"more")],
        expect![[r#"
        s \0
        c X nonsense\n
          forward: nothing
          = protocol error from client: unexpected scp record "X nonsense\n"
          close channel
        c more
          forward: nothing
          close channel
    "#]],
    );
    check(
        "scp -t /srv",
        strict,
        &[s(b"\0"), c(b"C0644 1 ../../etc/passwd\n")],
        expect![[r#"
        s \0
        c C0644 1 ../../etc/passwd\n
          forward: nothing
          = protocol error from client: scp file name "../../etc/passwd" is not a single path component
          close channel
    "#]],
    );
    check(
        "scp -f /srv",
        strict,
        &[c(b"\0"), s(&[b'C'; 5000])],
        expect![[r#"
        c \0
        s CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC...(5000 bytes)
          forward: nothing
          = protocol error from server: scp line longer than 4096 bytes
          close channel
    "#]],
    );
    // Found by fuzzing: a bad record that arrived in pieces passes on whole.
    check(
        "scp -t /srv",
        open,
        &[s(b"\0"), c(b"X bad\n"), c(b"after")],
        expect![[r#"
            s \0
            c X bad\n
              raw: X bad\n
              = protocol error from client: unexpected scp record "X bad\n"
            c after
              raw: after
        "#]],
    );
    // Found by fuzzing: the client's partial line, held when the target spoke out of turn,
    // must go to the target (with the client's next bytes), not to the client.
    let steps = [c(b"\0"), s(b"C0644 1 a\n"), c(b"\x08"), s(b"C0644 2 b\n"), c(b"x\n")];
    check(
        "scp -f /srv",
        open,
        &steps,
        expect![[r#"
            c \0
            s C0644 1 a\n
            c \x08
              forward: nothing
            s C0644 2 b\n
              raw: C0644 2 b\n
              = protocol error from server: scp target sent bytes while the client had the turn
            c x\n
              forward: \x08x\n
              raw: \x08x\n
        "#]],
    );
    check(
        "scp -f /srv",
        open,
        &[c(b"\0"), s(b"\x02fatal\n"), s(b"anything"), c(b"else")],
        expect![[r#"
            c \0
            s \x02fatal\n
              raw: \x02fatal\n
            s anything
              raw: anything
            c else
              raw: else
        "#]],
    );
}

/// With capture on, the pieces of each file put together per id, and each transfer's
/// capture, for every chunking.
fn captured(command: &str, max: u64, steps: &[Step]) -> Vec<(String, Option<Vec<u8>>)> {
    use crate::Capture;
    let mut results = Vec::new();
    for chunk in [1, 5, usize::MAX] {
        let mut t = ScpTracker::new(command.as_bytes(), TransferPolicy::default())
            .expect("an scp command")
            .with_capture(max);
        let mut kept: std::collections::HashMap<crate::ContentId, Vec<u8>> = Default::default();
        let mut got = Vec::new();
        let mut out = Output::default();
        for step in steps {
            let (data, from_client) = match step {
                C(b) => (b, true),
                S(b) => (b, false),
                Finish => unreachable!("scripts here end cleanly"),
            };
            for piece in data.chunks(chunk) {
                out.clear();
                if from_client {
                    t.from_client(piece, &mut out);
                } else {
                    t.from_server(piece, &mut out);
                }
                for p in &out.content {
                    kept.entry(p.id).or_default().extend_from_slice(&out.forward[p.range.clone()]);
                }
                for e in &out.events {
                    if let SftpEvent::Transfer(tr) = e {
                        let content = match tr.capture.as_ref().expect("capture is on") {
                            Capture::Whole(id) => Some(kept.remove(id).unwrap_or_default()),
                            Capture::Skipped { .. } => None,
                        };
                        got.push((tr.path.clone(), content));
                    }
                }
            }
        }
        results.push(got);
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]), "chunking changed the capture");
    results.remove(0)
}

#[test]
fn capture_keeps_each_whole_file_and_skips_files_over_the_cap() {
    let steps = [
        s(b"\0"),
        c(b"C0644 5 a.txt\n"),
        s(b"\0"),
        c(b"hello\0"),
        s(b"\0"),
        c(b"C0644 0 empty\n"),
        s(b"\0"),
        c(b"\0"),
        s(b"\0"),
        c(b"C0644 12 big\n"),
        s(b"\0"),
        c(b"0123456789ab\0"),
        s(b"\0"),
    ];
    let got = captured("scp -d -t /srv", 10, &steps);
    assert_eq!(
        got,
        vec![
            ("/srv/a.txt".to_owned(), Some(b"hello".to_vec())),
            ("/srv/empty".to_owned(), Some(Vec::new())),
            ("/srv/big".to_owned(), None),
        ]
    );
}
