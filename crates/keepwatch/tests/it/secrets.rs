//! Secrets typed at password prompts never reach disk: the recording holds a marker.

use keepwatch_recording::Event;

use crate::support::*;

/// Every file under `dir`, recursively.
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(files(&p)) } else { out.push(p) }
    }
    out
}

/// Ctrl-C, then waits for the shell's next prompt (the tty flushes what was typed before).
fn interrupt(s: &mut Interactive) {
    let prompts = s.output().matches("$ ").count();
    s.send("\x03");
    s.wait_output_times("$ ", prompts + 1);
}

#[test]
fn input_at_password_prompts_is_recorded_as_a_marker() {
    let env = TestEnv::new().target("web01").start();
    let secrets = [
        "Tr0ub4dor&3-one",
        "c0rrect-h0rse-two",
        "sudo-s3cret-three",
        "passwd-s3cret-four",
        "keygen-phrase-five",
        "keygen-phrase-again",
        "nested-ssh-s3cret-six",
        "mysql-s3cret-seven",
    ];

    let mut s = env.interactive("alice@web01");
    s.send("echo ready-$((40+2))\n");
    s.wait_output("ready-42");
    // The prompt is built at run time so its text is not in the echoed command line.
    s.send("read -s -p \"$(echo Pass)word: \" X; echo; echo got-${#X}\n");
    s.wait_output("Password: ");
    s.send(&format!("{}\n", secrets[0]));
    s.wait_output("got-15");
    s.send("su -c true root\n");
    s.wait_output_times("Password: ", 2);
    s.send(&format!("{}\n", secrets[1]));
    s.wait_output("Authentication failure");
    // Each prompt is answered with a wrong secret: the tools refuse, the prompt is what counts.
    s.send("sudo -k true\n");
    s.wait_output("password for kwtest: ");
    s.send(&format!("{}\n", secrets[2]));
    s.wait_output("try again");
    interrupt(&mut s);
    s.send("passwd\n");
    s.wait_output("urrent password: ");
    s.send(&format!("{}\n", secrets[3]));
    s.wait_output("passwd: ");
    s.send("ssh-keygen -q -t ed25519 -f /tmp/kw-secret-test-$$ </dev/tty\n");
    s.wait_output("Enter passphrase");
    s.send(&format!("{}\n", secrets[4]));
    s.wait_output("Enter same passphrase again: ");
    s.send(&format!("{}\n", secrets[5]));
    s.wait_output("do not match");
    interrupt(&mut s);
    let nested = format!(
        "ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o PubkeyAuthentication=no -p {} kwtest@127.0.0.1 true\n",
        env.sshd().port
    );
    s.send(&nested);
    s.wait_output("kwtest@127.0.0.1's password: ");
    s.send(&format!("{}\n", secrets[6]));
    s.wait_output("Permission denied");
    interrupt(&mut s);
    s.send("mysql -h 127.0.0.1 -u kw-nobody -p\n");
    s.wait_output("Enter password: ");
    s.send(&format!("{}\n", secrets[7]));
    s.wait_output("ERROR");
    // Secrets the target prints, built at run time so the typed line does not hold them.
    s.send("printf '%s%s\\n' AKIA IOSFODNN7EXAMPLE\n");
    s.wait_output("AKIAIOSFODNN7EXAMPLE");
    s.send("printf -- '-----BEGIN %s PRIVATE KEY-----\\n%s%s\\n-----END %s PRIVATE KEY-----\\n' OPENSSH S3CR3T KEYMATERIAL OPENSSH\n");
    s.wait_output("-----END OPENSSH PRIVATE KEY-----");
    s.send("echo after-$((1+1))\nexit\n");
    let (status, stdout, _) = s.finish();
    assert!(
        !String::from_utf8_lossy(&stdout).contains(secrets[0]),
        "the target does not echo it either"
    );
    assert!(status.code().is_some());
    let id = env.sealed_sessions(1)[0]["id"].as_str().unwrap().to_owned();

    // Indexed first, so the files searched below include the index.
    env.wait_indexed(&id);

    // The decoded recording: markers where the secrets were, the commands around them intact.
    let bytes = std::fs::read(env.data().join("recordings").join(format!("{id}.kwr"))).unwrap();
    let mut typed = Vec::new();
    let mut everything = Vec::new();
    for e in keepwatch_recording::read_events(&bytes, env.data_key(&id).as_ref()).unwrap() {
        match e.event {
            Event::Input { data, .. } => {
                typed.extend_from_slice(&data);
                everything.extend_from_slice(&data);
            }
            Event::Output { data, .. } | Event::ExtOutput { data, .. } => {
                everything.extend_from_slice(&data)
            }
            _ => {}
        }
    }
    let typed = String::from_utf8_lossy(&typed);
    assert!(typed.contains("[redacted 16 bytes]"), "{typed}");
    assert!(typed.contains("[redacted 18 bytes]"), "{typed}");
    assert!(typed.contains("echo after-$((1+1))"), "{typed}");
    let everything = String::from_utf8_lossy(&everything);
    assert!(everything.contains("[masked aws-access-key]"), "{everything}");
    assert!(everything.contains("[masked private-key]"), "{everything}");
    let printed = ["AKIAIOSFODNN7EXAMPLE", "S3CR3TKEYMATERIAL"];
    for secret in secrets.into_iter().chain(printed) {
        assert!(!everything.contains(secret), "{secret} is in the recording");
        for f in files(&env.data()) {
            let raw = std::fs::read(&f).unwrap();
            assert!(
                !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in {}",
                f.display()
            );
        }
        assert!(!env.log().contains(secret), "{secret} in the gateway log");
    }
    // The index holds what the recording holds: the commands, not the secrets.
    let hits = env.json(&["search", "--json", "echo after-$((1+1))"]);
    assert!(!hits["hits"].as_array().unwrap().is_empty(), "the session is indexed: {hits}");
    for secret in secrets.into_iter().chain(printed) {
        let hits = env.json(&["search", "--json", secret]);
        assert_eq!(hits["hits"], serde_json::json!([]), "{secret} is searchable: {hits}");
    }
    let masked = env.json(&["search", "--json", "[masked private-key]"]);
    assert!(!masked["hits"].as_array().unwrap().is_empty(), "the mask itself is found: {masked}");
    let cast = env.kw_ok(&["export", &id, "--format", "asciicast", "--input"]);
    assert!(cast.contains("[redacted 16 bytes]"), "the export shows where the secret was");
}
