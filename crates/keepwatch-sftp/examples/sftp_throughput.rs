//! Throughput of the tracker on a 1 GiB download and upload (release build).
use keepwatch_sftp::{Output, SftpTracker, TransferPolicy};
use sha2::{Digest, Sha256};
use std::time::Instant;

fn pkt(ty: u8, fields: &[&[u8]]) -> Vec<u8> {
    let body: Vec<u8> =
        std::iter::once(&[ty][..]).chain(fields.iter().copied()).flatten().copied().collect();
    [&(body.len() as u32).to_be_bytes()[..], &body].concat()
}
fn s(b: &[u8]) -> Vec<u8> {
    [&(b.len() as u32).to_be_bytes()[..], b].concat()
}
fn status(id: u32, code: u32) -> Vec<u8> {
    pkt(101, &[&id.to_be_bytes(), &code.to_be_bytes(), &s(b""), &s(b"")])
}

fn main() {
    const TOTAL: u64 = 1 << 30;
    const CHUNK: usize = 32 * 1024;
    const ROUND: u64 = 64;
    let track = std::env::var_os("NOTRACK").is_none();
    let payload = vec![0xa5u8; CHUNK];
    let h = b"\0\0\0\x01";
    let t0 = Instant::now();
    let mut sh = Sha256::new();
    for _ in 0..TOTAL / CHUNK as u64 {
        sh.update(&payload);
    }
    let _ = sh.finalize();
    println!("raw sha256: {:.2} GB/s", TOTAL as f64 / t0.elapsed().as_secs_f64() / 1e9);

    // download: answers are the same bytes every round (ids repeat once answered)
    let mut t = SftpTracker::new(TransferPolicy::default());
    let mut out = Output::default();
    t.from_client(
        &pkt(3, &[&1u32.to_be_bytes(), &s(b"/f"), &1u32.to_be_bytes(), &0u32.to_be_bytes()]),
        &mut out,
    );
    t.from_server(&pkt(102, &[&1u32.to_be_bytes(), &s(h)]), &mut out);
    out.clear();
    let answers: Vec<u8> = (0..ROUND as u32)
        .flat_map(|k| pkt(103, &[&(10 + k).to_be_bytes(), &s(&payload)]))
        .collect();
    let start = Instant::now();
    let mut off = 0u64;
    let mut reqs = Vec::new();
    while off < TOTAL {
        reqs.clear();
        for k in 0..ROUND {
            let o = off + k * CHUNK as u64;
            reqs.extend(pkt(
                5,
                &[
                    &(10 + k as u32).to_be_bytes(),
                    &s(h),
                    &o.to_be_bytes(),
                    &(CHUNK as u32).to_be_bytes(),
                ],
            ));
        }
        if track {
            t.from_client(&reqs, &mut out);
        }
        out.clear();
        for piece in answers.chunks(32000) {
            if track {
                t.from_server(piece, &mut out);
            }
            out.clear();
        }
        off += ROUND * CHUNK as u64;
    }
    t.from_client(
        &pkt(5, &[&5u32.to_be_bytes(), &s(h), &TOTAL.to_be_bytes(), &(CHUNK as u32).to_be_bytes()]),
        &mut out,
    );
    t.from_server(&status(5, 1), &mut out);
    t.from_client(&pkt(4, &[&6u32.to_be_bytes(), &s(h)]), &mut out);
    t.from_server(&status(6, 0), &mut out);
    println!(
        "download: {:.2} GB/s {:?}",
        TOTAL as f64 / start.elapsed().as_secs_f64() / 1e9,
        out.events.last().map(|e| e.to_string())
    );

    // upload: writes patched in place with their offsets
    let mut t = SftpTracker::new(TransferPolicy::default());
    let mut out = Output::default();
    t.from_client(
        &pkt(3, &[&1u32.to_be_bytes(), &s(b"/f"), &0x1au32.to_be_bytes(), &0u32.to_be_bytes()]),
        &mut out,
    );
    t.from_server(&pkt(102, &[&1u32.to_be_bytes(), &s(h)]), &mut out);
    out.clear();
    let one = pkt(6, &[&0u32.to_be_bytes(), &s(h), &0u64.to_be_bytes(), &s(&payload)]);
    let mut writes: Vec<u8> = Vec::new();
    for k in 0..ROUND as u32 {
        let mut p = one.clone();
        p[5..9].copy_from_slice(&(10 + k).to_be_bytes());
        writes.extend(p);
    }
    let acks: Vec<u8> = (0..ROUND as u32).flat_map(|k| status(10 + k, 0)).collect();
    let start = Instant::now();
    let mut off = 0u64;
    while off < TOTAL {
        for k in 0..ROUND as usize {
            let at = k * one.len() + 4 + 1 + 4 + 4 + h.len();
            writes[at..at + 8].copy_from_slice(&(off + (k * CHUNK) as u64).to_be_bytes());
        }
        for piece in writes.chunks(32000) {
            if track {
                t.from_client(piece, &mut out);
            }
            out.clear();
        }
        if track {
            t.from_server(&acks, &mut out);
        }
        out.clear();
        off += ROUND * CHUNK as u64;
    }
    t.from_client(&pkt(4, &[&6u32.to_be_bytes(), &s(h)]), &mut out);
    t.from_server(&status(6, 0), &mut out);
    println!(
        "upload: {:.2} GB/s {:?}",
        TOTAL as f64 / start.elapsed().as_secs_f64() / 1e9,
        out.events.last().map(|e| e.to_string())
    );
}
