//! Encryption at rest with real sessions: what a person saw never reaches the disk in clear,
//! every reader (search, replay, export) works as before, `verify` needs no key, `rotate-key`
//! re-wraps the data keys (into an external KEK command standing in for a KMS), and
//! retention destroys a recording's key so a copy left on write-once storage stays unreadable.

use std::os::unix::fs::PermissionsExt as _;

use serde_json::Value;

use crate::support::*;

fn recording(env: &TestEnv, id: &str) -> std::path::PathBuf {
    env.data().join("recordings").join(format!("{id}.kwr"))
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Runs `echo MARKER` through the gateway; the new session's id (`n` sessions in all).
fn session(env: &TestEnv, marker: &str, n: usize) -> String {
    let out = env.ssh("alice@web01").arg(format!("echo {marker}")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = env.sealed_sessions(n)[0]["id"].as_str().unwrap().to_owned();
    env.wait_indexed(&id);
    id
}

fn found(env: &TestEnv, text: &str) -> Vec<String> {
    let hits: Value = env.json(&["search", "--json", text]);
    hits["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["session"].as_str().unwrap().to_owned())
        .collect()
}

/// A stand-in for a KMS client: wraps with AES-256 under a passphrase only it holds.
fn write_kek_command(env: &TestEnv) -> std::path::PathBuf {
    let pass = env.dir().join("kms.pass");
    std::fs::write(&pass, "kms-only-passphrase-7\n").unwrap();
    let script = env.dir().join("kms-wrap");
    let p = pass.display();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nset -e\n[ -n \"$KEEPWATCH_SESSION\" ]\ncase \"$1\" in\n\
             wrap) exec openssl enc -aes-256-cbc -pbkdf2 -salt -pass file:{p} ;;\n\
             unwrap) exec openssl enc -d -aes-256-cbc -pbkdf2 -pass file:{p} ;;\nesac\nexit 2\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    script
}

#[test]
fn recordings_are_encrypted_at_rest_and_read_as_before() {
    let mut env = TestEnv::new().target("web01").start();
    let marker = "kw-at-rest-$((6*7))";
    let shown = "kw-at-rest-42";
    let id = session(&env, marker, 1);

    // Nothing the person saw or typed is in the recording's bytes.
    let bytes = std::fs::read(recording(&env, &id)).unwrap();
    assert!(!contains(&bytes, shown) && !contains(&bytes, "kw-at-rest"), "plaintext on disk");
    let key = env.wrapped_key(&id).expect("a data key per recording");
    assert_eq!(key.kek, "vault");
    // Every reader opens it: search, export, show.
    assert_eq!(found(&env, shown), vec![id.clone()]);
    assert!(env.exported_output(&id).contains(shown));
    let events = env.events(&id);
    assert!(events.iter().any(
        |e| matches!(e, keepwatch_recording::Event::Output { data, .. } if contains(data, shown))
    ));

    // verify needs no key: with vault.key gone it still proves the recording intact, while
    // reading it says what it needs.
    env.stop();
    let vault = env.data().join("vault.key");
    let aside = env.dir().join("vault.key.aside");
    std::fs::rename(&vault, &aside).unwrap();
    let v = env.kw(&["verify", &id]);
    assert!(
        v.status.success(),
        "{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    let e = env.kw(&["export", &id, "--format", "asciicast"]);
    assert!(!e.status.success());
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(
        err.contains("cannot decrypt the recording") && err.contains("key-encryption key"),
        "{err}"
    );
    std::fs::rename(&aside, &vault).unwrap();
    env.start();

    // Rotation under the vault's KEK: every key wrapped again (fresh nonce), still readable.
    let r = env.json(&["rotate-key", "--json"]);
    assert_eq!((r["kek"].as_str(), r["rewrapped"].as_u64()), (Some("vault"), Some(1)), "{r}");
    assert_ne!(env.wrapped_key(&id).unwrap().wrapped, key.wrapped);
    assert!(env.exported_output(&id).contains(shown));

    // Into a KMS: with kek_command set, rotate-key moves every key under the command, and
    // new recordings are wrapped by it.
    env.stop();
    let script = write_kek_command(&env);
    let config = env.data().join("keepwatch.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(
        "encrypt = true\n",
        &format!("encrypt = true\nkek_command = [\"{}\"]\n", script.display()),
    );
    std::fs::write(&config, text).unwrap();
    env.start();
    let r = env.json(&["rotate-key", "--json"]);
    assert_eq!((r["kek"].as_str(), r["rewrapped"].as_u64()), (Some("command"), Some(1)), "{r}");
    assert_eq!(env.wrapped_key(&id).unwrap().kek, "command");
    let second = session(&env, "kw-second-$((2*3))", 2);
    assert_eq!(env.wrapped_key(&second).unwrap().kek, "command");
    assert_eq!(found(&env, "kw-second-6"), vec![second.clone()]);
    assert!(env.exported_output(&id).contains(shown));
    let audit = env.kw_ok(&["audit", "--action", "keys_rotated"]);
    assert_eq!(audit.matches("keys_rotated").count(), 2, "{audit}");

    // The KMS refuses (its passphrase is gone): reading fails and names the command.
    std::fs::remove_file(env.dir().join("kms.pass")).unwrap();
    env.stop();
    let e = env.kw(&["export", &second, "--format", "asciicast"]);
    assert!(!e.status.success());
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(err.contains("kms-wrap") && err.contains("unwrap exited"), "{err}");
}

#[test]
fn retention_destroys_the_data_key_so_a_copy_left_behind_stays_unreadable() {
    let env = TestEnv::new().target("web01").start();
    let id = session(&env, "kw-shred-$((5*5))", 1);
    // A copy the deletion cannot reach, as on write-once storage.
    let copy = std::fs::read(recording(&env, &id)).unwrap();
    assert!(env.wrapped_key(&id).is_some());

    env.kw_ok(&["retention", "add", "--all", "--keep", "1s"]);
    wait_for("the policy's second to pass", GATEWAY_TIMEOUT, || {
        let dry = env.json(&["retention", "apply", "--dry-run", "--json"]);
        (dry["kept"] == 0).then_some(())
    });
    let applied = env.kw_ok(&["retention", "apply"]);
    assert!(applied.contains(&format!("deleted {id}")), "{applied}");

    // The key is gone with the rows: the copy still proves intact, and cannot be read.
    assert!(env.wrapped_key(&id).is_none(), "the data key was destroyed");
    let pinned = std::fs::read_to_string(env.data().join("signing.pub")).unwrap();
    let key: [u8; 32] = (0..32)
        .map(|i| u8::from_str_radix(&pinned.trim()[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<u8>>()
        .try_into()
        .unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key).unwrap();
    keepwatch_recording::verify(&copy, &key).expect("the chain covers the ciphertext");
    let e = keepwatch_recording::read_events(&copy, None).unwrap_err();
    assert!(matches!(e, keepwatch_recording::ReadError::NoDataKey { .. }), "{e}");
    assert!(!contains(&copy, "kw-shred-25"));
    assert!(found(&env, "kw-shred-25").is_empty());
    let all = env.kw(&["verify", "--all"]);
    assert!(all.status.success(), "{}", String::from_utf8_lossy(&all.stdout));
}
