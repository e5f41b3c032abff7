//! The screen as the person saw it: `avt` fed with lossily decoded UTF-8, plus text reading helpers.

mod bulk;
mod line;

pub(crate) use line::{Accepted, LineStart, read_line, resolve};

use avt::observer::{Observation, Observer};
use avt::parser::{EdScope, Function, Osc, ShellIntegration};
use avt::{Line, Operation, ScreenKind, Terminal};

/// Rows a prompt may span (soft-wrapped); longer logical lines are not prompts.
const MAX_PROMPT_ROWS: usize = 8;

/// A cell position: `(row, col)` in the visible screen.
pub(crate) type Pos = (usize, usize);

/// The emulator with the hooks the extractor needs while bytes are fed.
pub(crate) struct Screen {
    term: Terminal,
    /// Bytes of a UTF-8 character split across `output` calls.
    utf8: [u8; 4],
    utf8_len: usize,
    /// Escape-sequence state of the bytes fed so far, for the bulk fast path.
    scan: bulk::ScanState,
    pub(crate) hooks: Hooks,
}

/// State updated by the emulator while it runs.
#[derive(Debug, Default)]
pub(crate) struct Hooks {
    pub(crate) capture: Capture,
    pub(crate) transcript: Transcript,
    /// The alternate screen was active at some point since last cleared.
    pub(crate) saw_alt: bool,
    /// The whole primary screen was erased while application cursor keys
    /// were on: a full-screen program on the primary screen (top).
    pub(crate) saw_app_clear: bool,
    /// A scroll region narrower than the screen was set (no bulk fast path then).
    pub(crate) margins: bool,
    /// An OSC 133 B mark (input starts here) was seen; the prompt text left of it.
    pub(crate) osc_input_start: Option<String>,
    /// Enter was pressed: read the line just before the shell moves off it.
    pub(crate) watch: Option<Watch>,
    /// The line read for `watch`.
    pub(crate) accepted: Option<Accepted>,
}

/// A pending accept: what is needed to read the line and start capturing output.
#[derive(Debug)]
pub(crate) struct Watch {
    pub(crate) start: LineStart,
    pub(crate) cap: usize,
    pub(crate) output_limit: usize,
}

impl Hooks {
    /// Reads the accepted line now and starts capturing the output below it.
    pub(crate) fn accept(&mut self, term: &Terminal) {
        let Some(watch) = self.watch.take() else {
            return;
        };
        let accepted = read_line(term, &watch.start, watch.cap);
        self.capture.start(accepted.end_row + 1, watch.output_limit);
        (self.saw_alt, self.saw_app_clear) = (false, false);
        self.accepted = Some(accepted);
    }
}

/// Operations that can take the cursor off the line being accepted.
fn leaves_row(function: &Function) -> bool {
    matches!(
        function,
        Function::Lf
            | Function::Nel
            | Function::Ri
            | Function::Cud(_)
            | Function::Cuu(_)
            | Function::Cnl(_)
            | Function::Cpl(_)
            | Function::Cup(..)
            | Function::Vpa(_)
            | Function::Vpr(_)
            | Function::Decrc
            | Function::Scorc
            | Function::Ris
            | Function::Decset(_)
            | Function::Su(_)
            | Function::Sd(_)
    )
}

/// Output text of the running command, collected as lines leave the screen.
#[derive(Debug, Default)]
pub(crate) struct Capture {
    pub(crate) active: bool,
    /// Visible row where the command's output starts; negative once it has
    /// scrolled off (lines evicted at or past it are output).
    pub(crate) out_row: isize,
    pub(crate) text: String,
    pub(crate) truncated: bool,
    pub(crate) limit: usize,
    /// Blank rows left by a bulk skip: their eviction is not output.
    skip_evictions: usize,
}

impl Capture {
    pub(crate) fn start(&mut self, out_row: usize, limit: usize) {
        self.active = true;
        self.out_row = isize::try_from(out_row).unwrap_or(isize::MAX);
        self.text.clear();
        self.truncated = false;
        self.limit = limit;
        self.skip_evictions = 0;
    }

    /// Whether anything was captured so far (evicted output lines).
    pub(crate) fn is_empty(&self) -> bool {
        self.text.trim().is_empty()
    }

    fn push_line(&mut self, line: &Line) {
        if self.truncated {
            return;
        }
        for c in line.chars() {
            self.push_char(c);
        }
        if !line.is_wrapped() {
            self.end_line();
        }
    }

