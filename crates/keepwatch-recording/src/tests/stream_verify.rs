//! The streaming verifier against the whole-file walk: for the sample recording and every
//! damaged variant of it (cut at every length, each byte flipped, bytes appended), pushed in
//! pieces of many sizes, `StreamVerifier` gives exactly what the walk with signature checks
//! gives (issue 10: the console verifies recordings piece by piece).

use super::*;
use crate::read::walk;
use crate::verify::Signatures;
use crate::{StreamVerifier, verify};

/// The reference: the whole-file walk `verify` used before it streamed.
fn by_walk(bytes: &[u8], key: &SigningKey) -> Result<Verified, VerifyError> {
    let mut sig = Signatures { key: key.verifying_key(), last_signed: None };
    let s = walk(bytes, crate::chunk::PayloadBuf::skipping(), &mut sig).1?;
    let (seal, seal_info) = match s.seal {
        Some(x) => (
            Some(x.seal),
            Some(crate::SealInfo {
                seq: x.seq,
                chain_head: x.hash,
                signature: x.signature,
                sealed_at_us: x.time_us,
            }),
        ),
        None => (None, None),
    };
    Ok(Verified {
        start: s.start,
        reason: s.reason,
        seal,
        seal_info,
        chain_head: s.chain_head,
        chunks: s.chunks,
        last_checkpoint_seq: sig.last_signed,
    })
}

fn streamed(bytes: &[u8], key: &SigningKey, piece: usize) -> Result<Verified, VerifyError> {
    let mut v = StreamVerifier::new(key.verifying_key());
    for p in bytes.chunks(piece.max(1)) {
        if v.push(p).is_err() {
            break;
        }
    }
    v.finish()
}

fn agree(bytes: &[u8], what: &str, pieces: &[usize]) {
    let key = key();
    let want = by_walk(bytes, &key);
    assert_eq!(verify(bytes, &key.verifying_key()), want, "verify, {what}");
    for &piece in pieces {
        assert_eq!(streamed(bytes, &key, piece), want, "{what}, pieces of {piece}");
    }
}

#[test]
fn streaming_agrees_with_the_walk() {
    let good = sample();
    // Signature checks are slow in debug builds: every piece size on the intact recording,
    // a few (one byte at a time among them) on the damaged ones.
    agree(&good, "untouched", &[1, 2, 3, 7, 24, 29, 30, 64, 100, 137, 500, good.len()]);
    assert!(by_walk(&good, &key()).is_ok());
    let few = [1, 30, 137];
    agree(&[], "empty", &few);
    // Every place near a chunk boundary (and in the file header), and a stride elsewhere.
    let starts: Vec<usize> = chunks(&good).map(|c| c.unwrap().offset).collect();
    let near = |i: usize| i < 30 || starts.iter().any(|&o| i.abs_diff(o) <= 2);
    for len in (0..good.len()).filter(|&i| near(i) || i % 11 == 0) {
        agree(&good[..len], &format!("cut at {len}"), &few);
    }
    for i in (0..good.len()).filter(|&i| near(i) || i % 13 == 0) {
        let mut bad = good.clone();
        bad[i] ^= 0x40;
        agree(&bad, &format!("byte {i} flipped"), &few);
    }
    for extra in [&b"K"[..], b"KWCH", &[0; 40]] {
        let mut bad = good.clone();
        bad.extend_from_slice(extra);
        agree(&bad, &format!("{} bytes after the seal", extra.len()), &few);
    }
    // An unsealed prefix of whole chunks (a live recording) verifies as such.
    let live = &good[..starts[3]];
    let v = streamed(live, &key(), 5).unwrap();
    assert_eq!((v.chunks, v.seal.is_none()), (3, true));
}

#[test]
fn memory_is_one_chunk_plus_the_piece() {
    let good = sample();
    let mut v = StreamVerifier::new(key().verifying_key());
    for p in good.chunks(3) {
        v.push(p).unwrap();
        assert!(v.offset() as usize <= good.len());
        assert!(v.pending.len() < 300, "holds {} bytes", v.pending.len());
    }
    assert!(v.is_sealed());
    v.finish().unwrap();
}
