//! bash and zsh history expansion (`!!`, `!prefix`, `^old^new`) as seen on screen: what ran instead of what was typed.
//!
//! Without `histverify`, both shells print the expanded line right after the
//! typed one and then run it, or print an error and run nothing. The
//! extractor cannot expand events itself (the history file holds lines from
//! earlier sessions), so it reads the expansion from that first output line,
//! and accepts it only if it keeps every literal part of the typed line in
//! order.

/// What a typed line's history expansion came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expansion {
    /// The line has no event designator (or the shell did not expand it):
    /// what was typed is what ran.
    None,
    /// The shell printed and ran this line instead.
    Ran(String),
    /// The shell printed an error (event not found, ...) and ran nothing.
    Failed,
}

/// Shell messages for an expansion that fails; the line is not run.
const FAILURES: &[&str] = &[
    "event not found",
    "substitution failed",
    "bad word specifier",
    "no previous substitution",
    "no such word in event",
    "no such event",
    "bad history",
];

/// Decides what ran, given the typed line and the first line of its output.
pub(crate) fn expansion(typed: &str, first_output_line: &str) -> Expansion {
    if typed.contains('\n') {
        // Continuation lines are expanded one by one; not followed here.
        return Expansion::None;
    }
    let Some(literals) = literal_parts(typed) else {
        return Expansion::None;
    };
    let line = first_output_line.trim_end();
    if is_shell_message(line) {
        return if FAILURES.iter().any(|f| line.contains(f)) {
            Expansion::Failed
        } else {
            // `bash: !!: command not found` with `set +H`: it ran as typed.
            Expansion::None
        };
    }
    // An expansion never shows its own designators: a line that does is the
    // command's output (the shell did not expand).
    if line.trim().is_empty() || line.contains(typed) || !keeps_literals(line, &literals) {
        return Expansion::None;
    }
    Expansion::Ran(line.to_owned())
}

/// `bash: ...`, `-bash: ...`, `zsh: ...`, `dash: 2: ...`: a diagnostic, not an expanded line.
fn is_shell_message(line: &str) -> bool {
    let Some((name, _)) = line.split_once(": ") else {
        return false;
    };
    matches!(name.trim_start_matches('-'), "bash" | "zsh" | "sh" | "dash" | "ksh")
}

