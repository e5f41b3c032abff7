//! Output masking: secrets a target prints (private keys, cloud keys, `password=...`,
//! bearer tokens) are replaced by a marker before the output is recorded or indexed.
//!
//! Rules are regular expressions over bytes. A rule with a group named `secret` masks only
//! that group (`password=hunter2` becomes `password=[masked password-assignment]`); other
//! rules mask the whole match. Private key blocks are built in and may span any number of
//! output chunks. A rule match split across two output chunks is not seen (a key block is);
//! see `docs/secrets.md`.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use regex::bytes::{Regex, RegexBuilder};

/// One masking rule: a name shown in the marker and a regular expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskRule {
    pub name: String,
    pub pattern: String,
}

/// The rules on by default, besides private key blocks.
pub const DEFAULT_MASK_RULES: &[(&str, &str)] = &[
    ("aws-access-key", r"(?-u)\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
    (
        "aws-secret-key",
        r#"(?i-u)aws_?secret_?access_?key["']?[ \t]*[:=][ \t]*["']?(?P<secret>[A-Za-z0-9/+=]{40})"#,
    ),
    (
        "password-assignment",
        r#"(?i-u)(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)["']?[ \t]*[:=][ \t]*(?P<secret>"[^"\r\n]+"|'[^'\r\n]+'|[^\s"',;]+)"#,
    ),
    ("bearer-token", r"(?i-u)\bbearer[ \t]+(?P<secret>[A-Za-z0-9._~+/-]{16,}=*)"),
    // `CREATE ROLE ... PASSWORD 'x'`, `ALTER USER ... WITH ENCRYPTED PASSWORD 'x'` (SQL).
    ("sql-password", r"(?i-u)\bpassword[ \t]+(?P<secret>'(?:[^']|'')*')"),
    ("github-token", r"(?-u)\bgh[pousr]_[A-Za-z0-9]{36}\b"),
];

/// The marker that replaces a masked secret.
pub fn mask_marker(rule: &str) -> Vec<u8> {
    format!("[masked {rule}]").into_bytes()
}

const PRIVATE_KEY: &str = "private-key";

#[derive(Debug, thiserror::Error)]
#[error("mask rule {name:?} is not a valid regular expression: {reason}")]
pub struct MaskRuleError {
    pub name: String,
    pub reason: String,
}

/// A compiled set of rules, shared by every channel of every session. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct OutputMask {
    rules: Option<Arc<Rules>>,
}

#[derive(Debug)]
struct Rules {
    /// Every rule as one alternation: one scan finds the next match of any rule.
    any: Option<Regex>,
    each: Vec<(String, Regex)>,
    key_begin: Option<Regex>,
    key_end: Regex,
}

impl OutputMask {
    /// No masking at all.
    pub fn none() -> Self {
        OutputMask { rules: None }
    }

    /// The default rules and private key blocks.
    pub fn defaults() -> Self {
        Self::new(true, &Self::default_rules()).expect("the default rules compile")
    }

    /// `private_keys` masks PEM/OpenSSH private key blocks; `rules` are tried in order.
    ///
    /// # Errors
    /// A rule is not a valid regular expression.
    pub fn new(private_keys: bool, rules: &[MaskRule]) -> Result<Self, MaskRuleError> {
        let compile = |name: &str, pattern: &str| {
            RegexBuilder::new(pattern)
                .size_limit(1 << 22)
                .build()
                .map_err(|e| MaskRuleError { name: name.to_owned(), reason: e.to_string() })
        };
        let each = rules
            .iter()
            .map(|r| Ok((r.name.clone(), compile(&r.name, &r.pattern)?)))
            .collect::<Result<Vec<_>, MaskRuleError>>()?;
        let any = if each.is_empty() {
            None
        } else {
            let alternation: Vec<String> =
                each.iter().map(|(_, re)| format!("(?:{})", strip_names(re.as_str()))).collect();
            Some(compile("(all rules)", &alternation.join("|"))?)
        };
        let key_begin = private_keys
            .then(|| compile(PRIVATE_KEY, r"(?-u)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"))
            .transpose()?;
        let key_end = compile(PRIVATE_KEY, r"(?-u)-----END [A-Z0-9 ]*PRIVATE KEY-----")?;
        if any.is_none() && key_begin.is_none() {
            return Ok(Self::none());
        }
        Ok(OutputMask { rules: Some(Arc::new(Rules { any, each, key_begin, key_end })) })
    }

