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

#[test]
fn input_at_password_prompts_is_recorded_as_a_marker() {
    let sshd = Sshd::start();
    let mut gw = Gateway::new();
    gw.add_target("web01", &sshd);
    gw.start();
    let secrets = ["Tr0ub4dor&3-one", "c0rrect-h0rse-two"];

    let mut s = Interactive::start(gw.ssh("alice@web01"));
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
    s.send("echo after-$((1+1))\nexit\n");
    let (status, stdout, _) = s.finish();
    assert!(
        !String::from_utf8_lossy(&stdout).contains(secrets[0]),
        "the target does not echo it either"
    );
    assert!(status.code().is_some());
    let id = gw.sealed_sessions(1)[0]["id"].as_str().unwrap().to_owned();

    // The decoded recording: markers where the secrets were, the commands around them intact.
    let bytes = std::fs::read(gw.data().join("recordings").join(format!("{id}.kwr"))).unwrap();
    let mut typed = Vec::new();
    let mut everything = Vec::new();
    for e in keepwatch_recording::read_events(&bytes).unwrap() {
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
    for secret in secrets {
        assert!(!everything.contains(secret), "{secret} is in the recording");
        for f in files(&gw.data()) {
            let raw = std::fs::read(&f).unwrap();
            assert!(
                !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in {}",
                f.display()
            );
        }
        assert!(!gw.log.lock().unwrap().contains(secret), "{secret} in the gateway log");
    }
    let cast = gw.kw_ok(&["export", &id, "--format", "asciicast", "--input"]);
    assert!(cast.contains("[redacted 16 bytes]"), "the export shows where the secret was");
}
