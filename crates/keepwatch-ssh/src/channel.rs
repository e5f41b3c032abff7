//! One SSH channel: collect the client's requests, reach the target, then relay both ways.
//!
//! Bytes the client sends before the target is ready stay queued in russh's bounded channel
//! buffer (or, for the few bytes typed after a menu choice, in `early`), never interpreted.
//! Every byte is handed to the recorder before it is forwarded.

use std::sync::Arc;

use bytes::Bytes;
use keepwatch_core::metrics::{self, METRICS};
use keepwatch_core::{ChannelKind, Protocol};
use keepwatch_recording::{Direction, Event, Pty};
use keepwatch_store::{ChannelRow, now_us};
use russh::server::Msg;
use russh::{Channel, ChannelId, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};

use crate::connection::{ActiveSession, Connection};
use crate::transfer::{FileChannel, SpoolPlace, record_events};
use keepwatch_core::{InputPiece, SecretInputDetector};
use keepwatch_sftp::Output;
use russh::client;

/// What the client asked for before the shell/exec/subsystem request.
#[derive(Default)]
struct Requests {
    pty: Option<PtyRequest>,
    /// Every environment request, allowed (forwarded) or not: all of them are recorded.
    env: Vec<EnvRequest>,
    /// Environment requests past [`MAX_ENV`], dropped unrecorded but counted.
    env_dropped: usize,
    early: Vec<u8>,
    /// `ssh -A` asked for the person's agent (served only if the grant allows it).
    agent: bool,
}

struct PtyRequest {
    term: String,
    cols: u32,
    rows: u32,
    pix_width: u32,
    pix_height: u32,
    modes: Vec<(russh::Pty, u32)>,
}

/// Most a client may send before its shell starts; beyond it the channel is closed.
const EARLY_LIMIT: usize = 1 << 20;
/// Environment requests one channel may make; later ones are refused and counted.
const MAX_ENV: usize = 64;

struct EnvRequest {
    name: String,
    value: String,
    allowed: bool,
}

pub(crate) async fn run(conn: Arc<Connection>, channel: Channel<Msg>) {
    let id = channel.id();
    let (mut rx, tx) = channel.split();
    let tx = Arc::new(tx);
    let Some((kind, mut req)) = collect_requests(&conn, &mut rx).await else {
        let _ = tx.close().await;
        return;
    };
    let mut replied = false;
    let target = match (&conn.login.target, &kind, &req.pty) {
        (Some(t), _, _) => Ok(t.clone()),
        (None, ChannelKind::Shell, Some(_)) => {
            let _ = conn.handle.channel_success(id).await;
            replied = true;
            match crate::menu::choose(&conn, &mut rx, &tx).await {
                Some((target, leftover)) => {
                    req.early.extend_from_slice(&leftover);
                    Ok(target)
                }
                None => {
                    let _ = tx.eof().await;
                    let _ = tx.close().await;
                    return;
                }
            }
        }
        (None, _, _) => {
            let granted = conn
                .ctx
                .sessions
                .store
                .granted_targets(&conn.login.person)
                .await
                .unwrap_or_default();
            Err(format!(
                "keepwatch: no target named; connect as {}@TARGET (granted: {})",
                conn.login.person,
                if granted.is_empty() { "none".to_owned() } else { granted.join(", ") }
            ))
        }
    };
    let session = match target {
        Ok(t) => {
            let Some(reason) =
                reason_for(&conn, &t, &kind, &mut req, &mut rx, &tx, id, &mut replied).await
            else {
                let _ = tx.eof().await;
                let _ = tx.close().await;
                return;
            };
            conn.session(&t, reason.as_deref()).await
        }
        Err(e) => Err(e),
    };
    let session = match session {
        Ok(s) => s,
        Err(line) => return refuse(&conn, id, &tx, replied, &line).await,
    };
    if let Err(line) = relay(&conn, &session, id, kind, req, rx, tx.clone(), replied).await {
        end_with_line(&tx, &line).await;
    }
}

/// The environment variable a person gives a session's reason in (`ssh -o SetEnv=...`).
const REASON_ENV: &str = "KEEPWATCH_REASON";