    /// The default rules as [`MaskRule`]s, for configuration files to extend.
    pub fn default_rules() -> Vec<MaskRule> {
        DEFAULT_MASK_RULES
            .iter()
            .map(|(name, pattern)| MaskRule { name: (*name).into(), pattern: (*pattern).into() })
            .collect()
    }

    /// `data` masked on its own (a command line, an environment value), with fresh state.
    pub fn apply_once<'a>(&self, data: &'a [u8]) -> Cow<'a, [u8]> {
        self.channel().apply(data)
    }

    /// State for one channel's output stream.
    pub fn channel(&self) -> ChannelMask {
        ChannelMask { rules: self.rules.clone(), in_key: false }
    }
}

/// Group names must be unique in the alternation; the combined regex only finds where.
fn strip_names(pattern: &str) -> String {
    pattern.replace("(?P<secret>", "(?:").replace("(?<secret>", "(?:")
}

/// Masks one stream (a channel's output, stderr or input), piece by piece in order: a
/// private key block may span pieces. Rules match within one piece; the recorder hands it a
/// whole line at a time (see `keepwatch-recorder`'s holdback) so that a secret typed or
/// echoed a key at a time is still one piece.
#[derive(Debug, Default)]
pub struct ChannelMask {
    rules: Option<Arc<Rules>>,
    /// Inside a private key block whose end has not been seen.
    in_key: bool,
}

/// One secret found in a piece: the bytes to replace and the rule that found them. An empty
/// rule cuts the bytes without a marker: the rest of a private key block whose marker an
/// earlier piece carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskSpan {
    pub range: Range<usize>,
    pub rule: String,
}

impl MaskSpan {
    fn marker(&self) -> Vec<u8> {
        if self.rule.is_empty() { Vec::new() } else { mask_marker(&self.rule) }
    }
}

impl ChannelMask {
    /// The piece as it is to be recorded: borrowed unchanged when nothing matched.
    pub fn apply<'a>(&mut self, data: &'a [u8]) -> Cow<'a, [u8]> {
        let spans = self.spans(data);
        if spans.is_empty() {
            return Cow::Borrowed(data);
        }
        Cow::Owned(apply_spans(data, &spans))
    }

    /// Where the secrets in the next piece of the stream are, in order and not overlapping.
    pub fn spans(&mut self, data: &[u8]) -> Vec<MaskSpan> {
        let mut spans = Vec::new();
        let Some(rules) = self.rules.clone() else {
            return spans;
        };
        let mut pos = 0;
        if self.in_key {
            match rules.key_end.find(data) {
                Some(end) => {
                    self.in_key = false;
                    spans.push(MaskSpan { range: 0..end.end(), rule: String::new() });
                    pos = end.end();
                }
                None => {
                    spans.push(MaskSpan { range: 0..data.len(), rule: String::new() });
                    return spans;
                }
            }
        }
        while pos < data.len() {
            let key = rules.key_begin.as_ref().and_then(|re| re.find_at(data, pos));
            let rule = rules.any.as_ref().and_then(|re| re.find_at(data, pos));
            let key = key.filter(|k| rule.is_none_or(|r| k.start() <= r.start()));
            let (start, end, name) = match (key, rule) {
                (Some(k), _) => match rules.key_end.find_at(data, k.end()) {
                    Some(e) => (k.start(), e.end(), PRIVATE_KEY),
                    None => {
                        self.in_key = true;
                        (k.start(), data.len(), PRIVATE_KEY)
                    }
                },
                (_, Some(m)) if m.is_empty() => {
                    pos = m.end() + 1;
                    continue;
                }
                (_, Some(m)) => match which(&rules, data, m.start(), m.end()) {
                    Some(found) => found,
                    None => (m.start(), m.end(), "mask"),
                },
                (None, None) => break,
            };
            spans.push(MaskSpan { range: start..end, rule: name.to_owned() });
            pos = end;
        }
        spans
    }
}

