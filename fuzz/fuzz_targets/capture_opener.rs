//! Fuzzes the opener of sealed file copies: arbitrary bytes, in arbitrary pieces, must give
//! content or a `CaptureError`, never a panic, and the same answer however they are cut. A
//! copy sealed from the input itself must open to exactly the input, in any pieces.

#![no_main]

use keepwatch_core::SessionId;
use keepwatch_recording::{CaptureError, CaptureOpener, CaptureSealer, DataKey};
use libfuzzer_sys::fuzz_target;

fn open(sealed: &[u8], piece: usize) -> Result<Vec<u8>, CaptureError> {
    let sid = SessionId::from_bytes([5; 16]);
    let mut opener = CaptureOpener::new(DataKey::from_bytes([9; 32]), &sid);
    let mut out = Vec::new();
    for p in sealed.chunks(piece) {
        opener.push(p, &mut out)?;
    }
    opener.finish(&mut out)?;
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let piece = 1 + data.first().map_or(0, |b| usize::from(*b) * 97);
    let whole = open(data, data.len().max(1));
    assert_eq!(open(data, piece), whole, "the answer depends on how the bytes were cut");

    let sid = SessionId::from_bytes([5; 16]);
    let (mut sealer, mut sealed) = CaptureSealer::new(&DataKey::from_bytes([9; 32]), &sid).unwrap();
    for p in data.chunks(piece) {
        sealer.push(p, &mut sealed);
    }
    sealer.finish(&mut sealed);
    assert_eq!(open(&sealed, piece).as_deref(), Ok(data));
});
