//! Telling a shell prompt from any other line a person types at, by its text alone.

/// What the text left of the cursor is, when a person starts typing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PromptKind {
    /// A shell waiting for a new command (`$ `, `root@db1:~# `, `% `).
    Primary,
    /// A shell waiting for the rest of a command (`> `, zsh's `for> `, `heredoc> `).
    Continuation,
    /// Something else reading input: a password prompt, `cat`, a program's question.
    NotPrompt,
}

/// Characters a shell prompt conventionally ends with (before its trailing space).
const PROMPT_ENDS: &[char] = &['$', '#', '%', '>', '❯', '➜', '»', 'λ', '→'];

/// Classifies `text`, the logical line left of the cursor. `known` are prompts
/// already seen as primary in this channel.
pub(crate) fn classify<'a>(text: &str, mut known: impl Iterator<Item = &'a str>) -> PromptKind {
    let trimmed = text.trim_end();
    if trimmed.is_empty() {
        return PromptKind::NotPrompt;
    }
    if known.any(|k| k == text) {
        return PromptKind::Primary;
    }
    if is_continuation(trimmed) {
        return PromptKind::Continuation;
    }
    match trimmed.chars().next_back() {
        Some(c) if PROMPT_ENDS.contains(&c) => PromptKind::Primary,
        _ => PromptKind::NotPrompt,
    }
}

/// `>` alone or after lowercase words: bash/dash `PS2`, zsh's `%_> `.
fn is_continuation(trimmed: &str) -> bool {
    let Some(words) = trimmed.strip_suffix('>') else {
        return false;
    };
    words.len() <= 40 && words.chars().all(|c| c.is_ascii_lowercase() || c == ' ')
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    fn check(cases: &[&str], expect: Expect) {
        let out: Vec<String> = cases
            .iter()
            .map(|t| format!("{t:?} {:?}", classify(t, ["weird: "].into_iter())))
            .collect();
        expect.assert_eq(&out.join("\n"));
    }

    #[test]
    fn prompts() {
        check(
            &[
                "$ ",
                "root@db1:~# ",
                "% ",
                "kw@h:/tmp% ",
                "> ",
                "for then> ",
                "heredoc> ",
                "Password: ",
                "[sudo] password for kw: ",
                "",
                "   ",
                "weird: ",
                "❯ ",
                "foo$ ",
            ],
            expect![[r#"
                "$ " Primary
                "root@db1:~# " Primary
                "% " Primary
                "kw@h:/tmp% " Primary
                "> " Continuation
                "for then> " Continuation
                "heredoc> " Continuation
                "Password: " NotPrompt
                "[sudo] password for kw: " NotPrompt
                "" NotPrompt
                "   " NotPrompt
                "weird: " Primary
                "❯ " Primary
                "foo$ " Primary"#]],
        );
    }
}
