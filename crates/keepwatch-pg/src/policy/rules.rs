//! A grant's statement rules (issue 12): read-only, and deny rules by statement kind and by
//! table, decided on each statement's text before it reaches the target.
//!
//! The text is parsed once (`sqlparser`, PostgreSQL dialect) for every rule. A statement kind
//! is judged on every statement the text holds, nested ones included (a `DELETE` in a `WITH`
//! is a `DELETE`). A table is judged on every name the text holds, wherever it stands, and on
//! every word inside its string literals (`'payroll'::regclass`, a `DO` block's body): a rule
//! over-refuses (a column of the same name) rather than let a mention through. Text the parser
//! cannot read is refused under any rule.
//!
//! What text alone cannot show is documented, not guessed at: a view or function that reads a
//! denied table, or SQL a function assembles at run time, is not seen. A read-only grant
//! (which refuses `DO` and unknown functions) or the database's own privileges hold there.

use std::ops::ControlFlow;

use sqlparser::ast::{Statement, Visit, Visitor};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::{ReadOnly, Refusal, kind, parse};

/// The first keywords of PostgreSQL's SQL commands: a deny rule must begin with one, so that
/// a typo (`DELET`) is an error when the grant is made, not a rule that never matches.
const COMMANDS: &[&str] = &[
    "ABORT",
    "ALTER",
    "ANALYZE",
    "BEGIN",
    "CALL",
    "CHECKPOINT",
    "CLOSE",
    "CLUSTER",
    "COMMENT",
    "COMMIT",
    "COPY",
    "CREATE",
    "DEALLOCATE",
    "DECLARE",
    "DELETE",
    "DISCARD",
    "DO",
    "DROP",
    "END",
    "EXECUTE",
    "EXPLAIN",
    "FETCH",
    "GRANT",
    "IMPORT",
    "INSERT",
    "LISTEN",
    "LOAD",
    "LOCK",
    "MERGE",
    "MOVE",
    "NOTIFY",
    "PREPARE",
    "REASSIGN",
    "REFRESH",
    "REINDEX",
    "RELEASE",
    "RESET",
    "REVOKE",
    "ROLLBACK",
    "SAVEPOINT",
    "SECURITY",
    "SELECT",
    "SET",
    "SHOW",
    "START",
    "TRUNCATE",
    "UNLISTEN",
    "UPDATE",
    "VACUUM",
];

/// What a grant refuses on a database target. Built once per session from the grant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatementRules {
    read_only: bool,
    /// Each rule's words, upper case: `["DROP"]`, `["ALTER", "TABLE"]`.
    kinds: Vec<Vec<String>>,
    /// Lower case, unqualified.
    tables: Vec<String>,
}

/// A deny rule that cannot be a rule: names the rule and what a rule looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRule(String);

impl StatementRules {
    /// The rules of a grant: `read_only`, statement kinds (`DROP`, `alter table`) and table
    /// names (`payroll`, `hr.payroll`; only the table's own name is compared, so a rule
    /// holds in every schema).
    ///
    /// # Errors
    ///
    /// [`BadRule`] for a kind that does not begin with a SQL command's keyword, or a table
    /// name that is empty or holds a character no identifier does.
    pub fn new(read_only: bool, kinds: &[String], tables: &[String]) -> Result<Self, BadRule> {
        let kinds = kinds.iter().map(|k| kind_rule(k)).collect::<Result<Vec<_>, _>>()?;
        let tables = tables.iter().map(|t| table_rule(t)).collect::<Result<Vec<_>, _>>()?;
        Ok(StatementRules { read_only, kinds, tables })
    }

    /// The rules in the form a grant stores them: kinds upper case, tables lower case.
    pub fn normalized(
        kinds: &[String],
        tables: &[String],
    ) -> Result<(Vec<String>, Vec<String>), BadRule> {
        let rules = Self::new(false, kinds, tables)?;
        Ok((rules.kinds.iter().map(|k| k.join(" ")).collect(), rules.tables))
    }

    /// A read-only grant (the server's own read-only guard goes on too).
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// No rule at all: statements go through unparsed.
    pub fn is_empty(&self) -> bool {
        !self.read_only && self.kinds.is_empty() && self.tables.is_empty()
    }

