//! Masking across pieces: each stream's unfinished line is held back until it ends, so a
//! secret typed a key at a time, or pasted and echoed across several SSH packets, is seen
//! whole by the mask rules before any of it reaches the file or a watcher.
//!
//! Sans-IO. Events go in ([`Holdback::push`]) in the order the gateway recorded them and
//! come out in that order, masked: an event waits while it, or any event before it, belongs
//! to a line that has not ended. A stream is one channel's input, output or stderr. The
//! recorder ticks twice per flush interval and lets go, at each tick, the lines idle for half
//! an interval (no byte since) and those that started more than [`MAX_HELD_INTERVALS`]
//! intervals before ([`Holdback::release_stale`]); before a seal or a watch it lets
//! everything go ([`Holdback::release_all`]). So a line typed at any steady pace, however
//! slow the machine, is never cut by a tick, and what is held reaches the file within
//! `MAX_HELD_INTERVALS` + 1 intervals. What is held is bounded: a line longer than
//! [`MAX_HELD_LINE`] is masked as it stands, and past [`MAX_HELD_BYTES`] everything goes.
//!
//! Each event keeps its own bytes and time: a secret spread over several events is replaced
//! by its marker in the event where it starts and cut from the others.

use std::collections::{HashMap, VecDeque};

use keepwatch_core::{ChannelMask, MaskSpan, OutputMask, apply_spans, clip_spans};
use keepwatch_recording::{Event, TimedEvent};

/// A line held longer than this is masked as it stands and let go.
pub(crate) const MAX_HELD_LINE: usize = 4096;
/// Bytes of data events held in all; past this everything is let go.
pub(crate) const MAX_HELD_BYTES: usize = 1 << 20;
/// A line still growing this many flush intervals after its first byte is let go as it
/// stands, so a crash loses at most this much more of a line being typed.
pub(crate) const MAX_HELD_INTERVALS: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Way {
    Input,
    Output,
    Stderr,
}

/// One direction of one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Stream {
    channel: u32,
    way: Way,
}

/// A stream's mask state and the events of its unfinished line.
struct Line {
    mask: ChannelMask,
    /// Absolute queue positions of the pieces of the unfinished line, in order.
    pieces: Vec<u64>,
    bytes: usize,
    /// When the line's first held piece was recorded (event clock).
    since_us: u64,
    /// When its newest held piece was recorded.
    last_us: u64,
}

struct Slot {
    event: TimedEvent,
    /// Part of an unfinished line: not masked yet.
    open: bool,
}

pub(crate) struct Holdback {
    mask: OutputMask,
    queue: VecDeque<Slot>,
    /// The absolute position of `queue[0]`.
    front: u64,
    streams: HashMap<Stream, Line>,
    /// Data bytes in `queue`.
    held_bytes: usize,
}

fn stream_of(event: &Event) -> Option<Stream> {
    let (channel, way) = match event {
        Event::Input { channel, .. } => (*channel, Way::Input),
        Event::Output { channel, .. } => (*channel, Way::Output),
        Event::ExtOutput { channel, .. } => (*channel, Way::Stderr),
        _ => return None,
    };
    Some(Stream { channel, way })
}

fn data_mut(event: &mut Event) -> Option<&mut Vec<u8>> {
    match event {
        Event::Input { data, .. } | Event::Output { data, .. } | Event::ExtOutput { data, .. } => {
            Some(data)
        }
        _ => None,
    }
}

fn data_len(event: &Event) -> usize {
    match event {
        Event::Input { data, .. } | Event::Output { data, .. } | Event::ExtOutput { data, .. } => {
            data.len()
        }
        _ => 0,
    }
}

/// The same kind of data event on the same channel, with `data`.
fn with_data(event: &Event, data: Vec<u8>) -> Event {
    match event {
        Event::Input { channel, .. } => Event::Input { channel: *channel, data },
        Event::ExtOutput { channel, .. } => Event::ExtOutput { channel: *channel, data },
        Event::Output { channel, .. } => Event::Output { channel: *channel, data },
        other => other.clone(),
    }
}

fn is_end_of_line(b: u8) -> bool {
    b == b'\n' || b == b'\r'
}

/// `spans` moved `by` bytes later.
fn shifted(spans: Vec<MaskSpan>, by: usize) -> impl Iterator<Item = MaskSpan> {
    spans.into_iter().map(move |s| MaskSpan { range: s.range.start + by..s.range.end + by, ..s })
}

