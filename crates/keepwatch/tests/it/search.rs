//! Commands and output are indexed live and after the fact, found by `search`, listed by
//! `show`, and `replay --at-command` starts at a hit.

use keepwatch_store::IndexState;
use serde_json::{Value, json};

use crate::support::*;

fn search(env: &TestEnv, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["search", "--json"];
    all.extend_from_slice(args);
    env.json(&all)["hits"].as_array().unwrap().clone()
}

/// The `show --json` command rows of a session.
fn commands(env: &TestEnv, id: &str) -> Vec<Value> {
    env.json(&["show", id, "--json"])["commands"].as_array().unwrap().clone()
}

#[test]
fn commands_are_found_live_listed_and_replayed_from() {
    commands_are_found_live_listed_and_replayed_from_on(TestEnv::new());
}

/// Issue 11: the same with the metadata in PostgreSQL.
#[test]
fn commands_are_found_live_listed_and_replayed_from_on_postgres() {
    commands_are_found_live_listed_and_replayed_from_on(TestEnv::new().postgres());
}

fn commands_are_found_live_listed_and_replayed_from_on(builder: TestEnvBuilder) {
    let mut env = builder.target("web01").start();

    let mut s = env.at_prompt("alice@web01");
    s.send("echo first-$((6*7))\n");
    s.wait_output("first-42");
    s.send("ls -la /etc/ssh/ssh_config\n");
    s.wait_output("ssh_config\r\n");
    // A later prompt completes the ls: found while the session is still live.
    s.send("echo marker-$((1+2))\n");
    s.wait_output("marker-3");
    let id = env.sessions()[0]["id"].as_str().unwrap().to_owned();
    // The recorder writes what the client saw within a flush interval; the indexer reads it
    // back from there.
    env.wait_recorded(&id, "marker-3");
    let indexed = env.wait_indexed_live(&id);
    assert_eq!(indexed.state, IndexState::Behind, "a live session is never complete");
    let live = search(&env, &["/etc/ssh/ssh_con", "--commands-only"]);
    assert!(!live.is_empty(), "not found; the session's rows: {:#?}", commands(&env, &id));
    assert_eq!(live[0]["command"], "ls -la /etc/ssh/ssh_config");
    assert_eq!(live[0]["kind"], "shell");
    assert_eq!(live[0]["user"], "alice");
    assert_eq!(live[0]["session"], id.as_str());
    assert_eq!(env.sessions()[0]["status"], "active", "found while the session runs");
    // `index status` lists the live session as behind, with what it has indexed so far.
    let listed = env.json(&["index", "status", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["session"], id.as_str());
    assert_eq!(listed[0]["session_status"], "active");
    assert_eq!(listed[0]["state"], "behind");
    let (done, of) = (listed[0]["bytes_indexed"].as_u64(), listed[0]["bytes_recorded"].as_u64());
    assert!(done.unwrap() >= indexed.bytes_indexed && of >= done, "{listed}");
    let text = env.kw_ok(&["index", "status"]);
    assert!(text.contains(&id) && text.contains("active  behind"), "{text}");
    s.send("exit\n");
    let (status, ..) = s.finish();
    assert!(status.success());

    // An exec channel records its command line and output directly.
    let out = env.ssh("alice@web01").arg("echo exec-$((20+3))").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "exec-23\n");
    let sessions = env.sealed_sessions(2);
    let exec_id = sessions.iter().find(|s| s["id"] != id.as_str()).unwrap()["id"].as_str().unwrap();
    env.wait_indexed(exec_id);
    let exec = search(&env, &["exec-$((20+3))"]);
    assert!(!exec.is_empty(), "the exec command is found");
    assert_eq!(exec[0]["kind"], "exec");
    assert!(exec[0]["snippet"].as_str().unwrap().contains("«exec-$((20+3))»"), "{exec:?}");
    // Output is searchable too, as a substring of a word.
    let by_output = search(&env, &["xec-2"]);
    assert!(by_output.iter().any(|h| h["kind"] == "exec"), "{by_output:?}");

    // Once sealed, the shell's commands are all there, in order, with offsets.
    let complete = env.wait_indexed(&id);
    assert_eq!(Some(complete.bytes_indexed), complete.bytes_recorded);
    let shown = commands(&env, &id);
    let texts: Vec<&str> = shown.iter().map(|c| c["command"].as_str().unwrap()).collect();
    assert_eq!(
        texts,
        ["echo first-$((6*7))", "ls -la /etc/ssh/ssh_config", "echo marker-$((1+2))", "exit"]
    );
    let offsets: Vec<u64> = shown.iter().map(|c| c["offset_us"].as_u64().unwrap()).collect();
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "offsets in order: {offsets:?}");
    let text = env.kw_ok(&["show", &id]);
    assert!(text.contains("ls -la /etc/ssh/ssh_config"), "{text}");

    // Filters.
    assert!(search(&env, &["/etc/ssh/ssh_con", "--user", "bob"]).is_empty());
    assert!(search(&env, &["/etc/ssh/ssh_con", "--target", "db01"]).is_empty());
    assert!(search(&env, &["/etc/ssh/ssh_con", "--until", "2000-01-01"]).is_empty());
    // The command line, and two lines of output: the prompt line it was typed on, as the
    // screen showed it, and what ls printed.
    let recent = search(&env, &["/etc/ssh/ssh_con", "--since", "1h"]);
    let found: Vec<(bool, &str)> = recent
        .iter()
        .map(|h| (h["in_output"].as_bool().unwrap(), h["snippet"].as_str().unwrap()))
        .collect();
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(found.iter().filter(|(output, _)| *output).count(), 2, "{found:?}");
    assert!(found.iter().any(|(_, s)| s.starts_with("-rw")), "ls's line: {found:?}");
    assert!(recent.iter().all(|h| h["command"] == "ls -la /etc/ssh/ssh_config"), "{recent:?}");
    assert!(search(&env, &["marker-3", "--commands-only"]).is_empty(), "output, not a command");
    assert!(!search(&env, &["marker-3"]).is_empty());

    // Replay from the hit: what follows is played, what came before is drawn at once.
    let seq = live[0]["seq"].as_u64().unwrap().to_string();
    let replay = env.kw_ok(&["replay", &id, "--at-command", &seq, "--speed", "1000"]);
    assert!(replay.contains("marker-3"), "{replay}");
    let bad = env.kw(&["replay", &id, "--at-command", "99"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("has no command 99"));

    // Nothing is left to index; a session named is listed whatever its state.
    assert_eq!(env.json(&["index", "status", "--json"]), json!([]));
    let named = env.json(&["index", "status", &id, "--json"]);
    assert_eq!(named[0]["state"], "complete", "{named}");
    assert_eq!(named[0]["bytes_indexed"], named[0]["bytes_recorded"], "{named}");
    // Every row written counts, the commands `show` lists among them.
    assert!(named[0]["commands"].as_u64().unwrap() >= shown.len() as u64, "{named}");

    // Reindexing from the recordings gives the same commands; a restart keeps them.
    let before = env.json(&["show", &id, "--json"])["commands"].clone();
    let msg = env.kw(&["reindex", "--all"]);
    assert!(msg.status.success(), "{}", String::from_utf8_lossy(&msg.stderr));
    assert!(String::from_utf8_lossy(&msg.stderr).contains("reindexed 2 session(s)"));
    assert_eq!(env.json(&["show", &id, "--json"])["commands"], before);
    env.stop();
    env.start();
    assert_eq!(env.json(&["show", &id, "--json"])["commands"], before);

    let audit = env.kw_ok(&["audit"]);
    assert!(audit.contains("searched") && audit.contains("reindexed"), "{audit}");
}

