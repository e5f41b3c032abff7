//! The PostgreSQL front end with real clients: `psql` through the gateway to a PostgreSQL
//! server of the test's own that asks for a SCRAM password and presents a certificate.

use std::process::{Command, Output, Stdio};

use keepwatch_recording::{Event, Outcome};

use crate::support::*;

/// A gateway with person alice and target `pgprod` (granted) in front of `pg`, reached
/// with `tls` (`verify-full` checks the test CA), plus extra CLI setup before the start.
fn gateway(pg: &PgTarget, tls: &str, more: impl FnOnce(&TestEnv)) -> TestEnv {
    let mut env = TestEnv::new().build();
    add_target(&env, pg, "pgprod", tls, &[]);
    more(&env);
    env.start();
    env
}

/// `keepwatch target add NAME --protocol postgres` in front of `pg` (database `app`, reached
/// with `tls`, plus `extra` options), granted to alice.
fn add_target(env: &TestEnv, pg: &PgTarget, name: &str, tls: &str, extra: &[&str]) {
    let port = pg.port.to_string();
    let ca = pg.ca();
    let mut args = vec![
        "target",
        "add",
        name,
        "--protocol",
        "postgres",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--login",
        pg.login,
        "--password-stdin",
        "--database",
        "app",
        "--tls",
        tls,
    ];
    if tls == "verify-full" {
        args.extend(["--ca", ca.to_str().unwrap()]);
    }
    args.extend(extra);
    env.kw_stdin_ok(&args, pg.password);
    env.kw_ok(&["grant", "alice", name]);
}

