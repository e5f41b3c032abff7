//! Whether SQL text only reads (issue 12): the decision a read-only grant makes on each
//! statement before it reaches the target, by parsing it with a real SQL parser (`sqlparser`,
//! PostgreSQL dialect) and walking every nested statement, query, expression and function.
//!
//! The decision is an allowlist at every level: the statement kinds that read (queries,
//! EXPLAIN, SHOW, settings, transaction control, COPY to the client), the query clauses that
//! do not lock or create (no `FOR UPDATE`, no `SELECT INTO`, no data-modifying `WITH`), and
//! the functions known to be read-only ([`READ_ONLY_FUNCTIONS`]). Anything else, including
//! text the parser cannot read, is refused.

use std::fmt::{self, Write as _};
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, CopySource, CopyTarget, Expr, FunctionArguments, Ident, ObjectName,
    ObjectNamePart, Query, Reset, Select, Set, Statement, TableFactor, Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

/// Why SQL text was refused under a read-only grant: one line naming the statement kind,
/// clause or function.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    /// One line, e.g. `INSERT writes` or `function nextval is not known to be read-only`.
    pub reason: String,
}

impl Refusal {
    /// Control characters (a line break in a quoted name, or in the text the parser echoes)
    /// are escaped, so a reason is always one line.
    fn new(reason: impl Into<String>) -> Self {
        let reason: String = reason.into();
        let reason = if reason.contains(char::is_control) {
            reason
                .chars()
                .flat_map(|c| {
                    let escaped: Vec<char> =
                        if c.is_control() { c.escape_default().collect() } else { vec![c] };
                    escaped
                })
                .collect()
        } else {
            reason
        };
        Refusal { reason }
    }
}

/// Decides whether `sql` (one simple Query's text, possibly several statements, or one
/// prepared statement's text) only reads. Empty text (or only comments) reads nothing and is
/// allowed.
///
/// The decision is made on the text alone, without the target's catalog: a table or view is
/// taken to be read as it is, and a function is trusted by its name (see
/// [`READ_ONLY_FUNCTIONS`]).
///
/// # Errors
///
/// A [`Refusal`] for the first statement, clause or function that is not known to be
/// read-only, or for text the parser cannot read.
pub fn read_only(sql: &str) -> Result<(), Refusal> {
    match parse(sql, "a read-only grant")?.visit(&mut ReadOnly) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(refusal) => Err(refusal),
    }
}

/// The statements of `sql`, or why `grant` refuses text it cannot judge: too deep a chain of
/// operators (see [`MAX_CHAIN_TOKENS`]) or text the parser cannot read.
fn parse(sql: &str, grant: &str) -> Result<Vec<Statement>, Refusal> {
    let chain = chain_tokens(sql);
    if chain > MAX_CHAIN_TOKENS {
        return Err(Refusal::new(format!(
            "the statement has {chain} operators and keywords, over the {MAX_CHAIN_TOKENS} {grant} parses"
        )));
    }
    Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| {
        Refusal::new(format!("the statement cannot be parsed, so {grant} refuses it: {e}"))
    })
}

/// The most operators and keywords a text may hold, a bound on how deep its syntax tree goes.
///
/// The parser limits nesting by parentheses, but builds a chain like `1+1+1...` or
/// `x::t::t...` in a loop, one tree level per operator; walking and dropping such a tree
/// recurses once per level and would overflow the stack. 10,000 levels fit in a 2 MiB thread
/// stack (a test checks it), and no hand-written or psql query comes near.
const MAX_CHAIN_TOKENS: usize = 10_000;

/// Counts the tokens that can each add a level to a chain: keywords, operators and other
/// punctuation, not literals, placeholders, names, commas or parentheses. Text the tokenizer
/// cannot read counts 0: the parser refuses it with the tokenizer's error.
fn chain_tokens(sql: &str) -> usize {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return 0;
    };
    tokens
        .iter()
        .filter(|token| match token {
            Token::Word(word) => word.keyword != Keyword::NoKeyword,
            Token::Whitespace(_)
            | Token::Comma
            | Token::LParen
            | Token::RParen
            | Token::SemiColon
            | Token::EOF
            | Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::Placeholder(_) => false,
            _ => true,
        })
        .count()
}

