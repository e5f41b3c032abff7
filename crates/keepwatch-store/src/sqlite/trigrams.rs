//! What SQLite's output index (`output_fts`) is given for each block of output: not the text,
//! which FTS5's trigram tokenizer would take in a trigram of every character at a time (and
//! a block of log lines repeats most of its trigrams many times), but the block's *distinct*
//! trigrams, one token each, for FTS5's plain `ascii` tokenizer. The index holds the same
//! (block, trigram) pairs either way, since it keeps no positions; FTS5 just hashes each
//! one once per block instead of once per occurrence.
//!
//! A trigram is three characters of the text folded as every match is confirmed
//! (`search::fold`), and a needle's trigrams are of the needle folded the same way: a block
//! whose folded text holds the folded needle holds every trigram of it, so the index never
//! drops a block the confirmation would keep.

use std::cell::RefCell;
use std::collections::HashSet;

use crate::search::{fold_needle, needle_trigrams};

/// Digits of the tokens: base 32, all of them token characters for FTS5's `ascii` tokenizer.
const DIGITS: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// Bits of a trigram of three ASCII characters (7 each).
const ASCII_BITS: u32 = 21;

thread_local! {
    /// Which ASCII trigrams the block being read has shown so far (one bit each, 256 KiB),
    /// cleared after each block by the trigrams it set.
    static SEEN: RefCell<Vec<u64>> = RefCell::new(vec![0; 1 << (ASCII_BITS - 6)]);
}

/// The distinct trigrams of `text` (folded), as tokens separated by spaces.
fn block_tokens(text: &str) -> String {
    if text.is_ascii() {
        distinct(text.bytes().map(|b| u32::from(b.to_ascii_lowercase())))
    } else {
        distinct(fold_needle(text).chars().map(u32::from))
    }
}

/// The tokens of up to `max` trigrams spread over `needle` (as typed; folded here), each of
/// which every block holding it holds; none when it is under three characters (folded).
pub(super) fn needle_tokens(needle: &str, max: usize) -> Vec<String> {
    needle_trigrams(&fold_needle(needle), max)
        .iter()
        .map(|t| {
            let mut c = t.chars().map(u32::from);
            let mut token = String::new();
            push_token(&mut token, [(); 3].map(|()| c.next().unwrap_or(0)));
            token
        })
        .collect()
}

/// What `output_fts` is given for a block of `text`: its distinct trigrams and, when its
/// session is known (`owner`: person and target), [`owner_tokens`].
pub(super) fn block_entry(text: &str, owner: Option<(&str, &str)>) -> String {
    let mut entry = block_tokens(text);
    if let Some((person, target)) = owner {
        for token in owner_tokens(person, target) {
            entry.push(' ');
            entry.push_str(&token);
        }
    }
    entry
}

/// The tokens every block of a session of `person` on `target` carries besides its
/// trigrams (`x` and `y` and 13 digits of a hash of the name: never a trigram's token), so
/// a search of one person's or one target's output asks the index for their blocks only,
/// rather than walking every block holding the text and dropping the others'. A hash that
/// two names share only offers more candidates: each is still checked against its session.
fn owner_tokens(person: &str, target: &str) -> [String; 2] {
    [person_token(person), target_token(target)]
}

/// The token of the blocks of `person`'s sessions.
pub(super) fn person_token(person: &str) -> String {
    name_token('x', person)
}

/// The token of the blocks of sessions on `target`.
pub(super) fn target_token(target: &str) -> String {
    name_token('y', target)
}

fn name_token(kind: char, name: &str) -> String {
    let hash = blake3::hash(name.as_bytes());
    let key = u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"));
    let mut out = String::from(kind);
    push_digits(&mut out, key, 13);
    out
}

/// The bits of [`SEEN`] one block set, cleared when it is done (however it ends, so a later
/// block on the thread never finds a trigram of this one already seen).
struct Seen<'a> {
    bits: &'a mut [u64],
    set: Vec<u32>,
}

impl Seen<'_> {
    /// Whether ASCII trigram `key` is new to this block.
    fn first(&mut self, key: u32) -> bool {
        let (word, bit) = ((key >> 6) as usize, 1u64 << (key & 63));
        let new = self.bits[word] & bit == 0;
        if new {
            self.bits[word] |= bit;
            self.set.push(key);
        }
        new
    }
}

impl Drop for Seen<'_> {
    fn drop(&mut self) {
        for &key in &self.set {
            self.bits[(key >> 6) as usize] = 0;
        }
    }
}

/// Every trigram of `chars` once, as tokens, in the order they first occur.
fn distinct(chars: impl Iterator<Item = u32>) -> String {
    SEEN.with_borrow_mut(|bits| {
        let mut seen = Seen { bits, set: Vec::new() };
        let mut out = String::new();
        let mut wide: HashSet<u64> = HashSet::new();
        let (mut a, mut b) = (u32::MAX, u32::MAX);
        for c in chars {
            if a != u32::MAX {
                let t = [a, b, c];
                if (a | b | c) < 0x80 {
                    if seen.first((a << 14) | (b << 7) | c) {
                        push_token(&mut out, t);
                    }
                } else if wide.insert(wide_key(t)) {
                    push_token(&mut out, t);
                }
            }
            (a, b) = (b, c);
        }
        out
    })
}

