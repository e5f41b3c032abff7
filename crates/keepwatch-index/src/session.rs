//! What one recording says people ran (sans-IO): events in, command rows out.

use std::collections::HashMap;

use keepwatch_core::{ChannelKind, strip_escapes};
use keepwatch_recording::{Event, TimedEvent};
use keepwatch_store::CommandRow;
use keepwatch_terminal::{Command, CommandExtractor, ExtractorConfig};

/// Cap on the text kept for an exec command's output or a stdin script (bytes).
const MAX_TEXT: usize = 64 * 1024;
/// A full-screen program's screen is kept at most this often (recording time).
const SNAPSHOT_EVERY_US: u64 = 5_000_000;

/// Turns the events of one recording, in order, into [`CommandRow`]s:
/// - a terminal shell channel: the commands typed at its prompts ([`CommandExtractor`]),
///   and snapshots of full-screen programs' screens (kind `screen`);
/// - an exec channel: its command line and its output (kind `exec`);
/// - a shell without a terminal: what was piped into it and its output (kind `stdin`);
/// - SFTP/SCP operations: `OP PATH` with the target's answer as output (kind `file`).
#[derive(Default)]
pub struct SessionIndexer {
    started_at_us: i64,
    last_at_us: u64,
    channels: HashMap<u32, Channel>,
    next_seq: u32,
    ready: Vec<CommandRow>,
}

enum Channel {
    Terminal { extractor: Box<CommandExtractor>, last_snapshot_us: Option<u64> },
    Exec { command: String, opened_at_us: u64, output: Text },
    Stdin { opened_at_us: u64, input: Text, output: Text },
    Other,
}

/// Raw bytes kept up to [`MAX_TEXT`], rendered once at the end.
#[derive(Default)]
struct Text {
    bytes: Vec<u8>,
    truncated: bool,
}

impl Text {
    fn push(&mut self, data: &[u8]) {
        let room = MAX_TEXT.saturating_sub(self.bytes.len());
        self.bytes.extend_from_slice(&data[..data.len().min(room)]);
        self.truncated |= data.len() > room;
    }

    fn render(&self) -> String {
        strip_escapes(&self.bytes).replace("\r\n", "\n")
    }
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

    /// Feeds the next event of the recording.
    pub fn event(&mut self, ev: &TimedEvent) {
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
                            extractor: Box::new(CommandExtractor::new(cfg)),
                            last_snapshot_us: None,
                        }
                    }
                    (ChannelKind::Shell, None) => Channel::Stdin {
                        opened_at_us: at,
                        input: Text::default(),
                        output: Text::default(),
                    },
                    (ChannelKind::Exec { command }, _) => Channel::Exec {
                        command: String::from_utf8_lossy(command).into_owned(),
                        opened_at_us: at,
                        output: Text::default(),
                    },
                    (ChannelKind::Subsystem { .. }, _) => Channel::Other,
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
                    extractor.input(at, data);
                    self.drain(*channel);
                }
                Some(Channel::Stdin { input, .. }) => input.push(data),
                _ => {}
            },
            Event::Resize { channel, cols, rows } => {
                if let Some(Channel::Terminal { extractor, .. }) = self.channels.get_mut(channel) {
                    let clamp = |v: u32| v.min(u32::from(u16::MAX)) as u16;
                    extractor.resize(at, clamp(*cols), clamp(*rows));
                    self.drain(*channel);
                }
            }
            Event::ChannelClose { channel, .. } => {
                if let Some(state) = self.channels.remove(channel) {
                    self.finish_channel(*channel, state, at);
                }
            }
            Event::FileOperation { channel, op, path, target_path, result } => {
                let command = match target_path {
                    Some(to) => format!("{op} {path} {to}"),
                    None => format!("{op} {path}"),
                };
                let output = result.clone();
                self.push(CommandRow {
                    command,
                    output,
                    ..self.row(*channel, "file", at, Some(at))
                });
            }
            Event::Seal(_) => self.finish(at),
            Event::Eof { .. }
            | Event::Notice { .. }
            | Event::TunnelOpen { .. }
            | Event::TunnelClose { .. }
            | Event::FileTransfer(_) => {}
        }
    }

    /// The recording ended (sealed, or cut short): every channel's last command is done.
    pub fn finish(&mut self, at_us: u64) {
        let mut open: Vec<_> = self.channels.drain().collect();
        open.sort_by_key(|(channel, _)| *channel);
        for (channel, state) in open {
            self.finish_channel(channel, state, at_us);
        }
    }

    /// Rows completed since the last call.
    pub fn drain_rows(&mut self) -> Vec<CommandRow> {
        std::mem::take(&mut self.ready)
    }

    fn output(&mut self, channel: u32, at: u64, data: &[u8]) {
        match self.channels.get_mut(&channel) {
            Some(Channel::Terminal { extractor, last_snapshot_us }) => {
                extractor.output(at, data);
                let due = last_snapshot_us.is_none_or(|t| at >= t + SNAPSHOT_EVERY_US);
                if extractor.full_screen_active() && due {
                    *last_snapshot_us = Some(at);
                    let (screen, truncated) = capped(extractor.screen_text());
                    self.drain(channel);
                    self.push(CommandRow {
                        output: screen,
                        output_truncated: truncated,
                        ..self.row(channel, "screen", at, Some(at))
                    });
                } else {
                    self.drain(channel);
                }
            }
            Some(Channel::Exec { output, .. } | Channel::Stdin { output, .. }) => output.push(data),
            _ => {}
        }
    }

    fn drain(&mut self, channel: u32) {
        if let Some(Channel::Terminal { extractor, .. }) = self.channels.get_mut(&channel) {
            for c in extractor.drain() {
                self.push_command(channel, c);
            }
        }
    }

    fn finish_channel(&mut self, channel: u32, state: Channel, at: u64) {
        match state {
            Channel::Terminal { mut extractor, .. } => {
                for c in extractor.finish() {
                    self.push_command(channel, c);
                }
            }
            Channel::Exec { command, opened_at_us, output } => {
                self.push(CommandRow {
                    command,
                    output: output.render(),
                    output_truncated: output.truncated,
                    ..self.row(channel, "exec", opened_at_us, Some(at))
                });
            }
            Channel::Stdin { opened_at_us, input, output } => {
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
            Channel::Other => {}
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
