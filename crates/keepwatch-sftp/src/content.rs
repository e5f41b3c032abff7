//! Handing out a file's content as it passes, for a gateway that keeps copies: only bytes that
//! continue the file in order from offset 0, and only up to a cap, so what the caller keeps is
//! either the whole file or thrown away.
//!
//! Pieces are ranges of [`Output::forward`](crate::Output::forward), the bytes the tracker
//! copies there anyway, so capture adds no copy inside the tracker.

use std::fmt;
use std::ops::Range;

/// One file's content as a tracker hands it out: numbered per channel, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentId(pub u64);

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Bytes of a file's content that passed in one call: they are `out.forward[range]` and
/// continue the content of `id` exactly where its previous piece ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentPiece {
    pub id: ContentId,
    pub range: Range<usize>,
}

/// What became of a transfer's content, when the tracker hands content out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capture {
    /// The pieces handed out under this id are the whole file, in order: keep them.
    Whole(ContentId),
    /// The pieces handed out under `id` (possibly none) are not the file: discard them.
    Skipped { id: ContentId, reason: SkipReason },
}

impl Capture {
    pub fn id(&self) -> ContentId {
        match self {
            Capture::Whole(id) | Capture::Skipped { id, .. } => *id,
        }
    }
}

/// Why a transfer's content was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Bytes arrived out of order, overlapping, or with a gap.
    OutOfOrder,
    /// The file grew past the capture cap.
    OverCap { max: u64 },
    /// The file did not move whole (cut short, resumed, or a write failed).
    Incomplete,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::OutOfOrder => f.write_str("bytes moved out of order"),
            SkipReason::OverCap { max } => write!(f, "file larger than the {max}-byte capture cap"),
            SkipReason::Incomplete => f.write_str("the file did not move whole"),
        }
    }
}

/// The content of one side of one file, as far as it was handed out.
#[derive(Debug)]
pub(crate) struct Content {
    id: ContentId,
    /// Bytes handed out so far: the offset the next piece must start at.
    next: u64,
    max: u64,
    skipped: Option<SkipReason>,
}

impl Content {
    pub(crate) fn new(id: ContentId, max: u64) -> Self {
        Content { id, next: 0, max, skipped: None }
    }

    /// `forward[range]` just passed and belongs at `offset` of the file: hands it out if it
    /// continues the content, else gives up on the content for good.
    pub(crate) fn pass(&mut self, offset: u64, range: Range<usize>, out: &mut Vec<ContentPiece>) {
        if self.skipped.is_some() || range.is_empty() {
            return;
        }
        let len = range.len() as u64;
        if offset != self.next {
            self.skipped = Some(SkipReason::OutOfOrder);
        } else if self.next.saturating_add(len) > self.max {
            self.skipped = Some(SkipReason::OverCap { max: self.max });
        } else {
            self.next += len;
            out.push(ContentPiece { id: self.id, range });
        }
    }

    /// Gives up on the content before any byte of it passes (a file known to be too big).
    pub(crate) fn skip(&mut self, reason: SkipReason) {
        self.skipped.get_or_insert(reason);
    }

    /// What to do with the pieces, given the file's size if it moved whole.
    pub(crate) fn outcome(&self, whole_size: Option<u64>) -> Capture {
        let reason = match (self.skipped, whole_size) {
            (Some(reason), _) => reason,
            (None, Some(size)) if size == self.next => return Capture::Whole(self.id),
            (None, _) => SkipReason::Incomplete,
        };
        Capture::Skipped { id: self.id, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passes pieces `(offset, len)` (each taken as the next `len` bytes of a forward buffer),
    /// then checks the outcome and the ranges handed out.
    fn check(max: u64, pieces: &[(u64, usize)], size: Option<u64>, expected: Capture, kept: usize) {
        let mut c = Content::new(ContentId(7), max);
        let mut out = Vec::new();
        let mut at = 0;
        for &(offset, len) in pieces {
            c.pass(offset, at..at + len, &mut out);
            at += len;
        }
        assert_eq!(c.outcome(size), expected, "{pieces:?}");
        assert_eq!(out.iter().map(|p| p.range.len()).sum::<usize>(), kept, "{pieces:?}");
    }

    #[test]
    fn keeps_only_whole_in_order_files_within_the_cap() {
        let id = ContentId(7);
        let skipped = |reason| Capture::Skipped { id, reason };
        check(100, &[(0, 40), (40, 60)], Some(100), Capture::Whole(id), 100);
        check(100, &[], Some(0), Capture::Whole(id), 0);
        check(100, &[(0, 40), (50, 50)], Some(100), skipped(SkipReason::OutOfOrder), 40);
        check(100, &[(0, 40), (20, 20)], Some(60), skipped(SkipReason::OutOfOrder), 40);
        check(50, &[(0, 40), (40, 20)], Some(60), skipped(SkipReason::OverCap { max: 50 }), 40);
        check(100, &[(0, 40)], None, skipped(SkipReason::Incomplete), 40);
        check(100, &[(0, 40)], Some(50), skipped(SkipReason::Incomplete), 40);
    }
}
