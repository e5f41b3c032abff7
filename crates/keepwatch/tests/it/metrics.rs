//! `GET /metrics`: Prometheus' text format, checked by Prometheus' own `promtool`, counting
//! what a real session and a refused login did; auditors and admins only.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::*;

/// The value of the sample named exactly `series` (name and labels) in `text`.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}

/// `promtool check metrics` on `text`: its exit status and what it said.
fn promtool(text: &str) -> (bool, String) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = child.unwrap_or_else(|e| {
        panic!("cannot run promtool ({e}): scripts/test.sh installs it (Debian's prometheus)")
    });
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

#[test]
fn metrics_count_sessions_bytes_and_refusals_and_pass_promtool() {
    let env = TestEnv::new().target("web01").start();
    let out = env.ssh("alice@web01").arg("seq 1 2000; echo metrics-$((6*7))").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("metrics-42"), "{shown}");
    // A person the gateway does not know: a refused login.
    let out = env.ssh("mallory@web01").arg("true").output().unwrap();
    assert!(!out.status.success());
    env.sealed_sessions(1);

    let get = |headers: &[(&str, &str)]| http(&env, "GET", "/metrics", headers, None);
    let (status, ..) = get(&[]);
    assert_eq!(status, 401, "no credential, no metrics");
    let user =
        env.kw_ok(&["token", "create", "--name", "u", "--role", "user", "--person", "alice"]);
    let (status, ..) = get(&[("Authorization", &format!("Bearer {}", user.trim()))]);
    assert_eq!(status, 403, "a user token does not see the counts");

    let token = env.kw_ok(&["token", "create", "--name", "prometheus", "--role", "auditor"]);
    let bearer = format!("Bearer {}", token.trim());
    let (status, head, _) = get(&[("Authorization", &bearer)]);
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    // The session's row is sealed a moment before its end is audited and counted.
    let closed = "keepwatch_sessions_ended_total{protocol=\"ssh\",status=\"closed\"}";
    let text = wait_for("the session's end counted", GATEWAY_TIMEOUT, || {
        let (_, _, text) = get(&[("Authorization", &bearer)]);
        (sample(&text, closed) == 1.0).then_some(text)
    });

    assert_eq!(sample(&text, "keepwatch_sessions_started_total{protocol=\"ssh\"}"), 1.0);
    assert_eq!(sample(&text, "keepwatch_sessions_active{protocol=\"ssh\"}"), 0.0);
    assert_eq!(sample(&text, "keepwatch_sessions_started_total{protocol=\"postgres\"}"), 0.0);
    // `seq 1 2000` alone prints 8893 bytes.
    let out_bytes = "keepwatch_relayed_bytes_total{protocol=\"ssh\",direction=\"to_client\"}";
    assert!(sample(&text, out_bytes) >= 8893.0, "{text}");
    assert!(sample(&text, "keepwatch_refusals_total{reason=\"login\"}") >= 1.0, "{text}");
    assert_eq!(sample(&text, "keepwatch_refusals_total{reason=\"session\"}"), 0.0);
    assert!(sample(&text, "keepwatch_recorded_bytes_total") > 0.0);
    assert!(sample(&text, "keepwatch_recording_flush_seconds_count") >= 1.0);
    assert!(sample(&text, "keepwatch_recording_lag_seconds_count") >= 1.0);
    assert!(sample(&text, "keepwatch_index_last_round_timestamp_seconds") > 1.7e9);

    let (ok, said) = promtool(&text);
    assert!(ok && said.trim().is_empty(), "promtool check metrics: {said}\n{text}");
    // promtool does find fault with a bad exposition (the check can fail).
    let (ok, said) = promtool("# TYPE keepwatch_bad counter\nkeepwatch_bad 1\n");
    assert!(!ok || !said.trim().is_empty(), "promtool passed a counter without _total");
}
