//! Fuzzes keepwatch-recording's anchor line parser and crash recovery on arbitrary bytes.
//! Neither may panic; a recovered recording must verify under the key that sealed it and
//! keep exactly the prefix it says it kept.

#![no_main]

use ed25519_dalek::SigningKey;
use keepwatch_core::SessionStatus;
use keepwatch_recording::anchor::Anchor;
use keepwatch_recording::{recover, valid_prefix_len, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::from_bytes(&[7; 32]);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Anchor::parse(text, &key.verifying_key());
    }
    if let Ok(r) = recover(data, &key, SessionStatus::Interrupted, None, 1, None) {
        let kept = valid_prefix_len(data);
        assert_eq!(r.cut_bytes as usize, data.len() - kept);
        assert_eq!(&r.bytes[..kept], &data[..kept], "recovery changed what it kept");
        let v = verify(&r.bytes, &key.verifying_key()).expect("a recovered recording verifies");
        assert!(v.seal.is_some());
    }
});