    fn push_char(&mut self, c: char) {
        if self.text.len() + c.len_utf8() > self.limit {
            self.truncated = true;
            return;
        }
        self.text.push(c);
    }

    fn end_line(&mut self) {
        let keep = self.text.trim_end_matches(' ').len();
        self.text.truncate(keep);
        self.push_char('\n');
    }

    /// Stops capturing and returns the text with trailing blank lines removed.
    pub(crate) fn finish(&mut self) -> (String, bool) {
        self.active = false;
        self.skip_evictions = 0;
        let mut text = std::mem::take(&mut self.text);
        let keep = text.trim_end().len();
        text.truncate(keep);
        let text = text.trim_start_matches('\n').to_owned();
        (text, std::mem::take(&mut self.truncated))
    }
}

/// Every line of the primary screen, taken once, for the search index: as it scrolls off
/// the top, as a clear is about to erase it, or when the extractor flushes the rows above a
/// prompt (a command's output). Each piece of text carries a moment it was on the screen.
#[derive(Debug, Default)]
pub(crate) struct Transcript {
    pieces: Vec<(u64, String)>,
    /// The top rows of the screen already taken by a flush: skipped when they scroll off.
    done_rows: usize,
    /// The time of the output call before the current one, and of the current one.
    before_us: u64,
    now_us: u64,
    /// Lines evicted in the current call: the first screenful of them was on the screen
    /// before it (`before_us`), the rest were drawn and scrolled off within it (`now_us`).
    evicted: usize,
    rows: usize,
    /// The screen was erased whole, its lines evicted: no row is taken any more.
    cleared: bool,
}

impl Transcript {
    fn settle(&mut self) {
        if std::mem::take(&mut self.cleared) {
            self.done_rows = 0;
        }
    }

    fn begin(&mut self, at_us: u64, rows: usize) {
        self.settle();
        self.before_us = self.now_us;
        self.now_us = at_us;
        self.evicted = 0;
        self.rows = rows;
    }

    fn text_at(&mut self, at_us: u64) -> &mut String {
        if self.pieces.last().is_none_or(|(at, _)| *at != at_us) {
            self.pieces.push((at_us, String::new()));
        }
        let last = self.pieces.len() - 1;
        &mut self.pieces[last].1
    }

    fn push_char(&mut self, c: char) {
        let now = self.now_us;
        self.text_at(now).push(c);
    }

    /// One row: a wrapped row continues on the next; blank rows are left out.
    fn push_line(&mut self, at_us: u64, line: &Line) {
        let text = line.text();
        if line.is_wrapped() {
            self.text_at(at_us).push_str(&text);
            return;
        }
        let text = text.trim_end();
        let out = self.text_at(at_us);
        if text.is_empty() && (out.is_empty() || out.ends_with('\n')) {
            return;
        }
        out.push_str(text);
        out.push('\n');
    }

    fn evicted(&mut self, line: &Line) {
        let at = if self.evicted < self.rows { self.before_us } else { self.now_us };
        self.evicted += 1;
        if self.done_rows > 0 {
            self.done_rows -= 1;
            return;
        }
        self.push_line(at, line);
    }

    /// Takes the rows from the first not taken yet up to `end` (exclusive), as at `at_us`.
    fn flush(&mut self, term: &Terminal, end: usize, at_us: u64) {
        self.settle();
        if term.active_screen_kind() != ScreenKind::Primary {
            return;
        }
        for line in term.screen().visible_lines().take(end).skip(self.done_rows) {
            self.push_line(at_us, line);
        }
        self.done_rows = self.done_rows.max(end.min(term.size().1));
    }
}

impl Observer for Hooks {
    type Output = ();

    fn before(&mut self, context: &mut Observation<'_>, operation: &Operation) {
        self.transcript.settle();
        if let Operation::Function(f) = operation {
            let term = context.terminal();
            // (Erasing the whole primary screen scrolls it out first: its lines come as
            // evictions.)
            let clears = match f {
                Function::Ris => true,
                Function::Ed(EdScope::Below) => cursor(term) == (0, 0),
                _ => false,
            };
            if clears && term.active_screen_kind() == ScreenKind::Primary {
                // What the screen showed is about to be erased: take it first.
                let at = self.transcript.before_us;
                self.transcript.flush(term, usize::MAX, at);
                self.transcript.done_rows = 0;
            }
        }
        if self.watch.is_some() {
            let leaves = match operation {
                Operation::Function(f) => leaves_row(f),
                Operation::Resize { .. } => true,
            };
            if leaves {
                self.accept(context.terminal());
            }
        }
    }