/// The functions a read-only grant lets a statement call, by name: sorted, lowercase, matched
/// unqualified or qualified with `pg_catalog` only.
///
/// Each is a built-in that neither writes nor changes the session's identity or settings.
/// Names the parser reads as functions although PostgreSQL treats them as syntax
/// (`current_user`, `coalesce`, `array(...)`, `row(...)`) are here too.
pub const READ_ONLY_FUNCTIONS: &[&str] = &[
    "abs",
    "acldefault",
    "aclexplode",
    "acos",
    "age",
    "any_value",
    "array",
    "array_agg",
    "array_append",
    "array_cat",
    "array_dims",
    "array_length",
    "array_lower",
    "array_ndims",
    "array_position",
    "array_positions",
    "array_prepend",
    "array_remove",
    "array_replace",
    "array_to_json",
    "array_to_string",
    "array_upper",
    "ascii",
    "asin",
    "atan",
    "atan2",
    "avg",
    "bit_and",
    "bit_length",
    "bit_or",
    "bool_and",
    "bool_or",
    "btrim",
    "cardinality",
    "cbrt",
    "ceil",
    "ceiling",
    "char_length",
    "character_length",
    "chr",
    "clock_timestamp",
    "coalesce",
    "col_description",
    "concat",
    "concat_ws",
    "corr",
    "cos",
    "count",
    "covar_pop",
    "covar_samp",
    "cume_dist",
    "current_catalog",
    "current_database",
    "current_date",
    "current_role",
    "current_schema",
    "current_schemas",
    "current_setting",
    "current_time",
    "current_timestamp",
    "current_user",
    "date_bin",
    "date_part",
    "date_trunc",
    "decode",
    "degrees",
    "dense_rank",
    "div",
    "encode",
    "every",
    "exp",
    "extract",
    "first_value",
    "floor",
    "format",
    "format_type",
    "gcd",
    "gen_random_uuid",
    "generate_series",
    "generate_subscripts",
    "greatest",
    "has_column_privilege",
    "has_database_privilege",
    "has_function_privilege",
    "has_schema_privilege",
    "has_sequence_privilege",
    "has_table_privilege",
    "inet_client_addr",
    "inet_server_addr",
    "initcap",
    "isfinite",
    "json_agg",
    "json_array_elements",
    "json_array_elements_text",
    "json_array_length",
    "json_build_array",
    "json_build_object",
    "json_each",
    "json_each_text",
    "json_extract_path",
    "json_extract_path_text",
    "json_object",
    "json_object_agg",
    "json_object_keys",
    "json_typeof",
    "jsonb_agg",
    "jsonb_array_elements",
    "jsonb_array_elements_text",
    "jsonb_array_length",
    "jsonb_build_array",
    "jsonb_build_object",
    "jsonb_each",
    "jsonb_each_text",
    "jsonb_extract_path",
    "jsonb_extract_path_text",
    "jsonb_object",
    "jsonb_object_agg",
    "jsonb_object_keys",
    "jsonb_path_exists",
    "jsonb_path_query",
    "jsonb_path_query_array",
    "jsonb_path_query_first",
    "jsonb_pretty",
    "jsonb_set",
    "jsonb_strip_nulls",
    "jsonb_typeof",
    "justify_days",
    "justify_hours",
    "justify_interval",
    "lag",
    "last_value",
    "lcm",
    "lead",
    "least",
    "left",
    "length",
    "ln",
    "localtime",
    "localtimestamp",
    "log",
    "log10",
    "lower",
    "lpad",
    "ltrim",
    "make_date",
    "make_interval",
    "make_time",
    "make_timestamp",
    "make_timestamptz",
    "max",
    "md5",
    "min",
    "mod",
    "now",
    "nth_value",
    "ntile",
    "nullif",
    "num_nonnulls",
    "num_nulls",
    "obj_description",
    "octet_length",
    "overlay",
    "percent_rank",
    "percentile_cont",
    "percentile_disc",
    "pg_backend_pid",
    "pg_collation_is_visible",
    "pg_column_size",
    "pg_conversion_is_visible",
    "pg_database_size",
    "pg_encoding_to_char",
    "pg_function_is_visible",
    "pg_get_constraintdef",
    "pg_get_expr",
    "pg_get_function_arguments",
    "pg_get_function_identity_arguments",
    "pg_get_function_result",
    "pg_get_functiondef",
    "pg_get_indexdef",
    "pg_get_partkeydef",
    "pg_get_ruledef",
    "pg_get_serial_sequence",
    "pg_get_statisticsobjdef_columns",
    "pg_get_triggerdef",
    "pg_get_userbyid",
    "pg_get_viewdef",
    "pg_has_role",
    "pg_indexes_size",
    "pg_is_in_recovery",
    "pg_opclass_is_visible",
    "pg_operator_is_visible",
    "pg_opfamily_is_visible",
    "pg_postmaster_start_time",
    "pg_relation_is_publishable",
    "pg_relation_size",
    "pg_size_bytes",
    "pg_size_pretty",
    "pg_sleep",
    "pg_table_is_visible",
    "pg_table_size",
    "pg_tablespace_location",
    "pg_total_relation_size",
    "pg_ts_config_is_visible",
    "pg_ts_dict_is_visible",
    "pg_ts_parser_is_visible",
    "pg_ts_template_is_visible",
    "pg_type_is_visible",
    "pg_typeof",
    "pi",
    "position",
    "power",
    "quote_ident",
    "quote_literal",
    "quote_nullable",
    "radians",
    "random",
    "rank",
    "regexp_count",
    "regexp_instr",
    "regexp_like",
    "regexp_match",
    "regexp_matches",
    "regexp_replace",
    "regexp_split_to_array",
    "regexp_split_to_table",
    "regexp_substr",
    "repeat",
    "replace",
    "reverse",
    "right",
    "round",
    "row",
    "row_number",
    "row_to_json",
    "rpad",
    "rtrim",
    "session_user",
    "shobj_description",
    "sign",
    "sin",
    "split_part",
    "sqrt",
    "starts_with",
    "statement_timestamp",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "string_agg",
    "string_to_array",
    "strpos",
    "substr",
    "substring",
    "sum",
    "tan",
    "timeofday",
    "timezone",
    "to_char",
    "to_date",
    "to_hex",
    "to_json",
    "to_jsonb",
    "to_number",
    "to_timestamp",
    "transaction_timestamp",
    "translate",
    "trim",
    "trunc",
    "unnest",
    "upper",
    "user",
    "var_pop",
    "var_samp",
    "variance",
    "version",
    "width_bucket",
];

