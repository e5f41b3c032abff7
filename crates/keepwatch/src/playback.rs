//! Replay in the terminal and export to asciicast v2.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use keepwatch_core::{Look, SessionId};
use keepwatch_recording::{Event, RecordingTail, TimedEvent};
use keepwatch_store::Store;

use crate::datadir::DataDir;
use keepwatch_web::playback::{AsciicastWriter, pick_channel};

#[derive(Args)]
pub(crate) struct ReplayArgs {
    id: SessionId,
    /// Playback speed factor (2 = twice as fast).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Cap every pause at this many seconds.
    #[arg(long, value_name = "SECS")]
    idle_limit: Option<f64>,
    /// Which channel to play (default: the first terminal channel, or the channel of
    /// `--at-command`).
    #[arg(long)]
    channel: Option<u32>,
    /// Start at this offset (`+1:02.500` as `search` and `show` print it, `H:MM:SS`, or
    /// seconds): what came before is drawn at once, so the screen is as it was then.
    #[arg(long, value_name = "OFFSET", conflicts_with = "at_command")]
    at: Option<String>,
    /// Start at command N of `keepwatch show ID` (the `#N` of a search hit).
    #[arg(long, value_name = "N")]
    at_command: Option<u32>,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    /// asciicast v2 (asciinema play, asciinema-player).
    Asciicast,
    /// One JSON object per database statement: its offset, text, parameters, outcome and
    /// the transaction status after it (database sessions).
    Jsonl,
}

#[derive(Args)]
pub(crate) struct ExportArgs {
    id: SessionId,
    #[arg(long, value_enum)]
    format: Format,
    /// Write here instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Include what the person typed as "i" events.
    #[arg(long)]
    input: bool,
    /// Which channel to export (default: the first terminal channel).
    #[arg(long)]
    channel: Option<u32>,
}

/// Pieces a recording is read in: memory holds one piece and its events, never the whole.
const PIECE: u64 = 1 << 20;

/// The events of a recording (sealed or live) a batch at a time, read in pieces from the
/// spool or the archive, without an audit event of their own: the caller audits the view
/// it is part of. A chunk still being written at the end of a live recording is left out.
pub(crate) struct EventReader {
    blobs: keepwatch_store::BlobStore,
    id: SessionId,
    tail: RecordingTail,
    done: bool,
}

impl EventReader {
    /// A reader of session `id`'s recording, opening it with its data key from `store` when
    /// it is encrypted.
    pub(crate) async fn new(dir: &DataDir, store: &Store, id: SessionId) -> anyhow::Result<Self> {
        let key = store
            .recording_key(id)
            .await
            .with_context(|| format!("cannot decrypt the recording of session {id}"))?;
        Ok(EventReader { blobs: dir.blobs()?, id, tail: RecordingTail::new(key), done: false })
    }

    /// The events of the next piece's whole chunks; `None` at the end.
    pub(crate) async fn next(&mut self) -> anyhow::Result<Option<Vec<TimedEvent>>> {
        let id = self.id;
        while !self.done {
            let piece = self
                .blobs
                .read_recording_range(id, self.tail.read_offset(), PIECE)
                .await
                .with_context(|| format!("cannot read the recording of session {id}"))?;
            if piece.is_empty() {
                self.done = true;
                break;
            }
            let mut out = Vec::new();
            self.tail.push(&piece, &mut out).with_context(|| {
                format!("recording of session {id} is damaged (run `keepwatch verify {id}`)")
            })?;
            if !out.is_empty() {
                return Ok(Some(out));
            }
        }
        Ok(None)
    }
}

/// The channel to play as [`pick_channel`] chooses it, from the channel openings read in
/// pieces (stopping as soon as the choice is certain).
async fn choose_channel(
    dir: &DataDir,
    id: SessionId,
    asked: Option<u32>,
) -> anyhow::Result<Option<(u32, u32, u32, Option<String>)>> {
    let mut opens = Vec::new();
    let mut reader = EventReader::new(dir, &dir.store().await?, id).await?;
    while let Some(batch) = reader.next().await? {
        for e in batch {
            if let Event::ChannelOpen { channel, pty, .. } = &e.event {
                let certain = match asked {
                    Some(c) => *channel == c,
                    None => pty.is_some(),
                };
                opens.push(e);
                if certain {
                    return Ok(pick_channel(&opens, asked));
                }
            }
        }
    }
    Ok(pick_channel(&opens, asked))
}

