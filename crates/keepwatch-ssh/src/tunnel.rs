//! Port-forwarding tunnels a grant allows, recorded as open/close with the bytes carried each
//! way: `ssh -L` (the person's side opens, the gateway connects through the target), `ssh -R`
//! (the target accepts on a port it listens on, the gateway opens a channel back to the
//! person) and `ssh -A` (a program on the target uses the agent socket, the gateway opens an
//! agent channel back to the person).
//!
//! Under a grant with `record_tunnel_bytes`, the bytes of `-L` and `-R` tunnels are recorded
//! too, as `Input` (person to target) and `Output` (target to person) of the tunnel's channel,
//! each before it is forwarded. Agent channels always are, message by message (`agent.rs`):
//! only listing identities and signing pass, none of which carries a private key; requests
//! that would (adding a key) are refused in the agent's stead, and a channel that does not
//! speak the agent protocol is closed.

use std::sync::Arc;

use keepwatch_core::Protocol;
use keepwatch_core::metrics::{self, METRICS};
use keepwatch_recording::Event;
use keepwatch_store::{ChannelRow, now_us};
use russh::server::Msg;
use russh::{Channel, ChannelStream, client};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::agent::{AgentFilter, AgentSide};
use crate::connection::{ActiveSession, Connection};
use crate::upstream::Forwarded;

/// A local forward (`ssh -L`) the grant allowed.
pub(crate) async fn run_local(
    conn: Arc<Connection>,
    channel: Channel<Msg>,
    host: String,
    port: u32,
    originator: String,
) {
    let ch = u32::from(channel.id());
    let Some(target) = conn.login.target.clone() else { return };
    let Ok(s) = conn.session(&target, None).await else {
        let _ = channel.close().await;
        return;
    };
    let (orig_host, orig_port) = originator
        .rsplit_once(':')
        .map_or((originator.as_str(), 0), |(h, p)| (h, p.parse().unwrap_or(0)));
    let up =
        match s.upstream.channel_open_direct_tcpip(host.as_str(), port, orig_host, orig_port).await
        {
            Ok(up) => up,
            Err(e) => {
                let text = format!("tunnel to {host}:{port} refused by the target: {e}");
                let _ = conn.record(&s, Event::Notice { channel: Some(ch), text }).await;
                let _ = channel.close().await;
                return;
            }
        };
    let destination = Some(format!("{host}:{port}"));
    let record = Record::tunnel(s.grant.record_tunnel_bytes);
    let ends = Ends { kind: "tunnel", host, port, originator, destination, record };
    pump(&conn, &s, ch, ends, channel.into_stream(), up.into_stream()).await;
}

/// Serves the connections the target accepts for this session's `ssh -R` ports.
pub(crate) async fn run_remote(
    conn: Arc<Connection>,
    s: Arc<ActiveSession>,
    mut rx: tokio::sync::mpsc::Receiver<Forwarded>,
) {
    loop {
        let f = tokio::select! {
            f = rx.recv() => f,
            _ = conn.cancel.cancelled() => None,
        };
        let Some(f) = f else { return };
        let (task_conn, s) = (conn.clone(), s.clone());
        // Tracked by the connection, so it ends (and records its close) before the seal.
        conn.spawn(async move {
            let conn = task_conn;
            let (host, port) = f.connected;
            let person = conn
                .handle
                .channel_open_forwarded_tcpip(
                    host.clone(),
                    port,
                    f.originator.0.clone(),
                    f.originator.1,
                )
                .await;
            let Ok(person) = person else {
                let _ = f.channel.close().await;
                return;
            };
            let ch = u32::from(person.id());
            let originator = format!("{}:{}", f.originator.0, f.originator.1);
            let destination = Some(format!("{host}:{port}"));
            let record = Record::tunnel(s.grant.record_tunnel_bytes);
            let ends = Ends { kind: "remote-tunnel", host, port, originator, destination, record };
            pump(&conn, &s, ch, ends, person.into_stream(), f.channel.into_stream()).await;
        });
    }
}

