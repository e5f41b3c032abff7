//! Fuzzes keepwatch-sftp's trackers: arbitrary bytes, split into client and server feeds with
//! arbitrary chunking, into `SftpTracker` or `ScpTracker`. They must never panic, must stay
//! within their memory bounds, must give the same result however a run of same-direction
//! bytes is chunked, and with nothing to enforce must forward every byte unchanged (but for
//! a partial packet or line at the end). With content capture on, every piece handed out lies
//! inside the bytes forwarded, and a capture said to be whole is exactly the file's size.
//! Raw ranges (bytes to record as they are) lie inside the bytes forwarded, in order.
//!
//! Input: byte 0 picks the tracker and policy (bits 0-1: SFTP, SFTP, `scp -t`, `scp -f`;
//! bit 2: no uploads; bit 3: no downloads; bit 4: a size limit of byte 1 × 64; bit 5: content
//! capture up to byte 1 × 256). Then chunks: a header byte (bit 7: from the server; bits 0-6:
//! length), then that many bytes.

#![no_main]

use std::collections::HashMap;

use keepwatch_sftp::{
    Capture, ContentId, Output, ScpTracker, SftpEvent, SftpTracker, TransferPolicy,
};
use libfuzzer_sys::fuzz_target;

/// SFTP: two partial packets, 16 MiB of out-of-order data, 4 MiB of held paths.
const SFTP_BOUND: usize = 2 * (256 * 1024 + 1024 + 4) + (16 << 20) + (4 << 20);
/// SCP: one line and the open directory names.
const SCP_BOUND: usize = 4096 + (1 << 20);

enum Tracker {
    Sftp(SftpTracker),
    Scp(ScpTracker),
}

impl Tracker {
    fn feed(&mut self, from_server: bool, data: &[u8], out: &mut Output) {
        match (self, from_server) {
            (Tracker::Sftp(t), false) => t.from_client(data, out),
            (Tracker::Sftp(t), true) => t.from_server(data, out),
            (Tracker::Scp(t), false) => t.from_client(data, out),
            (Tracker::Scp(t), true) => t.from_server(data, out),
        }
    }

    fn finish(&mut self, out: &mut Output) {
        match self {
            Tracker::Sftp(t) => t.finish(out),
            Tracker::Scp(t) => t.finish(out),
        }
    }

    fn check_bounds(&self) {
        match self {
            Tracker::Sftp(t) => assert!(t.buffered() <= SFTP_BOUND, "sftp holds {}", t.buffered()),
            Tracker::Scp(t) => assert!(t.buffered() <= SCP_BOUND, "scp holds {}", t.buffered()),
        }
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    events: Vec<SftpEvent>,
    close: bool,
}

/// Puts handed-out content together per id and checks it against each transfer's capture.
#[derive(Default)]
struct Kept(HashMap<ContentId, u64>);

impl Kept {
    fn check(&mut self, out: &Output) {
        let mut end = 0;
        for r in &out.raw {
            assert!(r.start >= end && r.start < r.end, "raw ranges out of order or empty");
            assert!(r.end <= out.forward.len(), "raw range outside the forwarded bytes");
            end = r.end;
        }
        for piece in &out.content {
            assert!(
                piece.range.end <= out.forward.len(),
                "content piece outside the forwarded bytes"
            );
            *self.0.entry(piece.id).or_default() += piece.range.len() as u64;
        }
        for e in &out.events {
            if let SftpEvent::Transfer(t) = e
                && let Some(Capture::Whole(id)) = &t.capture
            {
                let kept = self.0.remove(id).unwrap_or(0);
                assert!(t.complete, "a whole capture of an incomplete transfer");
                assert_eq!(Some(kept), t.size, "a whole capture is not the file's size");
            }
        }
    }
}

fn run(
    kind: u8,
    policy: TransferPolicy,
    capture: Option<u64>,
    chunks: &[(bool, &[u8])],
) -> Option<Totals> {
    let mut tracker = match kind {
        0 | 1 => Tracker::Sftp(SftpTracker::new(policy)),
        2 => Tracker::Scp(ScpTracker::new(b"scp -r -d -t /srv", policy)?),
        _ => Tracker::Scp(ScpTracker::new(b"scp -r -f /srv/a /srv/b", policy)?),
    };
    if let Some(max) = capture {
        tracker = match tracker {
            Tracker::Sftp(t) => Tracker::Sftp(t.with_capture(max)),
            Tracker::Scp(t) => Tracker::Scp(t.with_capture(max)),
        };
    }
    let mut kept = Kept::default();
    let mut totals = Totals::default();
    let mut out = Output::default();
    for &(from_server, data) in chunks {
        tracker.feed(from_server, data, &mut out);
        kept.check(&out);
        let (forward, back) = if from_server {
            (&mut totals.to_client, &mut totals.to_server)
        } else {
            (&mut totals.to_server, &mut totals.to_client)
        };
        forward.extend_from_slice(&out.forward);
        back.extend_from_slice(&out.reply);
        totals.events.append(&mut out.events);
        totals.close |= out.close_channel;
        out.clear();
        tracker.check_bounds();
    }
    tracker.finish(&mut out);
    kept.check(&out);
    totals.events.append(&mut out.events);
    Some(totals)
}

fuzz_target!(|data: &[u8]| {
    let [mode, limit, rest @ ..] = data else { return };
    let policy = TransferPolicy {
        upload: mode & 0x04 == 0,
        download: mode & 0x08 == 0,
        max_file_size: (mode & 0x10 != 0).then_some(u64::from(*limit) * 64),
    };
    let mut chunks = Vec::new();
    let mut rest = rest;
    while let [header, tail @ ..] = rest {
        let len = usize::from(header & 0x7f).min(tail.len());
        chunks.push((header & 0x80 != 0, &tail[..len]));
        rest = &tail[len..];
    }
    let kind = mode & 0x03;
    let capture = (mode & 0x20 != 0).then_some(u64::from(*limit) * 256);
    let Some(split) = run(kind, policy, capture, &chunks) else { return };

    // The same bytes, each same-direction run fed in one piece.
    let mut joined: Vec<(bool, Vec<u8>)> = Vec::new();
    for &(from_server, bytes) in &chunks {
        match joined.last_mut() {
            Some((dir, buf)) if *dir == from_server => buf.extend_from_slice(bytes),
            _ => joined.push((from_server, bytes.to_vec())),
        }
    }
    let joined: Vec<(bool, &[u8])> = joined.iter().map(|(d, b)| (*d, b.as_slice())).collect();
    let whole = run(kind, policy, capture, &joined).expect("same command");
    assert_eq!(split, whole, "chunking changed the result");

    if policy.allows_everything() {
        // Every byte goes through unchanged, but for a partial packet or line still held.
        let held = if kind < 2 { 256 * 1024 + 1024 + 4 } else { 4096 };
        for (server, got) in [(false, &split.to_server), (true, &split.to_client)] {
            let sent: Vec<u8> = chunks
                .iter()
                .filter(|(d, _)| *d == server)
                .flat_map(|(_, b)| b.iter().copied())
                .collect();
            assert!(sent.starts_with(got), "bytes changed with nothing to enforce");
            assert!(sent.len() - got.len() <= held, "{} bytes held back", sent.len() - got.len());
        }
        assert!(!split.close, "closed with nothing to enforce");
    }
});
