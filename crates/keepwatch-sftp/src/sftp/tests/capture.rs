//! Content capture: the pieces a tracker hands out, put together per content id, are the
//! whole file exactly when the transfer says `Capture::Whole`, whatever the chunking.

use std::collections::HashMap;

use super::encode::*;
use super::{Step, content};
use crate::{Capture, ContentId, Output, SftpEvent, SftpTracker, SkipReason, Transfer};

use Step::{C, S};

const H: &[u8] = b"\0\0\0\x01";

/// Feeds the script in chunks of `chunk` bytes with capture up to `max`; returns the content
/// put together per id and the transfers.
fn captured(
    max: u64,
    steps: &[Step],
    chunk: usize,
) -> (HashMap<ContentId, Vec<u8>>, Vec<Transfer>) {
    let mut t = SftpTracker::new(Default::default()).with_capture(max);
    let mut kept: HashMap<ContentId, Vec<u8>> = HashMap::new();
    let mut transfers = Vec::new();
    let mut out = Output::default();
    for step in steps {
        let bytes = match step {
            C(b) | S(b) => b,
            Step::Finish => unreachable!("scripts here end with a close"),
        };
        for piece in bytes.chunks(chunk) {
            out.clear();
            match step {
                C(_) => t.from_client(piece, &mut out),
                _ => t.from_server(piece, &mut out),
            }
            for p in &out.content {
                kept.entry(p.id).or_default().extend_from_slice(&out.forward[p.range.clone()]);
            }
            for e in out.events.drain(..) {
                if let SftpEvent::Transfer(tr) = e {
                    transfers.push(tr);
                }
            }
        }
    }
    (kept, transfers)
}

fn hello() -> Vec<Step> {
    vec![C(init()), S(version(3))]
}

/// Checks every chunking: one outcome, and the whole file kept when it says so.
fn check(max: u64, steps: &[Step], file: &[u8], expected: Capture) {
    for chunk in [1, 7, usize::MAX] {
        let (kept, transfers) = captured(max, steps, chunk);
        assert_eq!(transfers.len(), 1, "chunk {chunk}");
        let capture = transfers[0].capture.clone().expect("capture is on");
        assert_eq!(capture, expected, "chunk {chunk}");
        if let Capture::Whole(id) = capture {
            assert_eq!(kept.get(&id).map_or(&[][..], Vec::as_slice), file, "chunk {chunk}");
        }
    }
}

fn download(file: &[u8], reads: &[(u32, u64, usize)]) -> Vec<Step> {
    let mut steps = hello();
    steps.push(C(open(1, "/srv/a.bin", READ)));
    steps.push(S(handle(1, H)));
    for &(id, offset, len) in reads {
        steps.push(C(read(id, H, offset, len as u32)));
        let start = offset as usize;
        steps.push(S(if start >= file.len() {
            status(id, EOF, "End of file")
        } else {
            data(id, &file[start..(start + len).min(file.len())])
        }));
    }
    steps.push(C(close(99, H)));
    steps.push(S(status(99, OK, "Success")));
    steps
}

#[test]
fn a_download_in_order_is_kept_whole() {
    let file = content(100);
    let steps = download(&file, &[(2, 0, 40), (3, 40, 40), (4, 80, 40), (5, 100, 40)]);
    check(1 << 20, &steps, &file, Capture::Whole(ContentId(0)));
}

#[test]
fn an_empty_file_is_kept_empty() {
    let steps = download(&[], &[(2, 0, 40)]);
    check(1 << 20, &steps, &[], Capture::Whole(ContentId(0)));
}

#[test]
fn an_upload_in_order_is_kept_whole() {
    let file = content(100);
    let mut steps = hello();
    steps.extend([
        C(open(1, "/srv/up.bin", WRITE | CREAT | TRUNC)),
        S(handle(1, H)),
        C([write(2, H, 0, &file[..40]), write(3, H, 40, &file[40..])].concat()),
        S([status(2, OK, "Success"), status(3, OK, "Success")].concat()),
        C(close(4, H)),
        S(status(4, OK, "Success")),
    ]);
    check(1 << 20, &steps, &file, Capture::Whole(ContentId(1)));
}

#[test]
fn out_of_order_over_the_cap_or_cut_short_is_skipped() {
    let file = content(100);
    // Hashed whole (the tracker reorders for the hash) but not kept.
    let reordered = download(&file, &[(2, 40, 60), (3, 0, 40), (4, 100, 40)]);
    let skipped = |reason| Capture::Skipped { id: ContentId(0), reason };
    check(1 << 20, &reordered, &file, skipped(SkipReason::OutOfOrder));
    let (_, t) = captured(1 << 20, &reordered, usize::MAX);
    assert!(t[0].sha256.is_some() && t[0].complete);

    let whole = download(&file, &[(2, 0, 40), (3, 40, 40), (4, 80, 40), (5, 100, 40)]);
    check(50, &whole, &file, skipped(SkipReason::OverCap { max: 50 }));

    let cut = download(&file, &[(2, 0, 40)]);
    check(1 << 20, &cut, &file, skipped(SkipReason::Incomplete));
}
