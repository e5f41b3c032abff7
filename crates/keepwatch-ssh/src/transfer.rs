//! File-transfer channels: the SFTP subsystem and legacy `scp -t`/`scp -f` exec channels are
//! parsed at the gateway (keepwatch-sftp), so policy applies per request and the recording
//! holds each operation and each file's size and SHA-256 instead of the raw bytes.
//!
//! Under a grant that keeps content, each file's bytes are appended to a spool file as they
//! pass (straight from the bytes being forwarded) and moved into the blob store when the
//! transfer proves to be the whole file, or deleted when it does not.

use std::collections::HashMap;
use std::sync::Mutex;

use keepwatch_core::{ChannelKind, GrantPolicy, SessionId};
use keepwatch_recording::{DataKey, Event, FileTransfer};
use keepwatch_sftp::{
    Capture, ContentId, Output, ScpTracker, SftpEvent, SftpTracker, Transfer, TransferDirection,
    TransferPolicy,
};
use keepwatch_store::{BlobStore, CaptureWriter, ContentCapture, TransferRow, now_us};

use crate::connection::{ActiveSession, Connection};

enum Tracker {
    Sftp(SftpTracker),
    Scp(ScpTracker),
}

/// The tracker of one file-transfer channel, shared by its two pumps. The locks are held
/// only for the synchronous parse of one message or the write of its content, never across
/// an await.
pub(crate) struct FileChannel {
    tracker: Mutex<Tracker>,
    pub protocol: &'static str,
    /// Set when the grant keeps copies of file content.
    spools: Option<Spools>,
}

/// Where one channel's file content is spooled.
pub(crate) struct SpoolPlace {
    pub blobs: BlobStore,
    pub session: SessionId,
    pub channel: u32,
    /// The session's data key: copies are sealed under it (`None`: the session is recorded
    /// in clear, and so are its copies).
    pub key: Option<DataKey>,
}

/// Copies of file content being written on one channel, by the tracker's content id.
struct Spools {
    place: SpoolPlace,
    files: Mutex<HashMap<ContentId, Spool>>,
}

#[derive(Default)]
struct Spool {
    file: Option<CaptureWriter>,
    bytes: u64,
    /// The copy could not be written: why (the transfer goes on, uncaptured).
    failed: Option<String>,
}

impl FileChannel {
    /// A tracker when `kind` is a file-transfer channel, else `None` (plain relay).
    pub(crate) fn for_channel(
        kind: &ChannelKind,
        grant: &GrantPolicy,
        place: SpoolPlace,
    ) -> Option<FileChannel> {
        let policy = TransferPolicy {
            upload: grant.upload,
            download: grant.download,
            max_file_size: grant.max_file_size,
        };
        let (mut tracker, protocol) = match kind {
            ChannelKind::Subsystem { name } if name == "sftp" => {
                (Tracker::Sftp(SftpTracker::new(policy)), "sftp")
            }
            ChannelKind::Exec { command } => {
                (Tracker::Scp(ScpTracker::new(command, policy)?), "scp")
            }
            _ => return None,
        };
        if let Some(max) = grant.capture_content {
            tracker = match tracker {
                Tracker::Sftp(t) => Tracker::Sftp(t.with_capture(max)),
                Tracker::Scp(t) => Tracker::Scp(t.with_capture(max)),
            };
        }
        let spools =
            grant.capture_content.map(|_| Spools { place, files: Mutex::new(HashMap::new()) });
        Some(FileChannel { tracker: Mutex::new(tracker), protocol, spools })
    }

    /// Appends the content that passed in `out` to each file's spool. A failed write gives
    /// up on that file's copy, never on the transfer.
    pub(crate) fn spool_content(&self, out: &Output) {
        let Some(spools) = &self.spools else { return };
        if out.content.is_empty() {
            return;
        }
        let mut files = spools.files.lock().unwrap_or_else(|e| e.into_inner());
        tokio::task::block_in_place(|| {
            for piece in &out.content {
                let spool = files.entry(piece.id).or_default();
                if spool.failed.is_some() {
                    continue;
                }
                let file = spool.file.get_or_insert_with(|| spools.place.writer(piece.id));
                let data = &out.forward[piece.range.clone()];
                match file.append(data) {
                    Ok(()) => spool.bytes += data.len() as u64,
                    Err(e) => {
                        spool.file = None;
                        spool.failed = Some(e.to_string());
                    }
                }
            }
        });
    }

