//! Playing recordings back: the channel to show, output as text, asciicast v2, and the
//! window of a recording the console's player asks for (a keyframe that redraws the screen
//! at a point, then the events after it).

use keepwatch_recording::{Event, TimedEvent};
use serde_json::json;

/// The channel to play: the one asked for, else the first with a terminal, else the first.
pub fn pick_channel(
    events: &[TimedEvent],
    asked: Option<u32>,
) -> Option<(u32, u32, u32, Option<String>)> {
    let opens = events.iter().filter_map(|e| match &e.event {
        Event::ChannelOpen { channel, pty, .. } => Some((*channel, pty.clone())),
        _ => None,
    });
    let opens: Vec<_> = opens.collect();
    let chosen = match asked {
        Some(c) => opens.iter().find(|(ch, _)| *ch == c),
        None => opens.iter().find(|(_, p)| p.is_some()).or(opens.first()),
    }?;
    let (cols, rows, term) =
        chosen.1.as_ref().map_or((80, 24, None), |p| (p.cols, p.rows, Some(p.term.clone())));
    Some((chosen.0, cols, rows, term))
}

/// Decodes output as UTF-8 across event boundaries, so a character split between two
/// events is emitted whole (asciicast events are JSON strings).
#[derive(Default, Clone)]
pub struct Utf8Stream {
    carry: Vec<u8>,
}

impl Utf8Stream {
    pub fn push(&mut self, data: &[u8]) -> String {
        self.carry.extend_from_slice(data);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.carry) {
                Ok(s) => {
                    out.push_str(s);
                    self.carry.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.carry[..valid]).unwrap_or_default());
                    match e.error_len() {
                        // An incomplete sequence at the end: keep it for the next event.
                        None => {
                            self.carry.drain(..valid);
                            return out;
                        }
                        Some(n) => {
                            out.push('\u{fffd}');
                            self.carry.drain(..valid + n);
                        }
                    }
                }
            }
        }
    }
}

/// Renders events of one channel as asciicast v2.
pub fn asciicast(
    events: &[TimedEvent],
    started_at_us: i64,
    channel: Option<u32>,
    with_input: bool,
) -> String {
    let (ch, cols, rows, term) = pick_channel(events, channel).unwrap_or((0, 80, 24, None));
    let mut w = AsciicastWriter::new(Some(ch), started_at_us, with_input);
    let mut out = String::new();
    w.header(cols, rows, term.as_deref(), &mut out);
    w.events(events, &mut out);
    w.finish(&mut out);
    out
}

/// asciicast v2 written as the recording is read, a piece at a time: the header once the
/// channel opens (with its terminal's size), then a line per output, input or resize event.
pub struct AsciicastWriter {
    channel: Option<u32>,
    started_at_us: i64,
    with_input: bool,
    header_done: bool,
    utf8: Utf8Stream,
    input: Utf8Stream,
}

impl AsciicastWriter {
    /// `channel`: the one to write, or `None` for the first to open.
    pub fn new(channel: Option<u32>, started_at_us: i64, with_input: bool) -> Self {
        AsciicastWriter {
            channel,
            started_at_us,
            with_input,
            header_done: false,
            utf8: Utf8Stream::default(),
            input: Utf8Stream::default(),
        }
    }

    fn header(&mut self, cols: u32, rows: u32, term: Option<&str>, out: &mut String) {
        if self.header_done {
            return;
        }
        self.header_done = true;
        let mut header = json!({"version": 2, "width": cols, "height": rows, "timestamp": self.started_at_us / 1_000_000});
        if let Some(t) = term {
            header["env"] = json!({"TERM": t});
        }
        out.push_str(&header.to_string());
        out.push('\n');
    }

