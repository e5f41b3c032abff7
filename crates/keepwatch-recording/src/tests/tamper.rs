//! Tampering with a sealed recording, one way per case, and what verify says about it.

use expect_test::{Expect, expect};

use super::*;
use crate::{ReadError, read_events, valid_prefix_len, verify};

/// Where each chunk of the sample sits: (offset, payload start, hash start, end).
struct Layout(Vec<(usize, usize, usize, usize)>);

impl Layout {
    fn of(bytes: &[u8]) -> Layout {
        Layout(
            chunks(bytes)
                .map(|c| {
                    let c = c.unwrap();
                    let payload = c.offset + crate::CHUNK_HEADER_LEN;
                    let hash = payload + c.payload.len();
                    (c.offset, payload, hash, c.offset + c.encoded_len())
                })
                .collect(),
        )
    }
    fn chunk(&self, seq: usize) -> std::ops::Range<usize> {
        self.0[seq].0..self.0[seq].3
    }
    fn payload(&self, seq: usize) -> usize {
        self.0[seq].1
    }
    fn hash(&self, seq: usize) -> usize {
        self.0[seq].2
    }
    fn signature(&self, seq: usize) -> usize {
        self.0[seq].2 + 32
    }
}

/// Applies `tamper` to the sample and reports what verify, read_events and
/// valid_prefix_len make of the result.
fn check(tamper: impl FnOnce(&mut Vec<u8>, &Layout), expect: Expect) {
    check_with_key(tamper, &key(), expect);
}

fn check_with_key(tamper: impl FnOnce(&mut Vec<u8>, &Layout), key: &SigningKey, expect: Expect) {
    let mut bytes = sample();
    let layout = Layout::of(&bytes);
    tamper(&mut bytes, &layout);
    let verified = verify(&bytes, &key.verifying_key());
    let read = match read_events(&bytes, None) {
        Ok(events) => format!("{} events", events.len()),
        Err(e) => format!("error: {e}"),
    };
    let prefix = valid_prefix_len(&bytes);
    let whole = layout.0.iter().filter(|c| c.3 <= prefix).count();
    let got = format!(
        "verify: {}\nread: {read}\nvalid prefix: {prefix} of {} bytes ({whole} chunks)\n",
        render_verify(&verified),
        bytes.len()
    );
    expect.assert_eq(&got);
}