/// `data` with `spans` (in `data`'s coordinates, in order, not overlapping) replaced by
/// their markers.
pub fn apply_spans(data: &[u8], spans: &[MaskSpan]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut copied = 0;
    for span in spans {
        out.extend_from_slice(&data[copied..span.range.start]);
        out.extend_from_slice(&span.marker());
        copied = span.range.end;
    }
    out.extend_from_slice(&data[copied..]);
    out
}

/// The parts of `spans` that fall inside `range`, relative to its start. A span that began
/// before the range continues into it without a marker (the marker is where it began).
pub fn clip_spans(spans: &[MaskSpan], range: Range<usize>) -> Vec<MaskSpan> {
    spans
        .iter()
        .filter(|s| s.range.start < range.end && s.range.end > range.start)
        .map(|s| MaskSpan {
            range: s.range.start.max(range.start) - range.start
                ..s.range.end.min(range.end) - range.start,
            rule: if s.range.start >= range.start { s.rule.clone() } else { String::new() },
        })
        .collect()
}

/// Masks a piece of a stream that arrived as several `pieces` (in order), keeping each
/// piece's bytes in that piece: a marker goes where its secret starts, and the rest of the
/// secret is cut from the pieces it spans. `spans` index the pieces joined together.
pub fn mask_pieces(pieces: &mut [&mut Vec<u8>], spans: &[MaskSpan]) {
    let mut start = 0;
    for piece in pieces.iter_mut() {
        let end = start + piece.len();
        let local = clip_spans(spans, start..end);
        start = end;
        if !local.is_empty() {
            **piece = apply_spans(piece, &local);
        }
    }
}

