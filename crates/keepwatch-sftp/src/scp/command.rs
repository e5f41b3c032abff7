//! Recognising `scp -t PATH` / `scp -f PATH...` in an exec request, and naming the files its
//! records stand for on the target.

use crate::event::path_text;

use super::ScpMode;

/// What the command says about where files go or come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Command {
    pub(super) mode: ScpMode,
    /// The path arguments, after shell unquoting (`-f` may have several, from a glob).
    pub(super) args: Vec<String>,
    /// `-t` only: the target is known to be a directory (`-d`, a trailing `/`, `.`), so a
    /// top-level record lands inside it rather than at it.
    pub(super) into_dir: bool,
}

/// Parses an exec command; `None` unless it runs `scp` with exactly one of `-t` and `-f`.
pub(super) fn parse(command: &[u8]) -> Option<Command> {
    let words = shell_words(command)?;
    let mut words = words.into_iter();
    let program = words.next()?;
    if program.rsplit(|&b| b == b'/').next() != Some(b"scp".as_slice()) {
        return None;
    }
    let (mut to, mut from, mut dir_flag) = (false, false, false);
    let mut args = Vec::new();
    let mut options = true;
    for word in words {
        if options && word == b"--" {
            options = false;
        } else if options && word.len() > 1 && word[0] == b'-' {
            for &flag in &word[1..] {
                match flag {
                    b't' => to = true,
                    b'f' => from = true,
                    b'd' => dir_flag = true,
                    // Preserve times, recursive, verbose, quiet: no bearing on paths.
                    b'p' | b'r' | b'v' | b'q' => {}
                    _ => return None,
                }
            }
        } else {
            options = false;
            args.push(path_text(&word));
        }
    }
    let mode = match (to, from) {
        (true, false) => ScpMode::Upload,
        (false, true) => ScpMode::Download,
        _ => return None,
    };
    if args.is_empty() {
        args.push(".".to_string());
    }
    let first = &args[0];
    let into_dir = mode == ScpMode::Upload
        && (dir_flag || first.ends_with('/') || matches!(first.as_str(), "." | "~"));
    Some(Command { mode, args, into_dir })
}

impl Command {
    /// Where a top-level record named `name` (a file or the top of a tree) is on the target.
    ///
    /// For `-t` without `-d` the sink decides on the target whether PATH is an existing
    /// directory (then the record lands inside it) or not (then PATH is the record's new
    /// name), which cannot be seen from here: the path is then PATH itself.
    pub(super) fn top_level(&self, name: &str) -> String {
        match self.mode {
            ScpMode::Upload if self.into_dir => join(&self.args[0], name),
            ScpMode::Upload => self.args[0].clone(),
            ScpMode::Download => self
                .args
                .iter()
                .find(|arg| basename(arg) == name)
                .cloned()
                .unwrap_or_else(|| join(dirname(&self.args[0]), name)),
        }
    }
}

pub(super) fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') { format!("{dir}{name}") } else { format!("{dir}/{name}") }
}

fn basename(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

fn dirname(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(0) => "/",
        Some(i) => &trimmed[..i],
        None => ".",
    }
}

