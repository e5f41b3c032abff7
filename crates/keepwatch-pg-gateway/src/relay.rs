//! A logged-in person's session: opened through the session layer, the target logged into,
//! then two pumps. Each pump feeds what it read to the connection's tracker, records what
//! that completes, and only then forwards the whole messages read (a partial message waits
//! for its end), so no statement reaches the target before it is in the recording.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use keepwatch_core::metrics::{Direction, METRICS};
use keepwatch_core::{AuditAction, ChannelKind, Protocol};
use keepwatch_pg::{FrameReader, Parameter, PgEvent, PgTracker, QueryKind, Side, StatementRules};
use keepwatch_recording::{
    Event, FileTransfer, Outcome, Rows, Statement, StatementResult, TransactionStatus,
};
use keepwatch_session::{LiveSession, Opening};
use keepwatch_store::{ChannelRow, now_us};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio_util::sync::CancellationToken;

use crate::client::{LoggedIn, Stream, fatal};
use crate::upstream::{self, Backend, frame_bytes};
use crate::{CancelKey, PgGatewayContext};

/// The one channel a database session has in its recording.
const CHANNEL: u32 = 0;
const READ_BUF: usize = 64 * 1024;
/// The setting a person gives a session's reason in: `PGOPTIONS='-c keepwatch.reason=...'`.
const REASON_SETTING: &str = "keepwatch.reason";

