//! The read-only decision checked on tables of statements: what reads, what writes and why.

use sqlparser::ast::{Ident, ObjectName};

use super::{MAX_CHAIN_TOKENS, READ_ONLY_FUNCTIONS, StatementRules, check_function, read_only};

/// Statements a read-only grant lets through.
const ALLOWED: &[&str] = &[
    "",
    "  ;  ",
    "-- only a comment",
    "SELECT 1",
    "select * from t where a = 1 order by b limit 10 offset 2",
    "SELECT a, count(*) FROM t JOIN u USING (id) GROUP BY a HAVING count(*) > 1",
    "SELECT * FROM t LEFT JOIN u ON t.id = u.id WHERE u.id IS NULL",
    "SELECT * FROM (SELECT a FROM t) AS s WHERE a IN (SELECT b FROM u)",
    "SELECT EXISTS (SELECT 1 FROM t)",
    "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
    "SELECT 1 UNION SELECT 2 EXCEPT SELECT 3 INTERSECT SELECT 4",
    "VALUES (1, 'a'), (2, 'b')",
    "SELECT 1; SELECT 2",
    "select PG_CATALOG.lower('A')",
    "SELECT pg_catalog.\"lower\"('A')",
    "SELECT Upper(name), length(name) FROM t",
    "SELECT coalesce(a, 0), nullif(b, 1), greatest(a, b), least(a, b) FROM t",
    "SELECT now(), current_timestamp, current_date, localtimestamp, clock_timestamp()",
    "SELECT current_user, session_user, current_role, current_schema, current_catalog, user",
    "SELECT extract(year FROM now()), date_trunc('day', now()), now() - interval '1 day'",
    "SELECT substring('abc' FROM 2 FOR 1), trim(both ' ' FROM ' a '), position('b' IN 'abc')",
    "SELECT overlay('abc' PLACING 'x' FROM 2 FOR 1), ceil(1.5), floor(1.5)",
    "SELECT CAST(a AS text), a::int, 'pg_class'::regclass, 'x' COLLATE \"C\" FROM t",
    "SELECT CASE WHEN a > 0 THEN 'p' ELSE 'n' END FROM t",
    "SELECT ARRAY[1, 2], ARRAY(SELECT a FROM t), ROW(1, 2)",
    "SELECT row_number() OVER (PARTITION BY a ORDER BY b), lag(b) OVER w FROM t WINDOW w AS (ORDER BY b)",
    "SELECT count(*) FILTER (WHERE a > 1), percentile_cont(0.5) WITHIN GROUP (ORDER BY a) FROM t",
    "SELECT string_agg(name, ', ' ORDER BY name), array_agg(DISTINCT a) FROM t",
    "SELECT * FROM generate_series(1, 3) AS g(n)",
    "SELECT * FROM pg_catalog.generate_series(1, 3)",
    "SELECT * FROM unnest(ARRAY[1, 2]) WITH ORDINALITY",
    "SELECT * FROM t, LATERAL (SELECT * FROM u WHERE u.id = t.id) s",
    "SELECT * FROM jsonb_each('{\"a\": 1}'::jsonb)",
    "SELECT data->>'a', data #> '{a,b}', data @> '{}' FROM t",
    "SELECT jsonb_build_object('a', 1), json_agg(t) FROM t",
    "SELECT random(), pg_sleep(0), pg_backend_pid(), version()",
    "SELECT current_setting('search_path'), pg_size_pretty(pg_database_size(current_database()))",
    "SELECT has_table_privilege('t', 'SELECT')",
    "SELECT relname FROM pg_class WHERE relname OPERATOR(pg_catalog.~) '^t$'",
    "SELECT $1::int, $2",
    "SELECT * FROM t WHERE a = ANY(ARRAY[1, 2]) AND b <> ALL('{3}')",
    "SELECT a FROM t WHERE b ~* 'x' AND c !~ 'y' AND d LIKE 'z%' AND e ILIKE 'w'",
    "EXPLAIN SELECT * FROM t",
    "EXPLAIN ANALYZE SELECT * FROM t",
    "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM t",
    "SHOW search_path",
    "SHOW ALL",
    "SET search_path = public",
    "SET search_path TO public, pg_catalog",
    "SET LOCAL statement_timeout = '5s'",
    "SET SESSION work_mem TO '64MB'",
    "SET TIME ZONE 'UTC'",
    "SET NAMES 'UTF8'",
    "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    "SET TRANSACTION READ ONLY",
    "RESET search_path",
    "RESET statement_timeout",
    "BEGIN",
    "BEGIN READ ONLY",
    "START TRANSACTION",
    "COMMIT",
    "END",
    "ROLLBACK",
    "SAVEPOINT s1",
    "RELEASE SAVEPOINT s1",
    "ROLLBACK TO SAVEPOINT s1",
    "BEGIN; SELECT 1; COMMIT",
    "COPY t TO STDOUT",
    "COPY t (a, b) TO STDOUT WITH (FORMAT csv, HEADER)",
    "COPY (SELECT 1) TO STDOUT",
    "COPY (SELECT a, lower(b) FROM t) TO STDOUT",
    "LISTEN channel",
    "UNLISTEN *",
];