    fn after(&mut self, context: &mut Observation<'_>, operation: &Operation) {
        let Operation::Function(function) = operation else {
            return;
        };
        if function == &Function::Ris {
            self.margins = false
        }
        match function {
            Function::Decset(_) | Function::Decrst(_) | Function::Ris => {
                self.saw_alt |= context.terminal().active_screen_kind() == ScreenKind::Alternate;
            }
            Function::Ed(EdScope::All) => {
                self.saw_app_clear |= context.terminal().cursor_key_app_mode();
                if context.terminal().active_screen_kind() == ScreenKind::Primary {
                    // Its lines are evicted right after this: then nothing on the screen is
                    // taken any more.
                    self.transcript.cleared = true;
                }
            }
            Function::Decstbm(top, bottom) => {
                let rows = context.terminal().size().1;
                self.margins = *top > 1 || (*bottom != 0 && usize::from(*bottom) < rows);
            }
            Function::Osc(Osc::ShellIntegration(ShellIntegration::CommandStart)) => {
                let term = context.terminal();
                if term.active_screen_kind() == ScreenKind::Primary {
                    self.osc_input_start = Some(prefix_at_cursor(term));
                }
            }
            _ => {}
        }
    }

    fn evicted(&mut self, _: &mut Observation<'_>, line: &Line) {
        self.transcript.evicted(line);
        let capture = &mut self.capture;
        if capture.skip_evictions > 0 {
            capture.skip_evictions -= 1;
            return;
        }
        if capture.active {
            if capture.out_row <= 0 {
                capture.push_line(line);
            }
            capture.out_row = capture.out_row.saturating_sub(1);
        }
    }

    fn end(&mut self, _: &mut Observation<'_>) {}
}

impl Screen {
    pub(crate) fn new(cols: usize, rows: usize) -> Self {
        // Zero-sized terminals are refused by avt; callers clamp to at least 1.
        let term = Terminal::new(cols.max(1), rows.max(1))
            .unwrap_or_else(|_| unreachable!("size clamped to at least 1x1"));
        Self {
            term,
            utf8: [0; 4],
            utf8_len: 0,
            scan: bulk::ScanState::Ground,
            hooks: Hooks::default(),
        }
    }

    pub(crate) fn term(&self) -> &Terminal {
        &self.term
    }

    /// A position the emulator keeps up to date through scrolling and edits.
    pub(crate) fn anchor_at_cursor(&mut self) -> Option<avt::Anchor> {
        if self.is_alternate() {
            return None;
        }
        let position = self.term.cursor_position();
        self.term.anchor_at(position)
    }

    pub(crate) fn resize(&mut self, cols: usize, rows: usize) {
        // Rows are rewrapped: take the ones above the cursor as they stood.
        let t = &mut self.hooks.transcript;
        let at = t.now_us;
        t.flush(&self.term, cursor(&self.term).0, at);
        t.done_rows = usize::MAX;
        self.term.resize_with(cols.max(1), rows.max(1), &mut self.hooks);
        self.hooks.transcript.done_rows = cursor(&self.term).0;
    }

    /// Output at `at_us` is fed next.
    pub(crate) fn begin_output(&mut self, at_us: u64) {
        let rows = self.term.size().1;
        self.hooks.transcript.begin(at_us, rows);
    }

    /// Takes the screen's rows above row `end` that the transcript has not taken yet (all
    /// of them for `usize::MAX`), as seen at `at_us`.
    pub(crate) fn flush_transcript(&mut self, end: usize, at_us: u64) {
        self.hooks.transcript.flush(&self.term, end, at_us);
    }

    /// The transcript's text since the last call, with the moments it was on the screen.
    pub(crate) fn take_transcript(&mut self) -> Vec<(u64, String)> {
        std::mem::take(&mut self.hooks.transcript.pieces)
    }