/// The reason for the connection's session: `KEEPWATCH_REASON` from the channel's
/// environment, else, for the channel that starts the session on a target that requires
/// one, asked in the terminal when the channel is an interactive shell (the session layer
/// refuses a session without one, saying how to give it). `None` when the person left
/// while asked.
#[allow(clippy::too_many_arguments)]
async fn reason_for(
    conn: &Connection,
    target: &str,
    kind: &ChannelKind,
    req: &mut Requests,
    rx: &mut ChannelReadHalf,
    tx: &ChannelWriteHalf<Msg>,
    id: ChannelId,
    replied: &mut bool,
) -> Option<Option<String>> {
    if let Some(e) = req.env.iter().find(|e| e.name == REASON_ENV) {
        return Some(Some(e.value.clone()));
    }
    let interactive = matches!((kind, &req.pty), (ChannelKind::Shell, Some(_)));
    if conn.has_session() || !interactive {
        return Some(None);
    }
    let store = &conn.ctx.sessions.store;
    if !store.target(target).await.ok().flatten().is_some_and(|t| t.require_reason) {
        return Some(None);
    }
    if !*replied {
        let _ = conn.handle.channel_success(id).await;
        *replied = true;
    }
    let (reason, rest) = crate::menu::ask_reason(conn, rx, tx, target).await?;
    req.early.extend_from_slice(&rest);
    Some(Some(reason))
}

/// Tells the person why, ends the channel with exit status 1.
async fn refuse(
    conn: &Connection,
    id: ChannelId,
    tx: &ChannelWriteHalf<Msg>,
    replied: bool,
    line: &str,
) {
    if !replied {
        let _ = conn.handle.channel_success(id).await;
    }
    end_with_line(tx, line).await;
}

/// Shows `line` on the person's stderr and ends the channel with exit status 1.
async fn end_with_line(tx: &ChannelWriteHalf<Msg>, line: &str) {
    let _ = tx.extended_data_bytes(1, Bytes::from(format!("{line}\r\n"))).await;
    let _ = tx.exit_status(1).await;
    let _ = tx.eof().await;
    let _ = tx.close().await;
}

fn env_allowed(allow: &[String], name: &str) -> bool {
    allow.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => p == name,
    })
}

async fn collect_requests(
    conn: &Connection,
    rx: &mut ChannelReadHalf,
) -> Option<(ChannelKind, Requests)> {
    let mut req = Requests::default();
    loop {
        let msg = tokio::select! {
            m = rx.wait() => m?,
            _ = conn.cancel.cancelled() => return None,
        };
        match msg {
            ChannelMsg::RequestPty {
                term,
                col_width,
                row_height,
                pix_width,
                pix_height,
                terminal_modes,
                ..
            } => {
                req.pty = Some(PtyRequest {
                    term,
                    cols: col_width,
                    rows: row_height,
                    pix_width,
                    pix_height,
                    modes: terminal_modes,
                });
                // Answered in `ConnHandler::pty_request` as it arrives: russh keeps one
                // want-reply flag per channel, so a late answer here could take the place
                // of the shell or exec request's.
            }
            ChannelMsg::SetEnv { variable_name, variable_value, .. } => {
                if req.env.len() >= MAX_ENV {
                    req.env_dropped += 1;
                    continue;
                }
                let allowed = env_allowed(&conn.ctx.config.env_allow, &variable_name);
                req.env.push(EnvRequest { name: variable_name, value: variable_value, allowed });
            }
            ChannelMsg::WindowChange { col_width, row_height, .. } => {
                if let Some(p) = req.pty.as_mut() {
                    p.cols = col_width;
                    p.rows = row_height;
                }
            }
            ChannelMsg::RequestShell { .. } => return Some((ChannelKind::Shell, req)),
            ChannelMsg::Exec { command, .. } => return Some((ChannelKind::Exec { command }, req)),
            ChannelMsg::RequestSubsystem { name, .. } => {
                return Some((ChannelKind::Subsystem { name }, req));
            }
            ChannelMsg::Data { data } => {
                if req.early.len() + data.len() > EARLY_LIMIT {
                    return None;
                }
                req.early.extend_from_slice(&data);
            }
            ChannelMsg::Close => return None,
            // Answered by the connection handler from the grant; `relay` asks the target for
            // the agent only when the grant allows it too.
            ChannelMsg::AgentForward { .. } => req.agent = true,
            _ => {}
        }
    }
}

/// How long the target may take to answer a channel request.
const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads the target's channel until its reply to a request, keeping anything else that
/// arrives in between for the relay. A target that does not answer in time refuses.
async fn await_reply(rx: &mut ChannelReadHalf, held: &mut Vec<ChannelMsg>) -> bool {
    tokio::time::timeout(REPLY_TIMEOUT, reply(rx, held)).await.unwrap_or(false)
}