/// Statements a read-only grant refuses, with the reason it gives. A reason ending in `…` is
/// checked as a prefix (the parser's own message follows).
const REFUSED: &[(&str, &str)] = &[
    ("INSERT INTO t VALUES (1)", "INSERT writes"),
    ("UPDATE t SET a = 1", "UPDATE writes"),
    ("DELETE FROM t", "DELETE writes"),
    ("MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE", "MERGE writes"),
    ("TRUNCATE t", "TRUNCATE writes"),
    ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "DELETE writes"),
    (
        "WITH x AS (SELECT 1), y AS (INSERT INTO t SELECT * FROM x RETURNING a) SELECT * FROM y",
        "INSERT writes",
    ),
    ("WITH x AS (SELECT 1) UPDATE t SET a = 2", "UPDATE writes"),
    ("SELECT 1; DROP TABLE t", "DROP TABLE writes"),
    ("SELECT 1; INSERT INTO t VALUES (1); SELECT 2", "INSERT writes"),
    ("EXPLAIN ANALYZE DELETE FROM t", "DELETE writes"),
    ("EXPLAIN UPDATE t SET a = 1", "UPDATE writes"),
    ("EXPLAIN ANALYZE SELECT nextval('s')", "function nextval is not known to be read-only"),
    ("SELECT * INTO new FROM t", "SELECT INTO creates a table"),
    ("SELECT * INTO TEMP new FROM t", "SELECT INTO creates a table"),
    ("SELECT * FROM t FOR UPDATE", "SELECT ... FOR UPDATE locks rows"),
    ("SELECT * FROM t FOR SHARE", "SELECT ... FOR SHARE locks rows"),
    ("SELECT * FROM t FOR UPDATE OF t SKIP LOCKED", "SELECT ... FOR UPDATE locks rows"),
    ("SELECT * FROM (SELECT * FROM t FOR UPDATE) s", "SELECT ... FOR UPDATE locks rows"),
    ("SELECT nextval('s')", "function nextval is not known to be read-only"),
    ("SELECT setval('s', 1)", "function setval is not known to be read-only"),
    (
        "SELECT set_config('role', 'admin', false)",
        "function set_config is not known to be read-only",
    ),
    ("SELECT pg_advisory_lock(1)", "function pg_advisory_lock is not known to be read-only"),
    ("SELECT lo_import('/etc/passwd')", "function lo_import is not known to be read-only"),
    ("SELECT lo_export(1, '/tmp/x')", "function lo_export is not known to be read-only"),
    ("SELECT pg_read_file('/etc/passwd')", "function pg_read_file is not known to be read-only"),
    (
        "SELECT pg_terminate_backend(1)",
        "function pg_terminate_backend is not known to be read-only",
    ),
    ("SELECT pg_cancel_backend(1)", "function pg_cancel_backend is not known to be read-only"),
    (
        "SELECT * FROM dblink('host=x', 'DELETE FROM t') AS r(a int)",
        "function dblink is not known to be read-only",
    ),
    ("SELECT my_function()", "function my_function is not known to be read-only"),
    ("SELECT myschema.lower('a')", "function myschema.lower is not known to be read-only"),
    (
        "SELECT test.pg_catalog.lower('a')",
        "function test.pg_catalog.lower is not known to be read-only",
    ),
    // Quoted names are not folded: "LOWER" is not pg_catalog's lower, and "PG_CATALOG" is not
    // pg_catalog.
    ("SELECT \"LOWER\"('a')", "function \"LOWER\" is not known to be read-only"),
    (
        "SELECT \"PG_CATALOG\".lower('a')",
        "function \"PG_CATALOG\".lower is not known to be read-only",
    ),
    // Functions are checked wherever they sit.
    ("SELECT * FROM t WHERE a = nextval('s')", "function nextval is not known to be read-only"),
    ("SELECT * FROM nextval('s')", "function nextval is not known to be read-only"),
    ("SELECT * FROM t, LATERAL f(t.a) AS x", "function f is not known to be read-only"),
    ("SELECT * FROM t ORDER BY nextval('s')", "function nextval is not known to be read-only"),
    (
        "SELECT count(*) FILTER (WHERE nextval('s') > 0) FROM t",
        "function nextval is not known to be read-only",
    ),
    ("SELECT lower(upper(nextval('s')::text))", "function nextval is not known to be read-only"),
    (
        "SELECT CASE WHEN true THEN pg_catalog.setval('s', 1) END",
        "function pg_catalog.setval is not known to be read-only",
    ),
    ("SELECT * FROM t WHERE EXISTS (SELECT f())", "function f is not known to be read-only"),
    ("WITH x AS (SELECT f()) SELECT * FROM x", "function f is not known to be read-only"),
    ("COPY (SELECT nextval('s')) TO STDOUT", "function nextval is not known to be read-only"),
    ("SELECT a ~~~ b FROM t", "operator ~~~ is not known to be read-only"),
    (
        "SELECT a OPERATOR(myschema.+) b FROM t",
        "operator OPERATOR(myschema.+) is not known to be read-only",
    ),
    // sqlparser 0.64 does not read the `TABLE t` shorthand: refused, though it only reads.
    ("TABLE t", "the statement cannot be parsed, so a read-only grant refuses it: …"),
    ("COPY t TO '/tmp/x'", "COPY TO a file writes on the server"),
    ("COPY t TO PROGRAM 'rm -rf /'", "COPY TO PROGRAM runs a program on the server"),
    ("COPY (SELECT 1) TO '/tmp/x'", "COPY TO a file writes on the server"),
    ("COPY t FROM STDIN", "COPY FROM writes"),
    ("COPY t FROM '/etc/passwd'", "COPY FROM writes"),
    ("COPY (DELETE FROM t RETURNING *) TO STDOUT", "DELETE writes"),
    ("SET ROLE admin", "SET ROLE changes the role"),
    (
        "SET default_transaction_read_only = off",
        "SET default_transaction_read_only would lift the server's read-only guard",
    ),
    (
        "set TRANSACTION_READ_ONLY to false",
        "SET TRANSACTION_READ_ONLY would lift the server's read-only guard",
    ),
    (
        "RESET default_transaction_read_only",
        "RESET default_transaction_read_only would lift the server's read-only guard",
    ),
    ("BEGIN READ WRITE", "a READ WRITE transaction is not read-only"),
    (
        "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE",
        "a READ WRITE transaction is not read-only",
    ),
    ("SET TRANSACTION READ WRITE", "a READ WRITE transaction is not read-only"),
    ("SET ROLE NONE", "SET ROLE changes the role"),
    ("SET LOCAL ROLE admin", "SET ROLE changes the role"),
    ("SET role = 'admin'", "SET role changes the role"),
    ("SET SESSION AUTHORIZATION admin", "SET SESSION AUTHORIZATION changes the role"),
    ("SET SESSION AUTHORIZATION DEFAULT", "SET SESSION AUTHORIZATION changes the role"),
    ("RESET ROLE", "RESET ROLE changes the role"),
    ("RESET SESSION AUTHORIZATION", "RESET SESSION AUTHORIZATION changes the role"),
    ("RESET ALL", "RESET ALL also resets the role"),
    ("CREATE TABLE t (a int)", "CREATE TABLE is not a read-only statement"),
    ("CREATE INDEX i ON t (a)", "CREATE INDEX is not a read-only statement"),
    ("CREATE VIEW v AS SELECT 1", "CREATE VIEW is not a read-only statement"),
    (
        "CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql",
        "CREATE FUNCTION is not a read-only statement",
    ),
    ("DROP TABLE t", "DROP TABLE writes"),
    ("DROP SCHEMA s CASCADE", "DROP SCHEMA writes"),
    ("ALTER TABLE t ADD COLUMN b int", "ALTER TABLE is not a read-only statement"),
    ("ALTER ROLE me SUPERUSER", "ALTER ROLE is not a read-only statement"),
    ("GRANT SELECT ON t TO bob", "GRANT is not a read-only statement"),
    ("REVOKE SELECT ON t FROM bob", "REVOKE is not a read-only statement"),
    ("CALL p()", "CALL is not a read-only statement"),
    ("PREPARE q AS SELECT 1", "PREPARE is not a read-only statement"),
    ("EXECUTE q", "EXECUTE is not a read-only statement"),
    ("DEALLOCATE q", "DEALLOCATE is not a read-only statement"),
    ("DECLARE c CURSOR FOR SELECT 1", "DECLARE is not a read-only statement"),
    ("NOTIFY channel, 'x'", "NOTIFY is not a read-only statement"),
    ("VACUUM t", "VACUUM is not a read-only statement"),
    ("ANALYZE t", "ANALYZE is not a read-only statement"),
    ("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", "LOCK is not a read-only statement"),
    ("DISCARD ALL", "DISCARD is not a read-only statement"),
    ("COMMENT ON TABLE t IS 'x'", "COMMENT is not a read-only statement"),
    ("REFRESH MATERIALIZED VIEW m", "REFRESH MATERIALIZED VIEW is not a read-only statement"),
    ("SELECT 1 FROM", "the statement cannot be parsed, so a read-only grant refuses it: …"),
    (
        "DO $$ BEGIN DELETE FROM t; END $$",
        "the statement cannot be parsed, so a read-only grant refuses it: …",
    ),
    ("CLUSTER t USING i", "the statement cannot be parsed, so a read-only grant refuses it: …"),
    ("REINDEX TABLE t", "the statement cannot be parsed, so a read-only grant refuses it: …"),
    (
        "SELECT 1; garbage here",
        "the statement cannot be parsed, so a read-only grant refuses it: …",
    ),
    // A line break in a quoted name is escaped: a reason stays one line.
    ("SELECT \"a\nb\"()", "function \"a\\nb\" is not known to be read-only"),
];