    /// Decides one text (a simple Query's, possibly several statements, or one prepared
    /// statement's). Empty text (or only comments) is allowed.
    ///
    /// # Errors
    ///
    /// A [`Refusal`] naming the rule that refuses it, or saying why the text cannot be judged.
    pub fn check(&self, sql: &str) -> Result<(), Refusal> {
        if self.is_empty() {
            return Ok(());
        }
        let grant = if self.read_only { "a read-only grant" } else { "the grant's deny rules" };
        if let Some(hazard) = lexing_hazard(sql) {
            return Err(Refusal::new(format!(
                "the statement has {hazard}, which PostgreSQL and the gateway's parser could read differently, so {grant} refuses it"
            )));
        }
        if let Some(setting) = pinned_setting(sql) {
            return Err(Refusal::new(format!(
                "the statement names {setting}, which must stay as the gateway set it for {grant} to read statements as PostgreSQL does"
            )));
        }
        if let Some(table) = self.named_table(sql)? {
            return Err(Refusal::new(format!("table {table} is denied by the grant")));
        }
        let statements = parse(sql, grant)?;
        if let ControlFlow::Break(r) = statements.visit(&mut Encoding) {
            return Err(r);
        }
        if !self.kinds.is_empty() {
            let mut kinds = Kinds { rules: &self.kinds, routine: false };
            if let ControlFlow::Break(r) = statements.visit(&mut kinds) {
                return Err(r);
            }
            if kinds.routine
                && let Some(rule) = self.kind_in_strings(sql)
            {
                return Err(Refusal::new(format!(
                    "a routine's body holds {rule}, which the grant denies"
                )));
            }
        }
        if self.read_only
            && let ControlFlow::Break(r) = statements.visit(&mut ReadOnly)
        {
            return Err(Refusal::new(format!("read-only grant: {}", r.reason)));
        }
        Ok(())
    }

    /// The first kind rule whose first keyword stands as a word in one of the text's strings
    /// (a function's body is one).
    fn kind_in_strings(&self, sql: &str) -> Option<String> {
        let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
        tokens.iter().find_map(|token| {
            let text = match token {
                Token::SingleQuotedString(s) | Token::EscapedStringLiteral(s) => s.as_str(),
                Token::DollarQuotedString(d) => d.value.as_str(),
                _ => return None,
            };
            let words: Vec<String> = words(text).map(str::to_ascii_uppercase).collect();
            self.kinds.iter().find(|rule| words.contains(&rule[0])).map(|rule| rule.join(" "))
        })
    }

    /// The first denied table the text names, as an identifier or as a word in a string.
    fn named_table(&self, sql: &str) -> Result<Option<String>, Refusal> {
        if self.tables.is_empty() {
            return Ok(None);
        }
        // `U&"p\0061yroll"` spells a name in escapes the comparison below would not see.
        let lower = sql.to_lowercase();
        if lower.contains("u&\"") || lower.contains("u&'") {
            return Err(Refusal::new(
                "a name or string in Unicode escapes (U&) cannot be checked against the grant's denied tables",
            ));
        }
        let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
            // The parser refuses it next, with the tokenizer's error.
            return Ok(None);
        };
        let denied = |word: &str| self.tables.iter().find(|t| t.as_str() == word.to_lowercase());
        for token in &tokens {
            let found = match token {
                Token::Word(w) => denied(&w.value),
                Token::SingleQuotedString(s)
                | Token::EscapedStringLiteral(s)
                | Token::UnicodeStringLiteral(s)
                | Token::NationalStringLiteral(s)
                | Token::DoubleQuotedString(s) => words(s).find_map(denied),
                Token::DollarQuotedString(d) => words(&d.value).find_map(denied),
                _ => None,
            };
            if let Some(t) = found {
                return Ok(Some(t.clone()));
            }
        }
        Ok(None)
    }
}

/// Settings the gateway pins on a session with statement rules (at startup): with
/// `standard_conforming_strings` off a backslash escapes a quote in any string, and a
/// client encoding other than UTF-8 (SJIS, BIG5, GBK...) makes a byte the gateway reads as a
/// backslash or quote part of a character. Either would let PostgreSQL see code where the
/// gateway's parser saw a string. A statement may not name them (`SET`, `set_config`,
/// `ALTER ROLE ... SET`).
pub const PINNED_SETTINGS: &[(&str, &str)] =
    &[("standard_conforming_strings", "on"), ("client_encoding", "UTF8")];

