//! Tags (issue 13) with the real binary: put on and taken off by `keepwatch tag`/`untag` and
//! by the API (auditors and admins; a user token gets 403, a bad tag 400 naming the rule),
//! audited with the tags in the detail, and filtering `sessions`, `search` and the API.

use serde_json::{Value, json};

use crate::support::*;

/// The session ids in a JSON list of sessions or a search's hits (`id` or `session`).
fn ids(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .get("hits")
        .unwrap_or(v)
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.get("id").or_else(|| s.get("session")).unwrap().as_str().unwrap().to_owned())
        .collect();
    out.dedup();
    out
}

#[test]
fn tags_are_audited_and_filter_sessions_and_search() {
    let env = TestEnv::new().target("web01").start();
    for word in ["tagged", "other"] {
        let out = env.ssh("alice@web01").arg(format!("echo {word}-$((6*7))")).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let sessions = env.sealed_sessions(2);
    let id = |i: usize| sessions[i]["id"].as_str().unwrap().to_owned();
    // Newest first: the first is `other`, the second `tagged`.
    let (other, tagged) = (id(0), id(1));
    env.wait_indexed(&other);
    env.wait_indexed(&tagged);

    // The CLI: lowercased, idempotent, what changed said.
    let said = env.kw_ok(&["tag", &tagged, "Incident-42", "night"]);
    assert!(said.contains(&format!("tagged session {tagged}: incident-42, night")), "{said}");
    let said = env.kw_ok(&["tag", &tagged, "incident-42"]);
    assert!(said.contains("unchanged"), "{said}");
    let out = env.kw(&["tag", &tagged, "no spaces"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a tag is 1 to 64 characters of a-z 0-9 . _ : / -"), "{err}");
    let unknown = "00000000-0000-4000-8000-000000000000";
    let out = env.kw(&["tag", unknown, "x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("session {unknown} not found")), "{err}");

    // The API: auditors and admins; users get 403, a bad tag 400, an unknown session 404.
    let user =
        env.kw_ok(&["token", "create", "--name", "u", "--role", "user", "--person", "alice"]);
    let user = format!("Bearer {}", user.trim());
    let auditor = env.kw_ok(&["token", "create", "--name", "t", "--role", "auditor"]);
    let auditor = format!("Bearer {}", auditor.trim());
    let post = |who: &str, session: &str, body: Value| {
        let path = format!("/api/v1/sessions/{session}/tags");
        http(&env, "POST", &path, &[("Authorization", who)], Some(&body))
    };
    let (status, _, body) = post(&user, &other, json!({"tags": ["x"]}));
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = post(&auditor, &other, json!({"tags": ["bad tag"]}));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("a tag is 1 to 64 characters"), "{body}");
    let (status, _, body) = post(&auditor, unknown, json!({"tags": ["x"]}));
    assert_eq!(status, 404, "{body}");
    let (status, _, body) = post(&auditor, &other, json!({"tags": ["Ticket:OPS-7"]}));
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["added"], json!(["ticket:ops-7"]));
    assert_eq!(answer["tags"], json!(["ticket:ops-7"]));

    // Listings carry the tags and filter by them, on the CLI and the API.
    let listed = env.json(&["sessions", "--tag", "incident-42", "--json"]);
    assert_eq!(ids(&listed), [tagged.as_str()]);
    assert_eq!(listed[0]["tags"], json!(["incident-42", "night"]));
    let table = env.kw_ok(&["sessions"]);
    assert!(table.contains("TAGS") && table.contains("incident-42,night"), "{table}");
    assert!(env.kw_ok(&["show", &tagged]).contains("tags      incident-42, night"));
    assert_eq!(env.json(&["show", &other, "--json"])["tags"], json!(["ticket:ops-7"]));
    let get = |path: &str| {
        let (status, _, body) = http(&env, "GET", path, &[("Authorization", &auditor)], None);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str::<Value>(&body).unwrap()
    };
    let listed = get("/api/v1/sessions?tag=ticket:ops-7");
    assert_eq!(ids(&listed), [other.as_str()]);
    assert_eq!(listed[0]["tags"], json!(["ticket:ops-7"]));
    assert_eq!(get(&format!("/api/v1/sessions/{tagged}"))["tags"], json!(["incident-42", "night"]));

    // Search: both sessions hold `42`; the tag keeps one.
    assert_eq!(ids(&env.json(&["search", "42", "--json"])).len(), 2);
    assert_eq!(ids(&env.json(&["search", "42", "--tag", "night", "--json"])), [tagged.as_str()]);
    assert_eq!(ids(&get("/api/v1/search?q=42&tag=ticket:ops-7")), [other.as_str()]);
    let (status, _, body) = http(
        &env,
        "GET",
        "/api/v1/search?q=42&tag=bad%20tag",
        &[("Authorization", &auditor)],
        None,
    );
    assert_eq!(status, 400, "{body}");

    // Taking them off: the API (403 for a user), then the CLI.
    let delete =
        |who: &str, path: &str| http(&env, "DELETE", path, &[("Authorization", who)], None);
    let path = format!("/api/v1/sessions/{tagged}/tags/night");
    assert_eq!(delete(&user, &path).0, 403);
    let (status, _, body) = delete(&auditor, &path);
    assert_eq!(status, 200, "{body}");
    let said = env.kw_ok(&["untag", &tagged, "incident-42"]);
    assert!(
        said.contains(&format!("untagged session {tagged}: incident-42; tags: none")),
        "{said}"
    );
    assert!(ids(&env.json(&["sessions", "--tag", "incident-42", "--json"])).is_empty());

    // Every change is audited, with who, the session and the tags that changed.
    let events = |action: &str| -> Vec<String> {
        let v = env.json(&["audit", "--action", action, "--json"]);
        let mut out: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{} {} {}",
                    e["actor"].as_str().unwrap().split(':').next().unwrap(),
                    e["session"].as_str().unwrap_or("-"),
                    e["detail"].as_str().unwrap()
                )
            })
            .collect();
        out.reverse();
        out
    };
    assert_eq!(
        events("session_tagged"),
        [
            format!("local {tagged} tags incident-42, night"),
            format!("token {other} tags ticket:ops-7")
        ]
    );
    assert_eq!(
        events("session_untagged"),
        [format!("token {tagged} tags night"), format!("local {tagged} tags incident-42")]
    );
}