/// Checks one statement against its expected outcome: `None` to be allowed, or the reason.
fn check(full: &str, expected: Option<&str>) -> Result<(), String> {
    let shown: String = full.chars().take(120).collect();
    let sql = &shown;
    match (read_only(full), expected) {
        (Ok(()), None) => Ok(()),
        (Ok(()), Some(reason)) => Err(format!("{sql:?} was allowed, expected refused: {reason}")),
        (Err(refusal), None) => Err(format!("{sql:?} was refused: {refusal}")),
        (Err(refusal), Some(reason)) => {
            let matches = match reason.strip_suffix('…') {
                Some(prefix) => refusal.reason.starts_with(prefix),
                None => refusal.reason == reason,
            };
            if matches && !refusal.reason.contains('\n') {
                Ok(())
            } else {
                Err(format!("{sql:?}: refused with {:?}, expected {reason:?}", refusal.reason))
            }
        }
    }
}

#[test]
fn statements() {
    let failures: Vec<String> = ALLOWED
        .iter()
        .map(|sql| check(sql, None))
        .chain(REFUSED.iter().map(|(sql, reason)| check(sql, Some(reason))))
        .filter_map(Result::err)
        .collect();
    assert!(failures.is_empty(), "{} wrong:\n{}", failures.len(), failures.join("\n"));
}

