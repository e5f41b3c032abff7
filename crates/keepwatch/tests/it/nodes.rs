//! Several gateway nodes on one PostgreSQL database and one bucket (issue 11): each session
//! belongs to the node that runs it, a node that starts leaves the others' live sessions
//! alone, and when a node dies a survivor seals its sessions from the bucket once its
//! heartbeat lapses, and they verify.

use std::time::{Duration, Instant};

use crate::support::{TestEnv, http, wait_for};

fn session<'a>(sessions: &'a [serde_json::Value], id: &str) -> &'a serde_json::Value {
    sessions.iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("no session {id}"))
}

/// Three nodes; A dies with its disk while B and C both beat: exactly one of them claims and
/// seals A's session, from the bucket, and it verifies.
#[test]
fn a_survivor_seals_a_dead_nodes_sessions_and_leaves_live_ones_alone() {
    let a = TestEnv::new()
        .postgres()
        .s3()
        .target("web01")
        .config("heartbeat_s = 5", "heartbeat_s = 1")
        .config("lapse_s = 30", "lapse_s = 4")
        .config("segment_interval_ms = 3000", "segment_interval_ms = 300")
        .start();
    let mut on_a = a.at_prompt("alice@web01");
    on_a.send("echo on-a-$((6*7))\n");
    on_a.wait_output("on-a-42");
    let id_a = a.sessions()[0]["id"].as_str().unwrap().to_owned();
    let node_a = a.sessions()[0]["node"].as_str().expect("a session names its node").to_owned();

    // Nodes B and C start (their recovery runs) while A's session is live: it is left alone.
    let name = |env: &TestEnv| {
        let line =
            env.log().lines().find_map(|l| l.strip_prefix("keepwatch: node ").map(str::to_owned));
        line.expect("a node names itself")
    };
    let mut b = a.peer();
    b.start();
    let mut c = a.peer();
    c.start();
    let (node_b, node_c) = (name(&b), name(&c));
    assert!(
        node_a != node_b && node_b != node_c && node_a != node_c,
        "one node per data directory"
    );
    on_a.send("echo still-on-a-$((2+3))\n");
    on_a.wait_output("still-on-a-5");
    assert_eq!(session(&b.sessions(), &id_a)["status"], "active");

    // Both nodes serve; each session is its node's.
    let mut on_b = b.at_prompt("alice@web01");
    on_b.send("echo on-b-$((7*7))\n");
    on_b.wait_output("on-b-49");
    let listed = b.sessions();
    let id_b = listed.iter().find(|s| s["id"] != id_a.as_str()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(session(&listed, &id_b)["node"], node_b.as_str());
    assert_eq!(session(&listed, &id_a)["node"], node_a.as_str());
    let nodes = c.json(&["nodes", "--json"]);
    assert_eq!(nodes.as_array().unwrap().len(), 3, "{nodes}");

    // A's last output reaches the bucket, then A dies with its disk.
    on_a.send("echo last-on-a-$((8*8))\n");
    on_a.wait_output("last-on-a-64");
    a.wait_recorded(&id_a, "last-on-a-64");
    let mut a = a;
    let spool = a.data().join("spool");
    let file = spool.join(format!("{id_a}.kwr"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let archive = a.archive();
    wait_for("A's spool to be uploaded whole", Duration::from_secs(30), || {
        let segments = rt.block_on(archive.segments(id_a.parse().unwrap())).ok()?;
        let uploaded: u64 = segments.iter().map(|s| s.size).sum();
        let written = std::fs::metadata(&file).ok()?.len();
        (written > 0 && uploaded == written).then_some(())
    });
    let died = Instant::now();
    a.kill9();
    std::fs::remove_dir_all(&spool).unwrap();

    // B or C seals A's session as interrupted within the lapse (and a heartbeat or two).
    let sealed = wait_for("a survivor to seal A's session", Duration::from_secs(30), || {
        let s = session(&b.sessions(), &id_a).clone();
        (s["status"] != "active").then_some(s)
    });
    let took = died.elapsed();
    assert_eq!(sealed["status"], "interrupted", "{sealed}");
    let survivor = sealed["node"].as_str().unwrap().to_owned();
    assert!(survivor == node_b || survivor == node_c, "a survivor took it over: {sealed}");
    let recovered =
        b.json(&["audit", "--session", &id_a, "--action", "session_recovered", "--json"]);
    assert_eq!(recovered.as_array().unwrap().len(), 1, "sealed once: {recovered}");
    assert!(
        sealed["reason"].as_str().unwrap().contains(&format!("node {node_a} stopped answering")),
        "{sealed}"
    );
    eprintln!("A's session sealed by {survivor} {took:?} after A died (heartbeat 1 s, lapse 4 s)");
    assert!(took < Duration::from_secs(15), "sealed {took:?} after the node died");
    let (sealer, other) = if survivor == node_b { (&b, &c) } else { (&c, &b) };
    let said = format!("node {node_a} stopped answering");
    assert!(sealer.log().contains(&said), "{}", sealer.log());
    assert!(!other.log().contains(&said), "both survivors sealed it: {}", other.log());
    let shown = b.exported_output(&id_a);
    for marker in ["on-a-42", "still-on-a-5", "last-on-a-64"] {
        assert!(shown.contains(marker), "{marker} not in the sealed recording: {shown}");
    }
    b.kw_ok(&["verify", &id_a]);

    // B's own session was never touched, and the dead node is forgotten.
    on_b.send("echo after-$((9*9))\n");
    on_b.wait_output("after-81");
    assert_eq!(session(&b.sessions(), &id_b)["status"], "active");
    on_b.send("exit\n");
    let (status, _, _) = on_b.finish();
    assert!(status.success());
    drop(on_a);
    let nodes = b.kw_ok(&["nodes", "--json"]);
    assert!(
        !nodes.contains(&node_a) && nodes.contains(&node_b) && nodes.contains(&node_c),
        "{nodes}"
    );
}

/// A data directory copied with its `node-id` makes two processes one node: the one started
/// second takes the node's row over, and the first, at its next heartbeat, sees it is no
/// longer the node, ends its sessions and stops, rather than both recovering one node's
/// sessions.
#[test]
fn a_second_process_under_the_same_node_name_fences_the_first() {
    let mut a = TestEnv::new()
        .postgres()
        .target("web01")
        .config("heartbeat_s = 5", "heartbeat_s = 1")
        .config("lapse_s = 30", "lapse_s = 4")
        .start();
    let name = std::fs::read_to_string(a.data().join("node-id")).unwrap();
    let mut b = a.peer();
    std::fs::write(b.data().join("node-id"), &name).unwrap();
    b.start();
    assert!(b.log().contains(&format!("keepwatch: node {}", name.trim())), "{}", b.log());
    let status = a.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    assert!(a.log().contains("was taken over"), "{}", a.log());
    // B goes on serving as the node.
    let out = b.ssh("alice@web01").arg("echo served-by-b").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("served-by-b"));
    let nodes = b.json(&["nodes", "--json"]);
    assert_eq!(nodes.as_array().unwrap().len(), 1, "{nodes}");
    assert_eq!(nodes[0]["node"], name.trim());
}

/// `keepwatch watch` and `kill` on one node reach a session another node runs: the node the
/// CLI talks to decides and audits the look, then asks the owner (requests signed with the
/// cluster's node key) to stream the watch or end the session; the person sees who ended it
/// and why, and the watcher sees the end. Requests not signed with that key are refused.
#[test]
fn kill_on_any_node_reaches_the_node_running_the_session() {
    let a = TestEnv::new().postgres().target("web01").start();
    let mut b = a.peer();
    b.start();
    let mut on_a = a.at_prompt("alice@web01");
    on_a.send("echo on-a-$((6*7))\n");
    on_a.wait_output("on-a-42");
    let id = a.sessions()[0]["id"].as_str().unwrap().to_owned();

    // Unsigned and wrongly signed node requests are refused by A; the session lives on.
    let body = serde_json::json!({
        "from": "mallory", "session": id, "message": "forged", "at_us": keepwatch_store::now_us(),
    });
    for mac in ["", &"0".repeat(64)] {
        let headers = [("X-Keepwatch-Node-Mac", mac)];
        let (status, ..) = http(&a, "POST", "/api/v1/nodes/terminate", &headers, Some(&body));
        assert_eq!(status, 401, "mac {mac:?}");
    }

    // Watched through B: the screen so far, then what follows, relayed from A.
    let watch = b.watch(&id);
    watch.wait_output("on-a-42");
    on_a.send("echo relayed-$((5*5))\n");
    watch.wait_output("relayed-25");
    let watches = b.json(&["audit", "--session", &id, "--action", "session_watched", "--json"]);
    assert_eq!(watches.as_array().unwrap().len(), 1, "audited once, by B: {watches}");
    // A forged watch request is refused by A.
    let forged = serde_json::json!({
        "from": "mallory", "session": id, "at_us": keepwatch_store::now_us(), "nonce": "0".repeat(32),
    })
    .to_string();
    let headers = [("X-Keepwatch-Node-Request", forged.as_str()), ("X-Keepwatch-Node-Mac", "")];
    let (status, ..) = http(&a, "GET", "/api/v1/nodes/watch", &headers, None);
    assert_eq!(status, 401);

    let out = b.kw(&["kill", &id, "--reason", "asked on node b"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, stdout, stderr) = on_a.finish();
    let shown = format!("{}{stderr}", String::from_utf8_lossy(&stdout));
    assert!(shown.contains("keepwatch: session terminated by local:"), "{shown}");
    assert!(shown.contains(": asked on node b"), "{shown}");
    let (status, _, said) = watch.finish();
    assert!(status.success(), "{said}");
    assert!(said.contains("terminated"), "the watcher is told how it ended: {said}");
    let s = wait_for("the session to be sealed", Duration::from_secs(30), || {
        let s = session(&b.sessions(), &id).clone();
        (s["status"] != "active").then_some(s)
    });
    assert_eq!(s["status"], "terminated", "{s}");
    // Audited once, by the node that decided it, for the person who asked.
    let audit = b.json(&["audit", "--session", &id, "--action", "session_terminated", "--json"]);
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
    assert!(audit[0]["detail"].as_str().unwrap().contains("asked on node b"), "{audit}");
    // Nothing live anywhere: a second kill says so.
    let again = b.kw(&["kill", &id, "--reason", "again"]);
    assert!(!again.status.success());
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains("not live"), "{said}");
}

/// A node cut off from the shared database cannot beat, so after `lapse_s` another node may
/// claim its sessions: it ends them itself once its beats have failed for half the lapse, so
/// no session goes on being relayed here while a survivor may be sealing it elsewhere.
#[test]
fn a_node_cut_off_from_its_database_ends_its_sessions_before_others_could_claim_them() {
    let a = TestEnv::new()
        .postgres()
        .target("web01")
        .config("heartbeat_s = 5", "heartbeat_s = 1")
        .config("lapse_s = 30", "lapse_s = 6")
        .start();
    let mut on_a = a.at_prompt("alice@web01");
    on_a.send("echo before-$((3*4))\n");
    on_a.wait_output("before-12");
    let cut = Instant::now();
    a.postgres().cut_off();
    let (_, stdout, stderr) = on_a.finish();
    let ended = cut.elapsed();
    a.postgres().reconnect();
    let shown = format!("{}{stderr}", String::from_utf8_lossy(&stdout));
    assert!(shown.contains("this gateway node lost its database"), "{shown}");
    eprintln!(
        "the session ended {ended:?} after the database was cut off (heartbeat 1 s, lapse 6 s)"
    );
    assert!(ended < Duration::from_secs(6), "ended {ended:?} after the cut: others could claim it");
}

/// Console logins live in the shared database: a login made on node A works on node B, and
/// logging out on B ends it on A too.
#[test]
fn a_console_login_on_one_node_is_a_login_on_every_node() {
    let a = TestEnv::new().postgres().person("audrey", "auditor", "audit-pass-1").start();
    let mut b = a.peer();
    b.start();
    let creds = serde_json::json!({ "name": "audrey", "password": "audit-pass-1" });
    let (status, head, body) = http(&a, "POST", "/api/v1/login", &[], Some(&creds));
    assert_eq!(status, 200, "{body}");
    let cookie = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("set-cookie: ").map(|_| l[12..].to_owned())
        })
        .unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let csrf = serde_json::from_str::<serde_json::Value>(&body).unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = |env: &TestEnv| http(env, "GET", "/api/v1/me", &[("Cookie", &cookie)], None).0;
    assert_eq!((me(&a), me(&b)), (200, 200));
    let out = [("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    let (status, ..) = http(&b, "POST", "/api/v1/logout", &out, None);
    assert_eq!(status, 200);
    assert_eq!((me(&a), me(&b)), (401, 401), "logged out everywhere");
}
