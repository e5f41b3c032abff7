//! The command extractor: a state machine over output, input and resizes that finds prompts and reads command lines off the screen.

mod typeahead;

use std::collections::VecDeque;

use crate::history::{Expansion, expansion};
use crate::input::{Key, KeyDecoder};
use crate::prompt::{PromptKind, classify};
use crate::screen::{self, Accepted, LineStart, Pos, Screen, Watch};
use crate::{Command, Confidence, ExtractorConfig};
use typeahead::{Typeahead, cursor_line_start};

/// Primary prompts remembered to recognise the next one as soon as it is drawn.
const KNOWN_PROMPTS: usize = 16;
/// Longest prompt text remembered (a prompt is a line or two).
const MAX_PROMPT_TEXT: usize = 4096;
/// Typed bytes kept to tell an echo from a program's output.
const MAX_TYPED: usize = 1024;

/// Extracts the commands typed into one interactive pty channel.
///
/// Sans-IO: it is fed bytes and times and never reads a clock or a socket.
/// Memory is bounded by the configured screen size and caps.
pub struct CommandExtractor {
    cfg: ExtractorConfig,
    screen: Screen,
    keys: KeyDecoder,
    /// The prompt the person is typing at, when there is one.
    prompt: Option<PromptState>,
    /// The command accepted and now running (or collecting continuation lines).
    current: Option<Running>,
    /// Enter was pressed at this time. The line is read just before the shell
    /// moves the cursor off it, so redraws on accept (Ctrl-R) are seen.
    accepting: Option<u64>,
    known_prompts: VecDeque<String>,
    /// Lines typed while no prompt was recognised: typeahead for the shell, or
    /// input to a program; the prompt rows drawn later tell which.
    ahead: Typeahead,
    last_output_at: u64,
    ready: VecDeque<Command>,
    dropped: u64,
}

#[derive(Debug)]
struct PromptState {
    kind: PromptKind,
    start: LineStart,
    /// Printable keys typed at this prompt.
    typed: usize,
    /// Of those, the ones typed in earlier `input` calls (an echo had time to arrive).
    typed_earlier: usize,
    /// The bytes of those keys, when no other key was used (capped).
    typed_bytes: Vec<u8>,
    /// Keys other than printable ones were used: `typed_bytes` is not the line.
    edited: bool,
    /// Enter came after keys that drew no output at all: maybe not echoed.
    suspect_unechoed: bool,
    /// Output arrived since typing began (the keys were echoed, or something was).
    output_since: bool,
}

#[derive(Debug)]
struct Running {
    text: String,
    prompt: String,
    started_at_us: u64,
    confidence: Confidence,
    full_screen: bool,
}

impl CommandExtractor {
    pub fn new(cfg: ExtractorConfig) -> Self {
        let (cols, rows) = clamp(&cfg, cfg.cols, cfg.rows);
        Self {
            screen: Screen::new(cols, rows),
            cfg,
            keys: KeyDecoder::default(),
            prompt: None,
            current: None,
            accepting: None,
            known_prompts: VecDeque::new(),
            ahead: Typeahead::default(),
            last_output_at: 0,
            ready: VecDeque::new(),
            dropped: 0,
        }
    }

    /// Bytes the target sent (what the person's terminal rendered).
    pub fn output(&mut self, at_us: u64, data: &[u8]) {
        self.last_output_at = at_us;
        self.screen.begin_output(at_us);
        if let Some(p) = &mut self.prompt {
            p.output_since |= !data.is_empty();
        }
        // Rows that scroll off unseen could be the prompt rows that read typed-ahead lines.
        let may_skip = self.current.is_some()
            && self.prompt.is_none()
            && self.accepting.is_none()
            && self.ahead.is_empty();
        self.screen.feed_bulk(data, may_skip);
        if let Some(accepted) = self.screen.hooks.accepted.take() {
            self.accepted(accepted);
        }
        self.note_full_screen();
        self.after_output(at_us);
    }

    /// Bytes the person typed.
    pub fn input(&mut self, at_us: u64, data: &[u8]) {
        if let Some(p) = &mut self.prompt {
            p.typed_earlier = p.typed;
        }
        let mut first = true;
        for &byte in data {
            let Some(key) = self.keys.push(byte) else {
                continue;
            };
            if self.screen.is_alternate() {
                // Keys for vim, less or top are not commands.
                continue;
            }
            if first {
                first = false;
                if self.accepting.is_some() {
                    // Typed ahead before the shell finished the line: read it now.
                    self.force_accept();
                }
                self.find_prompt();
            }
            self.key(at_us, key, byte);
        }
    }

