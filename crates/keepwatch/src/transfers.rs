//! `keepwatch transfers`: files moved across sessions, by person, target, path or hash, and
//! `keepwatch transfers get`: the content a grant kept, exactly as it moved.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use futures::TryStreamExt;
use keepwatch_core::{Look, SessionId};
use keepwatch_recording::{CaptureError, CaptureOpener, Direction, Event, TimedEvent};
use keepwatch_store::{ContentCapture, TransferFilter, TransferRow};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::datadir::{DataDir, to_hex};
use crate::output::{NewFile, print_json, rfc3339, safe, table};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct TransfersArgs {
    #[command(subcommand)]
    command: Option<TransfersCommand>,
    #[command(flatten)]
    list: ListArgs,
}

#[derive(Subcommand)]
enum TransfersCommand {
    /// Write the content a transfer moved (kept under `grant --capture-content`) to a file,
    /// after checking it against the SHA-256 in the recording. Audited.
    Get {
        /// The transfer's ID (the first column of `keepwatch transfers`).
        id: i64,
        /// Where to write the content.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Args)]
struct ListArgs {
    /// Only this person's sessions.
    #[arg(long, value_name = "U")]
    user: Option<String>,
    /// Only sessions to this target.
    #[arg(long, value_name = "T")]
    target: Option<String>,
    /// Only paths matching this pattern (`*` matches anything, including `/`).
    #[arg(long, value_name = "GLOB")]
    path: Option<String>,
    /// Only files with this SHA-256 ("who ever moved this file?").
    #[arg(long, value_name = "HEX")]
    sha256: Option<String>,
    #[arg(long)]
    json: bool,
}

pub(crate) fn transfer_json(t: &TransferRow) -> Value {
    let content = match &t.capture {
        None => Value::Null,
        Some(ContentCapture::Captured { bytes }) => json!({"kept": true, "bytes": bytes}),
        Some(ContentCapture::Skipped { reason }) => json!({"kept": false, "reason": reason}),
    };
    json!({
        "id": t.id, "session": t.session_id.to_string(), "channel": t.channel, "at": rfc3339(t.at_us),
        "protocol": t.protocol, "path": t.path, "direction": if t.upload { "upload" } else { "download" },
        "bytes": t.bytes, "size": t.size, "sha256": t.sha256, "complete": t.complete,
        "ranges": t.ranges.iter().map(|(a, b)| json!([a, b])).collect::<Vec<_>>(),
        "content": content,
    })
}

/// The table headers that go with [`transfer_cells`].
pub(crate) const TRANSFER_HEADERS: [&str; 8] =
    ["ID", "AT", "VIA", "DIRECTION", "PATH", "BYTES", "SHA-256", "CONTENT"];

/// `kept`, `not kept: why`, or `-` when the grant keeps no copies.
fn content_cell(t: &TransferRow) -> String {
    match &t.capture {
        None => "-".into(),
        Some(ContentCapture::Captured { .. }) => "kept".into(),
        Some(ContentCapture::Skipped { reason }) => format!("not kept: {reason}"),
    }
}

pub(crate) fn transfer_cells(t: &TransferRow) -> Vec<String> {
    vec![
        t.id.to_string(),
        rfc3339(t.at_us),
        t.protocol.clone(),
        if t.upload { "upload" } else { "download" }.into(),
        t.path.clone(),
        t.bytes.to_string(),
        match (&t.sha256, t.complete) {
            (Some(h), true) => h.clone(),
            _ => format!(
                "partial {}",
                t.ranges.iter().map(|(a, b)| format!("{a}-{b}")).collect::<Vec<_>>().join(",")
            ),
        },
        content_cell(t),
    ]
}

pub(crate) async fn run(dir: &DataDir, a: TransfersArgs) -> anyhow::Result<ExitCode> {
    match a.command {
        Some(TransfersCommand::Get { id, out }) => get(dir, id, &out).await,
        None => list(dir, a.list).await,
    }
}

async fn list(dir: &DataDir, a: ListArgs) -> anyhow::Result<ExitCode> {
    let store = dir.store().await?;
    let filter = TransferFilter {
        person: a.user,
        target: a.target,
        session: None,
        sha256: a.sha256.map(|h| h.to_ascii_lowercase()),
        path: a.path,
    };
    let rows: Vec<TransferRow> = store.transfers(&filter).await?;
    if a.json {
        print_json(&Value::Array(rows.iter().map(transfer_json).collect()));
    } else {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|t| {
                let mut c = transfer_cells(t);
                c.insert(1, t.session_id.to_string());
                c
            })
            .collect();
        let mut headers = TRANSFER_HEADERS.to_vec();
        headers.insert(1, "SESSION");
        table(&headers, &cells);
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a transfer's kept content to `out`, checked against the SHA-256 its signed
/// recording holds (never the database row's: someone who can edit the database could make
/// a changed copy match it).
async fn get(dir: &DataDir, id: i64, out: &Path) -> anyhow::Result<ExitCode> {
    let store = dir.store().await?;
    let t = store
        .transfer(id)
        .await?
        .with_context(|| format!("transfer {id} not found (see `keepwatch transfers`)"))?;
    match &t.capture {
        Some(ContentCapture::Captured { .. }) => {}
        Some(ContentCapture::Skipped { reason }) => {
            bail!("transfer {id}: its content was not kept ({})", safe(reason))
        }
        None => bail!(
            "transfer {id}: its content was not kept; grants keep copies of new transfers with \
             `keepwatch grant USER TARGET --capture-content`"
        ),
    }
    let detail = format!("transfer {id} {:?} to {}", t.path, out.display());
    crate::sessions::look(&store, t.session_id, Look::CaptureDownload, &detail).await?;
    let recorded = recorded_capture_of(dir, &store, t.session_id, id).await?;
    let recorded_hex = to_hex(&recorded.sha256);
    if t.sha256.as_deref() != Some(recorded_hex.as_str()) {
        eprintln!(
            "keepwatch: warning: the database row of transfer {id} says SHA-256 {}, its signed recording {recorded_hex}: the row was changed (run `keepwatch verify --all`); checking against the recording",
            safe(t.sha256.as_deref().unwrap_or("none"))
        );
    }
    // A session recorded under a data key has its copies sealed under it too.
    let data_key = store
        .recording_key(t.session_id)
        .await
        .with_context(|| format!("cannot decrypt the kept content of transfer {id}"))?;
    let mut opener = data_key.map(|k| CaptureOpener::new(k, &t.session_id));
    let not_open = |e: CaptureError| {
        anyhow::anyhow!(
            "transfer {id}: the kept content does not open under session {}'s key: {e}; the stored copy was changed, so nothing was written",
            t.session_id
        )
    };
    let mut pieces = dir.blobs()?.capture(t.session_id, id).await?;
    let mut file = NewFile::create(out)?;
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    let mut plain = Vec::new();
    let mut keep = |plain: &[u8], file: &mut NewFile| -> anyhow::Result<()> {
        hasher.update(plain);
        file.write(plain)?;
        written += plain.len() as u64;
        Ok(())
    };
    while let Some(piece) = pieces.try_next().await? {
        match &mut opener {
            Some(o) => {
                plain.clear();
                o.push(&piece, &mut plain).map_err(not_open)?;
                keep(&plain, &mut file)?;
            }
            None => keep(&piece, &mut file)?,
        }
    }
    if let Some(o) = opener {
        plain.clear();
        o.finish(&mut plain).map_err(not_open)?;
        keep(&plain, &mut file)?;
    }
    let got = to_hex(&hasher.finalize());
    if got != recorded_hex || written != recorded.bytes {
        // `file` is dropped uncommitted: the new file goes, `out` stays as it was.
        bail!(
            "transfer {id}: the kept content ({written} bytes) has SHA-256 {got}, the recording says {recorded_hex} ({} bytes); the stored copy was changed, so nothing was written",
            recorded.bytes
        );
    }
    file.commit()?;
    println!(
        "wrote {written} bytes to {} (the {} of {}, sha256 {got}, as recorded)",
        out.display(),
        if recorded.upload { "upload" } else { "download" },
        safe(&format!("{:?}", recorded.path))
    );
    Ok(ExitCode::SUCCESS)
}

/// What a session's signed recording says about the kept copy of transfer `id`. The
/// recording is read in pieces, twice: once for the transfers and notices (each channel's
/// other events reduced to one marker between them), once to verify it up to the same byte;
/// only events of chunks a signature vouches for count.
async fn recorded_capture_of(
    dir: &DataDir,
    store: &keepwatch_store::Store,
    session: SessionId,
    id: i64,
) -> anyhow::Result<RecordedCapture> {
    let key = dir.verifying_key()?;
    let blobs = dir.blobs()?;
    let damaged = || format!("recording of session {session} is damaged");
    let data_key = store
        .recording_key(session)
        .await
        .with_context(|| format!("cannot decrypt the recording of session {session}"))?;
    let mut tail = keepwatch_recording::RecordingTail::new(data_key);
    let mut kept: Vec<(u64, TimedEvent)> = Vec::new();
    let mut marked = std::collections::HashSet::new();
    let mut seq = 0u64;
    loop {
        let piece = blobs
            .read_recording_range(session, tail.read_offset(), 1 << 20)
            .await
            .with_context(|| format!("cannot read the recording of session {session}"))?;
        if piece.is_empty() {
            break;
        }
        tail.push_chunks(&piece, |_, events| {
            for e in events {
                let ch = channel_of(&e.event);
                match &e.event {
                    Event::FileTransfer(_) | Event::Notice { .. } => {
                        if let Some(c) = ch {
                            marked.remove(&c);
                        }
                        kept.push((seq, e.clone()));
                    }
                    // Only "something else came next on this channel" matters.
                    _ => {
                        if let Some(c) = ch
                            && marked.insert(c)
                        {
                            let marker = Event::Eof { channel: c, direction: Direction::ToTarget };
                            kept.push((seq, TimedEvent { at_us: e.at_us, event: marker }));
                        }
                    }
                }
            }
            seq += 1;
        })
        .with_context(damaged)?;
    }
    let whole = tail.consumed_offset();
    let verified = keepwatch_recorder::verify_recording(&blobs, &key, session, Some(whole))
        .await?
        .with_context(|| format!("the recording of session {session} is missing"))?
        .with_context(|| {
            format!(
                "the recording of session {session} does not verify (run `keepwatch verify {session}`)"
            )
        })?;
    if verified.start.session_id != session {
        bail!(
            "the recording filed under session {session} is of session {}",
            verified.start.session_id
        );
    }
    let signed: Vec<TimedEvent> = match verified.last_checkpoint_seq {
        Some(last) => kept.into_iter().filter(|(s, _)| *s <= last).map(|(_, e)| e).collect(),
        None => Vec::new(),
    };
    recorded_capture(&signed, id).map_err(|why| {
        anyhow::anyhow!(
            "transfer {id}: the signed recording of session {session} does not vouch for a kept copy of it ({why}); nothing was written"
        )
    })
}

/// A kept copy as its recording describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RecordedCapture {
    path: String,
    upload: bool,
    sha256: [u8; 32],
    bytes: u64,
}

/// The channel an event belongs to, if any.
fn channel_of(e: &Event) -> Option<u32> {
    match e {
        Event::ChannelOpen { channel, .. }
        | Event::Output { channel, .. }
        | Event::ExtOutput { channel, .. }
        | Event::Input { channel, .. }
        | Event::Resize { channel, .. }
        | Event::Eof { channel, .. }
        | Event::ChannelClose { channel, .. }
        | Event::TunnelOpen { channel, .. }
        | Event::TunnelClose { channel, .. }
        | Event::FileOperation { channel, .. } => Some(*channel),
        Event::Notice { channel, .. } => *channel,
        Event::FileTransfer(t) => Some(t.channel),
        _ => None,
    }
}

/// Finds transfer `id` in a recording: a whole `FileTransfer` with its SHA-256, followed next
/// on its channel by the gateway's notice `content of {upload|download} {path:?} kept as
/// transfer {id} ({bytes} bytes)` (keepwatch-ssh's `capture_note`). The notice is matched
/// against the text the transfer's own path gives, so nothing in a path can fake one.
fn recorded_capture(events: &[TimedEvent], id: i64) -> Result<RecordedCapture, String> {
    let mut found: Vec<RecordedCapture> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let Event::FileTransfer(ft) = &e.event else { continue };
        let Some(next) = events[i + 1..].iter().find(|n| channel_of(&n.event) == Some(ft.channel))
        else {
            continue;
        };
        let Event::Notice { text, .. } = &next.event else { continue };
        let dir = if ft.upload { "upload" } else { "download" };
        let prefix = format!("content of {dir} {:?} kept as transfer {id} (", ft.path);
        let Some(bytes) = text
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(" bytes)"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        match (ft.sha256, ft.complete) {
            (Some(sha256), true) => found.push(RecordedCapture {
                path: ft.path.clone(),
                upload: ft.upload,
                sha256,
                bytes,
            }),
            _ => return Err(format!("its transfer of {:?} is not recorded whole", ft.path)),
        }
    }
    match found.len() {
        0 => Err("no such kept copy in the signed part of the recording; a live session's last seconds are signed at its next checkpoint".into()),
        1 => Ok(found.remove(0)),
        n => Err(format!("{n} kept copies claim that id")),
    }
}

#[cfg(test)]
mod tests {
    use keepwatch_recording::FileTransfer;

    use super::*;

    fn transfer(channel: u32, path: &str, sha: u8, complete: bool) -> Event {
        Event::FileTransfer(FileTransfer {
            channel,
            path: path.into(),
            upload: true,
            bytes: 5,
            size: Some(5),
            sha256: complete.then_some([sha; 32]),
            ranges: vec![(0, 5)],
            complete,
        })
    }

    fn note(channel: u32, text: &str) -> Event {
        Event::Notice { channel: Some(channel), text: text.into() }
    }

    fn check(events: Vec<Event>, id: i64, expected: Result<u8, &str>) {
        let events: Vec<TimedEvent> = events
            .into_iter()
            .enumerate()
            .map(|(i, event)| TimedEvent { at_us: i as u64, event })
            .collect();
        let got = recorded_capture(&events, id).map(|r| r.sha256[0]);
        match (got, expected) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(e), Err(want)) => assert!(e.contains(want), "{e}"),
            (got, want) => panic!("got {got:?}, expected {want:?}"),
        }
    }