/// The rule that matched `data[start..end]` and the range to mask (its `secret` group, or
/// the whole match).
fn which<'r>(
    rules: &'r Rules,
    data: &[u8],
    start: usize,
    end: usize,
) -> Option<(usize, usize, &'r str)> {
    let hay = &data[..(end + 1).min(data.len())];
    rules.each.iter().find_map(|(name, re)| {
        let caps = re.captures_at(hay, start)?;
        let whole = caps.get(0)?;
        if whole.start() != start {
            return None;
        }
        let masked = caps.name("secret").unwrap_or(whole);
        Some((masked.start(), masked.end(), name.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(chunks: &[&str]) -> String {
        let m = OutputMask::new(true, &OutputMask::default_rules()).unwrap();
        let mut ch = m.channel();
        chunks
            .iter()
            .map(|c| String::from_utf8(ch.apply(c.as_bytes()).into_owned()).unwrap())
            .collect()
    }

    #[test]
    fn defaults_mask_what_they_name_and_nothing_else() {
        let cases = [
            ("plain output\r\n", "plain output\r\n"),
            ("id AKIAIOSFODNN7EXAMPLE here", "id [masked aws-access-key] here"),
            (
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
                "aws_secret_access_key = [masked aws-secret-key]\n",
            ),
            ("DB_PASSWORD=hunter2 next", "DB_PASSWORD=[masked password-assignment] next"),
            ("password: \"two words\"\n", "password: [masked password-assignment]\n"),
            ("[sudo] password for kwtest: ", "[sudo] password for kwtest: "),
            (
                "ALTER ROLE app WITH ENCRYPTED PASSWORD 'it''s s3cret';",
                "ALTER ROLE app WITH ENCRYPTED PASSWORD [masked sql-password];",
            ),
            ("Password: \r\nnext line", "Password: \r\nnext line"),
            (
                "Authorization: Bearer abcdefghijklmnop.qrstuvwx==\n",
                "Authorization: Bearer [masked bearer-token]\n",
            ),
            (
                "a -----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY----- b",
                "a [masked private-key] b",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(mask(&[input]), want, "{input:?}");
        }
    }

    #[test]
    fn defaults_has_the_default_rules_not_only_key_blocks() {
        let mut ch = OutputMask::defaults().channel();
        assert_eq!(
            &*ch.apply(b"password=hunter2 AKIAIOSFODNN7EXAMPLE"),
            b"password=[masked password-assignment] [masked aws-access-key]"
        );
    }

    #[test]
    fn a_key_block_spanning_chunks_is_masked_to_its_end() {
        let got = mask(&[
            "before -----BEGIN RSA PRIVATE KEY-----\nMIIE",
            "middle of the key\n",
            "tail\n-----END RSA PRIVATE KEY-----\nafter",
        ]);
        assert_eq!(got, "before [masked private-key]\nafter");
    }

    /// Issue 9: a secret typed a key at a time, or pasted across pieces, is masked as one
    /// line and each piece keeps its own bytes.
    #[test]
    fn a_secret_across_pieces_is_masked_in_place() {
        let check = |pieces: &[&str], want: &[&str]| {
            let m = OutputMask::defaults();
            let joined: Vec<u8> = pieces.concat().into_bytes();
            let spans = m.channel().spans(&joined);
            let mut owned: Vec<Vec<u8>> = pieces.iter().map(|p| p.as_bytes().to_vec()).collect();
            let mut refs: Vec<&mut Vec<u8>> = owned.iter_mut().collect();
            mask_pieces(&mut refs, &spans);
            let got: Vec<String> =
                owned.into_iter().map(|p| String::from_utf8(p).unwrap()).collect();
            assert_eq!(got, want, "{pieces:?}");
        };
        check(
            &["echo ", "AKIA", "IOSFODNN", "7EXAMPLE", " ok\r"],
            &["echo ", "[masked aws-access-key]", "", "", " ok\r"],
        );
        check(&["echo AK", "IAIOSFODNN7EXAMPLE\r"], &["echo [masked aws-access-key]", "\r"]);
        check(
            &["pass", "word=hun", "ter2", "\r"],
            &["pass", "word=[masked password-assignment]", "", "\r"],
        );
        check(&["plain ", "text\r"], &["plain ", "text\r"]);
        let chars: Vec<String> =
            "x AKIAIOSFODNN7EXAMPLE y".chars().map(|c| c.to_string()).collect();
        let pieces: Vec<&str> = chars.iter().map(String::as_str).collect();
        let m = OutputMask::defaults();
        let spans = m.channel().spans(pieces.concat().as_bytes());
        let mut owned: Vec<Vec<u8>> = pieces.iter().map(|p| p.as_bytes().to_vec()).collect();
        let mut refs: Vec<&mut Vec<u8>> = owned.iter_mut().collect();
        mask_pieces(&mut refs, &spans);
        assert_eq!(owned.concat(), b"x [masked aws-access-key] y");
    }

    #[test]
    fn custom_rules_and_bad_rules() {
        let rules = [MaskRule { name: "ticket".into(), pattern: r"TKT-(?P<secret>\d+)".into() }];
        let m = OutputMask::new(false, &rules).unwrap();
        assert_eq!(&*m.channel().apply(b"see TKT-1234 now"), b"see TKT-[masked ticket] now");
        let bad = [MaskRule { name: "broken".into(), pattern: "(".into() }];
        let e = OutputMask::new(false, &bad).unwrap_err();
        assert!(e.to_string().contains("\"broken\""), "{e}");
        assert!(matches!(
            OutputMask::none().channel().apply(b"AKIAIOSFODNN7EXAMPLE"),
            Cow::Borrowed(_)
        ));
    }
}
