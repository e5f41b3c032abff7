//! Fast-forward through bulk output (`cat` of a big file): plain lines that scroll off before the chunk ends need not be emulated cell by cell.
//!
//! A span of a chunk can be skipped when it holds only text, CR LF, tab,
//! backspace, BEL and SGR (colour) sequences, starts and ends just after a
//! CR LF with the parser in its ground state, brings the cursor to the
//! bottom row, and is followed by a screenful more of such lines. Then whatever it
//! drew has scrolled off by the end of the chunk, and the screen is the same
//! as if the span had been emulated; its text goes to the output capture by
//! a simple renderer instead. Only its SGR state has to be carried over.

/// Where the byte stream is, as far as escape sequences go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ScanState {
    #[default]
    Ground,
    Esc,
    /// Inside CSI; `sgr` while it can still be a plain SGR.
    Csi {
        sgr: bool,
    },
    /// OSC, DCS, SOS, PM, APC string (ends with BEL or ST).
    Str,
    StrEsc,
}

use std::collections::VecDeque;

/// A span to skip, found by [`scan`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Skip {
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// Start of the SGR sequences to replay (from the last full reset on).
    pub(crate) sgr_from: usize,
    /// Line feeds in the span: the cursor must reach the bottom row by its end.
    pub(crate) line_feeds: usize,
}

/// Skipping pays off only for spans this long.
pub(crate) const MIN_SKIP: usize = 1024;

/// Scans `data` from `state`; returns the state at its end and a span to
/// skip, if there is one, for a screen of `rows` rows.
pub(crate) fn scan(mut state: ScanState, data: &[u8], rows: usize) -> (ScanState, Option<Skip>) {
    let mut best: Option<Skip> = None;
    // The current run of simple bytes: where it starts (just after a CR LF),
    // its line feeds, and where the last `rows + 1` of them end.
    let mut run: Option<usize> = None;
    let mut lfs: VecDeque<usize> = VecDeque::new();
    let mut run_lfs = 0usize;
    let mut prev = 0u8;
    let mut close = |run: &mut Option<usize>, lfs: &mut VecDeque<usize>, run_lfs: &mut usize| {
        // The span ends where `rows` line feeds of the run remain after it:
        // those scroll in a whole fresh screen, whatever the span drew.
        if let Some(start) = run.take()
            && rows > 0
            && lfs.len() == rows + 1
            && *run_lfs > rows
        {
            let end = lfs[0];
            let line_feeds = *run_lfs - rows;
            let longer = best.as_ref().is_none_or(|b| b.end - b.start < end - start);
            if end - start >= MIN_SKIP && longer {
                let sgr_from = last_reset(&data[start..end]).map_or(start, |i| start + i);
                best = Some(Skip { start, end, sgr_from, line_feeds });
            }
        }
        lfs.clear();
        *run_lfs = 0;
    };
    for (i, &b) in data.iter().enumerate() {
        let simple = match state {
            ScanState::Ground => match b {
                0x1b => {
                    state = ScanState::Esc;
                    true
                }
                // C1 controls spelled in UTF-8 (U+0080..U+009F).
                0x80..=0x9f if prev == 0xc2 => false,
                b'\r' | b'\t' | 0x07 | 0x08 | 0x20..=0x7e | 0x80..=0xff => true,
                b'\n' if prev == b'\r' => {
                    match run {
                        Some(_) => {
                            run_lfs += 1;
                            if lfs.len() == rows + 1 {
                                lfs.pop_front();
                            }
                            lfs.push_back(i + 1);
                        }
                        None => run = Some(i + 1),
                    }
                    true
                }
                _ => false,
            },
            ScanState::Esc => match b {
                b'[' => {
                    state = ScanState::Csi { sgr: true };
                    true
                }
                b']' | b'P' | b'X' | b'^' | b'_' => {
                    state = ScanState::Str;
                    false
                }
                0x1b | 0x20..=0x2f => false,
                _ => {
                    state = ScanState::Ground;
                    false
                }
            },
            ScanState::Csi { sgr } => match b {
                b'0'..=b'9' | b';' => sgr,
                b'm' => {
                    state = ScanState::Ground;
                    sgr
                }
                0x40..=0x7e => {
                    state = ScanState::Ground;
                    false
                }
                0x1b => {
                    state = ScanState::Esc;
                    false
                }
                0x18 | 0x1a => {
                    state = ScanState::Ground;
                    false
                }
                _ => {
                    state = ScanState::Csi { sgr: false };
                    false
                }
            },
            ScanState::Str => {
                match b {
                    0x07 | 0x18 | 0x1a => state = ScanState::Ground,
                    0x1b => state = ScanState::StrEsc,
                    _ => {}
                }
                false
            }
            ScanState::StrEsc => {
                state = if b == b'\\' { ScanState::Ground } else { ScanState::Str };
                false
            }
        };
        if !simple {
            close(&mut run, &mut lfs, &mut run_lfs);
        }
        prev = b;
    }
    close(&mut run, &mut lfs, &mut run_lfs);
    (state, best)
}