impl Holdback {
    pub(crate) fn new(mask: OutputMask) -> Self {
        Holdback { mask, queue: VecDeque::new(), front: 0, streams: HashMap::new(), held_bytes: 0 }
    }

    /// Takes the next event; appends to `out` every event that is now ready, in order.
    pub(crate) fn push(&mut self, mut ev: TimedEvent, out: &mut Vec<TimedEvent>) {
        match stream_of(&ev.event) {
            Some(stream) if data_len(&ev.event) > 0 => self.push_data(stream, ev),
            _ => {
                self.other(&mut ev.event);
                self.enqueue(ev, false);
            }
        }
        if self.held_bytes > MAX_HELD_BYTES {
            self.close_all();
        }
        self.pop_ready(out);
    }

    /// Masks every unfinished line as it stands and lets everything go.
    pub(crate) fn release_all(&mut self, out: &mut Vec<TimedEvent>) {
        self.close_all();
        self.pop_ready(out);
    }

    /// Masks, as they stand, the unfinished lines whose newest piece was recorded at or before
    /// `idle_by_us`, or whose first piece at or before `started_by_us`, and lets go what is
    /// then ready. Other lines stay held (and so does everything queued after them).
    pub(crate) fn release_stale(
        &mut self,
        idle_by_us: u64,
        started_by_us: u64,
        out: &mut Vec<TimedEvent>,
    ) {
        let old: Vec<Stream> = self
            .streams
            .iter()
            .filter(|(_, l)| {
                !l.pieces.is_empty() && (l.last_us <= idle_by_us || l.since_us <= started_by_us)
            })
            .map(|(s, _)| *s)
            .collect();
        for stream in old {
            self.close_line(stream, None);
        }
        self.pop_ready(out);
    }

