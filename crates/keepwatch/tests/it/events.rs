//! The event feed (`[events]`, issue 13): audit events and session summaries reach a real
//! rsyslogd over TLS and UDP, a JSON-lines file across a restart (no event twice, none from
//! before the first start), and a webhook that fails first (retried, signed with HMAC).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::support::*;

/// `[events]` `file` and `syslog` set in keepwatch.toml.
fn events_config(builder: TestEnvBuilder, file: &str, syslog: &str) -> TestEnvBuilder {
    builder
        .config(
            "# JSON lines appended to a file (\"-\": stdout).\nfile = \"\"",
            &format!("file = \"{file}\""),
        )
        .config("\nsyslog = \"\"\n", &format!("\nsyslog = \"{syslog}\"\n"))
}

/// A syslog message split into its header fields, its structured data and its JSON.
struct Syslog {
    pri: u32,
    msgid: String,
    sd: String,
    json: Value,
}

fn parse(msg: &str) -> Syslog {
    let (head, rest) = msg.split_once("] {").unwrap_or_else(|| panic!("no SD and JSON: {msg}"));
    let json = serde_json::from_str(&format!("{{{rest}"))
        .unwrap_or_else(|e| panic!("the MSG is not JSON ({e}): {msg}"));
    let (header, sd) = head.split_once(" [").unwrap();
    let fields: Vec<&str> = header.split(' ').collect();
    assert_eq!(fields.len(), 6, "{header}");
    let pri = fields[0].strip_prefix('<').unwrap().strip_suffix(">1").unwrap().parse().unwrap();
    assert!(fields[1].ends_with('Z') && fields[1].contains('T'), "TIMESTAMP {}", fields[1]);
    assert_eq!(fields[3], "keepwatch");
    assert!(fields[4].parse::<u32>().is_ok(), "PROCID {}", fields[4]);
    Syslog { pri, msgid: fields[5].to_owned(), sd: format!("[{sd}]"), json }
}

