//! Fuzzes keepwatch-pg's tracker: arbitrary bytes, split into frontend and backend feeds with
//! arbitrary chunking. It must never panic, must stay within its memory bounds (one partial
//! message per direction, the held-text budget), and must give the same events and error
//! however a run of same-direction bytes is chunked.
//!
//! Input: byte 0, bit 0: start with a valid StartupMessage already fed, so that the bytes
//! that follow reach the typed phase. Then chunks: a header byte (bit 7: from the backend;
//! bits 0-6: length), then that many bytes.

#![no_main]

use keepwatch_pg::{Limits, PgEvent, PgTracker, TrackError};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    max_message_len: 4096,
    max_pending: 64,
    max_prepared: 16,
    max_text_len: 256,
    max_parameter_len: 16,
    max_held_bytes: 64 * 1024,
    max_raw_len: 32,
};

/// user=u, database=d, protocol 3.0.
const STARTUP: &[u8] = b"\0\0\0\x1b\0\x03\0\0user\0u\0database\0d\0\0";

/// Feeds `runs` (direction, bytes); each run's pieces share its index as their time.
fn run(startup: bool, runs: &[(bool, Vec<&[u8]>)]) -> (Vec<PgEvent>, Option<TrackError>) {
    let mut tracker = PgTracker::new(LIMITS);
    // Result rows are kept too: the DataRow and RowDescription decoding is fuzzed with the
    // rest.
    tracker.capture_rows(4);
    let mut events = Vec::new();
    if startup {
        tracker.from_frontend(STARTUP, 0, &mut events).expect("a valid startup packet");
    }
    for (i, (from_backend, pieces)) in runs.iter().enumerate() {
        for piece in pieces {
            let fed = if *from_backend {
                tracker.from_backend(piece, i as u64, &mut events)
            } else {
                tracker.from_frontend(piece, i as u64, &mut events)
            };
            // One partial message per direction, plus nothing else held between calls.
            let frame = LIMITS.max_message_len as usize + 5;
            assert!(tracker.buffered() <= 2 * frame, "holds {} bytes", tracker.buffered());
            assert!(tracker.held_bytes() <= LIMITS.max_held_bytes, "held {}", tracker.held_bytes());
            if let Err(e) = fed {
                // Every later call repeats it.
                assert_eq!(tracker.from_frontend(b"", 0, &mut events), Err(e.clone()));
                return (events, Some(e));
            }
        }
    }
    tracker.finish(runs.len() as u64, &mut events);
    for e in &events {
        if let PgEvent::Unfollowed(u) = e {
            assert!(u.bytes.len() <= LIMITS.max_raw_len && u.bytes.len() <= u.len);
        }
    }
    (events, None)
}

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    let mut runs: Vec<(bool, Vec<&[u8]>)> = Vec::new();
    let mut rest = rest;
    while let [header, tail @ ..] = rest {
        let len = usize::from(header & 0x7f).min(tail.len());
        let from_backend = header & 0x80 != 0;
        let piece = &tail[..len];
        match runs.last_mut() {
            Some((side, pieces)) if *side == from_backend => pieces.push(piece),
            _ => runs.push((from_backend, vec![piece])),
        }
        rest = &tail[len..];
    }
    let startup = mode & 1 != 0;
    let split = run(startup, &runs);

    let joined: Vec<Vec<u8>> = runs.iter().map(|(_, pieces)| pieces.concat()).collect();
    let whole_runs: Vec<(bool, Vec<&[u8]>)> =
        runs.iter().zip(&joined).map(|((side, _), bytes)| (*side, vec![bytes.as_slice()])).collect();
    let whole = run(startup, &whole_runs);
    assert_eq!(split, whole, "chunking changed the result");
});
