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
        if let Some(table) = self.named_table(sql)? {
            return Err(Refusal::new(format!("table {table} is denied by the grant")));
        }
        let statements = parse(sql, grant)?;
        if !self.kinds.is_empty()
            && let ControlFlow::Break(r) = statements.visit(&mut Kinds(&self.kinds))
        {
            return Err(r);
        }
        if self.read_only
            && let ControlFlow::Break(r) = statements.visit(&mut ReadOnly)
        {
            return Err(Refusal::new(format!("read-only grant: {}", r.reason)));
        }
        Ok(())
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

/// The identifier-like words of a string's content.
fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')).filter(|w| !w.is_empty())
}

fn kind_rule(rule: &str) -> Result<Vec<String>, BadRule> {
    let words: Vec<String> = rule.split_whitespace().map(str::to_ascii_uppercase).collect();
    let known = words.first().is_some_and(|w| COMMANDS.contains(&w.as_str()));
    if !known || words.iter().any(|w| !w.chars().all(|c| c.is_ascii_alphabetic())) {
        return Err(BadRule(format!(
            "{rule:?} is not a statement kind: give a SQL command's keywords, e.g. DROP, TRUNCATE, \"ALTER TABLE\""
        )));
    }
    Ok(words)
}

fn table_rule(rule: &str) -> Result<String, BadRule> {
    let name = rule.rsplit('.').next().unwrap_or_default().trim_matches('"');
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control() || c == '"') {
        return Err(BadRule(format!(
            "{rule:?} is not a table name: give it as TABLE or SCHEMA.TABLE"
        )));
    }
    Ok(name.to_lowercase())
}

/// Breaks at the first statement, nested ones included, whose kind a rule begins.
struct Kinds<'a>(&'a [Vec<String>]);

impl Visitor for Kinds<'_> {
    type Break = Refusal;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<Refusal> {
        // Two spellings of the kind: the parser's (`CREATE INDEX` for `CREATE UNIQUE INDEX`,
        // `SELECT` for any query) and the statement's own leading words (`DROP TABLE`).
        let named = match statement {
            Statement::Query(_) => "SELECT".to_owned(),
            _ => kind(statement),
        };
        let written = statement.to_string().to_ascii_uppercase();
        let written: Vec<&str> = written.split_whitespace().take(4).collect();
        let named: Vec<&str> = named.split_whitespace().collect();
        for rule in self.0 {
            let begins = |words: &[&str]| {
                rule.len() <= words.len() && rule.iter().zip(words).all(|(r, w)| r == w)
            };
            if begins(&named) || begins(&written) {
                return ControlFlow::Break(Refusal::new(format!(
                    "{} statements are denied by the grant",
                    rule.join(" ")
                )));
            }
        }
        ControlFlow::Continue(())
    }
}
