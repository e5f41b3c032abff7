//! What one recording says people ran (sans-IO): events in, command rows out.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use keepwatch_core::{ChannelKind, strip_escapes};
use keepwatch_recording::{Event, TimedEvent};
use keepwatch_store::{CommandRow, KeyframeRow, OutputBlock};
use keepwatch_terminal::{Command, CommandExtractor, ExtractorConfig};

use crate::blocks::Blocks;

/// Cap on the text kept for an exec command's output or a stdin script (bytes).
const MAX_TEXT: usize = 64 * 1024;
/// A full-screen program's screen is kept at most this often (recording time).
const SNAPSHOT_EVERY_US: u64 = 5_000_000;
/// A keyframe after this much output of a terminal channel...
const KEYFRAME_EVERY_BYTES: usize = 256 * 1024;
/// ...or this long after the last one, if there was output since.
const KEYFRAME_EVERY_US: u64 = 30_000_000;

/// Turns the events of one recording, in order, into [`CommandRow`]s and [`OutputBlock`]s.
///
/// Rows:
/// - a terminal shell channel: the commands typed at its prompts ([`CommandExtractor`]),
///   and snapshots of full-screen programs' screens (kind `screen`);
/// - an exec channel: its command line and its output (kind `exec`), and what was piped
///   into it (kind `stdin`);
/// - a shell without a terminal, or a subsystem's bytes recorded as they are (an SFTP or SCP
///   stream the gateway could not follow, an unknown subsystem): what went in and what came
///   out (kind `stdin`);
/// - SFTP/SCP operations: `OP PATH` with the target's answer as output (kind `file`);
/// - environment variables the person passed: `NAME=value` (kind `env`).
///
/// Output blocks hold all the output, uncapped (a row keeps a preview of its command's):
/// every line a terminal showed, including what scrolled past (the extractor's transcript),
/// full-screen programs' screens when they change, what exec channels and raw streams
/// printed and were fed, file operations' answers, the rows and outcomes of database
/// statements, and whole any command line or statement longer than a row keeps.
#[derive(Default)]
pub struct SessionIndexer {
    started_at_us: i64,
    last_at_us: u64,
    channels: HashMap<u32, Channel>,
    next_seq: u32,
    ready: Vec<CommandRow>,
    keyframes: Vec<KeyframeRow>,
    /// Where the events being fed come from: the chunk's file offset and the index of the
    /// next event in it.
    chunk_offset: u64,
    event_in_chunk: u32,
    /// Database statements sent and not answered yet, by their seq: channel, time, text.
    statements: HashMap<u64, (u32, u64, String)>,
    /// Rows captured for statements not answered yet, as text, by their seq.
    rows: HashMap<u64, String>,
    blocks: Blocks,
}

/// Statements waiting for their outcome, at most; past this the oldest is indexed without.
const MAX_PENDING_STATEMENTS: usize = 10_000;

/// When the last keyframe of a terminal channel was taken.
#[derive(Default)]
struct KeyframeClock {
    bytes_since: usize,
    last_us: u64,
}

enum Channel {
    Terminal {
        extractor: Term,
        last_snapshot_us: Option<u64>,
        /// The last snapshot's text, hashed: a screen redrawn unchanged is not kept again.
        last_snapshot: Option<u64>,
        keyframe: KeyframeClock,
    },
    Exec {
        command: String,
        opened_at_us: u64,
        input: Text,
        output: Text,
    },
    Stdin {
        opened_at_us: u64,
        input: Text,
        output: Text,
    },
}

/// A terminal channel's extractor, or, while the session is idle, just its screen: an
/// emulator costs about 60 KiB, a screen dump a few.
enum Term {
    Awake(Box<CommandExtractor>),
    Asleep { screen: String, cols: u16, rows: u16 },
}

impl Term {
    /// The extractor, woken from the screen it slept with when needed.
    fn get(&mut self, at: u64) -> &mut CommandExtractor {
        if let Term::Asleep { screen, cols, rows } = self {
            let cfg = ExtractorConfig { cols: *cols, rows: *rows, ..ExtractorConfig::default() };
            let mut e = CommandExtractor::new(cfg);
            e.output(at, screen.as_bytes());
            // The screen it slept with was not cleared or scrolled: nothing new was seen.
            drop(e.drain_transcript());
            *self = Term::Awake(Box::new(e));
        }
        match self {
            Term::Awake(e) => e,
            Term::Asleep { .. } => unreachable!("woken above"),
        }
    }
}

