//! Commands and output are indexed live and after the fact, found by `search`, listed by
//! `show`, and `replay --at-command` starts at a hit.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

fn search(gw: &Gateway, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["search", "--json"];
    all.extend_from_slice(args);
    gw.json(&all).as_array().unwrap().clone()
}

/// Polls `search` until it has at least one hit (the indexer runs every second; the bound is
/// generous for a loaded CI machine).
fn wait_hit(gw: &Gateway, args: &[&str]) -> Vec<Value> {
    wait_for(&format!("a search hit for {args:?}"), Duration::from_secs(60), || {
        let hits = search(gw, args);
        (!hits.is_empty()).then_some(hits)
    })
}

#[test]
fn commands_are_found_live_listed_and_replayed_from() {
    let (_sshd, mut gw) = gateway_with_web01();

    let mut s = Interactive::at_prompt(&gw, "alice@web01");
    s.send("echo first-$((6*7))\n");
    s.wait_output("first-42");
    s.send("ls -la /etc/ssh/ssh_config\n");
    s.wait_output("ssh_config\r\n");
    // A later prompt completes the ls: found while the session is still live.
    s.send("echo marker-$((1+2))\n");
    s.wait_output("marker-3");
    let live = wait_hit(&gw, &["/etc/ssh/ssh_con", "--commands-only"]);
    assert_eq!(live[0]["command"], "ls -la /etc/ssh/ssh_config");
    assert_eq!(live[0]["kind"], "shell");
    assert_eq!(live[0]["user"], "alice");
    let id = live[0]["session"].as_str().unwrap().to_owned();
    assert_eq!(gw.sessions()[0]["status"], "active", "found while the session runs");
    s.send("exit\n");
    let (status, ..) = s.finish();
    assert!(status.success());

    // An exec channel records its command line and output directly.
    let out = gw.ssh("alice@web01").arg("echo exec-$((20+3))").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "exec-23\n");
    let exec = wait_hit(&gw, &["exec-$((20+3))"]);
    assert_eq!(exec[0]["kind"], "exec");
    assert!(exec[0]["snippet"].as_str().unwrap().contains("«exec-$((20+3))»"), "{exec:?}");
    // Output is searchable too, as a substring of a word.
    let by_output = wait_hit(&gw, &["xec-2"]);
    assert!(by_output.iter().any(|h| h["kind"] == "exec"), "{by_output:?}");

    // Once sealed, the shell's commands are all there, in order, with offsets.
    gw.sealed_sessions(2);
    let shown = wait_for("the sealed session's commands", Duration::from_secs(60), || {
        let v = gw.json(&["show", &id, "--json"]);
        let c = v["commands"].as_array().unwrap().clone();
        (c.len() >= 4).then_some(c)
    });
    let texts: Vec<&str> = shown.iter().map(|c| c["command"].as_str().unwrap()).collect();
    assert_eq!(
        texts,
        ["echo first-$((6*7))", "ls -la /etc/ssh/ssh_config", "echo marker-$((1+2))", "exit"]
    );
    let offsets: Vec<u64> = shown.iter().map(|c| c["offset_us"].as_u64().unwrap()).collect();
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "offsets in order: {offsets:?}");
    let text = gw.kw_ok(&["show", &id]);
    assert!(text.contains("ls -la /etc/ssh/ssh_config"), "{text}");

    // Filters.
    assert!(search(&gw, &["/etc/ssh/ssh_con", "--user", "bob"]).is_empty());
    assert!(search(&gw, &["/etc/ssh/ssh_con", "--target", "db01"]).is_empty());
    assert!(search(&gw, &["/etc/ssh/ssh_con", "--until", "2000-01-01"]).is_empty());
    assert_eq!(search(&gw, &["/etc/ssh/ssh_con", "--since", "1h"]).len(), 1);
    assert!(search(&gw, &["marker-3", "--commands-only"]).is_empty(), "output, not a command");
    assert!(!search(&gw, &["marker-3"]).is_empty());

    // Replay from the hit: what follows is played, what came before is drawn at once.
    let seq = live[0]["seq"].as_u64().unwrap().to_string();
    let replay = gw.kw_ok(&["replay", &id, "--at-command", &seq, "--speed", "1000"]);
    assert!(replay.contains("marker-3"), "{replay}");
    let bad = gw.kw(&["replay", &id, "--at-command", "99"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("has no command 99"));

    // Reindexing from the recordings gives the same commands; a restart keeps them.
    let before = gw.json(&["show", &id, "--json"])["commands"].clone();
    let msg = gw.kw(&["reindex", "--all"]);
    assert!(msg.status.success(), "{}", String::from_utf8_lossy(&msg.stderr));
    assert!(String::from_utf8_lossy(&msg.stderr).contains("reindexed 2 session(s)"));
    assert_eq!(gw.json(&["show", &id, "--json"])["commands"], before);
    gw.stop();
    gw.start();
    assert_eq!(gw.json(&["show", &id, "--json"])["commands"], before);

    let audit = gw.kw_ok(&["audit"]);
    assert!(audit.contains("searched") && audit.contains("reindexed"), "{audit}");
}

#[test]
fn hostile_terminal_output_neither_stalls_the_gateway_nor_the_index() {
    let (_sshd, gw) = gateway_with_web01();
    let mut s = Interactive::at_prompt(&gw, "alice@web01");
    // A 10 MB line, invalid UTF-8, an unterminated escape sequence and OSC, and a bogus
    // resize request to the terminal, all printed by the target.
    s.send("head -c 10000000 /dev/zero | tr '\\0' a; printf '\\377\\376\\033[99999;99999H\\033[8;99999;99999t\\033]0;never-ends'; echo; echo after-$((5*5))\n");
    s.wait_output("after-25");
    // Another session is served meanwhile, and this one still answers.
    let out = gw.ssh("alice@web01").arg("echo other-$((2+2))").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "other-4\n");
    s.send("echo still-$((3+3))\n");
    s.wait_output("still-6");
    s.send("exit\n");
    let (status, ..) = s.finish();
    assert!(status.success());
    // The index keeps up: the sealed session's commands are there. (The command typed right
    // after the flood is not: the unterminated OSC swallowed the newlines, so the shell drew
    // that prompt mid-line, as the person's terminal showed it, and the extractor only reads
    // commands at prompts that start a line.)
    gw.sealed_sessions(2);
    let shell = gw.sessions().iter().find(|s| s["channels"].to_string().contains("shell")).unwrap()
        ["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = shell.clone();
    let commands = wait_for("the shell session's commands", Duration::from_secs(60), || {
        let v = gw.json(&["show", &shell, "--json"]);
        let c: Vec<String> = v["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["command"].as_str().unwrap().to_owned())
            .collect();
        c.iter().any(|t| t == "exit").then_some(c)
    });
    assert!(commands[0].starts_with("head -c 10000000 /dev/zero"), "{commands:?}");
    assert!(gw.kw(&["verify", &id]).status.success());
}
