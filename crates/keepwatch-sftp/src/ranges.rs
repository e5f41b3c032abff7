//! A bounded set of byte ranges: which parts of a file moved.

/// How many separate ranges one file keeps before joining neighbours.
pub(crate) const MAX_RANGES: usize = 1024;

/// Sorted, disjoint, non-adjacent `[start, end)` ranges.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Ranges(Vec<(u64, u64)>);

impl Ranges {
    /// Adds `[start, end)`. Sequential access (the common case) only touches the last range.
    pub(crate) fn add(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        if let Some(last) = self.0.last_mut() {
            if start >= last.0 && start <= last.1 {
                last.1 = last.1.max(end);
                return;
            }
            if start > last.1 {
                self.0.push((start, end));
                self.cap();
                return;
            }
        } else {
            self.0.push((start, end));
            return;
        }
        // Out of order: merge with every range it touches.
        let first = self.0.partition_point(|r| r.1 < start);
        let mut past = first;
        let mut merged = (start, end);
        while past < self.0.len() && self.0[past].0 <= end {
            merged.0 = merged.0.min(self.0[past].0);
            merged.1 = merged.1.max(self.0[past].1);
            past += 1;
        }
        self.0.splice(first..past, std::iter::once(merged));
        self.cap();
    }

    /// Keeps at most [`MAX_RANGES`] by joining the two ranges with the smallest gap.
    fn cap(&mut self) {
        if self.0.len() <= MAX_RANGES {
            return;
        }
        let mut best = 0;
        let mut best_gap = u64::MAX;
        for i in 0..self.0.len() - 1 {
            let gap = self.0[i + 1].0 - self.0[i].1;
            if gap < best_gap {
                best_gap = gap;
                best = i;
            }
        }
        self.0[best].1 = self.0[best + 1].1;
        self.0.remove(best + 1);
    }

    /// `Some(end)` when the ranges are exactly `[0, end)` (`Some(0)` when empty).
    pub(crate) fn prefix_end(&self) -> Option<u64> {
        match self.0.as_slice() {
            [] => Some(0),
            [(0, end)] => Some(*end),
            _ => None,
        }
    }

    pub(crate) fn to_vec(&self) -> Vec<(u64, u64)> {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(adds: &[(u64, u64)], expected: &[(u64, u64)]) {
        let mut r = Ranges::default();
        for &(s, e) in adds {
            r.add(s, e);
        }
        assert_eq!(r.0, expected, "after adding {adds:?}");
    }

    #[test]
    fn merges() {
        check(&[(0, 10), (10, 20)], &[(0, 20)]);
        check(&[(10, 20), (0, 5)], &[(0, 5), (10, 20)]);
        check(&[(10, 20), (0, 10)], &[(0, 20)]);
        check(&[(0, 5), (10, 15), (20, 25), (3, 21)], &[(0, 25)]);
        check(&[(0, 5), (10, 15), (20, 25), (6, 9)], &[(0, 5), (6, 9), (10, 15), (20, 25)]);
        check(&[(0, 5), (10, 15), (20, 25), (5, 10)], &[(0, 15), (20, 25)]);
        check(&[(5, 5)], &[]);
        check(&[(0, 30), (5, 10)], &[(0, 30)]);
    }

    #[test]
    fn caps_by_joining_the_closest() {
        let mut r = Ranges::default();
        for i in 0..MAX_RANGES as u64 {
            r.add(i * 10, i * 10 + 5);
        }
        r.add(100_000, 100_001);
        assert_eq!(r.0.len(), MAX_RANGES);
        assert_eq!(r.0[0], (0, 15));
        assert_eq!(r.0.last(), Some(&(100_000, 100_001)));
    }
}
