//! Drives `/usr/lib/openssh/sftp-server` through an [`SftpTracker`] with the request
//! patterns OpenSSH's `sftp` uses (pipelined 32 KiB reads and writes, the short-read resend,
//! reget), and checks the events, the hashes and what reached the disk.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use expect_test::{Expect, expect};
use keepwatch_sftp::{Output, SftpEvent, SftpTracker, TransferPolicy};
use sha2::{Digest, Sha256};

const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";
const CHUNK: u32 = 32 * 1024;

const READ: u32 = 0x01;
const WRITE: u32 = 0x02;
const CREAT: u32 = 0x08;
const TRUNC: u32 = 0x10;

fn packet(ty: u8, fields: &[&[u8]]) -> Vec<u8> {
    let body: Vec<u8> =
        std::iter::once(&[ty][..]).chain(fields.iter().copied()).flatten().copied().collect();
    [&(body.len() as u32).to_be_bytes()[..], &body].concat()
}

fn u32b(v: u32) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

fn u64b(v: u64) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

fn s(b: &[u8]) -> Vec<u8> {
    [&(b.len() as u32).to_be_bytes()[..], b].concat()
}

/// One server process, the tracker in front of it, and what the client side received.
struct Session {
    child: Child,
    stdin: ChildStdin,
    from_server: Receiver<Vec<u8>>,
    tracker: SftpTracker,
    out: Output,
    /// Bytes that reached the client (forwarded answers and Keepwatch's own), unframed.
    client_inbox: Vec<u8>,
    events: Vec<SftpEvent>,
    next_id: u32,
    dir: PathBuf,
}

