//! A COPY in progress: bytes counted and hashed until both sides are done with it.

use sha2::{Digest, Sha256};

use crate::event::{CopyDirection, CopyTransfer};

#[derive(Debug)]
pub(super) struct CopyState {
    direction: CopyDirection,
    bytes: u64,
    sha256: Sha256,
    started_us: u64,
    /// The client sent CopyDone or CopyFail (COPY FROM STDIN and both-ways copies).
    client_done: bool,
    client_failure: Option<String>,
    /// The server ended it: CommandComplete (with the row count) or ErrorResponse.
    server_done: bool,
    rows: Option<u64>,
    ended_us: u64,
}

impl CopyState {
    pub(super) fn new(direction: CopyDirection, now: u64) -> Self {
        CopyState {
            direction,
            bytes: 0,
            sha256: Sha256::new(),
            started_us: now,
            client_done: false,
            client_failure: None,
            server_done: false,
            rows: None,
            ended_us: now,
        }
    }

    /// Whether CopyData from the client belongs to it.
    pub(super) fn awaits_client(&self) -> bool {
        self.direction != CopyDirection::Out && !self.client_done
    }

    /// Whether CopyData from the server belongs to it.
    pub(super) fn awaits_server(&self) -> bool {
        self.direction != CopyDirection::In && !self.server_done
    }

    pub(super) fn is_server_done(&self) -> bool {
        self.server_done
    }

    pub(super) fn add(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        self.sha256.update(data);
    }

    pub(super) fn client_done(&mut self, failure: Option<String>) {
        self.client_done = true;
        self.client_failure = failure;
    }

    pub(super) fn server_done(&mut self, rows: Option<u64>, now: u64) {
        self.server_done = true;
        self.rows = rows;
        self.ended_us = now;
    }

    pub(super) fn into_event(self, now: u64) -> CopyTransfer {
        CopyTransfer {
            direction: self.direction,
            bytes: self.bytes,
            sha256: self.sha256.finalize().into(),
            rows: self.rows,
            client_failure: self.client_failure,
            started_us: self.started_us,
            ended_us: if self.server_done { self.ended_us } else { now },
        }
    }
}
