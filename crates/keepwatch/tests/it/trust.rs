//! Issue 9: records someone with a foothold on the gateway host could forge or delete. `verify`
//! trusts a pinned key, not the data directory's; crash recovery does not launder an edited
//! spool; anchors written off the data directory catch history deleted after them.

use std::time::Duration;

use keepwatch_recording::{Event, RecordingWriter, Seal, read_events};

use crate::support::*;

/// The fingerprint `run` prints for its signing key.
fn fingerprint(env: &TestEnv) -> String {
    let log = env.log();
    let at = log.find("fingerprint SHA256:").expect("run prints the key's fingerprint");
    log[at + "fingerprint ".len()..]
        .split(|c: char| c == ')' || c.is_whitespace())
        .next()
        .unwrap()
        .to_owned()
}

fn recording(env: &TestEnv, id: &str) -> std::path::PathBuf {
    env.data().join("recordings").join(format!("{id}.kwr"))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Someone who can write the data directory makes a key pair of their own, rewrites a
/// recording and its row with it, and replaces signing.pub. `verify` against the directory's
/// key is fooled (and says it relies on that key); against the pinned key or fingerprint it
/// is not.
#[test]
fn verify_trusts_a_pinned_key_not_the_data_directory() {
    let mut env = TestEnv::new().target("web01").start();
    let fp = fingerprint(&env);
    let out = env.ssh("alice@web01").arg("echo the-real-history").output().unwrap();
    assert!(out.status.success());
    let id = env.sealed_sessions(1)[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(env.stop().code(), Some(0));
    let pinned = env.dir().join("pinned.pub");
    std::fs::copy(env.data().join("signing.pub"), &pinned).unwrap();
    let ok = env.kw(&["verify", "--all", "--fingerprint", &fp]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));

    // The forgery: the same session, other output, signed by the attacker's key.
    let bytes = std::fs::read(recording(&env, &id)).unwrap();
    let events = read_events(&bytes, env.data_key(&id).as_ref()).unwrap();
    let forger = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let Event::SessionStart(start) = events[0].event.clone() else { panic!() };
    let mut w = RecordingWriter::new(start, forger.clone());
    let mut seal = None;
    for e in &events[1..] {
        match &e.event {
            Event::Seal(s) => seal = Some((e.at_us, s.clone())),
            Event::Output { channel, data } if data.starts_with(b"the-real") => {
                w.push(&keepwatch_recording::TimedEvent {
                    at_us: e.at_us,
                    event: Event::Output {
                        channel: *channel,
                        data: b"a-forged-history\n".to_vec(),
                    },
                });
            }
            _ => w.push(e),
        }
    }
    let (at, s): (u64, Seal) = seal.unwrap();
    let mut forged = w.flush(s.ended_at_us, true).unwrap();
    let (tail, info) = w.seal(at, s.clone(), s.ended_at_us);
    forged.extend(tail);
    std::fs::write(recording(&env, &id), &forged).unwrap();
    env.sql(&format!(
        "UPDATE sessions SET chain_head = x'{}', seal_seq = {}, seal_signature = x'{}' WHERE id = '{id}'",
        hex(&info.chain_head),
        info.seq,
        hex(&info.signature)
    ));
    std::fs::write(
        env.data().join("signing.pub"),
        format!("{}\n", hex(forger.verifying_key().as_bytes())),
    )
    .unwrap();

    let fooled = env.kw(&["verify", &id]);
    assert!(fooled.status.success(), "the directory's own key vouches for the forgery");
    assert!(
        String::from_utf8_lossy(&fooled.stderr).contains("warning: verifying against"),
        "and verify says what it relied on: {}",
        String::from_utf8_lossy(&fooled.stderr)
    );
    let by_fp = env.kw(&["verify", &id, "--fingerprint", &fp]);
    assert!(!by_fp.status.success());
    let err = String::from_utf8_lossy(&by_fp.stderr);
    assert!(err.contains(&format!("not {fp}")) && err.contains("replaced"), "{err}");
    let by_key = env.kw(&["verify", &id, "--key", pinned.to_str().unwrap()]);
    assert!(!by_key.status.success());
    assert!(String::from_utf8_lossy(&by_key.stdout).contains("signature invalid"));
}

/// A crashed session's spool extended after its last checkpoint with chunks whose chain was
/// recomputed: recovery keeps them but names them in the seal as never signed, and audits it.
/// A spool re-signed with another key is not sealed at all.
#[test]
fn recovery_does_not_launder_an_edited_spool() {
    let mut env = TestEnv::new()
        .config("flush_interval_ms = 1000", "flush_interval_ms = 200")
        .target("web01")
        .start();
    let mut s = env.interactive("alice@web01");
    s.send("echo kw-before-$((1+1))\n");
    s.wait_output("kw-before-2");
    let id = env.sessions()[0]["id"].as_str().unwrap().to_owned();
    env.wait_recorded(&id, "kw-before-2");
    let mut other = env.interactive("alice@web01");
    other.send("echo kw-other-$((2+2))\n");
    other.wait_output("kw-other-4");
    let other_id = env
        .sessions()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .find(|s| *s != id)
        .unwrap();
    env.wait_recorded(&other_id, "kw-other-4");
    env.kill9();
    let _ = s.finish();
    let _ = other.finish();

    // Extend the first spool: resume its chain (no key needed to chain) and add a chunk.
    let spool = env.data().join("spool").join(format!("{id}.kwr"));
    let bytes = std::fs::read(&spool).unwrap();
    let keep = keepwatch_recording::valid_prefix_len(&bytes);
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let mut w = RecordingWriter::resume(&bytes[..keep], stranger.clone(), None).unwrap();
    w.push(&keepwatch_recording::TimedEvent {
        at_us: w.last_at_us() + 1,
        event: Event::Output { channel: 0, data: b"kw-added-after-the-crash\r\n".to_vec() },
    });
    let mut extended = bytes[..keep].to_vec();
    extended.extend(w.flush(1, false).unwrap());
    std::fs::write(&spool, &extended).unwrap();
    // Re-sign the second one entirely with a key that is not the gateway's.
    let other_spool = env.data().join("spool").join(format!("{other_id}.kwr"));
    let bytes = std::fs::read(&other_spool).unwrap();
    let prefix = &bytes[..keepwatch_recording::valid_prefix_len(&bytes)];
    let events = read_events(prefix, env.data_key(&other_id).as_ref()).unwrap();
    let Event::SessionStart(start) = events[0].event.clone() else { panic!() };
    let mut w = RecordingWriter::new(start, stranger);
    for e in &events[1..] {
        w.push(e);
    }
    std::fs::write(&other_spool, w.flush(1, true).unwrap()).unwrap();

    env.start();
    let rows = env.sessions();
    let row = |sid: &str| rows.iter().find(|s| s["id"] == sid).unwrap().clone();
    assert_eq!(row(&id)["status"], "interrupted");
    let shown = env.kw_ok(&["show", &id, "--events"]);
    assert!(shown.contains("were never signed before this seal"), "{shown}");
    let audit = env.json(&["audit", "--action", "session_recovered", "--json"]).to_string();
    assert!(audit.contains("no checkpoint had signed"), "{audit}");
    assert!(audit.contains("recovery refused to seal"), "{audit}");
    assert_eq!(row(&other_id)["status"], "interrupted");
    assert!(row(&other_id)["reason"].as_str().unwrap().contains("not by this gateway's key"));
    let v = env.kw(&["verify", "--all"]);
    assert!(!v.status.success(), "the re-signed recording is reported");
    let out = String::from_utf8_lossy(&v.stdout);
    assert!(out.contains(&other_id) && out.contains("signature invalid"), "{out}");
    assert!(!out.contains(&format!("session {id}:")), "the extended one is sealed: {out}");
}

/// The newest sessions and audit events deleted, or a crashed session's spool cut back past a
/// checkpoint, leave the store consistent with itself: only an anchor written before shows it.
#[test]
fn anchors_catch_deleted_history_and_spools_cut_back() {
    let mut env = TestEnv::new()
        .config("interval_s = 60", "interval_s = 1")
        .config("checkpoint_interval_s = 10", "checkpoint_interval_s = 1")
        .config("flush_interval_ms = 1000", "flush_interval_ms = 200")
        .target("web01")
        .start();
    for i in 0..3 {
        let out = env.ssh("alice@web01").arg(format!("echo kw-anchored-{i}")).output().unwrap();
        assert!(out.status.success());
    }
    env.sealed_sessions(3);
    // A live session with output after its first checkpoint.
    let mut s = env.interactive("alice@web01");
    s.send("for i in 1 2 3; do echo kw-live-$i; sleep 1; done\n");
    s.wait_output("kw-live-3");
    let live = env.sessions().iter().find(|s| s["status"] == "active").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let anchors = env.data().join("anchors.log");
    // An anchor that saw the three sealed sessions and a checkpoint of the live one past
    // its first chunk.
    wait_for("an anchor with the live session's checkpoint", Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&anchors).ok()?;
        let last = text.lines().last()?;
        (last.contains("ledger=3:")
            && last.contains(&format!("{live}:"))
            && !last.contains(&format!("{live}:0:")))
        .then_some(())
    });
    env.kill9();
    let _ = s.finish();
    let before = env.kw(&["verify", "--all", "--anchor", anchors.to_str().unwrap()]);
    let shown = String::from_utf8_lossy(&before.stdout);
    assert!(!shown.contains("ledger:") && !shown.contains("audit:"), "intact before: {shown}");
    // The database keeps the same anchors.
    let stored = env.kw(&["verify", "--all", "--stored-anchors"]);
    let shown = String::from_utf8_lossy(&stored.stdout);
    assert!(shown.contains("anchor(s), the newest of"), "{shown}");
    assert!(!shown.contains("ledger:") && !shown.contains("audit:"), "intact before: {shown}");

    // Cut the live spool back to its first chunk (the session's identity), as if the
    // gateway had died right after it started.
    let spool = env.data().join("spool").join(format!("{live}.kwr"));
    let bytes = std::fs::read(&spool).unwrap();
    let first = keepwatch_recording::chunks(&bytes).next().unwrap().unwrap();
    let cut = first.offset + first.encoded_len();
    std::fs::write(&spool, &bytes[..cut]).unwrap();
    // Delete the newest sealed session (row, ledger entry, file) and the newest audit events.
    let newest = env.sessions().iter().find(|s| s["status"] == "closed").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::remove_file(recording(&env, &newest)).unwrap();
    env.sql(&format!(
        "DELETE FROM sessions WHERE id = '{newest}'; DELETE FROM channels WHERE session_id = '{newest}'; \
         DELETE FROM ledger WHERE seq = (SELECT max(seq) FROM ledger); \
         DELETE FROM audit_chain WHERE id > (SELECT max(id) - 5 FROM audit_chain); \
         DELETE FROM audit_events WHERE id > (SELECT max(id) - 5 FROM audit_events);"
    ));

    env.start();
    env.stop();
    let plain = env.kw(&["verify", "--all", "--fingerprint", &fingerprint(&env)]);
    assert!(
        plain.status.success(),
        "consistent with itself: {}",
        String::from_utf8_lossy(&plain.stdout)
    );
    let v = env.kw(&["verify", "--all", "--anchor", anchors.to_str().unwrap()]);
    assert!(!v.status.success());
    let out = String::from_utf8_lossy(&v.stdout);
    // The deleted entry's place was taken by the recovered session's: "rewritten".
    assert!(out.contains("ledger: entry 2 differs"), "{out}");
    assert!(out.contains("audit events were deleted"), "{out}");
    assert!(out.contains(&format!("session {live}: recording cut back")), "{out}");
    // The anchors the database keeps catch it too, unless they are deleted with the rest:
    // then verify says there is nothing to check against, and fails.
    let v = env.kw(&["verify", "--all", "--stored-anchors"]);
    assert!(!v.status.success());
    assert!(String::from_utf8_lossy(&v.stdout).contains("ledger: entry 2 differs"));
    env.sql("DELETE FROM anchors");
    let v = env.kw(&["verify", "--all", "--stored-anchors"]);
    assert!(!v.status.success());
    let said = String::from_utf8_lossy(&v.stderr);
    assert!(said.contains("no anchor signed by the trusted key in the database"), "{said}");
}
