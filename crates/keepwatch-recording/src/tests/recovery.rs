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
    let got = match RecordingWriter::resume(&bytes[..len], key(), None) {
        Err(e) => format!("valid prefix {len} of {}\nresume: error: {e}\n", bytes.len()),
        Ok(w) => {
            let resumed_at = (w.next_seq(), w.last_at_us());
            let (tail, info) = w.seal(
                resumed_at.1 + 1,
                Seal {
                    status: SessionStatus::Interrupted,
                    reason: Some("gateway restarted".into()),
                    ended_at_us: T0 + 100,
                    unsigned_tail: None,
                },
                T0 + 100,
            );
            let mut fixed = bytes[..len].to_vec();
            fixed.extend(tail);
            let verified = verify(&fixed, &key().verifying_key());
            assert_eq!(verified.as_ref().ok().and_then(|v| v.seal_info.clone()), Some(info));
            let events = read_events(&fixed, None).unwrap();
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
                   8 Seal(Seal { status: Interrupted, reason: Some("gateway restarted"), ended_at_us: 1700000000000100, unsigned_tail: None })
        "#]],
    );
    check_recover(
        &crashed(40),
        expect![[r#"
            valid prefix 365 of 405
            resumed at seq 3, last event at 7
            verify: ok: 4 chunks, seal interrupted at chunk 3, last checkpoint 3, user alice
                   7 output ch0 "three"
                   8 Seal(Seal { status: Interrupted, reason: Some("gateway restarted"), ended_at_us: 1700000000000100, unsigned_tail: None })
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
                   9 Seal(Seal { status: Interrupted, reason: Some("gateway restarted"), ended_at_us: 1700000000000100, unsigned_tail: None })
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
    let e = RecordingWriter::resume(&bytes, key(), None).unwrap_err();
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

fn render_recovery(r: &Result<crate::Recovery, crate::RecoverError>) -> String {
    match r {
        Err(e) => format!("error: {e}"),
        Ok(r) => {
            let verified = verify(&r.bytes, &key().verifying_key());
            let events = read_events(&r.bytes, None).unwrap();
            format!(
                "cut {} bytes, unsigned tail {:?}\nverify: {}\n{}",
                r.cut_bytes,
                r.unsigned_tail,
                render_verify(&verified),
                render_events(&events[events.len() - 1..]),
            )
        }
    }
}

fn recover_as_interrupted(bytes: &[u8]) -> Result<crate::Recovery, crate::RecoverError> {
    crate::recover(
        bytes,
        &key(),
        SessionStatus::Interrupted,
        Some("gateway stopped".into()),
        T0,
        None,
    )
}

/// Issue 9: recovery checks every signature, keeps what follows the last checkpoint but
/// names it in the seal, and reports the bytes it cut.
#[test]
fn recovery_names_the_unsigned_tail_and_the_cut() {
    expect![[r#"
        cut 10 bytes, unsigned tail Some(UnsignedTail { after_seq: Some(1), bytes: 70, events: 1 })
        verify: ok: 4 chunks, seal interrupted at chunk 3, last checkpoint 3, user alice
               7 Seal(Seal { status: Interrupted, reason: Some("gateway stopped"), ended_at_us: 1700000000000000, unsigned_tail: Some(UnsignedTail { after_seq: Some(1), bytes: 70, events: 1 }) })
    "#]]
    .assert_eq(&render_recovery(&recover_as_interrupted(&crashed(10))));
}

/// A spool re-signed by someone else's key is not sealed (that would launder it).
#[test]
fn recovery_refuses_a_forged_signature() {
    let other = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let mut w = RecordingWriter::new(start(), other);
    let mut bytes = w.flush(T0, true).unwrap();
    w.push(&ev(5, out(0, "rewritten history")));
    bytes.extend(w.flush(T0 + 1, false).unwrap());
    expect!["error: chunk 0 is signed, but not by this gateway's key (forged or re-signed)"]
        .assert_eq(&render_recovery(&recover_as_interrupted(&bytes)));
}

/// Chunks appended after the last checkpoint by someone who recomputed the chain are kept,
/// but the seal says nobody vouched for them; a chunk that does not chain is cut.
#[test]
fn recovery_of_an_extended_or_edited_spool() {
    let mut w = RecordingWriter::new(start(), key());
    let mut bytes = w.flush(T0, true).unwrap();
    w.push(&ev(5, out(0, "signed")));
    bytes.extend(w.flush(T0 + 1, true).unwrap());
    // A forger who resumes the chain (but has no key) appends two unsigned chunks.
    let mut forger = RecordingWriter::resume(&bytes, other_key(), None).unwrap();
    forger.push(&ev(6, out(0, "added later")));
    forger.push(&ev(7, out(0, "and more")));
    let added = forger.flush(T0 + 2, false).unwrap();
    let mut extended = bytes.clone();
    extended.extend(&added);
    expect![[r#"
        cut 0 bytes, unsigned tail Some(UnsignedTail { after_seq: Some(1), bytes: 88, events: 2 })
        verify: ok: 4 chunks, seal interrupted at chunk 3, last checkpoint 3, user alice
               7 Seal(Seal { status: Interrupted, reason: Some("gateway stopped"), ended_at_us: 1700000000000000, unsigned_tail: Some(UnsignedTail { after_seq: Some(1), bytes: 88, events: 2 }) })
    "#]]
    .assert_eq(&render_recovery(&recover_as_interrupted(&extended)));
    // A byte changed in the signed part breaks the chain there: everything from it is cut.
    let mut edited = extended.clone();
    let n = bytes.len() - 80;
    edited[n] ^= 1;
    let r = recover_as_interrupted(&edited);
    let r = r.as_ref().unwrap();
    assert!(r.cut_bytes > added.len() as u64, "cut {}", r.cut_bytes);
    assert!(
        !read_events(&r.bytes, None)
            .unwrap()
            .iter()
            .any(|e| matches!(&e.event, Event::Output { data, .. } if data == b"signed"))
    );
}