/// Issue 12: psql's own describe commands must work under a read-only grant.
#[test]
fn psql_describe_queries_are_read_only() {
    let corpus = include_str!("psql-15-describe.sql");
    let queries: Vec<&str> = corpus.split("\n-- next\n").collect();
    assert!(queries.len() > 30, "the corpus lost its queries");
    let failures: Vec<String> = queries.iter().filter_map(|sql| check(sql, None).err()).collect();
    assert!(failures.is_empty(), "{} wrong:\n{}", failures.len(), failures.join("\n"));
    // And as the gateway decides them: with the lexing and pinned-setting checks first.
    let gate = rules(true, &["DROP"], &["payroll"]);
    let refused: Vec<String> = queries
        .iter()
        .filter_map(|sql| gate.check(sql).err().map(|r| format!("{sql:?}: {}", r.reason)))
        .collect();
    assert!(refused.is_empty(), "{} refused:\n{}", refused.len(), refused.join("\n"));
}

#[test]
fn allowlist_is_sorted_lowercase_and_unique() {
    for pair in READ_ONLY_FUNCTIONS.windows(2) {
        assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
    }
    for name in READ_ONLY_FUNCTIONS {
        assert_eq!(*name, name.to_ascii_lowercase());
        let allowed = |parts: &[&str]| {
            let name = ObjectName::from(parts.iter().map(|p| Ident::new(*p)).collect::<Vec<_>>());
            check_function(&name).is_continue()
        };
        assert!(allowed(&[name]), "{name}");
        assert!(allowed(&["pg_catalog", name]), "pg_catalog.{name}");
        assert!(!allowed(&["public", name]), "public.{name}");
    }
}