async fn reply(rx: &mut ChannelReadHalf, held: &mut Vec<ChannelMsg>) -> bool {
    loop {
        match rx.wait().await {
            Some(ChannelMsg::Success) => return true,
            Some(ChannelMsg::Failure) | None => return false,
            Some(ChannelMsg::WindowAdjusted { .. }) => {}
            Some(other) => held.push(other),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn relay(
    conn: &Arc<Connection>,
    s: &Arc<ActiveSession>,
    id: ChannelId,
    kind: ChannelKind,
    req: Requests,
    client_rx: ChannelReadHalf,
    client_tx: Arc<ChannelWriteHalf<Msg>>,
    replied: bool,
) -> Result<(), String> {
    let target = &s.target.name;
    let up = tokio::time::timeout(REPLY_TIMEOUT, s.upstream.channel_open_session())
        .await
        .map_err(|_| format!("keepwatch: target {target} did not open a channel"))?
        .map_err(|e| format!("keepwatch: target {target} refused a channel: {e}"))?;
    let (mut up_rx, up_tx) = up.split();
    let mut held = Vec::new();
    for e in req.env.iter().filter(|e| e.allowed) {
        let _ = up_tx.set_env(false, e.name.as_str(), e.value.as_str()).await;
    }
    if let Some(p) = &req.pty {
        let ok = up_tx
            .request_pty(true, &p.term, p.cols, p.rows, p.pix_width, p.pix_height, &p.modes)
            .await
            .is_ok()
            && await_reply(&mut up_rx, &mut held).await;
        if !ok {
            return Err(format!("keepwatch: target {target} refused a terminal"));
        }
    }
    if req.agent && s.grant.agent_forward {
        forward_agent(conn, s, &up_tx, &mut up_rx, &mut held, u32::from(id)).await;
    }
    let place = SpoolPlace {
        blobs: conn.ctx.sessions.recorder.blobs.clone(),
        session: s.id,
        channel: u32::from(id),
        key: s.recorder.data_key(),
    };
    let files = FileChannel::for_channel(&kind, &s.grant, place);
    if let Some(out) = files.as_ref().and_then(FileChannel::refuse_at_start) {
        let channel = u32::from(id);
        let _ = record_events(conn, s, channel, None, out.events).await;
        if !replied {
            let _ = conn.handle.channel_success(id).await;
        }
        let _ = client_tx.data_bytes(Bytes::from(out.reply)).await;
        let _ = client_tx.exit_status(1).await;
        let _ = client_tx.eof().await;
        let _ = client_tx.close().await;
        let _ = up_tx.close().await;
        return Ok(());
    }
    let sent = match &kind {
        ChannelKind::Shell => up_tx.request_shell(true).await,
        ChannelKind::Exec { command } => up_tx.exec(true, command.clone()).await,
        ChannelKind::Subsystem { name } => up_tx.request_subsystem(true, name.as_str()).await,
    };
    let accepted = sent.is_ok() && await_reply(&mut up_rx, &mut held).await;
    let channel = u32::from(id);
    let pty = req.pty.as_ref().map(|p| Pty { term: p.term.clone(), cols: p.cols, rows: p.rows });
    let row = ChannelRow {
        channel,
        kind: kind.as_str().to_owned(),
        // Masked like the recording masks it: a secret on an exec line reaches no disk.
        command: match &kind {
            ChannelKind::Exec { command } => {
                let masked = conn.ctx.sessions.recorder.config.mask.apply_once(command);
                Some(String::from_utf8_lossy(&masked).into_owned())
            }
            _ => None,
        },
        subsystem: match &kind {
            ChannelKind::Subsystem { name } => Some(name.clone()),
            _ => None,
        },
        pty_term: req.pty.as_ref().map(|p| p.term.clone()),
        destination: None,
        opened_at_us: now_us(),
        closed_at_us: None,
        exit_status: None,
    };
    if let Err(e) = conn.ctx.sessions.store.add_channel(s.id, &row).await {
        tracing::error!(session_id = %s.id, error = %e, "cannot store channel");
    }
    conn.record(s, Event::ChannelOpen { channel, kind: kind.clone(), pty })
        .await
        .map_err(|_| recording_failed())?;
    for e in req.env {
        let env = Event::Env { channel, name: e.name, value: e.value, forwarded: e.allowed };
        conn.record(s, env).await.map_err(|_| recording_failed())?;
    }
    if req.env_dropped > 0 {
        let text = format!(
            "{} more environment requests refused (at most {MAX_ENV} per channel)",
            req.env_dropped
        );
        let _ = conn.record(s, Event::Notice { channel: Some(channel), text }).await;
    }
    if !accepted {
        // The gateway answers for itself and ends the channel with one line and exit status 1,
        // like its other refusals: OpenSSH drops stderr that arrives with a failed request,
        // so the person would see only "subsystem request failed". The recording keeps the
        // same words.
        let text = refused_request(&s.target.name, &kind);
        let _ = conn.record(s, Event::Notice { channel: Some(channel), text: text.clone() }).await;
        let _ = up_tx.close().await;
        refuse(conn, id, &client_tx, replied, &text).await;
        let close = Event::ChannelClose { channel, exit_status: Some(1), exit_signal: None };
        let _ = conn.record(s, close).await;
        let _ = conn.ctx.sessions.store.close_channel(s.id, channel, Some(1)).await;
        return Ok(());
    }
    if !replied {
        let _ = conn.handle.channel_success(id).await;
    }
    // The notice comes before the target's first output, and is recorded as shown: on a
    // terminal like that output, on stderr for a shell without one (its stdout may be piped).
    if let (ChannelKind::Shell, Some(notice)) = (&kind, conn.ctx.sessions.notice()) {
        let line = format!("{}\r\n", notice.replace('\n', "\r\n"));
        let data = line.clone().into_bytes();
        if req.pty.is_some() {
            conn.record(s, Event::Output { channel, data })
                .await
                .map_err(|_| recording_failed())?;
            let _ = client_tx.data_bytes(Bytes::from(line)).await;
        } else {
            let shown = Event::ExtOutput { channel, data };
            conn.record(s, shown).await.map_err(|_| recording_failed())?;
            let _ = client_tx.extended_data_bytes(1, Bytes::from(line)).await;
        }
    }
    let relay = Arc::new(Relay {
        conn: conn.clone(),
        s: s.clone(),
        id,
        channel,
        client: client_tx,
        target: Arc::new(up_tx),
        files,
        // Terminal channels are where people answer password prompts.
        secrets: req.pty.is_some().then(|| {
            let words = conn.ctx.config.secret_prompts.clone();
            std::sync::Mutex::new(SecretInputDetector::new(words))
        }),
    });
    if !req.early.is_empty() && !relay.client_data(Bytes::from(req.early)).await {
        return Err(recording_failed());
    }
    conn.spawn(relay.clone().target_to_client(held, up_rx));
    relay.client_to_target(client_rx).await;
    Ok(())
}

/// What the person is told when the target refuses a shell, exec or subsystem request. A
/// device that offers only a shell refuses `sftp` (and so modern `scp`) this way.
fn refused_request(target: &str, kind: &ChannelKind) -> String {
    match kind {
        ChannelKind::Subsystem { name } => format!(
            "keepwatch: target {target} refused the {name} subsystem (it may offer only a shell; legacy `scp -O` or a shell session may still work)"
        ),
        other => format!("keepwatch: target {target} refused the {} request", other.as_str()),
    }
}

/// Asks the target to offer the person's agent on this channel, and relays the agent
/// connections it then opens; a refusal is noted in the recording, and the channel goes on.
async fn forward_agent(
    conn: &Arc<Connection>,
    s: &Arc<ActiveSession>,
    up_tx: &ChannelWriteHalf<client::Msg>,
    up_rx: &mut ChannelReadHalf,
    held: &mut Vec<ChannelMsg>,
    channel: u32,
) {
    let ok = up_tx.agent_forward(true).await.is_ok() && await_reply(up_rx, held).await;
    if ok {
        conn.serve_agent(s);
    } else {
        let text = format!("target {} refused agent forwarding", s.target.name);
        let _ = conn.record(s, Event::Notice { channel: Some(channel), text }).await;
    }
}

/// Resolves once the session is told to end (the watch guard never lives across an await).
async fn terminated(rx: &mut tokio::sync::watch::Receiver<Option<String>>) {
    let _ = rx.wait_for(Option::is_some).await;
}

fn recording_failed() -> String {
    "keepwatch: the recording failed, so the session was ended".into()
}

/// One relayed channel: what both pumps share.
struct Relay {
    conn: Arc<Connection>,
    s: Arc<ActiveSession>,
    id: ChannelId,
    channel: u32,
    client: Arc<ChannelWriteHalf<Msg>>,
    target: Arc<ChannelWriteHalf<client::Msg>>,
    /// Set on SFTP and legacy SCP channels: parsed, policed, recorded as file events.
    files: Option<FileChannel>,
    /// Set on terminal channels: input typed at a password prompt is recorded as a marker.
    /// The lock is held for one synchronous call at a time, never across an await.
    secrets: Option<std::sync::Mutex<SecretInputDetector>>,
}

impl Relay {
    async fn record(&self, event: Event) -> bool {
        self.conn.record(&self.s, event).await.is_ok()
    }

    async fn record_input(&self, piece: InputPiece) -> bool {
        let data = match piece {
            InputPiece::Clear(data) => data,
            InputPiece::Redacted(n) => InputPiece::marker(n),
        };
        self.record(Event::Input { channel: self.channel, data }).await
    }

    /// Output on a terminal channel may show a password prompt.
    fn watch_output(&self, data: &[u8]) {
        if let Some(d) = &self.secrets {
            d.lock().unwrap_or_else(|e| e.into_inner()).output(data);
        }
    }

    /// Bytes from the person: recorded, then forwarded (or, on a file channel, parsed and
    /// forwarded or refused). Returns false when the channel must stop.
    async fn client_data(&self, data: Bytes) -> bool {
        self.conn.activity.touch();
        let Some(files) = &self.files else {
            let pieces = match &self.secrets {
                Some(d) => d.lock().unwrap_or_else(|e| e.into_inner()).input(&data),
                None => vec![InputPiece::Clear(data.to_vec())],
            };
            for piece in pieces {
                if !self.record_input(piece).await {
                    return false;
                }
            }
            return self.target.data_bytes(data).await.is_ok();
        };
        let out = files.client_bytes(&data);
        self.file_output(out, Direction::ToTarget, &self.client, &self.target).await
    }

    /// Applies a file tracker's output: events recorded, the bytes it could not account for
    /// recorded as they are (input or output, by `way`), `reply` back to the sender,
    /// `forward` on to the other side.
    async fn file_output<A, B>(
        &self,
        mut out: Output,
        way: Direction,
        back: &ChannelWriteHalf<A>,
        on: &ChannelWriteHalf<B>,
    ) -> bool
    where
        A: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static,
        B: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static,
    {
        let files = self.files.as_ref();
        // Content first: a transfer's event in `out` decides what becomes of its copy.
        if let Some(f) = files {
            f.spool_content(&out);
        }
        let events = std::mem::take(&mut out.events);
        if record_events(&self.conn, &self.s, self.channel, files, events).await.is_err() {
            return false;
        }
        for raw in out.raw_bytes() {
            let channel = self.channel;
            let data = raw.to_vec();
            let event = match way {
                Direction::ToTarget => Event::Input { channel, data },
                Direction::ToClient => Event::Output { channel, data },
            };
            if !self.record(event).await {
                return false;
            }
        }
        if !out.reply.is_empty() && back.data_bytes(Bytes::from(out.reply)).await.is_err() {
            return false;
        }
        if !out.forward.is_empty() && on.data_bytes(Bytes::from(out.forward)).await.is_err() {
            return false;
        }
        if out.close_channel {
            let _ = self.client.eof().await;
            let _ = self.client.close().await;
            let _ = self.target.close().await;
            return false;
        }
        true
    }

    async fn client_to_target(&self, mut rx: ChannelReadHalf) {
        let (channel, up) = (self.channel, &self.target);
        let mut terminate = self.s.termination();
        loop {
            let msg = tokio::select! {
                m = rx.wait() => m,
                _ = terminated(&mut terminate) => None,
                _ = self.conn.cancel.cancelled() => None,
            };
            let Some(msg) = msg else { break };
            let go_on = match msg {
                ChannelMsg::Data { data } => {
                    METRICS.relayed(Protocol::Ssh, metrics::Direction::ToTarget, data.len());
                    self.client_data(data).await
                }
                ChannelMsg::WindowChange { col_width, row_height, pix_width, pix_height } => {
                    let _ = self
                        .record(Event::Resize { channel, cols: col_width, rows: row_height })
                        .await;
                    let _ = up.window_change(col_width, row_height, pix_width, pix_height).await;
                    true
                }
                ChannelMsg::Signal { signal } => {
                    let text = format!("the person sent signal {signal:?}");
                    let _ = self.record(Event::Notice { channel: Some(channel), text }).await;
                    let _ = up.signal(signal).await;
                    true
                }
                ChannelMsg::SetEnv { variable_name, variable_value, .. } => {
                    // Too late to reach the target (it runs already): recorded, not sent.
                    let env = Event::Env {
                        channel,
                        name: variable_name,
                        value: variable_value,
                        forwarded: false,
                    };
                    let _ = self.record(env).await;
                    true
                }
                ChannelMsg::Eof => {
                    let _ =
                        self.record(Event::Eof { channel, direction: Direction::ToTarget }).await;
                    let _ = up.eof().await;
                    true
                }
                ChannelMsg::Close => false,
                _ => true,
            };
            if !go_on {
                break;
            }
        }
        let _ = up.close().await;
    }

    async fn target_to_client(self: Arc<Self>, held: Vec<ChannelMsg>, mut up: ChannelReadHalf) {
        let (channel, tx) = (self.channel, &self.client);
        let mut terminate = self.s.termination();
        let mut exit_status = None;
        let mut exit_signal = None;
        let mut held = held.into_iter();
        loop {
            let msg = match held.next() {
                Some(m) => Some(m),
                // Termination first: the other pump closes the target channel when it sees
                // it, and the person must get the reason rather than a bare close.
                None => tokio::select! {
                    biased;
                    _ = terminated(&mut terminate) => {
                        let text = self.s.terminated().unwrap_or_default();
                        let _ = self.record(Event::Notice { channel: Some(channel), text: text.clone() }).await;
                        let _ = tx.extended_data_bytes(1, Bytes::from(format!("\r\n{text}\r\n"))).await;
                        let _ = tx.eof().await;
                        let _ = tx.close().await;
                        self.conn.disconnect_terminated(text);
                        break;
                    }
                    m = up.wait() => m,
                    _ = self.conn.cancel.cancelled() => None,
                },
            };
            let Some(msg) = msg else { break };
            match msg {
                ChannelMsg::Data { data } => {
                    self.conn.activity.touch();
                    METRICS.relayed(Protocol::Ssh, metrics::Direction::ToClient, data.len());
                    let ok = match &self.files {
                        None => {
                            self.watch_output(&data);
                            // On a failed recording the termination branch ends the channel.
                            if !self.record(Event::Output { channel, data: data.to_vec() }).await {
                                continue;
                            }
                            tx.data_bytes(data).await.is_ok()
                        }
                        Some(files) => {
                            let out = files.server_bytes(&data);
                            self.file_output(out, Direction::ToClient, &self.target, tx).await
                        }
                    };
                    if !ok {
                        break;
                    }
                }
                ChannelMsg::ExtendedData { data, ext } => {
                    METRICS.relayed(Protocol::Ssh, metrics::Direction::ToClient, data.len());
                    self.watch_output(&data);
                    if !self.record(Event::ExtOutput { channel, data: data.to_vec() }).await {
                        continue;
                    }
                    if tx.extended_data_bytes(ext, data).await.is_err() {
                        break;
                    }
                }
                ChannelMsg::Eof => {
                    let _ =
                        self.record(Event::Eof { channel, direction: Direction::ToClient }).await;
                    let _ = tx.eof().await;
                }
                ChannelMsg::ExitStatus { exit_status: st } => {
                    exit_status = Some(st);
                    let _ = tx.exit_status(st).await;
                }
                ChannelMsg::ExitSignal { signal_name, core_dumped, error_message, lang_tag } => {
                    exit_signal = Some(format!("{signal_name:?}"));
                    let _ = self
                        .conn
                        .handle
                        .exit_signal_request(
                            self.id,
                            signal_name,
                            core_dumped,
                            error_message,
                            lang_tag,
                        )
                        .await;
                }
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        if let Some(files) = &self.files {
            let out = files.finish();
            let _ = record_events(&self.conn, &self.s, channel, Some(files), out.events).await;
        }
        let unfinished = self
            .secrets
            .as_ref()
            .and_then(|d| d.lock().unwrap_or_else(|e| e.into_inner()).finish());
        if let Some(piece) = unfinished {
            let _ = self.record_input(piece).await;
        }
        let _ = self.record(Event::ChannelClose { channel, exit_status, exit_signal }).await;
        let _ = tx.close().await;
        if let Err(e) =
            self.conn.ctx.sessions.store.close_channel(self.s.id, channel, exit_status).await
        {
            tracing::warn!(session_id = %self.s.id, error = %e, "cannot store channel close");
        }
    }
}
