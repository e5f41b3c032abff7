//! Port-forwarding tunnels (`ssh -L`) that a grant allows: opened through the target's
//! connection, recorded as open/close with the bytes carried each way.

use std::sync::Arc;

use keepwatch_recording::Event;
use keepwatch_store::{ChannelRow, now_us};
use russh::Channel;
use russh::server::Msg;

use crate::connection::Connection;

pub(crate) async fn run(
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
                let _ = conn
                    .record(
                        &s,
                        Event::Notice {
                            channel: Some(ch),
                            text: format!("tunnel to {host}:{port} refused by the target: {e}"),
                        },
                    )
                    .await;
                let _ = channel.close().await;
                return;
            }
        };
    let row = ChannelRow {
        channel: ch,
        kind: "tunnel".into(),
        command: None,
        subsystem: None,
        pty_term: None,
        destination: Some(format!("{host}:{port}")),
        opened_at_us: now_us(),
        closed_at_us: None,
        exit_status: None,
    };
    if let Err(e) = conn.ctx.store.add_channel(s.id, &row).await {
        tracing::error!(session_id = %s.id, error = %e, "cannot store tunnel");
    }
    if conn
        .record(&s, Event::TunnelOpen { channel: ch, host: host.clone(), port, originator })
        .await
        .is_err()
    {
        let _ = channel.close().await;
        return;
    }
    let mut client = channel.into_stream();
    let mut target_side = up.into_stream();
    let mut terminate = s.terminate.clone();
    let (to_target, to_client) = tokio::select! {
        r = tokio::io::copy_bidirectional(&mut client, &mut target_side) => r.unwrap_or((0, 0)),
        _ = terminate.wait_for(Option::is_some) => (0, 0),
        _ = conn.cancel.cancelled() => (0, 0),
    };
    let _ = conn
        .record(
            &s,
            Event::TunnelClose {
                channel: ch,
                bytes_to_target: to_target,
                bytes_to_client: to_client,
            },
        )
        .await;
    let _ = conn.ctx.store.close_channel(s.id, ch, None).await;
}