/// Deep nesting is refused, not a stack overflow: parentheses by the parser's depth limit,
/// chains of operators by [`MAX_CHAIN_TOKENS`]. The test thread's stack is 2 MiB, as a tokio
/// worker's is.
#[test]
fn deep_nesting_is_refused_without_overflow() {
    let deep = format!("SELECT {}1{}", "(".repeat(10_000), ")".repeat(10_000));
    check(&deep, Some("the statement cannot be parsed, so a read-only grant refuses it: …"))
        .unwrap();
    // SELECT and 9,999 plus signs: at the bound, parsed, walked and dropped.
    let at_bound = format!("SELECT 1{}", "+1".repeat(MAX_CHAIN_TOKENS - 1));
    check(&at_bound, None).unwrap();
    // `::` and `int` count one each: a level per two.
    let cast_chain = format!("SELECT 1{}", "::int".repeat((MAX_CHAIN_TOKENS - 1) / 2));
    check(&cast_chain, None).unwrap();
    let over = format!("SELECT 1{}", "+1".repeat(MAX_CHAIN_TOKENS));
    check(
        &over,
        Some("the statement has 10001 operators and keywords, over the 10000 a read-only grant parses"),
    )
    .unwrap();
    // Long lists of values are not chains and are not bounded.
    let list = format!("SELECT * FROM t WHERE a IN (1{})", ", $1, 'x'".repeat(50_000));
    check(&list, None).unwrap();
}

