//! Tampering with recordings or the database is detected by `verify`.

use crate::support::*;

/// Byte ranges of the chunks of a recording file.
fn chunk_ranges(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    keepwatch_recording::chunks(bytes)
        .map(|c| {
            let c = c.unwrap();
            c.offset..c.offset + c.encoded_len()
        })
        .collect()
}

fn recording(env: &TestEnv, id: &str) -> std::path::PathBuf {
    env.data().join("recordings").join(format!("{id}.kwr"))
}

#[test]
fn verify_detects_each_kind_of_tampering() {
    verify_detects_each_kind_of_tampering_on(TestEnv::new());
}

/// Issue 11: the same with the metadata in PostgreSQL.
#[test]
fn verify_detects_each_kind_of_tampering_on_postgres() {
    verify_detects_each_kind_of_tampering_on(TestEnv::new().postgres());
}

fn verify_detects_each_kind_of_tampering_on(builder: TestEnvBuilder) {
    let mut env = builder.target("web01").start();
    // Six sessions, each with ~4 MB of output so their recordings have several chunks.
    for _ in 0..6 {
        let out = env.ssh("alice@web01").arg("seq 1 600000").output().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), 4_088_895);
    }
    assert_eq!(env.stop().code(), Some(0));
    let v = env.kw(&["verify", "--all"]);
    assert!(v.status.success(), "intact before tampering: {}", String::from_utf8_lossy(&v.stdout));
    assert!(String::from_utf8_lossy(&v.stdout).contains("6 recording(s) intact"));

    let ids: Vec<String> =
        env.sessions().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    let [flipped, truncated, dropped, unsealed, deleted, edited] = &ids[..] else { panic!() };

    // 1. A flipped byte in the middle of the second chunk's payload.
    let path = recording(&env, flipped);
    let mut bytes = std::fs::read(&path).unwrap();
    let r = chunk_ranges(&bytes)[1].clone();
    assert!(chunk_ranges(&bytes).len() >= 4, "expected several chunks");
    bytes[(r.start + r.end) / 2] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    // 2. A file cut in the middle of its last chunk.
    let path = recording(&env, truncated);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();

    // 3. A dropped middle chunk.
    let path = recording(&env, dropped);
    let bytes = std::fs::read(&path).unwrap();
    let r = chunk_ranges(&bytes)[2].clone();
    let mut cut = bytes[..r.start].to_vec();
    cut.extend_from_slice(&bytes[r.end..]);
    std::fs::write(&path, &cut).unwrap();

    // 4. The seal chunk removed whole (a clean cut at a chunk boundary).
    let path = recording(&env, unsealed);
    let bytes = std::fs::read(&path).unwrap();
    let last = chunk_ranges(&bytes).last().unwrap().clone();
    std::fs::write(&path, &bytes[..last.start]).unwrap();

    // 5. A session deleted from the database (row and recording both).
    env.sql(
        &format!(
            "DELETE FROM sessions WHERE id = '{deleted}'; DELETE FROM channels WHERE session_id = '{deleted}';"
        ),
    );
    std::fs::remove_file(recording(&env, deleted)).unwrap();

    // 6. Who/where edited in the database.
    env.sql(&format!(
        "UPDATE sessions SET person = 'mallory', client_addr = '10.9.9.9:1' WHERE id = '{edited}'"
    ));

    let v = env.kw(&["verify", "--all"]);
    assert_eq!(v.status.code(), Some(1));
    let report = String::from_utf8_lossy(&v.stdout).into_owned();
    let line = |id: &str| report.lines().filter(|l| l.contains(id)).collect::<Vec<_>>().join("\n");
    assert!(
        line(flipped).contains("chunk 1 at byte") && line(flipped).contains("hash chain broken"),
        "{report}"
    );
    assert!(line(truncated).contains("truncated"), "{report}");
    assert!(line(dropped).contains("chunk 2 missing (found chunk 3)"), "{report}");
    assert!(
        line(unsealed)
            .contains("recording truncated: database says closed but the recording has no seal"),
        "{report}"
    );
    assert!(line(deleted).contains("session deleted from the database (ledger entry"), "{report}");
    assert!(
        line(edited).contains("user is \"mallory\" but the signed recording says \"alice\""),
        "{report}"
    );
    assert!(line(edited).contains("client address"), "{report}");

    // Verifying one session by id works the same way, and without the vault key.
    std::fs::remove_file(env.data().join("vault.key")).unwrap();
    let one = env.kw(&["verify", flipped]);
    assert_eq!(one.status.code(), Some(1));
    let fine =
        ids.iter().find(|i| ![flipped, truncated, dropped, unsealed, deleted, edited].contains(i));
    assert!(fine.is_none());
}

