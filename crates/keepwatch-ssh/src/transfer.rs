//! File-transfer channels: the SFTP subsystem and legacy `scp -t`/`scp -f` exec channels are
//! parsed at the gateway (keepwatch-sftp), so policy applies per request and the recording
//! holds each operation and each file's size and SHA-256 instead of the raw bytes.

use std::sync::Mutex;

use keepwatch_core::{ChannelKind, GrantPolicy};
use keepwatch_recording::{Event, FileTransfer};
use keepwatch_sftp::{
    Output, ScpTracker, SftpEvent, SftpTracker, TransferDirection, TransferPolicy,
};
use keepwatch_store::{TransferRow, now_us};

use crate::connection::{ActiveSession, Connection};

enum Tracker {
    Sftp(SftpTracker),
    Scp(ScpTracker),
}

/// The tracker of one file-transfer channel, shared by its two pumps. The lock is held
/// only for the synchronous parse of one message, never across an await.
pub(crate) struct FileChannel {
    tracker: Mutex<Tracker>,
    pub protocol: &'static str,
}

impl FileChannel {
    /// A tracker when `kind` is a file-transfer channel, else `None` (plain relay).
    pub fn for_channel(kind: &ChannelKind, grant: &GrantPolicy) -> Option<FileChannel> {
        let policy = TransferPolicy {
            upload: grant.upload,
            download: grant.download,
            max_file_size: grant.max_file_size,
        };
        let (tracker, protocol) = match kind {
            ChannelKind::Subsystem { name } if name == "sftp" => {
                (Tracker::Sftp(SftpTracker::new(policy)), "sftp")
            }
            ChannelKind::Exec { command } => {
                (Tracker::Scp(ScpTracker::new(command, policy)?), "scp")
            }
            _ => return None,
        };
        Some(FileChannel { tracker: Mutex::new(tracker), protocol })
    }

    fn with(&self, f: impl FnOnce(&mut Tracker, &mut Output)) -> Output {
        let mut out = Output::default();
        let mut t = self.tracker.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut t, &mut out);
        out
    }

    /// For legacy SCP, whether policy refuses the whole command before it runs: then the
    /// returned output holds the refusal for the client and the exec must not reach the target.
    pub fn refuse_at_start(&self) -> Option<Output> {
        let mut refused = false;
        let out = self.with(|t, out| {
            if let Tracker::Scp(s) = t {
                refused = s.start(out);
            }
        });
        refused.then_some(out)
    }

    pub fn client_bytes(&self, data: &[u8]) -> Output {
        self.with(|t, out| match t {
            Tracker::Sftp(s) => s.from_client(data, out),
            Tracker::Scp(s) => s.from_client(data, out),
        })
    }

    pub fn server_bytes(&self, data: &[u8]) -> Output {
        self.with(|t, out| match t {
            Tracker::Sftp(s) => s.from_server(data, out),
            Tracker::Scp(s) => s.from_server(data, out),
        })
    }

    pub fn finish(&self) -> Output {
        self.with(|t, out| match t {
            Tracker::Sftp(s) => s.finish(out),
            Tracker::Scp(s) => s.finish(out),
        })
    }
}

/// Records a tracker's events and stores its transfers. Returns `Err` when the recording
/// failed and the session must end.
pub(crate) async fn record_events(
    conn: &Connection,
    s: &ActiveSession,
    channel: u32,
    protocol: &str,
    events: Vec<SftpEvent>,
) -> Result<(), ()> {
    for e in events {
        let event = match e {
            SftpEvent::Operation { op, path, target_path, flags: _, result } => {
                Event::FileOperation {
                    channel,
                    op: op.to_string(),
                    path,
                    target_path,
                    result: result.to_string(),
                }
            }
            SftpEvent::Transfer(t) => {
                let upload = t.direction == TransferDirection::Upload;
                let row = TransferRow {
                    session_id: s.id,
                    channel,
                    at_us: now_us(),
                    protocol: protocol.to_owned(),
                    path: t.path.clone(),
                    upload,
                    bytes: t.bytes,
                    size: t.size,
                    sha256: t.sha256.map(|h| h.iter().map(|b| format!("{b:02x}")).collect()),
                    complete: t.complete,
                    ranges: t.ranges.clone(),
                };
                if let Err(err) = conn.ctx.store.add_transfer(&row).await {
                    tracing::error!(session_id = %s.id, error = %err, "cannot store transfer");
                }
                Event::FileTransfer(FileTransfer {
                    channel,
                    path: t.path,
                    upload,
                    bytes: t.bytes,
                    size: t.size,
                    sha256: t.sha256,
                    ranges: t.ranges,
                    complete: t.complete,
                })
            }
            SftpEvent::ProtocolError { direction, reason } => Event::Notice {
                channel: Some(channel),
                text: format!("{protocol} protocol error ({direction:?}): {reason}"),
            },
        };
        conn.record(s, event).await?;
    }
    Ok(())
}
