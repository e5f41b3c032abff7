//! Context and notice with real OpenSSH: the notice shown (and recorded) before the shell,
//! and a target that requires a reason: refused without one, saying how to give one; given
//! with `ssh -o SetEnv=KEEPWATCH_REASON=...` or asked in the terminal; kept with the session,
//! signed in its recording (an edited row fails `verify`), audited and filterable.

use std::process::{Command, Stdio};

use keepwatch_recording::Event;

use crate::support::*;

/// `ssh` as alice to `target` with `KEEPWATCH_REASON=reason` sent, running `command`.
fn ssh_with_reason(env: &TestEnv, target: &str, reason: &str, command: &str) -> Command {
    let mut c = Command::new("ssh");
    c.args(env.client_opts())
        .args(["-o", &format!("SetEnv=KEEPWATCH_REASON=\"{reason}\"")])
        .args(["-p", &env.ssh_port().to_string()])
        .arg(format!("alice@{target}@127.0.0.1"))
        .arg(command)
        .stdin(Stdio::null());
    c
}

#[test]
fn a_target_that_requires_a_reason_refuses_without_one_and_signs_the_one_given() {
    let env =
        TestEnv::new().target_with("web01", Target::new().args(&["--require-reason"])).start();

    // No reason: refused before the target is contacted, with a line saying how.
    let out = env.ssh("alice@web01").arg("echo never-$((1+1))").output().unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("target web01 requires a reason for each session"), "{said}");
    assert!(said.contains("ssh -o SetEnv=KEEPWATCH_REASON="), "{said}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("never-2"));
    let refused = env.kw_ok(&["audit", "--action", "session_refused"]);
    assert!(refused.contains("requires a reason; none was given"), "{refused}");
    assert!(env.sessions().is_empty(), "nothing was opened");

    // A reason in the environment: the session runs and keeps it.
    let out = ssh_with_reason(&env, "web01", "CHG-1234 rotate logs", "echo did-$((40+2))")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("did-42"));
    // The notice is for shells: an exec's output and errors stay as the target gave them.
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let sessions = env.sealed_sessions(1);
    let id = sessions[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(sessions[0]["stated_reason"], "CHG-1234 rotate logs");
    let events = env.events(&id);
    assert_eq!(events[1], Event::Context { reason: "CHG-1234 rotate logs".into() });
    assert!(env.kw_ok(&["show", &id]).contains("reason    CHG-1234 rotate logs"));
    let started = env.kw_ok(&["audit", "--action", "session_started"]);
    assert!(started.contains("reason: CHG-1234 rotate logs"), "{started}");
    let found = env.json(&["sessions", "--reason", "chg-1234", "--json"]);
    assert_eq!(found.as_array().unwrap().len(), 1);
    let found = env.json(&["sessions", "--reason", "INC-", "--json"]);
    assert_eq!(found.as_array().unwrap().len(), 0);
    env.kw_ok(&["verify", &id]);

    // Asked in the terminal: an empty answer refuses, a real one opens the shell. The notice
    // comes before the shell, and is recorded as shown.
    let mut s = env.interactive("alice@web01");
    s.wait_output("Reason for this session on web01");
    s.send("\r");
    let (_, stdout, stderr) = s.finish();
    let shown = format!("{}{stderr}", String::from_utf8_lossy(&stdout));
    assert!(shown.contains("requires a reason for each session"), "{shown}");

    let mut s = env.interactive("alice@web01");
    s.wait_output("Reason for this session on web01");
    s.send("INC-77 restart nginx\r");
    s.wait_output("$ ");
    s.send("echo in-$((1+1)); exit\r");
    s.wait_output("in-2");
    let (_, stdout, stderr) = s.finish();
    let shown = format!("{}{stderr}", String::from_utf8_lossy(&stdout));
    assert!(shown.contains("keepwatch: this session is recorded and may be reviewed"), "{shown}");
    let sessions = env.sealed_sessions(2);
    let asked = sessions.iter().find(|s| s["stated_reason"] == "INC-77 restart nginx").unwrap();
    let asked = asked["id"].as_str().unwrap().to_owned();
    let notice = b"keepwatch: this session is recorded and may be reviewed\r\n".to_vec();
    assert!(
        env.events(&asked)
            .iter()
            .any(|e| matches!(e, Event::Output { data, .. } if *data == notice)),
        "the notice is in the recording"
    );
    env.kw_ok(&["verify", &asked]);

    // The reason is signed: an edit of the row is caught.
    env.sql(&format!("UPDATE sessions SET stated_reason = 'routine' WHERE id = '{id}'"));
    let out = env.kw(&["verify", &id]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(
            "stated reason is \"routine\" but the signed recording says \"CHG-1234 rotate logs\""
        ),
        "{said}"
    );
}

#[test]
fn the_notice_can_be_changed_or_turned_off() {
    let notice = "notice = \"keepwatch: this session is recorded and may be reviewed\"";
    let env = TestEnv::new()
        .target("web01")
        .config(
            &format!("# {notice}"),
            "notice = \"Authorized use only.\\nAll activity is recorded.\"",
        )
        .start();
    let mut s = env.at_prompt("alice@web01");
    s.send("exit\r");
    let (_, stdout, stderr) = s.finish();
    let shown = format!("{}{stderr}", String::from_utf8_lossy(&stdout));
    assert!(shown.contains("Authorized use only.\r\nAll activity is recorded.\r\n"), "{shown}");

    let env =
        TestEnv::new().target("web01").config(&format!("# {notice}"), "notice = \"\"").start();
    let mut s = env.at_prompt("alice@web01");
    s.send("exit\r");
    let (_, stdout, stderr) = s.finish();
    let shown = format!("{}{stderr}", String::from_utf8_lossy(&stdout));
    assert!(!shown.contains("recorded"), "{shown}");
}