pub(crate) async fn run(ctx: Arc<PgGatewayContext>, login: LoggedIn, shutdown: CancellationToken) {
    let LoggedIn { mut stream, person, target, parameters, peer } = login;
    // `options` is the gateway's own (never passed on): the reason, if the person gave one.
    let reason = parameters
        .iter()
        .find(|(n, _)| n == "options")
        .and_then(|(_, v)| keepwatch_pg::option_setting(v, REASON_SETTING));
    let opening = Opening {
        person: &person,
        target: &target,
        protocol: Protocol::Postgres,
        client_addr: peer,
        reason: reason.as_deref(),
    };
    let session = match ctx.sessions.open(opening).await {
        Ok(s) => Arc::new(s),
        Err(refusal) => {
            fatal(&mut stream, "28000", &refusal.0).await;
            return;
        }
    };
    let database = session.target.database.as_ref().map(|d| d.name.clone()).unwrap_or_default();
    let asked = parameters.iter().find(|(n, _)| n == "database").map(|(_, v)| v.as_str());
    let user = format!("{person}@{target}");
    if let Some(asked) = asked.filter(|a| !a.is_empty() && *a != database && *a != user) {
        let why = format!(
            "target {target} serves database {database}, not {asked}; connect with dbname={database}"
        );
        let refusal = session.refuse(AuditAction::SessionRefused, why).await;
        fatal(&mut stream, "3D000", &refusal.0).await;
        return;
    }
    let g = &session.grant;
    let rules = match StatementRules::new(g.read_only, &g.deny_statements, &g.deny_tables) {
        Ok(rules) => rules,
        Err(e) => {
            // The CLI checks rules as the grant is made: a bad one in the store refuses all.
            let why = format!("the grant's statement rules cannot be used: {e}");
            let refusal = session.refuse(AuditAction::SessionRefused, why).await;
            fatal(&mut stream, "42501", &refusal.0).await;
            return;
        }
    };
    let password = match session.open_secret() {
        Ok(s) => String::from_utf8_lossy(s.expose()).into_owned(),
        Err(reason) => {
            let why = format!("target {target} refused: {reason}");
            let refusal = session.refuse(AuditAction::TargetRowMismatch, why).await;
            fatal(&mut stream, "28000", &refusal.0).await;
            return;
        }
    };
    let cfg = &ctx.config;
    let connected = upstream::connect(
        &session.target,
        &password,
        &parameters,
        cfg.connect_timeout,
        cfg.limits.max_message_len,
        &rules,
    )
    .await;
    drop(password);
    let up = match connected {
        Ok(up) => up,
        Err(why) => {
            let refusal = session.refuse(AuditAction::SessionRefused, why).await;
            fatal(&mut stream, "08006", &refusal.0).await;
            return;
        }
    };
    tracing::info!(session_id = %session.id, %target, "postgres session started");
    let passed: Vec<String> = parameters
        .iter()
        .filter(|(n, _)| upstream::passed(n))
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    let dropped: Vec<&str> = parameters
        .iter()
        .filter(|(n, _)| n != "database" && !upstream::passed(n))
        .map(|(n, _)| n.as_str())
        .collect();
    let mut opened = vec![
        Event::ChannelOpen {
            channel: CHANNEL,
            kind: ChannelKind::Subsystem { name: "postgres".into() },
            pty: None,
        },
        Event::Notice {
            channel: Some(CHANNEL),
            text: format!(
                "postgres: database {database} as {} (client parameters: {}{})",
                session.target.login,
                if passed.is_empty() { "none".into() } else { passed.join(", ") },
                if dropped.is_empty() {
                    String::new()
                } else {
                    format!("; not passed on: {}", dropped.join(", "))
                }
            ),
        },
    ];
    let notice = ctx.sessions.notice();
    if let Some(text) = notice {
        let text = format!("shown to the person at connect: {text}");
        opened.push(Event::Notice { channel: Some(CHANNEL), text });
    }
    let row = ChannelRow {
        channel: CHANNEL,
        kind: "subsystem".into(),
        command: None,
        subsystem: Some("postgres".into()),
        pty_term: None,
        destination: None,
        opened_at_us: now_us(),
        closed_at_us: None,
        exit_status: None,
    };
    if let Err(e) = ctx.sessions.store.add_channel(session.id, &row).await {
        tracing::warn!(session_id = %session.id, error = %e, "cannot store channel");
    }
    for ev in opened.drain(..) {
        if session.record(ev).await.is_err() {
            fatal(
                &mut stream,
                "58030",
                "keepwatch: the recording failed, so the session was ended",
            )
            .await;
            finish(&ctx, &session, None).await;
            return;
        }
    }
    // The client gets the gateway's cancel key, never the target's.
    let key = up.key.clone().and_then(|(pid, secret)| {
        let addr = format!("{}:{}", session.target.host, session.target.port);
        ctx.register_cancel(Backend { session: session.id, addr, pid, secret })
    });
    let mut hello =
        keepwatch_pg::wire::authentication(&keepwatch_pg::AuthRequest::Ok).unwrap_or_default();
    let (status, ready) = up.greeting.split_at(up.greeting.len().saturating_sub(6));
    hello.extend_from_slice(status);
    if let Some(k) = &key {
        let mut body = k.pid.to_be_bytes().to_vec();
        body.extend_from_slice(&k.secret);
        hello.extend_from_slice(&frame_bytes(b'K', &body));
    }
    if let Some(text) = notice {
        hello.extend_from_slice(&notice_message(text));
    }
    hello.extend_from_slice(ready);
    if stream.write_all(&hello).await.is_err() {
        finish(&ctx, &session, key.as_ref()).await;
        return;
    }
    let mut tracker = PgTracker::after_login(cfg.limits);
    if let Some(rows) = session.grant.capture_rows {
        tracker.capture_rows(rows.min(keepwatch_recording::MAX_ROWS as u32) as usize);
    }
    let pinned = !rules.is_empty();
    let gate = pinned.then(|| Gate::new(rules, cfg.limits.max_message_len));
    let relay = Relay {
        pinned,
        session: session.clone(),
        tracker: Arc::new(Mutex::new(tracker)),
        started: Instant::now(),
        last_activity: Arc::new(AtomicU64::new(0)),
        done: CancellationToken::new(),
        transaction: Arc::new(Mutex::new(None)),
    };
    let (client_r, client_w) = tokio::io::split(stream);
    let client_w = Arc::new(tokio::sync::Mutex::new(client_w));
    let (target_r, target_w) = tokio::io::split(up.stream);
    let idle = cfg.idle_timeout;
    let back = tokio::spawn({
        let relay = relay.clone();
        let leftover = up.leftover;
        let client_w = client_w.clone();
        async move { relay.target_to_client(target_r, client_w, leftover).await }
    });
    relay.client_to_target(client_r, target_w, client_w, gate, idle, shutdown).await;
    relay.done.cancel();
    let _ = back.await;
    let mut events = Vec::new();
    relay.lock_tracker().finish(relay.now(), &mut events);
    for ev in events {
        let _ = relay.record(ev).await;
    }
    finish(&ctx, &session, key.as_ref()).await;
}

