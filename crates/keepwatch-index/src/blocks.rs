//! Output text of each channel cut into [`OutputBlock`]s: about [`OutputBlock::TARGET`]
//! bytes each, cut just after a line's end, each run of text marked with the moment of the
//! recording it was seen at.

use std::collections::BTreeMap;

use keepwatch_store::OutputBlock;

/// A line with no end in sight is cut here...
const HARD: usize = 256 * 1024;
/// ...and the next block repeats its last bytes, so a match across the cut is still found
/// whole in one block (search text is capped well below this).
const OVERLAP: usize = 4 * 1024;

/// Text of one channel not yet in a block.
#[derive(Default)]
struct Open {
    text: String,
    /// `(byte offset, offset_us)`, as in [`OutputBlock::marks`].
    marks: Vec<(u32, u64)>,
}

/// The blocks of a session's channels, as their text arrives.
#[derive(Default)]
pub struct Blocks {
    open: BTreeMap<u32, Open>,
    done: Vec<OutputBlock>,
    /// Text taken in, in bytes (what the index has to cover).
    pub bytes: u64,
}

impl Blocks {
    /// Adds text that channel `channel` showed at `at_us` (microseconds into the recording).
    pub fn push(&mut self, started_at_us: i64, channel: u32, at_us: u64, text: &str) {
        if text.is_empty() {
            return;
        }
        self.bytes += text.len() as u64;
        let open = self.open.entry(channel).or_default();
        match open.marks.last_mut() {
            Some((_, t)) if *t == at_us => {}
            Some((b, t)) if *b as usize == open.text.len() => *t = at_us,
            _ => open.marks.push((open.text.len() as u32, at_us)),
        }
        open.text.push_str(text);
        if open.text.len() < OutputBlock::TARGET {
            return;
        }
        // Cut as many blocks as the text holds, then move what is left to the front once.
        let mut from = 0;
        loop {
            let rest = &open.text.as_bytes()[from..];
            if rest.len() < OutputBlock::TARGET {
                break;
            }
            let window = &rest[OutputBlock::TARGET - 1..rest.len().min(HARD)];
            let (cut, next) = match window.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let cut = from + OutputBlock::TARGET + i;
                    (cut, cut)
                }
                None if rest.len() >= HARD => {
                    let cut = floor_char_boundary(&open.text, from + HARD);
                    (cut, floor_char_boundary(&open.text, cut - OVERLAP))
                }
                None => break,
            };
            self.done.push(block(started_at_us, channel, open, from, cut));
            from = next;
        }
        if from > 0 {
            let at = offset_at(&open.marks, from);
            open.text.drain(..from);
            let keep = open.marks.partition_point(|&(b, _)| (b as usize) <= from);
            open.marks.drain(..keep);
            for m in &mut open.marks {
                m.0 -= from as u32;
            }
            open.marks.insert(0, (0, at));
            if open.text.is_empty() {
                open.marks.clear();
            }
        }
    }

    /// Every block so far, including the text of each channel not yet cut into one.
    pub fn drain(&mut self, started_at_us: i64) -> Vec<OutputBlock> {
        for (&channel, open) in &mut self.open {
            if !open.text.is_empty() {
                let end = open.text.len();
                self.done.push(block(started_at_us, channel, open, 0, end));
            }
        }
        self.open.clear();
        std::mem::take(&mut self.done)
    }
}

/// The block of `open`'s text `from..to`.
fn block(started_at_us: i64, channel: u32, open: &Open, from: usize, to: usize) -> OutputBlock {
    let first = offset_at(&open.marks, from);
    let mut marks = vec![(0, first)];
    for &(b, t) in &open.marks {
        let b = b as usize;
        if b > from && b < to {
            marks.push(((b - from) as u32, t));
        }
    }
    let last = marks.last().map_or(first, |m| m.1);
    OutputBlock {
        channel,
        at_us: started_at_us.saturating_add(first as i64),
        start_offset_us: first,
        end_offset_us: last,
        text: open.text[from..to].to_owned(),
        marks,
    }
}

/// The moment of the text at byte `at`.
fn offset_at(marks: &[(u32, u64)], at: usize) -> u64 {
    let i = marks.partition_point(|&(b, _)| b as usize <= at);
    marks.get(i.wrapping_sub(1)).or(marks.first()).map_or(0, |m| m.1)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_at_line_ends_and_every_line_keeps_its_moment() {
        let mut blocks = Blocks::default();
        let mut expected = String::new();
        for i in 0..20_000u64 {
            let line = format!("line {i}\n");
            expected.push_str(&line);
            blocks.push(1000, 3, i * 10, &line);
        }
        let all = blocks.drain(1000);
        assert!(all.len() > 5, "{} blocks", all.len());
        let mut joined = String::new();
        for b in &all {
            assert!(b.text.ends_with('\n'));
            assert!(b.text.len() < OutputBlock::TARGET + 64, "{}", b.text.len());
            assert_eq!(b.at_us, 1000 + b.start_offset_us as i64);
            for (at, line) in b.text.match_indices("line ") {
                let n: u64 = b.text[at + 5..].split('\n').next().unwrap().parse().unwrap();
                assert_eq!(b.offset_at(at), n * 10, "{line}");
            }
            joined.push_str(&b.text);
        }
        assert_eq!(joined, expected);
    }

    #[test]
    fn a_line_without_end_is_cut_with_an_overlap() {
        let mut blocks = Blocks::default();
        let long = "x".repeat(HARD * 2 + 10) + "needle\n";
        blocks.push(0, 0, 5, &long);
        let all = blocks.drain(0);
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|b| b.text.len() <= HARD));
        assert!(all[2].text.ends_with("needle\n"));
        let total: usize = all.iter().map(|b| b.text.len()).sum();
        assert_eq!(total, long.len() + 2 * OVERLAP);
        assert!(all.iter().all(|b| b.marks == [(0, 5)]));
    }
}