/// Audits the look at session `id`, then returns its row.
async fn look(
    dir: &DataDir,
    id: SessionId,
    look: Look,
    detail: &str,
) -> anyhow::Result<keepwatch_store::SessionRow> {
    let store = dir.store().await?;
    crate::sessions::look(&store, id, look, detail).await
}

/// One line for an event; data events show their size, not their bytes.
pub(crate) fn describe(e: &Event) -> String {
    match e {
        Event::SessionStart(s) => {
            format!("session start {}@{} from {}", s.user, s.target, s.client_addr)
        }
        Event::ChannelOpen { channel, kind, pty } => {
            let what = match kind {
                keepwatch_core::ChannelKind::Shell => "shell".to_owned(),
                keepwatch_core::ChannelKind::Exec { command } => {
                    format!("exec {:?}", String::from_utf8_lossy(command))
                }
                keepwatch_core::ChannelKind::Subsystem { name } => format!("subsystem {name}"),
            };
            let pty = pty
                .as_ref()
                .map(|p| format!(" pty {} {}x{}", p.term, p.cols, p.rows))
                .unwrap_or_default();
            format!("#{channel} open {what}{pty}")
        }
        Event::Output { channel, data } => format!("#{channel} output {} bytes", data.len()),
        Event::ExtOutput { channel, data } => format!("#{channel} stderr {} bytes", data.len()),
        Event::Input { channel, data } => format!("#{channel} input {} bytes", data.len()),
        Event::Resize { channel, cols, rows } => format!("#{channel} resize {cols}x{rows}"),
        Event::Eof { channel, direction } => format!("#{channel} eof {direction:?}"),
        Event::ChannelClose { channel, exit_status, exit_signal } => {
            format!("#{channel} close exit {exit_status:?} signal {exit_signal:?}")
        }
        Event::Notice { channel, text } => {
            format!("{} notice {text}", channel.map(|c| format!("#{c}")).unwrap_or_default())
        }
        Event::Context { reason } => format!("reason {reason}"),
        Event::Seal(s) => {
            let tail = s
                .unsigned_tail
                .map(|t| {
                    let after = t.after_seq.map_or("the start".into(), |s| format!("chunk {s}"));
                    format!(
                        "; {} bytes ({} events) after {after} were never signed before this seal",
                        t.bytes, t.events
                    )
                })
                .unwrap_or_default();
            format!(
                "seal {}{}{tail}",
                s.status,
                s.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
            )
        }
        Event::Env { channel, name, value, forwarded } => {
            let refused = if *forwarded { "" } else { " (refused)" };
            format!("#{channel} env {name}={value:?}{refused}")
        }
        Event::TunnelOpen { channel, host, port, originator } => {
            format!("#{channel} tunnel to {host}:{port} from {originator}")
        }
        Event::TunnelClose { channel, bytes_to_target, bytes_to_client } => {
            format!(
                "#{channel} tunnel closed ({bytes_to_target} bytes out, {bytes_to_client} back)"
            )
        }
        Event::FileOperation { channel, op, path, target_path, result } => {
            let to = target_path.as_ref().map(|t| format!(" -> {t:?}")).unwrap_or_default();
            format!("#{channel} {op} {path:?}{to}: {result}")
        }
        Event::FileTransfer(t) => {
            let hash = t.sha256.map(|h| h.iter().map(|b| format!("{b:02x}")).collect::<String>());
            format!(
                "#{} {} {:?} {} bytes size {:?} sha256 {} ranges {:?}{}",
                t.channel,
                if t.upload { "upload" } else { "download" },
                t.path,
                t.bytes,
                t.size,
                hash.unwrap_or_else(|| "-".into()),
                t.ranges,
                if t.complete { "" } else { " (partial)" }
            )
        }
        Event::Rows(r) => {
            let more =
                if r.left_out > 0 { format!(" (+{} not kept)", r.left_out) } else { String::new() };
            format!("#{} rows of statement {}: {} kept{more}", r.channel, r.seq, r.rows.len())
        }
        Event::Statement(st) => {
            let how = if st.extended { "extended" } else { "simple" };
            let params = if st.params.is_empty() {
                String::new()
            } else {
                let shown: Vec<String> = st
                    .params
                    .iter()
                    .map(|p| p.as_deref().map_or("NULL".into(), |v| format!("{v:?}")))
                    .collect();
                format!(" params [{}]", shown.join(", "))
            };
            format!("#{} statement {} ({how}) {:?}{params}", st.channel, st.seq, st.text)
        }
        Event::StatementResult(r) => format!("#{} statement {}: {}", r.channel, r.seq, r.outcome),
        Event::Transaction { channel, status } => {
            format!("#{channel} transaction {}", status.as_str())
        }
    }
}