    /// Feeds bytes, fast-forwarding through bulk output that scrolls off
    /// (see [`bulk`]) when `may_skip`.
    pub(crate) fn feed_bulk(&mut self, data: &[u8], may_skip: bool) {
        let rows = self.term.size().1;
        let eligible = may_skip
            && data.len() >= bulk::MIN_SKIP
            && self.utf8_len == 0
            && !self.hooks.margins
            && !self.is_alternate();
        if !eligible {
            self.scan = bulk::scan(self.scan, data, 0).0;
            self.feed(data);
            return;
        }
        let (state, skip) = bulk::scan(self.scan, data, rows);
        self.scan = state;
        let Some(skip) = skip else {
            self.feed(data);
            return;
        };
        self.feed(&data[..skip.start]);
        if cursor(&self.term).0 + skip.line_feeds < rows.saturating_sub(1) {
            // The span would not reach the bottom row: emulate it.
            self.feed(&data[skip.start..]);
            return;
        }
        // What the span leaves behind: the rows above the cursor scrolled off
        // (they are evicted, so captured, in order), a blank screen, the
        // cursor at the bottom left, the span's colours.
        let mut synthetic = vec![b'\n'; rows.saturating_sub(1)];
        synthetic.extend_from_slice(b"\x1b7\x1b[0m\x1b[H\x1b[J\x1b8\r");
        synthetic.extend(bulk::sgr_sequences(&data[skip.sgr_from..skip.end]));
        self.feed(&synthetic);
        let Hooks { capture, transcript, .. } = &mut self.hooks;
        let capturing = capture.active;
        if capturing {
            capture.out_row = capture.out_row.min(0);
            capture.skip_evictions = rows.saturating_sub(1);
        }
        // Every line goes to the transcript; the command's output keeps what fits.
        bulk::render(&data[skip.start..skip.end], |c| {
            transcript.push_char(c);
            if capturing && !capture.truncated {
                capture.push_char(c);
            }
            true
        });
        self.feed(&data[skip.end..]);
    }

    /// Feeds bytes; invalid UTF-8 becomes U+FFFD, a split character waits for the rest.
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        while self.utf8_len > 0 && !data.is_empty() {
            self.utf8[self.utf8_len] = data[0];
            self.utf8_len += 1;
            data = &data[1..];
            match std::str::from_utf8(&self.utf8[..self.utf8_len]) {
                Ok(s) => {
                    self.term.feed_with(s, &mut self.hooks);
                    self.utf8_len = 0;
                }
                Err(e) => match e.error_len() {
                    Some(bad) => {
                        let rest = self.utf8;
                        let len = self.utf8_len;
                        self.utf8_len = 0;
                        self.term.feed_with('\u{fffd}', &mut self.hooks);
                        self.feed(&rest[bad..len]);
                    }
                    None if self.utf8_len == 4 => {
                        self.utf8_len = 0;
                        self.term.feed_with('\u{fffd}', &mut self.hooks);
                    }
                    None => {}
                },
            }
        }
        loop {
            match std::str::from_utf8(data) {
                Ok(s) => {
                    self.term.feed_with(s, &mut self.hooks);
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    if let Ok(s) = std::str::from_utf8(&data[..valid]) {
                        self.term.feed_with(s, &mut self.hooks);
                    }
                    match e.error_len() {
                        Some(bad) => {
                            self.term.feed_with('\u{fffd}', &mut self.hooks);
                            data = &data[valid + bad..];
                        }
                        None => {
                            let rest = &data[valid..];
                            self.utf8[..rest.len()].copy_from_slice(rest);
                            self.utf8_len = rest.len();
                            return;
                        }
                    }
                }
            }
        }
    }

    /// The screen as escape sequences that redraw it, and its size.
    pub(crate) fn dump(&self) -> (String, (usize, usize)) {
        (self.term.dump(), self.term.size())
    }

    pub(crate) fn is_alternate(&self) -> bool {
        self.term.active_screen_kind() == ScreenKind::Alternate
    }

    /// Current screen as text: one line per row, trailing spaces and blank rows dropped.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        for line in self.term.screen().visible_lines() {
            out.push_str(line.text().trim_end());
            out.push('\n');
        }
        let keep = out.trim_end().len();
        out.truncate(keep);
        out
    }

    /// Appends the visible rows from the capture's start up to `end` (its row
    /// exclusive, then that row's cells left of its column: the start of a
    /// prompt drawn mid-line) and returns the command's output.
    pub(crate) fn finish_capture(&mut self, end: Pos) -> (String, bool) {
        let alternate = self.is_alternate();
        let capture = &mut self.hooks.capture;
        if capture.active && !alternate {
            let start = usize::try_from(capture.out_row.max(0)).unwrap_or(0);
            for line in self.term.screen().visible_lines().take(end.0).skip(start) {
                capture.push_line(line);
            }
            if end.1 > 0
                && end.0 >= start
                && let Some(l) = line(&self.term, end.0)
            {
                for cell in l.cells().iter().take(end.1).filter(|c| c.width() != 0) {
                    capture.push_char(cell.char());
                }
            }
        }
        capture.finish()
    }
}

