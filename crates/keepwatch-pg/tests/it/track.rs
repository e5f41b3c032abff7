//! The tracker on scripted conversations: every event kind, pipelining, errors in the
//! extended protocol, COPY both ways, messages it cannot follow, and its bounds. Each script
//! is also fed one byte at a time and must give the same events.

use expect_test::{Expect, expect};
use keepwatch_pg::{Limits, PgEvent, Side};
use sha2::{Digest, Sha256};

use crate::script::{Script, render};

fn check_with(limits: Limits, script: Script, expected: Expect) {
    let (events, error) = script.run(limits);
    let (bytewise, bytewise_error) = script.run_chunked(limits, 1);
    assert_eq!(events, bytewise, "fed one byte at a time, the events differ");
    assert_eq!(error, bytewise_error, "fed one byte at a time, the error differs");
    let mut out = render(&events);
    if let Some(e) = error {
        out.push_str(&format!("error: {e}\n"));
    }
    expected.assert_eq(&out);
}

fn check(script: Script, expected: Expect) {
    check_with(Limits::default(), script, expected);
}

const STARTUP_EVENTS: &str = r#"startup 3.0 database="app" user="alice"
authentication Ok
parameter server_version="15.20"
backend key pid=4242 key=01020304
"#;

/// `script` after a trust login; only its own events are compared.
fn check_session(script: Script, expected: Expect) {
    let script = Script::new().startup().steps_from(script);
    let (events, error) = script.run(Limits::default());
    let (bytewise, bytewise_error) = script.run_chunked(Limits::default(), 1);
    assert_eq!(events, bytewise, "fed one byte at a time, the events differ");
    assert_eq!(error, bytewise_error, "fed one byte at a time, the error differs");
    let mut out = render(&events);
    out = out.strip_prefix(STARTUP_EVENTS).expect("the startup's events first").to_owned();
    if let Some(e) = error {
        out.push_str(&format!("error: {e}\n"));
    }
    expected.assert_eq(&out);
}

#[test]
fn startup_with_ssl_refused_and_scram() {
    let script = Script::new()
        .raw(Side::Frontend, &[0, 0, 0, 8, 4, 210, 22, 47])
        .raw(Side::Backend, b"N")
        .startup();
    check(
        script,
        expect![[r#"
            Ssl request refused
            startup 3.0 database="app" user="alice"
            authentication Ok
            parameter server_version="15.20"
            backend key pid=4242 key=01020304
        "#]],
    );
}

#[test]
fn gssenc_then_ssl_refused_as_libpq_tries_them() {
    let script = Script::new()
        .raw(Side::Frontend, &[0, 0, 0, 8, 4, 210, 22, 48])
        .raw(Side::Backend, b"N")
        .raw(Side::Frontend, &[0, 0, 0, 8, 4, 210, 22, 47])
        .raw(Side::Backend, b"N")
        .startup();
    let (events, error) = script.run(Limits::default());
    assert_eq!(error, None);
    let lines: Vec<String> = events.iter().take(3).map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "GssEnc request refused",
            "Ssl request refused",
            "startup 3.0 database=\"app\" user=\"alice\""
        ]
    );
}

