//! Watching a live session over a WebSocket: the current screen first, then output as the
//! recorder records it. A watcher that falls behind by more than the recorder's bounded
//! backlog is dropped and told so; it never slows the session.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use keepwatch_core::{Look, Role, SessionId};
use keepwatch_recorder::WatchStart;
use keepwatch_recording::Event;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::api::look;
use crate::playback::Utf8Stream;
use crate::{ApiError, WebState};

pub(crate) async fn watch(
    State(st): State<Arc<WebState>>,
    caller: crate::auth::Caller,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    caller.require(Role::Auditor)?;
    let s = look(&st, &caller, &id, Look::Watch, "web").await?;
    let not_live = || ApiError::new(StatusCode::CONFLICT, format!("session {} is not live", s.id));
    let start = st.live.watch(s.id).await.ok_or_else(not_live)?;
    // The screen so far is read from the recording (from the last keyframe) like a replay.
    let screen = {
        let _permit = st.heavy.permit("the watch").await?;
        crate::replay::current_screen(&st, &s, start.recorded_len).await.unwrap_or_else(|e| {
            tracing::debug!(session_id = %s.id, error = e.message, "watch: no current screen");
            (None, 80, 24, String::new())
        })
    };
    let id = s.id;
    Ok(ws.on_upgrade(move |socket| async move {
        if let Err(e) = stream(&st, id, start, screen, socket).await {
            tracing::debug!(session_id = %id, error = %e, "watcher left");
        }
    }))
}

/// How long one message may take to reach a watcher before it counts as stuck.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Sends one message; a watcher that does not take it in time is dropped (its backlog is
/// bounded by the recorder's broadcast either way).
async fn send(socket: &mut WebSocket, v: Value) -> Result<(), axum::Error> {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(v.to_string().into()))).await
    {
        Ok(r) => r,
        Err(_) => Err(axum::Error::new("watcher stuck: dropped")),
    }
}

async fn stream(
    st: &WebState,
    id: SessionId,
    mut start: WatchStart,
    (mut channel, cols, rows, screen): (Option<u32>, u32, u32, String),
    mut socket: WebSocket,
) -> Result<(), axum::Error> {
    send(&mut socket, json!({ "type": "screen", "cols": cols, "rows": rows, "data": screen }))
        .await?;
    let mut text = Utf8Stream::default();
    loop {
        let ev = tokio::select! {
            ev = start.events.recv() => ev,
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                Some(Ok(_)) => continue,
            },
        };
        let ev = match ev {
            Ok(ev) => ev,
            Err(RecvError::Lagged(n)) => {
                let reason =
                    format!("you fell behind by {n} events and were dropped; reconnect to resume");
                send(&mut socket, json!({ "type": "end", "reason": reason })).await?;
                return socket.send(Message::Close(None)).await;
            }
            Err(RecvError::Closed) => {
                // The recorder sealed the session: its row says how it ended.
                let reason = match st.store.session(id).await.ok().flatten() {
                    Some(row) => match row.reason {
                        Some(r) => format!("session {}: {r}", row.status),
                        None => format!("session {}", row.status),
                    },
                    None => "session ended".into(),
                };
                send(&mut socket, json!({ "type": "end", "reason": reason })).await?;
                return socket.send(Message::Close(None)).await;
            }
        };
        let msg = match &ev.event {
            Event::ChannelOpen { channel: c, pty: Some(p), .. } if channel.is_none() => {
                channel = Some(*c);
                json!({ "type": "resize", "cols": p.cols, "rows": p.rows })
            }
            Event::Output { channel: c, data } | Event::ExtOutput { channel: c, data }
                if Some(*c) == channel =>
            {
                let s = text.push(data);
                if s.is_empty() {
                    continue;
                }
                json!({ "type": "output", "data": s })
            }
            Event::Resize { channel: c, cols, rows } if Some(*c) == channel => {
                json!({ "type": "resize", "cols": cols, "rows": rows })
            }
            _ => continue,
        };
        send(&mut socket, msg).await?;
    }
}