    /// The person's terminal changed size. Sizes are clamped to the configured maximum.
    pub fn resize(&mut self, _at_us: u64, cols: u16, rows: u16) {
        let (cols, rows) = clamp(&self.cfg, cols, rows);
        self.screen.resize(cols, rows);
        if let Some(accepted) = self.screen.hooks.accepted.take() {
            self.accepted(accepted);
        }
    }

    /// Commands completed since the last call (a command completes when the
    /// next prompt appears or the channel ends).
    pub fn drain(&mut self) -> Vec<Command> {
        self.ready.drain(..).collect()
    }

    /// The channel closed: completes the running command and returns what is left.
    pub fn finish(&mut self) -> Vec<Command> {
        if self.accepting.is_some() {
            self.force_accept();
        }
        if self.ahead.has_lines() && !self.screen.is_alternate() {
            // `exit` typed while the last command ran: read by a prompt row
            // above the cursor (or on its row, unless the shell sits idle there).
            let term = self.screen.term();
            let idle = self.known_prompts.contains(&screen::prefix_at_cursor(term));
            let end = if idle { cursor_line_start(term) } else { screen::cursor(term).0 + 1 };
            self.settle_typeahead(None, end, true);
        }
        self.ahead.clear();
        self.complete(None);
        self.prompt = None;
        self.screen.flush_transcript(usize::MAX, self.last_output_at);
        self.drain()
    }

    /// Every line the screen showed since the last call, each with a moment (time offset) it
    /// was on the screen, in order: lines as they scrolled off or were cleared, a command's
    /// output when its next prompt appears, the whole screen at [`CommandExtractor::finish`].
    /// Blank lines are left out; a line longer than the screen is one line. Not capped:
    /// drain it after every call.
    pub fn drain_transcript(&mut self) -> Vec<(u64, String)> {
        self.screen.take_transcript()
    }

    /// The current screen (alternate screen when active) as text, for snapshots.
    pub fn screen_text(&self) -> String {
        self.screen.text()
    }

    /// Escape sequences that redraw the current screen (a keyframe for playback), and its
    /// size as `(cols, rows)`.
    pub fn screen_dump(&self) -> (String, u16, u16) {
        let (dump, (cols, rows)) = self.screen.dump();
        (dump, cols as u16, rows as u16)
    }

    /// A full-screen program (vim, less, top) has the alternate screen now.
    pub fn full_screen_active(&self) -> bool {
        self.screen.is_alternate()
    }

    /// Nothing is half-way: no line being typed or accepted at a prompt, no
    /// line typed ahead and waiting for the shell, no multi-line command
    /// waiting for its next line. An extractor rebuilt from the screen alone
    /// (the indexer's hibernation) would lose any of those, so only an
    /// extractor at rest should be put to sleep.
    pub fn at_rest(&self) -> bool {
        let prompt_untouched = self.prompt.as_ref().is_none_or(|p| {
            p.kind == PromptKind::Primary && p.typed == 0 && !p.edited && p.typed_bytes.is_empty()
        });
        self.accepting.is_none()
            && self.ahead.is_empty()
            && prompt_untouched
            && !(self.prompt.is_none() && self.continuation_possible())
    }

    /// Commands dropped because [`ExtractorConfig::max_pending_commands`] were
    /// waiting to be drained.
    pub fn dropped_commands(&self) -> u64 {
        self.dropped
    }

    /// A running command that takes over the screen: the alternate screen, or
    /// (top) erasing the whole primary screen with application cursor keys on.
    fn note_full_screen(&mut self) {
        let hooks = &self.screen.hooks;
        if (hooks.saw_alt || hooks.saw_app_clear)
            && let Some(c) = &mut self.current
        {
            c.full_screen = true;
        }
    }

