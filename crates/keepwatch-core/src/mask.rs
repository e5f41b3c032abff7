//! Output masking: secrets a target prints (private keys, cloud keys, `password=...`,
//! bearer tokens) are replaced by a marker before the output is recorded or indexed.
//!
//! Rules are regular expressions over bytes. A rule with a group named `secret` masks only
//! that group (`password=hunter2` becomes `password=[masked password-assignment]`); other
//! rules mask the whole match. Private key blocks are built in and may span any number of
//! output chunks. A rule match split across two output chunks is not seen (a key block is);
//! see `docs/secrets.md`.

use std::borrow::Cow;
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

    /// State for one channel's output stream.
    pub fn channel(&self) -> ChannelMask {
        ChannelMask { rules: self.rules.clone(), in_key: false }
    }
}

/// Group names must be unique in the alternation; the combined regex only finds where.
fn strip_names(pattern: &str) -> String {
    pattern.replace("(?P<secret>", "(?:").replace("(?<secret>", "(?:")
}

/// Masks one channel's output, chunk by chunk (a private key block may span chunks).
#[derive(Debug, Default)]
pub struct ChannelMask {
    rules: Option<Arc<Rules>>,
    /// Inside a private key block whose end has not been seen.
    in_key: bool,
}

impl ChannelMask {
    /// The chunk as it is to be recorded: borrowed unchanged when nothing matched.
    pub fn apply<'a>(&mut self, data: &'a [u8]) -> Cow<'a, [u8]> {
        let Some(rules) = self.rules.clone() else {
            return Cow::Borrowed(data);
        };
        let mut out: Vec<u8> = Vec::new();
        let mut copied = 0;
        let mut pos = 0;
        if self.in_key {
            match rules.key_end.find(data) {
                Some(end) => {
                    self.in_key = false;
                    copied = end.end();
                    pos = end.end();
                }
                None => return Cow::Owned(Vec::new()),
            }
        }
        loop {
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
                    if pos > data.len() {
                        break;
                    }
                    continue;
                }
                (_, Some(m)) => match which(&rules, data, m.start(), m.end()) {
                    Some(found) => found,
                    None => (m.start(), m.end(), "mask"),
                },
                (None, None) => break,
            };
            out.extend_from_slice(&data[copied..start]);
            out.extend_from_slice(&mask_marker(name));
            copied = end;
            pos = end;
            if pos >= data.len() {
                break;
            }
        }
        if copied == 0 && out.is_empty() {
            return Cow::Borrowed(data);
        }
        out.extend_from_slice(&data[copied..]);
        Cow::Owned(out)
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
