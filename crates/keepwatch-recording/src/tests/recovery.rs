//! Crash recovery: cutting a torn tail, resuming and sealing as interrupted.

use expect_test::{Expect, expect};

use super::*;
use crate::{ReadError, read_events, valid_prefix_len, verify};

/// A recording whose gateway died mid-write: chunks 0..=2 whole, chunk 3 torn after
/// `torn` of its bytes.
fn crashed(torn: usize) -> Vec<u8> {
    let mut w = RecordingWriter::new(start(), key());
    let mut bytes = Vec::new();
    w.push(&ev(5, out(0, "one")));
    bytes.extend(w.flush(T0 + 1, false).unwrap());
    w.push(&ev(6, out(0, "two")));
    bytes.extend(w.flush(T0 + 2, true).unwrap());
    w.push(&ev(7, out(0, "three")));
    bytes.extend(w.flush(T0 + 3, false).unwrap());
    w.push(&ev(8, out(0, "four")));
    let last = w.flush(T0 + 4, false).unwrap();
    bytes.extend(&last[..torn.min(last.len())]);
    bytes
}

/// Cuts the file to its valid prefix, resumes, seals as interrupted, and verifies.
fn check_recover(bytes: &[u8], expect: Expect) {
    let len = valid_prefix_len(bytes);
    let got = match RecordingWriter::resume(&bytes[..len], key()) {
        Err(e) => format!("valid prefix {len} of {}\nresume: error: {e}\n", bytes.len()),
        Ok(w) => {
            let resumed_at = (w.next_seq(), w.last_at_us());
            let (tail, info) = w.seal(
                resumed_at.1 + 1,
                Seal {
                    status: SessionStatus::Interrupted,
                    reason: Some("gateway restarted".into()),
                    ended_at_us: T0 + 100,
                },
                T0 + 100,
            );
            let mut fixed = bytes[..len].to_vec();
            fixed.extend(tail);
            let verified = verify(&fixed, &key().verifying_key());
            assert_eq!(verified.as_ref().ok().and_then(|v| v.seal_info.clone()), Some(info));
            let events = read_events(&fixed).unwrap();
            format!(
                "valid prefix {len} of {}\nresumed at seq {}, last event at {}\nverify: {}\n{}",
                bytes.len(),
                resumed_at.0,
                resumed_at.1,
                render_verify(&verified),
                render_events(&events[events.len() - 2..]),
            )
        }
    };
    expect.assert_eq(&got);
}

#[test]
fn torn_tail_is_cut_and_sealed() {
    check_recover(
        &crashed(10),
        expect![[r#"
        valid prefix 365 of 375
        resumed at seq 3, last event at 7
        verify: ok: 4 chunks, seal interrupted at chunk 3, last checkpoint 3, user alice
               7 output ch0 "three"
               8 Seal(Seal { status: Interrupted, reason: Some("gateway restarted"), ended_at_us: 1700000000000100 })
    "#]],
    );
    check_recover(
        &crashed(40),
        expect![[r#"
        valid prefix 365 of 405
        resumed at seq 3, last event at 7
        verify: ok: 4 chunks, seal interrupted at chunk 3, last checkpoint 3, user alice
               7 output ch0 "three"
               8 Seal(Seal { status: Interrupted, reason: Some("gateway restarted"), ended_at_us: 1700000000000100 })
    "#]],
    );
}

#[test]
fn whole_tail_is_kept() {
    check_recover(
        &crashed(usize::MAX),
        expect![[r#"
        valid prefix 434 of 434
        resumed at seq 4, last event at 8
        verify: ok: 5 chunks, seal interrupted at chunk 4, last checkpoint 4, user alice
               8 output ch0 "four"
               9 Seal(Seal { status: Interrupted, reason: Some("gateway restarted"), ended_at_us: 1700000000000100 })
    "#]],
    );
}

#[test]
fn torn_first_chunk_leaves_nothing() {
    let mut w = RecordingWriter::new(start(), key());
    let first = w.flush(T0, false).unwrap();
    check_recover(
        &first[..first.len() - 1],
        expect![[r#"
        valid prefix 0 of 155
        resume: error: recording is empty
    "#]],
    );
    check_recover(
        &first[..5],
        expect![[r#"
        valid prefix 0 of 5
        resume: error: recording is empty
    "#]],
    );
}

#[test]
fn sealed_recording_cannot_resume() {
    let bytes = sample();
    assert_eq!(valid_prefix_len(&bytes), bytes.len());
    check_recover(
        &bytes,
        expect![[r#"
        valid prefix 693 of 693
        resume: error: recording 0193f1c2-0000-7000-8000-000000000001 already sealed at chunk 4
    "#]],
    );
}

#[test]
fn resume_refuses_a_torn_prefix() {
    let bytes = crashed(40);
    let e = RecordingWriter::resume(&bytes, key()).unwrap_err();
    assert!(matches!(e, ReadError::TruncatedChunk { seq: 3, .. }), "{e}");
}

#[test]
fn valid_prefix_stops_at_a_broken_chain() {
    let mut bytes = crashed(usize::MAX);
    let whole = bytes.len();
    let c2 = chunks(&bytes).nth(2).unwrap().unwrap().offset;
    bytes[c2 + crate::CHUNK_HEADER_LEN] ^= 1;
    assert_eq!(valid_prefix_len(&bytes), c2);
    assert!(c2 < whole);
}