    /// Whether nothing is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn close_all(&mut self) {
        let open: Vec<Stream> =
            self.streams.iter().filter(|(_, l)| !l.pieces.is_empty()).map(|(s, _)| *s).collect();
        for stream in open {
            self.close_line(stream, None);
        }
    }

    /// Events that are not data: masked where they carry text a person gave, and a closed
    /// channel's lines end with it.
    /// Applies the mask rules to one text value, in place.
    fn mask_text(&self, text: &mut String) {
        if let std::borrow::Cow::Owned(masked) = self.mask.apply_once(text.as_bytes()) {
            *text = String::from_utf8_lossy(&masked).into_owned();
        }
    }

    fn other(&mut self, event: &mut Event) {
        match event {
            Event::ChannelOpen { kind: keepwatch_core::ChannelKind::Exec { command }, .. } => {
                if let std::borrow::Cow::Owned(masked) = self.mask.apply_once(command) {
                    *command = masked;
                }
            }
            Event::Env { value, .. } => self.mask_text(value),
            Event::Statement(st) => {
                self.mask_text(&mut st.text);
                for value in st.params.iter_mut().flatten() {
                    self.mask_text(value);
                }
            }
            // Value by value: a secret in a row is masked as it would be in a parameter.
            Event::Rows(r) => {
                for value in r.rows.iter_mut().flatten().flatten() {
                    self.mask_text(value);
                }
            }
            Event::ChannelClose { channel, .. } => {
                let channel = *channel;
                let ended: Vec<Stream> =
                    self.streams.keys().filter(|s| s.channel == channel).copied().collect();
                for stream in ended {
                    self.close_line(stream, None);
                    self.streams.remove(&stream);
                }
            }
            _ => {}
        }
    }

    fn push_data(&mut self, stream: Stream, mut ev: TimedEvent) {
        let Some(data) = data_mut(&mut ev.event) else { return };
        let held = self.streams.get(&stream).map_or(0, |l| l.bytes);
        match data.iter().rposition(|&b| is_end_of_line(b)) {
            Some(last) => {
                let tail = data.split_off(last + 1);
                let rest = (!tail.is_empty())
                    .then(|| TimedEvent { at_us: ev.at_us, event: with_data(&ev.event, tail) });
                // `ev` now ends its stream's line (and may hold whole lines after it).
                self.close_line(stream, Some(&mut ev));
                self.enqueue(ev, false);
                if let Some(rest) = rest {
                    self.hold_or_close(stream, rest);
                }
            }
            None if held + data.len() > MAX_HELD_LINE => {
                self.close_line(stream, Some(&mut ev));
                self.enqueue(ev, false);
            }
            None => self.hold(stream, ev),
        }
    }

    /// The start of a new unfinished line: held, unless it is already too long.
    fn hold_or_close(&mut self, stream: Stream, mut ev: TimedEvent) {
        if data_len(&ev.event) > MAX_HELD_LINE {
            self.close_line(stream, Some(&mut ev));
            self.enqueue(ev, false);
        } else {
            self.hold(stream, ev);
        }
    }

    fn hold(&mut self, stream: Stream, ev: TimedEvent) {
        let len = data_len(&ev.event);
        let at_us = ev.at_us;
        let pos = self.enqueue(ev, true);
        let mask = &self.mask;
        let line = self.streams.entry(stream).or_insert_with(|| Line {
            mask: mask.channel(),
            pieces: Vec::new(),
            bytes: 0,
            since_us: 0,
            last_us: 0,
        });
        if line.pieces.is_empty() {
            line.since_us = at_us;
        }
        line.last_us = at_us;
        line.pieces.push(pos);
        line.bytes += len;
    }

    /// Ends `stream`'s unfinished line: masks its held pieces together with `last` (the event
    /// that ends the line, not queued yet; its bytes after the line's end are masked after
    /// the line), and lets the pieces go.
    fn close_line(&mut self, stream: Stream, last: Option<&mut TimedEvent>) {
        let mask = &self.mask;
        let line = self.streams.entry(stream).or_insert_with(|| Line {
            mask: mask.channel(),
            pieces: Vec::new(),
            bytes: 0,
            since_us: 0,
            last_us: 0,
        });
        let pieces = std::mem::take(&mut line.pieces);
        line.bytes = 0;
        let last_data = last.and_then(|ev| data_mut(&mut ev.event));
        if pieces.is_empty() {
            // Nothing held: the event is masked on its own, as it stands.
            if let Some(data) = last_data {
                let spans = line.mask.spans(data);
                if !spans.is_empty() {
                    *data = apply_spans(data, &spans);
                }
            }
            return;
        }
        // The line: the held pieces, then `last` up to its first end of line.
        let mut joined = Vec::new();
        for pos in &pieces {
            let slot = &mut self.queue[(pos - self.front) as usize];
            if let Some(d) = data_mut(&mut slot.event.event) {
                joined.extend_from_slice(d);
            }
        }
        let held_len = joined.len();
        let line_end = last_data
            .as_ref()
            .map(|d| d.iter().position(|&b| is_end_of_line(b)).map_or(d.len(), |i| i + 1))
            .unwrap_or(0);
        if let Some(d) = &last_data {
            joined.extend_from_slice(&d[..line_end]);
        }
        let spans = line.mask.spans(&joined);
        let after = last_data.as_ref().map(|d| line.mask.spans(&d[line_end..]));
        let mut start = 0;
        for pos in &pieces {
            let slot = &mut self.queue[(pos - self.front) as usize];
            slot.open = false;
            if let Some(d) = data_mut(&mut slot.event.event) {
                let end = start + d.len();
                let local = clip_spans(&spans, start..end);
                if !local.is_empty() {
                    let masked = apply_spans(d, &local);
                    // What the queue holds is counted as it stands.
                    self.held_bytes = self.held_bytes - d.len() + masked.len();
                    *d = masked;
                }
                start = end;
            }
        }
        if let (Some(d), Some(after)) = (last_data, after) {
            let mut local = clip_spans(&spans, held_len..held_len + line_end);
            local.extend(shifted(after, line_end));
            if !local.is_empty() {
                *d = apply_spans(d, &local);
            }
        }
    }

    fn enqueue(&mut self, event: TimedEvent, open: bool) -> u64 {
        self.held_bytes += data_len(&event.event);
        self.queue.push_back(Slot { event, open });
        self.front + self.queue.len() as u64 - 1
    }

    fn pop_ready(&mut self, out: &mut Vec<TimedEvent>) {
        while self.queue.front().is_some_and(|s| !s.open) {
            let Some(slot) = self.queue.pop_front() else { break };
            self.front += 1;
            self.held_bytes -= data_len(&slot.event.event);
            out.push(slot.event);
        }
    }
}

#[cfg(test)]
mod tests {
    use keepwatch_core::ChannelKind;

    use super::*;

    fn input(at_us: u64, s: &str) -> TimedEvent {
        TimedEvent { at_us, event: Event::Input { channel: 0, data: s.as_bytes().to_vec() } }
    }

    fn output(at_us: u64, s: &str) -> TimedEvent {
        TimedEvent { at_us, event: Event::Output { channel: 0, data: s.as_bytes().to_vec() } }
    }