/// A NoticeResponse carrying `text` (which holds no NUL: notices are cleaned of controls).
fn notice_message(text: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (code, value) in [(b'S', "NOTICE"), (b'V', "NOTICE"), (b'C', "00000"), (b'M', text)] {
        body.push(code);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    frame_bytes(b'N', &body)
}

async fn finish(ctx: &PgGatewayContext, session: &LiveSession, key: Option<&CancelKey>) {
    if let Some(k) = key {
        ctx.forget_cancel(k);
    }
    let close = Event::ChannelClose { channel: CHANNEL, exit_status: None, exit_signal: None };
    let _ = session.record(close).await;
    let _ = ctx.sessions.store.close_channel(session.id, CHANNEL, None).await;
    session.seal().await;
}

#[derive(Clone)]
struct Relay {
    /// The grant has statement rules, read under the settings the gateway pinned
    /// (`keepwatch_pg::PINNED_SETTINGS`): the server saying one changed ends the session.
    pinned: bool,
    session: Arc<LiveSession>,
    tracker: Arc<Mutex<PgTracker>>,
    started: Instant,
    /// Microseconds since `started` when data last moved, for the idle timeout.
    last_activity: Arc<AtomicU64>,
    /// Cancelled when either side is done: the other stops too.
    done: CancellationToken,
    /// The transaction status last recorded.
    transaction: Arc<Mutex<Option<keepwatch_pg::TransactionStatus>>>,
}

impl Relay {
    fn now(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    fn lock_tracker(&self) -> std::sync::MutexGuard<'_, PgTracker> {
        self.tracker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Feeds `data` from `side` to the tracker: the events it completes, and how many bytes of
    /// a message it holds unfinished; or why the stream cannot be followed.
    fn track(&self, side: Side, data: &[u8]) -> Result<(Vec<PgEvent>, usize), String> {
        let now = self.now();
        self.last_activity.store(now, Ordering::Relaxed);
        let mut events = Vec::new();
        let mut t = self.lock_tracker();
        let r = match side {
            Side::Frontend => t.from_frontend(data, now, &mut events),
            Side::Backend => t.from_backend(data, now, &mut events),
        };
        let held = match side {
            Side::Frontend => t.frontend_buffered(),
            Side::Backend => t.backend_buffered(),
        };
        drop(t);
        match r {
            Ok(()) => Ok((events, held)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Records the events; false when the session must end (the recording failed).
    async fn record_all(&self, events: Vec<PgEvent>) -> bool {
        for ev in events {
            if !self.record(ev).await {
                return false;
            }
        }
        true
    }

    async fn record(&self, ev: PgEvent) -> bool {
        for event in self.to_recording(ev) {
            if self.session.record(event).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Under statement rules: a pinned setting the server reports changed (`name = value`).
    fn unpinned(&self, events: &[PgEvent]) -> Option<String> {
        if !self.pinned {
            return None;
        }
        events.iter().find_map(|e| match e {
            PgEvent::ParameterStatus { name, value } => keepwatch_pg::PINNED_SETTINGS
                .iter()
                .find(|(p, v)| name.eq_ignore_ascii_case(p) && !value.eq_ignore_ascii_case(v))
                .map(|_| format!("{name} to {value}")),
            _ => None,
        })
    }

    /// What the recording keeps of a tracker event.
    fn to_recording(&self, ev: PgEvent) -> Vec<Event> {
        let notice = |text: String| Event::Notice { channel: Some(CHANNEL), text };
        match ev {
            PgEvent::Sent(sent) => vec![Event::Statement(Statement {
                channel: CHANNEL,
                seq: sent.seq,
                text: sent.text.to_string(),
                params: sent.parameters.iter().map(Parameter::recorded).collect(),
                extended: sent.kind == QueryKind::Extended,
            })],
            PgEvent::Statement(st) => {
                let outcome = match st.outcome {
                    keepwatch_pg::Outcome::Complete(tag) => Outcome::Done {
                        tag: match tag.rows {
                            Some(n) => format!("{} {n}", tag.command),
                            None => tag.command,
                        },
                        rows: tag.rows,
                    },
                    keepwatch_pg::Outcome::Error(m) => {
                        Outcome::Failed { sqlstate: m.code, message: m.message }
                    }
                    keepwatch_pg::Outcome::EmptyQuery => Outcome::Empty,
                    keepwatch_pg::Outcome::Suspended => Outcome::Suspended,
                    keepwatch_pg::Outcome::Skipped => Outcome::Skipped,
                    keepwatch_pg::Outcome::Unanswered => Outcome::Failed {
                        sqlstate: String::new(),
                        message: "no answer: the connection ended first".into(),
                    },
                };
                let mut out = vec![Event::StatementResult(StatementResult {
                    channel: CHANNEL,
                    seq: st.seq,
                    outcome,
                })];
                if let Some(status) = st.transaction {
                    let mut last = self.transaction.lock().unwrap_or_else(|e| e.into_inner());
                    if *last != Some(status) {
                        *last = Some(status);
                        let status = match status {
                            keepwatch_pg::TransactionStatus::Idle => TransactionStatus::Idle,
                            keepwatch_pg::TransactionStatus::InTransaction => {
                                TransactionStatus::InTransaction
                            }
                            keepwatch_pg::TransactionStatus::Failed => TransactionStatus::Failed,
                        };
                        out.push(Event::Transaction { channel: CHANNEL, status });
                    }
                }
                out
            }
            PgEvent::Rows(r) => vec![Event::Rows(Rows {
                channel: CHANNEL,
                seq: r.seq,
                columns: r.columns,
                rows: r.rows,
                left_out: r.left_out,
            })],
            PgEvent::Copy(c) => {
                let upload = c.direction == keepwatch_pg::CopyDirection::In;
                let path = match c.direction {
                    keepwatch_pg::CopyDirection::In => "COPY FROM STDIN",
                    keepwatch_pg::CopyDirection::Out => "COPY TO STDOUT",
                    keepwatch_pg::CopyDirection::Both => "COPY BOTH",
                };
                let complete = c.client_failure.is_none() && c.rows.is_some();
                let mut out = vec![Event::FileTransfer(FileTransfer {
                    channel: CHANNEL,
                    path: path.into(),
                    upload,
                    bytes: c.bytes,
                    size: complete.then_some(c.bytes),
                    sha256: Some(c.sha256),
                    ranges: Vec::new(),
                    complete,
                })];
                if let Some(why) = c.client_failure {
                    out.push(notice(format!("the client abandoned the copy: {why}")));
                }
                out
            }
            PgEvent::Notice(m) => {
                vec![notice(format!("{} {}: {}", m.severity, m.code, m.message))]
            }
            PgEvent::Notification { pid, channel, payload } => {
                vec![notice(format!("notification on {channel} from backend {pid}: {payload}"))]
            }
            PgEvent::UnsolicitedError(m) | PgEvent::StartupError(m) => {
                vec![notice(format!("server {} {}: {}", m.severity, m.code, m.message))]
            }
            PgEvent::ParameterStatus { name, value } => {
                vec![notice(format!("server parameter {name} = {value}"))]
            }
            PgEvent::Unfollowed(u) => {
                // Not understood: its bytes go into the recording as they passed.
                let mut data = u.tag.map(|t| vec![t]).unwrap_or_default();
                data.extend_from_slice(&u.bytes);
                let raw = match u.side {
                    Side::Frontend => Event::Input { channel: CHANNEL, data },
                    Side::Backend => Event::Output { channel: CHANNEL, data },
                };
                let cut = if u.bytes.len() < u.len {
                    format!(" (first {} of {} bytes kept)", u.bytes.len(), u.len)
                } else {
                    String::new()
                };
                vec![notice(format!("{} message not followed: {}{cut}", u.side, u.reason)), raw]
            }
            PgEvent::Terminate => Vec::new(),
            other => vec![notice(format!("{other:?}"))],
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn client_to_target(
        &self,
        mut client: ReadHalf<Stream>,
        mut target: WriteHalf<Stream>,
        client_w: ClientWriter,
        mut gate: Option<Gate>,
        idle: Option<std::time::Duration>,
        shutdown: CancellationToken,
    ) {
        let mut terminate = self.session.termination();
        let mut buf = vec![0u8; READ_BUF];
        let mut unsent: Vec<u8> = Vec::new();
        loop {
            let idle_left = idle.map(|i| {
                let since = self.now().saturating_sub(self.last_activity.load(Ordering::Relaxed));
                i.saturating_sub(std::time::Duration::from_micros(since))
            });
            let n = tokio::select! {
                r = client.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                },
                _ = terminate.changed() => {
                    let _ = target.write_all(&frame_bytes(b'X', &[])).await;
                    break;
                }
                _ = shutdown.cancelled() => {
                    self.session.layer().live().terminate(
                        self.session.id,
                        "keepwatch: the gateway is shutting down, so the session was ended",
                    );
                    let _ = target.write_all(&frame_bytes(b'X', &[])).await;
                    break;
                }
                _ = self.done.cancelled() => break,
                _ = tokio::time::sleep(idle_left.unwrap_or(std::time::Duration::MAX)), if idle_left.is_some() => {
                    if idle_left.is_some_and(|l| l.is_zero()) {
                        self.session.layer().live().terminate(
                            self.session.id,
                            "keepwatch: the session was idle too long, so it was ended",
                        );
                    }
                    continue;
                }
            };
            if let Some(gate) = &mut gate {
                // Statement rules: message by message, each statement decided before it is
                // tracked and forwarded.
                if !self.through_gate(gate, &buf[..n], &mut target, &client_w).await {
                    break;
                }
                continue;
            }
            let (events, held) = match self.track(Side::Frontend, &buf[..n]) {
                Ok(x) => x,
                Err(why) => {
                    let text = format!(
                        "the client's stream cannot be followed ({why}); the connection was closed"
                    );
                    let _ =
                        self.session.record(Event::Notice { channel: Some(CHANNEL), text }).await;
                    self.session.layer().live().terminate(
                        self.session.id,
                        "keepwatch: protocol error; the connection was closed",
                    );
                    break;
                }
            };
            if !self.record_all(events).await {
                break;
            }
            unsent.extend_from_slice(&buf[..n]);
            let ready = unsent.len().saturating_sub(held);
            if ready > 0 {
                if target.write_all(&unsent[..ready]).await.is_err() {
                    break;
                }
                METRICS.relayed(Protocol::Postgres, Direction::ToTarget, ready);
                unsent.drain(..ready);
            }
        }
        let _ = target.shutdown().await;
        self.done.cancel();
    }

    async fn target_to_client(
        &self,
        mut target: ReadHalf<Stream>,
        client: ClientWriter,
        leftover: Vec<u8>,
    ) {
        let mut terminate = self.session.termination();
        let mut buf = vec![0u8; READ_BUF.max(leftover.len())];
        let mut unsent: Vec<u8> = Vec::new();
        let mut first = Some(leftover).filter(|l| !l.is_empty());
        loop {
            let n = if let Some(l) = first.take() {
                buf[..l.len()].copy_from_slice(&l);
                l.len()
            } else {
                // Termination first: the other pump ends the target connection when it sees
                // it (then `done` and a closed read follow), and the person must get the
                // reason rather than a bare close.
                tokio::select! {
                    biased;
                    _ = terminate.changed() => {
                        let why = self.session.terminated().unwrap_or_default();
                        let text = format!("terminating connection due to administrator command: {why}");
                        let _ = self.session.record(Event::Notice { channel: Some(CHANNEL), text: text.clone() }).await;
                        fatal(&mut *client.lock().await, "57P01", &text).await;
                        break;
                    }
                    _ = self.done.cancelled() => break,
                    r = target.read(&mut buf) => match r {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    },
                }
            };
            let (events, held) = match self.track(Side::Backend, &buf[..n]) {
                Ok(x) => x,
                Err(why) => {
                    let text = format!(
                        "the target's stream cannot be followed ({why}); the connection was closed"
                    );
                    let _ =
                        self.session.record(Event::Notice { channel: Some(CHANNEL), text }).await;
                    fatal(&mut *client.lock().await, "08P01", "keepwatch: the target's answer could not be followed; the connection was closed").await;
                    break;
                }
            };
            if let Some(changed) = self.unpinned(&events) {
                // The rules read statements under the pinned settings; past this they could
                // be fooled. Nothing more passes.
                let _ = self.record_all(events).await;
                let text = format!(
                    "keepwatch: the server changed {changed}, which the grant's statement rules need unchanged; the session was ended"
                );
                let _ = self
                    .session
                    .record(Event::Notice { channel: Some(CHANNEL), text: text.clone() })
                    .await;
                fatal(&mut *client.lock().await, "42501", &text).await;
                self.session.layer().live().terminate(self.session.id, &text);
                break;
            }
            if !self.record_all(events).await {
                fatal(
                    &mut *client.lock().await,
                    "58030",
                    "keepwatch: the recording failed, so the session was ended",
                )
                .await;
                break;
            }
            unsent.extend_from_slice(&buf[..n]);
            let ready = unsent.len().saturating_sub(held);
            if ready > 0 {
                if client.lock().await.write_all(&unsent[..ready]).await.is_err() {
                    break;
                }
                METRICS.relayed(Protocol::Postgres, Direction::ToClient, ready);
                unsent.drain(..ready);
            }
        }
        let _ = client.lock().await.shutdown().await;
        self.done.cancel();
    }
}

/// The client's writing half, shared: the target's answers, and the gateway's own answers
/// to statements a read-only grant refuses.
type ClientWriter = Arc<tokio::sync::Mutex<WriteHalf<Stream>>>;

/// The gate of a grant with statement rules (read-only, deny rules) on the client's messages.
struct Gate {
    rules: StatementRules,
    reader: FrameReader,
    /// After a refused Parse: the reason, until the Sync that ends its batch (the messages
    /// in between are dropped, as the server would skip them after an error).
    refusing: Option<String>,
}

impl Gate {
    fn new(rules: StatementRules, max_message_len: u32) -> Self {
        let mut reader = FrameReader::new(Side::Frontend, max_message_len);
        reader.start_typed();
        Gate { rules, reader, refusing: None }
    }
}

/// What the gate does with one whole message.
enum Verdict {
    Forward,
    Drop,
    /// Answer the client in the server's stead (an error and ReadyForQuery).
    Answer(Vec<u8>),
    /// End the connection, saying why.
    Close(String),
}

/// The text of a NUL-terminated string at the start of `body`, and what follows it.
fn cstr(body: &[u8]) -> Option<(String, &[u8])> {
    let end = body.iter().position(|&b| b == 0)?;
    Some((String::from_utf8_lossy(&body[..end]).into_owned(), &body[end + 1..]))
}

impl Relay {
    /// Passes `data` through the grant's gate: whole messages only, each statement decided
    /// (`StatementRules::check`) before it is tracked, recorded and forwarded; a
    /// refused one is recorded as refused and answered with an error by the gateway. False
    /// when the connection must end.
    async fn through_gate(
        &self,
        gate: &mut Gate,
        data: &[u8],
        target: &mut WriteHalf<Stream>,
        client: &ClientWriter,
    ) -> bool {
        gate.reader.push(data);
        loop {
            // The whole message, copied once out of the reader: its type byte, its length,
            // its body.
            let message = match gate.reader.next_frame() {
                Ok(Some(f)) => frame_bytes(f.tag.unwrap_or(0), f.body),
                Ok(None) => return true,
                Err(e) => {
                    let why = format!("the client's stream cannot be followed ({e})");
                    return self.close(&why).await;
                }
            };
            match self.decide(gate, message[0], &message[5..]).await {
                Verdict::Forward => {
                    let events = match self.track(Side::Frontend, &message) {
                        Ok((events, _)) => events,
                        Err(why) => {
                            return self
                                .close(&format!("the client's stream cannot be followed ({why})"))
                                .await;
                        }
                    };
                    if !self.record_all(events).await || target.write_all(&message).await.is_err() {
                        return false;
                    }
                    METRICS.relayed(Protocol::Postgres, Direction::ToTarget, message.len());
                }
                Verdict::Drop => {}
                Verdict::Answer(bytes) => {
                    if client.lock().await.write_all(&bytes).await.is_err() {
                        return false;
                    }
                }
                Verdict::Close(why) => return self.close(&why).await,
            }
        }
    }

    async fn decide(&self, gate: &mut Gate, tag: u8, body: &[u8]) -> Verdict {
        if let Some(reason) = &gate.refusing {
            return match tag {
                b'S' => {
                    let answer = self.refusal_answer(reason);
                    gate.refusing = None;
                    Verdict::Answer(answer)
                }
                b'X' => Verdict::Forward,
                _ => Verdict::Drop,
            };
        }
        let (text, extended) = match tag {
            b'Q' => match cstr(body) {
                Some((text, _)) => (text, false),
                None => return Verdict::Close("a malformed Query".into()),
            },
            b'P' => match cstr(body).and_then(|(_, rest)| cstr(rest)) {
                Some((text, _)) => (text, true),
                None => return Verdict::Close("a malformed Parse".into()),
            },
            b'F' => {
                return Verdict::Close(
                    "a fast-path function call, which a grant with statement rules refuses".into(),
                );
            }
            _ => return Verdict::Forward,
        };
        let Err(refusal) = gate.rules.check(&text) else { return Verdict::Forward };
        let reason = refusal.to_string();
        let seq = {
            let mut t = self.lock_tracker();
            t.is_idle().then(|| t.take_seq())
        };
        let Some(seq) = seq else {
            // Answers to earlier messages are still on their way: one of ours now would
            // come out of order. Fail closed.
            return Verdict::Close(format!(
                "a statement the grant refuses ({reason}) arrived while answers to earlier ones were pending"
            ));
        };
        let statement = Statement { channel: CHANNEL, seq, text, params: Vec::new(), extended };
        let result = StatementResult {
            channel: CHANNEL,
            seq,
            outcome: Outcome::Refused { reason: reason.clone() },
        };
        for ev in [Event::Statement(statement), Event::StatementResult(result)] {
            if self.session.record(ev).await.is_err() {
                return Verdict::Close("the recording failed".into());
            }
        }
        self.session.audit(AuditAction::StatementRefused, reason.clone()).await;
        if extended {
            gate.refusing = Some(reason);
            Verdict::Drop
        } else {
            Verdict::Answer(self.refusal_answer(&reason))
        }
    }

    /// The error a refused statement gets, then ReadyForQuery with the status unchanged.
    fn refusal_answer(&self, reason: &str) -> Vec<u8> {
        let text = format!("keepwatch: {reason}");
        let mut out =
            keepwatch_pg::wire::error_response("ERROR", "42501", &text).unwrap_or_default();
        let status = match self.lock_tracker().transaction_status() {
            keepwatch_pg::TransactionStatus::Idle => b'I',
            keepwatch_pg::TransactionStatus::InTransaction => b'T',
            keepwatch_pg::TransactionStatus::Failed => b'E',
        };
        out.extend_from_slice(&frame_bytes(b'Z', &[status]));
        out
    }

    /// Ends the connection over what the gate could not let through; recorded.
    async fn close(&self, why: &str) -> bool {
        let text = format!("{why}; the connection was closed");
        let _ = self.session.record(Event::Notice { channel: Some(CHANNEL), text }).await;
        self.session.layer().live().terminate(self.session.id, &format!("keepwatch: {why}"));
        false
    }
}