/// Raw bytes kept up to [`MAX_TEXT`], rendered once at the end; and all of them rendered a
/// line at a time for the output blocks.
#[derive(Default)]
struct Text {
    bytes: Vec<u8>,
    truncated: bool,
    /// The last line, not ended yet.
    partial: Vec<u8>,
    /// Bytes of binary data in a row, not turned into text.
    binary: u64,
}

impl Text {
    /// Keeps `data` and returns the text of the lines it ends. Binary data (a `cat` of an
    /// archive) is not text to search: a line says how many bytes of it there were.
    fn push(&mut self, data: &[u8]) -> Option<String> {
        let room = MAX_TEXT.saturating_sub(self.bytes.len());
        self.bytes.extend_from_slice(&data[..data.len().min(room)]);
        self.truncated |= data.len() > room;
        if looks_binary(data, self.binary > 0) {
            self.binary += data.len() as u64;
            return None;
        }
        let mut out = self.binary_line();
        self.partial.extend_from_slice(data);
        let end = match self.partial.iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            // A line with no end in sight is taken as it is.
            None if self.partial.len() >= MAX_TEXT => self.partial.len(),
            None => return (!out.is_empty()).then_some(out),
        };
        let lines: Vec<u8> = self.partial.drain(..end).collect();
        out.push_str(&render(&lines));
        Some(out)
    }

    /// The text of the last line, if it did not end (and of binary data just before).
    fn rest(&mut self) -> Option<String> {
        let mut out = self.binary_line();
        out.push_str(&render(&std::mem::take(&mut self.partial)));
        (!out.is_empty()).then_some(out)
    }

    fn binary_line(&mut self) -> String {
        match std::mem::take(&mut self.binary) {
            0 => String::new(),
            n => format!("[keepwatch: {n} bytes of binary data, recorded, not indexed as text]\n"),
        }
    }

    fn render(&self) -> String {
        render(&self.bytes)
    }
}

/// A piece of a stream that is binary data, not text: NULs or other control characters
/// (not tab, newline, carriage return, escape, backspace or bell) in more than 1% of it,
/// judged by its first 4 KiB (a piece is one SSH message: a stream rarely turns from text to
/// binary inside one). Text, coloured or not, has next to none; random bytes have 10%. A
/// piece under 16 bytes is too short for a ratio: outside a binary run (`in_binary`) it is
/// text; inside one it stays binary unless it is clean UTF-8 (`done` after a download).
/// Within a run, a piece under 256 bytes must be UTF-8 to count as text again.
fn looks_binary(data: &[u8], in_binary: bool) -> bool {
    let sample = &data[..data.len().min(4096)];
    let control: usize = sample
        .iter()
        .map(|&b| usize::from(b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x1b | 0x08 | 0x07)))
        .sum();
    let invalid = || std::str::from_utf8(data).is_err();
    if data.len() < 16 {
        return in_binary && (control > 0 || invalid());
    }
    control * 100 > sample.len() || (in_binary && data.len() < 256 && invalid())
}

fn render(bytes: &[u8]) -> String {
    strip_escapes(bytes).replace("\r\n", "\n")
}