/// One shell exec through the gateway; its session id once sealed (`earlier`: the ids of
/// the sessions before it).
fn one_session(env: &TestEnv, earlier: &[&str]) -> String {
    let out = env.ssh("alice@web01").arg("echo kw-events").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sessions = env.sealed_sessions(earlier.len() + 1);
    sessions
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .find(|id| !earlier.contains(&id.as_str()))
        .unwrap()
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn check_summary(summary: &Value, id: &str) {
    assert_eq!(summary["type"], "session_summary");
    assert_eq!(summary["session"], id);
    assert_eq!(summary["schema"], 1);
    let s = &summary["summary"];
    assert_eq!(s["person"], "alice");
    assert_eq!(s["target"], "web01");
    assert_eq!(s["protocol"], "ssh");
    assert_eq!(s["status"], "closed");
    assert_eq!(s["channels"], 1);
    assert!(s["duration_s"].as_f64().unwrap() >= 0.0, "{s}");
    assert!(s["started"].as_str().unwrap().ends_with('Z'));
    assert!(summary["client_addr"].as_str().unwrap().starts_with("127.0.0.1:"));
}

#[test]
fn events_reach_rsyslog_over_tls_and_a_jsonl_file_across_a_restart() {
    let rsyslog = Rsyslog::start();
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("events.jsonl");
    let builder = TestEnv::new().target("web01");
    let mut env = events_config(
        builder,
        &file.display().to_string(),
        &format!("tls://127.0.0.1:{}", rsyslog.tls_port),
    )
    .config("syslog_ca = \"\"", &format!("syslog_ca = \"{}\"", rsyslog.ca().display()))
    .start();

    let id = one_session(&env, &[]);
    let of = |kind: &'static str, id: String| {
        move |m: &str| m.contains(&format!(" {kind} ")) && m.contains(&format!("session=\"{id}\""))
    };
    let started = parse(&rsyslog.wait_message(
        Received::Tls,
        "session_started over TLS",
        of("session_started", id.clone()),
    ));
    let ended = parse(&rsyslog.wait_message(
        Received::Tls,
        "session_ended over TLS",
        of("session_ended", id.clone()),
    ));
    let summary = parse(&rsyslog.wait_message(
        Received::Tls,
        "session_summary over TLS",
        of("session_summary", id.clone()),
    ));
    // authpriv (10) * 8 + notice (5).
    assert_eq!((started.pri, started.msgid.as_str()), (85, "session_started"));
    assert_eq!(started.json["type"], "session_started");
    assert_eq!(started.json["actor"], "alice");
    assert_eq!(started.json["session"], id.as_str());
    assert!(started.json["node"].as_str().is_some_and(|n| !n.is_empty()));
    assert!(started.json["time"].as_str().unwrap().ends_with('Z'));
    let event_id = started.json["id"].as_i64().unwrap();
    assert!(
        started.sd.starts_with(&format!("[keepwatch@32473 id=\"{event_id}\" type=\"session_started\" session=\"{id}\" actor=\"alice\" node=")),
        "{}",
        started.sd
    );
    assert_eq!(ended.json["type"], "session_ended");
    assert!(ended.json["id"].as_i64().unwrap() > event_id);
    assert_eq!(summary.json["id"], ended.json["id"], "a summary carries its session_ended's id");
    check_summary(&summary.json, &id);

    // The file: the same events, one JSON object a line, nothing from before the first start.
    let seen =
        wait_for("the session's summary in the file", std::time::Duration::from_secs(60), || {
            let l = lines(&file);
            l.iter()
                .any(|e| e["type"] == "session_summary" && e["session"] == id.as_str())
                .then_some(l)
        });
    assert!(seen.iter().any(|e| e["type"] == "session_started" && e["id"] == event_id));
    assert!(
        !seen.iter().any(|e| e["type"] == "grant_added" || e["type"] == "user_added"),
        "{seen:?}"
    );

    // A restart resumes from the cursors: what the CLI audited while the gateway was down
    // and the next session's events come, none twice, and syslog, now over plain TCP, gets
    // only the new ones. The file's cursor was put past the newest event (as if the
    // database had been replaced): it starts from the newest instead of waiting.
    env.stop();
    env.kw_stdin_ok(&["user", "add", "bob", "--role", "user", "--password-stdin"], "bob-pw-1\n");
    let file_cursor = env.data().join("events/file.cursor");
    assert!(file_cursor.exists());
    std::fs::write(&file_cursor, "999999999\n").unwrap();
    let config = env.data().join("keepwatch.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let tls = format!("syslog = \"tls://127.0.0.1:{}\"", rsyslog.tls_port);
    let ca = format!("syslog_ca = \"{}\"", rsyslog.ca().display());
    assert!(text.contains(&tls) && text.contains(&ca));
    let text = text
        .replace(&tls, &format!("syslog = \"tcp://127.0.0.1:{}\"", rsyslog.tcp_port))
        .replace(&ca, "syslog_ca = \"\"");
    std::fs::write(&config, text).unwrap();
    env.start();
    let second = one_session(&env, &[&id]);
    assert_ne!(second, id);
    let all = wait_for(
        "the second session's summary in the file",
        std::time::Duration::from_secs(60),
        || {
            let l = lines(&file);
            l.iter()
                .any(|e| e["type"] == "session_summary" && e["session"] == second.as_str())
                .then_some(l)
        },
    );
    let mut keys = HashSet::new();
    for e in &all {
        let key = (e["id"].as_i64().unwrap(), e["type"].as_str().unwrap().to_owned());
        assert!(keys.insert(key.clone()), "{key:?} sent twice: {all:?}");
    }
    check_summary(
        all.iter()
            .find(|e| e["type"] == "session_summary" && e["session"] == second.as_str())
            .unwrap(),
        &second,
    );
    let summary = parse(&rsyslog.wait_message(
        Received::Tcp,
        "the second session's summary over TCP",
        of("session_summary", second.clone()),
    ));
    check_summary(&summary.json, &second);
    let over_tcp = rsyslog.messages(Received::Tcp);
    assert!(!over_tcp.iter().any(|m| m.contains(&id)), "{over_tcp:?}");
    assert!(
        over_tcp.iter().any(|m| m.contains(" user_added ") && m.contains("bob")),
        "the event written while the gateway was down: {over_tcp:?}"
    );
    assert!(!all.iter().any(|e| e["type"] == "user_added"), "the file restarted at the newest");
    assert!(rsyslog.messages(Received::Udp).is_empty());
}

