//! `keepwatch transfers`: files moved across sessions, by person, target, path or hash, and
//! `keepwatch transfers get`: the content a grant kept, exactly as it moved.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use futures::TryStreamExt;
use keepwatch_core::{AuditAction, glob_match};
use keepwatch_store::{ContentCapture, TransferFilter, TransferRow};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::datadir::{DataDir, to_hex};
use crate::output::{print_json, rfc3339, table};
use crate::sessions::audit_view;

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
    };
    let rows: Vec<TransferRow> = store
        .transfers(&filter)
        .await?
        .into_iter()
        .filter(|t| a.path.as_ref().is_none_or(|p| glob_match(p, &t.path)))
        .collect();
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

/// Writes a transfer's kept content to `out`, checked against the recorded SHA-256.
async fn get(dir: &DataDir, id: i64, out: &Path) -> anyhow::Result<ExitCode> {
    let store = dir.store().await?;
    let t = store
        .transfer(id)
        .await?
        .with_context(|| format!("transfer {id} not found (see `keepwatch transfers`)"))?;
    match &t.capture {
        Some(ContentCapture::Captured { .. }) => {}
        Some(ContentCapture::Skipped { reason }) => {
            bail!("transfer {id}: its content was not kept ({reason})")
        }
        None => bail!(
            "transfer {id}: its content was not kept; grants keep copies of new transfers with \
             `keepwatch grant USER TARGET --capture-content`"
        ),
    }
    audit_view(
        &store,
        AuditAction::CaptureDownloaded,
        t.session_id,
        format!("transfer {id} {:?}", t.path),
    )
    .await?;
    let mut pieces = dir.blobs()?.capture(t.session_id, id).await?;
    let mut file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    while let Some(piece) = pieces.try_next().await? {
        hasher.update(&piece);
        file.write_all(&piece).with_context(|| format!("cannot write {}", out.display()))?;
        written += piece.len() as u64;
    }
    file.sync_all().with_context(|| format!("cannot write {}", out.display()))?;
    let got = to_hex(&hasher.finalize());
    if t.sha256.as_deref() != Some(got.as_str()) {
        let _ = std::fs::remove_file(out);
        bail!(
            "transfer {id}: the kept content has SHA-256 {got}, the recording says {}; the stored copy was changed, so nothing was written",
            t.sha256.as_deref().unwrap_or("none")
        );
    }
    println!("wrote {written} bytes to {} (sha256 {got}, as recorded)", out.display());
    Ok(ExitCode::SUCCESS)
}
