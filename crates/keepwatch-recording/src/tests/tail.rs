//! The tail reader sees the same events as `read_events`, however the bytes arrive.

use super::sample;
use crate::{ReadError, RecordingTail, read_events};

#[test]
fn any_split_reads_the_same_events_as_the_whole_file() {
    let bytes = sample();
    let whole = read_events(&bytes, None).unwrap();
    for piece in [1, 7, 29, 100, bytes.len()] {
        let mut tail = RecordingTail::new(None);
        let mut events = Vec::new();
        for part in bytes.chunks(piece) {
            tail.push(part, &mut events).unwrap();
        }
        assert_eq!(events, whole, "pieces of {piece} bytes");
        assert!(tail.is_sealed());
        assert_eq!(tail.read_offset(), bytes.len() as u64);
    }
}

#[test]
fn a_torn_tail_waits_and_garbage_is_an_error() {
    let bytes = sample();
    let mut tail = RecordingTail::new(None);
    let mut events = Vec::new();
    tail.push(&bytes[..bytes.len() - 3], &mut events).unwrap();
    assert!(!tail.is_sealed(), "the seal chunk is not whole yet");
    assert_eq!(tail.read_offset(), bytes.len() as u64 - 3);
    let cut_at = tail.consumed_offset();
    assert!(cut_at < bytes.len() as u64 - 3, "the cut-off seal is not consumed");
    let before = events.len();
    tail.push(&bytes[bytes.len() - 3..], &mut events).unwrap();
    assert_eq!(events.len(), before + 1, "the seal arrives with its last bytes");
    assert_eq!(tail.consumed_offset(), bytes.len() as u64, "the seal chunk started at {cut_at}");

    let mut flipped = bytes.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x55;
    let r = RecordingTail::new(None).push(&flipped, &mut Vec::new());
    assert!(r.is_err(), "a flipped byte is reported");

    let r =
        RecordingTail::new(None).push(b"this is not a keepwatch recording at all", &mut Vec::new());
    assert_eq!(r, Err(ReadError::BadMagic));
    let r = tail.push(b"x", &mut Vec::new());
    assert!(matches!(r, Err(ReadError::TrailingAfterSeal { .. })));
}

#[test]
fn playback_can_start_at_any_chunk_the_tail_reported() {
    let bytes = sample();
    let whole = read_events(&bytes, None).unwrap();
    let mut starts = Vec::new();
    let mut seen = 0;
    RecordingTail::new(None)
        .push_chunks(&bytes, |offset, events| {
            starts.push((offset, seen));
            seen += events.len();
        })
        .unwrap();
    assert_eq!(starts.len(), 5, "five chunks");
    for (offset, before) in starts {
        let (rest, used) =
            crate::events_from_chunk(&bytes[offset as usize..], &super::session_id(), None)
                .unwrap();
        assert_eq!(used, bytes.len() - offset as usize);
        assert_eq!(rest, whole[before..], "from the chunk at byte {offset}");
        // A cut-off last chunk is left out, not an error.
        let (cut, _) = crate::events_from_chunk(
            &bytes[offset as usize..bytes.len() - 1],
            &super::session_id(),
            None,
        )
        .unwrap();
        assert!(cut.len() < rest.len());
    }
}
