//! Writes the seed corpus for `recording_reader`: small valid recordings signed with the
//! fuzz target's key, so the fuzzer starts from inputs that pass every check.
//!
//! Run from the repository root: `cargo run --manifest-path fuzz/Cargo.toml --example make_seeds`.

use std::path::Path;

use ed25519_dalek::SigningKey;
use keepwatch_core::{ChannelKind, SessionId, SessionStatus};
use keepwatch_recording::{Direction, Event, Pty, RecordingWriter, Seal, SessionStart, TimedEvent};

fn main() -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/recording_reader");
    std::fs::create_dir_all(&dir)?;
    let key = SigningKey::from_bytes(&[7; 32]);
    let start = SessionStart {
        session_id: SessionId::from_bytes([1; 16]),
        user: "alice".into(),
        target: "web".into(),
        target_host: "10.0.0.5:22".into(),
        target_login: "root".into(),
        client_addr: "192.0.2.7:5000".into(),
        started_at_us: 1_700_000_000_000_000,
    };
    let ev = |at_us, event| TimedEvent { at_us, event };
    let events = [
        ev(
            1,
            Event::ChannelOpen {
                channel: 0,
                kind: ChannelKind::Shell,
                pty: Some(Pty { term: "xterm".into(), cols: 80, rows: 24 }),
            },
        ),
        ev(2, Event::Output { channel: 0, data: b"$ ".to_vec() }),
        ev(3, Event::Input { channel: 0, data: b"ls\r".to_vec() }),
        ev(4, Event::ExtOutput { channel: 0, data: b"err\n".to_vec() }),
        ev(5, Event::Resize { channel: 0, cols: 100, rows: 30 }),
        ev(
            6,
            Event::ChannelOpen {
                channel: 1,
                kind: ChannelKind::Exec { command: b"id".to_vec() },
                pty: None,
            },
        ),
        ev(
            7,
            Event::ChannelOpen {
                channel: 2,
                kind: ChannelKind::Subsystem { name: "sftp".into() },
                pty: None,
            },
        ),
        ev(8, Event::Eof { channel: 1, direction: Direction::ToClient }),
        ev(
            9,
            Event::ChannelClose {
                channel: 1,
                exit_status: Some(0),
                exit_signal: Some("TERM".into()),
            },
        ),
        ev(10, Event::Notice { channel: None, text: "bye".into() }),
    ];
    let seal = Seal { status: SessionStatus::Closed, reason: Some("done".into()), ended_at_us: 11 };

    // Sealed, one event per chunk, every other chunk a checkpoint.
    let mut w = RecordingWriter::new(start.clone(), key.clone());
    let mut bytes = Vec::new();
    for (i, e) in events.iter().enumerate() {
        w.push(e);
        bytes.extend(w.flush(i as i64, i % 2 == 1).unwrap_or_default());
    }
    let (tail, _) = w.seal(11, seal.clone(), 99);
    bytes.extend(tail);
    std::fs::write(dir.join("sealed-small"), &bytes)?;

    // Sealed with a compressed chunk.
    let mut w = RecordingWriter::new(start.clone(), key.clone());
    w.push(&ev(1, Event::Output { channel: 0, data: b"total 0\r\n".repeat(64) }));
    let mut bytes = w.flush(1, true).unwrap_or_default();
    let (tail, _) = w.seal(2, seal, 2);
    bytes.extend(tail);
    std::fs::write(dir.join("sealed-zstd"), &bytes)?;

    // Unsealed, with a torn last chunk.
    let mut w = RecordingWriter::new(start, key);
    for e in &events[..3] {
        w.push(e);
    }
    let mut bytes = w.flush(1, true).unwrap_or_default();
    w.push(&events[3]);
    let torn = w.flush(2, false).unwrap_or_default();
    bytes.extend(&torn[..torn.len() / 2]);
    std::fs::write(dir.join("torn-tail"), &bytes)?;
    Ok(())
}