/// Walks every statement, query, select, FROM item and expression, and breaks with the first
/// thing that is not known to be read-only.
struct ReadOnly;

impl Visitor for ReadOnly {
    type Break = Refusal;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<Refusal> {
        // The nested statement of an EXPLAIN, a COPY's query, the queries in a WITH: the
        // visitor brings each here too, so a statement is judged by its own kind only.
        let refusal = match statement {
            Statement::Query(_)
            | Statement::Explain { .. }
            | Statement::ShowVariable { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
            // LISTEN and UNLISTEN only change what this session is told; NOTIFY tells others.
            | Statement::LISTEN { .. }
            | Statement::UNLISTEN { .. } => return ControlFlow::Continue(()),
            // The gateway opens read-only sessions read-only on the server too; a
            // transaction may not ask to write.
            Statement::StartTransaction { modes, .. } if !asks_to_write(modes) => {
                return ControlFlow::Continue(());
            }
            Statement::StartTransaction { .. } => {
                "a READ WRITE transaction is not read-only".to_owned()
            }
            Statement::Set(set) => match set_refusal(set) {
                None => return ControlFlow::Continue(()),
                Some(refusal) => refusal,
            },
            Statement::Reset(reset) => match &reset.reset {
                Reset::ConfigurationParameter(name) if is_guard_setting(name) => {
                    format!("RESET {name} would lift the server's read-only guard")
                }
                Reset::ConfigurationParameter(name) if !is_identity_setting(name) => {
                    return ControlFlow::Continue(());
                }
                Reset::ConfigurationParameter(name) => format!("RESET {name} changes the role"),
                Reset::SessionAuthorization => {
                    "RESET SESSION AUTHORIZATION changes the role".to_owned()
                }
                Reset::ALL => "RESET ALL also resets the role".to_owned(),
            },
            Statement::Copy { source, to, target, .. } => match (to, target, source) {
                (false, _, _) => "COPY FROM writes".to_owned(),
                (true, CopyTarget::Stdout, CopySource::Table { .. } | CopySource::Query(_)) => {
                    return ControlFlow::Continue(());
                }
                (true, CopyTarget::File { .. }, _) => "COPY TO a file writes on the server".to_owned(),
                (true, CopyTarget::Program { .. }, _) => {
                    "COPY TO PROGRAM runs a program on the server".to_owned()
                }
                (true, CopyTarget::Stdin, _) => "COPY TO STDIN is not a read".to_owned(),
            },
            Statement::Insert(_)
            | Statement::Update(_)
            | Statement::Delete(_)
            | Statement::Merge(_)
            | Statement::Truncate(_) => format!("{} writes", kind(statement)),
            Statement::Drop { object_type, .. } => format!("DROP {object_type} writes"),
            _ => format!("{} is not a read-only statement", kind(statement)),
        };
        ControlFlow::Break(Refusal::new(refusal))
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Refusal> {
        if let Some(lock) = query.locks.first() {
            let mode = match lock.lock_type {
                sqlparser::ast::LockType::Share => "SHARE",
                sqlparser::ast::LockType::Update => "UPDATE",
            };
            return refuse(format!("SELECT ... FOR {mode} locks rows"));
        }
        // Clauses of other dialects PostgreSQL does not have: refused rather than judged.
        if query.for_clause.is_some() || !query.pipe_operators.is_empty() {
            return refuse("the query has a clause PostgreSQL does not have");
        }
        // A data-modifying statement in a WITH or as the body (`SetExpr::Insert` and its
        // kin) is a nested statement: `pre_visit_statement` refuses it.
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<Refusal> {
        if select.into.is_some() {
            return refuse("SELECT INTO creates a table");
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Refusal> {
        match factor {
            // `FROM f(...)`: the parser reads a function in FROM as a table with arguments.
            TableFactor::Table { name, args: Some(_), .. } | TableFactor::Function { name, .. } => {
                check_function(name)
            }
            TableFactor::Table { args: None, .. }
            | TableFactor::Derived { .. }
            | TableFactor::TableFunction { .. }
            | TableFactor::UNNEST { .. }
            | TableFactor::NestedJoin { .. } => ControlFlow::Continue(()),
            _ => refuse("the FROM clause has an item PostgreSQL does not have"),
        }
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Refusal> {
        match expr {
            Expr::Function(function) => {
                if !matches!(function.parameters, FunctionArguments::None) {
                    return refuse(format!(
                        "function {} has parameters PostgreSQL does not have",
                        function.name
                    ));
                }
                check_function(&function.name)
            }
            Expr::BinaryOp { op, .. }
            | Expr::AnyOp { compare_op: op, .. }
            | Expr::AllOp { compare_op: op, .. } => check_operator(op),
            _ => ControlFlow::Continue(()),
        }
    }
}

fn refuse(reason: impl Into<String>) -> ControlFlow<Refusal> {
    ControlFlow::Break(Refusal::new(reason))
}

/// The SET forms that change the session's identity are refused; the other settings only
/// change how this session's own statements run.
fn set_refusal(set: &Set) -> Option<String> {
    match set {
        Set::SetRole { .. } => Some("SET ROLE changes the role".to_owned()),
        Set::SetSessionAuthorization(_) => {
            Some("SET SESSION AUTHORIZATION changes the role".to_owned())
        }
        Set::SingleAssignment { variable, .. } => identity_refusal(variable),
        Set::ParenthesizedAssignments { variables, .. } => {
            variables.iter().find_map(identity_refusal)
        }
        Set::MultipleAssignments { assignments } => {
            assignments.iter().find_map(|a| identity_refusal(&a.name))
        }
        Set::SetTransaction { modes, .. } if asks_to_write(modes) => {
            Some("a READ WRITE transaction is not read-only".to_owned())
        }
        Set::SetTimeZone { .. }
        | Set::SetNames { .. }
        | Set::SetNamesDefault {}
        | Set::SetTransaction { .. } => None,
        Set::SetSessionParam(_) => {
            Some("SET of a session parameter PostgreSQL does not have".to_owned())
        }
    }
}

fn identity_refusal(variable: &ObjectName) -> Option<String> {
    if is_guard_setting(variable) {
        return Some(format!("SET {variable} would lift the server's read-only guard"));
    }
    is_identity_setting(variable).then(|| format!("SET {variable} changes the role"))
}

/// `default_transaction_read_only` and `transaction_read_only`: the server-side guard the
/// gateway sets for a read-only session, under the parser's check.
fn is_guard_setting(name: &ObjectName) -> bool {
    setting_is(name, &["default_transaction_read_only", "transaction_read_only"])
}

/// Whether transaction modes ask for READ WRITE.
fn asks_to_write(modes: &[sqlparser::ast::TransactionMode]) -> bool {
    use sqlparser::ast::{TransactionAccessMode, TransactionMode};
    modes.iter().any(|m| matches!(m, TransactionMode::AccessMode(TransactionAccessMode::ReadWrite)))
}

/// `role` and `session_authorization` set as plain parameters (`SET role = x`,
/// `RESET role`) change who the session is, as `SET ROLE` does.
fn is_identity_setting(name: &ObjectName) -> bool {
    setting_is(name, &["role", "session_authorization"])
}

/// Whether `name` is one plain identifier, as PostgreSQL resolves it, among `settings`.
fn setting_is(name: &ObjectName, settings: &[&str]) -> bool {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(ident)] => settings.contains(&folded(ident).as_str()),
        _ => false,
    }
}

/// The identifier as PostgreSQL resolves it: unquoted names fold to lowercase (ASCII only, as
/// the server does for UTF-8), quoted ones are taken as written.
fn folded(ident: &Ident) -> String {
    match ident.quote_style {
        None => ident.value.to_ascii_lowercase(),
        Some(_) => ident.value.clone(),
    }
}

/// A function is allowed when its name is in [`READ_ONLY_FUNCTIONS`], unqualified or in
/// `pg_catalog`. Any other schema may hold a function of the same name that writes.
fn check_function(name: &ObjectName) -> ControlFlow<Refusal> {
    let parts: Option<Vec<String>> = name
        .0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => Some(folded(ident)),
            ObjectNamePart::Function(_) => None,
        })
        .collect();
    let known = match parts.as_deref() {
        Some([function]) => READ_ONLY_FUNCTIONS.binary_search(&function.as_str()).is_ok(),
        Some([schema, function]) if schema == "pg_catalog" => {
            READ_ONLY_FUNCTIONS.binary_search(&function.as_str()).is_ok()
        }
        _ => false,
    };
    if known {
        ControlFlow::Continue(())
    } else {
        refuse(format!("function {name} is not known to be read-only"))
    }
}

/// The parser names PostgreSQL's built-in operators; an operator it does not know, or one
/// spelled `OPERATOR(schema.op)` outside `pg_catalog`, may be defined by a function that writes.
fn check_operator(op: &BinaryOperator) -> ControlFlow<Refusal> {
    match op {
        BinaryOperator::Custom(symbol) => {
            refuse(format!("operator {symbol} is not known to be read-only"))
        }
        BinaryOperator::PGCustomBinaryOperator(path) => match path.as_slice() {
            [schema, _] if schema.eq_ignore_ascii_case("pg_catalog") => ControlFlow::Continue(()),
            _ => refuse(format!("operator {op} is not known to be read-only")),
        },
        _ => ControlFlow::Continue(()),
    }
}

/// The statement's kind in words (`CREATE TABLE`, `VACUUM`), from the name of its variant in
/// the parser's syntax tree: the only place every kind is named.
fn kind(statement: &Statement) -> String {
    /// Keeps what `Debug` writes up to the end of the variant's name, then stops it.
    struct Name(String);
    impl fmt::Write for Name {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            match s.find(|c: char| !c.is_ascii_alphanumeric()) {
                Some(end) => {
                    self.0.push_str(&s[..end]);
                    Err(fmt::Error)
                }
                None => {
                    self.0.push_str(s);
                    Ok(())
                }
            }
        }
    }
    let mut name = Name(String::new());
    // The error is how `Name` stops the formatting once it has the name.
    let _ = write!(name, "{statement:?}");
    let mut words = String::new();
    let mut previous_lower = false;
    for c in name.0.chars() {
        if c.is_ascii_uppercase() && previous_lower {
            words.push(' ');
        }
        previous_lower = c.is_ascii_lowercase();
        words.push(c.to_ascii_uppercase());
    }
    words
}

mod rules;
pub use rules::{BadRule, PINNED_SETTINGS, StatementRules};

#[cfg(test)]
mod tests;
