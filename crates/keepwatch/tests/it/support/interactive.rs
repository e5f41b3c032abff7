//! [`Interactive`]: an `ssh -tt` session driven like a person at a terminal.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{GATEWAY_TIMEOUT, wait_for};

/// An interactive `ssh -tt` session whose output is collected as it arrives.
pub(crate) struct Interactive {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
}

fn collect(mut r: impl Read + Send + 'static, buf: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
}

impl Interactive {
    /// `cmd` (an `ssh` command) with `-tt`, its output collected.
    pub(crate) fn start(mut cmd: Command) -> Interactive {
        cmd.arg("-tt").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take();
        let out: Arc<Mutex<Vec<u8>>> = Default::default();
        let err: Arc<Mutex<Vec<u8>>> = Default::default();
        collect(child.stdout.take().unwrap(), out.clone());
        collect(child.stderr.take().unwrap(), err.clone());
        Interactive { child, stdin, out, err }
    }

    pub(crate) fn send(&mut self, text: &str) {
        let s = self.stdin.as_mut().unwrap();
        s.write_all(text.as_bytes()).unwrap();
        s.flush().unwrap();
    }

    pub(crate) fn output(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    pub(crate) fn wait_output(&self, needle: &str) {
        self.wait_output_times(needle, 1);
    }

    /// Waits until `needle` has appeared `n` times in the output.
    pub(crate) fn wait_output_times(&self, needle: &str, n: usize) {
        wait_for(&format!("{needle:?} {n} time(s) in the session output"), GATEWAY_TIMEOUT, || {
            (self.output().matches(needle).count() >= n).then_some(())
        });
    }

    /// Waits for ssh to exit; returns its status, stdout bytes and stderr.
    pub(crate) fn finish(mut self) -> (ExitStatus, Vec<u8>, String) {
        let st = wait_for("ssh to exit", GATEWAY_TIMEOUT, || self.child.try_wait().unwrap());
        drop(self.stdin.take());
        // The reader threads end at EOF, right after the process exits. Both: the reason a
        // terminated session gives arrives on stderr, and reading it before its reader had
        // caught up was a flake under load (the message was there, the test read too early).
        wait_for("ssh output to drain", Duration::from_secs(10), || {
            (Arc::strong_count(&self.out) == 1 && Arc::strong_count(&self.err) == 1).then_some(())
        });
        let out = self.out.lock().unwrap().clone();
        (st, out, self.stderr())
    }
}
