//! Fuzzes keepwatch-pg's SCRAM-SHA-256 server and client with arbitrary messages: they must
//! never panic, and the server must never accept a proof it did not check (a fuzzer cannot
//! know the password, so no client-final-message may pass).
//!
//! Input: byte 0 picks the side (bit 0: client); the rest is split at the first 0xff byte
//! into the two messages that side receives.

#![no_main]

use keepwatch_pg::{SCRAM_SHA_256, ScramClient, ScramServer, ScramVerifier};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    let (first, second) = match rest.iter().position(|&b| b == 0xff) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    if mode & 1 == 0 {
        // One iteration keeps runs fast; the logic does not depend on the count.
        let verifier = ScramVerifier::with_salt("secret", b"salt", 1);
        let mut server = ScramServer::new(verifier).expect("randomness");
        if server.client_first(SCRAM_SHA_256, first).is_ok() {
            assert!(server.client_final(second).is_err(), "accepted a guessed proof");
        }
    } else {
        let mut client = ScramClient::new("secret").expect("randomness");
        client.client_first();
        // A server-first-message must continue our random nonce, which the fuzzer cannot
        // know; the parse must still fail cleanly.
        assert!(client.server_first(first).is_err());
        assert!(client.server_final(second).is_err());
        assert!(!client.is_verified());
    }
});