/// `psql` through the gateway as `user` with `password`; extra arguments after.
fn psql(env: &TestEnv, user: &str, password: &str, sslmode: &str, args: &[&str]) -> Command {
    let mut c = Command::new("psql");
    c.arg(format!(
        "host=127.0.0.1 port={} user={user} dbname=app sslmode={sslmode} connect_timeout=10",
        env.pg_port()
    ))
    .args(["-X", "-A", "-t"])
    .args(args)
    .env("PGPASSWORD", password)
    .stdin(Stdio::null());
    c
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn sha256_hex(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Statements and their outcomes, in order: `text => outcome`.
fn statements(events: &[Event]) -> Vec<String> {
    let mut texts = std::collections::HashMap::new();
    let mut out = Vec::new();
    for e in events {
        match e {
            Event::Statement(s) => {
                texts.insert(s.seq, s.text.clone());
            }
            Event::StatementResult(r) => out.push(format!(
                "{} => {}",
                texts.get(&r.seq).cloned().unwrap_or_default(),
                r.outcome
            )),
            _ => {}
        }
    }
    out
}

/// DDL, DML, a rollback, a failing statement and COPY both ways, through TLS on both legs
/// (the target's certificate checked against its CA) with the target asking for SCRAM:
/// every statement is recorded with its outcome, the copies with their sizes and SHA-256,
/// the session verifies and is searchable.
#[test]
fn a_psql_session_is_recorded_statement_by_statement() {
    let pg = PgTarget::start();
    let env = gateway(&pg, "verify-full", |_| {});
    let dir = env.dir();
    std::fs::write(dir.join("in.csv"), "3,c\n4,d\n").unwrap();
    let script = format!(
        "CREATE TABLE items (id int PRIMARY KEY, name text);\n\
         INSERT INTO items VALUES (1, 'a'), (2, 'b');\n\
         BEGIN;\nUPDATE items SET name = 'z' WHERE id = 1;\nROLLBACK;\n\
         SELECT * FROM missing_table;\n\
         \\copy items FROM '{in_csv}' WITH (FORMAT csv)\n\
         \\copy items TO '{out_csv}' WITH (FORMAT csv)\n\
         SELECT count(*) FROM items WHERE name <> 'z';\n",
        in_csv = dir.join("in.csv").display(),
        out_csv = dir.join("out.csv").display(),
    );
    std::fs::write(dir.join("script.sql"), script).unwrap();
    let f = dir.join("script.sql");
    let out = psql(&env, "alice@pgprod", ALICE_PASSWORD, "require", &["-f", f.to_str().unwrap()])
        .output()
        .unwrap();
    let shown = text(&out);
    assert!(shown.contains("relation \"missing_table\" does not exist"), "{shown}");
    assert!(shown.lines().any(|l| l.trim() == "4"), "four rows at the end: {shown}");
    // Directly on the target: the rollback held, the copy landed.
    assert_eq!(
        pg.psql("app", "SELECT string_agg(name, ',' ORDER BY id) FROM items").trim(),
        "a,b,c,d"
    );

    let id = env.sealed_sessions(1)[0]["id"].as_str().unwrap().to_owned();
    let events = env.events(&id);
    let list = statements(&events);
    for expected in [
        "CREATE TABLE items (id int PRIMARY KEY, name text); => CREATE TABLE",
        "INSERT INTO items VALUES (1, 'a'), (2, 'b'); => INSERT 2",
        "BEGIN; => BEGIN",
        "UPDATE items SET name = 'z' WHERE id = 1; => UPDATE 1",
        "ROLLBACK; => ROLLBACK",
        "SELECT * FROM missing_table; => ERROR 42P01: relation \"missing_table\" does not exist",
        "SELECT count(*) FROM items WHERE name <> 'z'; => SELECT 1",
    ] {
        assert!(list.iter().any(|s| s == expected), "no {expected:?} in {list:#?}");
    }
    let copies: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::FileTransfer(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(copies.len(), 2, "{copies:?}");
    let (up, down) = (&copies[0], &copies[1]);
    assert!(up.upload && up.complete && up.bytes == 8, "{up:?}");
    assert_eq!(hex(&up.sha256.unwrap()), sha256_hex(&dir.join("in.csv")));
    assert!(!down.upload && down.complete, "{down:?}");
    assert_eq!(down.bytes, std::fs::metadata(dir.join("out.csv")).unwrap().len());
    assert_eq!(hex(&down.sha256.unwrap()), sha256_hex(&dir.join("out.csv")));
    assert!(
        events.iter().any(|e| matches!(e, Event::Transaction { status, .. } if *status == keepwatch_recording::TransactionStatus::InTransaction)),
        "the transaction status is recorded"
    );
    // The vaulted password never reached the person or the disk in clear.
    assert!(!shown.contains(pg.password));
    assert!(env.kw(&["verify", "--all"]).status.success());
    env.wait_indexed(&id);
    let hits = env.kw_ok(&["search", "missing_table"]);
    assert!(hits.contains(&id), "{hits}");
    let show = env.kw_ok(&["show", &id]);
    assert!(show.contains("sql") && show.contains("42P01"), "{show}");
    // Replay is a psql-like transcript; the JSON lines export has one statement per line.
    let replay = env.kw_ok(&["replay", &id, "--idle-limit", "0"]);
    assert!(replay.contains("=> SELECT * FROM missing_table;\r\nERROR 42P01"), "{replay}");
    let lines = env.kw_ok(&["export", &id, "--format", "jsonl"]);
    let rows: Vec<serde_json::Value> =
        lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let update = rows.iter().find(|r| r["text"] == "UPDATE items SET name = 'z' WHERE id = 1;");
    let update = update.unwrap_or_else(|| panic!("{lines}"));
    assert_eq!(update["tag"], "UPDATE 1");
    assert_eq!(update["rows"], 1);
    assert_eq!(update["transaction"], "in transaction");
    let failed = rows.iter().find(|r| r["outcome"] == "error").unwrap();
    assert_eq!(failed["sqlstate"], "42P01");
}

/// A wrong password, plaintext, an ungranted target and a target that refuses the vaulted
/// credential: each refused with a PostgreSQL error that says why, and audited.
#[test]
fn refusals_say_why() {
    let pg = PgTarget::start();
    let env = gateway(&pg, "require", |env| {
        let port = pg.port.to_string();
        let base = ["target", "add", "", "--protocol", "postgres", "--host", "127.0.0.1", "--port"];
        let mut other = base.to_vec();
        other[2] = "pgother";
        other.extend([&port, "--login", pg.login, "--password-stdin", "--database", "app"]);
        env.kw_stdin_ok(&other, pg.password);
        let mut bad = base.to_vec();
        bad[2] = "pgbadpw";
        bad.extend([&port, "--login", pg.login, "--password-stdin", "--database", "app"]);
        env.kw_stdin_ok(&bad, "not-the-password");
        env.kw_ok(&["grant", "alice", "pgbadpw"]);
    });
    let q = ["-c", "SELECT 1"];
    let out = psql(&env, "alice@pgprod", "wrong", "require", &q).output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("password authentication failed for user \"alice@pgprod\""),
        "{}",
        text(&out)
    );
    let out = psql(&env, "alice@pgprod", ALICE_PASSWORD, "disable", &q).output().unwrap();
    assert!(text(&out).contains("only over TLS"), "{}", text(&out));
    let out = psql(&env, "alice@pgother", ALICE_PASSWORD, "require", &q).output().unwrap();
    assert!(text(&out).contains("keepwatch: access to pgother denied"), "{}", text(&out));
    let out = psql(&env, "alice@pgbadpw", ALICE_PASSWORD, "require", &q).output().unwrap();
    let shown = text(&out);
    assert!(shown.contains("target pgbadpw refused the vaulted credential"), "{shown}");
    assert!(!shown.contains("not-the-password"));
    // Only the target that refused left a session, sealed `refused`.
    let sessions = env.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["status"], "refused");
    let refused = env.kw_ok(&["audit", "--action", "login_refused"]);
    assert!(refused.contains("wrong password"), "{refused}");
    let out = psql(&env, "alice@pgprod", ALICE_PASSWORD, "require", &q).output().unwrap();
    assert!(out.status.success(), "the right password still works: {}", text(&out));
}

/// A cancel (what psql sends on Ctrl-C) reaches the target through the gateway's own key;
/// `keepwatch kill` ends a session with the admin-shutdown error naming why.
#[test]
fn cancel_and_kill() {
    let pg = PgTarget::start();
    let env = gateway(&pg, "require", |_| {});
    let sleeping = |env: &TestEnv| {
        let child =
            psql(env, "alice@pgprod", ALICE_PASSWORD, "require", &["-c", "SELECT pg_sleep(60)"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
        let id = wait_for("a live session", GATEWAY_TIMEOUT_PG, || {
            env.sessions()
                .iter()
                .find(|s| s["status"] == "active")
                .map(|s| s["id"].as_str().unwrap().to_owned())
        });
        wait_for("the statement in the recording", GATEWAY_TIMEOUT_PG, || {
            env.recorded_events(&id)
                .iter()
                .any(|e| matches!(e, Event::Statement(s) if s.text.contains("pg_sleep")))
                .then_some(())
        });
        (child, id)
    };
    let (child, id) = sleeping(&env);
    assert!(
        Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success()
    );
    let out = child.wait_with_output().unwrap();
    assert!(text(&out).contains("canceling statement due to user request"), "{}", text(&out));
    let sealed = env.sealed_sessions(1);
    assert_eq!(sealed[0]["id"], id.as_str());
    let events = env.events(&id);
    assert!(
        events.iter().any(|e| matches!(e, Event::StatementResult(r) if matches!(&r.outcome, Outcome::Failed { sqlstate, .. } if sqlstate == "57014"))),
        "{:?}",
        statements(&events)
    );
    assert!(env.kw_ok(&["audit", "--action", "cancel_requested"]).contains(&id));

    let (child, id) = sleeping(&env);
    let out = env.kw(&["kill", &id, "--reason", "policy check"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = child.wait_with_output().unwrap();
    let shown = text(&out);
    assert!(shown.contains("terminating connection due to administrator command"), "{shown}");
    assert!(shown.contains("policy check"), "{shown}");
    let sessions = env.sealed_sessions(2);
    let killed = sessions.iter().find(|s| s["id"] == id.as_str()).unwrap();
    assert_eq!(killed["status"], "terminated");
    assert!(env.kw(&["verify", "--all"]).status.success());
}

const GATEWAY_TIMEOUT_PG: std::time::Duration = std::time::Duration::from_secs(60);

/// `pg_dump` through the gateway, then its dump restored through the gateway with `psql -f`
/// (COPY out, then COPY in from the script itself): the data comes back whole, both sessions
/// verify.
#[test]
fn pg_dump_and_restore_through_the_gateway() {
    let pg = PgTarget::start();
    pg.psql(
        "app",
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric); \
         INSERT INTO accounts SELECT g, 'owner ' || g, g * 1.5 FROM generate_series(1, 500) g",
    );
    let env = gateway(&pg, "verify-full", |_| {});
    let dump = env.dir().join("dump.sql");
    let conninfo = format!(
        "host=127.0.0.1 port={} user=alice@pgprod dbname=app sslmode=require",
        env.pg_port()
    );
    let out = Command::new("pg_dump")
        .arg(&conninfo)
        .arg("-f")
        .arg(&dump)
        .env("PGPASSWORD", ALICE_PASSWORD)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let before = pg.psql("app", "SELECT count(*), sum(balance) FROM accounts");
    pg.psql("app", "DROP TABLE accounts");
    let out = psql(
        &env,
        "alice@pgprod",
        ALICE_PASSWORD,
        "require",
        &["-v", "ON_ERROR_STOP=1", "-f", dump.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(pg.psql("app", "SELECT count(*), sum(balance) FROM accounts"), before);
    let sessions = env.sealed_sessions(2);
    for s in &sessions {
        let events = env.events(s["id"].as_str().unwrap());
        let copies =
            events.iter().filter(|e| matches!(e, Event::FileTransfer(t) if t.complete)).count();
        assert_eq!(copies, 1, "one whole COPY each way: {:?}", statements(&events));
    }
    assert!(env.kw(&["verify", "--all"]).status.success());
}

/// A client that connects and never finishes its login is cut off after the login grace.
#[test]
fn a_silent_postgres_client_is_cut_off() {
    let env = TestEnv::new().config("login_grace_s = 30", "login_grace_s = 1").start();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", env.pg_port())).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let n = std::io::Read::read(&mut s, &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed, nothing said");
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "{:?}", started.elapsed());
}

/// Drivers, unchanged, through the gateway: psycopg (PyPI; server-side binding with typed and
/// NULL parameters, executemany, a rollback) and JDBC (Debian's driver on the machine's Java;
/// after five executions it switches to a named server-side statement). Every statement is
/// recorded with its parameters.
#[test]
fn psycopg_and_jdbc_work_unchanged() {
    let pg = PgTarget::start();
    pg.psql("app", "CREATE TABLE notes (id int PRIMARY KEY, body text, score float8)");
    let env = gateway(&pg, "require", |_| {});
    let port = env.pg_port().to_string();
    let python = std::env::var("KEEPWATCH_TEST_PYTHON").unwrap_or_else(|_| {
        format!("{}/.cache/keepwatch/venv/bin/python", std::env::var("HOME").unwrap())
    });
    let script = r#"
import sys, psycopg
conn = psycopg.connect(host="127.0.0.1", port=int(sys.argv[1]), user="alice@pgprod",
                       dbname="app", password=sys.argv[2], sslmode="require")
with conn.cursor() as cur:
    cur.execute("INSERT INTO notes VALUES (%s, %s, %s)", (1, "from psycopg", None))
    cur.executemany("INSERT INTO notes VALUES (%s, %s, %s)", [(2, "two", 2.5), (3, "three", 3.5)])
conn.commit()
conn.autocommit = True
try:
    with conn.transaction():
        conn.execute("UPDATE notes SET body = 'gone' WHERE id = 1")
        raise RuntimeError("roll back")
except RuntimeError:
    pass
print(conn.execute("SELECT body FROM notes WHERE id = %s", (1,)).fetchone()[0])
"#;
    let out =
        Command::new(&python).args(["-c", script, &port, ALICE_PASSWORD]).output().unwrap_or_else(
            |e| panic!("{python}: {e}: run `bash scripts/test.sh` (it installs psycopg)"),
        );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "from psycopg");

    let java = env.dir().join("Notes.java");
    std::fs::write(
        &java,
        r#"
import java.sql.*;
public class Notes {
    public static void main(String[] a) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + a[0] + "/app?sslmode=require";
        try (Connection c = DriverManager.getConnection(url, "alice@pgprod", a[1])) {
            try (PreparedStatement p = c.prepareStatement("SELECT body FROM notes WHERE id = ?")) {
                for (int i = 0; i < 7; i++) {
                    p.setInt(1, 2 + i % 2);
                    try (ResultSet r = p.executeQuery()) { r.next(); System.out.println(r.getString(1)); }
                }
            }
        }
    }
}
"#,
    )
    .unwrap();
    let out = Command::new("java")
        .args(["-cp", "/usr/share/java/postgresql.jar"])
        .arg(&java)
        .args([&port, ALICE_PASSWORD])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().filter(|l| *l == "two").count(), 4);

    let sessions = env.sealed_sessions(2);
    let all: Vec<Event> =
        sessions.iter().flat_map(|s| env.events(s["id"].as_str().unwrap())).collect();
    let sent: Vec<&keepwatch_recording::Statement> = all
        .iter()
        .filter_map(|e| match e {
            Event::Statement(s) => Some(s),
            _ => None,
        })
        .collect();
    assert!(
        sent.iter().any(|s| s.text.starts_with("INSERT INTO notes VALUES ($1, $2, $3)")
            && s.params.len() == 3
            && s.params[1].as_deref() == Some("from psycopg")
            && s.params[2].is_none()),
        "{sent:#?}"
    );
    let jdbc: Vec<_> =
        sent.iter().filter(|s| s.text == "SELECT body FROM notes WHERE id = $1").collect();
    // JDBC's seven executions, and psycopg's one.
    assert_eq!(jdbc.len(), 8, "{sent:#?}");
    assert!(jdbc.iter().all(|s| s.extended && s.params.len() == 1));
    assert!(env.kw(&["verify", "--all"]).status.success());
}

/// A read-only grant: reads pass; a write is refused by the gateway with a PostgreSQL error
/// (SQLSTATE 42501) in the simple and the extended protocol alike, recorded as refused,
/// never reaching the target, and the connection goes on.
#[test]
fn a_read_only_grant_refuses_writes() {
    let pg = PgTarget::start();
    pg.psql(
        "app",
        "CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'a')",
    );
    let env = gateway(&pg, "require", |env| {
        env.kw_ok(&["grant", "alice", "pgprod", "--read-only"]);
    });
    let out = psql(
        &env,
        "alice@pgprod",
        ALICE_PASSWORD,
        "require",
        &[
            "-c",
            "SELECT name FROM items WHERE id = 1",
            "-c",
            "DELETE FROM items",
            "-c",
            "SELECT count(*) FROM items",
        ],
    )
    .output()
    .unwrap();
    let shown = text(&out);
    assert!(shown.contains("keepwatch: read-only grant:"), "{shown}");
    assert!(shown.lines().any(|l| l.trim() == "1"), "the count after the refusal: {shown}");
    let python = std::env::var("KEEPWATCH_TEST_PYTHON").unwrap_or_else(|_| {
        format!("{}/.cache/keepwatch/venv/bin/python", std::env::var("HOME").unwrap())
    });
    let script = r#"
import sys, psycopg
conn = psycopg.connect(host="127.0.0.1", port=int(sys.argv[1]), user="alice@pgprod",
                       dbname="app", password=sys.argv[2], sslmode="require", autocommit=True)
try:
    conn.execute("UPDATE items SET name = %s WHERE id = %s", ("z", 1))
    print("not refused")
except psycopg.Error as e:
    print("refused", e.sqlstate)
print(conn.execute("SELECT name FROM items WHERE id = %s", (1,)).fetchone()[0])
"#;
    let port = env.pg_port().to_string();
    let out =
        Command::new(&python).args(["-c", script, &port, ALICE_PASSWORD]).output().unwrap_or_else(
            |e| panic!("{python}: {e}: run `bash scripts/test.sh` (it installs psycopg)"),
        );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "refused 42501\na");
    assert_eq!(pg.psql("app", "SELECT string_agg(name, ',') FROM items").trim(), "a");
    let sessions = env.sealed_sessions(2);
    let all: Vec<Event> =
        sessions.iter().flat_map(|s| env.events(s["id"].as_str().unwrap())).collect();
    let list = statements(&all);
    assert!(
        list.iter()
            .any(|s| s.starts_with("DELETE FROM items => refused by keepwatch: read-only grant")),
        "{list:#?}"
    );
    assert!(
        list.iter().any(|s| s.starts_with("UPDATE items SET name = $1 WHERE id = $2 => refused")),
        "{list:#?}"
    );
    assert!(list.iter().any(|s| s == "SELECT count(*) FROM items => SELECT 1"), "{list:#?}");
    // Under the parser's check, the server's own guard: a write the text does not show
    // (a function, here the target's own) fails on the target.
    pg.psql(
        "app",
        "CREATE FUNCTION lower(int) RETURNS int LANGUAGE sql AS 'DELETE FROM items RETURNING 1'",
    );
    let out = psql(&env, "alice@pgprod", ALICE_PASSWORD, "require", &["-c", "SELECT lower(1)"])
        .output()
        .unwrap();
    assert!(text(&out).contains("read-only transaction"), "{}", text(&out));
    assert_eq!(pg.psql("app", "SELECT count(*) FROM items").trim(), "1");
    assert!(env.kw(&["verify", "--all"]).status.success());
}

