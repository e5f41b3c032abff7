//! Port-forwarding tunnels a grant allows, recorded as open/close with the bytes carried each
//! way: `ssh -L` (the person's side opens, the gateway connects through the target) and
//! `ssh -R` (the target accepts on a port it listens on, the gateway opens a channel back to
//! the person).

use std::sync::Arc;

use keepwatch_recording::Event;
use keepwatch_store::{ChannelRow, now_us};
use russh::server::Msg;
use russh::{Channel, ChannelStream, client};

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
    let ends = Ends { kind: "tunnel", host, port, originator };
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
            let ends = Ends { kind: "remote-tunnel", host, port, originator };
            pump(&conn, &s, ch, ends, person.into_stream(), f.channel.into_stream()).await;
        });
    }
}

struct Ends {
    /// `tunnel` (ssh -L) or `remote-tunnel` (ssh -R).
    kind: &'static str,
    host: String,
    port: u32,
    originator: String,
}

/// Relays a tunnel until either side closes, recording its open, close and byte counts.
async fn pump(
    conn: &Connection,
    s: &ActiveSession,
    ch: u32,
    ends: Ends,
    mut person: ChannelStream<Msg>,
    mut target: ChannelStream<client::Msg>,
) {
    let row = ChannelRow {
        channel: ch,
        kind: ends.kind.into(),
        command: None,
        subsystem: None,
        pty_term: None,
        destination: Some(format!("{}:{}", ends.host, ends.port)),
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
    let mut terminate = s.terminate.clone();
    let (to_target, to_person) = tokio::select! {
        r = tokio::io::copy_bidirectional(&mut person, &mut target) => r.unwrap_or((0, 0)),
        _ = terminate.wait_for(Option::is_some) => (0, 0),
        _ = conn.cancel.cancelled() => (0, 0),
    };
    let close =
        Event::TunnelClose { channel: ch, bytes_to_target: to_target, bytes_to_client: to_person };
    let _ = conn.record(s, close).await;
    let _ = conn.ctx.store.close_channel(s.id, ch, None).await;
}