/// The cursor as `(row, col)`, also when it is hidden.
pub(crate) fn cursor(term: &Terminal) -> Pos {
    let c = term.cursor();
    (c.row, c.col)
}

fn line(term: &Terminal, row: usize) -> Option<&Line> {
    term.screen().line(row)
}

/// Whether row `row` starts with `text`.
pub(crate) fn row_starts_with(term: &Terminal, row: usize, text: &str) -> bool {
    let Some(l) = line(term, row) else {
        return false;
    };
    let mut chars = l.cells().iter().filter(|c| c.width() != 0).map(|c| c.char());
    text.chars().all(|t| chars.next() == Some(t))
}

/// First row of the logical (soft-wrapped) line that `row` belongs to.
pub(crate) fn logical_start(term: &Terminal, mut row: usize) -> usize {
    while row > 0 && line(term, row - 1).is_some_and(Line::is_wrapped) {
        row -= 1;
    }
    row
}

/// Last row of the logical line that `row` belongs to.
pub(crate) fn logical_end(term: &Terminal, mut row: usize) -> usize {
    let rows = term.size().1;
    while row + 1 < rows && line(term, row).is_some_and(Line::is_wrapped) {
        row += 1;
    }
    row
}

/// Text from `from` to the end of row `to_row`, following soft wraps and
/// putting `'\n'` after rows that end a logical line; at most `cap` bytes.
pub(crate) fn text_from(term: &Terminal, from: Pos, to_row: usize, cap: usize) -> String {
    let mut out = String::new();
    for row in from.0..=to_row {
        let Some(l) = line(term, row) else { break };
        let start = if row == from.0 { from.1 } else { 0 };
        for cell in l.cells().iter().skip(start) {
            if cell.width() == 0 {
                continue;
            }
            if out.len() + cell.char().len_utf8() > cap {
                return out;
            }
            out.push(cell.char());
        }
        if row != to_row && !l.is_wrapped() {
            out.push('\n');
        }
    }
    out
}

/// The logical line left of the cursor: what a prompt looks like to us.
pub(crate) fn prefix_at_cursor(term: &Terminal) -> String {
    let (row, col) = cursor(term);
    let mut out = String::new();
    let start = logical_start(term, row);
    if row - start > MAX_PROMPT_ROWS {
        // No prompt is this long: a wrapped wall of output.
        return out;
    }
    for r in start..=row {
        let Some(l) = line(term, r) else { break };
        let cells = l.cells();
        let end = if r == row { col.min(cells.len()) } else { cells.len() };
        out.extend(cells[..end].iter().filter(|c| c.width() != 0).map(|c| c.char()));
    }
    out
}

/// The last `max_chars` characters of the logical line left of the cursor,
/// however many rows it spans (a prompt drawn after a long unterminated line).
pub(crate) fn tail_at_cursor(term: &Terminal, max_chars: usize) -> String {
    let (row, col) = cursor(term);
    let mut out: Vec<char> = Vec::new();
    let mut r = row;
    while let Some(l) = line(term, r) {
        let cells = l.cells();
        let end = if r == row { col.min(cells.len()) } else { cells.len() };
        for c in cells[..end].iter().rev().filter(|c| c.width() != 0) {
            if out.len() == max_chars {
                out.reverse();
                return out.into_iter().collect();
            }
            out.push(c.char());
        }
        if r == 0 || !line(term, r - 1).is_some_and(Line::is_wrapped) {
            break;
        }
        r -= 1;
    }
    out.reverse();
    out.into_iter().collect()
}

/// The position `n` characters left of the cursor, following soft wraps back.
pub(crate) fn back_from_cursor(term: &Terminal, n: usize) -> Pos {
    let (mut row, col) = cursor(term);
    let mut left = n;
    let mut end = col;
    loop {
        let Some(l) = line(term, row) else {
            return (row, 0);
        };
        let cells = l.cells();
        let mut c = end.min(cells.len());
        while c > 0 && left > 0 {
            c -= 1;
            if cells[c].width() != 0 {
                left -= 1;
            }
        }
        if left == 0 || row == 0 || !line(term, row - 1).is_some_and(Line::is_wrapped) {
            return (row, c);
        }
        row -= 1;
        end = usize::MAX;
    }
}

