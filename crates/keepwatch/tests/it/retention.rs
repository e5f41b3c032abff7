//! Retention and legal holds with real sessions: a policy deletes what it no longer keeps,
//! holds (on a session, on a tag) keep what they cover until released, every change is
//! audited, and each deletion leaves a tombstone that `verify --all` accepts, unlike a
//! session deleted behind keepwatch's back.

use serde_json::Value;

use crate::support::*;

fn ids(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["session"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn retention_deletes_what_no_policy_keeps_and_holds_keep_the_rest() {
    retention_and_holds_on(TestEnv::new());
}

#[test]
fn retention_deletes_what_no_policy_keeps_and_holds_keep_the_rest_on_postgres() {
    retention_and_holds_on(TestEnv::new().postgres());
}

fn retention_and_holds_on(env: TestEnvBuilder) {
    let env = env.target("web01").target("web02").start();
    let mut by_target = Vec::new();
    for target in ["web01", "web01", "web02"] {
        let out = env.ssh(&format!("alice@{target}")).arg("echo kept-$((1+1))").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let n = by_target.len() + 1;
        let s = env.sealed_sessions(n);
        let new = s
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .find(|id| !by_target.iter().any(|(_, known): &(String, String)| known == id));
        by_target.push((target.to_owned(), new.unwrap()));
    }
    let (gone, held, web02) = (&by_target[0].1, &by_target[1].1, &by_target[2].1);

    // Nothing covers them yet: all kept.
    let dry = env.json(&["retention", "apply", "--dry-run", "--json"]);
    assert_eq!((dry["kept"].as_u64(), ids(&dry["deleted"]).len()), (Some(3), 0), "{dry}");

    let added = env.kw_ok(&["retention", "add", "--all", "--keep", "1s"]);
    assert!(added.contains("all sessions kept 1s after they end"), "{added}");
    let bad = env.kw(&["retention", "add", "--all", "--keep", "0d"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("keep between 1 second and 100 years"));
    env.kw_ok(&["hold", "add", "--session", held, "--reason", "case 2026-14"]);
    env.kw_ok(&["tag", web02, "Legal"]);
    env.kw_ok(&["hold", "add", "--tag", "legal", "--reason", "audit of web02"]);
    let holds = env.json(&["hold", "list", "--json"]);
    assert_eq!(holds.as_array().unwrap().len(), 2);
    assert_eq!(holds[1]["reason"], "audit of web02");
    assert!(holds[1]["placed_by"].as_str().unwrap().starts_with("local:"));

    // Once a second has passed since they ended: one to delete, two held; a dry run
    // deletes nothing.
    let dry = wait_for("the policy's second to pass", GATEWAY_TIMEOUT, || {
        let dry = env.json(&["retention", "apply", "--dry-run", "--json"]);
        (dry["kept"] == 0).then_some(dry)
    });
    assert_eq!(ids(&dry["deleted"]), [gone.as_str()], "{dry}");
    assert_eq!(ids(&dry["held"]), sorted(vec![held.clone(), web02.clone()]), "{dry}");
    assert_eq!(env.sessions().len(), 3);

    let applied = env.kw_ok(&["retention", "apply"]);
    assert!(applied.contains(&format!("deleted {gone}")), "{applied}");
    assert!(applied.contains("1 deleted, 2 held, 0 kept"), "{applied}");
    let left: Vec<String> =
        env.sessions().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    assert!(!left.contains(gone) && left.len() == 2, "{left:?}");
    assert!(!env.data().join("recordings").join(format!("{gone}.kwr")).exists());
    assert!(!env.kw_ok(&["search", "kept-2"]).contains(gone.as_str()));
    let tomb = env.json(&["audit", "--action", "session_deleted", "--json"]);
    assert_eq!(tomb[0]["session"], gone.as_str());
    assert!(
        tomb[0]["detail"].as_str().unwrap().contains("retention: policy 1 (all sessions, keep 1s)")
    );
    // The tombstone is in the signed audit chain: verify accepts the deletion.
    let verified = env.kw_ok(&["verify", "--all"]);
    assert!(verified.contains("1 session(s) deleted by retention"), "{verified}");

    // Released, the tag's hold no longer keeps web02's session (and its tags go with it).
    let hold_id = holds[1]["id"].to_string();
    env.kw_ok(&["hold", "release", &hold_id, "--reason", "audit closed"]);
    let applied = env.kw_ok(&["retention", "apply"]);
    assert!(applied.contains(&format!("deleted {web02}")), "{applied}");
    assert!(applied.contains(&format!("held {held}")), "{applied}");
    let all = env.json(&["hold", "list", "--all", "--json"]);
    assert_eq!(all[1]["release_reason"], "audit closed");
    assert!(env.json(&["hold", "list", "--json"]).as_array().unwrap().len() == 1);
    let actions: Vec<String> = env
        .json(&["audit", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    for a in ["retention_changed", "hold_placed", "hold_released", "session_deleted"] {
        assert!(actions.iter().any(|x| x == a), "{a} not audited: {actions:?}");
    }
    env.kw_ok(&["verify", "--all"]);

    // A session deleted behind keepwatch's back has no tombstone: verify says so.
    env.sql(&format!("DELETE FROM sessions WHERE id = '{held}'"));
    let out = env.kw(&["verify", "--all"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("session {held}: session deleted from the database")), "{said}");
}