/// `text` cut to [`MAX_TEXT`] bytes at a char boundary; true when something was cut. A
/// screen of up to 1000 by 1000 cells of 4-byte characters would be megabytes.
fn capped(mut text: String) -> (String, bool) {
    if text.len() <= MAX_TEXT {
        return (text, false);
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    (text, true)
}

impl SessionIndexer {
    pub fn new() -> Self {
        SessionIndexer { next_seq: 1, ..Default::default() }
    }

    /// Commands that rows were made for so far.
    pub fn commands(&self) -> u32 {
        self.next_seq - 1
    }

    /// When the last event fed happened (microseconds since the session started).
    pub fn last_at_us(&self) -> u64 {
        self.last_at_us
    }

    /// The events fed next come from the chunk at this file offset.
    pub fn chunk(&mut self, offset: u64) {
        self.chunk_offset = offset;
        self.event_in_chunk = 0;
    }

    /// Keyframes taken since the last call.
    pub fn drain_keyframes(&mut self) -> Vec<KeyframeRow> {
        std::mem::take(&mut self.keyframes)
    }

    /// Feeds the next event of the recording.
    pub fn event(&mut self, ev: &TimedEvent) {
        self.event_inner(ev);
        self.event_in_chunk += 1;
    }

    fn event_inner(&mut self, ev: &TimedEvent) {
        let at = ev.at_us;
        self.last_at_us = at;
        match &ev.event {
            Event::SessionStart(s) => self.started_at_us = s.started_at_us,
            Event::ChannelOpen { channel, kind, pty } => {
                let state = match (kind, pty) {
                    (ChannelKind::Shell, Some(pty)) => {
                        let cfg = ExtractorConfig {
                            cols: pty.cols.min(u32::from(u16::MAX)) as u16,
                            rows: pty.rows.min(u32::from(u16::MAX)) as u16,
                            ..ExtractorConfig::default()
                        };
                        Channel::Terminal {
                            extractor: Term::Awake(Box::new(CommandExtractor::new(cfg))),
                            last_snapshot_us: None,
                            last_snapshot: None,
                            keyframe: KeyframeClock { bytes_since: 0, last_us: at },
                        }
                    }
                    (ChannelKind::Shell, None) => Channel::Stdin {
                        opened_at_us: at,
                        input: Text::default(),
                        output: Text::default(),
                    },
                    (ChannelKind::Exec { command }, _) => Channel::Exec {
                        command: self.capped_or_blocks(
                            *channel,
                            at,
                            &String::from_utf8_lossy(command),
                        ),
                        opened_at_us: at,
                        input: Text::default(),
                        output: Text::default(),
                    },
                    (ChannelKind::Subsystem { .. }, _) => Channel::Stdin {
                        opened_at_us: at,
                        input: Text::default(),
                        output: Text::default(),
                    },
                };
                if let Some(old) = self.channels.insert(*channel, state) {
                    self.finish_channel(*channel, old, at);
                }
            }
            Event::Output { channel, data } | Event::ExtOutput { channel, data } => {
                self.output(*channel, at, data);
            }
            Event::Input { channel, data } => match self.channels.get_mut(channel) {
                Some(Channel::Terminal { extractor, .. }) => {
                    extractor.get(at).input(at, data);
                    self.drain(*channel);
                }
                Some(Channel::Stdin { input, .. } | Channel::Exec { input, .. }) => {
                    // What was piped in is the row's command (a script), up to its cap, and
                    // all of it in the channel's blocks: none of it goes unsearchable.
                    if let Some(lines) = input.push(data) {
                        self.blocks.push(self.started_at_us, *channel, at, &lines);
                    }
                }
                _ => {}
            },
            Event::Resize { channel, cols, rows } => {
                if let Some(Channel::Terminal { extractor, .. }) = self.channels.get_mut(channel) {
                    let clamp = |v: u32| v.min(u32::from(u16::MAX)) as u16;
                    extractor.get(at).resize(at, clamp(*cols), clamp(*rows));
                    self.drain(*channel);
                }
            }
            Event::ChannelClose { channel, .. } => {
                if let Some(state) = self.channels.remove(channel) {
                    self.finish_channel(*channel, state, at);
                }
            }
            Event::FileOperation { channel, op, path, target_path, result } => {
                let command = capped(match target_path {
                    Some(to) => format!("{op} {path} {to}"),
                    None => format!("{op} {path}"),
                })
                .0;
                let output = result.clone();
                self.blocks.push(self.started_at_us, *channel, at, &format!("{output}\n"));
                self.push(CommandRow {
                    command,
                    output,
                    ..self.row(*channel, "file", at, Some(at))
                });
            }
            Event::Env { channel, name, value, forwarded } => {
                let command = capped(format!("{name}={value}")).0;
                let output = if *forwarded { String::new() } else { "refused".into() };
                self.push(CommandRow {
                    command,
                    output,
                    ..self.row(*channel, "env", at, Some(at))
                });
            }
            Event::Statement(st) => {
                let mut text = st.text.clone();
                if !st.params.is_empty() {
                    let params: Vec<String> = st
                        .params
                        .iter()
                        .enumerate()
                        .map(|(i, p)| match p {
                            Some(v) => format!("${}={v}", i + 1),
                            None => format!("${}=NULL", i + 1),
                        })
                        .collect();
                    text = format!("{text} -- {}", params.join(", "));
                }
                if self.statements.len() >= MAX_PENDING_STATEMENTS
                    && let Some(&oldest) = self.statements.keys().min()
                {
                    self.statement_done(oldest, at, "(no result seen)".into());
                }
                let text = self.capped_or_blocks(st.channel, at, &text);
                self.statements.insert(st.seq, (st.channel, at, text));
            }
            Event::StatementResult(r) => {
                let outcome = r.outcome.to_string();
                // Its statement may be before where this indexing started.
                self.statements
                    .entry(r.seq)
                    .or_insert_with(|| (r.channel, at, format!("(statement {})", r.seq)));
                self.statement_done(r.seq, at, outcome);
            }
            Event::Rows(r) => {
                if self.statements.contains_key(&r.seq) {
                    let mut text = String::new();
                    if !r.columns.is_empty() {
                        text.push_str(&r.columns.join(" | "));
                        text.push('\n');
                    }
                    for row in &r.rows {
                        let values: Vec<&str> =
                            row.iter().map(|v| v.as_deref().unwrap_or("NULL")).collect();
                        text.push_str(&values.join(" | "));
                        text.push('\n');
                    }
                    self.blocks.push(self.started_at_us, r.channel, at, &text);
                    // A simple query's statements share a seq: their rows add up, within
                    // what a command's output keeps.
                    let kept = self.rows.entry(r.seq).or_default();
                    kept.push_str(&text);
                    *kept = capped(std::mem::take(kept)).0;
                }
            }
            Event::Seal(_) => self.finish(at),
            Event::Eof { .. }
            | Event::Notice { .. }
            | Event::TunnelOpen { .. }
            | Event::TunnelClose { .. }
            | Event::FileTransfer(_)
            | Event::Transaction { .. }
            | Event::Context { .. } => {}
        }
    }

    /// `text` for a row's command line: capped there, and when it is longer than the cap,
    /// all of it in the channel's output blocks too.
    fn capped_or_blocks(&mut self, channel: u32, at: u64, text: &str) -> String {
        let (kept, cut) = capped(text.to_owned());
        if cut {
            self.blocks.push(self.started_at_us, channel, at, text);
            self.blocks.push(self.started_at_us, channel, at, "\n");
        }
        kept
    }

    /// Indexes statement `seq` with its outcome.
    fn statement_done(&mut self, seq: u64, at: u64, mut output: String) {
        let Some((channel, start, command)) = self.statements.remove(&seq) else { return };
        self.blocks.push(self.started_at_us, channel, at, &format!("{output}\n"));
        if let Some(rows) = self.rows.remove(&seq) {
            output = format!("{rows}{output}");
        }
        self.push(CommandRow {
            command,
            output: capped(output).0,
            ..self.row(channel, "sql", start, Some(at))
        });
    }

    /// The recording ended (sealed, or cut short): every channel's last command is done.
    pub fn finish(&mut self, at_us: u64) {
        let mut waiting: Vec<u64> = self.statements.keys().copied().collect();
        waiting.sort_unstable();
        for seq in waiting {
            self.statement_done(seq, at_us, "(no result: the session ended)".into());
        }
        let mut open: Vec<_> = self.channels.drain().collect();
        open.sort_by_key(|(channel, _)| *channel);
        for (channel, state) in open {
            self.finish_channel(channel, state, at_us);
        }
    }

    /// The session went quiet: terminal channels give up their emulators and keep only
    /// their screens, finishing a command still running (with the output it had). The next
    /// event for a channel wakes it from its screen. A channel whose extractor is not at
    /// rest (a line half typed or recalled, a line typed ahead, a multi-line command
    /// waiting for its next line) stays awake: a screen alone would lose that line.
    pub fn hibernate(&mut self) {
        let mut done = Vec::new();
        for (&channel, state) in &mut self.channels {
            if let Channel::Terminal { extractor: term @ Term::Awake(_), .. } = state {
                let Term::Awake(e) = term else { continue };
                if !e.at_rest() {
                    continue;
                }
                let mut finished = e.finish();
                // The screen it sleeps with keeps those lines: taken when they scroll off
                // or the channel ends, as if it had stayed awake.
                drop(e.drain_transcript());
                let (screen, cols, rows) = e.screen_dump();
                *term = Term::Asleep { screen, cols, rows };
                done.extend(finished.drain(..).map(|c| (channel, c)));
            }
        }
        for (channel, c) in done {
            self.push_command(channel, c);
        }
    }

    /// Rows completed since the last call.
    pub fn drain_rows(&mut self) -> Vec<CommandRow> {
        std::mem::take(&mut self.ready)
    }

    fn output(&mut self, channel: u32, at: u64, data: &[u8]) {
        match self.channels.get_mut(&channel) {
            Some(Channel::Terminal { extractor, last_snapshot_us, last_snapshot, keyframe }) => {
                let extractor = extractor.get(at);
                extractor.output(at, data);
                keyframe.bytes_since += data.len();
                if keyframe.bytes_since >= KEYFRAME_EVERY_BYTES
                    || at >= keyframe.last_us + KEYFRAME_EVERY_US
                {
                    *keyframe = KeyframeClock { bytes_since: 0, last_us: at };
                    let (screen, cols, rows) = extractor.screen_dump();
                    self.keyframes.push(KeyframeRow {
                        channel,
                        at_us: at,
                        chunk_offset: self.chunk_offset,
                        // This event is in the screen: playback resumes after it.
                        skip_events: self.event_in_chunk + 1,
                        cols,
                        rows,
                        screen,
                    });
                }
                let due = last_snapshot_us.is_none_or(|t| at >= t + SNAPSHOT_EVERY_US);
                if extractor.full_screen_active() && due {
                    *last_snapshot_us = Some(at);
                    let screen = extractor.screen_text();
                    let mut hash = DefaultHasher::new();
                    screen.hash(&mut hash);
                    let hash = Some(hash.finish());
                    // A blank screen (just cleared) says nothing.
                    let changed = hash != *last_snapshot && !screen.trim().is_empty();
                    *last_snapshot = hash;
                    self.drain(channel);
                    if changed {
                        self.blocks.push(self.started_at_us, channel, at, &screen);
                        self.blocks.push(self.started_at_us, channel, at, "\n");
                        let (screen, truncated) = capped(screen);
                        self.push(CommandRow {
                            output: screen,
                            output_truncated: truncated,
                            ..self.row(channel, "screen", at, Some(at))
                        });
                    }
                } else {
                    self.drain(channel);
                }
            }
            Some(Channel::Exec { output, .. } | Channel::Stdin { output, .. }) => {
                if let Some(lines) = output.push(data) {
                    self.blocks.push(self.started_at_us, channel, at, &lines);
                }
            }
            _ => {}
        }
    }

    /// Hands on what a terminal channel's extractor completed: commands, and the lines its
    /// screen showed.
    fn drain(&mut self, channel: u32) {
        if let Some(Channel::Terminal { extractor: Term::Awake(extractor), .. }) =
            self.channels.get_mut(&channel)
        {
            for (at, text) in extractor.drain_transcript() {
                self.blocks.push(self.started_at_us, channel, at, &text);
            }
            for c in extractor.drain() {
                self.push_command(channel, c);
            }
        }
    }

    /// Output blocks since the last call, including each channel's text not yet in a full
    /// block (what was read so far is then all in the index).
    pub fn drain_blocks(&mut self) -> Vec<OutputBlock> {
        self.blocks.drain(self.started_at_us)
    }

    /// Bytes of text handed to output blocks so far.
    pub fn output_bytes(&self) -> u64 {
        self.blocks.bytes
    }

    fn finish_channel(&mut self, channel: u32, state: Channel, at: u64) {
        match state {
            Channel::Terminal { mut extractor, .. } => {
                // A sleeping one wakes to hand over the screen it slept with.
                let extractor = extractor.get(at);
                let done = extractor.finish();
                for (at, text) in extractor.drain_transcript() {
                    self.blocks.push(self.started_at_us, channel, at, &text);
                }
                for c in done {
                    self.push_command(channel, c);
                }
            }
            Channel::Exec { command, opened_at_us, mut input, mut output } => {
                for rest in [input.rest(), output.rest()].into_iter().flatten() {
                    self.blocks.push(self.started_at_us, channel, at, &rest);
                }
                self.push(CommandRow {
                    command,
                    output: output.render(),
                    output_truncated: output.truncated,
                    ..self.row(channel, "exec", opened_at_us, Some(at))
                });
                let script = input.render();
                if !script.trim().is_empty() {
                    self.push(CommandRow {
                        command: script,
                        output_truncated: input.truncated,
                        ..self.row(channel, "stdin", opened_at_us, Some(at))
                    });
                }
            }
            Channel::Stdin { opened_at_us, mut input, mut output } => {
                for rest in [input.rest(), output.rest()].into_iter().flatten() {
                    self.blocks.push(self.started_at_us, channel, at, &rest);
                }
                let script = input.render();
                if !script.trim().is_empty() || !output.bytes.is_empty() {
                    self.push(CommandRow {
                        command: script,
                        output: output.render(),
                        output_truncated: output.truncated,
                        ..self.row(channel, "stdin", opened_at_us, Some(at))
                    });
                }
            }
        }
    }

    fn push_command(&mut self, channel: u32, c: Command) {
        self.push(CommandRow {
            command: c.text,
            prompt: c.prompt,
            output: c.output,
            confidence: c.confidence.as_str().into(),
            output_truncated: c.output_truncated,
            full_screen: c.full_screen,
            typed: c.typed,
            ..self.row(channel, "shell", c.started_at_us, c.ended_at_us)
        });
    }

    /// A row of `kind` with empty text, for the caller to fill in.
    fn row(&self, channel: u32, kind: &str, start: u64, end: Option<u64>) -> CommandRow {
        CommandRow {
            seq: 0,
            channel,
            kind: kind.into(),
            at_us: self.started_at_us + start as i64,
            start_offset_us: start,
            end_offset_us: end,
            command: String::new(),
            prompt: String::new(),
            output: String::new(),
            confidence: "exact".into(),
            output_truncated: false,
            full_screen: kind == "screen",
            typed: None,
        }
    }

    fn push(&mut self, mut row: CommandRow) {
        row.seq = self.next_seq;
        self.next_seq += 1;
        self.ready.push(row);
    }
}

#[cfg(test)]
mod tests {
    use keepwatch_recording::Pty;

    use super::*;

    fn ev(at_us: u64, event: Event) -> TimedEvent {
        TimedEvent { at_us, event }
    }

    fn out(at: u64, s: &str) -> TimedEvent {
        ev(at, Event::Output { channel: 0, data: s.as_bytes().to_vec() })
    }

    fn typed(at: u64, s: &str) -> TimedEvent {
        ev(at, Event::Input { channel: 0, data: s.as_bytes().to_vec() })
    }

    /// Database statements are indexed with their parameters and outcome, spanning from
    /// when they were sent to when the answer came; one never answered is indexed at the end.
    #[test]
    fn statements_are_indexed_with_their_outcome() {
        use keepwatch_recording::{Outcome, Statement, StatementResult};
        let statement = |at, seq, text: &str, params: Vec<Option<String>>| {
            let extended = !params.is_empty();
            let st = Statement { channel: 0, seq, text: text.into(), params, extended };
            ev(at, Event::Statement(st))
        };
        let result = |at, seq, outcome| {
            ev(at, Event::StatementResult(StatementResult { channel: 0, seq, outcome }))
        };
        let mut ix = SessionIndexer::new();
        for e in [
            statement(10, 0, "INSERT INTO t VALUES ($1, $2)", vec![Some("7".into()), None]),
            statement(11, 1, "SELECT * FROM nope", vec![]),
            result(20, 0, Outcome::Done { tag: "INSERT 0 1".into(), rows: Some(1) }),
            result(21, 1, Outcome::Failed { sqlstate: "42P01".into(), message: "no".into() }),
            statement(30, 2, "SELECT pg_sleep(100)", vec![]),
        ] {
            ix.event(&e);
        }
        ix.finish(40);
        let rows: Vec<String> = ix
            .drain_rows()
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}-{:?} {} => {}",
                    r.seq, r.kind, r.start_offset_us, r.end_offset_us, r.command, r.output
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                "1 sql 10-Some(20) INSERT INTO t VALUES ($1, $2) -- $1=7, $2=NULL => INSERT 0 1",
                "2 sql 11-Some(21) SELECT * FROM nope => ERROR 42P01: no",
                "3 sql 30-Some(40) SELECT pg_sleep(100) => (no result: the session ended)",
            ]
        );
    }

    #[test]
    fn a_hibernated_terminal_wakes_from_its_screen_and_keeps_extracting() {
        let mut ix = SessionIndexer::new();
        let pty = Some(Pty { term: "xterm".into(), cols: 80, rows: 24 });
        ix.event(&ev(1, Event::ChannelOpen { channel: 0, kind: ChannelKind::Shell, pty }));
        for e in [out(2, "$ "), typed(3, "ls\r"), out(4, "ls\r\nfile\r\n$ ")] {
            ix.event(&e);
        }
        ix.hibernate();
        assert!(matches!(
            ix.channels.get(&0),
            Some(Channel::Terminal { extractor: Term::Asleep { .. }, .. })
        ));
        for e in [typed(60_000_000, "pwd\r"), out(60_000_100, "pwd\r\n/root\r\n$ ")] {
            ix.event(&e);
        }
        ix.finish(60_000_200);
        let rows = ix.drain_rows();
        let cmds: Vec<(&str, &str)> =
            rows.iter().map(|r| (r.command.as_str(), r.output.trim())).collect();
        assert_eq!(cmds, [("ls", "file"), ("pwd", "/root")]);
        assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
    }

    /// Issue 9: a person who recalls a command (Up) and looks at it for a while before
    /// pressing Enter; the follower went quiet in between and must not lose the line.
    #[test]
    fn issue_9_a_pause_mid_line_does_not_lose_the_command() {
        let mut ix = SessionIndexer::new();
        let pty = Some(Pty { term: "xterm".into(), cols: 80, rows: 24 });
        ix.event(&ev(1, Event::ChannelOpen { channel: 0, kind: ChannelKind::Shell, pty }));
        for e in [out(2, "$ "), typed(3, "ls\r"), out(4, "ls\r\nfile\r\n$ ")] {
            ix.event(&e);
        }
        ix.event(&typed(5, "\x1b[A"));
        ix.event(&out(6, "ls"));
        ix.hibernate();
        for e in [typed(60_000_000, "\r"), out(60_000_100, "\r\nfile\r\n$ ")] {
            ix.event(&e);
        }
        ix.hibernate();
        for e in [typed(90_000_000, "for i in 1; do\r"), out(90_000_100, "for i in 1; do\r\n> ")] {
            ix.event(&e);
        }
        ix.hibernate();
        for e in [
            typed(120_000_000, "echo $i\r"),
            out(120_000_100, "echo $i\r\n> "),
            typed(120_000_200, "done\r"),
            out(120_000_300, "done\r\n1\r\n$ "),
        ] {
            ix.event(&e);
        }
        ix.finish(120_000_400);
        let rows = ix.drain_rows();
        let cmds: Vec<&str> = rows.iter().map(|r| r.command.as_str()).collect();
        assert_eq!(cmds, ["ls", "ls", "for i in 1; do\necho $i\ndone"]);
    }

    /// Issue 14: what a row cannot keep is still in the blocks: a script piped into an exec
    /// past the cap, its output past the cap, and a statement longer than a row keeps.
    #[test]
    fn nothing_past_a_rows_cap_is_left_unindexed() {
        use keepwatch_recording::Statement;
        let mut ix = SessionIndexer::new();
        let exec = ChannelKind::Exec { command: b"sh".to_vec() };
        ix.event(&ev(1, Event::ChannelOpen { channel: 1, kind: exec, pty: None }));
        let script: String = (0..20_000).map(|i| format!("echo step-{i}\n")).collect();
        ix.event(&ev(2, Event::Input { channel: 1, data: script.clone().into_bytes() }));
        let printed: String = (0..20_000).map(|i| format!("done-{i}\r\n")).collect();
        ix.event(&ev(3, Event::Output { channel: 1, data: printed.into_bytes() }));
        let long = format!("INSERT INTO t VALUES ('{}', 'tail-marker')", "v".repeat(100_000));
        let st = Statement { channel: 2, seq: 0, text: long, params: vec![], extended: false };
        ix.event(&ev(4, Event::Statement(st)));
        ix.finish(5);
        let rows = ix.drain_rows();
        assert!(rows.iter().all(|r| r.command.len() <= MAX_TEXT && r.output.len() <= MAX_TEXT));
        let text: String = ix.drain_blocks().iter().map(|b| b.text.as_str()).collect();
        for needle in ["echo step-19999\n", "done-19999\n", "'tail-marker')"] {
            assert!(text.contains(needle), "{needle}");
        }
    }

    /// Binary data printed by an exec (`cat archive.tar.gz`) is a line saying how much of it
    /// there was, not megabytes of noise in the index; the text around it is indexed.
    #[test]
    fn binary_output_is_counted_not_indexed() {
        let mut ix = SessionIndexer::new();
        let exec = ChannelKind::Exec { command: b"cat x.bin".to_vec() };
        ix.event(&ev(1, Event::ChannelOpen { channel: 1, kind: exec, pty: None }));
        ix.event(&ev(2, Event::Output { channel: 1, data: b"header-line\n".to_vec() }));
        let mut x = 7u32;
        for i in 0..100 {
            // Pieces of every size, small ones too (an SSH message can be a few bytes).
            let len = if i % 2 == 0 { 4096 } else { 5 + i as usize * 3 };
            let noise: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            ix.event(&ev(3 + i, Event::Output { channel: 1, data: noise }));
        }
        ix.event(&ev(200, Event::Output { channel: 1, data: b"trailer-line\n".to_vec() }));
        ix.finish(201);
        let text: String = ix.drain_blocks().iter().map(|b| b.text.as_str()).collect();
        assert_eq!(
            text,
            "header-line\n[keepwatch: 212550 bytes of binary data, recorded, not indexed as text]\ntrailer-line\n"
        );
    }

    /// Issue 14: a full-screen program redrawing the same screen ten times a second for ten
    /// minutes adds one snapshot, not six thousand; what scrolled by before it is all there.
    #[test]
    fn a_screen_redrawn_unchanged_adds_almost_nothing() {
        let mut ix = SessionIndexer::new();
        let pty = Some(Pty { term: "xterm".into(), cols: 80, rows: 24 });
        ix.event(&ev(1, Event::ChannelOpen { channel: 0, kind: ChannelKind::Shell, pty }));
        let listing: String = (1..=100).map(|i| format!("file-{i}\r\n")).collect();
        for e in [out(2, "$ "), typed(3, "ls\r"), out(4, &format!("ls\r\n{listing}$ "))] {
            ix.event(&e);
        }
        ix.event(&typed(5, "top\r"));
        ix.event(&out(6, "top\r\n\x1b[?1049h\x1b[H\x1b[2J"));
        let frame: String = (0..23)
            .map(|r| format!("\x1b[{};1H{:>5} root  20  0 kworker/{r}", r + 1, 100 + r))
            .collect();
        for i in 0..6000u64 {
            ix.event(&out(10 + i * 100_000, &frame));
        }
        ix.event(&typed(600_100_000, "q"));
        ix.event(&out(600_100_001, "\x1b[?1049l$ "));
        ix.finish(600_100_002);
        let rows = ix.drain_rows();
        let blocks = ix.drain_blocks();
        assert_eq!(rows.iter().filter(|r| r.kind == "screen").count(), 1);
        let text: String = blocks.iter().map(|b| b.text.as_str()).collect();
        for i in 1..=100 {
            assert!(text.contains(&format!("file-{i}\n")), "file-{i} in {text}");
        }
        assert_eq!(text.matches("kworker/7").count(), 1, "{text}");
        assert!(text.len() < 4096, "{} bytes: {text}", text.len());
    }

    /// From the session_indexer fuzz target: a full-screen program on a 1000x252 terminal
    /// fills the screen with a 4-byte character (one char, then REP `CSI 65535 b` four
    /// times); the screen snapshot was a 1 MB row.
    #[test]
    fn a_screen_snapshot_is_capped() {
        let mut ix = SessionIndexer::new();
        let ev = |at_us, event| TimedEvent { at_us, event };
        let pty = Pty { term: "xterm".into(), cols: 80, rows: 24 };
        ix.event(&ev(
            0,
            Event::ChannelOpen { channel: 0, kind: ChannelKind::Shell, pty: Some(pty) },
        ));
        ix.event(&ev(1, Event::Resize { channel: 0, cols: 6000, rows: 252 }));
        let mut out = b"\x1b[?1049h\xf0\x90\x80\x80".to_vec();
        out.extend_from_slice(&b"\x1b[65535b".repeat(4));
        ix.event(&ev(2, Event::Output { channel: 0, data: out }));
        let rows = ix.drain_rows();
        let screen = rows.iter().find(|r| r.kind == "screen").expect("a screen row");
        assert!(screen.output.len() <= MAX_TEXT, "{} bytes", screen.output.len());
        assert!(screen.output_truncated);
        assert!(screen.output.starts_with('\u{10000}'));
    }
}