fn rules(read_only: bool, kinds: &[&str], tables: &[&str]) -> StatementRules {
    let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    StatementRules::new(read_only, &owned(kinds), &owned(tables)).unwrap()
}

fn refused(rules: &StatementRules, sql: &str) -> String {
    match rules.check(sql) {
        Ok(()) => panic!("{sql:?} was allowed"),
        Err(r) => r.reason,
    }
}

#[test]
fn deny_rules_by_kind_hold_for_nested_statements_and_every_spelling() {
    let r = rules(false, &["drop", "ALTER TABLE", "delete"], &[]);
    assert!(r.check("SELECT 1; INSERT INTO t VALUES (1); ALTER ROLE x RENAME TO y").is_ok());
    assert!(r.check("-- only a comment").is_ok());
    for sql in [
        "DROP TABLE t",
        "drop index i",
        "SELECT 1; DROP VIEW v",
        "ALTER TABLE t ADD COLUMN c int",
        "WITH gone AS (DELETE FROM t RETURNING *) SELECT * FROM gone",
        "DELETE FROM t WHERE id = $1",
    ] {
        let why = refused(&r, sql);
        assert!(why.ends_with("statements are denied by the grant"), "{sql}: {why}");
    }
    assert!(refused(&r, "DROP TABLE t").starts_with("DROP statements"));
    // Text that cannot be judged is refused, not let through.
    assert!(refused(&r, "DROPP TABLE t").contains("cannot be parsed"));
}

#[test]
fn deny_rules_by_table_see_every_mention() {
    let r = rules(false, &[], &["hr.Payroll"]);
    assert!(r.check("SELECT * FROM staff").is_ok());
    for sql in [
        "SELECT * FROM payroll",
        "select * from HR.PAYROLL p join staff s on s.id = p.id",
        "SELECT * FROM \"payroll\"",
        "UPDATE payroll SET pay = pay * 2",
        "TRUNCATE payroll",
        "COPY payroll TO STDOUT",
        "SELECT 'payroll'::regclass",
        "DO $$ BEGIN EXECUTE 'DELETE FROM payroll'; END $$",
        "WITH x AS (SELECT 1) SELECT * FROM x, (SELECT * FROM finance.payroll) y",
    ] {
        assert_eq!(refused(&r, sql), "table payroll is denied by the grant", "{sql}");
    }
    assert!(refused(&r, "SELECT * FROM U&\"p\\0061yroll\"").contains("Unicode escapes"));
}

#[test]
fn read_only_and_deny_rules_together_and_bad_rules() {
    let r = rules(true, &["select"], &[]);
    assert_eq!(refused(&r, "INSERT INTO t VALUES (1)"), "read-only grant: INSERT writes");
    assert_eq!(refused(&r, "SELECT 1"), "SELECT statements are denied by the grant");
    assert!(rules(false, &[], &[]).check("not sql at all").is_ok(), "no rules, no parsing");
    let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let bad = StatementRules::new(false, &owned(&["DELET"]), &[]).unwrap_err();
    assert!(bad.to_string().contains("not a statement kind"), "{bad}");
    let bad = StatementRules::new(false, &[], &owned(&["a b"])).unwrap_err();
    assert!(bad.to_string().contains("not a table name"), "{bad}");
    let (kinds, tables) =
        StatementRules::normalized(&owned(&["alter  table"]), &owned(&["HR.Payroll"])).unwrap();
    assert_eq!((kinds, tables), (vec!["ALTER TABLE".to_owned()], vec!["payroll".to_owned()]));
}