/// Offset of the last full SGR reset (`ESC [ m`, `ESC [ 0 m`) in `span`.
fn last_reset(span: &[u8]) -> Option<usize> {
    let mut i = span.len();
    while i > 0 {
        i -= 1;
        if span[i] == 0x1b && span.get(i + 1) == Some(&b'[') {
            let rest = &span[i + 2..];
            let Some(end) = rest.iter().position(|&b| b == b'm') else {
                continue;
            };
            if rest[..end].iter().all(|&b| b == b'0') {
                return Some(i);
            }
        }
    }
    None
}

/// The SGR sequences of `span` (ESC [ digits/; m), concatenated.
pub(crate) fn sgr_sequences(span: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < span.len() {
        if span[i] == 0x1b && span[i + 1] == b'[' {
            let mut j = i + 2;
            while j < span.len() && matches!(span[j], b'0'..=b'9' | b';') {
                j += 1;
            }
            if j < span.len() && span[j] == b'm' {
                out.extend_from_slice(&span[i..=j]);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// Renders a simple span as text: SGR dropped, CR LF ends a line, a lone CR
/// starts the line over, backspace removes a character, tabs to stops of 8.
pub(crate) fn render(span: &[u8], mut push: impl FnMut(char) -> bool) {
    let text = String::from_utf8_lossy(span);
    let mut line = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                for d in chars.by_ref() {
                    if d == 'm' {
                        break;
                    }
                }
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\r' => line.clear(),
            '\n' => {
                for c in line.trim_end().chars() {
                    if !push(c) {
                        return;
                    }
                }
                if !push('\n') {
                    return;
                }
                line.clear();
            }
            '\x08' => {
                line.pop();
            }
            '\t' => {
                let n = 8 - line.chars().count() % 8;
                line.extend(std::iter::repeat_n(' ', n));
            }
            '\x07' => {}
            c => line.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn lines(n: usize, width: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            out.extend_from_slice(format!("\x1b[31m{i:0width$}\x1b[0m\r\n").as_bytes());
        }
        out
    }

    #[test]
    fn finds_a_span_that_scrolls_off() {
        let data = lines(2000, 20);
        let (state, skip) = scan(ScanState::Ground, &data, 24);
        assert_eq!(state, ScanState::Ground);
        let skip = skip.expect("a span to skip");
        // Starts after the first line, ends with 24 line feeds to spare.
        let tail = &data[skip.end..];
        assert_eq!(tail.iter().filter(|&&b| b == b'\n').count(), 24);
        assert_eq!(&data[skip.start - 2..skip.start], b"\r\n");
    }

    #[test]
    fn escapes_other_than_sgr_break_the_span() {
        let mut data = lines(1000, 20);
        data.extend_from_slice(b"\x1b[H");
        data.extend(lines(30, 20));
        let (_, skip) = scan(ScanState::Ground, &data, 24);
        let skip = skip.expect("the span before the cursor move");
        let tail = &data[skip.end..];
        let before_move = tail.windows(3).position(|w| w == b"\x1b[H").unwrap();
        assert_eq!(tail[..before_move].iter().filter(|&&b| b == b'\n').count(), 24);
        // Inside an OSC string nothing is simple, until it ends.
        let (state, skip) = scan(ScanState::Str, &lines(2000, 20), 24);
        assert_eq!((state, skip.is_some()), (ScanState::Str, false));
        let mut data = b"title\x07\r\n".to_vec();
        data.extend(lines(2000, 20));
        let (state, skip) = scan(ScanState::Str, &data, 24);
        assert_eq!((state, skip.is_some()), (ScanState::Ground, true));
        let (_, skip) = scan(ScanState::Ground, b"\x1b]0;title", 24);
        assert!(skip.is_none());
    }

    #[test]
    fn renders_text() {
        let mut out = String::new();
        render(b"a\x1b[1mb\x1b[0m\tc\r\nprogress 10%\rprogress 99%\r\nx\x08y\r\n", |c| {
            out.push(c);
            true
        });
        expect![[r#"
            ab      c
            progress 99%
            y
        "#]]
        .assert_eq(&out);
    }
}
