//! Fuzzes the recording reader: arbitrary bytes must give `Ok` or an error from every
//! entry point, never a panic, and the entry points must agree with one another.
//!
//! Random bytes almost never carry a valid hash chain, so each input is also read a
//! second time with its chain recomputed (as a forger would), which lets the fuzzer
//! reach payload decoding and the session-start and seal rules through the full walk.
//!
//! Readers hold one fixed data key, so encrypted chunks (format 6) are opened too: a chunk
//! that does not open under it must give `Decrypt`, never garbage events.

#![no_main]

use std::sync::OnceLock;

use ed25519_dalek::{SigningKey, VerifyingKey};
use keepwatch_recording::{
    CHUNK_HEADER_LEN, Chunk, DataKey, ReadError, RecordingTail, RecordingWriter, Seal, StreamVerifier,
    chunks, read_events, valid_prefix_len, verify,
};
use libfuzzer_sys::fuzz_target;

/// The key `make_seeds` signs with, so seeds pass signature checks.
const KEY: [u8; 32] = [7; 32];
/// The data key every reader here opens sealed chunks with.
const DATA_KEY: [u8; 32] = [9; 32];

fn keys() -> &'static (SigningKey, VerifyingKey) {
    static KEYS: OnceLock<(SigningKey, VerifyingKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let sk = SigningKey::from_bytes(&KEY);
        let vk = sk.verifying_key();
        (sk, vk)
    })
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut fixed = data.to_vec();
    rechain(&mut fixed);
    if fixed != data {
        check(&fixed);
    }
});

fn check(data: &[u8]) {
    let (sk, vk) = keys();
    let dk = DataKey::from_bytes(DATA_KEY);
    for chunk in chunks(data) {
        let Ok(chunk) = chunk else { break };
        let _ = chunk.events(&keepwatch_core::SessionId::from_bytes([0; 16]), Some(&dk));
        let _ = chunk.computed_hash();
    }
    let events = read_events(data, Some(&dk));
    let prefix = valid_prefix_len(data);
    let verified = verify(data, vk);
    assert!(prefix <= data.len());
    // The entry points share one walk: they must agree.
    if events.is_ok() {
        assert_eq!(prefix, data.len(), "read_events accepted what valid_prefix_len cut");
    }
    // verify opens no sealed chunk (it needs no key), so only a chunk that does not open
    // under this key may set the two apart.
    if verified.is_ok() {
        assert!(
            matches!(events, Ok(_) | Err(ReadError::Decrypt { .. })),
            "verify accepted what read_events refused: {events:?}"
        );
    }
    // The incremental reader, fed in pieces, sees what read_events sees of the valid prefix.
    let piece = 1 + data.first().map_or(0, |b| usize::from(*b) * 7);
    let mut tail = RecordingTail::new(Some(dk.clone()));
    let mut tailed = Vec::new();
    let tail_ok = data[..prefix].chunks(piece).all(|p| tail.push(p, &mut tailed).is_ok());
    if let (true, Ok(whole)) = (tail_ok, read_events(&data[..prefix], Some(&dk))) {
        assert_eq!(tailed, whole, "the tail reader and read_events disagree");
    }
    // The streaming verifier, fed in pieces, says exactly what verify says of the whole.
    let mut stream = StreamVerifier::new(*vk);
    for p in data.chunks(piece) {
        if stream.push(p).is_err() {
            break;
        }
    }
    assert_eq!(stream.finish(), verified, "the streaming verifier and verify disagree");
    if prefix == 0 {
        return;
    }
    // Whatever valid_prefix_len keeps can be resumed and sealed into a readable recording.
    // valid_prefix_len checks sealed chunks as stored; one that does not open under the
    // key cannot be resumed, and says so.
    match RecordingWriter::resume(&data[..prefix], sk.clone(), Some(dk.clone())) {
        Err(ReadError::AlreadySealed { .. } | ReadError::Decrypt { .. }) => {}
        Err(e) => panic!("valid prefix of {prefix} bytes does not resume: {e}"),
        Ok(w) => {
            let at = w.last_at_us();
            let seal = Seal {
                status: keepwatch_core::SessionStatus::Interrupted,
                reason: None,
                ended_at_us: 0,
                unsigned_tail: None,
            };
            let (tail, info) = w.seal(at, seal, 0);
            let mut sealed = data[..prefix].to_vec();
            sealed.extend(tail);
            let events = read_events(&sealed, Some(&dk)).expect("resumed and sealed recording reads");
            assert!(matches!(
                events.last().map(|e| &e.event),
                Some(keepwatch_recording::Event::Seal(_))
            ));
            assert_eq!(valid_prefix_len(&sealed), sealed.len());
            let _ = info;
        }
    }
}

/// Recomputes every chunk hash in place over whatever chunks frame correctly.
fn rechain(bytes: &mut [u8]) {
    let mut fixes: Vec<(usize, [u8; 32])> = Vec::new();
    let mut prev = None;
    for chunk in chunks(bytes) {
        let Ok(chunk) = chunk else { break };
        let chunk = Chunk { prev_hash: prev.unwrap_or(chunk.prev_hash), ..chunk };
        let hash = chunk.computed_hash();
        prev = Some(hash);
        fixes.push((chunk.offset + CHUNK_HEADER_LEN + chunk.payload.len(), hash));
    }
    for (at, hash) in fixes {
        bytes[at..at + 32].copy_from_slice(&hash);
    }
}