/// Text PostgreSQL's lexer and the parser's could split differently is refused under any
/// rule: what one reads as a string or comment the other may run (an attacker's review
/// found each of these passing before).
#[test]
fn text_the_two_lexers_could_read_differently_is_refused() {
    let deny = rules(false, &["DROP"], &["payroll"]);
    let read_only = rules(true, &[], &[]);
    for sql in [
        // PostgreSQL: a `$·$` dollar quote; the parser: a placeholder and a name.
        "SELECT $·$x, 1 /*$·$; DROP TABLE payroll; -- */",
        "SELECT $a·$x$a·$",
        // PostgreSQL ends an operator at `/*` or `--`; the parser reads one operator.
        "SELECT 1 -/* 2 --*/ 1; DROP TABLE payroll",
        "SELECT 1 +-- x\n; DROP TABLE payroll",
        // PostgreSQL 14 and older: `$1abc$` is a parameter then a name.
        "PREPARE p(text) AS SELECT $1abc$; DROP TABLE t; --$1abc$",
        "SELECT $1$x$1$",
    ] {
        for r in [&deny, &read_only] {
            let why = refused(r, sql);
            assert!(why.contains("could read differently"), "{sql}: {why}");
        }
    }
    // The settings the rules read under may not be named, in any statement.
    for sql in [
        "SET standard_conforming_strings = off",
        "SELECT set_config('standard_conforming_strings', 'off', false)",
        "ALTER ROLE me SET client_encoding = 'SJIS'",
        "SET CLIENT_ENCODING TO 'BIG5'",
    ] {
        assert!(refused(&deny, sql).contains("must stay as the gateway set it"), "{sql}");
    }
    assert!(refused(&deny, "SET NAMES 'SJIS'").contains("SET NAMES"));
    // What both read alike passes: strings, comments, parameters, operators, dollar quotes.
    for sql in [
        "SELECT $1::int + $2, 'a--b', E'it\\'s', \"we\"\"ird\" FROM t -- note",
        "SELECT /* a /* nested */ comment */ 1 --- dashes",
        "SELECT $$ $x· $$, $tag$ -/* $tag$, a$b FROM t WHERE x <> -1",
    ] {
        assert!(deny.check(sql).is_ok(), "{sql}: {:?}", deny.check(sql));
    }
}

#[test]
fn kind_rules_know_postgresql_synonyms_and_what_else_a_statement_does() {
    let r = rules(false, &["ALTER USER", "TRUNCATE TABLE", "CREATE TABLE", "SELECT"], &[]);
    assert!(refused(&r, "ALTER USER bob WITH PASSWORD 'x'").contains("ALTER ROLE"));
    assert!(refused(&r, "TRUNCATE payroll").starts_with("TRUNCATE statements"));
    assert!(refused(&r, "SELECT * INTO copy FROM t").contains("denied by the grant"));
    assert!(refused(&r, "DECLARE c CURSOR FOR SELECT * FROM t").starts_with("SELECT statements"));
    assert!(refused(&r, "COPY t TO STDOUT").starts_with("SELECT statements"));
    let ct = rules(false, &["CREATE TABLE"], &[]);
    assert!(refused(&ct, "SELECT 1 AS a INTO t2").starts_with("CREATE TABLE statements"));
}

#[test]
fn routine_bodies_and_nested_quotes_are_read_for_rules() {
    let r = rules(false, &["DROP"], &["payroll"]);
    let body = "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN DROP TABLE t; END$$";
    assert!(r.check(body).is_err(), "a routine whose body drops passed --deny DROP");
    // A function that does not drop is not refused for its body.
    let fine = "CREATE FUNCTION g() RETURNS int LANGUAGE sql AS $$SELECT 1$$";
    assert!(r.check(fine).is_ok(), "{:?}", r.check(fine));
    let nested = "SELECT $f$BEGIN EXECUTE $q$DELETE FROM payroll$q$; END$f$";
    assert_eq!(refused(&r, nested), "table payroll is denied by the grant");
    let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert!(StatementRules::new(false, &[], &owned(&["hr.\"pay.roll\""])).is_err());
}
