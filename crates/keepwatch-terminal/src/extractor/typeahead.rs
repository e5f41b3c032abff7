//! Lines typed while no prompt was on screen (before the shell's first prompt, or while a command ran), and finding the prompts that later read them.
//!
//! The tty echoes such a line at once, wherever the cursor is. When the shell
//! gets to it, it draws a prompt and reads the line: readline and zle draw it
//! again after the prompt and move to the next row; dash (no line editor)
//! draws nothing, so the command's output lands on the prompt row. A program
//! that reads the line instead (`cat`, a password prompt) draws no prompt for
//! it. So a typed-ahead line ran as a command exactly when a shell prompt row
//! shows up between its echo and the prompt the shell is idle at.

use std::collections::VecDeque;

use avt::{Anchor, Terminal};

use crate::Confidence;
use crate::input::Key;
use crate::screen::{self, logical_end, logical_start, row_starts_with};

/// Lines kept; a program fed more than this (a `mysql` session) keeps the last.
const MAX_LINES: usize = 16;
/// Bytes kept per line.
const MAX_LINE: usize = 1024;

/// One line typed with no prompt on screen, Enter included.
#[derive(Debug)]
pub(super) struct TypedLine {
    /// The keys as the tty's line discipline would have them (erase, kill and
    /// word-erase applied).
    bytes: Vec<u8>,
    /// Only printable keys and those tty edits were used: `bytes` is the line.
    plain: bool,
    /// When Enter was pressed.
    pub(super) at_us: u64,
    /// Where the tty echoed its first key.
    anchor: Option<Anchor>,
}

impl TypedLine {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).trim().to_owned()
    }
}

/// The lines typed ahead, and the one being typed.
#[derive(Debug, Default)]
pub(super) struct Typeahead {
    lines: VecDeque<TypedLine>,
    partial: Option<TypedLine>,
}

/// A typed-ahead line that a shell prompt read: a command that ran.
#[derive(Debug)]
pub(super) struct Consumed {
    pub(super) text: String,
    pub(super) confidence: Confidence,
    pub(super) prompt: String,
    pub(super) started_at_us: u64,
    pub(super) output: String,
}

impl Typeahead {
    /// Lines were completed with Enter and not yet read by a prompt.
    pub(super) fn has_lines(&self) -> bool {
        !self.lines.is_empty()
    }

    /// Anything typed without a prompt, finished or not.
    pub(super) fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.partial.is_none()
    }

    pub(super) fn clear(&mut self) {
        self.lines.clear();
        self.partial = None;
    }

    /// A key typed with no prompt on screen; `anchor` is the cursor, for the
    /// first key of a line.
    pub(super) fn key(
        &mut self,
        at_us: u64,
        key: Key,
        byte: u8,
        anchor: impl FnOnce() -> Option<Anchor>,
    ) {
        if key == Key::Interrupt {
            // Ctrl-C interrupts what runs and the tty flushes what was typed.
            self.clear();
            return;
        }
        let line = self.partial.get_or_insert_with(|| TypedLine {
            bytes: Vec::new(),
            plain: true,
            at_us,
            anchor: anchor(),
        });
        match (key, byte) {
            (Key::Enter | Key::PastedNewline, _) => {
                let mut line = self.partial.take().expect("inserted above");
                line.at_us = at_us;
                if self.lines.len() == MAX_LINES {
                    self.lines.pop_front();
                }
                self.lines.push_back(line);
            }
            (Key::Printable | Key::More, _) if line.bytes.len() < MAX_LINE => line.bytes.push(byte),
            (Key::Printable | Key::More, _) => line.plain = false,
            // The tty's erase, kill and word-erase (dash has no line editor).
            (Key::Edit, 0x7f | 0x08) => {
                while let Some(b) = line.bytes.pop() {
                    if b & 0xc0 != 0x80 {
                        break;
                    }
                }
            }
            (Key::Edit, 0x15) => line.bytes.clear(),
            (Key::Edit, 0x17) => {
                while line.bytes.last() == Some(&b' ') {
                    line.bytes.pop();
                }
                while line.bytes.last().is_some_and(|b| *b != b' ') {
                    line.bytes.pop();
                }
            }
            (Key::Edit | Key::Interrupt, _) => line.plain = false,
        }
    }

    /// Finds the prompt rows that read the typed-ahead lines, on the visible
    /// screen above row `end` (exclusive), and takes those lines out.
    /// `prompts` are the prompt texts to look for at the start of a row.
    /// Returns the commands and the row of the first such prompt. Lines not
    /// read yet stay, unless `idle` (the shell waits at a prompt now, so it
    /// has read all it will).
    pub(super) fn settle(
        &mut self,
        term: &Terminal,
        end: usize,
        prompts: &[&str],
        idle: bool,
    ) -> (Vec<Consumed>, Option<usize>) {
        let mut found = Vec::new();
        let mut first_row = None;
        let from = self
            .lines
            .front()
            .and_then(|l| l.anchor.as_ref())
            .and_then(|a| screen::resolve(term, a))
            .map_or(0, |p| p.0);
        // Each prompt row (a logical line starting with a prompt) read one line.
        let mut rows = Vec::new();
        let mut row = from;
        while row < end {
            let prompt = prompts
                .iter()
                .filter(|p| !p.trim().is_empty() && row_starts_with(term, row, p))
                .max_by_key(|p| p.len());
            if let Some(p) = prompt {
                rows.push((row, *p));
            }
            row = logical_end(term, row) + 1;
        }
        for (i, &(row, prompt)) in rows.iter().enumerate() {
            let Some(line) = self.lines.front() else { break };
            // A prompt reads a line only after the line's echo began: a row
            // above it, or its own row when text stood left of the cursor (the
            // command line the keys were typed under, before its own newline
            // came), was drawn earlier. Keys typed at the start of an empty row
            // that the tty did not echo (readline had it already, its prompt
            // not drawn yet) are read by the prompt drawn on that very row.
            let echoed = line.anchor.as_ref().and_then(|a| screen::resolve(term, a));
            if echoed.is_some_and(|(r, c)| row < r || (row == r && c > 0)) {
                continue;
            }
            let Some(line) = self.lines.pop_front() else { break };
            first_row.get_or_insert(row);
            let next = rows.get(i + 1).map_or(end, |r| r.0);
            let last = logical_end(term, row);
            let start = screen::advance(term, row, prompt.chars().count());
            let shown = screen::text_from(term, start, last, MAX_LINE);
            let shown = shown.trim();
            let after = screen::rows_text(term, last + 1, next);
            let typed = line.text();
            let (text, confidence, output) = if shown == typed {
                // readline or zle drew the line again after the prompt.
                (typed, Confidence::Exact, after)
            } else if line.plain {
                // No line editor: the prompt row holds the command's output.
                let parts: Vec<&str> =
                    [shown, &after].into_iter().filter(|s| !s.is_empty()).collect();
                (typed, Confidence::Exact, parts.join("\n"))
            } else {
                // Edited with keys a line editor reads (arrows, Tab): what it drew.
                (shown.to_owned(), Confidence::Inferred, after)
            };
            if text.is_empty() {
                // An empty line: the shell drew its prompt again, nothing ran.
                continue;
            }
            found.push(Consumed {
                text,
                confidence,
                prompt: prompt.to_owned(),
                started_at_us: line.at_us,
                output,
            });
        }
        if idle {
            self.lines.clear();
        }
        (found, first_row)
    }
}

/// The first row of the logical line the cursor is on.
pub(super) fn cursor_line_start(term: &Terminal) -> usize {
    logical_start(term, screen::cursor(term).0)
}
