//! Session tags: short labels auditors and admins put on sessions (`incident-42`,
//! `ticket:OPS-7` stored as `ticket:ops-7`), filtered on by listings and search.

use std::fmt;
use std::str::FromStr;

/// The longest tag, in characters (all ASCII, so bytes too).
pub const MAX_TAG_LEN: usize = 64;

/// The most tags one session carries, and the most one request names.
pub const MAX_TAGS_PER_SESSION: usize = 32;

/// What a tag may hold, as said in every refusal.
pub const TAG_RULE: &str = "1 to 64 characters of a-z 0-9 . _ : / -";

/// A valid tag: 1 to [`MAX_TAG_LEN`] characters of `[a-z0-9._:/-]`, lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

/// A tag that breaks [`TAG_RULE`], or a list of tags of the wrong length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseTagError {
    #[error("invalid tag {0:?}: a tag is {TAG_RULE}")]
    Invalid(String),
    #[error("{0} tags given: give 1 to {MAX_TAGS_PER_SESSION}")]
    Count(usize),
}

impl Tag {
    /// `input` lowercased, if it then follows [`TAG_RULE`].
    ///
    /// # Errors
    /// [`ParseTagError`] naming the input and the rule.
    pub fn parse(input: &str) -> Result<Tag, ParseTagError> {
        let lower = input.to_ascii_lowercase();
        if valid_tag(&lower) {
            Ok(Tag(lower))
        } else {
            Err(ParseTagError::Invalid(input.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `tag` is a tag as stored: 1 to 64 characters of `[a-z0-9._:/-]`.
pub fn valid_tag(tag: &str) -> bool {
    (1..=MAX_TAG_LEN).contains(&tag.len())
        && tag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._:/-".contains(&b))
}

/// Parses every input, refusing more than [`MAX_TAGS_PER_SESSION`] or none; duplicates are
/// dropped, the order kept.
///
/// # Errors
/// The first invalid tag, or a list that is empty or too long.
pub fn parse_tags<S: AsRef<str>>(inputs: &[S]) -> Result<Vec<Tag>, ParseTagError> {
    if inputs.is_empty() || inputs.len() > MAX_TAGS_PER_SESSION {
        return Err(ParseTagError::Count(inputs.len()));
    }
    let mut out: Vec<Tag> = Vec::with_capacity(inputs.len());
    for i in inputs {
        let t = Tag::parse(i.as_ref())?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

impl FromStr for Tag {
    type Err = ParseTagError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tag::parse(s)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    fn check(input: &str, expected: Expect) {
        expected.assert_eq(&match Tag::parse(input) {
            Ok(t) => format!("ok {t}"),
            Err(e) => e.to_string(),
        });
    }

    #[test]
    fn tags() {
        check("incident-42", expect!["ok incident-42"]);
        check("Ticket:OPS-7", expect!["ok ticket:ops-7"]);
        check("team/db_a.b", expect!["ok team/db_a.b"]);
        check("", expect![[r#"invalid tag "": a tag is 1 to 64 characters of a-z 0-9 . _ : / -"#]]);
        check(
            "a b",
            expect![[r#"invalid tag "a b": a tag is 1 to 64 characters of a-z 0-9 . _ : / -"#]],
        );
        check(
            "é",
            expect![[r#"invalid tag "é": a tag is 1 to 64 characters of a-z 0-9 . _ : / -"#]],
        );
        check(
            &"a".repeat(64),
            expect![[r#"ok aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"#]],
        );
        assert!(Tag::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn lists() {
        let t = parse_tags(&["b", "A", "a"]).unwrap();
        assert_eq!(t.iter().map(Tag::as_str).collect::<Vec<_>>(), ["b", "a"]);
        assert!(parse_tags::<&str>(&[]).is_err());
        assert!(parse_tags(&vec!["x"; MAX_TAGS_PER_SESSION + 1]).is_err());
    }
}
