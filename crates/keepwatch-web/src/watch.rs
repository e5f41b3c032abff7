//! Watching a live session over a WebSocket: the current screen first, then output as the
//! recorder records it. A watcher that falls behind by more than the recorder's bounded
//! backlog is dropped and told so; it never slows the session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use keepwatch_core::{Look, Role, SessionId};
use keepwatch_recorder::WatchStart;
use keepwatch_recording::Event;
use keepwatch_store::SessionRow;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::api::{NODE_REQUEST_WINDOW_US, check_node_request, look};
use crate::playback::Utf8Stream;
use crate::{ApiError, NODE_REQUEST_HEADER, WebState};

/// Watch a live session over a WebSocket: the current screen, then live output.
///
/// Audited as a watch. Auditors.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/watch", tag = "sessions", params(crate::api::Id),
    responses((status = 101, description = "Switching to the WebSocket (docs/api.md gives its messages)"),
        (status = 400, description = "Not a WebSocket upgrade request", body = crate::views::ErrorBody),
        (status = 409, description = "The session is not live", body = crate::views::ErrorBody),
        (status = 426, description = "The connection cannot be upgraded", body = crate::views::ErrorBody),
        crate::openapi::Missing, crate::openapi::Heavy, crate::openapi::Guarded))]
pub(crate) async fn watch(
    State(st): State<Arc<WebState>>,
    caller: crate::auth::Caller,
    crate::extract::PathParams(id): crate::extract::PathParams<String>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Auditor)?;
    // Not an upgrade: refused before the look, so nothing is audited for it.
    let ws = ws.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let s = look(&st, &caller, &id, Look::Watch, "web").await?;
    if let Some(start) = st.live.watch(s.id).await {
        return watch_here(st, s, start, ws).await;
    }
    // Live on another node (the look above was decided and audited here, for this caller):
    // that node streams the watch, this one relays it.
    let Some(remote) = st.live.watch_elsewhere(s.id).await else {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("session {} is not live", s.id)));
    };
    let id = s.id;
    Ok(ws.on_upgrade(move |socket| async move {
        if let Err(e) = relay(remote, socket).await {
            tracing::debug!(session_id = %id, error = %e, "watcher left");
        }
    }))
}

/// Streams a session live on this node: the screen so far, then what is recorded.
async fn watch_here(
    st: Arc<WebState>,
    s: SessionRow,
    start: WatchStart,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
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

/// What a node asks the node running a session when one of its callers watches it (signed,
/// in the [`crate::NODE_REQUEST_HEADER`] of `GET /api/v1/nodes/watch`).
#[derive(Deserialize, Serialize)]
pub struct NodeWatch {
    /// The asking node, for the log.
    pub from: String,
    pub session: String,
    /// When the asking node signed it, unix µs.
    pub at_us: i64,
    /// Random, used once: a request seen again is refused, so a copy of it cannot open a
    /// second watch within the window.
    pub nonce: String,
}

/// Node requests' nonces seen within the request window.
#[derive(Default)]
pub(crate) struct SeenNonces(Mutex<HashMap<String, i64>>);

/// Most nonces held at once: only nodes holding the cluster key can add one, but the map is
/// bounded all the same (a full map refuses requests until the window moves on).
const NONCES_MAX: usize = 10_000;

impl SeenNonces {
    /// True the first time `nonce` is seen within the window.
    fn first_use(&self, nonce: &str, now_us: i64) -> Result<bool, ApiError> {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|_, at| now_us - *at <= 2 * NODE_REQUEST_WINDOW_US);
        if seen.contains_key(nonce) {
            return Ok(false);
        }
        if seen.len() >= NONCES_MAX {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many node requests at once; try again in a minute",
            ));
        }
        seen.insert(nonce.to_owned(), now_us);
        Ok(true)
    }
}

/// Another node relays a watch of a session live here to its caller. That node decided and
/// audited the look; this one checks the request (signed with the cluster's node key, recent,
/// its nonce never seen) and streams the watch exactly as it would to its own caller.
pub(crate) async fn node_watch(
    State(st): State<Arc<WebState>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let signed =
        headers.get(NODE_REQUEST_HEADER).map(|v| v.as_bytes().to_vec()).unwrap_or_default();
    let req: NodeWatch = check_node_request(&st, &headers, &signed, |r: &NodeWatch| r.at_us)?;
    if req.nonce.len() < 16 || !st.node_nonces.first_use(&req.nonce, keepwatch_store::now_us())? {
        return Err(ApiError::unauthorized("node request replayed"));
    }
    let id: SessionId =
        req.session.parse().map_err(|_| ApiError::bad_request("not a session id"))?;
    let from = keepwatch_core::clean(&req.from, 64);
    let not_live =
        || ApiError::new(StatusCode::CONFLICT, format!("session {id} is not live on this node"));
    let s = st.store.session(id).await?.ok_or_else(not_live)?;
    let start = st.live.watch(id).await.ok_or_else(not_live)?;
    let ws = ws.map_err(|e| ApiError::bad_request(format!("not a WebSocket upgrade: {e}")))?;
    tracing::info!(session_id = %id, from = %from, "another node relays a watch");
    watch_here(st, s, start, ws).await
}

/// Relays a watch streamed by another node to this node's watcher; if that node stops
/// answering mid-watch, the watcher is told so.
async fn relay(mut remote: crate::RemoteWatch, mut socket: WebSocket) -> Result<(), axum::Error> {
    let mut ended = false;
    loop {
        let msg = tokio::select! {
            m = remote.next() => m,
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                Some(Ok(_)) => continue,
            },
        };
        let Some(msg) = msg else { break };
        ended |= msg.contains("\"type\":\"end\"");
        match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(msg.into()))).await {
            Ok(r) => r?,
            Err(_) => return Err(axum::Error::new("watcher stuck: dropped")),
        }
    }
    if !ended {
        let reason = "the gateway node running the session stopped answering; reconnect to resume";
        send(&mut socket, json!({ "type": "end", "reason": reason })).await?;
    }
    socket.send(Message::Close(None)).await
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
            // A database session's statements and outcomes, as psql would show them.
            ev => match ev.transcript() {
                Some(text) => json!({ "type": "output", "data": text }),
                None => continue,
            },
        };
        send(&mut socket, msg).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_request_nonce_counts_once_within_the_window() {
        let seen = SeenNonces::default();
        let t0 = 1_700_000_000_000_000;
        assert!(seen.first_use("n1", t0).unwrap());
        assert!(!seen.first_use("n1", t0 + 1).unwrap(), "replayed");
        assert!(!seen.first_use("n1", t0 + 2 * NODE_REQUEST_WINDOW_US).unwrap(), "still held");
        // Past twice the window a request that old is refused by its age anyway; the nonce
        // is forgotten so the map stays bounded.
        assert!(seen.first_use("n2", t0 + 2 * NODE_REQUEST_WINDOW_US + 2).unwrap());
        assert_eq!(seen.0.lock().unwrap().len(), 1);
        let full = SeenNonces::default();
        for i in 0..NONCES_MAX {
            assert!(full.first_use(&format!("k{i}"), t0).unwrap());
        }
        assert!(full.first_use("one-more", t0).is_err(), "bounded");
    }
}