    /// Appends the lines of `events` to `out`.
    pub fn events(&mut self, events: &[TimedEvent], out: &mut String) {
        for e in events {
            if let Event::ChannelOpen { channel, pty, .. } = &e.event
                && self.channel.is_none_or(|c| c == *channel)
            {
                self.channel = Some(*channel);
                let (cols, rows, term) = pty
                    .as_ref()
                    .map_or((80, 24, None), |p| (p.cols, p.rows, Some(p.term.as_str())));
                self.header(cols, rows, term, out);
                continue;
            }
            let Some(ch) = self.channel else { continue };
            let t = e.at_us as f64 / 1e6;
            let line = match &e.event {
                Event::Output { channel, data } | Event::ExtOutput { channel, data }
                    if *channel == ch =>
                {
                    let s = self.utf8.push(data);
                    if s.is_empty() { continue } else { json!([t, "o", s]) }
                }
                Event::Input { channel, data } if self.with_input && *channel == ch => {
                    let s = self.input.push(data);
                    if s.is_empty() { continue } else { json!([t, "i", s]) }
                }
                Event::Resize { channel, cols, rows } if *channel == ch => {
                    json!([t, "r", format!("{cols}x{rows}")])
                }
                ev => match ev.transcript() {
                    Some(text) => json!([t, "o", text]),
                    None => continue,
                },
            };
            self.header(80, 24, None, out);
            out.push_str(&line.to_string());
            out.push('\n');
        }
    }

    /// The end of the recording: the header if the channel never opened.
    pub fn finish(&mut self, out: &mut String) {
        self.header(80, 24, None, out);
    }
}

/// What the player needs to show one channel from `from_us` on.
pub struct ReplayWindow {
    pub channel: u32,
    pub cols: u32,
    pub rows: u32,
    /// When the last event happened (the session's length so far).
    pub duration_us: u64,
    /// The screen at `from_us` as escape sequences (`None` when starting at 0, and on the
    /// pages after the first).
    pub keyframe: Option<(u64, String)>,
    /// `[at_us, "o", text]` and `[at_us, "r", "COLSxROWS"]` from `from_us` to `until_us`.
    pub events: Vec<serde_json::Value>,
    /// Where the next page starts when this one stopped at a cap before `until_us` and the
    /// end; `None` when the window is complete.
    pub next: Option<Resume>,
}

/// Where a page stopped: the chunk to read next (its offset in the recording) and how many
/// of its events were already handled, with the decoder's state at that point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub channel: u32,
    pub chunk_offset: u64,
    pub skip_events: u32,
    /// The time of the first event not yet sent (or of the last one read, when the page
    /// stopped between chunks).
    pub at_us: u64,
    pub cols: u32,
    pub rows: u32,
    /// The start of a UTF-8 character cut by the page boundary (at most 3 bytes).
    pub carry: Vec<u8>,
}

/// The bounds of one page.
#[derive(Debug, Clone, Copy)]
pub struct PageCaps {
    /// Events in one page (at least one is always sent).
    pub max_events: usize,
    /// Bytes of the events as JSON in one page (at least one event is always sent).
    pub max_bytes: usize,
    /// Bytes of recording read for one page after its window starts; a page stops at the
    /// chunk where it passes this, even with few events (a channel with little output in
    /// a recording full of another's).
    pub max_scan_bytes: u64,
}

impl PageCaps {
    /// No bounds (the live view and tests).
    pub const NONE: PageCaps =
        PageCaps { max_events: usize::MAX, max_bytes: usize::MAX, max_scan_bytes: u64::MAX };
}

/// Builds one page of a replay window from the recording's chunks as they are read: feeds
/// the terminal emulator up to `from_us` (for the keyframe), then collects the channel's
/// events until `until_us`, the end, or a cap. Holds one emulator and the page, never the
/// recording.
pub struct WindowBuilder {
    channel: Option<u32>,
    from_us: u64,
    until_us: Option<u64>,
    caps: PageCaps,
    /// Whether this page starts with a keyframe (a seek), emulating until `from_us`.
    emulate: bool,
    term: Option<avt::Terminal>,
    /// The channel's terminal size as last seen.
    size: (u32, u32),
    /// The size when the window started (what the page reports).
    start_size: Option<(u32, u32)>,
    keyframe: Option<(u64, String)>,
    /// The offset of the chunk the window started in.
    window_offset: Option<u64>,
    text: Utf8Stream,
    out: Vec<serde_json::Value>,
    out_bytes: usize,
    last_at_us: u64,
    done: bool,
    next: Option<Resume>,
}