    /// Keeps the spooled copy of a transfer's content in the blob store as `transfer_id`, or
    /// deletes it, as its capture says; returns what became of it.
    async fn keep_or_discard(&self, capture: &Capture, transfer_id: i64) -> Option<ContentCapture> {
        let spools = self.spools.as_ref()?;
        let id = capture.id();
        let spool = spools.files.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        let spool = spool.unwrap_or_default();
        let place = &spools.place;
        let skipped = match (capture, &spool.failed) {
            (_, Some(failed)) => Some(failed.clone()),
            (Capture::Skipped { reason, .. }, None) => Some(reason.to_string()),
            (Capture::Whole(_), None) => None,
        };
        if let Some(reason) = skipped {
            drop(spool);
            if let Err(e) = place.blobs.discard_capture_spool(place.session, place.channel, id.0) {
                tracing::warn!(session_id = %place.session, error = %e, "cannot delete a capture spool");
            }
            return Some(ContentCapture::Skipped { reason });
        }
        let bytes = spool.bytes;
        // An empty file never opened its copy; a sealed one still gets its header and last
        // segment, so that what is stored opens as an empty file and nothing else.
        let file = spool.file.unwrap_or_else(|| place.writer(id));
        if let Err(e) = tokio::task::block_in_place(|| file.finish()) {
            let reason = e.to_string();
            let _ = place.blobs.discard_capture_spool(place.session, place.channel, id.0);
            return Some(ContentCapture::Skipped { reason });
        }
        match place.blobs.commit_capture(place.session, place.channel, id.0, transfer_id).await {
            Ok(_) => Some(ContentCapture::Captured { bytes }),
            Err(e) => {
                Some(ContentCapture::Skipped { reason: format!("cannot store the copy: {e}") })
            }
        }
    }

    fn with(&self, f: impl FnOnce(&mut Tracker, &mut Output)) -> Output {
        let mut out = Output::default();
        let mut t = self.tracker.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut t, &mut out);
        out
    }

    /// For legacy SCP, whether policy refuses the whole command before it runs: then the
    /// returned output holds the refusal for the client and the exec must not reach the target.
    pub(crate) fn refuse_at_start(&self) -> Option<Output> {
        let mut refused = false;
        let out = self.with(|t, out| {
            if let Tracker::Scp(s) = t {
                refused = s.start(out);
            }
        });
        refused.then_some(out)
    }

    pub(crate) fn client_bytes(&self, data: &[u8]) -> Output {
        self.with(|t, out| match t {
            Tracker::Sftp(s) => s.from_client(data, out),
            Tracker::Scp(s) => s.from_client(data, out),
        })
    }

    pub(crate) fn server_bytes(&self, data: &[u8]) -> Output {
        self.with(|t, out| match t {
            Tracker::Sftp(s) => s.from_server(data, out),
            Tracker::Scp(s) => s.from_server(data, out),
        })
    }

    pub(crate) fn finish(&self) -> Output {
        self.with(|t, out| match t {
            Tracker::Sftp(s) => s.finish(out),
            Tracker::Scp(s) => s.finish(out),
        })
    }
}

impl SpoolPlace {
    fn writer(&self, id: ContentId) -> CaptureWriter {
        self.blobs.capture_writer(self.session, self.channel, id.0, self.key.clone())
    }
}

/// Records a tracker's events and stores its transfers (keeping or discarding their content
/// copies when `files` spools them). Returns `Err` when the recording failed and the session
/// must end.
pub(crate) async fn record_events(
    conn: &Connection,
    s: &ActiveSession,
    channel: u32,
    files: Option<&FileChannel>,
    events: Vec<SftpEvent>,
) -> Result<(), ()> {
    let protocol = files.map_or("scp", |f| f.protocol);
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
                    id: 0,
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
                    capture: None,
                };
                let stored = conn.ctx.sessions.store.add_transfer(&row).await;
                if let Err(err) = &stored {
                    tracing::error!(session_id = %s.id, error = %err, "cannot store transfer");
                }
                let note = match (files, &t.capture, stored) {
                    (Some(files), Some(capture), Ok(id)) => {
                        capture_note(conn, s, files, &t, capture, id).await
                    }
                    _ => None,
                };
                conn.record(s, transfer_event(channel, t)).await?;
                if let Some(text) = note {
                    conn.record(s, Event::Notice { channel: Some(channel), text }).await?;
                }
                continue;
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

/// Keeps or discards a transfer's content copy, stores the outcome, and returns the notice
/// that says so in the recording.
async fn capture_note(
    conn: &Connection,
    s: &ActiveSession,
    files: &FileChannel,
    t: &Transfer,
    capture: &Capture,
    transfer_id: i64,
) -> Option<String> {
    let outcome = files.keep_or_discard(capture, transfer_id).await?;
    if let Err(e) = conn.ctx.sessions.store.record_capture(transfer_id, &outcome).await {
        tracing::error!(session_id = %s.id, error = %e, "cannot store a capture outcome");
    }
    let dir = match t.direction {
        TransferDirection::Upload => "upload",
        TransferDirection::Download => "download",
    };
    Some(match outcome {
        ContentCapture::Captured { bytes } => {
            format!("content of {dir} {:?} kept as transfer {transfer_id} ({bytes} bytes)", t.path)
        }
        ContentCapture::Skipped { reason } => {
            format!("content of {dir} {:?} not kept: {reason}", t.path)
        }
    })
}

fn transfer_event(channel: u32, t: Transfer) -> Event {
    Event::FileTransfer(FileTransfer {
        channel,
        path: t.path,
        upload: t.direction == TransferDirection::Upload,
        bytes: t.bytes,
        size: t.size,
        sha256: t.sha256,
        ranges: t.ranges,
        complete: t.complete,
    })
}
