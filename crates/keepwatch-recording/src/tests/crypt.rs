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