#[test]
fn a_query_sent_before_startup_ends_is_answered_after_it() {
    let mut startup = pgwire::messages::startup::Startup::default();
    startup.protocol_number_minor = 0;
    startup.parameters.insert("user".into(), "alice".into());
    let script = Script::new()
        .fe(startup)
        .query("SELECT 1")
        .be(pgwire::messages::startup::Authentication::Ok)
        .ready('I')
        .data_rows(1)
        .complete("SELECT 1")
        .ready('I');
    check(
        script,
        expect![[r#"
            startup 3.0 user="alice"
            sent #0 Simple "SELECT 1"
            authentication Ok
            simple "SELECT 1" -> SELECT 1 (idle) @2..6
        "#]],
    );
}

#[test]
fn a_refused_login_is_a_startup_error() {
    let mut startup = pgwire::messages::startup::Startup::default();
    startup.protocol_number_minor = 0;
    startup.parameters.insert("user".into(), "mallory".into());
    let script = Script::new()
        .fe(startup)
        .be(pgwire::messages::startup::Authentication::SASL(vec!["SCRAM-SHA-256".into()]))
        .raw(Side::Frontend, b"p\0\0\0\x0dsecret!!\0")
        .error("28P01", "password authentication failed for user \"mallory\"");
    check(
        script,
        expect![[r#"
            startup 3.0 user="mallory"
            authentication Sasl { mechanisms: ["SCRAM-SHA-256"] }
            startup error ERROR 28P01: password authentication failed for user "mallory"
        "#]],
    );
}

#[test]
fn cancel_request() {
    let mut packet = vec![0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e];
    packet.extend_from_slice(&4242i32.to_be_bytes());
    packet.extend_from_slice(&[9, 8, 7, 6]);
    check(
        Script::new().raw(Side::Frontend, &packet),
        expect![[r#"
            cancel request pid=4242 key=09080706
        "#]],
    );
}

#[test]
fn simple_query_with_several_statements() {
    let script = Script::new()
        .startup()
        .wait(100)
        .query("CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2); SELECT * FROM t")
        .wait(10)
        .complete("CREATE TABLE")
        .complete("INSERT 0 2")
        .rows(2)
        .complete("SELECT 2")
        .ready('I');
    check(
        script,
        expect![[r#"
            startup 3.0 database="app" user="alice"
            authentication Ok
            parameter server_version="15.20"
            backend key pid=4242 key=01020304
            sent #0 Simple "CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2); SELECT * FROM t"
            simple "CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2); SELECT * FROM t" -> CREATE TABLE (idle) @106..117
            simple "CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2); SELECT * FROM t" -> INSERT 2 (idle) @117..118
            simple "CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2); SELECT * FROM t" -> SELECT 2 (idle) @118..122
        "#]],
    );
}

#[test]
fn failing_statement_in_a_transaction_then_rollback() {
    let script = Script::new()
        .query("BEGIN")
        .complete("BEGIN")
        .ready('T')
        .query("INSERT INTO t VALUES (1)")
        .error("23505", "duplicate key value violates unique constraint \"t_pkey\"")
        .ready('E')
        .query("UPDATE t SET a = 2")
        .error("25P02", "current transaction is aborted")
        .ready('E')
        .query("ROLLBACK")
        .complete("ROLLBACK")
        .ready('I')
        .query("")
        .empty_query()
        .ready('I');
    check_session(
        script,
        expect![[r#"
            sent #0 Simple "BEGIN"
            simple "BEGIN" -> BEGIN (in transaction) @6..7
            sent #1 Simple "INSERT INTO t VALUES (1)"
            simple "INSERT INTO t VALUES (1)" -> ERROR 23505: duplicate key value violates unique constraint "t_pkey" (failed transaction) @9..10
            sent #2 Simple "UPDATE t SET a = 2"
            simple "UPDATE t SET a = 2" -> ERROR 25P02: current transaction is aborted (failed transaction) @12..13
            sent #3 Simple "ROLLBACK"
            simple "ROLLBACK" -> ROLLBACK (idle) @15..16
            sent #4 Simple ""
            simple "" -> empty query (idle) @18..19
        "#]],
    );
}

#[test]
fn extended_protocol_pipelined_with_parameters() {
    let script = Script::new()
        .parse(Some("ins"), "INSERT INTO t VALUES ($1, $2, $3)")
        .bind(Some("ins"), vec![0, 1, 0], vec![Some(b"42"), Some(&[0, 0, 0, 7]), None])
        .execute(0)
        .bind(Some("ins"), vec![], vec![Some("é".as_bytes()), Some(b"x"), Some(b"")])
        .execute(0)
        .parse(None, "SELECT $1::int")
        .bind(None, vec![1], vec![Some(&[0, 0, 0, 1])])
        .execute(0)
        .sync()
        .parse_complete()
        .bind_complete()
        .complete("INSERT 0 1")
        .bind_complete()
        .complete("INSERT 0 1")
        .parse_complete()
        .bind_complete()
        .data_rows(1)
        .complete("SELECT 1")
        .ready('I');
    check_session(
        script,
        expect![[r#"
            sent #0 Extended "INSERT INTO t VALUES ($1, $2, $3)" params=[Text { text: "42", len: 2 }, Binary { hex: "00000007", len: 4 }, Null]
            sent #1 Extended "INSERT INTO t VALUES ($1, $2, $3)" params=[Text { text: "é", len: 2 }, Text { text: "x", len: 1 }, Text { text: "", len: 0 }]
            sent #2 Extended "SELECT $1::int" params=[Binary { hex: "00000001", len: 4 }]
            extended "INSERT INTO t VALUES ($1, $2, $3)" ["42", \x00000007, NULL] -> INSERT 1 (idle) @8..17
            extended "INSERT INTO t VALUES ($1, $2, $3)" ["é", "x", ""] -> INSERT 1 (idle) @10..19
            extended "SELECT $1::int" [\x00000001] -> SELECT 1 (idle) @13..23
        "#]],
    );
}

#[test]
fn an_error_skips_the_rest_of_the_pipeline_until_sync() {
    let script = Script::new()
        .parse(None, "SELECT 1")
        .bind(None, vec![], vec![])
        .execute(0)
        .parse(None, "SELECT 1/0")
        .bind(None, vec![], vec![])
        .execute(0)
        .parse(None, "SELECT 3")
        .bind(None, vec![], vec![])
        .execute(0)
        .sync()
        .query("SELECT 4")
        .parse_complete()
        .bind_complete()
        .data_rows(1)
        .complete("SELECT 1")
        .parse_complete()
        .bind_complete()
        .error("22012", "division by zero")
        .ready('I')
        .data_rows(1)
        .complete("SELECT 1")
        .ready('I');
    check_session(
        script,
        expect![[r#"
            sent #0 Extended "SELECT 1"
            sent #1 Extended "SELECT 1/0"
            sent #2 Extended "SELECT 3"
            sent #3 Simple "SELECT 4"
            extended "SELECT 1" -> SELECT 1 (idle) @8..20
            extended "SELECT 1/0" -> ERROR 22012: division by zero (idle) @11..23
            extended "SELECT 3" -> skipped (idle) @14..23
            simple "SELECT 4" -> SELECT 1 (idle) @16..26
        "#]],
    );
}

#[test]
fn a_parse_error_is_one_failed_statement() {
    let script = Script::new()
        .parse(None, "SELEC 1")
        .bind(None, vec![], vec![Some(b"1")])
        .describe_statement(None)
        .execute(0)
        .sync()
        .error("42601", "syntax error at or near \"SELEC\"")
        .ready('I')
        // Describe and Close of a named statement: answered, no statement events.
        .parse(Some("s"), "SELECT 2")
        .describe_statement(Some("s"))
        .sync()
        .parse_complete()
        .be(pgwire::messages::data::ParameterDescription::new(vec![]))
        .no_data()
        .ready('I')
        .close_statement("s")
        .sync()
        .close_complete()
        .ready('I');
    check_session(
        script,
        expect![[r#"
            sent #0 Extended "SELEC 1" params=[Text { text: "1", len: 1 }]
            extended "SELEC 1" ["1"] -> ERROR 42601: syntax error at or near "SELEC" (idle) @9..11
        "#]],
    );
}

#[test]
fn messages_after_an_error_and_before_sync_are_discarded() {
    let script = Script::new()
        .parse(None, "SELECT 1/0")
        .bind(None, vec![], vec![])
        .execute(0)
        .parse_complete()
        .bind_complete()
        .error("22012", "division by zero")
        // Sent after the error reached the client: the server discards these up to Sync.
        .parse(Some("never"), "SELECT 2")
        .bind(Some("never"), vec![], vec![])
        .execute(0)
        .sync()
        .ready('I')
        .bind(Some("never"), vec![], vec![])
        .execute(0)
        .sync()
        .error("26000", "prepared statement \"never\" does not exist")
        .ready('I');
    check_session(
        script,
        expect![[r#"
            sent #0 Extended "SELECT 1/0"
            sent #1 Extended "SELECT 2"
            extended "SELECT 1/0" -> ERROR 22012: division by zero (idle) @8..11
            extended "SELECT 2" -> skipped (idle) @14..14
            sent #2 Extended ""
            extended "" -> ERROR 26000: prepared statement "never" does not exist (idle) @18..20
        "#]],
    );
}

#[test]
fn portal_suspended_at_max_rows() {
    let script = Script::new()
        .parse(None, "SELECT * FROM generate_series(1, 3)")
        .bind(None, vec![], vec![])
        .execute(2)
        .sync()
        .parse_complete()
        .bind_complete()
        .data_rows(2)
        .suspended()
        .ready('T')
        .execute(2)
        .sync()
        .data_rows(1)
        .complete("SELECT 1")
        .ready('T');
    check_session(
        script,
        expect![[r#"
            sent #0 Extended "SELECT * FROM generate_series(1, 3)"
            extended "SELECT * FROM generate_series(1, 3)" -> suspended (in transaction) @8..14
            sent #1 Extended "SELECT * FROM generate_series(1, 3)"
            extended "SELECT * FROM generate_series(1, 3)" -> SELECT 1 (in transaction) @16..19
        "#]],
    );
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn copy_from_stdin_and_to_stdout() {
    let script = Script::new()
        .query("COPY t FROM STDIN")
        .copy_in()
        .copy_data(Side::Frontend, b"1\tone\n")
        .copy_data(Side::Frontend, b"2\ttwo\n")
        .copy_done(Side::Frontend)
        .complete("COPY 2")
        .ready('I')
        .query("COPY t TO STDOUT")
        .copy_out()
        .copy_data(Side::Backend, b"1\tone\n")
        .copy_data(Side::Backend, b"2\ttwo\n")
        .copy_done(Side::Backend)
        .complete("COPY 2")
        .ready('I');
    let (events, _) = Script::new().startup().steps_from(script.clone()).run(Limits::default());
    let expected_hash = sha256_hex(b"1\tone\n2\ttwo\n");
    let copies: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            PgEvent::Copy(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(copies.len(), 2);
    for c in copies {
        assert_eq!(c.bytes, 12);
        assert_eq!(c.rows, Some(2));
        assert_eq!(keepwatch_pg_hex(&c.sha256), expected_hash);
    }
    check_session(
        script,
        expect![[r#"
            sent #0 Simple "COPY t FROM STDIN"
            copy In 12 bytes sha256=2aea860edf2a80612508fe114c77f1c9ede1d14ef8167844a4aa78baad5f9d1f rows=2 @7..11
            simple "COPY t FROM STDIN" -> COPY 2 (idle) @6..11
            sent #1 Simple "COPY t TO STDOUT"
            copy Out 12 bytes sha256=2aea860edf2a80612508fe114c77f1c9ede1d14ef8167844a4aa78baad5f9d1f rows=2 @14..18
            simple "COPY t TO STDOUT" -> COPY 2 (idle) @13..18
        "#]],
    );
}

fn keepwatch_pg_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn copy_failed_by_the_client() {
    let script = Script::new()
        .query("COPY t FROM STDIN")
        .copy_in()
        .copy_data(Side::Frontend, b"1\n")
        .copy_fail("interrupted")
        .error("57014", "COPY from stdin failed: interrupted")
        .ready('I');
    check_session(
        script,
        expect![[r#"
            sent #0 Simple "COPY t FROM STDIN"
            copy In 2 bytes sha256=4355a46b19d348dc2f57c046f8ef63d4538ebb936000f3c9ee954a27460dd865 failed by client: "interrupted" @7..10
            simple "COPY t FROM STDIN" -> ERROR 57014: COPY from stdin failed: interrupted (idle) @6..10
        "#]],
    );
}

#[test]
fn extended_copy_ignores_the_sync_sent_before_the_data() {
    // libpq sends Sync right behind Execute; the server in copy mode ignores it, and libpq
    // sends another after CopyDone.
    let script = Script::new()
        .parse(None, "COPY t FROM STDIN")
        .bind(None, vec![], vec![])
        .execute(0)
        .sync()
        .parse_complete()
        .bind_complete()
        .copy_in()
        .copy_data(Side::Frontend, b"7\n")
        .copy_done(Side::Frontend)
        .sync()
        .complete("COPY 1")
        .ready('I');
    check_session(
        script,
        expect![[r#"
            sent #0 Extended "COPY t FROM STDIN"
            copy In 2 bytes sha256=10159baf262b43a92d95db59dae1f72c645127301661e0a3ce4e38b295a97c58 rows=1 @12..16
            extended "COPY t FROM STDIN" -> COPY 1 (idle) @8..16
        "#]],
    );
}

#[test]
fn notices_notifications_and_parameters() {
    let script = Script::new()
        .query("LISTEN jobs; DROP TABLE IF EXISTS nope")
        .complete("LISTEN")
        .notice("00000", "table \"nope\" does not exist, skipping")
        .complete("DROP TABLE")
        .ready('I')
        .notify(777, "jobs", "job 1 done")
        .be(pgwire::messages::startup::ParameterStatus::new("TimeZone".into(), "UTC".into()));
    check_session(
        script,
        expect![[r#"
            sent #0 Simple "LISTEN jobs; DROP TABLE IF EXISTS nope"
            notice NOTICE 00000: table "nope" does not exist, skipping
            simple "LISTEN jobs; DROP TABLE IF EXISTS nope" -> LISTEN (idle) @6..7
            simple "LISTEN jobs; DROP TABLE IF EXISTS nope" -> DROP TABLE (idle) @7..9
            notification pid=777 jobs: "job 1 done"
            parameter TimeZone="UTC"
        "#]],
    );
}

#[test]
fn what_cannot_be_followed_is_reported_with_its_bytes() {
    let script = Script::new()
        .startup()
        .raw(Side::Frontend, b"Y\0\0\0\x08abcd")
        .be(pgwire::messages::extendedquery::BindComplete::new())
        .raw(Side::Backend, b"~\0\0\0\x05z")
        .copy_data(Side::Frontend, b"stray")
        .raw(Side::Backend, b"E\0\0\0\x2dSFATAL\0C08P01\0Minvalid frontend message\0\0");
    check(
        script,
        expect![[r#"
            startup 3.0 database="app" user="alice"
            authentication Ok
            parameter server_version="15.20"
            backend key pid=4242 key=01020304
            unfollowed frontend 'Y' at 33: unknown message type (4 bytes: 61626364)
            unfollowed backend '2' at 54: BindComplete with no Bind pending (0 bytes: )
            unfollowed backend '~' at 59: unknown message type (1 bytes: 7a)
            unfollowed frontend 'd' at 42: copy data outside a copy (5 bytes: 7374726179)
            unsolicited error FATAL 08P01: invalid frontend message
        "#]],
    );
}

#[test]
fn the_connection_ending_reports_what_was_unanswered() {
    let script = Script::new()
        .query("SELECT pg_sleep(100)")
        .parse(None, "SELECT 2")
        .bind(None, vec![], vec![])
        .execute(0)
        .raw(Side::Frontend, b"S\0\0");
    check_session(
        script,
        expect![[r#"
            sent #0 Simple "SELECT pg_sleep(100)"
            sent #1 Extended "SELECT 2"
            unfollowed frontend partial at 99: connection ended inside a message (3 bytes: 530000)
            simple "SELECT pg_sleep(100)" -> unanswered (no status) @6..11
            extended "SELECT 2" -> unanswered (no status) @9..11
        "#]],
    );
}

#[test]
fn oversize_and_undersize_lengths_are_refused() {
    let mut huge = b"Q".to_vec();
    huge.extend_from_slice(&(16u32 << 20).saturating_add(5).to_be_bytes());
    check(
        Script::new().startup().raw(Side::Frontend, &huge),
        expect![[r#"
            startup 3.0 database="app" user="alice"
            authentication Ok
            parameter server_version="15.20"
            backend key pid=4242 key=01020304
            error: frontend Query at offset 33 declares 16777221 bytes, over the limit of 16777216
        "#]],
    );
    check(
        Script::new().raw(Side::Backend, b"C\0\0\0\x02"),
        expect![[r#"
            error: backend CommandComplete at offset 0 declares length 2, less than its header
        "#]],
    );
    check(
        Script::new().raw(Side::Frontend, &[0, 0, 0x30, 0, 0, 3, 0, 0]),
        expect![[r#"
            error: frontend startup packet at offset 0 declares 12288 bytes, over the limit of 10000
        "#]],
    );
    let limits = Limits { max_message_len: 100, ..Limits::default() };
    check_with(
        limits,
        Script::new().startup().query(&"x".repeat(200)),
        expect![[r#"
            startup 3.0 database="app" user="alice"
            authentication Ok
            parameter server_version="15.20"
            backend key pid=4242 key=01020304
            error: frontend Query at offset 33 declares 205 bytes, over the limit of 100
        "#]],
    );
}

#[test]
fn malformed_bodies_name_the_message_and_the_byte() {
    // A Bind whose one parameter claims 100 bytes and has 2.
    let mut bind = b"B\0\0\0\x14\0\0\0\0\0\x01\0\0\0\x64ab".to_vec();
    bind[4] = (bind.len() - 1) as u8;
    check(
        Script::new().startup().raw(Side::Frontend, &bind),
        expect![[r#"
            startup 3.0 database="app" user="alice"
            authentication Ok
            parameter server_version="15.20"
            backend key pid=4242 key=01020304
            error: frontend Bind at offset 33: parameter value runs past the end at byte 10 of its body
        "#]],
    );
    check(
        Script::new().raw(Side::Backend, b"Z\0\0\0\x05X"),
        expect![[r#"
            error: backend ReadyForQuery at offset 0: transaction status not I, T or E at byte 0 of its body
        "#]],
    );
    check(
        Script::new().raw(Side::Frontend, &[0, 0, 0, 8, 0, 2, 0, 0]),
        expect![[r#"
            error: frontend startup packet at offset 0 asks for protocol 2.0, not 3.x
        "#]],
    );
}

#[test]
fn bounds_on_pending_steps_prepared_statements_and_held_text() {
    let limits = Limits { max_pending: 3, ..Limits::default() };
    let script = Script::new().startup().sync().sync().sync().sync();
    let (_, error) = script.run(limits);
    assert_eq!(error.unwrap().to_string(), "more than 3 protocol steps sent without an answer");

    let limits = Limits { max_prepared: 2, ..Limits::default() };
    let mut script = Script::new().startup();
    for name in ["a", "b", "c"] {
        script = script.parse(Some(name), "SELECT 1").sync().parse_complete().ready('I');
    }
    let (_, error) = script.run(limits);
    assert_eq!(error.unwrap().to_string(), "more than 2 prepared statements");

    let limits = Limits { max_held_bytes: 10_000, ..Limits::default() };
    let script = Script::new().startup().query(&"x".repeat(5_000)).query(&"y".repeat(5_000));
    let (_, error) = script.run(limits);
    assert_eq!(
        error.unwrap().to_string(),
        "statement texts and parameters held for the session exceed 10000 bytes"
    );

    // Texts and parameters are cut, with their full lengths kept.
    let limits = Limits { max_text_len: 8, max_parameter_len: 4, ..Limits::default() };
    let script = Script::new()
        .startup()
        .parse(None, "SELECT $1, $2 -- long")
        .bind(None, vec![0, 1], vec![Some(b"abcdef"), Some(&[1, 2, 3])])
        .execute(0)
        .sync()
        .parse_complete()
        .bind_complete()
        .complete("SELECT 1")
        .ready('I');
    let (events, _) = script.run(limits);
    let last = events.last().unwrap().to_string();
    assert_eq!(
        last,
        r#"extended "SELECT $"…(21 bytes) ["abcd"…(6 bytes), \x0102…(3 bytes)] -> SELECT 1 (idle)"#
    );
}

#[test]
fn memory_held_goes_back_when_statements_are_answered() {
    let mut tracker = keepwatch_pg::PgTracker::new(Limits::default());
    let mut events = Vec::new();
    for (side, bytes, at) in &Script::new().startup().steps {
        match side {
            Side::Frontend => tracker.from_frontend(bytes, *at, &mut events).unwrap(),
            Side::Backend => tracker.from_backend(bytes, *at, &mut events).unwrap(),
        }
    }
    let script = Script::new().query(&"x".repeat(1000));
    tracker.from_frontend(&script.steps[0].1, 1, &mut events).unwrap();
    assert!(tracker.held_bytes() >= 1000);
    let answer = Script::new().complete("SELECT 0").ready('I');
    for (_, bytes, at) in &answer.steps {
        tracker.from_backend(bytes, *at, &mut events).unwrap();
    }
    assert_eq!(tracker.held_bytes(), 0);
    assert_eq!(tracker.buffered(), 0);
}

/// Under a grant that captures rows: the first N rows of each result, named by the result's
/// description, values as text (binary as hex, long ones cut with their length), NULL as
/// NULL, the rest counted; reported before the statement's outcome, on errors too.
#[test]
fn captured_rows_come_before_their_outcome() {
    let long = vec![b'x'; 300];
    let script = Script::new()
        .capturing(2)
        .query("SELECT id, name FROM t")
        .table(
            &["id", "name"],
            &[&[Some(b"1"), Some(b"a")], &[Some(b"2"), None], &[Some(b"3"), Some(b"c")]],
        )
        .complete("SELECT 3")
        .ready('I')
        .query("SELECT blob, long FROM t")
        .table(&["blob", "long"], &[&[Some(&[0u8, 1, 0xff]), Some(&long)]])
        .error("57014", "canceling statement due to user request")
        .ready('I')
        .query("SELECT 1 WHERE false")
        .table(&["?column?"], &[])
        .complete("SELECT 0")
        .ready('I');
    check_session(
        script,
        expect![[r#"
            sent #0 Simple "SELECT id, name FROM t"
            rows #0 columns=["id", "name"] rows=[[Some("1"), Some("a")], [Some("2"), None]] left_out=1
            simple "SELECT id, name FROM t" -> SELECT 3 (idle) @6..11
            sent #1 Simple "SELECT blob, long FROM t"
            rows #1 columns=["blob", "long"] rows=[[Some("\\x0001ff"), Some("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx… (300 bytes)")]]
            simple "SELECT blob, long FROM t" -> ERROR 57014: canceling statement due to user request (idle) @13..16
            sent #2 Simple "SELECT 1 WHERE false"
            simple "SELECT 1 WHERE false" -> SELECT 0 (idle) @18..20
        "#]],
    );
}