/// The typed line split around its event designators, or `None` when it has
/// none. Follows bash's rules: `!` followed by a blank, `=`, `(`, a double
/// quote or the end is literal, as is `$!`, `${!` and anything in single
/// quotes; a leading `^` is a quick substitution (`^old^new`).
fn literal_parts(typed: &str) -> Option<Vec<&str>> {
    if let Some(rest) = typed.strip_prefix('^') {
        // `^old^new^tail`: only the tail after the substitution is literal.
        let mut parts = rest.splitn(3, '^');
        let (_old, _new) = (parts.next()?, parts.next());
        return Some(vec!["", parts.next().unwrap_or("")]);
    }
    let bytes = typed.as_bytes();
    let mut parts = Vec::new();
    let mut literal_start = 0;
    let mut in_single = false;
    let mut in_double = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\\' if !in_single => i += 1,
            b'\'' if !in_double => in_single = !in_single,
            b'"' if !in_single => in_double = !in_double,
            b'!' if !in_single => {
                let next = bytes.get(i + 1).copied();
                let prev = i.checked_sub(1).map(|p| bytes[p]);
                let literal = matches!(next, None | Some(b' ' | b'\t' | b'=' | b'(' | b'"'))
                    || prev == Some(b'$')
                    || (prev == Some(b'{') && i >= 2 && bytes[i - 2] == b'$');
                if !literal {
                    parts.push(&typed[literal_start..i]);
                    i = designator_end(bytes, i);
                    literal_start = i;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    if parts.is_empty() {
        return None;
    }
    parts.push(&typed[literal_start..]);
    Some(parts)
}

/// Where the designator starting at `bang` (a `!`) ends: the event (`!!`,
/// `!n`, `!-n`, `!#`, `!$`, `!?str?`, `!str`) and any `:word` modifiers.
fn designator_end(bytes: &[u8], bang: usize) -> usize {
    let mut i = bang + 1;
    match bytes.get(i) {
        Some(b'!' | b'#' | b'$' | b'^' | b'*') => i += 1,
        Some(b'?') => {
            i += 1;
            while i < bytes.len() && bytes[i] != b'?' {
                i += 1;
            }
            i = (i + 1).min(bytes.len());
        }
        Some(b'-') | Some(b'0'..=b'9') => {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
        }
        _ => {
            // `!str`: up to a blank, a colon or a shell metacharacter.
            while i < bytes.len() && !b" \t:;&|<>()\"'".contains(&bytes[i]) {
                i += 1;
            }
        }
    }
    // Word designators and modifiers: `:0`, `:$`, `:h`, `:s/a/b/`, ...
    while bytes.get(i) == Some(&b':') {
        i += 1;
        while i < bytes.len() && !b" \t:;&|<>()\"'".contains(&bytes[i]) {
            i += 1;
        }
    }
    i
}

/// The expanded line starts with the first literal part, ends with the last,
/// and holds the others in between, in order.
fn keeps_literals(line: &str, literals: &[&str]) -> bool {
    let (first, rest) = literals.split_first().expect("at least two parts");
    let (last, middle) = rest.split_last().expect("at least two parts");
    let Some(mut tail) = line.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match tail.find(part) {
            Some(at) => tail = &tail[at + part.len()..],
            None => return false,
        }
    }
    tail.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    fn check(cases: &[(&str, &str)], expect: Expect) {
        let out: Vec<String> =
            cases.iter().map(|(t, o)| format!("{t:?} {o:?} => {:?}", expansion(t, o))).collect();
        expect.assert_eq(&out.join("\n"));
    }

    #[test]
    fn designators() {
        check(
            &[
                ("!!", "echo kw-bang"),
                ("sudo !!", "sudo systemctl restart nginx"),
                ("sudo !!", "systemctl restart nginx"),
                ("!ech", "echo kw-bang"),
                ("^bang^bong", "echo kw-bong"),
                ("echo !$ done", "echo /tmp done"),
                ("!-2:s/a/b/ | wc", "cat b | wc"),
                ("!kw-nosuch", "bash: !kw: event not found"),
                ("!kw-nosuch", "zsh: event not found: kw"),
                ("^x^y", "bash: :s^x^y: substitution failed"),
                ("!!", "bash: !!: command not found"),
                ("!!", "dash: 2: !!: not found"),
                ("!!", "usage: !! is literal here"),
                ("!!", ""),
                ("echo 'kw-quoted!!'", "kw-quoted!!"),
                ("echo \"hi!\"", "hi!"),
                ("[ ! -f x ]", ""),
                ("echo $! ${!ref}", "123"),
                ("ls", "!!"),
            ],
            expect![[r#"
                "!!" "echo kw-bang" => Ran("echo kw-bang")
                "sudo !!" "sudo systemctl restart nginx" => Ran("sudo systemctl restart nginx")
                "sudo !!" "systemctl restart nginx" => None
                "!ech" "echo kw-bang" => Ran("echo kw-bang")
                "^bang^bong" "echo kw-bong" => Ran("echo kw-bong")
                "echo !$ done" "echo /tmp done" => Ran("echo /tmp done")
                "!-2:s/a/b/ | wc" "cat b | wc" => Ran("cat b | wc")
                "!kw-nosuch" "bash: !kw: event not found" => Failed
                "!kw-nosuch" "zsh: event not found: kw" => Failed
                "^x^y" "bash: :s^x^y: substitution failed" => Failed
                "!!" "bash: !!: command not found" => None
                "!!" "dash: 2: !!: not found" => None
                "!!" "usage: !! is literal here" => None
                "!!" "" => None
                "echo 'kw-quoted!!'" "kw-quoted!!" => None
                "echo \"hi!\"" "hi!" => None
                "[ ! -f x ]" "" => None
                "echo $! ${!ref}" "123" => None
                "ls" "!!" => None"#]],
        );
    }
}