/// Serves the connections the target makes to the person's agent (`ssh -A`).
pub(crate) async fn run_agent(
    conn: Arc<Connection>,
    s: Arc<ActiveSession>,
    mut rx: tokio::sync::mpsc::Receiver<Channel<client::Msg>>,
) {
    loop {
        let target = tokio::select! {
            c = rx.recv() => c,
            _ = conn.cancel.cancelled() => None,
        };
        let Some(target) = target else { return };
        let (task_conn, s) = (conn.clone(), s.clone());
        // Tracked by the connection, so it ends (and records its close) before the seal.
        conn.spawn(async move {
            let conn = task_conn;
            let Ok(person) = conn.handle.channel_open_agent().await else {
                let _ = target.close().await;
                return;
            };
            let ch = u32::from(person.id());
            let ends = Ends {
                kind: "agent",
                host: "agent".into(),
                port: 0,
                originator: s.target.name.clone(),
                destination: None,
                record: Record::AgentMessages,
            };
            pump(&conn, &s, ch, ends, person.into_stream(), target.into_stream()).await;
        });
    }
}

struct Ends {
    /// `tunnel` (ssh -L), `remote-tunnel` (ssh -R) or `agent` (ssh -A).
    kind: &'static str,
    host: String,
    port: u32,
    originator: String,
    /// `HOST:PORT` for the channel row (none for the agent).
    destination: Option<String>,
    record: Record,
}

/// What a tunnel records besides its open, close and byte counts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Record {
    Counts,
    /// Every byte (`--record-tunnel-bytes`).
    Bytes,
    /// The agent protocol, message by message, refusing what it must not carry.
    AgentMessages,
}

impl Record {
    fn tunnel(record_bytes: bool) -> Self {
        if record_bytes { Record::Bytes } else { Record::Counts }
    }
}

/// Which way a tunnel's bytes go.
#[derive(Clone, Copy)]
enum Way {
    ToTarget,
    ToPerson,
}

/// Relays a tunnel until both sides are done (or the session ends), recording its open,
/// close and byte counts.
async fn pump(
    conn: &Connection,
    s: &ActiveSession,
    ch: u32,
    ends: Ends,
    person: ChannelStream<Msg>,
    target: ChannelStream<client::Msg>,
) {
    let row = ChannelRow {
        channel: ch,
        kind: ends.kind.into(),
        command: None,
        subsystem: None,
        pty_term: None,
        destination: ends.destination,
        opened_at_us: now_us(),
        closed_at_us: None,
        exit_status: None,
    };
    if let Err(e) = conn.ctx.sessions.store.add_channel(s.id, &row).await {
        tracing::error!(session_id = %s.id, error = %e, "cannot store tunnel");
    }
    let open = Event::TunnelOpen {
        channel: ch,
        host: ends.host,
        port: ends.port,
        originator: ends.originator,
    };
    if conn.record(s, open).await.is_err() {
        return;
    }
    let (mut person_rx, person_tx) = tokio::io::split(person);
    let (mut target_rx, target_tx) = tokio::io::split(target);
    // Counted as they go, so a tunnel cut short by the session's end still reports them.
    let (mut to_target, mut to_person) = (0u64, 0u64);
    let tunnel = Tunnel {
        conn,
        s,
        ch,
        record: ends.record,
        agent: std::sync::Mutex::new(AgentFilter::default()),
        person_tx: tokio::sync::Mutex::new(person_tx),
        target_tx: tokio::sync::Mutex::new(target_tx),
    };
    let relay = async {
        tokio::join!(
            tunnel.carry(Way::ToTarget, &mut person_rx, &mut to_target),
            tunnel.carry(Way::ToPerson, &mut target_rx, &mut to_person),
        )
    };
    let mut terminate = s.termination();
    tokio::select! {
        _ = relay => {}
        _ = terminate.wait_for(Option::is_some) => {}
        _ = conn.cancel.cancelled() => {}
    }
    METRICS.relayed(Protocol::Ssh, metrics::Direction::ToTarget, to_target as usize);
    METRICS.relayed(Protocol::Ssh, metrics::Direction::ToClient, to_person as usize);
    let close =
        Event::TunnelClose { channel: ch, bytes_to_target: to_target, bytes_to_client: to_person };
    let _ = conn.record(s, close).await;
    let _ = conn.ctx.sessions.store.close_channel(s.id, ch, None).await;
}

