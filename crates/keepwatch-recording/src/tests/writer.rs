//! The writer: chunk cutting, compression, splitting large pushes, buffer bounds.

use expect_test::expect;

use super::*;
use crate::{MAX_CHUNK_PAYLOAD, MAX_DATA_EVENT, read_events, verify};

#[test]
fn flush_with_nothing_pending() {
    let mut w = RecordingWriter::new(start(), key());
    let first = w.flush(T0, false).unwrap();
    assert_eq!(w.flush(T0 + 1, false), None);
    let cp = w.flush(T0 + 2, true).unwrap();
    let mut bytes = first;
    bytes.extend(cp);
    expect![[r#"
        chunk 0 at 24: 71 -> 71 bytes []
        chunk 1 at 156: 0 -> 0 bytes [signed]
    "#]]
    .assert_eq(&render_chunks(&bytes));
    expect!["ok: 2 chunks, seal none, last checkpoint 1, user alice"]
        .assert_eq(&render_verify(&verify(&bytes, &key().verifying_key())));
}

#[test]
fn compressible_output_is_compressed_and_noise_is_not() {
    let mut w = RecordingWriter::new(start(), key());
    w.push(&ev(1, out(0, &"drwxr-xr-x 2 root root 4096 .\r\n".repeat(200))));
    let mut bytes = w.flush(T0, false).unwrap();
    w.push(&ev(2, Event::Output { channel: 0, data: noise(4096, 1) }));
    bytes.extend(w.flush(T0 + 1, false).unwrap());
    expect![[r#"
        chunk 0 at 24: 6276 -> 119 bytes [zstd]
        chunk 1 at 204: 4101 -> 4101 bytes []
    "#]]
    .assert_eq(&render_chunks(&bytes));
    assert_eq!(read_events(&bytes, None).unwrap().len(), 3);
}

#[test]
fn large_push_is_split_and_round_trips() {
    let data = noise(5 << 20, 42);
    let mut w = RecordingWriter::new(start(), key());
    w.push(&ev(7, Event::Input { channel: 3, data: data.clone() }));
    assert!(w.pending_len() <= MAX_CHUNK_PAYLOAD);
    let bytes = w.flush(T0, true).unwrap();
    expect![[r#"
        chunk 0 at 24: 5242981 -> 5242981 bytes [signed]
    "#]]
    .assert_eq(&render_chunks(&bytes));
    let events = read_events(&bytes, None).unwrap();
    let mut joined = Vec::new();
    let mut sizes = Vec::new();
    for e in &events[1..] {
        let Event::Input { channel: 3, data } = &e.event else {
            panic!("unexpected {e:?}");
        };
        assert_eq!(e.at_us, 7);
        sizes.push(data.len());
        joined.extend_from_slice(data);
    }
    assert!(sizes.iter().all(|&s| s <= MAX_DATA_EVENT));
    assert_eq!(sizes.len(), 5);
    assert!(joined == data, "data differs after the round trip");
}

#[test]
fn push_past_the_chunk_bound_cuts_several_chunks() {
    // A caller that never flushes still gets chunks within the bound.
    let mut w = RecordingWriter::new(start(), key());
    let block = vec![b'a'; MAX_DATA_EVENT];
    for i in 0..40 {
        w.push(&ev(i, Event::Output { channel: 0, data: block.clone() }));
    }
    let bytes = w.flush(T0, true).unwrap();
    expect![[r#"
        chunk 0 at 24: 15728801 -> 815 bytes [zstd]
        chunk 1 at 900: 15728730 -> 744 bytes [zstd]
        chunk 2 at 1705: 10485820 -> 499 bytes [signed zstd]
    "#]]
    .assert_eq(&render_chunks(&bytes));
    let (tail, _) = w.seal(41, closed(), T0 + 1);
    let mut bytes = bytes;
    bytes.extend(tail);
    let v = verify(&bytes, &key().verifying_key()).unwrap();
    assert_eq!(v.chunks, 4);
    let total: usize = read_events(&bytes, None)
        .unwrap()
        .iter()
        .map(|e| match &e.event {
            Event::Output { data, .. } => data.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(total, 40 * MAX_DATA_EVENT);
}

#[test]
fn seal_info_matches_the_file() {
    let mut w = RecordingWriter::new(start(), key());
    let mut bytes = w.flush(T0, false).unwrap();
    assert_eq!(w.next_seq(), 1);
    let head = w.chain_head();
    let (tail, info) = w.seal(9, closed(), T0 + 9);
    bytes.extend(tail);
    let v = verify(&bytes, &key().verifying_key()).unwrap();
    assert_eq!(v.seal_info.as_ref(), Some(&info));
    assert_eq!(v.chain_head, info.chain_head);
    assert_ne!(head, info.chain_head);
    assert_eq!((info.seq, info.sealed_at_us), (1, T0 + 9));
    assert_eq!(v.seal, Some(closed()));
}

#[test]
fn seal_without_a_flush_is_one_chunk() {
    let w = RecordingWriter::new(start(), key());
    let (bytes, info) = w.seal(0, closed(), T0);
    assert_eq!(info.seq, 0);
    expect![[r#"
        chunk 0 at 24: 103 -> 103 bytes [signed seal]
    "#]]
    .assert_eq(&render_chunks(&bytes));
    expect!["ok: 1 chunks, seal closed at chunk 0, last checkpoint 0, user alice"]
        .assert_eq(&render_verify(&verify(&bytes, &key().verifying_key())));
}