impl WindowBuilder {
    /// From the start of the recording: the window of `channel` (`None`: the first channel
    /// that opens) from `from_us` (emulated up to there when above 0) to `until_us`.
    pub fn from_start(
        channel: Option<u32>,
        from_us: u64,
        until_us: Option<u64>,
        caps: PageCaps,
    ) -> Self {
        WindowBuilder {
            channel,
            from_us,
            until_us,
            caps,
            emulate: from_us > 0,
            term: None,
            size: (80, 24),
            start_size: None,
            keyframe: None,
            window_offset: None,
            text: Utf8Stream::default(),
            out: Vec::new(),
            out_bytes: 0,
            last_at_us: 0,
            done: false,
            next: None,
        }
    }

    /// From an indexer keyframe of `channel` (the screen as escape sequences and its size):
    /// feed the chunks from the keyframe's on.
    pub fn from_keyframe(
        channel: u32,
        keyframe: (&str, u16, u16),
        from_us: u64,
        until_us: Option<u64>,
        caps: PageCaps,
    ) -> Self {
        let mut b = Self::from_start(Some(channel), from_us.max(1), until_us, caps);
        let (c, r) = (u32::from(keyframe.1), u32::from(keyframe.2));
        b.size = (c, r);
        b.term = new_term(c, r).map(|mut t| {
            t.feed(keyframe.0);
            t
        });
        b
    }

    /// The page after `resume`: no keyframe, the events from where the last page stopped.
    pub fn resume(resume: &Resume, until_us: Option<u64>, caps: PageCaps) -> Self {
        let mut b = Self::from_start(Some(resume.channel), resume.at_us, until_us, caps);
        b.emulate = false;
        b.size = (resume.cols, resume.rows);
        b.text = Utf8Stream { carry: resume.carry.clone() };
        b.last_at_us = resume.at_us;
        b
    }