/// What both directions of one tunnel share.
struct Tunnel<'a, P, T> {
    conn: &'a Connection,
    s: &'a ActiveSession,
    ch: u32,
    record: Record,
    /// Agent channels only: the messages each way. Locked for one synchronous call.
    agent: std::sync::Mutex<AgentFilter>,
    /// The write halves, shared because an agent refusal goes back the way it came.
    person_tx: tokio::sync::Mutex<P>,
    target_tx: tokio::sync::Mutex<T>,
}

impl<P: AsyncWrite + Unpin, T: AsyncWrite + Unpin> Tunnel<'_, P, T> {
    /// Copies one direction until its end (then passes the end on), recording the bytes
    /// first when the grant says so, and checking agent messages on agent channels.
    async fn carry(&self, way: Way, from: &mut (impl AsyncRead + Unpin), count: &mut u64) {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            self.conn.activity.touch();
            let ok = match self.record {
                Record::Counts => self.write(way, &buf[..n]).await,
                Record::Bytes => {
                    self.record_bytes(way, &buf[..n]).await && self.write(way, &buf[..n]).await
                }
                Record::AgentMessages => self.agent_bytes(way, &buf[..n]).await,
            };
            if !ok {
                break;
            }
            *count += n as u64;
        }
        let _ = match way {
            Way::ToTarget => self.target_tx.lock().await.shutdown().await,
            Way::ToPerson => self.person_tx.lock().await.shutdown().await,
        };
    }

    async fn write(&self, way: Way, data: &[u8]) -> bool {
        match way {
            Way::ToTarget => self.target_tx.lock().await.write_all(data).await.is_ok(),
            Way::ToPerson => self.person_tx.lock().await.write_all(data).await.is_ok(),
        }
    }

    /// Agent messages: whole ones are recorded and passed on, refused requests answered
    /// in the agent's stead, and anything that is not the agent protocol ends the channel.
    async fn agent_bytes(&self, way: Way, data: &[u8]) -> bool {
        let side = match way {
            Way::ToPerson => AgentSide::Target,
            Way::ToTarget => AgentSide::Agent,
        };
        let v = self.agent.lock().unwrap_or_else(|e| e.into_inner()).feed(side, data);
        if let Some(why) = v.close {
            let text = format!("agent channel closed: {why} is not the agent protocol");
            let _ = self.conn.record(self.s, Event::Notice { channel: Some(self.ch), text }).await;
            return false;
        }
        for what in &v.refused {
            let text =
                format!("agent request refused: {what} (forwarded agents only list and sign)");
            if self
                .conn
                .record(self.s, Event::Notice { channel: Some(self.ch), text })
                .await
                .is_err()
            {
                return false;
            }
        }
        let passed = v.forward.is_empty()
            || (self.record_bytes(way, &v.forward).await && self.write(way, &v.forward).await);
        if !passed {
            return false;
        }
        if !v.reply.is_empty() {
            // The refusal goes back to the target, which asked.
            return self.record_bytes(Way::ToTarget, &v.reply).await
                && self.write(Way::ToTarget, &v.reply).await;
        }
        true
    }

    /// Returns false when the recording failed (the session is ending).
    async fn record_bytes(&self, way: Way, data: &[u8]) -> bool {
        let (channel, data) = (self.ch, data.to_vec());
        let event = match way {
            Way::ToTarget => Event::Input { channel, data },
            Way::ToPerson => Event::Output { channel, data },
        };
        self.conn.record(self.s, event).await.is_ok()
    }
}