pub(crate) async fn export(dir: &DataDir, a: ExportArgs) -> anyhow::Result<ExitCode> {
    let format = match a.format {
        Format::Asciicast => "asciicast",
        Format::Jsonl => "jsonl",
    };
    let detail = match &a.output {
        Some(path) => format!("{format} to {}", path.display()),
        None => format!("{format} to standard output"),
    };
    let row = look(dir, a.id, Look::Export, &detail).await?;
    let ch = choose_channel(dir, a.id, a.channel).await?.map_or(0, |c| c.0);
    let mut writer = match a.format {
        Format::Asciicast => Some(AsciicastWriter::new(Some(ch), row.started_at_us, a.input)),
        Format::Jsonl => None,
    };
    let mut statements = StatementLines::default();
    let mut file = match &a.output {
        Some(path) => Some(crate::output::NewFile::create(path)?),
        None => None,
    };
    let mut stdout = std::io::stdout().lock();
    let mut put = |text: &str| -> anyhow::Result<()> {
        match &mut file {
            Some(f) => f.write(text.as_bytes()),
            None => stdout.write_all(text.as_bytes()).context("cannot write to standard output"),
        }
    };
    let mut reader = EventReader::new(dir, &dir.store().await?, a.id).await?;
    let mut text = String::new();
    while let Some(batch) = reader.next().await? {
        text.clear();
        match &mut writer {
            Some(w) => w.events(&batch, &mut text),
            None => statements.events(&batch, row.started_at_us, &mut text),
        }
        put(&text)?;
    }
    text.clear();
    match &mut writer {
        Some(w) => w.finish(&mut text),
        None => statements.finish(row.started_at_us, &mut text),
    }
    put(&text)?;
    if let Some(f) = file {
        f.commit()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `export --format jsonl`: a line per statement once its outcome is known (or the
/// recording ends), in the order they were sent.
#[derive(Default)]
struct StatementLines {
    /// Sent, waiting for an outcome: seq, offset, the line so far.
    waiting: std::collections::BTreeMap<u64, serde_json::Value>,
    /// Answered, waiting for the transaction status that follows (written only on change).
    answered: Vec<serde_json::Value>,
    transaction: Option<&'static str>,
}

impl StatementLines {
    fn events(
        &mut self,
        events: &[keepwatch_recording::TimedEvent],
        started_at_us: i64,
        out: &mut String,
    ) {
        for e in events {
            match &e.event {
                Event::Statement(st) => {
                    let line = serde_json::json!({
                        "seq": st.seq,
                        "offset_us": e.at_us,
                        "at": crate::output::rfc3339(started_at_us + e.at_us as i64),
                        "protocol": if st.extended { "extended" } else { "simple" },
                        "text": st.text,
                        "params": st.params,
                    });
                    self.waiting.insert(st.seq, line);
                }
                Event::StatementResult(r) => {
                    let Some(mut line) = self.waiting.remove(&r.seq) else { continue };
                    let start = line["offset_us"].as_u64().unwrap_or(e.at_us);
                    line["duration_us"] = e.at_us.saturating_sub(start).into();
                    match &r.outcome {
                        keepwatch_recording::Outcome::Done { tag, rows } => {
                            line["outcome"] = "ok".into();
                            line["tag"] = tag.clone().into();
                            line["rows"] = (*rows).into();
                        }
                        keepwatch_recording::Outcome::Failed { sqlstate, message } => {
                            line["outcome"] = "error".into();
                            line["sqlstate"] = sqlstate.clone().into();
                            line["message"] = message.clone().into();
                        }
                        other => line["outcome"] = other.to_string().into(),
                    }
                    self.answered.push(line);
                    continue;
                }
                Event::Rows(r) => {
                    // A simple query's statements share a seq: their rows add up.
                    if let Some(line) = self.waiting.get_mut(&r.seq) {
                        line["columns"] = serde_json::json!(r.columns);
                        let mut rows = line["result_rows"].as_array().cloned().unwrap_or_default();
                        rows.extend(r.rows.iter().map(|row| serde_json::json!(row)));
                        line["result_rows"] = rows.into();
                        let left_out = line["result_rows_left_out"].as_u64().unwrap_or(0);
                        line["result_rows_left_out"] = (left_out + r.left_out).into();
                    }
                    continue;
                }
                Event::Transaction { status, .. } => self.transaction = Some(status.as_str()),
                _ => {}
            }
            self.flush(out);
        }
    }

    /// Writes the answered statements with the transaction status after them.
    fn flush(&mut self, out: &mut String) {
        for mut line in self.answered.drain(..) {
            line["transaction"] = self.transaction.into();
            out.push_str(&line.to_string());
            out.push('\n');
        }
    }

    fn finish(&mut self, _started_at_us: i64, out: &mut String) {
        self.flush(out);
        for (_, mut line) in std::mem::take(&mut self.waiting) {
            line["outcome"] = "no result recorded".into();
            self.answered.push(line);
        }
        self.flush(out);
    }
}

/// Where `--at`/`--at-command` start (microseconds), and the channel of the command.
async fn replay_start(dir: &DataDir, a: &ReplayArgs) -> anyhow::Result<(u64, Option<u32>)> {
    if let Some(at) = &a.at {
        return Ok((crate::search::parse_offset(at)?, None));
    }
    let Some(n) = a.at_command else {
        return Ok((0, None));
    };
    let commands = dir.store().await?.commands(a.id).await?;
    match commands.iter().find(|c| c.seq == n) {
        Some(c) => Ok((c.start_offset_us, Some(c.channel))),
        None => bail!(
            "session {} has no command {n} (it has {}; `keepwatch show {}` lists them)",
            a.id,
            commands.len(),
            a.id
        ),
    }
}

pub(crate) async fn replay(dir: &DataDir, a: ReplayArgs) -> anyhow::Result<ExitCode> {
    if !(a.speed > 0.0 && a.speed.is_finite()) {
        bail!("--speed must be a positive number");
    }
    let (start_us, command_channel) = replay_start(dir, &a).await?;
    look(dir, a.id, Look::Replay, "replay").await?;
    let Some((ch, ..)) = choose_channel(dir, a.id, a.channel.or(command_channel)).await? else {
        bail!("session {} has no channel to replay", a.id);
    };
    let mut out = std::io::stdout().lock();
    let mut last = start_us;
    let mut reader = EventReader::new(dir, &dir.store().await?, a.id).await?;
    while let Some(batch) = reader.next().await? {
        for e in &batch {
            // Output, or a database session's statements and outcomes as psql shows them.
            let Some(data) = e.event.shown_on(ch) else { continue };
            let mut pause = e.at_us.saturating_sub(last.max(start_us)) as f64 / 1e6 / a.speed;
            if let Some(limit) = a.idle_limit {
                pause = pause.min(limit);
            }
            last = e.at_us;
            if pause > 0.0 {
                out.flush().ok();
                tokio::time::sleep(Duration::from_secs_f64(pause)).await;
            }
            out.write_all(&data).context("cannot write to standard output")?;
        }
    }
    out.flush().ok();
    Ok(ExitCode::SUCCESS)
}
