//! Fuzzes the terminal model and command extractor: arbitrary bytes read as a
//! session of output, input and resize operations must never panic and must keep
//! every extracted command within the configured caps.
//!
//! Besides raw bytes, an operation can emit a canned fragment (a prompt, CR LF,
//! an alternate-screen switch, a bracketed paste, an OSC 133 mark, ...) so the
//! fuzzer reaches the prompt, accept and continuation paths quickly.

#![no_main]

use keepwatch_terminal::{CommandExtractor, ExtractorConfig};
use libfuzzer_sys::fuzz_target;

const OUTPUT_SNIPPETS: &[&[u8]] = &[
    b"$ ",
    b"\r\n",
    b"\r\n$ ",
    b"> ",
    b"root@host:~# ",
    b"\x1b[?2004h",
    b"\x1b[?1049h",
    b"\x1b[?1049l",
    b"\x1b[?1h\x1b=",
    b"\x1b[H\x1b[2J",
    b"\x1b]133;A\x07$ \x1b]133;B\x07",
    b"\x1b]133;C\x07",
    b"\x1b[A",
    b"\x1b[1B\r",
    b"\x1b[K",
    b"\x1b[3P",
    b"\x08\x08\x1b[K",
    b"\x1b[5;10r",
    b"\x1b[r",
    b"\x1b7\x1b8",
    b"Password: ",
];

const INPUT_SNIPPETS: &[&[u8]] = &[
    b"\r",
    b"ls -la",
    b"\x03",
    b"\x1b[A",
    b"\x1b[D",
    b"\x7f",
    b"\x12",
    b"\t",
    b"\x1b[200~echo a\necho b\x1b[201~",
    b"\x01\x05\x0b\x15\x17",
];

/// ASan keeps 256 MB of freed memory in quarantine by default; with libFuzzer's
/// own tables that crosses `-rss_limit_mb=512` in a long run, although the
/// extractor itself peaks near 30 MB (measured without a sanitizer on the input
/// that tripped it). A smaller quarantine keeps the limit about our memory.
#[unsafe(no_mangle)]
pub extern "C" fn __asan_default_options() -> *const std::ffi::c_char {
    c"quarantine_size_mb=32".as_ptr()
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.iter().copied();
    let mut next = || bytes.next();
    let cfg = ExtractorConfig {
        cols: u16::from(next().unwrap_or(80)),
        rows: u16::from(next().unwrap_or(24)),
        max_output_text: 4096,
        max_command_text: 1024,
        max_pending_commands: 16,
        // Smaller than the default 1000x1000 clamp so each run is quick; the
        // clamp itself is covered by keepwatch-terminal's hostile-input tests.
        max_cols: 300,
        max_rows: 100,
    };
    let mut ex = CommandExtractor::new(cfg.clone());
    let mut t = 0u64;
    let check = |commands: Vec<keepwatch_terminal::Command>| {
        assert!(commands.len() <= cfg.max_pending_commands);
        for c in commands {
            assert!(c.text.len() <= cfg.max_command_text, "command text over cap");
            assert!(c.output.len() <= cfg.max_output_text, "output over cap");
            assert!(c.ended_at_us.is_none_or(|e| e >= c.started_at_us));
        }
    };
    let rest: Vec<u8> = std::iter::from_fn(&mut next).collect();
    let mut i = 0;
    while i < rest.len() {
        let op = rest[i];
        i += 1;
        t += 1;
        let take = |i: &mut usize, n: usize| {
            let end = (*i + n).min(rest.len());
            let s = &rest[*i..end];
            *i = end;
            s
        };
        match op % 8 {
            0 | 1 => {
                let n = usize::from(take(&mut i, 1).first().copied().unwrap_or(0));
                ex.output(t, take(&mut i, n));
            }
            2 => {
                let n = usize::from(take(&mut i, 1).first().copied().unwrap_or(0)) % 32;
                ex.input(t, take(&mut i, n));
            }
            3 => {
                let k = usize::from(op >> 3) % OUTPUT_SNIPPETS.len();
                ex.output(t, OUTPUT_SNIPPETS[k]);
            }
            4 => {
                let k = usize::from(op >> 3) % INPUT_SNIPPETS.len();
                ex.input(t, INPUT_SNIPPETS[k]);
            }
            5 => {
                let b = take(&mut i, 4);
                let get = |j: usize| u16::from(b.get(j).copied().unwrap_or(0));
                ex.resize(t, get(0) << 8 | get(1), get(2) << 8 | get(3));
            }
            6 => check(ex.drain()),
            _ => {
                // A long run of plain output: exercises the bulk fast path.
                let lines = usize::from(op >> 3) * 8;
                let line = b"0123456789 abcdefghij \x1b[1mbold\x1b[0m\r\n";
                let bulk: Vec<u8> = line.iter().copied().cycle().take(lines * line.len()).collect();
                ex.output(t, &bulk);
            }
        }
    }
    let _ = ex.screen_text();
    check(ex.finish());
});
