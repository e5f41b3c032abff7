//! Data-driven tests of the SFTP tracker: scripted client and server packets in, a transcript
//! of what was forwarded, answered and recorded out. Every script is also fed one byte at a
//! time, and with each step split at every byte boundary, and must give the same result.

mod capture;
mod encode;
mod scenarios;

use std::fmt::Write as _;

use expect_test::Expect;
use sha2::{Digest, Sha256};

use crate::{Output, SftpEvent, SftpTracker, Transfer, TransferPolicy};

use encode::describe;

#[derive(Debug, Clone)]
pub(super) enum Step {
    /// Bytes from the client.
    C(Vec<u8>),
    /// Bytes from the server.
    S(Vec<u8>),
    /// The channel ends.
    Finish,
}

/// Everything a run produced, per direction, with call boundaries erased.
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

fn feed(t: &mut SftpTracker, step: &Step, chunks: &[&[u8]], totals: &mut Totals) {
    let mut out = Output::default();
    for chunk in chunks {
        match step {
            Step::C(_) => t.from_client(chunk, &mut out),
            Step::S(_) => t.from_server(chunk, &mut out),
            Step::Finish => t.finish(&mut out),
        }
        let (fwd, back, raw) = match step {
            Step::C(_) | Step::Finish => {
                (&mut totals.to_server, &mut totals.to_client, &mut totals.raw_to_server)
            }
            Step::S(_) => (&mut totals.to_client, &mut totals.to_server, &mut totals.raw_to_client),
        };
        raw.extend(out.raw_bytes().flatten());
        fwd.extend_from_slice(&out.forward);
        back.extend_from_slice(&out.reply);
        totals.events.append(&mut out.events);
        totals.close |= out.close_channel;
        out.clear();
    }
}

fn bytes(step: &Step) -> &[u8] {
    match step {
        Step::C(b) | Step::S(b) => b,
        Step::Finish => &[],
    }
}

/// Runs the script with step `split.0` cut at byte `split.1` (or every step fed whole, or
/// every byte alone).
fn run(policy: TransferPolicy, steps: &[Step], mode: Feeding) -> Totals {
    let mut t = SftpTracker::new(policy);
    let mut totals = Totals::default();
    for (i, step) in steps.iter().enumerate() {
        let b = bytes(step);
        match (mode, step) {
            (_, Step::Finish) => feed(&mut t, step, &[&[]], &mut totals),
            (Feeding::Whole, _) => feed(&mut t, step, &[b], &mut totals),
            (Feeding::Bytewise, _) => {
                let chunks: Vec<&[u8]> = b.chunks(1).collect();
                feed(&mut t, step, &chunks, &mut totals);
            }
            (Feeding::Split { step: s, at }, _) if s == i => {
                feed(&mut t, step, &[&b[..at], &b[at..]], &mut totals);
            }
            (Feeding::Split { .. }, _) => feed(&mut t, step, &[b], &mut totals),
        }
        assert!(t.buffered() < 64 << 20);
    }
    totals
}

#[derive(Debug, Clone, Copy)]
enum Feeding {
    Whole,
    Bytewise,
    Split { step: usize, at: usize },
}

/// The script's transcript, fed a step at a time: each step's input, then what was
/// forwarded (when it differs from the input), replied and recorded.
fn transcript(policy: TransferPolicy, steps: &[Step]) -> String {
    let mut t = SftpTracker::new(policy);
    let mut s = String::new();
    let mut out = Output::default();
    for step in steps {
        out.clear();
        let input = bytes(step);
        match step {
            Step::C(b) => {
                t.from_client(b, &mut out);
                let _ = writeln!(s, "c {}", describe(b));
            }
            Step::S(b) => {
                t.from_server(b, &mut out);
                let _ = writeln!(s, "s {}", describe(b));
            }
            Step::Finish => {
                t.finish(&mut out);
                let _ = writeln!(s, "finish");
            }
        }
        if out.forward != input {
            let what =
                if out.forward.is_empty() { "nothing".into() } else { describe(&out.forward) };
            let _ = writeln!(s, "  forward: {what}");
        }
        if !out.reply.is_empty() {
            let _ = writeln!(s, "  reply: {}", describe(&out.reply));
        }
        for raw in out.raw_bytes() {
            let _ = writeln!(s, "  raw: {}", describe(raw));
        }
        for e in &out.events {
            let _ = writeln!(s, "  = {e}");
        }
        if out.close_channel {
            let _ = writeln!(s, "  close channel");
        }
    }
    s
}

/// Checks the transcript, and that feeding in any chunking gives the same bytes and events.
fn check(policy: TransferPolicy, steps: &[Step], expected: Expect) -> Vec<SftpEvent> {
    let whole = run(policy, steps, Feeding::Whole);
    assert_eq!(run(policy, steps, Feeding::Bytewise), whole, "fed one byte at a time");
    for (i, step) in steps.iter().enumerate() {
        for at in 1..bytes(step).len() {
            let split = run(policy, steps, Feeding::Split { step: i, at });
            assert_eq!(split, whole, "step {i} split at byte {at}");
        }
    }
    if policy.allows_everything() && !whole.close {
        // Transparent: every byte each side sent reaches the other, in order.
        let sent = |client: bool| -> Vec<u8> {
            steps
                .iter()
                .filter_map(|s| match (s, client) {
                    (Step::C(b), true) | (Step::S(b), false) => Some(b.as_slice()),
                    _ => None,
                })
                .flatten()
                .copied()
                .collect()
        };
        assert_eq!(whole.to_server, sent(true), "client bytes changed on the way");
        assert_eq!(whole.to_client, sent(false), "server bytes changed on the way");
    }
    expected.assert_eq(&transcript(policy, steps));
    whole.events
}

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn transfers(events: &[SftpEvent]) -> Vec<&Transfer> {
    events
        .iter()
        .filter_map(|e| if let SftpEvent::Transfer(t) = e { Some(t) } else { None })
        .collect()
}

fn deny_uploads() -> TransferPolicy {
    TransferPolicy { upload: false, ..TransferPolicy::default() }
}

fn deny_downloads() -> TransferPolicy {
    TransferPolicy { download: false, ..TransferPolicy::default() }
}

fn max_size(max: u64) -> TransferPolicy {
    TransferPolicy { max_file_size: Some(max), ..TransferPolicy::default() }
}
