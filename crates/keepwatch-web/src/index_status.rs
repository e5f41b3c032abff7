//! `GET /api/v1/index`: how far the search index is behind the recordings, for auditors. The
//! answer is `Store::index_status`; the CLI's `keepwatch index status --json` prints the same
//! rows ([`index_status_json`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use keepwatch_core::{Role, SessionId};
use keepwatch_store::{IndexScope, IndexStatus};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::extract::Params;
use crate::openapi::{Guarded, Malformed, Missing};
use crate::{ApiError, WebState, views};

/// One session's index status as the API and `keepwatch index status --json` give it.
pub fn index_status_json(s: &IndexStatus) -> Value {
    serde_json::to_value(views::IndexRow::from(s)).unwrap_or_default()
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct IndexQuery {
    /// Comma-separated session ids; absent: every session not fully indexed.
    session: Option<String>,
}

/// How far the search index is behind the recordings.
///
/// The sessions not fully indexed, or those named: state complete, behind, rebuilding or error, and the
/// bytes indexed of the bytes recorded. Auditors.
#[utoipa::path(get, path = "/api/v1/index", tag = "sessions", params(IndexQuery),
    responses((status = 200, description = "One row per session", body = Vec<views::IndexRow>), Malformed, Missing, Guarded))]
pub(crate) async fn index_status(
    State(st): State<Arc<WebState>>,
    caller: Caller,
    Params(q): Params<IndexQuery>,
) -> Result<Json<Vec<views::IndexRow>>, ApiError> {
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
    Ok(Json(rows.iter().map(views::IndexRow::from).collect()))
}