#[test]
fn events_reach_rsyslog_over_udp() {
    events_reach_rsyslog_over_udp_on(TestEnv::new());
}

/// The feed tails a shared PostgreSQL trail the same way.
#[test]
fn events_reach_rsyslog_over_udp_on_postgres() {
    events_reach_rsyslog_over_udp_on(TestEnv::new().postgres());
}

fn events_reach_rsyslog_over_udp_on(builder: TestEnvBuilder) {
    let rsyslog = Rsyslog::start();
    let builder = builder.target("web01");
    let env = events_config(builder, "", &format!("udp://127.0.0.1:{}", rsyslog.udp_port))
        .config("syslog_facility = \"authpriv\"", "syslog_facility = \"local0\"")
        .start();
    let id = one_session(&env, &[]);
    for kind in ["session_started", "session_ended", "session_summary"] {
        let m = rsyslog.wait_message(Received::Udp, kind, |m| {
            m.contains(&format!(" {kind} ")) && m.contains(&format!("session=\"{id}\""))
        });
        let m = parse(&m);
        // local0 (16) * 8 + notice (5).
        assert_eq!(m.pri, 133, "{kind}");
        assert_eq!(m.json["type"], kind);
        if kind == "session_summary" {
            check_summary(&m.json, &id);
        }
    }
}

/// A receiver that goes away holds neither a session nor its events: the session runs, the
/// feed keeps its cursor (and notices the dead connection), and the events arrive once the
/// receiver is back.
#[test]
fn a_syslog_receiver_that_is_down_gets_the_events_when_it_is_back() {
    let mut rsyslog = Rsyslog::start();
    let builder = TestEnv::new().target("web01");
    let env = events_config(builder, "", &format!("tcp://127.0.0.1:{}", rsyslog.tcp_port)).start();
    let first = one_session(&env, &[]);
    rsyslog.wait_message(Received::Tcp, "the first session's summary", |m| {
        m.contains(" session_summary ") && m.contains(&first)
    });

    rsyslog.kill();
    let second = one_session(&env, &[&first]);
    rsyslog.restart();
    for kind in ["session_started", "session_ended", "session_summary"] {
        rsyslog.wait_message(Received::Tcp, &format!("{kind} after the receiver came back"), |m| {
            m.contains(&format!(" {kind} ")) && m.contains(&format!("session=\"{second}\""))
        });
    }
}

/// What the webhook receiver got: each request's headers (lowercased names; the path as
/// `:path`) and body.
type Requests = Arc<Mutex<Vec<(Vec<(String, String)>, String)>>>;

/// A tiny HTTP receiver (HTTPS with `tls`): answers 500 to its first request when
/// `fail_first`, and 200 to every other.
fn webhook_receiver(tls: Option<Arc<rustls::ServerConfig>>, fail_first: bool) -> (u16, Requests) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Requests = Arc::default();
    let seen = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            // A failed handshake or a broken request is the client's problem: next.
            let _ = match &tls {
                Some(config) => match rustls::ServerConnection::new(config.clone()) {
                    Ok(tls) => serve(rustls::StreamOwned::new(tls, conn), &seen, fail_first),
                    Err(_) => continue,
                },
                None => serve(conn, &seen, fail_first),
            };
        }
    });
    (port, got)
}

