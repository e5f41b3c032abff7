//! Encryption at rest (format 6): data chunks sealed under the recording's data key, the
//! identity and the seal in clear, the chain over the ciphertext so `verify` needs no key.

use super::*;
use crate::{
    DataKey, ReadError, RecordingTail, StreamVerifier, read_events, recover, valid_prefix_len,
    verify,
};

fn data_key() -> DataKey {
    DataKey::from_bytes([42; 32])
}

/// The sample recording, encrypted.
fn encrypted_sample() -> Vec<u8> {
    let mut w = RecordingWriter::new(start(), key()).encrypted(data_key()).unwrap();
    let mut bytes = w.flush(T0, true).unwrap();
    w.push(&ev(100, out(0, "hello-secret-output\r\n")));
    bytes.extend(w.flush(T0 + 1_000_000, false).unwrap());
    w.push(&ev(1_100_000, input(0, "whoami-secret-input\r")));
    bytes.extend(w.flush(T0 + 2_000_000, true).unwrap());
    w.push(&ev(2_100_000, out(0, &"root\r\n".repeat(40))));
    let (tail, _) = w.seal(3_000_000, closed(), T0 + 3_000_000);
    bytes.extend(tail);
    bytes
}

#[test]
fn data_chunks_are_sealed_and_the_identity_and_seal_are_not() {
    let bytes = encrypted_sample();
    expect_test::expect![[r#"
        chunk 0 at 24: 71 -> 71 bytes [signed]
        chunk 1 at 220: 25 -> 65 bytes [encrypted]
        chunk 2 at 346: 26 -> 66 bytes [signed encrypted]
        chunk 3 at 537: 248 -> 70 bytes [zstd encrypted]
        chunk 4 at 668: 35 -> 35 bytes [signed seal]
    "#]]
    .assert_eq(&render_chunks(&bytes));
    for secret in ["hello-secret-output", "whoami-secret-input", "root\r\n"] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret:?} in clear"
        );
    }
}

#[test]
fn readers_with_the_key_see_every_event_and_verify_needs_none() {
    let bytes = encrypted_sample();
    let events = read_events(&bytes, Some(&data_key())).unwrap();
    assert_eq!(events.len(), 5, "{}", render_events(&events));
    assert_eq!(events[1].event, out(0, "hello-secret-output\r\n"));
    // verify without a key: the chain and the signatures cover the ciphertext.
    let v = verify(&bytes, &key().verifying_key()).unwrap();
    assert_eq!((v.chunks, v.start.user.as_str()), (5, "alice"));
    assert_eq!(v.seal.unwrap().status, SessionStatus::Closed);
    // With the key the verifier also opens every chunk.
    let mut s = StreamVerifier::with_data_key(key().verifying_key(), data_key());
    s.push(&bytes).unwrap();
    assert_eq!(s.finish().unwrap().chunks, 5);
    // The live reader, a piece at a time.
    let mut tail = RecordingTail::new(Some(data_key()));
    let mut seen = Vec::new();
    for piece in bytes.chunks(7) {
        tail.push(piece, &mut seen).unwrap();
    }
    assert_eq!(seen, events);
    assert_eq!(valid_prefix_len(&bytes), bytes.len());
}

#[test]
fn without_the_key_or_with_another_nothing_is_read() {
    let bytes = encrypted_sample();
    assert_eq!(read_events(&bytes, None).unwrap_err(), ReadError::NoDataKey { seq: 1 });
    let wrong = DataKey::from_bytes([1; 32]);
    assert_eq!(read_events(&bytes, Some(&wrong)).unwrap_err(), ReadError::Decrypt { seq: 1 });
    let mut s = StreamVerifier::with_data_key(key().verifying_key(), wrong);
    assert!(s.push(&bytes).is_err());
    let mut tail = RecordingTail::new(None);
    assert_eq!(tail.push(&bytes, &mut Vec::new()).unwrap_err(), ReadError::NoDataKey { seq: 1 });
}

#[test]
fn a_changed_ciphertext_breaks_the_chain_and_a_rechained_one_does_not_open() {
    let bytes = encrypted_sample();
    let first = chunks(&bytes).nth(1).unwrap().unwrap();
    let at = first.offset + crate::CHUNK_HEADER_LEN + 30;
    let mut bad = bytes.clone();
    bad[at] ^= 1;
    let e = verify(&bad, &key().verifying_key()).unwrap_err();
    assert_eq!(e.to_string(), format!("chunk 1 at byte {}: hash chain broken", first.offset));
    // Someone who recomputes the chain still cannot make the chunk open.
    let mut rechained = bad.clone();
    let c = chunks(&bad).nth(1).unwrap().unwrap();
    let h = c.computed_hash();
    let hash_at = c.offset + crate::CHUNK_HEADER_LEN + c.payload.len();
    rechained[hash_at..hash_at + 32].copy_from_slice(&h);
    assert_eq!(
        read_events(&rechained[..hash_at + 32], Some(&data_key())).unwrap_err(),
        ReadError::Decrypt { seq: 1 }
    );
}