    /// One line per event that came out: its time, kind and text.
    fn show(events: &[TimedEvent]) -> String {
        events
            .iter()
            .map(|e| match &e.event {
                Event::Input { channel, data } => {
                    format!("{} in#{channel} {:?}\n", e.at_us, String::from_utf8_lossy(data))
                }
                Event::Output { channel, data } => {
                    format!("{} out#{channel} {:?}\n", e.at_us, String::from_utf8_lossy(data))
                }
                other => format!("{} {other:?}\n", e.at_us),
            })
            .collect()
    }

    fn run(events: Vec<TimedEvent>, release_at_end: bool) -> (Vec<TimedEvent>, bool) {
        let mut h = Holdback::new(OutputMask::defaults());
        let mut out = Vec::new();
        for e in events {
            h.push(e, &mut out);
        }
        let drained = h.is_empty();
        if release_at_end {
            h.release_all(&mut out);
        }
        (out, drained)
    }

    /// Issue 9: a secret typed a key at a time (and echoed a key at a time) on a command line
    /// is masked in the input and in the echo, and nothing of it comes out before the line
    /// ends; the events keep their order and times.
    #[test]
    fn a_secret_typed_a_key_at_a_time_is_masked_in_input_and_echo() {
        let secret = "AKIAIOSFODNN7EXAMPLE";
        let mut events = vec![output(1, "$ ")];
        let mut t = 10;
        for c in format!("echo {secret}").chars() {
            events.push(input(t, &c.to_string()));
            events.push(output(t + 1, &c.to_string()));
            t += 10;
        }
        let (before_enter, drained) = run(events.clone(), false);
        assert!(before_enter.is_empty(), "released before the line ended: {before_enter:?}");
        assert!(!drained);
        events.push(input(t, "\r"));
        events.push(output(t + 1, &format!("\r\n{secret}\r\n$ ")));
        let (out, _) = run(events, true);
        let text = show(&out);
        assert!(!text.contains("AKIA") && !text.contains("EXAMPLE"), "{text}");
        assert_eq!(text.matches("[masked aws-access-key]").count(), 3, "{text}");
        let times: Vec<u64> = out.iter().map(|e| e.at_us).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "order changed: {times:?}");
        let typed: String = out
            .iter()
            .filter_map(|e| match &e.event {
                Event::Input { data, .. } => Some(String::from_utf8_lossy(data).into_owned()),
                _ => None,
            })
            .collect();
        assert_eq!(typed, "echo [masked aws-access-key]\r");
    }

    /// A pasted secret split over two packets, with text before and after it.
    #[test]
    fn a_pasted_secret_split_across_packets() {
        let events = vec![
            output(1, "$ "),
            input(2, "export TOKEN=ghp_0123456789abcdefghij"),
            input(3, "0123456789abcdef ; echo ok\r"),
        ];
        let (out, _) = run(events, true);
        expect_test::expect![[r#"
            1 out#0 "$ "
            2 in#0 "export TOKEN=[masked password-assignment]"
            3 in#0 " ; echo ok\r"
        "#]]
        .assert_eq(&show(&out));
    }

    /// The flush lets an unfinished line go, masked as it stands (a prompt waits no longer
    /// than a flush interval).
    #[test]
    fn release_all_lets_an_unfinished_line_go() {
        let (out, _) = run(vec![output(1, "password="), output(2, "hunter2")], true);
        expect_test::expect![[r#"
            1 out#0 "password="
            2 out#0 "[masked password-assignment]"
        "#]]
        .assert_eq(&show(&out));
    }

    /// A tick lets go only the lines idle since its cut-off: a line still being typed stays
    /// whole however long ago it started (and so does what was queued after it), an idle one
    /// goes as it stands.
    #[test]
    fn a_tick_lets_go_only_idle_lines() {
        let mut h = Holdback::new(OutputMask::defaults());
        let mut out = Vec::new();
        h.push(output(100, "password="), &mut out);
        h.push(input(500, "ls -"), &mut out);
        h.push(output(600, "hunter2"), &mut out);
        assert!(out.is_empty());
        h.release_stale(99, 0, &mut out);
        assert!(out.is_empty(), "nothing idle by 99: {}", show(&out));
        // The input line is idle by 500, but it waits behind the output line, which is not.
        h.release_stale(500, 0, &mut out);
        assert!(out.is_empty(), "the output line is still growing: {}", show(&out));
        h.release_stale(600, 0, &mut out);
        expect_test::expect![[r#"
            100 out#0 "password="
            500 in#0 "ls -"
            600 out#0 "[masked password-assignment]"
        "#]]
        .assert_eq(&show(&out));
        assert!(h.is_empty());
    }

    /// A line that keeps growing is let go once it started before the absolute cut-off.
    #[test]
    fn a_line_typed_for_too_long_goes_as_it_stands() {
        let mut h = Holdback::new(OutputMask::defaults());
        let mut out = Vec::new();
        for (i, key) in ["e", "c", "h", "o"].iter().enumerate() {
            h.push(input(100 + 100 * i as u64, key), &mut out);
        }
        h.release_stale(350, 99, &mut out);
        assert!(out.is_empty(), "not idle, not too old: {}", show(&out));
        h.release_stale(350, 100, &mut out);
        expect_test::expect![[r#"
            100 in#0 "e"
            200 in#0 "c"
            300 in#0 "h"
            400 in#0 "o"
        "#]]
        .assert_eq(&show(&out));
        assert!(h.is_empty());
    }

    /// Bulk data without line ends is not held; neither is a long line past the cap.
    #[test]
    fn bulk_data_goes_straight_through() {
        let big = "x".repeat(MAX_HELD_LINE + 1);
        let (out, drained) = run(vec![output(1, &big), output(2, "a\nb")], false);
        assert_eq!(out.len(), 2, "{}", show(&out));
        assert!(!drained, "the unfinished \"b\" is held");
        let mut h = Holdback::new(OutputMask::defaults());
        let mut out = Vec::new();
        for i in 0..(MAX_HELD_BYTES / 1000 + 2) {
            h.push(output(i as u64, &"y".repeat(1000)), &mut out);
            let other = TimedEvent {
                at_us: i as u64,
                event: Event::Output { channel: 1, data: b"z".to_vec() },
            };
            h.push(other, &mut out);
        }
        assert!(h.held_bytes <= MAX_HELD_BYTES, "{} bytes held", h.held_bytes);
    }

    /// A channel's end ends its lines; exec command lines and environment values are masked.
    #[test]
    fn channel_close_exec_lines_and_environment() {
        let events = vec![
            TimedEvent {
                at_us: 0,
                event: Event::ChannelOpen {
                    channel: 0,
                    kind: ChannelKind::Exec {
                        command: b"curl -H 'Authorization: Bearer abcdefghijklmnopqrstu'".to_vec(),
                    },
                    pty: None,
                },
            },
            TimedEvent {
                at_us: 1,
                event: Event::Env {
                    channel: 0,
                    name: "LC_X".into(),
                    value: "api_key=s3cr3t-value".into(),
                    forwarded: true,
                },
            },
            output(2, "partial"),
            TimedEvent {
                at_us: 3,
                event: Event::ChannelClose { channel: 0, exit_status: Some(0), exit_signal: None },
            },
            TimedEvent {
                at_us: 4,
                event: Event::Statement(keepwatch_recording::Statement {
                    channel: 1,
                    seq: 0,
                    text: "ALTER ROLE app PASSWORD 'x'; SELECT 'password=hunter22'".into(),
                    params: vec![None, Some("token=abcdefghijklmnop".into())],
                    extended: true,
                }),
            },
        ];
        let (out, drained) = run(events, false);
        assert!(drained);
        expect_test::expect![[r#"
            0 ChannelOpen { channel: 0, kind: Exec { command: [99, 117, 114, 108, 32, 45, 72, 32, 39, 65, 117, 116, 104, 111, 114, 105, 122, 97, 116, 105, 111, 110, 58, 32, 66, 101, 97, 114, 101, 114, 32, 91, 109, 97, 115, 107, 101, 100, 32, 98, 101, 97, 114, 101, 114, 45, 116, 111, 107, 101, 110, 93, 39] }, pty: None }
            1 Env { channel: 0, name: "LC_X", value: "api_key=[masked password-assignment]", forwarded: true }
            2 out#0 "partial"
            3 ChannelClose { channel: 0, exit_status: Some(0), exit_signal: None }
            4 Statement(Statement { channel: 1, seq: 0, text: "ALTER ROLE app PASSWORD [masked sql-password]; SELECT 'password=[masked password-assignment]'", params: [None, Some("token=[masked password-assignment]")], extended: true })
        "#]]
        .assert_eq(&show(&out));
    }
}