/// A trigram of any three characters (21 bits each).
fn wide_key([a, b, c]: [u32; 3]) -> u64 {
    (u64::from(a) << 42) | (u64::from(b) << 21) | u64::from(c)
}

/// Appends trigram `t`'s token (and a space before it unless first): three ASCII characters
/// as 5 digits, any other trigram as `w` and 13 digits, so the two forms never meet.
fn push_token(out: &mut String, t: [u32; 3]) {
    if !out.is_empty() {
        out.push(' ');
    }
    let (key, digits) = if (t[0] | t[1] | t[2]) < 0x80 {
        (u64::from((t[0] << 14) | (t[1] << 7) | t[2]), 5)
    } else {
        out.push('w');
        (wide_key(t), 13)
    };
    push_digits(out, key, digits);
}

/// Appends the low `digits` base-32 digits of `key`, most significant first.
fn push_digits(out: &mut String, key: u64, digits: u32) {
    for i in (0..digits).rev() {
        out.push(DIGITS[((key >> (5 * i)) & 31) as usize] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> HashSet<String> {
        block_tokens(text).split(' ').filter(|t| !t.is_empty()).map(str::to_owned).collect()
    }

    #[test]
    fn a_block_gives_each_trigram_once_folded() {
        assert_eq!(block_tokens("abcabc").split(' ').count(), 3, "abc bca cab");
        assert_eq!(tokens("ABCabc"), tokens("abcABC"));
        assert_eq!(block_tokens("ab"), "");
        // The bits set by one block do not leak into the next.
        assert_eq!(block_tokens("xyz"), block_tokens("xyz"));
        assert!(!block_tokens("xyz").is_empty());
    }

    #[test]
    fn every_token_of_a_needle_is_in_a_block_that_holds_it() {
        let block = "2026-12-03 GET /index.html 200\nΣΊΣΥΦΟΣ İstanbul ĳssel ─┼─ KW-DONE-2\n";
        let have = tokens(block);
        for needle in ["GET /INDEX", "σίσυφ", "İstanbul", "i̇stanbul", "─┼─ kw", "done-2\n"]
        {
            let want = needle_tokens(needle, 12);
            assert!(!want.is_empty(), "{needle}");
            for t in &want {
                assert!(have.contains(t), "{needle}: {t} not among the block's tokens");
            }
        }
        let other = tokens("2026-12-03 GET /index.htm 200");
        assert!(needle_tokens("index.html", 12).iter().any(|t| !other.contains(t)));
        assert!(needle_tokens("ab", 12).is_empty());
    }

    /// Whatever the confirmation finds in a block, the index offers the block for: random
    /// texts over letters whose case folds unevenly (`İ` folds to two characters, `ẞ` to
    /// `ß`), needles cut from them and recased.
    #[test]
    fn a_needle_the_confirmation_finds_is_never_dropped_by_the_index() {
        let alphabet: Vec<char> = "aAbB İiıΣσςẞßΩω─\n1-".chars().collect();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let mut checked = 0;
        for _ in 0..2_000 {
            let text: String = (0..40).map(|_| alphabet[next(alphabet.len())]).collect();
            let chars: Vec<char> = text.chars().collect();
            let from = next(chars.len() - 3);
            let len = 3 + next(6.min(chars.len() - from - 2));
            let needle: String = chars[from..(from + len).min(chars.len())]
                .iter()
                .map(|c| if next(2) == 0 { c.to_uppercase().next().unwrap() } else { *c })
                .collect();
            if crate::search::find_in_block(&text, &fold_needle(&needle), 1).is_empty() {
                continue;
            }
            checked += 1;
            let have = tokens(&text);
            for t in needle_tokens(&needle, 12) {
                assert!(have.contains(&t), "{needle:?} in {text:?}: {t} missing");
            }
        }
        assert!(checked > 500, "only {checked} needles were found to check");
    }

    #[test]
    fn tokens_are_single_ascii_words_that_never_collide() {
        let block = "abc\u{1}\u{7f}Ωmé日本語";
        for t in block_tokens(block).split(' ') {
            assert!(t.bytes().all(|b| b.is_ascii_alphanumeric()), "{t}");
            assert!(t.len() == 5 || (t.len() == 14 && t.starts_with('w')), "{t}");
        }
        for t in [person_token("alice"), target_token("web-01.fra")] {
            assert!(t.bytes().all(|b| b.is_ascii_alphanumeric()), "{t}");
            assert!(t.len() == 14 && (t.starts_with('x') || t.starts_with('y')), "{t}");
        }
        assert_ne!(person_token("alice"), target_token("alice"));
        assert_ne!(person_token("alice"), person_token("Alice"));
        let mut all = HashSet::new();
        for t in [[0, 0, 0], [0x7f, 0x7f, 0x7f], [0x80, 0, 0], [0x10FFFF, 0x10FFFF, 0x10FFFF]] {
            let mut s = String::new();
            push_token(&mut s, t);
            assert!(all.insert(s));
        }
    }
}
