//! Measures how fast `CommandExtractor::output` consumes typical terminal output (run with `--release`).

use std::time::Instant;

use keepwatch_terminal::{CommandExtractor, ExtractorConfig};

fn main() {
    // A mix like `ls -l --color`, log tails and compiler output: colored
    // text, long lines that wrap, plain lines, and a little UTF-8.
    let mut chunk = Vec::new();
    for i in 0..2000 {
        match i % 4 {
            0 => chunk.extend_from_slice(
                format!("drwxr-xr-x  2 root root  4096 Nov 25 00:{:02} \x1b[01;34mdir{i}\x1b[0m\r\n", i % 60).as_bytes(),
            ),
            1 => chunk.extend_from_slice(
                format!("2026-11-25T00:00:{:02}Z INFO request id={i} path=/api/v1/items status=200 took=12ms {}\r\n", i % 60, "x".repeat(90)).as_bytes(),
            ),
            2 => chunk.extend_from_slice("warning: unused variable `é` — naïve ✓\r\n".as_bytes()),
            _ => chunk.extend_from_slice(b"\x1b[1m\x1b[31merror\x1b[0m: something failed\r\n"),
        }
    }
    let total_bytes: usize = 256 << 20;
    let rounds = total_bytes / chunk.len();
    // 4 KiB is a pty read; 32 KiB an SSH channel's largest data packet.
    for piece_len in [4096, 32 * 1024] {
        let mut ex = CommandExtractor::new(ExtractorConfig::default());
        // One running command, so output capture is on as in a real session.
        ex.output(0, b"$ ");
        ex.input(1, b"l");
        ex.output(2, b"l");
        ex.input(3, b"s\r");
        ex.output(4, b"s\r\n");
        let start = Instant::now();
        for r in 0..rounds {
            for piece in chunk.chunks(piece_len) {
                ex.output(5 + r as u64, piece);
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let mb = (rounds * chunk.len()) as f64 / 1e6;
        println!(
            "output() in {piece_len}-byte chunks: {mb:.0} MB in {secs:.2} s = {:.1} MB/s",
            mb / secs
        );
        let _ = ex.finish();
    }
    // Worst case for the fast path: a full-screen program redrawing with cursor moves.
    let mut redraw = Vec::new();
    for i in 0..200 {
        redraw.extend_from_slice(b"\x1b[H");
        for row in 0..24 {
            redraw.extend_from_slice(
                format!("\x1b[{};1H\x1b[7m{row:>3}\x1b[0m {:<70}", row + 1, i * row).as_bytes(),
            );
        }
    }
    let rounds = (64usize << 20) / redraw.len();
    let mut ex = CommandExtractor::new(ExtractorConfig::default());
    let start = Instant::now();
    for r in 0..rounds {
        for piece in redraw.chunks(4096) {
            ex.output(r as u64, piece);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let mb = (rounds * redraw.len()) as f64 / 1e6;
    println!(
        "output() of full-screen redraws (no fast path): {mb:.0} MB in {secs:.2} s = {:.1} MB/s",
        mb / secs
    );
}