/// The gateway verifies everything on a schedule (`[verify] interval_s`): an edited row is
/// found without anyone running `verify`, audited as a failed verify naming the session (what
/// the event feed, syslog and webhooks carry), and counted in the metrics.
#[test]
fn the_scheduled_verify_finds_an_edited_row() {
    let env = TestEnv::new().target("web01").config("interval_s = 86400", "interval_s = 1").start();
    let out = env.ssh("alice@web01").arg("echo sealed").output().unwrap();
    assert!(out.status.success());
    let id = env.sealed_sessions(1)[0]["id"].as_str().unwrap().to_owned();
    let round = |needle: &str| {
        let needle = needle.to_owned();
        wait_for(&format!("a scheduled verify saying {needle:?}"), GATEWAY_TIMEOUT, || {
            let audit = env.json(&["audit", "--action", "recordings_verified", "--json"]);
            audit.as_array().unwrap().iter().find_map(|e| {
                let by_scheduler = e["actor"].as_str().unwrap().starts_with("scheduler:");
                let detail = e["detail"].as_str().unwrap();
                (by_scheduler && detail.contains(&needle)).then(|| e.clone())
            })
        })
    };
    // The console's banner: what /me says to an auditor (and never to a user).
    let token = |args: &[&str]| format!("Bearer {}", env.kw_ok(args).trim());
    let auditor = token(&["token", "create", "--name", "a", "--role", "auditor"]);
    let user = token(&["token", "create", "--name", "u", "--role", "user", "--person", "alice"]);
    let alert = |bearer: &str| {
        let (status, _, body) = http(&env, "GET", "/api/v1/me", &[("Authorization", bearer)], None);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["verify_alert"].clone()
    };
    round("1 checked, 0 problem(s)");
    assert!(alert(&auditor).is_null(), "a clean round raises no banner");
    env.sql(&format!("UPDATE sessions SET target_host = 'elsewhere:22' WHERE id = '{id}'"));
    let found = round("database row edited: target host");
    assert_eq!(found["session"], id.as_str(), "{found}");
    assert!(found["detail"].as_str().unwrap().starts_with("scheduled: 1 checked, 1 problem(s)"));
    round("1 checked, 1 problem(s)");
    let shown = alert(&auditor);
    assert!(shown["detail"].as_str().unwrap().contains("1 problem(s)"), "{shown}");
    assert!(shown["by"].as_str().unwrap().starts_with("scheduler:"), "{shown}");
    assert!(alert(&user).is_null(), "a user is not told about other people's recordings");
}

/// `keepwatch drill`: random sessions found by searching one of their commands, replayed to
/// the end and verified, each step timed, the result audited; a damaged recording fails it.
#[test]
fn the_drill_finds_replays_and_verifies_sessions_and_fails_on_a_damaged_one() {
    let env = TestEnv::new().target("web01").start();
    for n in 1..=2 {
        let out =
            env.ssh("alice@web01").arg(format!("echo drill-run-{n}-$((6*7))")).output().unwrap();
        assert!(out.status.success());
    }
    for s in env.sealed_sessions(2) {
        env.wait_indexed(s["id"].as_str().unwrap());
    }
    let report = env.json(&["drill", "--sessions", "5", "--json"]);
    assert_eq!(report["passed"], true, "{report}");
    let sessions = report["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "only two sessions exist: {report}");
    for s in sessions {
        assert!(s["searched_for"].as_str().unwrap().starts_with("echo drill-run-"), "{s}");
        assert_eq!(
            (&s["found"], &s["replayed"], &s["intact"]),
            (&true.into(), &true.into(), &true.into())
        );
        assert!(s["events"].as_u64().unwrap() > 3 && s["search_ms"].as_f64().is_some(), "{s}");
    }
    let audit = env.json(&["audit", "--action", "drill_run", "--json"]);
    assert!(audit[0]["detail"].as_str().unwrap().contains("2 session(s) drilled: 2 found"));
    // Each replay is a look, audited like any other.
    assert!(env.kw_ok(&["audit", "--action", "recording_replayed"]).contains("drill"));

    // A flipped byte in one recording: the drill fails and says which.
    let id = env.sessions()[0]["id"].as_str().unwrap().to_owned();
    let path = recording(&env, &id);
    let mut bytes = std::fs::read(&path).unwrap();
    let r = chunk_ranges(&bytes)[1].clone();
    bytes[(r.start + r.end) / 2] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let out = env.kw(&["drill", "--sessions", "2"]);
    assert!(!out.status.success());
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(said.contains(&format!("keepwatch: session {id}:")), "{said}");
    assert!(said.contains("2 session(s) drilled: 1 found, replayed and verified"), "{said}");
}