    /// The page is complete: no more chunks are needed.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds one chunk's events (the chunk starts at `offset` in the recording), skipping
    /// the first `skip`; `Break` once the page is complete.
    pub fn chunk(
        &mut self,
        offset: u64,
        events: &[TimedEvent],
        skip: usize,
    ) -> std::ops::ControlFlow<()> {
        use std::ops::ControlFlow;
        if self.done {
            return ControlFlow::Break(());
        }
        if let (Some(start), Some(ch)) = (self.window_offset, self.channel)
            && offset.saturating_sub(start) >= self.caps.max_scan_bytes
        {
            self.stop(ch, offset, skip, self.last_at_us);
            return ControlFlow::Break(());
        }
        for (i, e) in events.iter().enumerate().skip(skip) {
            if self.until_us.is_some_and(|u| e.at_us > u) {
                self.done = true;
                return ControlFlow::Break(());
            }
            self.last_at_us = self.last_at_us.max(e.at_us);
            if let Event::ChannelOpen { channel, pty, .. } = &e.event
                && self.channel.is_none_or(|c| c == *channel)
            {
                self.channel = Some(*channel);
                let (c, r) = pty.as_ref().map_or((80, 24), |p| (p.cols, p.rows));
                let (c, r) = (if c == 0 { 80 } else { c }, if r == 0 { 24 } else { r });
                self.size = (c, r);
                if self.emulate && self.keyframe.is_none() && self.term.is_none() {
                    self.term = new_term(c, r);
                }
                continue;
            }
            let Some(ch) = self.channel else { continue };
            let before = e.at_us < self.from_us && self.emulate && self.keyframe.is_none();
            if let Some(data) = e.event.shown_on(ch) {
                if before {
                    let s = self.text.push(&data);
                    if let Some(t) = &mut self.term {
                        t.feed(&s);
                    }
                    continue;
                }
                self.begin(offset);
                let mut text = self.text.clone();
                let s = text.push(&data);
                if s.is_empty() {
                    self.text = text;
                    continue;
                }
                let cost = EVENT_OVERHEAD + json_str_len(&s);
                if self.full(cost) {
                    self.stop(ch, offset, i, e.at_us);
                    return ControlFlow::Break(());
                }
                self.text = text;
                self.out_bytes += cost;
                self.out.push(json!([e.at_us, "o", s]));
                continue;
            }
            match &e.event {
                Event::Resize { channel, cols, rows } if *channel == ch => {
                    if before {
                        self.size = (*cols, *rows);
                        if let Some(t) = &mut self.term {
                            let (c, r) = clamp(*cols, *rows);
                            t.resize(c, r);
                        }
                        continue;
                    }
                    self.begin(offset);
                    let cost = EVENT_OVERHEAD + 24;
                    if self.full(cost) {
                        self.stop(ch, offset, i, e.at_us);
                        return ControlFlow::Break(());
                    }
                    self.size = (*cols, *rows);
                    self.out_bytes += cost;
                    self.out.push(json!([e.at_us, "r", format!("{cols}x{rows}")]));
                }
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }

    /// The window starts: the keyframe is the emulated screen now.
    fn begin(&mut self, offset: u64) {
        if self.window_offset.is_some() {
            return;
        }
        self.window_offset = Some(offset);
        if self.emulate {
            let (c, r) = self.term.as_ref().map_or(self.size, |t| {
                let (c, r) = t.size();
                (c as u32, r as u32)
            });
            self.size = (c, r);
            let screen = self.term.take().map(|t| t.dump()).unwrap_or_default();
            self.keyframe = Some((self.from_us, screen));
        }
        self.start_size = Some(self.size);
    }

    fn full(&self, cost: usize) -> bool {
        !self.out.is_empty()
            && (self.out.len() >= self.caps.max_events
                || self.out_bytes.saturating_add(cost) > self.caps.max_bytes)
    }

    fn stop(&mut self, channel: u32, offset: u64, skip: usize, at_us: u64) {
        self.done = true;
        self.next = Some(Resume {
            channel,
            chunk_offset: offset,
            skip_events: skip as u32,
            at_us,
            cols: self.size.0,
            rows: self.size.1,
            carry: self.text.carry.clone(),
        });
    }

    /// The page, once the chunks ran out or it is complete; `None` when the channel never
    /// opened in what was read.
    pub fn finish(mut self, duration_us: u64) -> Option<ReplayWindow> {
        let channel = self.channel?;
        self.begin(0);
        let (cols, rows) = self.start_size.unwrap_or(self.size);
        Some(ReplayWindow {
            channel,
            cols,
            rows,
            duration_us: duration_us.max(self.last_at_us),
            keyframe: self.keyframe,
            events: self.out,
            next: self.next,
        })
    }
}

/// A bound on the JSON of one event besides its text: `[at_us,"o",` and `]` and a comma.
pub const EVENT_OVERHEAD: usize = 32;

/// The length of `s` as a JSON string (quotes and escapes included), as `serde_json`
/// writes it.
pub fn json_str_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

fn clamp(c: u32, r: u32) -> (usize, usize) {
    (c.clamp(1, 1000) as usize, r.clamp(1, 1000) as usize)
}

fn new_term(c: u32, r: u32) -> Option<avt::Terminal> {
    let (c, r) = clamp(c, r);
    avt::Terminal::new(c, r).ok()
}

/// The whole window at once (no caps), from the start of `events`: the channel asked for,
/// else the first with a terminal, else the first.
pub fn replay_window(
    events: &[TimedEvent],
    channel: Option<u32>,
    from_us: u64,
    until_us: Option<u64>,
) -> Option<ReplayWindow> {
    let (ch, ..) = pick_channel(events, channel)?;
    let mut b = WindowBuilder::from_start(Some(ch), from_us, until_us, PageCaps::NONE);
    let _ = b.chunk(0, events, 0);
    b.finish(0)
}

/// The same, from a stored keyframe: `events` are those after it.
pub fn replay_from_keyframe(
    events: &[TimedEvent],
    channel: u32,
    keyframe: (&str, u16, u16),
    from_us: u64,
    until_us: Option<u64>,
    duration_us: u64,
) -> ReplayWindow {
    let mut b = WindowBuilder::from_keyframe(channel, keyframe, from_us, until_us, PageCaps::NONE);
    let _ = b.chunk(0, events, 0);
    b.finish(duration_us).unwrap_or(ReplayWindow {
        channel,
        cols: u32::from(keyframe.1),
        rows: u32::from(keyframe.2),
        duration_us,
        keyframe: Some((from_us, keyframe.0.to_owned())),
        events: Vec::new(),
        next: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_split_across_events_is_joined() {
        let mut s = Utf8Stream::default();
        let bytes = "héllo €".as_bytes();
        let (a, b) = bytes.split_at(2); // splits 'é'
        assert_eq!(s.push(a), "h");
        assert_eq!(s.push(b), "éllo €");
        assert_eq!(s.push(b"\xff ok"), "\u{fffd} ok");
    }
}
