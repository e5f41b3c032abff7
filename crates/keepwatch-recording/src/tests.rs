//! Shared fixtures for the crate's data-driven tests: a fixed key and session, a sample
//! recording, and text renderings of events and verification results.

mod codec;
mod crypt;
mod recovery;
mod stream_verify;
mod tail;
mod tamper;
mod writer;

use std::fmt::Write as _;

use ed25519_dalek::SigningKey;
use keepwatch_core::{ChannelKind, SessionId, SessionStatus};

use crate::{
    Chunk, Direction, Event, Pty, RecordingWriter, Seal, SessionStart, TimedEvent, Verified,
    VerifyError, chunks,
};

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn other_key() -> SigningKey {
    SigningKey::from_bytes(&[8; 32])
}

fn session_id() -> SessionId {
    SessionId::from_bytes([
        0x01, 0x93, 0xf1, 0xc2, 0x00, 0x00, 0x70, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x01,
    ])
}

fn start() -> SessionStart {
    SessionStart {
        session_id: session_id(),
        user: "alice".into(),
        target: "web-1".into(),
        target_host: "10.0.0.5:22".into(),
        target_login: "root".into(),
        client_addr: "192.0.2.7:51234".into(),
        started_at_us: 1_700_000_000_000_000,
    }
}

const T0: i64 = 1_700_000_000_000_000;

fn ev(at_us: u64, event: Event) -> TimedEvent {
    TimedEvent { at_us, event }
}

fn out(channel: u32, data: &str) -> Event {
    Event::Output { channel, data: data.as_bytes().to_vec() }
}

fn input(channel: u32, data: &str) -> Event {
    Event::Input { channel, data: data.as_bytes().to_vec() }
}

/// One of every event kind, in a plausible order.
fn every_event() -> Vec<TimedEvent> {
    vec![
        ev(
            10,
            Event::ChannelOpen {
                channel: 0,
                kind: ChannelKind::Shell,
                pty: Some(Pty { term: "xterm-256color".into(), cols: 80, rows: 24 }),
            },
        ),
        ev(20, out(0, "$ ")),
        ev(21, out(0, "")),
        ev(1_000, input(0, "ls\r")),
        ev(1_500, Event::ExtOutput { channel: 0, data: b"warning\xff\n".to_vec() }),
        ev(2_000, Event::Resize { channel: 0, cols: 120, rows: 40 }),
        ev(
            2_100,
            Event::ChannelOpen {
                channel: 1,
                kind: ChannelKind::Exec { command: b"uptime".to_vec() },
                pty: None,
            },
        ),
        ev(
            2_200,
            Event::ChannelOpen {
                channel: 2,
                kind: ChannelKind::Subsystem { name: "sftp".into() },
                pty: None,
            },
        ),
        ev(3_000, Event::Eof { channel: 1, direction: Direction::ToClient }),
        ev(3_001, Event::Eof { channel: 0, direction: Direction::ToTarget }),
        ev(3_100, Event::ChannelClose { channel: 1, exit_status: Some(0), exit_signal: None }),
        ev(
            3_200,
            Event::ChannelClose { channel: 2, exit_status: None, exit_signal: Some("KILL".into()) },
        ),
        ev(
            4_000,
            Event::Notice {
                channel: Some(0),
                text: "session will be terminated in 5 minutes".into(),
            },
        ),
        ev(
            4100,
            Event::Env {
                channel: 0,
                name: "LC_X".into(),
                value: "eval me".into(),
                forwarded: true,
            },
        ),
        ev(u64::MAX, Event::Notice { channel: None, text: "clock at the end of time".into() }),
    ]
}

fn closed() -> Seal {
    Seal {
        status: SessionStatus::Closed,
        reason: Some("client disconnected".into()),
        ended_at_us: T0 + 9_000_000,
        unsigned_tail: None,
    }
}

/// The sample recording the tamper tests start from: five chunks, 1 and 3 checkpoints,
/// 4 the seal.
fn sample() -> Vec<u8> {
    let mut w = RecordingWriter::new(start(), key());
    let mut bytes = Vec::new();
    w.push(&ev(100, out(0, "hello\r\n")));
    bytes.extend(w.flush(T0 + 1_000_000, false).unwrap());
    w.push(&ev(1_100_000, input(0, "whoami\r")));
    bytes.extend(w.flush(T0 + 2_000_000, true).unwrap());
    w.push(&ev(2_100_000, out(0, &"root\r\n".repeat(40))));
    bytes.extend(w.flush(T0 + 3_000_000, false).unwrap());
    w.push(&ev(3_100_000, input(0, "exit\r")));
    bytes.extend(w.flush(T0 + 4_000_000, true).unwrap());
    let (tail, _) = w.seal(5_000_000, closed(), T0 + 5_000_000);
    bytes.extend(tail);
    bytes
}

/// One line per event, data shown as escaped text.
fn render_events(events: &[TimedEvent]) -> String {
    let mut s = String::new();
    for e in events {
        let text = |d: &[u8]| d.escape_ascii().to_string();
        let line = match &e.event {
            Event::Output { channel, data } => format!("output ch{channel} \"{}\"", text(data)),
            Event::ExtOutput { channel, data } => format!("stderr ch{channel} \"{}\"", text(data)),
            Event::Input { channel, data } => format!("input ch{channel} \"{}\"", text(data)),
            other => format!("{other:?}"),
        };
        writeln!(s, "{:>8} {line}", e.at_us).unwrap();
    }
    s
}

/// The chunk list of a recording: seq, offset, flags and lengths.
fn render_chunks(bytes: &[u8]) -> String {
    let mut s = String::new();
    for c in chunks(bytes) {
        match c {
            Ok(c) => writeln!(s, "{}", render_chunk(&c)).unwrap(),
            Err(e) => writeln!(s, "error: {e}").unwrap(),
        }
    }
    s
}

fn render_chunk(c: &Chunk<'_>) -> String {
    let mut flags = Vec::new();
    if c.flags & crate::FLAG_SIGNED != 0 {
        flags.push("signed");
    }
    if c.flags & crate::FLAG_ZSTD != 0 {
        flags.push("zstd");
    }
    if c.is_seal() {
        flags.push("seal");
    }
    if c.is_encrypted() {
        flags.push("encrypted");
    }
    format!(
        "chunk {} at {}: {} -> {} bytes [{}]",
        c.seq,
        c.offset,
        c.uncompressed_len,
        c.payload.len(),
        flags.join(" ")
    )
}

fn render_verify(r: &Result<Verified, VerifyError>) -> String {
    match r {
        Err(e) => format!("error: {e}"),
        Ok(v) => {
            let seal = match (&v.seal, &v.seal_info) {
                (Some(s), Some(i)) => format!("{} at chunk {}", s.status, i.seq),
                (None, None) => "none".into(),
                _ => "inconsistent".into(),
            };
            let cp = v.last_checkpoint_seq.map_or("none".to_string(), |s| s.to_string());
            format!(
                "ok: {} chunks, seal {seal}, last checkpoint {cp}, user {}",
                v.chunks, v.start.user
            )
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A cheap deterministic byte stream that zstd cannot compress.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(len);
    v
}