#[test]
fn hostile_terminal_output_neither_stalls_the_gateway_nor_the_index() {
    let env = TestEnv::new().target("web01").start();
    let mut s = env.at_prompt("alice@web01");
    // A 10 MB line, invalid UTF-8, an unterminated escape sequence and OSC, and a bogus
    // resize request to the terminal, all printed by the target.
    s.send("head -c 10000000 /dev/zero | tr '\\0' a; printf '\\377\\376\\033[99999;99999H\\033[8;99999;99999t\\033]0;never-ends'; echo; echo after-$((5*5))\n");
    s.wait_output("after-25");
    // Another session is served meanwhile, and this one still answers.
    let out = env.ssh("alice@web01").arg("echo other-$((2+2))").output().unwrap();
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
    env.sealed_sessions(2);
    let shell =
        env.sessions().iter().find(|s| s["channels"].to_string().contains("shell")).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
    let id = shell.clone();
    env.wait_indexed(&shell);
    let commands: Vec<String> =
        commands(&env, &shell).iter().map(|c| c["command"].as_str().unwrap().to_owned()).collect();
    assert!(commands.iter().any(|t| t == "exit"), "{commands:?}");
    assert!(commands[0].starts_with("head -c 10000000 /dev/zero"), "{commands:?}");
    assert!(env.kw(&["verify", &id]).status.success());
}

/// Issue 9: `!!` is listed as what ran, with what was typed beside it; a recall of the same
/// text is listed again (bash ran it twice).
#[test]
fn history_expansions_are_listed_as_what_ran() {
    let env = TestEnv::new().target("web01").start();
    let mut s = env.at_prompt("alice@web01");
    s.send("echo kw-bang-$((4+4))\n");
    s.wait_output_times("kw-bang-8", 1);
    s.send("!!\n");
    s.wait_output_times("kw-bang-8\r\n", 2);
    s.send("exit\n");
    let (status, ..) = s.finish();
    assert!(status.success());
    let id = env.sealed_sessions(1)[0]["id"].as_str().unwrap().to_owned();
    env.wait_indexed(&id);
    let v = env.json(&["show", &id, "--json"]);
    let commands: Vec<(String, Value)> = v["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["command"].as_str().unwrap().to_owned(), c["typed"].clone()))
        .collect();
    assert_eq!(
        commands,
        [
            ("echo kw-bang-$((4+4))".to_owned(), Value::Null),
            ("echo kw-bang-$((4+4))".to_owned(), Value::from("!!")),
            ("exit".to_owned(), Value::Null),
        ]
    );
    assert!(env.kw_ok(&["show", &id]).contains("(typed: !!)"));
}