#[test]
fn untouched() {
    check(
        |_, _| {},
        expect![[r#"
            verify: ok: 5 chunks, seal closed at chunk 4, last checkpoint 4, user alice
            read: 6 events
            valid prefix: 693 of 693 bytes (5 chunks)
        "#]],
    );
    expect![[r#"
        chunk 0 at 24: 82 -> 82 bytes []
        chunk 1 at 167: 13 -> 13 bytes [signed]
        chunk 2 at 305: 248 -> 30 bytes [zstd]
        chunk 3 at 396: 12 -> 12 bytes [signed]
        chunk 4 at 533: 35 -> 35 bytes [signed seal]
    "#]]
    .assert_eq(&render_chunks(&sample()));
}

#[test]
fn flipped_payload_byte() {
    check(
        |b, l| b[l.payload(2) + 5] ^= 0x20,
        expect![[r#"
            verify: error: chunk 2 at byte 305: hash chain broken
            read: error: chunk 2 at byte 305: hash chain broken
            valid prefix: 305 of 693 bytes (2 chunks)
        "#]],
    );
}

#[test]
fn flipped_hash_byte() {
    check(
        |b, l| b[l.hash(1)] ^= 1,
        expect![[r#"
        verify: error: chunk 1 at byte 167: hash chain broken
        read: error: chunk 1 at byte 167: hash chain broken
        valid prefix: 167 of 693 bytes (1 chunks)
    "#]],
    );
}

#[test]
fn flipped_chunk_header_time() {
    check(
        |b, l| b[l.chunk(3).start + 12] ^= 1,
        expect![[r#"
        verify: error: chunk 3 at byte 396: hash chain broken
        read: error: chunk 3 at byte 396: hash chain broken
        valid prefix: 396 of 693 bytes (3 chunks)
    "#]],
    );
}

#[test]
fn flipped_header_session_id() {
    check(
        |b, _| b[20] ^= 1,
        expect![[r#"
        verify: error: chunk 0 at byte 24: hash chain broken
        read: error: chunk 0 at byte 24: hash chain broken
        valid prefix: 0 of 693 bytes (0 chunks)
    "#]],
    );
}

#[test]
fn bad_magic_and_version() {
    check(
        |b, _| b[0] = b'X',
        expect![[r#"
        verify: error: not a keepwatch recording (bad magic)
        read: error: not a keepwatch recording (bad magic)
        valid prefix: 0 of 693 bytes (0 chunks)
    "#]],
    );
    check(
        |b, _| b[6] = 7,
        expect![[r#"
            verify: error: unsupported recording format version 7 (this reader knows 1 to 6)
            read: error: unsupported recording format version 7 (this reader knows 1 to 6)
            valid prefix: 0 of 693 bytes (0 chunks)
        "#]],
    );
    check(
        |b, _| b.truncate(10),
        expect![[r#"
        verify: error: file header truncated: 10 of 24 bytes
        read: error: file header truncated: 10 of 24 bytes
        valid prefix: 0 of 10 bytes (0 chunks)
    "#]],
    );
    check(
        |b, _| b.clear(),
        expect![[r#"
        verify: error: recording is empty
        read: error: recording is empty
        valid prefix: 0 of 0 bytes (0 chunks)
    "#]],
    );
}

#[test]
fn dropped_middle_chunk() {
    check(
        |b, l| {
            b.drain(l.chunk(2));
        },
        expect![[r#"
            verify: error: chunk 2 missing (found chunk 3)
            read: error: chunk 2 missing (found chunk 3)
            valid prefix: 305 of 602 bytes (2 chunks)
        "#]],
    );
}

#[test]
fn swapped_chunks() {
    check(
        |b, l| {
            let (two, three) = (b[l.chunk(2)].to_vec(), b[l.chunk(3)].to_vec());
            b.splice(l.chunk(2).start..l.chunk(3).end, three.into_iter().chain(two));
        },
        expect![[r#"
            verify: error: chunk 2 missing (found chunk 3)
            read: error: chunk 2 missing (found chunk 3)
            valid prefix: 305 of 693 bytes (2 chunks)
        "#]],
    );
}

#[test]
fn seal_chunk_cut_off() {
    check(
        |b, l| b.truncate(l.chunk(4).start),
        expect![[r#"
        verify: ok: 4 chunks, seal none, last checkpoint 3, user alice
        read: 5 events
        valid prefix: 533 of 533 bytes (4 chunks)
    "#]],
    );
}

#[test]
fn truncated_mid_chunk() {
    check(
        |b, l| b.truncate(l.chunk(4).end - 10),
        expect![[r#"
        verify: error: chunk 4 at byte 533 truncated
        read: error: chunk 4 at byte 533 truncated
        valid prefix: 533 of 683 bytes (4 chunks)
    "#]],
    );
    check(
        |b, l| b.truncate(l.chunk(2).start + 3),
        expect![[r#"
        verify: error: chunk header at byte 305 truncated
        read: error: chunk header at byte 305 truncated
        valid prefix: 305 of 308 bytes (2 chunks)
    "#]],
    );
    check(
        |b, l| b.truncate(l.chunk(0).end - 1),
        expect![[r#"
        verify: error: chunk 0 at byte 24 truncated
        read: error: chunk 0 at byte 24 truncated
        valid prefix: 0 of 166 bytes (0 chunks)
    "#]],
    );
}

#[test]
fn wrong_key() {
    check_with_key(
        |_, _| {},
        &other_key(),
        expect![[r#"
        verify: error: chunk 1 signature invalid
        read: 6 events
        valid prefix: 693 of 693 bytes (5 chunks)
    "#]],
    );
}

#[test]
fn corrupted_checkpoint_signature() {
    check(
        |b, l| b[l.signature(1) + 7] ^= 0x80,
        expect![[r#"
        verify: error: chunk 1 signature invalid
        read: 6 events
        valid prefix: 693 of 693 bytes (5 chunks)
    "#]],
    );
}

#[test]
fn corrupted_seal_signature() {
    check(
        |b, l| b[l.signature(4)] ^= 1,
        expect![[r#"
        verify: error: chunk 4 signature invalid
        read: 6 events
        valid prefix: 693 of 693 bytes (5 chunks)
    "#]],
    );
}

#[test]
fn signature_stripped_from_checkpoint() {
    // Clearing the flag and dropping the signature changes the hashed header.
    check(
        |b, l| {
            b[l.chunk(1).start + 20] &= !crate::FLAG_SIGNED;
            b.drain(l.signature(1)..l.chunk(1).end);
        },
        expect![[r#"
            verify: error: chunk 1 at byte 167: hash chain broken
            read: error: chunk 1 at byte 167: hash chain broken
            valid prefix: 167 of 629 bytes (1 chunks)
        "#]],
    );
}

#[test]
fn bytes_after_seal() {
    check(
        |b, _| b.extend_from_slice(b"KWCH"),
        expect![[r#"
        verify: error: unexpected bytes after seal at byte 693
        read: error: unexpected bytes after seal at byte 693
        valid prefix: 693 of 697 bytes (5 chunks)
    "#]],
    );
    check(
        |b, l| {
            let again = b[l.chunk(4)].to_vec();
            b.extend(again);
        },
        expect![[r#"
            verify: error: unexpected bytes after seal at byte 693
            read: error: unexpected bytes after seal at byte 693
            valid prefix: 693 of 853 bytes (5 chunks)
        "#]],
    );
}

#[test]
fn forged_chain_without_signatures() {
    // Someone with write access rebuilds the chain over altered bytes: the chain then
    // holds, but the checkpoint signatures give it away.
    let mut bytes = sample();
    let layout = Layout::of(&bytes);
    // "exit\r" becomes "eXit\r" (chunk 3 is stored raw).
    let p = layout.payload(3) + 8;
    bytes[p] ^= 0x20;
    rechain(&mut bytes);
    let events = read_events(&bytes, None).unwrap();
    expect![[r#"3100000 input ch0 "eXit\r""#]].assert_eq(render_events(&events[4..5]).trim());
    expect!["error: chunk 3 signature invalid"]
        .assert_eq(&render_verify(&verify(&bytes, &key().verifying_key())));
}

#[test]
fn rechained_garbage_payloads() {
    // With the chain rebuilt, the payload checks themselves have to catch these.
    check(
        |b, l| {
            // The tag of chunk 0's last event (an 11-byte output).
            b[l.hash(0) - 11] = 99;
            rechain(b);
        },
        expect![[r#"
            verify: error: payload of chunk 0 does not decode: unknown event tag 99 at payload byte 71
            read: error: payload of chunk 0 does not decode: unknown event tag 99 at payload byte 71
            valid prefix: 0 of 693 bytes (0 chunks)
        "#]],
    );
    check(
        |b, l| {
            b[l.payload(2) + 12] ^= 0xff;
            rechain(b);
        },
        expect![[r#"
            verify: error: payload of chunk 2 does not decode: unknown event tag 240 at payload byte 6
            read: error: payload of chunk 2 does not decode: unknown event tag 240 at payload byte 6
            valid prefix: 305 of 693 bytes (2 chunks)
        "#]],
    );
    check(
        |b, l| {
            b[l.payload(2)] ^= 0xff; // the zstd frame magic
            rechain(b);
        },
        expect![[r#"
            verify: error: payload of chunk 2 does not decompress: not a zstd frame
            read: error: payload of chunk 2 does not decompress: not a zstd frame
            valid prefix: 305 of 693 bytes (2 chunks)
        "#]],
    );
    check(
        |b, l| {
            // Seal flag on a chunk whose last event is not the seal.
            b[l.chunk(3).start + 20] |= crate::FLAG_SEAL;
            rechain(b);
        },
        expect![[r#"
            verify: error: chunk 3 signature invalid
            read: error: chunk 3: seal flag does not match its events
            valid prefix: 396 of 693 bytes (3 chunks)
        "#]],
    );
}

/// Recomputes every chunk hash in place, as a forger would.
fn rechain(bytes: &mut [u8]) {
    let fixes: Vec<(usize, [u8; 32])> = {
        let mut prev = None;
        chunks(bytes)
            .map(|c| {
                let c = c.unwrap();
                let c = Chunk { prev_hash: prev.unwrap_or(c.prev_hash), ..c };
                let h = c.computed_hash();
                prev = Some(h);
                (c.offset + crate::CHUNK_HEADER_LEN + c.payload.len(), h)
            })
            .collect()
    };
    for (at, h) in fixes {
        bytes[at..at + 32].copy_from_slice(&h);
    }
}

#[test]
fn errors_name_what_and_where() {
    let e = ReadError::ChainBroken { seq: 7, offset: 81234 };
    expect!["chunk 7 at byte 81234: hash chain broken"].assert_eq(&e.to_string());
    let e = VerifyError::from(ReadError::Missing { expected: 5, found: 6 });
    expect!["chunk 5 missing (found chunk 6)"].assert_eq(&e.to_string());
}
