//! Free text from outside (login names, reasons, error messages) made safe to store and
//! print: nothing in it may act on the terminal or log viewer that shows it, and nothing may
//! grow without bound.
//!
//! An SSH login name is whatever the client sends, so `"\x1b]0;pwned\x07alice"` is a
//! possible audit actor; stored raw it would retitle (or worse) the terminal of the auditor
//! who lists the trail. [`clean`] escapes such characters visibly and caps the length.

use std::borrow::Cow;
use std::fmt::Write as _;

/// The longest audit actor kept, in bytes (after escaping).
pub const MAX_ACTOR_BYTES: usize = 128;
/// The longest audit detail kept, in bytes (after escaping).
pub const MAX_DETAIL_BYTES: usize = 4096;

/// Characters that are not controls but still change how the text around them is drawn or
/// read: bidirectional overrides and isolates (the "Trojan Source" trick), zero-width
/// joiners and spaces that make two different names look alike, and the Unicode line and
/// paragraph separators some viewers break lines at.
fn is_format_control(c: char) -> bool {
    matches!(c,
        '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}'
        | '\u{feff}')
}

/// Whether `c` is shown escaped by [`escape_controls`].
pub fn needs_escape(c: char) -> bool {
    c.is_control() || is_format_control(c)
}

/// `s` with every control character (C0, DEL, C1) and format control escaped visibly:
/// `\n`, `\r`, `\t` by name, other controls as `\xNN` (`\u{NNNN}` above 0xff), so
/// `"\x1b]0;x\x07"` becomes the characters `\x1b]0;x\x07`. Everything else is kept,
/// backslashes included (so the text stays readable; an escaped control and the same
/// characters typed literally look alike, but neither acts on the terminal).
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if needs_escape(c) && (c as u32) <= 0xff => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:04x}}}", c as u32);
        }
        c => out.push(c),
    }
}

fn marker(cut: usize) -> String {
    format!("…[{cut} more bytes cut]")
}

/// What is stored and printed of text from outside: [`escape_controls`], cut to at most
/// `max` bytes (escapes count) on a character boundary and never inside an escape, ending
/// in a marker that says how many bytes of `s` were cut. `max` must leave room for the
/// marker (about 30 bytes).
pub fn clean(s: &str, max: usize) -> String {
    let escaped = escape_controls(s);
    if escaped.len() <= max {
        return escaped.into_owned();
    }
    // The marker is longest with the most digits, so leave room for cutting everything.
    let budget = max.saturating_sub(marker(s.len()).len());
    let mut out = String::with_capacity(max);
    let mut kept = s.len();
    for (i, c) in s.char_indices() {
        let before = out.len();
        push_escaped(&mut out, c);
        if out.len() > budget {
            out.truncate(before);
            kept = i;
            break;
        }
    }
    out.push_str(&marker(s.len() - kept));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, max: usize, expected: &str) {
        let got = clean(input, max);
        assert_eq!(got, expected, "clean({input:?}, {max})");
        assert!(got.len() <= max, "{got:?} is longer than {max}");
        assert!(!got.chars().any(needs_escape), "{got:?} still holds a control");
    }

    #[test]
    fn controls_are_escaped_visibly() {
        check("alice", 128, "alice");
        check("\x1b]0;pwned\x07alice", 128, "\\x1b]0;pwned\\x07alice");
        check("a\nb\r\tc", 128, "a\\nb\\r\\tc");
        check("del\x7f c1\u{9b}", 128, "del\\x7f c1\\x9b");
        check("admin\u{202e}nimda", 128, "admin\\u{202e}nimda");
        check("al\u{200d}ice", 128, "al\\u{200d}ice");
        check("line\u{2028}sep", 128, "line\\u{2028}sep");
        check("plain \\x1b stays", 128, "plain \\x1b stays");
        check("é ü 日本", 128, "é ü 日本");
    }

    #[test]
    fn long_text_is_capped_on_a_char_boundary() {
        check(&"a".repeat(200), 128, &format!("{}…[95 more bytes cut]", "a".repeat(105)));
        // Three-byte characters: the cut never splits one.
        let got = clean(&"日".repeat(100), 64);
        assert!(got.len() <= 64 && got.starts_with("日日") && got.ends_with("more bytes cut]"));
        // The escapes count towards the cap, and one is kept whole or not at all.
        check(&"\x1b".repeat(100), 64, &format!("{}…[90 more bytes cut]", "\\x1b".repeat(10)));
    }
}