/// The text of rows `from..to`: soft-wrapped rows joined, a `'\n'` after each
/// logical line, trailing blanks and leading and trailing empty lines dropped.
pub(crate) fn rows_text(term: &Terminal, from: usize, to: usize) -> String {
    let mut out = String::new();
    for row in from..to {
        let Some(l) = line(term, row) else { break };
        out.extend(l.cells().iter().filter(|c| c.width() != 0).map(|c| c.char()));
        if !l.is_wrapped() {
            let keep = out.trim_end_matches(' ').len();
            out.truncate(keep);
            out.push('\n');
        }
    }
    let keep = out.trim_end().len();
    out.truncate(keep);
    out.trim_start_matches('\n').to_owned()
}

/// Text right of the cursor on its row, if separated by blanks (zsh's RPROMPT).
pub(crate) fn right_of_cursor(term: &Terminal) -> Option<String> {
    let (row, col) = cursor(term);
    let l = line(term, row)?;
    let rest: String =
        l.cells().iter().skip(col).filter(|c| c.width() != 0).map(|c| c.char()).collect();
    let trimmed = rest.trim();
    (!trimmed.is_empty() && rest.starts_with(' ')).then(|| trimmed.to_owned())
}

/// The position `n` characters after the start of row `row`, following soft wraps.
pub(crate) fn advance(term: &Terminal, row: usize, n: usize) -> Pos {
    let mut left = n;
    let mut r = row;
    loop {
        let Some(l) = line(term, r) else {
            return (r, 0);
        };
        let mut col = 0;
        for cell in l.cells() {
            if left == 0 {
                return (r, col);
            }
            if cell.width() != 0 {
                left -= 1;
            }
            col += 1;
        }
        if left == 0 || !l.is_wrapped() {
            return (r, col);
        }
        r += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bulk fast path leaves the same screen and output text as emulating every byte.
    #[test]
    fn bulk_skip_matches_full_emulation() {
        let mut data = Vec::new();
        data.extend_from_slice(b"partial line then\r\n");
        for i in 0..3000 {
            let line = match i % 5 {
                0 => format!("\x1b[01;34mdir{i}\x1b[0m  file\tx\r\n"),
                1 => format!("{}\r\n", "long-".repeat(40)),
                2 => "progress 10%\rprogress 99%\r\n".to_owned(),
                3 => format!("\x1b[1mbold {i}\r\n"),
                _ => "ünïcödé ✓\r\n".to_owned(),
            };
            data.extend_from_slice(line.as_bytes());
        }
        data.extend_from_slice(b"tail without newline");
        for (cols, rows) in [(80, 24), (33, 7), (200, 60)] {
            let mut fast = Screen::new(cols, rows);
            let mut slow = Screen::new(cols, rows);
            for s in [&mut fast, &mut slow] {
                s.feed(b"$ cmd\r\n");
                s.hooks.capture.start(1, usize::MAX);
            }
            for piece in data.chunks(40_000) {
                fast.feed_bulk(piece, true);
                slow.feed(piece);
            }
            assert!(fast.text() == slow.text(), "screen differs at {cols}x{rows}");
            assert!(screen_pen(&fast) == screen_pen(&slow), "colours differ at {cols}x{rows}");
            assert_eq!(cursor(fast.term()), cursor(slow.term()));
            let end = (cursor(fast.term()).0, 0);
            let (a, b) = (fast.finish_capture(end).0, slow.finish_capture(end).0);
            let first = a.chars().zip(b.chars()).position(|(x, y)| x != y);
            assert!(
                a == b,
                "output differs at {cols}x{rows}: lengths {} {}, first difference at {first:?}: {:?}",
                a.len(),
                b.len(),
                first.map(|i| a.chars().skip(i.saturating_sub(20)).take(60).collect::<String>())
            );
        }
    }

    fn screen_pen(s: &Screen) -> Vec<String> {
        s.term()
            .screen()
            .visible_lines()
            .map(|l| format!("{:?}", l.cells().iter().map(|c| *c.pen()).collect::<Vec<_>>()))
            .collect()
    }
}
