//! Many sessions at once (issue 10's failure drills, short): every session's recording holds
//! exactly the bytes its client received. The full drill is `bash bench/drills.sh` (500
//! sessions for 10 minutes); this is its shape in the suite.

use std::collections::HashMap;
use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use keepwatch_recording::Event;

use crate::support::*;

const SESSIONS: usize = 30;
/// Lines per session, one every 50 ms: about 10 s of output each.
const LINES: usize = 200;

/// Numbered lines tagged with the session's name, paced without a process per line
/// (`read -t` on a pipe the shell holds both ends of), so 30 at once stay light.
fn producer(tag: &str) -> String {
    format!(
        "exec bash -c 'exec 3<> <(:); i=0; while ((i < {LINES})); do i=$((i + 1)); \
         printf \"KWD {tag} %d ................................................\\n\" $i; \
         read -t 0.05 -u 3; done; exit 0'"
    )
}

#[test]
fn thirty_sessions_with_steady_output_are_recorded_byte_for_byte() {
    let env = TestEnv::new().target("web01").start();

    let mut clients = Vec::new();
    for i in 0..SESSIONS {
        let tag = format!("s{i:02}");
        let child = env
            .ssh("alice@web01")
            .arg(producer(&tag))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        clients.push((tag, child));
    }
    // Every client's output, read as it comes (a full pipe would stall the session).
    let readers: Vec<_> = clients
        .iter_mut()
        .map(|(tag, child)| {
            let mut out = child.stdout.take().unwrap();
            let tag = tag.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                out.read_to_end(&mut buf).unwrap();
                (tag, buf)
            })
        })
        .collect();
    for (tag, child) in &mut clients {
        let st = wait_for(&format!("client {tag} to finish"), Duration::from_secs(180), || {
            child.try_wait().unwrap()
        });
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert!(st.success(), "client {tag}: {st:?} {err}");
    }
    let delivered: HashMap<String, Vec<u8>> =
        readers.into_iter().map(|r| r.join().unwrap()).collect();

    let sessions = env.sealed_sessions(SESSIONS);
    let mut seen = 0;
    for s in &sessions {
        assert_eq!(s["status"], "closed", "{s}");
        let id = s["id"].as_str().unwrap();
        let recorded: Vec<u8> = env
            .events(id)
            .into_iter()
            .filter_map(|e| match e {
                Event::Output { data, .. } => Some(data),
                _ => None,
            })
            .flatten()
            .collect();
        let text = String::from_utf8_lossy(&recorded);
        let tag = text.split(' ').nth(1).unwrap_or_else(|| panic!("session {id}: {text:.80}"));
        let got = &delivered[tag];
        assert_eq!(recorded.len(), got.len(), "session {id} ({tag}): recorded vs delivered bytes");
        assert!(recorded == *got, "session {id} ({tag}): the recording differs from the output");
        let last = format!("KWD {tag} {LINES} ");
        assert!(text.contains(&last), "session {id} ({tag}) ran to its last line");
        seen += 1;
    }
    assert_eq!(seen, SESSIONS);
    let v = env.kw(&["verify", "--all"]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
}