    /// After output: a known prompt (or an OSC 133 B mark) ends the running
    /// command right away, without waiting for the person's next key.
    fn after_output(&mut self, at_us: u64) {
        let osc = self.screen.hooks.osc_input_start.take();
        let term = self.screen.term();
        if let Some(p) = &mut self.prompt
            && let Some(pos) = p.start.anchor.as_ref().and_then(|a| screen::resolve(term, a))
        {
            let (row, _) = screen::cursor(term);
            p.start.extent = p.start.extent.max(row.saturating_sub(pos.0));
        }
        if self.prompt.is_some() || self.accepting.is_some() || self.screen.is_alternate() {
            return;
        }
        if let Some(text) = osc {
            if screen::prefix_at_cursor(term) == text {
                self.complete(Some(at_us));
                self.enter_prompt(PromptKind::Primary, text);
            }
            return;
        }
        let text = screen::prefix_at_cursor(term);
        let known = self.known_prompts.iter().any(|k| *k == text);
        if self.ahead.has_lines() {
            // A prompt after lines were typed ahead (before the first prompt
            // the shell's prompt is not known yet, so it is classified).
            let first = self.current.is_none()
                && classify(&text, std::iter::empty()) == PromptKind::Primary;
            if !known && !first {
                return;
            }
            let end = cursor_line_start(self.screen.term());
            if !self.settle_typeahead(Some(&text), end, false) {
                // Lines are left: this prompt may be about to read the next,
                // so it is not entered; the running command did end here.
                if known {
                    self.complete(Some(at_us));
                }
                return;
            }
        }
        if self.current.is_none() {
            return;
        }
        if known {
            self.complete(Some(at_us));
            self.enter_prompt(PromptKind::Primary, text);
        }
    }

    /// Lists the typed-ahead lines that prompt rows above row `end` read (and
    /// ends the running command at the first such row); `cursor_prompt` is a
    /// prompt at the cursor to look for besides the known ones. Returns
    /// whether no typed-ahead line is left waiting.
    fn settle_typeahead(&mut self, cursor_prompt: Option<&str>, end: usize, idle: bool) -> bool {
        let mut prompts: Vec<&str> = self.known_prompts.iter().map(String::as_str).collect();
        prompts.extend(cursor_prompt);
        let (found, first_row) = self.ahead.settle(self.screen.term(), end, &prompts, idle);
        let ended_at = self.last_output_at;
        if let Some(row) = first_row {
            self.complete_at(Some(ended_at), (row, 0));
        }
        for c in found {
            let mut text = c.text;
            truncate_chars(&mut text, self.cfg.max_command_text);
            let mut output = c.output;
            let output_truncated = output.len() > self.cfg.max_output_text;
            truncate_chars(&mut output, self.cfg.max_output_text);
            self.emit(Command {
                text,
                typed: None,
                prompt: c.prompt,
                started_at_us: c.started_at_us,
                ended_at_us: Some(ended_at.max(c.started_at_us)),
                output,
                output_truncated,
                confidence: c.confidence,
                full_screen: false,
            });
        }
        !self.ahead.has_lines()
    }

    /// The person starts typing: is the cursor at a shell prompt?
    fn find_prompt(&mut self) {
        if let Some(p) = &mut self.prompt {
            if p.typed == 0 {
                // A right prompt may have been drawn after the prompt was recognised.
                p.start.right = screen::right_of_cursor(self.screen.term());
            }
            return;
        }
        if self.screen.is_alternate() {
            return;
        }
        let mut text = screen::prefix_at_cursor(self.screen.term());
        let mut kind = classify(&text, self.known_prompts.iter().map(String::as_str));
        if kind == PromptKind::Continuation && !self.continuation_possible() {
            // `mysql> ` after a banner is a program's prompt, not the shell's PS2.
            kind = PromptKind::NotPrompt;
        }
        let mut end = (cursor_line_start(self.screen.term()), 0);
        if kind == PromptKind::NotPrompt
            && let Some((prompt, start)) = self.known_suffix()
        {
            // Output left the cursor mid-line and the shell drew its prompt
            // there: the text before it is the last command's output.
            (kind, text, end) = (PromptKind::Primary, prompt, start);
        }
        match kind {
            PromptKind::Primary => {
                if !self.ahead.is_empty() {
                    // The shell waits at this prompt: it has read every line it was going to.
                    self.settle_typeahead(Some(&text), end.0, true);
                    self.ahead.clear();
                }
                self.complete_at(Some(self.last_output_at), end);
                self.enter_prompt(PromptKind::Primary, text);
            }
            PromptKind::Continuation => self.enter_prompt(PromptKind::Continuation, text),
            PromptKind::NotPrompt => {}
        }
    }