/// Splits a command line into words the way a POSIX shell would for one simple command:
/// blanks separate, `'...'` and `"..."` quote, `\` escapes. `None` unless the line is exactly
/// one plain command: an unterminated quote, a newline anywhere, or anything that makes the
/// shell run more than the command (`;`, `&`, `|`, redirections, subshells, `$` expansions
/// and backticks outside single quotes) refuses it, so `scp -f x; sh -i` is an ordinary exec
/// (recorded byte for byte), never a file-transfer channel.
fn shell_words(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    if line.iter().any(|&b| b == b'\n' || b == b'\r' || b == 0) {
        return None;
    }
    let mut words = Vec::new();
    let mut word: Option<Vec<u8>> = None;
    let mut bytes = line.iter().copied();
    while let Some(b) = bytes.next() {
        match b {
            b' ' | b'\t' => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            b';' | b'&' | b'|' | b'<' | b'>' | b'(' | b')' | b'`' | b'$' => return None,
            b'\'' => {
                let w = word.get_or_insert_with(Vec::new);
                loop {
                    match bytes.next()? {
                        b'\'' => break,
                        c => w.push(c),
                    }
                }
            }
            b'"' => {
                let w = word.get_or_insert_with(Vec::new);
                loop {
                    match bytes.next()? {
                        b'"' => break,
                        b'`' | b'$' => return None,
                        b'\\' => match bytes.next()? {
                            c @ (b'"' | b'\\' | b'$' | b'`') => w.push(c),
                            c => w.extend_from_slice(&[b'\\', c]),
                        },
                        c => w.push(c),
                    }
                }
            }
            b'\\' => match bytes.next() {
                Some(c) => word.get_or_insert_with(Vec::new).push(c),
                None => word.get_or_insert_with(Vec::new).push(b'\\'),
            },
            c => word.get_or_insert_with(Vec::new).push(c),
        }
    }
    words.extend(word);
    Some(words)
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn check(command: &str, expected: Expect) {
        let got = match parse(command.as_bytes()) {
            None => "not scp".to_string(),
            Some(c) => format!(
                "{:?} args={:?} into_dir={} top(a.txt)={}",
                c.mode,
                c.args,
                c.into_dir,
                c.top_level("a.txt")
            ),
        };
        expected.assert_eq(&got);
    }

    #[test]
    fn commands() {
        check(
            "scp -t /tmp/x",
            expect![[r#"Upload args=["/tmp/x"] into_dir=false top(a.txt)=/tmp/x"#]],
        );
        check(
            "scp -d -t /tmp",
            expect![[r#"Upload args=["/tmp"] into_dir=true top(a.txt)=/tmp/a.txt"#]],
        );
        check(
            "scp -r -d -t -- /srv/dst/",
            expect![[r#"Upload args=["/srv/dst/"] into_dir=true top(a.txt)=/srv/dst/a.txt"#]],
        );
        check(
            "/usr/bin/scp -pt .",
            expect![[r#"Upload args=["."] into_dir=true top(a.txt)=./a.txt"#]],
        );
        check(
            "scp -f /etc/a.txt",
            expect![[r#"Download args=["/etc/a.txt"] into_dir=false top(a.txt)=/etc/a.txt"#]],
        );
        check(
            "scp -f /etc/*.txt",
            expect![[r#"Download args=["/etc/*.txt"] into_dir=false top(a.txt)=/etc/a.txt"#]],
        );
        check(
            "scp -r -f 'my dir/a.txt' b",
            expect![[
                r#"Download args=["my dir/a.txt", "b"] into_dir=false top(a.txt)=my dir/a.txt"#
            ]],
        );
        check(
            r#"scp -v -f "x\"y" z\ w"#,
            expect![[r#"Download args=["x\"y", "z w"] into_dir=false top(a.txt)=./a.txt"#]],
        );
        check("scp -t -f x", expect!["not scp"]);
        check("scp x", expect!["not scp"]);
        check("scp -tz x", expect!["not scp"]);
        check("rsync --server -t x", expect!["not scp"]);
        check("scp -t 'unterminated", expect!["not scp"]);
        check("sudo scp -t x", expect!["not scp"]);
    }

    /// Issue 9: an exec is legacy SCP only when it is one plain `scp` invocation; anything
    /// that makes the shell run more is an ordinary exec, recorded byte for byte.
    #[test]
    fn only_one_plain_command() {
        for line in [
            "scp -f /nonexistent; exec sh -i 2>&1",
            "scp -t /tmp; sh",
            "scp -f /etc/hosts && sh -i",
            "scp -f /etc/hosts || sh -i",
            "scp -f /etc/hosts | sh",
            "scp -f $(sh -c id)",
            "scp -f `id`",
            "scp -f \"$(id)\"",
            "scp -f \"`id`\"",
            "scp -f ${x:-$(id)}",
            "scp -t /tmp > /dev/null",
            "scp -t /tmp < /dev/null",
            "scp -t /tmp 2>&1",
            "scp -t /tmp &",
            "(scp -t /tmp)",
            "scp -t /tmp\nsh -i",
            "scp -t /tmp\rsh",
            "scp -t '/tmp\nx'",
            "scp -t /tmp\\\nsh",
        ] {
            assert!(parse(line.as_bytes()).is_none(), "{line:?} was taken for plain scp");
        }
        // Quoted metacharacters are part of a file name.
        check(
            "scp -f '/srv/a;b $(c) `d` &e|f'",
            expect![[
                r#"Download args=["/srv/a;b $(c) `d` &e|f"] into_dir=false top(a.txt)=/srv/a.txt"#
            ]],
        );
        check(
            r#"scp -t "/srv/x;y""#,
            expect![[r#"Upload args=["/srv/x;y"] into_dir=false top(a.txt)=/srv/x;y"#]],
        );
    }
}
