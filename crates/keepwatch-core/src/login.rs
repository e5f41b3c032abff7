//! The SSH login name `USER@TARGET` (PSM for SSH's convention) or a plain `USER`.

/// Who is logging in and, optionally, where to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginName {
    pub person: String,
    pub target: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseLoginNameError {
    #[error("login name is empty")]
    Empty,
    #[error("login name {0:?} has an empty person or target part (expected USER or USER@TARGET)")]
    EmptyPart(String),
}

impl LoginName {
    /// Splits at the first `@`: person names cannot hold `@`, target names may not either,
    /// but the rest is kept whole so the error names what was wrong.
    ///
    /// # Errors
    /// Empty names and empty parts are rejected.
    pub fn parse(raw: &str) -> Result<Self, ParseLoginNameError> {
        if raw.is_empty() {
            return Err(ParseLoginNameError::Empty);
        }
        match raw.split_once('@') {
            None => Ok(LoginName { person: raw.to_owned(), target: None }),
            Some((p, t)) if p.is_empty() || t.is_empty() => {
                Err(ParseLoginNameError::EmptyPart(raw.to_owned()))
            }
            Some((p, t)) => Ok(LoginName { person: p.to_owned(), target: Some(t.to_owned()) }),
        }
    }
}

/// Whether `name` is acceptable as a person or target name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    fn check(input: &str, expected: Expect) {
        expected.assert_eq(&format!("{:?}", LoginName::parse(input)));
    }

    #[test]
    fn login_names() {
        check("alice", expect![[r#"Ok(LoginName { person: "alice", target: None })"#]]);
        check(
            "alice@web01",
            expect![[r#"Ok(LoginName { person: "alice", target: Some("web01") })"#]],
        );
        check(
            "alice@web01@gw",
            expect![[r#"Ok(LoginName { person: "alice", target: Some("web01@gw") })"#]],
        );
        check("@web01", expect![[r#"Err(EmptyPart("@web01"))"#]]);
        check("alice@", expect![[r#"Err(EmptyPart("alice@"))"#]]);
        check("", expect!["Err(Empty)"]);
    }

    #[test]
    fn names() {
        assert!(valid_name("web-01.prod_a"));
        assert!(!valid_name("a b"));
        assert!(!valid_name("a@b"));
        assert!(!valid_name(""));
    }
}
