//! Writing anchors (`keepwatch_recording::anchor`): at least every interval, the ledger's
//! head, the audit trail's head and every live recording's latest signed checkpoint, signed,
//! appended to a file outside the data directory and/or sent to syslog.
//!
//! The recorder tasks post each checkpoint they sign on the [`CheckpointBoard`]; the anchor
//! task reads it. Neither waits on the other: the board is touched once per checkpoint.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use keepwatch_core::SessionId;
use keepwatch_recording::anchor::{Anchor, LiveHead};
use keepwatch_store::now_us;
use tokio_util::sync::CancellationToken;

use crate::RecorderContext;

/// The latest signed checkpoint of every live recording of this gateway.
#[derive(Debug, Default)]
pub struct CheckpointBoard(Mutex<HashMap<SessionId, (u64, [u8; 32])>>);

impl CheckpointBoard {
    pub(crate) fn set(&self, id: SessionId, seq: u64, head: [u8; 32]) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(id, (seq, head));
    }

    pub(crate) fn remove(&self, id: SessionId) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }

    /// The heads now, by session id.
    pub fn snapshot(&self) -> Vec<LiveHead> {
        let mut v: Vec<LiveHead> = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(&session, &(seq, head))| LiveHead { session, seq, head })
            .collect();
        v.sort_by_key(|l| l.session);
        v
    }
}

/// Where anchors go.
#[derive(Debug, Clone)]
pub struct AnchorConfig {
    /// Appended to (one line per anchor); best kept append-only (`chattr +a`) on a path the
    /// gateway's data directory does not contain.
    pub file: Option<PathBuf>,
    /// Ask the filesystem to make `file` append-only when the gateway starts.
    pub protect_file: bool,
    /// Also sent to the local syslog socket (`/dev/log`), for a collector elsewhere.
    pub syslog: Option<PathBuf>,
    /// How often, at most.
    pub interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("cannot read the store for an anchor: {0}")]
    Store(#[from] keepwatch_store::StoreError),
    #[error("cannot append the anchor to {path}: {source}")]
    File { path: String, source: std::io::Error },
    #[error("cannot send the anchor to syslog at {path}: {source}")]
    Syslog { path: String, source: std::io::Error },
}

/// Signs and writes one anchor now (to the database, the file and syslog); returns it.
///
/// # Errors
/// The store cannot be read or a sink cannot be written (the others are still tried).
pub async fn write_anchor(
    ctx: &RecorderContext,
    cfg: &AnchorConfig,
) -> Result<Anchor, AnchorError> {
    let ledger = ctx.store.ledger_head().await?;
    let audit = ctx.store.audit_head().await?;
    let anchor = Anchor {
        at_us: now_us(),
        ledger_entries: ledger.map_or(0, |(n, _)| n),
        ledger_head: ledger.map(|(_, h)| h),
        audit_last_id: audit.map_or(0, |(id, _)| id),
        audit_head: audit.map(|(_, h)| h),
        live: ctx.checkpoints.snapshot(),
    };
    let line = anchor.to_line(&ctx.signing_key);
    let mut first_err = None;
    // The database keeps every node's anchors in one place (the copies that matter against
    // someone who can rewrite the database are the file's and syslog's).
    if let Err(e) = ctx.store.add_anchor(&ctx.node, anchor.at_us, &line).await {
        first_err = Some(AnchorError::Store(e));
    }
    if let Some(path) = &cfg.file {
        let r = tokio::task::block_in_place(|| {
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
            f.write_all(format!("{line}\n").as_bytes())?;
            f.sync_data()
        });
        if let Err(source) = r {
            first_err = Some(AnchorError::File { path: path.display().to_string(), source });
        }
    }
    if let Some(path) = &cfg.syslog {
        // RFC 3164 over the local socket: facility auth, severity notice.
        let msg = format!("<37>keepwatch[{}]: {line}", std::process::id());
        let r = std::os::unix::net::UnixDatagram::unbound()
            .and_then(|s| s.send_to(msg.as_bytes(), path).map(|_| ()));
        if let Err(source) = r {
            let e = AnchorError::Syslog { path: path.display().to_string(), source };
            first_err.get_or_insert(e);
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(anchor),
    }
}

/// Writes an anchor every `cfg.interval` until `shutdown`, and a last one then. Failures
/// are logged (the gateway goes on: an anchor is evidence, not a precondition).
pub async fn run_anchors(ctx: RecorderContext, cfg: AnchorConfig, shutdown: CancellationToken) {
    if let Some(path) = cfg.file.as_ref().filter(|_| cfg.protect_file) {
        make_append_only(path);
    }
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.cancelled() => true,
        };
        if let Err(e) = write_anchor(&ctx, &cfg).await {
            tracing::error!(error = %e, "anchor not written");
        }
        if last {
            return;
        }
    }
}

/// Best effort: creates the anchor file and asks the filesystem to let it only grow
/// (`chattr +a`, which needs root and a filesystem that has the attribute). Says so when it
/// cannot.
fn make_append_only(path: &std::path::Path) {
    if let Err(e) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        tracing::error!(path = %path.display(), error = %e, "cannot create the anchor file");
        return;
    }
    let done = std::process::Command::new("chattr")
        .arg("+a")
        .arg(path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !done {
        tracing::warn!(
            path = %path.display(),
            "could not make the anchor file append-only (chattr +a needs root and a filesystem that supports it); protect it another way or send anchors to syslog"
        );
    }
}
