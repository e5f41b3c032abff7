//! Splits the bytes a person typed into the few kinds of key the extractor cares about.

/// A key, as far as command extraction is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    /// Enter (CR or LF outside a bracketed paste).
    Enter,
    /// Ctrl-C.
    Interrupt,
    /// A character that the line editor would insert.
    Printable,
    /// A newline inside a bracketed paste (inserted, not Enter).
    PastedNewline,
    /// A UTF-8 continuation byte of the printable character before it.
    More,
    /// Anything else: arrows, Ctrl-A/E/W/U/K/R, Tab, Backspace, Alt-x.
    Edit,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Ground,
    Esc,
    /// Inside `ESC [`; collects the parameter bytes to spot `200~`/`201~`.
    Csi,
    /// `ESC O x`.
    Ss3,
}

/// Longest CSI parameter string kept; longer ones are not paste markers.
const MAX_PARAMS: usize = 8;

/// Streaming key decoder; sequences may be split across `input` calls.
#[derive(Debug, Default)]
pub(crate) struct KeyDecoder {
    state: State,
    params: [u8; MAX_PARAMS],
    params_len: usize,
    /// Between `ESC [ 200 ~` and `ESC [ 201 ~`.
    in_paste: bool,
}

impl KeyDecoder {
    /// Decodes one byte; `None` while inside a sequence.
    pub(crate) fn push(&mut self, byte: u8) -> Option<Key> {
        match self.state {
            State::Ground => match byte {
                0x1b => {
                    self.state = State::Esc;
                    None
                }
                b'\r' | b'\n' if self.in_paste => Some(Key::PastedNewline),
                b'\r' | b'\n' => Some(Key::Enter),
                0x03 => Some(Key::Interrupt),
                0x00..=0x1f | 0x7f => Some(Key::Edit),
                // UTF-8 continuation bytes are part of the character already counted.
                0x80..=0xbf => Some(Key::More),
                _ => Some(Key::Printable),
            },
            State::Esc => {
                self.state = match byte {
                    b'[' => {
                        self.params_len = 0;
                        State::Csi
                    }
                    b'O' => State::Ss3,
                    _ => State::Ground,
                };
                (self.state == State::Ground).then_some(Key::Edit)
            }
            State::Csi => {
                if (0x40..=0x7e).contains(&byte) {
                    self.state = State::Ground;
                    if byte == b'~' {
                        match &self.params[..self.params_len] {
                            b"200" => {
                                self.in_paste = true;
                                return None;
                            }
                            b"201" => {
                                self.in_paste = false;
                                return None;
                            }
                            _ => {}
                        }
                    }
                    Some(Key::Edit)
                } else if (0x20..=0x3f).contains(&byte) {
                    if self.params_len < MAX_PARAMS {
                        self.params[self.params_len] = byte;
                        self.params_len += 1;
                    }
                    None
                } else {
                    // Not a key sequence after all; start over on this byte.
                    self.state = State::Ground;
                    self.push(byte)
                }
            }
            State::Ss3 => {
                self.state = State::Ground;
                Some(Key::Edit)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    fn check(input: &[u8], expect: Expect) {
        let mut decoder = KeyDecoder::default();
        let keys: Vec<_> =
            input.iter().filter_map(|&b| decoder.push(b)).filter(|k| *k != Key::More).collect();
        expect.assert_eq(&format!("{keys:?}"));
    }

    #[test]
    fn keys() {
        check(b"ls\r", expect!["[Printable, Printable, Enter]"]);
        check(
            b"a\x1b[Db\x1bOA\x7f\x01\x03",
            expect!["[Printable, Edit, Printable, Edit, Edit, Edit, Interrupt]"],
        );
        check(b"\x1b[200~a\rb\x1b[201~\r", expect!["[Printable, PastedNewline, Printable, Enter]"]);
        check("é".as_bytes(), expect!["[Printable]"]);
        check(b"\x1b[12345678901234~x", expect!["[Edit, Printable]"]);
    }
}