impl Session {
    fn start(policy: TransferPolicy, dir: &Path) -> Session {
        assert!(
            Path::new(SFTP_SERVER).exists(),
            "{SFTP_SERVER} is missing: install it with `apt-get install openssh-sftp-server` \
             (scripts/test.sh installs openssh-server, which depends on it)"
        );
        let mut child = Command::new(SFTP_SERVER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sftp-server");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            // Whatever sizes the pipe hands over: the tracker must frame across them.
            let mut buf = vec![0; 7000];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut session = Session {
            child,
            stdin,
            from_server: rx,
            tracker: SftpTracker::new(policy),
            out: Output::default(),
            client_inbox: Vec::new(),
            events: Vec::new(),
            next_id: 1,
            dir: dir.to_path_buf(),
        };
        let version = session.exchange(&[packet(1, &[&u32b(3)])]);
        assert_eq!(version[0][4], 2, "VERSION");
        session
    }

    fn id(&mut self) -> Vec<u8> {
        self.next_id += 1;
        u32b(self.next_id)
    }

    fn path(&self, name: &str) -> Vec<u8> {
        s(self.dir.join(name).to_str().expect("utf-8 temp dir").as_bytes())
    }

    /// Sends the requests through the tracker and collects one answer per request as the
    /// client would see it (the target's, or Keepwatch's refusal).
    fn exchange(&mut self, requests: &[Vec<u8>]) -> Vec<Vec<u8>> {
        for r in requests {
            // In two pieces, as SSH channel data may split it.
            let (a, b) = r.split_at(r.len() / 2);
            for piece in [a, b] {
                self.tracker.from_client(piece, &mut self.out);
                self.stdin.write_all(&self.out.forward).expect("write to sftp-server");
                self.client_inbox.extend_from_slice(&self.out.reply);
                self.events.append(&mut self.out.events);
                assert!(!self.out.close_channel);
                self.out.clear();
            }
        }
        let mut answers = Vec::new();
        while answers.len() < requests.len() {
            if let Some(p) = take_packet(&mut self.client_inbox) {
                answers.push(p);
                continue;
            }
            let bytes = self
                .from_server
                .recv_timeout(Duration::from_secs(20))
                .expect("sftp-server answered within 20 s");
            self.tracker.from_server(&bytes, &mut self.out);
            self.client_inbox.extend_from_slice(&self.out.forward);
            assert!(self.out.reply.is_empty());
            self.events.append(&mut self.out.events);
            self.out.clear();
        }
        answers
    }

    fn open(&mut self, name: &str, pflags: u32) -> Vec<u8> {
        let (id, path) = (self.id(), self.path(name));
        let answer = self.exchange(&[packet(3, &[&id, &path, &u32b(pflags), &u32b(0)])]).remove(0);
        assert_eq!(answer[4], 102, "HANDLE for {name}");
        answer[13..].to_vec()
    }

    fn close(&mut self, handle: &[u8]) {
        let id = self.id();
        self.exchange(&[packet(4, &[&id, &s(handle)])]);
    }

    /// `sftp put`: pipelined writes of 32 KiB.
    fn put(&mut self, name: &str, content: &[u8]) {
        let h = self.open(name, WRITE | CREAT | TRUNC);
        let writes: Vec<Vec<u8>> = content
            .chunks(CHUNK as usize)
            .enumerate()
            .map(|(i, chunk)| {
                let id = self.id();
                packet(6, &[&id, &s(&h), &u64b(i as u64 * u64::from(CHUNK)), &s(chunk)])
            })
            .collect();
        for answer in self.exchange(&writes) {
            assert_eq!(&answer[4..5], &[101], "STATUS");
        }
        self.close(&h);
    }

    /// `sftp get` (or `reget` from `from`): pipelined reads of 32 KiB to past the end, then
    /// the resend of the short read's remainder, which gets EOF. Returns the bytes read.
    fn get(&mut self, name: &str, from: u64, size: u64) -> Vec<u8> {
        let stat = {
            let (id, path) = (self.id(), self.path(name));
            packet(17, &[&id, &path])
        };
        self.exchange(&[stat]);
        let h = self.open(name, READ);
        let fstat = {
            let id = self.id();
            packet(8, &[&id, &s(&h)])
        };
        self.exchange(&[fstat]);
        let mut reads = Vec::new();
        let mut offset = from;
        while offset < size + 2 * u64::from(CHUNK) {
            let id = self.id();
            reads.push(packet(5, &[&id, &s(&h), &u64b(offset), &u32b(CHUNK)]));
            offset += u64::from(CHUNK);
        }
        let mut got = Vec::new();
        for answer in self.exchange(&reads) {
            if answer[4] == 103 {
                got.extend_from_slice(&answer[13..]);
            }
        }
        let resend = {
            let id = self.id();
            packet(5, &[&id, &s(&h), &u64b(from + got.len() as u64), &u32b(CHUNK)])
        };
        let eof = self.exchange(&[resend]).remove(0);
        assert_eq!((eof[4], &eof[9..13]), (101, &1u32.to_be_bytes()[..]), "EOF status");
        self.close(&h);
        got
    }

    fn simple(&mut self, ty: u8, fields: &[&[u8]]) -> Vec<u8> {
        let id = self.id();
        let mut all: Vec<&[u8]> = vec![&id];
        all.extend_from_slice(fields);
        self.exchange(&[packet(ty, &all)]).remove(0)
    }

    /// The events so far, one line each, with the temp dir shown as `$DIR`.
    fn transcript(&mut self) -> String {
        let mut out = Output::default();
        self.tracker.finish(&mut out);
        self.events.append(&mut out.events);
        let dir = self.dir.to_str().unwrap_or_default().to_string();
        self.events.iter().map(|e| format!("{e}\n").replace(&dir, "$DIR")).collect()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn take_packet(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    if buf.len() < 4 {
        return None;
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if buf.len() < 4 + len {
        return None;
    }
    Some(buf.drain(..4 + len).collect())
}

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("sftp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ (i >> 11) as u8).collect()
}

fn sha_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn check(session: &mut Session, expected: Expect) {
    expected.assert_eq(&session.transcript());
}

/// A 300,000-byte file up, down, resumed down, then renamed, listed and removed.
#[test]
fn transfers_with_the_real_server() {
    let dir = temp_dir("transfers");
    let file = content(300_000);
    let mut session = Session::start(TransferPolicy::default(), &dir);

    session.put("up.bin", &file);
    assert_eq!(std::fs::read(dir.join("up.bin")).expect("uploaded file"), file);

    let got = session.get("up.bin", 0, file.len() as u64);
    assert_eq!(got, file);
    let tail = session.get("up.bin", 100_000, file.len() as u64);
    assert_eq!(tail, file[100_000..]);

    let (from, to, gone, sub) = (
        session.path("up.bin"),
        session.path("moved.bin"),
        session.path("gone"),
        session.path("sub"),
    );
    session.simple(18, &[&from, &to]);
    session.simple(13, &[&gone]);
    session.simple(14, &[&sub, &u32b(0)]);
    let posix_rename = s(b"posix-rename@openssh.com");
    session.simple(200, &[&posix_rename, &to, &session.path("final.bin")]);
    let dir_path = session.path("");
    let opendir = session.simple(11, &[&dir_path]);
    let dh = s(&opendir[13..]);
    while session.simple(12, &[&dh])[4] == 104 {}
    session.simple(4, &[&dh]);
    session.simple(15, &[&sub]);

    let sha = sha_hex(&file);
    let transcript = session.transcript();
    assert_eq!(transcript.matches(&sha).count(), 2, "upload and download hashed:\n{transcript}");
    expect![[r#"
        open "$DIR/up.bin" flags=WRITE|CREAT|TRUNC: ok
        upload "$DIR/up.bin" bytes=300000 size=300000 sha256=SHA ranges=[0..300000] complete
        stat "$DIR/up.bin": ok
        open "$DIR/up.bin" flags=READ: ok
        fstat "$DIR/up.bin": ok
        download "$DIR/up.bin" bytes=300000 size=300000 sha256=SHA ranges=[0..300000] complete
        stat "$DIR/up.bin": ok
        open "$DIR/up.bin" flags=READ: ok
        fstat "$DIR/up.bin": ok
        download "$DIR/up.bin" bytes=200000 size=300000 ranges=[100000..300000] incomplete
        rename "$DIR/up.bin" -> "$DIR/moved.bin": ok
        remove "$DIR/gone": status NO_SUCH_FILE "No such file"
        mkdir "$DIR/sub": ok
        extended "posix-rename@openssh.com" "$DIR/moved.bin" -> "$DIR/final.bin": ok
        opendir "$DIR/": ok
        rmdir "$DIR/sub": ok
    "#]]
    .assert_eq(&transcript.replace(&sha, "SHA"));
    assert!(dir.join("final.bin").exists());
}

/// Without uploads, nothing reaches the disk; with a size limit, the download stops at it.
#[test]
fn policy_with_the_real_server() {
    let dir = temp_dir("policy");
    std::fs::write(dir.join("big.bin"), content(200_000)).expect("write big.bin");

    let mut session =
        Session::start(TransferPolicy { upload: false, ..TransferPolicy::default() }, &dir);
    let (id, path) = (session.id(), session.path("new.bin"));
    let denied =
        session.exchange(&[packet(3, &[&id, &path, &u32b(WRITE | CREAT | TRUNC), &u32b(0)])]);
    assert_eq!(denied[0][4], 101, "STATUS");
    let sub = session.path("sub");
    session.simple(14, &[&sub, &u32b(0)]);
    let big = session.path("big.bin");
    session.simple(13, &[&big]);
    check(
        &mut session,
        expect![[r#"
            open "$DIR/new.bin" flags=WRITE|CREAT|TRUNC: denied: uploads are not allowed on this target
            mkdir "$DIR/sub": denied: changing files is not allowed on this target
            remove "$DIR/big.bin": denied: changing files is not allowed on this target
        "#]],
    );
    assert!(
        !dir.join("new.bin").exists() && !dir.join("sub").exists() && dir.join("big.bin").exists()
    );

    let mut session = Session::start(
        TransferPolicy { max_file_size: Some(100_000), ..TransferPolicy::default() },
        &dir,
    );
    let h = session.open("big.bin", READ);
    let reads: Vec<Vec<u8>> = (0..7u64)
        .map(|i| {
            let id = session.id();
            packet(5, &[&id, &s(&h), &u64b(i * u64::from(CHUNK)), &u32b(CHUNK)])
        })
        .collect();
    let answers = session.exchange(&reads);
    let kinds: Vec<u8> = answers.iter().map(|a| a[4]).collect();
    assert_eq!(kinds, [103, 103, 103, 101, 101, 101, 101], "three DATA, then refusals");
    session.close(&h);
    check(
        &mut session,
        expect![[r#"
            open "$DIR/big.bin" flags=READ: ok
            read "$DIR/big.bin": denied: files over 100000 bytes are not allowed on this target
            download "$DIR/big.bin" bytes=98304 ranges=[0..98304] incomplete
        "#]],
    );
}
