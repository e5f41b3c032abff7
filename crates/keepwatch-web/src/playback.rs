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
#[derive(Default)]
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
    let mut header = json!({"version": 2, "width": cols, "height": rows, "timestamp": started_at_us / 1_000_000});
    if let Some(t) = term {
        header["env"] = json!({"TERM": t});
    }
    let mut out = header.to_string();
    out.push('\n');
    let mut utf8 = Utf8Stream::default();
    let mut input = Utf8Stream::default();
    for e in events {
        let t = e.at_us as f64 / 1e6;
        let line = match &e.event {
            Event::Output { channel, data } | Event::ExtOutput { channel, data }
                if *channel == ch =>
            {
                let s = utf8.push(data);
                if s.is_empty() { continue } else { json!([t, "o", s]) }
            }
            Event::Input { channel, data } if with_input && *channel == ch => {
                let s = input.push(data);
                if s.is_empty() { continue } else { json!([t, "i", s]) }
            }
            Event::Resize { channel, cols, rows } if *channel == ch => {
                json!([t, "r", format!("{cols}x{rows}")])
            }
            _ => continue,
        };
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// What the player needs to show one channel from `from_us` on.
pub struct ReplayWindow {
    pub channel: u32,
    pub cols: u32,
    pub rows: u32,
    /// When the last event happened (the session's length so far).
    pub duration_us: u64,
    /// The screen at `from_us` as escape sequences (`None` when starting at 0).
    pub keyframe: Option<(u64, String)>,
    /// `[at_us, "o", text]` and `[at_us, "r", "COLSxROWS"]` from `from_us` to `until_us`.
    pub events: Vec<serde_json::Value>,
}

/// Emulates the channel up to `from_us` (the keyframe), then collects events to `until_us`;
/// reads the recording from its start.
pub fn replay_window(
    events: &[TimedEvent],
    channel: Option<u32>,
    from_us: u64,
    until_us: Option<u64>,
) -> Option<ReplayWindow> {
    let (ch, cols, rows, _) = pick_channel(events, channel)?;
    let (c, r) = size(if cols == 0 { 80 } else { cols }, if rows == 0 { 24 } else { rows });
    let term = (from_us > 0).then(|| avt::Terminal::new(c, r).ok()).flatten();
    let duration_us = events.last().map_or(0, |e| e.at_us);
    Some(window(events, ch, term, (c, r), from_us, until_us, duration_us))
}

/// The same, starting from a stored keyframe: `events` are those after it.
pub fn replay_from_keyframe(
    events: &[TimedEvent],
    channel: u32,
    keyframe: (&str, u16, u16),
    from_us: u64,
    until_us: Option<u64>,
    duration_us: u64,
) -> ReplayWindow {
    let (c, r) = size(u32::from(keyframe.1), u32::from(keyframe.2));
    let term = avt::Terminal::new(c, r).ok().map(|mut t| {
        t.feed(keyframe.0);
        t
    });
    window(events, channel, term, (c, r), from_us.max(1), until_us, duration_us)
}

fn size(c: u32, r: u32) -> (usize, usize) {
    (c.clamp(1, 1000) as usize, r.clamp(1, 1000) as usize)
}

fn window(
    events: &[TimedEvent],
    ch: u32,
    mut term: Option<avt::Terminal>,
    (c, r): (usize, usize),
    from_us: u64,
    until_us: Option<u64>,
    duration_us: u64,
) -> ReplayWindow {
    let mut text = Utf8Stream::default();
    let mut out = Vec::new();
    for e in events {
        let before = e.at_us < from_us;
        if until_us.is_some_and(|u| e.at_us > u) {
            break;
        }
        match &e.event {
            Event::Output { channel, data } | Event::ExtOutput { channel, data }
                if *channel == ch =>
            {
                let s = text.push(data);
                match (&mut term, before) {
                    (Some(t), true) => t.feed(s.as_str()),
                    _ if !s.is_empty() => out.push(json!([e.at_us, "o", s])),
                    _ => {}
                }
            }
            Event::Resize { channel, cols, rows } if *channel == ch => match (&mut term, before) {
                (Some(t), true) => {
                    let (c, r) = size(*cols, *rows);
                    t.resize(c, r);
                }
                _ => out.push(json!([e.at_us, "r", format!("{cols}x{rows}")])),
            },
            _ => {}
        }
    }
    let (cols, rows) = term.as_ref().map_or((c, r), |t| t.size());
    ReplayWindow {
        channel: ch,
        cols: cols as u32,
        rows: rows as u32,
        duration_us: duration_us.max(events.last().map_or(0, |e| e.at_us)),
        keyframe: term.map(|t| (from_us, t.dump())),
        events: out,
    }
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