    /// Issue 9: the hash `transfers get` checks against comes from the signed pairing of
    /// a transfer and its note, nowhere else.
    #[test]
    fn the_recorded_hash_is_the_one_paired_with_the_note() {
        let kept = |ch, path: &str, id| {
            note(ch, &format!("content of upload {path:?} kept as transfer {id} (5 bytes)"))
        };
        check(vec![transfer(1, "/a", 7, true), kept(1, "/a", 3)], 3, Ok(7));
        // Another channel's events in between do not break the pair.
        check(
            vec![
                transfer(1, "/a", 7, true),
                Event::Output { channel: 0, data: b"x".to_vec() },
                kept(1, "/a", 3),
            ],
            3,
            Ok(7),
        );
        // The right id among several.
        check(
            vec![
                transfer(1, "/a", 7, true),
                kept(1, "/a", 3),
                transfer(1, "/b", 8, true),
                kept(1, "/b", 4),
            ],
            4,
            Ok(8),
        );
        // A note on another channel, for another path or another id is no pair.
        check(vec![transfer(1, "/a", 7, true), kept(2, "/a", 3)], 3, Err("no such kept copy"));
        check(vec![transfer(1, "/a", 7, true), kept(1, "/b", 3)], 3, Err("no such kept copy"));
        check(vec![transfer(1, "/a", 7, true), kept(1, "/a", 3)], 4, Err("no such kept copy"));
        // Something else on the channel between the transfer and the note breaks the pair.
        check(
            vec![
                transfer(1, "/a", 7, true),
                Event::Input { channel: 1, data: vec![] },
                kept(1, "/a", 3),
            ],
            3,
            Err("no such kept copy"),
        );
        // A path crafted to look like a note's tail does not fake one: it is quoted.
        let evil = "/x\" kept as transfer 3 (5 bytes)";
        check(vec![transfer(1, evil, 7, true), kept(1, "/x", 3)], 3, Err("no such kept copy"));
        // A partial transfer has no hash to check against.
        check(vec![transfer(1, "/a", 7, false), kept(1, "/a", 3)], 3, Err("not recorded whole"));
        // Two claims of one id are refused.
        check(
            vec![
                transfer(1, "/a", 7, true),
                kept(1, "/a", 3),
                transfer(1, "/a", 8, true),
                kept(1, "/a", 3),
            ],
            3,
            Err("2 kept copies"),
        );
    }
}
