//! The running gateway's API: `keepwatch watch` and `kill` from the CLI, browser logins with
//! roles, CSRF and lockout, and the audit trail of every look (hash-chained).

use serde_json::{Value, json};

use crate::support::*;

/// Logs in; returns the cookie header value and the CSRF token.
fn login(env: &TestEnv, name: &str, password: &str) -> (String, String) {
    let (status, head, body) = http(
        env,
        "POST",
        "/api/v1/login",
        &[],
        Some(&json!({ "name": name, "password": password })),
    );
    assert_eq!(status, 200, "{body}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: ")))
        .unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let v: Value = serde_json::from_str(&body).unwrap();
    (cookie.split(';').next().unwrap().to_owned(), v["csrf"].as_str().unwrap().to_owned())
}

#[test]
fn an_auditor_watches_and_kills_a_live_session_from_the_cli() {
    let env = TestEnv::new().target("web01").start();
    let mut s = env.at_prompt("alice@web01");
    s.send("echo before-$((2*21))\n");
    s.wait_output("before-42");
    let id = env.sessions()[0]["id"].as_str().unwrap().to_owned();

    // `watch` starts from the current screen, then streams what follows.
    let watch = env.watch(&id);
    watch.wait_output("before-42");
    s.send("echo live-$((3*3))\n");
    watch.wait_output("live-9");

    let out = env.kw(&["kill", &id, "--reason", "policy check"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, stdout, stderr) = s.finish();
    let shown = format!("{}{}", String::from_utf8_lossy(&stdout), stderr);
    assert!(shown.contains("keepwatch: session terminated by local:"), "{shown}");
    assert!(shown.contains(": policy check"), "{shown}");
    let (st, _, _) = watch.finish();
    assert!(st.success());

    let sealed = env.sealed_sessions(1);
    assert_eq!(sealed[0]["status"], "terminated");
    let audit = env.json(&["audit", "--session", &id, "--json"]);
    let actions: Vec<&str> =
        audit.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(
        actions.contains(&"session_watched") && actions.contains(&"session_terminated"),
        "{actions:?}"
    );
    let kill =
        audit.as_array().unwrap().iter().find(|e| e["action"] == "session_terminated").unwrap();
    assert!(kill["actor"].as_str().unwrap().starts_with("local:"), "{kill}");
    assert_eq!(kill["detail"], "policy check");

    // Killing it again says it is not live.
    let again = env.kw(&["kill", &id]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not live"));

    // The audit trail is chained: it verifies, and removing an event is reported.
    assert!(env.kw(&["verify", "--all"]).status.success());
    env.sql("DELETE FROM audit_events WHERE action = 'session_watched'");
    let out = env.kw(&["verify", "--all"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("audit: event") && text.contains("removed"), "{text}");
}

#[test]
fn web_logins_roles_csrf_and_lockout() {
    let env = TestEnv::new()
        .target("web01")
        .person("audrey", "auditor", "audit-pass-1")
        .person("bob", "user", "bob-pass-1")
        .start();
    let out = env.ssh("alice@web01").arg("echo alice-was-here").output().unwrap();
    assert!(out.status.success());
    let id = env.sealed_sessions(1)[0]["id"].as_str().unwrap().to_owned();

    // Not logged in: 401 and no data.
    let (status, _, body) = http(&env, "GET", "/api/v1/sessions", &[], None);
    assert_eq!(status, 401, "{body}");

    // An auditor sees everything; the page headers are strict.
    let (cookie, csrf) = login(&env, "audrey", "audit-pass-1");
    let (status, head, body) = http(&env, "GET", "/api/v1/sessions", &[("Cookie", &cookie)], None);
    assert_eq!(status, 200);
    assert!(body.contains(&id));
    assert!(
        head.to_ascii_lowercase().contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    let (status, _, body) =
        http(&env, "GET", &format!("/api/v1/sessions/{id}"), &[("Cookie", &cookie)], None);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["verify"]["intact"], true, "{v}");
    let (status, ..) = http(&env, "GET", "/api/v1/audit", &[("Cookie", &cookie)], None);
    assert_eq!(status, 200);
    // The index status: what the store says, nothing left unfinished once it is complete.
    let indexed = env.wait_indexed(&id);
    let path = format!("/api/v1/index?session={id}");
    let (status, _, body) = http(&env, "GET", &path, &[("Cookie", &cookie)], None);
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["session"], id.as_str());
    assert_eq!(v[0]["state"], "complete");
    assert_eq!(v[0]["bytes_indexed"], indexed.bytes_indexed);
    assert_eq!(v[0]["bytes_recorded"], json!(indexed.bytes_recorded));
    assert_eq!(v, env.json(&["index", "status", &id, "--json"]), "the API and the CLI agree");
    let (status, _, body) = http(&env, "GET", "/api/v1/index", &[("Cookie", &cookie)], None);
    assert_eq!((status, body.as_str()), (200, "[]"));
    // A state change without the CSRF header is refused, with it the API answers.
    let path = format!("/api/v1/sessions/{id}/terminate");
    let (status, _, body) =
        http(&env, "POST", &path, &[("Cookie", &cookie)], Some(&json!({ "reason": "x" })));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("X-CSRF-Token"));
    let (status, _, body) = http(
        &env,
        "POST",
        &path,
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        Some(&json!({ "reason": "x" })),
    );
    assert_eq!(status, 409, "a sealed session is not live: {body}");

    // A user sees only their own sessions: alice's is invisible to bob.
    let (bob, _) = login(&env, "bob", "bob-pass-1");
    let (status, _, body) = http(&env, "GET", "/api/v1/sessions", &[("Cookie", &bob)], None);
    assert_eq!((status, body.as_str()), (200, "[]"));
    let (status, _, body) =
        http(&env, "GET", &format!("/api/v1/sessions/{id}"), &[("Cookie", &bob)], None);
    assert_eq!(status, 404);
    assert!(!body.contains("alice"), "{body}");
    for path in ["/api/v1/live", "/api/v1/audit", "/api/v1/people", "/api/v1/index"] {
        let (status, ..) = http(&env, "GET", path, &[("Cookie", &bob)], None);
        assert_eq!(status, 403, "{path}");
    }
    let (status, _, body) =
        http(&env, "GET", "/api/v1/search?q=alice-was", &[("Cookie", &bob)], None);
    assert_eq!(status, 200);
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["hits"], serde_json::json!([]), "{body}");
    assert!(!body.contains("alice"), "not even as a session not fully indexed: {body}");

    // An API token works without a cookie; an unknown one does not.
    let token = env.kw_ok(&["token", "create", "--name", "siem", "--role", "auditor"]);
    let bearer = format!("Bearer {}", token.trim());
    let (status, ..) = http(&env, "GET", "/api/v1/audit", &[("Authorization", &bearer)], None);
    assert_eq!(status, 200);
    let (status, ..) =
        http(&env, "GET", "/api/v1/audit", &[("Authorization", "Bearer kw_nope")], None);
    assert_eq!(status, 401);

    // Five wrong passwords lock the name out, even with the right one after.
    for _ in 0..5 {
        let (status, ..) = http(
            &env,
            "POST",
            "/api/v1/login",
            &[],
            Some(&json!({ "name": "bob", "password": "wrong" })),
        );
        assert_eq!(status, 401);
    }
    let (status, head, _) = http(
        &env,
        "POST",
        "/api/v1/login",
        &[],
        Some(&json!({ "name": "bob", "password": "bob-pass-1" })),
    );
    assert_eq!(status, 429);
    assert!(head.to_ascii_lowercase().contains("retry-after"));

    // Every look is in the trail with the web actor and address.
    let audit = env.json(&["audit", "--actor", "audrey", "--json"]);
    let actions: Vec<&str> =
        audit.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(
        actions.contains(&"session_viewed") && actions.contains(&"login_succeeded"),
        "{actions:?}"
    );
    assert!(audit[0]["client_addr"].as_str().unwrap().starts_with("127.0.0.1:"));
}
