//! Seeking from an indexer keyframe shows the same screen as replaying from the start.

use ed25519_dalek::SigningKey;
use keepwatch_core::{ChannelKind, SessionId};
use keepwatch_index::SessionIndexer;
use keepwatch_recording::{Event, Pty, RecordingTail, RecordingWriter, SessionStart, TimedEvent};
use keepwatch_web::playback::{replay_from_keyframe, replay_window};

fn screen_text(dump: &str, cols: u32, rows: u32) -> String {
    let mut t = avt::Terminal::new(cols as usize, rows as usize).unwrap();
    t.feed(dump);
    t.screen()
        .visible_lines()
        .map(|l| l.text().trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_keyframe_seek_matches_a_replay_from_the_start() {
    let id = SessionId::new();
    let start = SessionStart {
        session_id: id,
        user: "alice".into(),
        target: "web01".into(),
        target_host: "h".into(),
        target_login: "root".into(),
        client_addr: "c".into(),
        started_at_us: 0,
    };
    let mut w = RecordingWriter::new(start, SigningKey::from_bytes(&[1; 32]));
    let mut bytes = Vec::new();
    let pty = Some(Pty { term: "xterm".into(), cols: 80, rows: 24 });
    w.push(&TimedEvent {
        at_us: 1,
        event: Event::ChannelOpen { channel: 0, kind: ChannelKind::Shell, pty },
    });
    // Two thousand lines of coloured output a second, for a minute, in many chunks.
    let mut at = 10;
    for second in 0..60u64 {
        for line in 0..2000u64 {
            at += 400;
            let data =
                format!("\x1b[3{}m{second:03}:{line:05} some output text\x1b[0m\r\n", line % 8);
            w.push(&TimedEvent {
                at_us: at,
                event: Event::Output { channel: 0, data: data.into_bytes() },
            });
        }
        bytes.extend(w.flush(second as i64, false).unwrap_or_default());
    }
    let events = keepwatch_recording::read_events(&bytes, None).unwrap();

    let mut ix = SessionIndexer::new();
    RecordingTail::new(None)
        .push_chunks(&bytes, |offset, evs| {
            ix.chunk(offset);
            for e in evs {
                ix.event(e);
            }
        })
        .unwrap();
    let keyframes = ix.drain_keyframes();
    assert!(keyframes.len() >= 10, "a keyframe every 256 KiB: {}", keyframes.len());

    for target in [5_000_000u64, 23_456_789, 47_000_001] {
        let k = keyframes.iter().rev().find(|k| k.at_us <= target).unwrap();
        let (after, _) =
            keepwatch_recording::events_from_chunk(&bytes[k.chunk_offset as usize..], &id, None)
                .unwrap();
        let after = &after[k.skip_events as usize..];
        let seek = replay_from_keyframe(
            after,
            0,
            (&k.screen, k.cols, k.rows),
            target,
            Some(target + 1_000_000),
            0,
        );
        let full = replay_window(&events, None, target, Some(target + 1_000_000)).unwrap();
        let (seek_screen, full_screen) = (seek.keyframe.unwrap().1, full.keyframe.unwrap().1);
        assert_eq!(
            screen_text(&seek_screen, 80, 24),
            screen_text(&full_screen, 80, 24),
            "at {target}"
        );
        assert_eq!(seek.events, full.events, "the same events follow, at {target}");
        assert!(!seek.events.is_empty());
    }
}