fn pinned_setting(sql: &str) -> Option<&'static str> {
    let lower = sql.to_ascii_lowercase();
    PINNED_SETTINGS.iter().map(|(name, _)| *name).find(|name| lower.contains(name))
}

/// `SET NAMES` changes the client encoding without naming it.
struct Encoding;

impl Visitor for Encoding {
    type Break = Refusal;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<Refusal> {
        match statement {
            Statement::Set(sqlparser::ast::Set::SetNames { .. }) => {
                ControlFlow::Break(Refusal::new(
                    "SET NAMES changes the client encoding, which the gateway pins for the grant's rules",
                ))
            }
            _ => ControlFlow::Continue(()),
        }
    }
}

/// The first place where PostgreSQL's lexer (`scan.l`) and the parser's tokenizer could
/// split `sql` differently, which would let text PostgreSQL runs as code pass as a string or
/// comment: a dollar-quote tag (or parameter) with a non-ASCII character or starting with a
/// digit, and an operator with `/*` or `--` inside it (PostgreSQL ends the operator there).
/// Strings, quoted names, comments and dollar-quoted bodies are skipped as PostgreSQL reads
/// them, with `standard_conforming_strings` on (pinned: [`PINNED_SETTINGS`]).
fn lexing_hazard(sql: &str) -> Option<&'static str> {
    let b = sql.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80;
    let op = |c: u8| b"~!@#^&|`?+-*/%<>=".contains(&c);
    let mut i = 0;
    while i < b.len() {
        let next = b.get(i + 1).copied();
        match b[i] {
            b'-' if next == Some(b'-') => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
            }
            b'/' if next == Some(b'*') => {
                let mut depth = 0usize;
                while i < b.len() {
                    if b[i..].starts_with(b"/*") {
                        depth += 1;
                        i += 2;
                    } else if b[i..].starts_with(b"*/") {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            quote @ (b'\'' | b'"') => {
                // An E'...' string takes backslash escapes; every other string and a quoted
                // name end at a lone quote (a doubled one is part of it).
                let escapes = quote == b'\''
                    && i > 0
                    && matches!(b[i - 1], b'e' | b'E')
                    && (i < 2 || !ident(b[i - 2]) && b[i - 2] != b'$');
                i += 1;
                while i < b.len() {
                    let escaped = escapes && b[i] == b'\\';
                    let doubled = b[i] == quote && b.get(i + 1) == Some(&quote);
                    if escaped || doubled {
                        i += 2;
                    } else if b[i] == quote {
                        i += 1;
                        break;
                    } else {
                        i += 1;
                    }
                }
            }
            b'$' if i > 0 && (ident(b[i - 1]) || b[i - 1] == b'$') => i += 1,
            b'$' => {
                let start = i + 1;
                let mut end = start;
                while end < b.len() && ident(b[end]) {
                    end += 1;
                }
                let tag = &b[start..end];
                if tag.iter().any(|&c| c >= 0x80) {
                    return Some("a dollar quote or parameter with non-ASCII characters");
                }
                if tag.first().is_some_and(u8::is_ascii_digit) {
                    if !tag.iter().all(u8::is_ascii_digit) || b.get(end) == Some(&b'$') {
                        return Some("a dollar quote whose tag starts with a digit");
                    }
                    i = end;
                } else if b.get(end) == Some(&b'$') {
                    let delimiter = &b[i..=end];
                    let body = end + 1;
                    i = match b[body..].windows(delimiter.len()).position(|w| w == delimiter) {
                        Some(at) => body + at + delimiter.len(),
                        None => b.len(),
                    };
                } else {
                    i = end;
                }
            }
            c if op(c) => {
                let start = i;
                while i < b.len() && op(b[i]) {
                    i += 1;
                }
                let run = &b[start..i];
                if run.windows(2).skip(1).any(|w| w == b"/*" || w == b"--") {
                    return Some("an operator with a comment start inside it");
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// The identifier-like words of a string's content.
fn words(s: &str) -> impl Iterator<Item = &str> {
    // `$` splits too: a nested dollar quote's tag may stand right after a name.
    s.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty())
}

fn kind_rule(rule: &str) -> Result<Vec<String>, BadRule> {
    let mut words: Vec<String> = rule.split_whitespace().map(str::to_ascii_uppercase).collect();
    // Synonyms PostgreSQL has and the parser folds: a USER is a ROLE, TRUNCATE TABLE is
    // TRUNCATE.
    if matches!(words.first().map(String::as_str), Some("CREATE" | "ALTER" | "DROP"))
        && words.get(1).is_some_and(|w| w == "USER")
    {
        words[1] = "ROLE".into();
    }
    if words.first().is_some_and(|w| w == "TRUNCATE") {
        words.truncate(1);
    }
    let known = words.first().is_some_and(|w| COMMANDS.contains(&w.as_str()));
    if !known || words.iter().any(|w| !w.chars().all(|c| c.is_ascii_alphabetic())) {
        return Err(BadRule(format!(
            "{rule:?} is not a statement kind: give a SQL command's keywords, e.g. DROP, TRUNCATE, \"ALTER TABLE\""
        )));
    }
    Ok(words)
}

fn table_rule(rule: &str) -> Result<String, BadRule> {
    let name = rule.rsplit('.').next().unwrap_or_default();
    if name.is_empty() || rule.chars().any(|c| c.is_whitespace() || c.is_control() || c == '"') {
        return Err(BadRule(format!(
            "{rule:?} is not a table name: give it unquoted, as TABLE or SCHEMA.TABLE"
        )));
    }
    Ok(name.to_lowercase())
}

/// Breaks at the first statement, nested ones included, whose kind a rule begins; notes a
/// routine (function, procedure, trigger, rule) being defined, whose body it cannot see.
struct Kinds<'a> {
    rules: &'a [Vec<String>],
    routine: bool,
}

impl Visitor for Kinds<'_> {
    type Break = Refusal;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<Refusal> {
        // Two spellings of the kind: the parser's (`CREATE INDEX` for `CREATE UNIQUE INDEX`,
        // `SELECT` for any query) and the statement's own leading words (`DROP TABLE`).
        let named = match statement {
            Statement::Query(_) => "SELECT".to_owned(),
            _ => kind(statement),
        };
        self.routine |= matches!(
            named.as_str(),
            "CREATE FUNCTION" | "CREATE PROCEDURE" | "CREATE TRIGGER" | "CREATE RULE"
        );
        let written = leading_words(statement).to_ascii_uppercase();
        // What else the statement does: a cursor and a COPY out read (as SELECT does).
        let also = match statement {
            Statement::Declare { .. } => Some("SELECT"),
            Statement::Copy { to: true, .. } => Some("SELECT"),
            _ => None,
        };
        for words in [Some(named.as_str()), Some(written.as_str()), also].into_iter().flatten() {
            self.check(words)?;
        }
        ControlFlow::Continue(())
    }

    /// `SELECT ... INTO` creates a table.
    fn pre_visit_select(&mut self, select: &sqlparser::ast::Select) -> ControlFlow<Refusal> {
        if select.into.is_some() {
            self.check("CREATE TABLE")?;
        }
        ControlFlow::Continue(())
    }
}

/// The most words of a statement a rule is compared with.
const RULE_WORDS: usize = 4;

/// The first [`RULE_WORDS`] words of the statement as written back by the parser, without
/// writing out the rest of it (a nested statement would otherwise be written out again for
/// every statement around it).
fn leading_words(statement: &Statement) -> String {
    use std::fmt::Write as _;
    /// Stops the formatting once a word past the last one compared has begun.
    struct Words(String);
    impl std::fmt::Write for Words {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.push_str(s);
            if self.0.split_whitespace().nth(RULE_WORDS).is_some() {
                return Err(std::fmt::Error);
            }
            Ok(())
        }
    }
    let mut words = Words(String::new());
    // The error is how `Words` stops the formatting once it has enough.
    let _ = write!(words, "{statement}");
    words.0
}

impl Kinds<'_> {
    /// Breaks when a rule begins `words` (a kind, or a statement's leading words).
    fn check(&self, words: &str) -> ControlFlow<Refusal> {
        let words: Vec<&str> = words.split_whitespace().take(RULE_WORDS).collect();
        for rule in self.rules {
            if rule.len() <= words.len() && rule.iter().zip(&words).all(|(r, w)| r == w) {
                return ControlFlow::Break(Refusal::new(format!(
                    "{} statements are denied by the grant",
                    rule.join(" ")
                )));
            }
        }
        ControlFlow::Continue(())
    }
}
