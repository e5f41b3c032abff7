//! Reading an accepted command line off the screen, prompt removed.

use avt::{Anchor, ScreenKind, Terminal};

use super::{Pos, advance, cursor, logical_end, logical_start, row_starts_with, text_from};
use crate::Confidence;

/// Where a command line starts, as seen at its prompt.
#[derive(Clone, Debug, Default)]
pub(crate) struct LineStart {
    /// The logical line left of the cursor when typing began (the prompt).
    pub(crate) text: String,
    /// Text right of the cursor on the prompt row (zsh `RPROMPT`).
    pub(crate) right: Option<String>,
    /// Where input begins, tracked by the emulator through scrolling and edits.
    pub(crate) anchor: Option<Anchor>,
    /// How many rows below the anchor the cursor has been while editing: a
    /// multi-line buffer (pasted newlines) reaches that far.
    pub(crate) extent: usize,
}

/// A command line read off the screen.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) text: String,
    pub(crate) confidence: Confidence,
    /// Last row of the line: output starts below it.
    pub(crate) end_row: usize,
}

/// Where an anchor is now on the visible primary screen.
pub(crate) fn resolve(term: &Terminal, anchor: &Anchor) -> Option<Pos> {
    let p = term.resolve(anchor)?;
    if p.screen != ScreenKind::Primary || term.active_screen_kind() != ScreenKind::Primary {
        return None;
    }
    Some((usize::try_from(p.row).ok()?, p.col))
}

/// The command line on screen after the prompt: from the prompt's end
/// through the end of the cursor's logical line (soft wraps followed, hard
/// line breaks of a multi-line buffer kept as `'\n'`), at most `cap` bytes.
pub(crate) fn read_line(term: &Terminal, start: &LineStart, cap: usize) -> Accepted {
    let rows = term.size().1;
    let (row, _) = cursor(term);
    let start_row = logical_start(term, row);
    let anchor = start.anchor.as_ref().and_then(|a| resolve(term, a)).filter(|a| a.0 <= row);
    let mut end_row = logical_end(term, row);
    if let Some((anchor_row, _)) = anchor {
        let last = (anchor_row + start.extent).min(rows.saturating_sub(1));
        end_row = end_row.max(logical_end(term, last));
    }
    // The cursor's line starts with the prompt (also after Ctrl-L or a
    // completion listing redrew it lower down). The last row that does wins:
    // after a resize the shell redraws the prompt below the old, reflowed line.
    let prompt_row = (!start.text.trim().is_empty())
        .then(|| (start_row..=row).rev().find(|&r| row_starts_with(term, r, &start.text)))
        .flatten();
    let raw = match (prompt_row, anchor) {
        (Some(r), _) => {
            Some(text_from(term, advance(term, r, start.text.chars().count()), end_row, cap))
        }
        // A multi-line buffer: the prompt is on an earlier line.
        (None, Some(pos)) => Some(text_from(term, pos, end_row, cap)),
        (None, None) => None,
    };
    let (text, confidence) = match raw {
        Some(raw) => (tidy(&raw, start.right.as_deref()), Confidence::Exact),
        None => {
            let line = text_from(term, (start_row, 0), end_row, cap);
            (tidy(&strip_guessed_prompt(&line), start.right.as_deref()), Confidence::Inferred)
        }
    };
    Accepted { text, confidence, end_row }
}

/// Trims each line's trailing blanks, drops trailing empty lines and a right prompt.
fn tidy(raw: &str, right: Option<&str>) -> String {
    let mut lines: Vec<&str> = raw.split('\n').map(str::trim_end).collect();
    if let (Some(right), Some(first)) = (right, lines.first_mut())
        && let Some(rest) = first.strip_suffix(right)
        && rest.ends_with(' ')
    {
        *first = rest.trim_end();
    }
    while lines.len() > 1 && lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines.join("\n")
}

/// Without a recognised prompt: cut after the first conventional prompt end.
fn strip_guessed_prompt(line: &str) -> String {
    for end in ["$ ", "# ", "% ", "> ", "❯ "] {
        if let Some(i) = line.find(end) {
            return line[i + end.len()..].to_owned();
        }
    }
    line.to_owned()
}
