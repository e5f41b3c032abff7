//! One direction of one file: the running SHA-256 over the bytes in offset order, the ranges
//! moved, and a bounded buffer for bytes that arrive ahead of the hash position.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::ranges::Ranges;

/// Bytes past the hash position one file may buffer while waiting for the gap to fill.
pub(crate) const AHEAD_WINDOW: u64 = 8 << 20;
/// Bytes all files of one channel may buffer together.
pub(crate) const AHEAD_BUDGET: usize = 16 << 20;
/// Separate buffered pieces one file may hold (pieces that touch are joined).
const AHEAD_PIECES: usize = 1024;

/// Bytes buffered ahead across all files of a channel.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    pub(crate) used: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct Track {
    /// `None` once hashing gave up (a gap that did not fill within the window).
    hasher: Option<Sha256>,
    /// The hash covers exactly `[0, hashed)`.
    hashed: u64,
    ahead: BTreeMap<u64, Vec<u8>>,
    ahead_bytes: usize,
    pub(crate) ranges: Ranges,
    pub(crate) bytes: u64,
}

impl Default for Track {
    fn default() -> Self {
        Track {
            hasher: Some(Sha256::new()),
            hashed: 0,
            ahead: BTreeMap::new(),
            ahead_bytes: 0,
            ranges: Ranges::default(),
            bytes: 0,
        }
    }
}

impl Track {
    /// Records that `data` moved at `offset`: counts it and covers its range.
    pub(crate) fn moved(&mut self, offset: u64, len: u64) {
        self.bytes = self.bytes.saturating_add(len);
        self.ranges.add(offset, offset.saturating_add(len));
    }

    /// Feeds `data`, which belongs at `offset`, to the hash: now if it continues the hashed
    /// prefix, later (buffered) if it is ahead within the window, never if it is behind.
    pub(crate) fn hash(&mut self, offset: u64, data: &[u8], budget: &mut Budget) {
        let Some(hasher) = &mut self.hasher else { return };
        if data.is_empty() {
            return;
        }
        let Some(end) = offset.checked_add(data.len() as u64) else {
            self.give_up(budget);
            return;
        };
        if end <= self.hashed {
            return;
        }
        if offset <= self.hashed {
            let skip = usize::try_from(self.hashed - offset).unwrap_or(usize::MAX);
            hasher.update(&data[skip..]);
            self.hashed = end;
            if !self.ahead.is_empty() {
                self.drain(budget);
            }
            return;
        }
        if end - self.hashed > AHEAD_WINDOW
            || budget.used + data.len() > AHEAD_BUDGET
            || self.ahead.len() >= AHEAD_PIECES
        {
            self.give_up(budget);
            return;
        }
        // Join a piece that ends where this one starts (a streamed packet arrives in chunks).
        if let Some((&start, piece)) = self.ahead.range_mut(..offset).next_back()
            && start + piece.len() as u64 == offset
        {
            piece.extend_from_slice(data);
        } else if let Some(piece) = self.ahead.get_mut(&offset) {
            if piece.len() >= data.len() {
                return;
            }
            let extra = data.len() - piece.len();
            piece.clear();
            piece.extend_from_slice(data);
            budget.used += extra;
            self.ahead_bytes += extra;
            return;
        } else {
            self.ahead.insert(offset, data.to_vec());
        }
        budget.used += data.len();
        self.ahead_bytes += data.len();
    }

    /// Hashes buffered pieces that the hash position has reached.
    fn drain(&mut self, budget: &mut Budget) {
        let Some(hasher) = &mut self.hasher else { return };
        while let Some(entry) = self.ahead.first_entry() {
            let start = *entry.key();
            if start > self.hashed {
                break;
            }
            let piece = entry.remove();
            budget.used -= piece.len();
            self.ahead_bytes -= piece.len();
            let end = start + piece.len() as u64;
            if end > self.hashed {
                let skip = usize::try_from(self.hashed - start).unwrap_or(usize::MAX);
                hasher.update(&piece[skip..]);
                self.hashed = end;
            }
        }
    }

    /// Stops hashing this file for good and frees its buffer.
    pub(crate) fn give_up(&mut self, budget: &mut Budget) {
        self.hasher = None;
        self.release(budget);
    }

    /// Frees the buffer; call before dropping the track.
    pub(crate) fn release(&mut self, budget: &mut Budget) {
        budget.used -= self.ahead_bytes;
        self.ahead_bytes = 0;
        self.ahead.clear();
    }

    /// The SHA-256 of `[0, len)`, if that is exactly what was hashed.
    pub(crate) fn digest(&self, len: u64) -> Option<[u8; 32]> {
        match &self.hasher {
            Some(hasher) if self.hashed == len => Some(hasher.clone().finalize().into()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    /// Feeds pieces of `content` (given as `[start, end)`) in order, then checks the hash.
    fn check(content: &[u8], pieces: &[(usize, usize)], expect_hash: bool) {
        let mut budget = Budget::default();
        let mut t = Track::default();
        for &(s, e) in pieces {
            t.hash(s as u64, &content[s..e], &mut budget);
        }
        let got = t.digest(content.len() as u64);
        assert_eq!(got.is_some(), expect_hash, "pieces {pieces:?}");
        if let Some(got) = got {
            assert_eq!(got, sha(content));
        }
        t.release(&mut budget);
        assert_eq!(budget.used, 0);
    }

    #[test]
    fn in_order_reordered_overlapping() {
        let content: Vec<u8> = (0..100u8).collect();
        check(&content, &[(0, 100)], true);
        check(&content, &[(0, 40), (40, 100)], true);
        check(&content, &[(40, 100), (0, 40)], true);
        check(&content, &[(80, 100), (40, 60), (60, 80), (0, 40)], true);
        check(&content, &[(0, 50), (20, 70), (70, 100)], true);
        check(&content, &[(50, 70), (50, 60), (60, 100), (0, 50)], true);
        check(&content, &[(0, 50), (60, 100)], false);
        check(&content, &[(10, 100)], false);
    }

    #[test]
    fn gives_up_past_the_window() {
        let mut budget = Budget::default();
        let mut t = Track::default();
        t.hash(AHEAD_WINDOW, b"x", &mut budget);
        assert!(t.hasher.is_none());
        assert_eq!(budget.used, 0);
    }
}