#[test]
fn data_pushed_before_the_first_flush_is_cut_from_the_identity() {
    let mut w = RecordingWriter::new(start(), key()).encrypted(data_key()).unwrap();
    w.push(&ev(1, out(0, "early")));
    let bytes = w.flush(T0, true).unwrap();
    expect_test::expect![[r#"
        chunk 0 at 24: 71 -> 71 bytes []
        chunk 1 at 156: 9 -> 49 bytes [signed encrypted]
    "#]]
    .assert_eq(&render_chunks(&bytes));
    assert_eq!(read_events(&bytes, Some(&data_key())).unwrap().len(), 2);
}

#[test]
fn an_encrypted_identity_or_seal_is_refused() {
    // A forger who seals chunk 0 to hide the identity from key-less verification.
    let bytes = encrypted_sample();
    let mut bad = bytes.clone();
    bad[24 + 20] |= crate::FLAG_ENCRYPTED;
    assert!(verify(&bad, &key().verifying_key()).is_err());
}

#[test]
fn recovery_with_the_key_counts_the_unsigned_tail_and_seals_in_clear() {
    let mut w = RecordingWriter::new(start(), key()).encrypted(data_key()).unwrap();
    let mut bytes = w.flush(T0, true).unwrap();
    w.push(&ev(500, out(0, "after the checkpoint")));
    bytes.extend(w.flush(T0 + 1, false).unwrap());
    let torn = bytes.len();
    w.push(&ev(600, out(0, "torn")));
    bytes.extend(w.flush(T0 + 2, false).unwrap());
    bytes.truncate(torn + 10);
    let r = recover(&bytes, &key(), SessionStatus::Interrupted, None, T0 + 3, Some(&data_key()))
        .unwrap();
    assert_eq!(r.cut_bytes, 10);
    assert_eq!(r.unsigned_tail.unwrap().events, 1);
    let events = read_events(&r.bytes, Some(&data_key())).unwrap();
    assert_eq!(events.last().unwrap().at_us, 500, "sealed after the last event");
    verify(&r.bytes, &key().verifying_key()).unwrap();
}

fn seal_capture(plain: &[u8], pieces: usize) -> Vec<u8> {
    let sid = keepwatch_core::SessionId::from_bytes([3; 16]);
    let (mut sealer, mut out) = crate::CaptureSealer::new(&data_key(), &sid).unwrap();
    for piece in plain.chunks(pieces.max(1)) {
        sealer.push(piece, &mut out);
    }
    sealer.finish(&mut out);
    out
}

fn open_capture(sealed: &[u8], pieces: usize) -> Result<Vec<u8>, crate::CaptureError> {
    let sid = keepwatch_core::SessionId::from_bytes([3; 16]);
    let mut opener = crate::CaptureOpener::new(data_key(), &sid);
    let mut out = Vec::new();
    for piece in sealed.chunks(pieces.max(1)) {
        opener.push(piece, &mut out)?;
    }
    opener.finish(&mut out)?;
    Ok(out)
}

#[test]
fn captures_round_trip_in_any_pieces_and_hide_their_content() {
    use crate::CAPTURE_SEGMENT as SEG;
    for len in [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG, 3 * SEG + 17] {
        let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        for (write, read) in [(len.max(1), len.max(1) + 40), (7, 1000), (SEG + 3, 13)] {
            let sealed = seal_capture(&plain, write);
            assert_eq!(sealed.len(), 40 + len + 16 * len.div_ceil(SEG).max(1), "length {len}");
            assert_eq!(open_capture(&sealed, read).unwrap(), plain, "length {len}");
        }
    }
    let plain = b"capture-secret-marker ".repeat(10_000);
    let sealed = seal_capture(&plain, 4096);
    assert!(!sealed.windows(22).any(|w| w == b"capture-secret-marker "));
    // Each file has its own salt, hence its own key: the same content seals differently.
    assert_ne!(sealed, seal_capture(&plain, 4096));
}

#[test]
fn a_changed_cut_or_foreign_capture_does_not_open() {
    use crate::{CAPTURE_SEGMENT as SEG, CaptureError};
    let plain = vec![7u8; 2 * SEG + 100];
    let sealed = seal_capture(&plain, 1000);
    let mut flipped = sealed.clone();
    flipped[40 + SEG + 16 + 5] ^= 1;
    assert_eq!(open_capture(&flipped, 4096), Err(CaptureError::Damaged { segment: 1 }));
    // Cut at a segment boundary, and mid-segment.
    assert_eq!(open_capture(&sealed[..40 + 2 * (SEG + 16)], 4096), Err(CaptureError::Truncated));
    assert!(open_capture(&sealed[..sealed.len() - 1], 4096).is_err());
    assert_eq!(open_capture(&sealed[..30], 4096), Err(CaptureError::Truncated));
    // Segments swapped.
    let (a, b) = (40..40 + SEG + 16, 40 + SEG + 16..40 + 2 * (SEG + 16));
    let mut swapped = sealed[..40].to_vec();
    swapped.extend_from_slice(&sealed[b]);
    swapped.extend_from_slice(&sealed[a]);
    swapped.extend_from_slice(&sealed[40 + 2 * (SEG + 16)..]);
    assert_eq!(open_capture(&swapped, 4096), Err(CaptureError::Damaged { segment: 0 }));
    // Another session's capture under the same key, and a file that was never sealed.
    let other = keepwatch_core::SessionId::from_bytes([4; 16]);
    let mut opener = crate::CaptureOpener::new(data_key(), &other);
    let mut out = Vec::new();
    assert!(opener.push(&sealed, &mut out).is_err());
    assert_eq!(open_capture(&plain, 4096), Err(CaptureError::NotSealed));
}