fn serve<S: Read + Write>(s: S, seen: &Requests, fail_first: bool) -> std::io::Result<()> {
    let bad = |what: &str| std::io::Error::other(what.to_owned());
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).ok_or_else(|| bad("no request line"))?;
    let mut headers = vec![(":path".to_owned(), path.to_owned())];
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').ok_or_else(|| bad("a header without a colon"))?;
        headers.push((k.trim().to_lowercase(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .ok_or_else(|| bad("no content-length"))?;
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let first = {
        let mut g = seen.lock().unwrap();
        g.push((headers, String::from_utf8_lossy(&body).into_owned()));
        g.len() == 1
    };
    let status = if first && fail_first { "500 Internal Server Error" } else { "200 OK" };
    let out = reader.get_mut();
    write!(out, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    out.flush()
}

/// The receiver's TLS settings: the certificate `ca` signed for 127.0.0.1.
fn server_tls(ca: &TestCa) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pem = std::fs::read(ca.cert()).unwrap();
    let certs = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(&std::fs::read(ca.key()).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    Arc::new(config)
}

/// A webhook over HTTPS is delivered when its `ca` signed the receiver's certificate, and
/// never when it did not (given up after its attempts, logged).
#[test]
fn webhooks_over_https_check_the_receivers_certificate() {
    let dirs = tempfile::tempdir().unwrap();
    let (good, other) = (dirs.path().join("good"), dirs.path().join("other"));
    std::fs::create_dir(&good).unwrap();
    std::fs::create_dir(&other).unwrap();
    let (good, other) = (TestCa::new(&good, "kw-hook-ca"), TestCa::new(&other, "kw-other-ca"));
    let (port, got) = webhook_receiver(Some(server_tls(&good)), false);
    let hook = |path: &str, ca: &TestCa| {
        format!(
            "[[events.webhook]]\nurl = \"https://127.0.0.1:{port}/{path}\"\nsecret = \"s-{path}\"\n\
             events = [\"session_started\"]\nmax_attempts = 2\nca = \"{}\"\n",
            ca.ca().display()
        )
    };
    let hooks = format!("{}{}", hook("trusted", &good), hook("untrusted", &other));
    let env = TestEnv::new()
        .target("web01")
        .config("# ca = \"\"\n", &format!("# ca = \"\"\n{hooks}"))
        .start();
    let id = one_session(&env, &[]);
    let requests = wait_for("the trusted delivery", std::time::Duration::from_secs(60), || {
        let g = got.lock().unwrap();
        (!g.is_empty()).then(|| g.clone())
    });
    let (headers, body) = &requests[0];
    assert!(headers.contains(&(":path".into(), "/trusted".into())), "{headers:?}");
    assert_eq!(serde_json::from_str::<Value>(body).unwrap()["session"], id.as_str());
    wait_for("the untrusted delivery given up", std::time::Duration::from_secs(60), || {
        env.log().contains("webhook delivery dropped after its last attempt").then_some(())
    });
    let g = got.lock().unwrap();
    assert_eq!(g.len(), 1, "only the trusted webhook got through: {g:?}");
}

#[test]
fn webhooks_carry_chosen_events_signed_and_retried() {
    let (port, got) = webhook_receiver(None, true);
    let hook = format!(
        "[[events.webhook]]\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret = \"kw-hook-secret\"\nevents = [\"session_started\", \"session_summary\"]\n"
    );
    let env = TestEnv::new()
        .target("web01")
        .config("# ca = \"\"\n", &format!("# ca = \"\"\n{hook}"))
        .start();
    let id = one_session(&env, &[]);
    let requests = wait_for("the summary delivered", std::time::Duration::from_secs(60), || {
        let g = got.lock().unwrap();
        g.iter().any(|(_, b)| b.contains("\"session_summary\"")).then(|| g.clone())
    });
    // The first delivery was refused (500) and retried: session_started came twice.
    let types: Vec<String> = requests
        .iter()
        .map(|(_, b)| {
            serde_json::from_str::<Value>(b).unwrap()["type"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        types,
        ["session_started", "session_started", "session_summary"],
        "session_ended is not chosen"
    );
    for (headers, body) in &requests {
        let header =
            |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap();
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"kw-hook-secret").unwrap();
        mac.update(body.as_bytes());
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(header("x-keepwatch-signature"), format!("sha256={hex}"));
        assert_eq!(header("content-type"), "application/json");
        let event: Value = serde_json::from_str(body).unwrap();
        assert_eq!(event["session"], id.as_str());
        assert_eq!(header("x-keepwatch-id"), event["id"].to_string());
    }
    check_summary(&serde_json::from_str(&requests[2].1).unwrap(), &id);
}
