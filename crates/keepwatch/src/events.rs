//! The event feed (`[events]`): audit events and session summaries out to a JSON-lines
//! file, syslog and webhooks, for a SIEM (schema and semantics: `docs/events.md`).
//!
//! Each sink is its own task that tails the audit trail by id (`Store::audit_events_after`)
//! about once a second, whatever process wrote the events, and keeps the last id its sink
//! took in a cursor file in the data directory (`events/NAME.cursor`, replaced atomically),
//! so a restart resumes where it stopped: delivery is at least once, and receivers dedupe by
//! `id` (and `type`). Sessions never wait on the feed: it reads the database after the fact,
//! a sink that refuses holds only its own cursor (with backoff, memory bounded by one page
//! of events), and UDP syslog is fire-and-forget.

mod format;
mod sink;
mod webhook;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use keepwatch_store::{Store, StoredAudit};
use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use format::{OutEvent, SessionCounts, SyslogOrigin};
use sink::{FileSink, SyslogSink, Transport};
use webhook::Webhook;

/// Events read from the database at a time (the most a sink holds).
const PAGE: u32 = 100;
/// A sink that refused is tried again after a second, then twice as long each time, up to
/// this.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// At a stop, the feed sends what the last sessions' seals wrote for at most this long.
const FINAL_PASS: Duration = Duration::from_secs(3);

/// `[events]` in keepwatch.toml; everything off by default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct EventsSection {
    pub(crate) file: String,
    pub(crate) syslog: String,
    pub(crate) syslog_ca: String,
    pub(crate) syslog_facility: String,
    pub(crate) backfill: bool,
    pub(crate) interval_ms: u64,
    pub(crate) webhook: Vec<WebhookSection>,
}

impl Default for EventsSection {
    fn default() -> Self {
        EventsSection {
            file: String::new(),
            syslog: String::new(),
            syslog_ca: String::new(),
            syslog_facility: "authpriv".into(),
            backfill: false,
            interval_ms: 1000,
            webhook: Vec::new(),
        }
    }
}

/// One `[[events.webhook]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookSection {
    url: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default = "default_attempts")]
    max_attempts: u32,
    #[serde(default)]
    ca: String,
}

/// Without the secret, or the URL (its path may hold a token).
impl std::fmt::Debug for WebhookSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSection")
            .field("url", &"[redacted: may hold a token]")
            .field("secret", &"[redacted]")
            .field("events", &self.events)
            .field("max_attempts", &self.max_attempts)
            .field("ca", &self.ca)
            .finish()
    }
}

fn default_attempts() -> u32 {
    6
}

/// What a feed delivers to.
enum Sink {
    File(FileSink),
    Syslog(SyslogSink),
    Webhook(Box<Webhook>),
}

impl Sink {
    fn describe(&self) -> String {
        match self {
            Sink::File(s) => format!("file {}", s.describe()),
            Sink::Syslog(s) => format!("syslog {}", s.describe()),
            Sink::Webhook(w) => format!("webhook {}", w.describe()),
        }
    }

    /// `Ok(None)`: stopped while retrying (the batch is left for the next start).
    async fn deliver(
        &mut self,
        events: &[OutEvent],
        stop: &CancellationToken,
    ) -> Result<Option<()>, String> {
        match self {
            Sink::File(s) => s.deliver(events).await.map(Some),
            Sink::Syslog(s) => s.deliver(events).await.map(Some),
            Sink::Webhook(w) => Ok(w.deliver(events, stop).await),
        }
    }
}

/// One sink's feed: the tail of the audit trail, its cursor file, the sink.
struct Feed {
    store: Store,
    node: String,
    cursor: PathBuf,
    sink: Sink,
    interval: Duration,
    backfill: bool,
}

