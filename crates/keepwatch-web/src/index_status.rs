//! `GET /api/v1/index`: how far the search index is behind the recordings, for auditors. The
//! answer is `Store::index_status`; the CLI's `keepwatch index status --json` prints the same
//! rows ([`index_status_json`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use keepwatch_core::{Role, SessionId};
use keepwatch_store::{IndexScope, IndexStatus};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::rfc3339;
use crate::auth::Caller;
use crate::{ApiError, WebState};

/// One session's index status as the API and `keepwatch index status --json` give it.
pub fn index_status_json(s: &IndexStatus) -> Value {
    json!({
        "session": s.session_id.to_string(),
        "session_status": s.session_status.as_str(),
        "state": s.state.as_str(),
        "bytes_indexed": s.bytes_indexed,
        "bytes_recorded": s.bytes_recorded,
        "commands": s.commands,
        "updated_at": s.updated_at_us.map(rfc3339),
        "error": s.error,
    })
}

#[derive(Deserialize)]
pub(crate) struct IndexQuery {
    /// Comma-separated session ids; absent: every session not fully indexed.
    session: Option<String>,
}

pub(crate) async fn index_status(
    State(st): State<Arc<WebState>>,
    caller: Caller,
    Query(q): Query<IndexQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Auditor)?;
    let ids: Vec<SessionId> = q
        .session
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| ApiError::not_found(format!("session {s}"))))
        .collect::<Result<_, _>>()?;
    let scope = if ids.is_empty() { IndexScope::Unfinished } else { IndexScope::Sessions(&ids) };
    let rows = st.store.index_status(&st.blobs, scope).await?;
    Ok(Json(rows.iter().map(index_status_json).collect()))
}
