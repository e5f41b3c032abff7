//! Fuzzes what the indexer does with a recording's events: arbitrary bytes read as a
//! sequence of channel opens, output, input, resizes, file operations and closes go through
//! output masking (`ChannelMask`) and the `SessionIndexer`; must never panic, and every
//! row's text stays within the caps.

#![no_main]

use std::sync::OnceLock;

use keepwatch_core::{ChannelKind, OutputMask};
use keepwatch_index::SessionIndexer;
use keepwatch_recording::{Event, Pty, TimedEvent};
use libfuzzer_sys::fuzz_target;

const OUTPUT: &[&[u8]] = &[
    b"$ ",
    b"\r\n$ ",
    b"\x1b[?1049h",
    b"\x1b[?1049l",
    b"-----BEGIN RSA PRIVATE KEY-----\n",
    b"-----END RSA PRIVATE KEY-----\n",
    b"password=hunter2 AKIAIOSFODNN7EXAMPLE Bearer abcdefghijklmnopq\n",
];

/// Compiled once: building the rules' regexes for every input made the target ~100x slower.
fn mask() -> &'static OutputMask {
    static MASK: OnceLock<OutputMask> = OnceLock::new();
    MASK.get_or_init(OutputMask::defaults)
}

fuzz_target!(|data: &[u8]| {
    let mask = mask();
    let mut masks: Vec<_> = (0..4).map(|_| mask.channel()).collect();
    let mut ix = SessionIndexer::new();
    let mut at = 0u64;
    let mut rest = data;
    while let [op, arg, tail @ ..] = rest {
        let channel = u32::from(arg & 3);
        let len = usize::from(arg >> 2).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        rest = next;
        at += u64::from(*op);
        let event = match op % 9 {
            0 => Event::ChannelOpen {
                channel,
                kind: ChannelKind::Shell,
                pty: Some(Pty { term: "xterm".into(), cols: u32::from(*op), rows: 24 }),
            },
            1 => Event::ChannelOpen {
                channel,
                kind: ChannelKind::Exec { command: bytes.to_vec() },
                pty: None,
            },
            2 => Event::ChannelOpen { channel, kind: ChannelKind::Shell, pty: None },
            3 => Event::Output { channel, data: bytes.to_vec() },
            4 => Event::Output { channel, data: OUTPUT[usize::from(*arg) % OUTPUT.len()].to_vec() },
            5 => Event::Input { channel, data: bytes.to_vec() },
            6 => Event::Resize { channel, cols: u32::from(*op) * 1000, rows: u32::from(*arg) },
            7 => Event::FileOperation {
                channel,
                op: "open".into(),
                path: String::from_utf8_lossy(bytes).into_owned(),
                target_path: None,
                result: "ok".into(),
            },
            _ => Event::ChannelClose { channel, exit_status: Some(0), exit_signal: None },
        };
        let event = match event {
            Event::Output { channel, data } => {
                let masked = masks[channel as usize].apply(&data).into_owned();
                Event::Output { channel, data: masked }
            }
            other => other,
        };
        ix.event(&TimedEvent { at_us: at, event });
        for row in ix.drain_rows() {
            assert!(row.output.len() <= 4 * 64 * 1024, "output cap");
            assert!(row.command.len() <= 4 * 64 * 1024, "command cap");
        }
    }
    ix.finish(at);
    ix.drain_rows();
});
