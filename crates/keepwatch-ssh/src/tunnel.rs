//! Port-forwarding tunnels a grant allows, recorded as open/close with the bytes carried each
//! way: `ssh -L` (the person's side opens, the gateway connects through the target), `ssh -R`
//! (the target accepts on a port it listens on, the gateway opens a channel back to the
//! person) and `ssh -A` (a program on the target uses the agent socket, the gateway opens an
//! agent channel back to the person).
//!
//! Under a grant with `record_tunnel_bytes`, the bytes of `-L` and `-R` tunnels are recorded
//! too, as `Input` (person to target) and `Output` (target to person) of the tunnel's channel,
//! each before it is forwarded. Agent channels never are: they can carry private keys.

use std::sync::Arc;

use keepwatch_recording::Event;
use keepwatch_store::{ChannelRow, now_us};
use russh::server::Msg;
use russh::{Channel, ChannelStream, client};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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
    let Ok(s) = conn.session(&target).await else {
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
    let record = s.grant.record_tunnel_bytes;
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
        let (conn, s) = (conn.clone(), s.clone());
        tokio::spawn(async move {
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
            let record = s.grant.record_tunnel_bytes;
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
        let (conn, s) = (conn.clone(), s.clone());
        tokio::spawn(async move {
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
                record: false,
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
    /// Record the bytes, not only their counts.
    record: bool,
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
    if let Err(e) = conn.ctx.store.add_channel(s.id, &row).await {
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
    let (mut person_rx, mut person_tx) = tokio::io::split(person);
    let (mut target_rx, mut target_tx) = tokio::io::split(target);
    // Counted as they go, so a tunnel cut short by the session's end still reports them.
    let (mut to_target, mut to_person) = (0u64, 0u64);
    let tunnel = Tunnel { conn, s, ch, record: ends.record };
    let relay = async {
        tokio::join!(
            tunnel.carry(Way::ToTarget, &mut person_rx, &mut target_tx, &mut to_target),
            tunnel.carry(Way::ToPerson, &mut target_rx, &mut person_tx, &mut to_person),
        )
    };
    let mut terminate = s.terminate.clone();
    tokio::select! {
        _ = relay => {}
        _ = terminate.wait_for(Option::is_some) => {}
        _ = conn.cancel.cancelled() => {}
    }
    let close =
        Event::TunnelClose { channel: ch, bytes_to_target: to_target, bytes_to_client: to_person };
    let _ = conn.record(s, close).await;
    let _ = conn.ctx.store.close_channel(s.id, ch, None).await;
}

/// What both directions of one tunnel share.
struct Tunnel<'a> {
    conn: &'a Connection,
    s: &'a ActiveSession,
    ch: u32,
    record: bool,
}

impl Tunnel<'_> {
    /// Copies one direction until its end (then passes the end on), recording the bytes
    /// first when the grant says so.
    async fn carry(
        &self,
        way: Way,
        from: &mut (impl AsyncRead + Unpin),
        to: &mut (impl AsyncWrite + Unpin),
        count: &mut u64,
    ) {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if self.record && !self.record_bytes(way, &buf[..n]).await {
                break;
            }
            if to.write_all(&buf[..n]).await.is_err() {
                break;
            }
            *count += n as u64;
        }
        let _ = to.shutdown().await;
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