/// The feed's tasks, stopped together after the gateway has sealed its sessions.
pub(crate) struct Feeds {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Feeds {
    /// Lets each feed send what is in the trail now (at most `FINAL_PASS`), then stops it.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Starts a feed per configured sink (none when `[events]` names none). Settings that
/// cannot work (an unknown facility, a bad URL, an unreadable CA file) stop `run` here.
pub(crate) async fn start(
    cfg: &EventsSection,
    data_dir: &Path,
    store: &Store,
    node: &str,
) -> anyhow::Result<Feeds> {
    let mut sinks = Vec::new();
    if !cfg.file.is_empty() {
        sinks.push(("file".to_owned(), Sink::File(FileSink::new(&cfg.file))));
    }
    if !cfg.syslog.is_empty() {
        let url = sink::parse_syslog_url(&cfg.syslog).map_err(anyhow::Error::msg)?;
        let facility = cfg
            .syslog_facility
            .parse()
            .map_err(|e| anyhow::anyhow!("[events] syslog_facility: {e}"))?;
        let tls = match url.transport {
            Transport::Tls => Some(tls_settings(&cfg.syslog_ca, "[events] syslog_ca")?),
            _ if !cfg.syslog_ca.is_empty() => {
                bail!("[events] syslog_ca is set but syslog = {:?} is not tls://", cfg.syslog)
            }
            _ => None,
        };
        let origin = SyslogOrigin {
            facility,
            hostname: hostname(),
            procid: std::process::id(),
            node: node.to_owned(),
        };
        sinks.push(("syslog".to_owned(), Sink::Syslog(SyslogSink::new(url, tls, origin))));
    }
    for (n, w) in cfg.webhook.iter().enumerate() {
        // Named by its place, not its URL: paths often carry a token (Slack's do).
        let which = format!("[[events.webhook]] number {}", n + 1);
        let url = webhook::parse_url(&w.url).map_err(|e| anyhow::anyhow!("{which}: {e}"))?;
        if w.secret.is_empty() {
            bail!("{which}: no secret (receivers check the signature with it)");
        }
        let known: HashSet<&str> = keepwatch_core::AuditAction::ALL
            .iter()
            .map(|a| a.as_str())
            .chain([format::SESSION_SUMMARY])
            .collect();
        if let Some(unknown) = w.events.iter().find(|e| !known.contains(e.as_str())) {
            bail!("{which}: unknown event type {unknown:?} (docs/events.md lists them)");
        }
        let tls = if url.https { Some(tls_settings(&w.ca, &format!("{which} ca"))?) } else { None };
        // A cursor per URL, so reordering the webhooks keeps each one's place.
        let name = format!("webhook-{}", &blake3::hash(w.url.as_bytes()).to_hex()[..12]);
        let hook = Webhook {
            url,
            secret: keepwatch_core::Secret::new(w.secret.clone()),
            events: w.events.iter().cloned().collect(),
            max_attempts: w.max_attempts.max(1),
            tls,
            dropped: 0,
        };
        sinks.push((name, Sink::Webhook(Box::new(hook))));
    }
    let stop = CancellationToken::new();
    let dir = data_dir.join("events");
    if !sinks.is_empty() {
        std::fs::create_dir_all(&dir).with_context(|| {
            format!("cannot create the event cursors' directory {}", dir.display())
        })?;
    }
    let interval = Duration::from_millis(cfg.interval_ms.max(100));
    let mut tasks = Vec::new();
    for (name, sink) in sinks {
        eprintln!("keepwatch: sending events to {}", sink.describe());
        let feed = Feed {
            store: store.clone(),
            node: node.to_owned(),
            cursor: dir.join(format!("{name}.cursor")),
            sink,
            interval,
            backfill: cfg.backfill,
        };
        // Where to start is settled before `run` goes on, so a first start's "from now on"
        // is before anything this run audits (recovery, the first sessions).
        let first = tokio::time::timeout(Duration::from_secs(10), feed.start_cursor())
            .await
            .unwrap_or_else(|_| {
                Err(Start::Retry(anyhow::anyhow!("the database did not answer within 10 s")))
            });
        tasks.push(tokio::spawn(feed.run(first, stop.clone())));
    }
    Ok(Feeds { stop, tasks })
}

fn tls_settings(ca: &str, what: &str) -> anyhow::Result<std::sync::Arc<rustls::ClientConfig>> {
    let pem = if ca.is_empty() {
        None
    } else {
        Some(std::fs::read(ca).with_context(|| format!("{what}: cannot read {ca}"))?)
    };
    sink::client_tls(pem.as_deref()).map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

/// This host's name, for syslog's HOSTNAME (`-` when unknown).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

impl Feed {
    /// `first`: the first attempt at the start cursor, made before `run` went on.
    async fn run(mut self, first: Result<i64, Start>, stop: CancellationToken) {
        let what = self.sink.describe();
        let mut backoff = Duration::from_secs(1);
        let mut attempt = Some(first);
        let mut after = loop {
            let r = match attempt.take() {
                Some(r) => r,
                None => self.start_cursor().await,
            };
            match r {
                Ok(c) => break c,
                Err(Start::Fatal(e)) => {
                    tracing::error!(sink = %what, error = %format!("{e:#}"), "the event feed cannot start");
                    return;
                }
                Err(Start::Retry(e)) => {
                    tracing::warn!(sink = %what, error = %format!("{e:#}"), "the event feed cannot start yet; retrying in {backoff:?}");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        };
        backoff = Duration::from_secs(1);
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            if deadline.is_none() && stop.is_cancelled() {
                deadline = Some(tokio::time::Instant::now() + FINAL_PASS);
            }
            let pass = self.pass(after, &stop);
            let r = match deadline {
                Some(d) => match tokio::time::timeout_at(d, pass).await {
                    Ok(r) => r,
                    Err(_) => return,
                },
                None => pass.await,
            };
            let wait = match r {
                Ok(Pass::Sent { last, full }) => {
                    after = last;
                    backoff = Duration::from_secs(1);
                    if let Err(e) = write_cursor(&self.cursor, after) {
                        tracing::warn!(sink = %what, error = %format!("{e:#}"), "cannot keep the event feed's place; a restart sends these events again");
                    }
                    if full { Duration::ZERO } else { self.interval }
                }
                Ok(Pass::Idle) => {
                    if deadline.is_some() {
                        return;
                    }
                    self.interval
                }
                Ok(Pass::Stopped) => return,
                Err(e) => {
                    if deadline.is_some() {
                        tracing::warn!(sink = %what, error = %e, "events not sent at the stop; the next start sends them");
                        return;
                    }
                    tracing::warn!(sink = %what, error = %e, "events not taken; retrying in {backoff:?}");
                    let w = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    w
                }
            };
            if deadline.is_none() && !wait.is_zero() {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    /// The id after which to start: the cursor file's, else (first start) the trail's
    /// current head (or its beginning with `backfill = true`), written down at once. A
    /// cursor past the head (the database was replaced by another) starts at the head, or
    /// the feed would wait for ids that may never come.
    async fn start_cursor(&self) -> Result<i64, Start> {
        let path = self.cursor.display();
        let head = self.store.audit_head().await.context("cannot read the audit head");
        let head = head.map_err(Start::Retry)?.map_or(0, |(id, _)| id);
        let start = match std::fs::read_to_string(&self.cursor) {
            Ok(text) => {
                let cursor: i64 = text.trim().parse().map_err(|_| {
                    Start::Fatal(anyhow::anyhow!(
                        "the event cursor {path} does not hold an id; remove it to start from the newest event"
                    ))
                })?;
                if cursor <= head {
                    return Ok(cursor);
                }
                tracing::warn!(cursor = %path, at = cursor, head, "the event cursor is past the newest audit event (was the database replaced?); starting from the newest");
                head
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.backfill {
                    0
                } else {
                    head
                }
            }
            Err(e) => {
                let e = anyhow::Error::new(e).context(format!("cannot read {path}"));
                return Err(Start::Retry(e));
            }
        };
        write_cursor(&self.cursor, start).map_err(Start::Retry)?;
        Ok(start)
    }

    /// Reads a page after `after` and hands it to the sink.
    async fn pass(&mut self, after: i64, stop: &CancellationToken) -> Result<Pass, String> {
        let rows = self
            .store
            .audit_events_after(after, PAGE)
            .await
            .map_err(|e| format!("cannot read the audit trail: {e}"))?;
        let Some(last) = rows.last().map(|r| r.id) else { return Ok(Pass::Idle) };
        let mut events = Vec::with_capacity(rows.len());
        for r in &rows {
            events.push(format::audit_event(r, &self.node));
            if r.action == keepwatch_core::AuditAction::SessionEnded.as_str()
                && let Some(summary) = self.summary(r).await?
            {
                events.push(summary);
            }
        }
        match self.sink.deliver(&events, stop).await? {
            Some(()) => Ok(Pass::Sent { last, full: rows.len() == PAGE as usize }),
            None => Ok(Pass::Stopped),
        }
    }

    /// The summary after a `session_ended` event, from the session's row; none when the
    /// row is gone or the event names no session.
    async fn summary(&self, ended: &StoredAudit) -> Result<Option<OutEvent>, String> {
        let Some(id) = ended.session_id.as_deref().and_then(|s| s.parse().ok()) else {
            return Ok(None);
        };
        let read = |e: keepwatch_store::StoreError| format!("cannot read session {id}: {e}");
        let Some(row) = self.store.session(id).await.map_err(read)? else { return Ok(None) };
        let channels = self.store.channels(id).await.map_err(read)?.len();
        Ok(Some(format::session_summary(ended, &row, SessionCounts { channels }, &self.node)))
    }
}

/// Why a feed could not start: for good (a cursor that holds no id), or for now.
enum Start {
    Fatal(anyhow::Error),
    Retry(anyhow::Error),
}

enum Pass {
    /// The sink took the events up to `last`; `full`: there may be more right away.
    Sent {
        last: i64,
        full: bool,
    },
    Idle,
    Stopped,
}

/// Writes the cursor as a new file renamed over the old one, so a crash leaves one or the
/// other, never half of one.
fn write_cursor(path: &Path, id: i64) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("cursor.new");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(format!("{id}\n").as_bytes())
        .and_then(|()| f.sync_data())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_files_are_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.cursor");
        write_cursor(&path, 7).unwrap();
        write_cursor(&path, 12).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "12\n");
        assert!(!dir.path().join("file.cursor.new").exists());
    }

    #[test]
    fn the_section_defaults_to_off() {
        let s: EventsSection = toml::from_str("").unwrap();
        assert!(s.file.is_empty() && s.syslog.is_empty() && s.webhook.is_empty());
        assert_eq!(s.syslog_facility, "authpriv");
        let s: EventsSection = toml::from_str(
            "syslog = \"udp://127.0.0.1:514\"\n[[webhook]]\nurl = \"http://h/x\"\nsecret = \"s\"\nevents = [\"session_terminated\"]\n",
        )
        .unwrap();
        assert_eq!(s.webhook[0].events, ["session_terminated"]);
        assert_eq!(s.webhook[0].max_attempts, 6);
    }
}