    /// A known prompt that the logical line left of the cursor ends with,
    /// after other text, and where it starts. Checked only when the line is
    /// no prompt as a whole, so a new prompt that ends like a known one
    /// (`root@db1:~# ` after `# `) is still learned whole.
    fn known_suffix(&self) -> Option<(String, Pos)> {
        let term = self.screen.term();
        let longest = self.known_prompts.iter().map(|k| k.chars().count()).max()?;
        let tail = screen::tail_at_cursor(term, longest + 1);
        let tail_len = tail.chars().count();
        let prompt = self
            .known_prompts
            .iter()
            .filter(|k| !k.trim().is_empty() && tail.ends_with(k.as_str()))
            .filter(|k| tail_len > k.chars().count())
            .max_by_key(|k| k.len())?;
        Some((prompt.clone(), screen::back_from_cursor(term, prompt.chars().count())))
    }

    /// A continuation prompt comes right after the accepted line, with no output between.
    fn continuation_possible(&self) -> bool {
        if self.current.is_none() {
            return false;
        }
        let capture = &self.screen.hooks.capture;
        let (row, _) = screen::cursor(self.screen.term());
        capture.is_empty() && usize::try_from(capture.out_row).is_ok_and(|r| r == row)
    }

    fn enter_prompt(&mut self, kind: PromptKind, mut text: String) {
        let term = self.screen.term();
        truncate_chars(&mut text, MAX_PROMPT_TEXT);
        let right = screen::right_of_cursor(term);
        if kind == PromptKind::Primary {
            // Keys typed before this prompt was drawn are the shell's to redraw
            // here (readline) or already in its line (tty): the line is read at accept.
            self.ahead.clear();
        }
        if kind == PromptKind::Primary && !self.known_prompts.contains(&text) {
            if self.known_prompts.len() == KNOWN_PROMPTS {
                self.known_prompts.pop_front();
            }
            self.known_prompts.push_back(text.clone());
        }
        let anchor = self.screen.anchor_at_cursor();
        self.prompt = Some(PromptState {
            kind,
            start: LineStart { text, right, anchor, extent: 0 },
            typed: 0,
            typed_earlier: 0,
            typed_bytes: Vec::new(),
            edited: false,
            suspect_unechoed: false,
            output_since: false,
        });
    }

    fn key(&mut self, at_us: u64, key: Key, byte: u8) {
        let Some(p) = &mut self.prompt else {
            // Input to a running program (cat, a password prompt), or typed
            // ahead for the shell: the prompt rows drawn later tell which.
            let screen = &mut self.screen;
            self.ahead.key(at_us, key, byte, || screen.anchor_at_cursor());
            return;
        };
        match key {
            Key::Printable | Key::More => {
                if key == Key::Printable {
                    p.typed += 1;
                }
                if p.typed_bytes.len() < MAX_TYPED {
                    p.typed_bytes.push(byte);
                } else {
                    p.edited = true;
                }
            }
            Key::PastedNewline | Key::Edit => p.edited = true,
            Key::Interrupt => {
                if p.kind == PromptKind::Continuation {
                    // Ctrl-C at `> ` abandons the whole multi-line command.
                    self.current = None;
                    self.screen.hooks.capture.active = false;
                }
                self.prompt = None;
            }
            Key::Enter => {
                // Keys typed in earlier calls drew no output at all: they may
                // not have been echoed; the line read at accept tells.
                p.suspect_unechoed = p.typed_earlier > 0 && !p.output_since;
                self.accepting = Some(at_us);
                self.screen.hooks.watch = Some(Watch {
                    start: p.start.clone(),
                    cap: self.cfg.max_command_text,
                    output_limit: self.cfg.max_output_text,
                });
            }
        }
    }

    fn start_capture(&mut self, out_row: usize) {
        let hooks = &mut self.screen.hooks;
        hooks.capture.start(out_row, self.cfg.max_output_text);
        (hooks.saw_alt, hooks.saw_app_clear) = (false, false);
    }

    /// Reads the line now, as the screen stands (the shell has not moved off it yet).
    fn force_accept(&mut self) {
        let Some(watch) = self.screen.hooks.watch.take() else {
            return;
        };
        let accepted = screen::read_line(self.screen.term(), &watch.start, watch.cap);
        self.start_capture(accepted.end_row + 1);
        self.accepted(accepted);
    }

