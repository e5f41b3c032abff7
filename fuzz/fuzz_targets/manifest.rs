//! Fuzzes keepwatch-recording's archive manifest parser and chunk-extent reader on arbitrary
//! bytes. Neither may panic; a manifest that parses must come back from its own signed text
//! the same, and a segment it finds for a byte must hold that byte.

#![no_main]

use ed25519_dalek::SigningKey;
use keepwatch_core::SessionId;
use keepwatch_recording::manifest::{Manifest, chunk_extent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = chunk_extent(data, 0);
    let session = SessionId::from_bytes([7; 16]);
    if let Ok(m) = Manifest::parse_unverified(data, session) {
        let key = SigningKey::from_bytes(&[7; 32]);
        let again = Manifest::parse(m.to_text(&key).as_bytes(), &key.verifying_key(), session)
            .expect("a manifest re-signed parses");
        assert_eq!(again, m);
        for probe in [0, m.len / 2, m.len.saturating_sub(1)] {
            if let Some(i) = m.segment_at(probe) {
                let s = &m.segments[i];
                assert!(s.start <= probe && probe < s.start + s.len);
            }
        }
    }
});
