//! Fuzzes keepwatch-ssh's agent channel filter: arbitrary bytes from either side, in arbitrary
//! pieces. It must never panic, hold at most one message per side, forward only whole
//! messages of the allowed types, and give the same result however the bytes are cut.
//!
//! Input: chunks of a header byte (bit 7: from the agent; bits 0-6: length) and that many bytes.

#![no_main]

use keepwatch_ssh::agent::{AgentFilter, AgentSide, MAX_MESSAGE};
use libfuzzer_sys::fuzz_target;

fn run(chunks: &[(bool, Vec<u8>)]) -> (Vec<u8>, Vec<u8>, bool) {
    let mut f = AgentFilter::default();
    let (mut forwarded, mut replies, mut closed) = (Vec::new(), Vec::new(), false);
    for (from_agent, bytes) in chunks {
        let side = if *from_agent { AgentSide::Agent } else { AgentSide::Target };
        let v = f.feed(side, bytes);
        // Whole messages only: each forwarded piece frames exactly.
        let mut pos = 0;
        while pos < v.forward.len() {
            let len = u32::from_be_bytes(v.forward[pos..pos + 4].try_into().unwrap()) as usize;
            assert!(len > 0 && len <= MAX_MESSAGE);
            let ty = v.forward[pos + 4];
            let allowed: &[u8] = if *from_agent { &[5, 6, 12, 14, 28] } else { &[11, 13, 27] };
            assert!(allowed.contains(&ty), "type {ty} forwarded");
            pos += 4 + len;
        }
        assert_eq!(pos, v.forward.len(), "a partial message was forwarded");
        forwarded.extend(v.forward);
        replies.extend(v.reply);
        closed |= v.close.is_some();
        if closed {
            break;
        }
    }
    (forwarded, replies, closed)
}

fuzz_target!(|data: &[u8]| {
    let mut chunks = Vec::new();
    let mut rest = data;
    while let [header, tail @ ..] = rest {
        let len = usize::from(header & 0x7f).min(tail.len());
        chunks.push((header & 0x80 != 0, tail[..len].to_vec()));
        rest = &tail[len..];
    }
    let split = run(&chunks);
    // The same bytes, each run from one side joined.
    let mut joined: Vec<(bool, Vec<u8>)> = Vec::new();
    for (side, bytes) in chunks {
        match joined.last_mut() {
            Some((s, b)) if *s == side => b.extend(bytes),
            _ => joined.push((side, bytes)),
        }
    }
    let whole = run(&joined);
    if !split.2 && !whole.2 {
        assert_eq!(split, whole, "chunking changed the result");
    }
});