/// Deny rules by statement kind and by table: a denied statement is answered by the gateway
/// (42501, naming the rule), recorded as refused and never reaches the target, nested or
/// disguised alike; the rest of the session goes on. Rows are kept for the record under
/// `--capture-rows`, the first N of each result, masked value by value.
#[test]
fn deny_rules_and_captured_rows() {
    let pg = PgTarget::start();
    pg.psql(
        "app",
        "CREATE TABLE items (id int PRIMARY KEY, name text); \
         INSERT INTO items SELECT g, 'item-' || g FROM generate_series(1, 5) g; \
         INSERT INTO items VALUES (6, 'password=hunter2-secret'); \
         CREATE TABLE payroll (who text, pay int); INSERT INTO payroll VALUES ('bob', 100)",
    );
    let env = gateway(&pg, "require", |env| {
        let bad = env.kw(&["grant", "alice", "pgprod", "--deny", "DELET"]);
        assert!(!bad.status.success());
        assert!(text(&bad).contains("not a statement kind"), "{}", text(&bad));
        env.kw_ok(&[
            "grant",
            "alice",
            "pgprod",
            "--deny",
            "drop,truncate",
            "--deny",
            "delete",
            "--deny-table",
            "public.payroll",
            "--capture-rows",
            "3",
        ]);
    });
    // What psql printed, without the gateway's notice at login.
    let run = |sql: &str| {
        let out = psql(&env, "alice@pgprod", ALICE_PASSWORD, "require", &["-At", "-c", sql])
            .output()
            .unwrap();
        let notice = "NOTICE:  keepwatch: this session is recorded and may be reviewed\n";
        text(&out).replace(notice, "")
    };
    assert!(run("DROP TABLE items").contains("keepwatch: DROP statements are denied by the grant"));
    let nested = run("WITH gone AS (DELETE FROM items RETURNING *) SELECT count(*) FROM gone");
    assert!(nested.contains("DELETE statements are denied"), "{nested}");
    for sql in
        ["SELECT * FROM payroll", "SELECT pay FROM \"payroll\"", "SELECT 'payroll'::regclass"]
    {
        let said = run(sql);
        assert!(said.contains("keepwatch: table payroll is denied by the grant"), "{sql}: {said}");
    }
    // Text PostgreSQL would lex differently from the gateway's parser is refused: here a
    // dollar quote the parser does not see hides a DROP in what it takes for a comment.
    let hidden = run("SELECT $·$x, 1 /*$·$; DROP TABLE payroll; -- */");
    assert!(hidden.contains("could read differently"), "{hidden}");
    // The client encoding the rules read under is pinned, whatever the client asks.
    let out = psql(&env, "alice@pgprod", ALICE_PASSWORD, "require", &["-At", "-c", "\\encoding"])
        .env("PGCLIENTENCODING", "SJIS")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "UTF8");
    // Allowed statements run, and writes that no rule names are not refused.
    assert_eq!(run("UPDATE items SET name = 'first' WHERE id = 1").trim(), "UPDATE 1");
    let rows = run("SELECT id, name FROM items ORDER BY id");
    assert_eq!(rows.lines().count(), 6, "{rows}");
    assert!(rows.contains("hunter2-secret"), "the person still sees every row: {rows}");
    let secret = run("SELECT name FROM items WHERE id = 6");
    assert!(secret.contains("hunter2-secret"), "{secret}");
    // Nothing denied reached the target.
    assert_eq!(pg.psql("app", "SELECT count(*) FROM items").trim(), "6");
    assert_eq!(pg.psql("app", "SELECT count(*) FROM payroll").trim(), "1");

    let sessions = env.sealed_sessions(10);
    let all: Vec<Event> =
        sessions.iter().flat_map(|s| env.events(s["id"].as_str().unwrap())).collect();
    let list = statements(&all);
    assert!(
        list.iter().any(|s| s
            == "DROP TABLE items => refused by keepwatch: DROP statements are denied by the grant"),
        "{list:#?}"
    );
    // Each refusal is audited as a refused statement, naming the rule, and counted.
    let audited = env.kw_ok(&["audit", "--action", "statement_refused"]);
    assert!(audited.contains("DROP statements are denied by the grant"), "{audited}");
    let token = env.kw_ok(&["token", "create", "--name", "prom", "--role", "auditor"]);
    let (_, _, metrics) = http(
        &env,
        "GET",
        "/metrics",
        &[("Authorization", &format!("Bearer {}", token.trim()))],
        None,
    );
    let refused = metrics
        .lines()
        .find_map(|l| l.strip_prefix("keepwatch_refusals_total{reason=\"statement\"} "))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(refused.parse::<u64>().unwrap() >= 3, "{metrics}");
    let kept: Vec<&keepwatch_recording::Rows> = all
        .iter()
        .filter_map(|e| match e {
            Event::Rows(r) => Some(r),
            _ => None,
        })
        .collect();
    let listing = kept
        .iter()
        .find(|r| r.left_out > 0)
        .unwrap_or_else(|| panic!("the 6-row result was captured: {kept:#?}"));
    assert_eq!(listing.columns, ["id", "name"]);
    assert_eq!(listing.rows.len(), 3);
    assert_eq!(listing.left_out, 3);
    assert_eq!(listing.rows[0], [Some("1".to_owned()), Some("first".to_owned())]);
    let masked = kept
        .iter()
        .find(|r| r.rows.len() == 1 && r.columns == ["name"])
        .unwrap_or_else(|| panic!("{kept:#?}"));
    let value = masked.rows[0][0].as_deref().unwrap_or_default();
    assert!(!value.contains("hunter2") && value.contains("[masked"), "{value}");
    // Captured rows are searchable as the statement's output, and in the jsonl export.
    let id = sessions
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .find(|id| env.events(id).iter().any(|e| matches!(e, Event::Rows(r) if r.left_out > 0)))
        .unwrap();
    env.wait_indexed(&id);
    let found = env.kw_ok(&["search", "item-3"]);
    assert!(found.contains(&id), "{found}");
    let jsonl = env.kw_ok(&["export", &id, "--format", "jsonl"]);
    assert!(jsonl.contains("\"result_rows_left_out\":3"), "{jsonl}");
    assert!(env.kw(&["verify", "--all"]).status.success());
}