    /// The accepted line starts (or continues) a command.
    fn accepted(&mut self, line: Accepted) {
        self.screen.hooks.watch = None;
        let Some(at_us) = self.accepting.take() else {
            return;
        };
        let Some(p) = self.prompt.take() else { return };
        let mut line = line;
        if p.suspect_unechoed {
            // Nothing was echoed while typing. If the screen now shows other
            // than what was typed (or nothing), it is the command's output or
            // an untouched prompt: the command line itself is unknown.
            let typed = String::from_utf8_lossy(&p.typed_bytes);
            if line.text.is_empty() || (!p.edited && line.text.trim_end() != typed.trim_end()) {
                line.text.clear();
                line.confidence = Confidence::Unknown;
            }
        }
        let confidence = line.confidence;
        if line.text.is_empty()
            && confidence != Confidence::Unknown
            && p.kind == PromptKind::Primary
        {
            // Enter on an empty (or emptied) line runs nothing.
            return;
        }
        let cap = self.cfg.max_command_text;
        match (&mut self.current, p.kind) {
            (Some(c), PromptKind::Continuation) => {
                // An empty line inside a here-doc or loop is part of the command.
                if c.text.len() + 1 + line.text.len() <= cap {
                    c.text.push('\n');
                    c.text.push_str(&line.text);
                }
                c.confidence = c.confidence.max(confidence);
            }
            _ => {
                self.complete(Some(at_us));
                let mut text = line.text;
                truncate_chars(&mut text, cap);
                self.current = Some(Running {
                    text,
                    prompt: p.start.text,
                    started_at_us: at_us,
                    confidence,
                    full_screen: false,
                });
            }
        }
    }

    /// Ends the running command: its output is what lies between its line and
    /// the cursor's (the new prompt's) line.
    fn complete(&mut self, ended_at_us: Option<u64>) {
        let end = match ended_at_us {
            Some(_) => (cursor_line_start(self.screen.term()), 0),
            None => (usize::MAX, 0),
        };
        self.complete_at(ended_at_us, end);
    }

    /// Ends the running command, its output ending where the next prompt starts (`end`).
    fn complete_at(&mut self, ended_at_us: Option<u64>, end: Pos) {
        let Some(c) = self.current.take() else {
            return;
        };
        let (output, output_truncated) = self.screen.finish_capture(end);
        self.screen.flush_transcript(end.0, self.last_output_at);
        self.emit(Command {
            text: c.text,
            typed: None,
            prompt: c.prompt,
            started_at_us: c.started_at_us,
            // A prompt seen only when typing resumed is dated by the last
            // output, which never precedes the command's own Enter.
            ended_at_us: ended_at_us.map(|e| e.max(c.started_at_us)),
            output,
            output_truncated,
            confidence: c.confidence,
            full_screen: c.full_screen,
        });
    }

    /// Hands a completed command out, as what ran: a history expansion the
    /// shell printed replaces the typed line, one that failed ran nothing.
    fn emit(&mut self, mut command: Command) {
        if command.confidence != Confidence::Unknown {
            let (first, rest) = command.output.split_once('\n').unwrap_or((&command.output, ""));
            match expansion(&command.text, first) {
                Expansion::None => {}
                Expansion::Failed => return,
                Expansion::Ran(mut line) => {
                    truncate_chars(&mut line, self.cfg.max_command_text);
                    let rest = rest.trim_start_matches('\n').to_owned();
                    command.typed = Some(std::mem::replace(&mut command.text, line));
                    command.output = rest;
                }
            }
        }
        if self.ready.len() >= self.cfg.max_pending_commands.max(1) {
            self.ready.pop_front();
            self.dropped += 1;
        }
        self.ready.push_back(command);
    }
}

/// A size within the configured maximum; 0 (what a client without a terminal sends, e.g.
/// `ssh -tt` from a pipe) means unknown and is taken as 80x24.
fn clamp(cfg: &ExtractorConfig, cols: u16, rows: u16) -> (usize, usize) {
    let or = |v: u16, unknown: u16| if v == 0 { unknown } else { v };
    (
        usize::from(or(cols, 80).min(cfg.max_cols.max(1))),
        usize::from(or(rows, 24).min(cfg.max_rows.max(1))),
    )
}

fn truncate_chars(s: &mut String, max_bytes: usize) {
    if s.len() > max_bytes {
        let mut end = max_bytes;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}