/// A database target that requires a reason: without one psql is refused with a line that
/// says how to give one; given in `PGOPTIONS` it is kept with the session and signed in its
/// recording (and never passed to the target). The notice reaches psql as a NOTICE and is
/// recorded.
#[test]
fn a_reason_in_pgoptions_is_kept_and_the_notice_is_shown() {
    let pg = PgTarget::start();
    let env = gateway(&pg, "require", |env| {
        add_target(env, &pg, "pgwhy", "require", &["--require-reason"]);
    });
    let out =
        psql(&env, "alice@pgwhy", ALICE_PASSWORD, "require", &["-c", "SELECT 1"]).output().unwrap();
    assert!(!out.status.success());
    let shown = text(&out);
    assert!(shown.contains("target pgwhy requires a reason for each session"), "{shown}");
    assert!(shown.contains("PGOPTIONS='-c keepwatch.reason="), "{shown}");

    let out = psql(&env, "alice@pgwhy", ALICE_PASSWORD, "require", &["-c", "SELECT 40 + 2"])
        .env("PGOPTIONS", "-c keepwatch.reason=CHG-9\\ vacuum")
        .output()
        .unwrap();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.lines().any(|l| l.trim() == "42"), "{shown}");
    assert!(
        shown.contains("NOTICE:  keepwatch: this session is recorded and may be reviewed"),
        "{shown}"
    );
    let sessions = env.sealed_sessions(1);
    assert_eq!(sessions[0]["stated_reason"], "CHG-9 vacuum");
    let id = sessions[0]["id"].as_str().unwrap();
    let events = env.events(id);
    assert_eq!(events[1], Event::Context { reason: "CHG-9 vacuum".into() });
    assert!(events.iter().any(|e| matches!(e, Event::Notice { text, .. }
        if text == "shown to the person at connect: keepwatch: this session is recorded and may be reviewed")));
    env.kw_ok(&["verify", id]);
}
