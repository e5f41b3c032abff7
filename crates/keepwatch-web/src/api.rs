//! The `/api/v1` handlers (`docs/api.md`).

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use keepwatch_core::{
    AuditAction, Look, PersonName, RefusalAudit, Role, SessionId, SessionScope, SessionStatus, Tag,
    parse_tags,
};
use keepwatch_store::{
    AuditFilter, CommandRow, LookError, NewAudit, NewToken, SearchQuery, SessionFilter, SessionRow,
    TagChange, TargetSecret, TransferFilter,
};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{COOKIE, Caller, cookie_from_headers};
use crate::extract::{Body, Params, PathParams};
use crate::openapi::{Clash, Guarded, Heavy, JsonBody, Malformed, Missing};
use crate::views;
use crate::{ApiError, WebState};

type St = State<Arc<WebState>>;
type ApiResult<T> = Result<Json<T>, ApiError>;

pub(crate) fn routes() -> axum::Router<Arc<WebState>> {
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(crate::openapi::openapi_json))
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/sessions", get(sessions))
        .route("/api/v1/sessions/{id}", get(session))
        .route("/api/v1/sessions/{id}/replay", get(replay))
        .route("/api/v1/sessions/{id}/export", get(export))
        .route("/api/v1/sessions/{id}/terminate", post(terminate))
        .route("/api/v1/sessions/{id}/tags", post(add_tags))
        .route("/api/v1/sessions/{id}/tags/{tag}", delete(remove_tag))
        .route("/api/v1/nodes/terminate", post(node_terminate))
        .route("/api/v1/nodes/watch", get(crate::watch::node_watch))
        .route("/api/v1/sessions/{id}/watch", get(crate::watch::watch))
        .route("/api/v1/search", get(search))
        .route("/api/v1/report", get(report))
        .route("/api/v1/index", get(crate::index_status::index_status))
        .route("/api/v1/live", get(live))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/people", get(people).post(add_person))
        .route("/api/v1/targets", get(targets).post(add_target))
        .route("/api/v1/grants", get(grants).post(add_grant).delete(remove_grant))
        .route("/api/v1/tokens", post(add_token))
}

/// RFC 3339 in UTC with microseconds, e.g. `2026-11-25T10:00:00.123456Z`.
pub fn rfc3339(us: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| us.to_string())
}

fn parse_time(s: &str) -> Result<i64, ApiError> {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(s, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1000) as i64)
        .map_err(|_| ApiError::bad_request(format!("{s:?} is not an RFC 3339 time")))
}

fn parse_id(id: &str) -> Result<SessionId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found(format!("session {id}")))
}

/// Records what the caller did (searches, administration); refuses to go on if the trail
/// cannot be written. Looks at a session go through [`look`] instead.
pub(crate) async fn audit_as(
    st: &WebState,
    caller: &Caller,
    action: AuditAction,
    session: Option<SessionId>,
    detail: String,
) -> Result<(), ApiError> {
    st.store
        .audit(NewAudit {
            actor: caller.viewer.actor.clone(),
            action,
            session_id: session,
            client_addr: caller.viewer.client_addr.clone(),
            detail,
        })
        .await
        .map_err(|e| ApiError::internal(format!("cannot write the audit trail, refusing: {e}")))
}

/// One look at session `id` by the caller, decided and audited by `Store::look` (the same
/// function the CLI uses): the session, or 404 whether it is missing or not the caller's to
/// see, 409 when a watch or termination finds it not live.
pub(crate) async fn look(
    st: &WebState,
    caller: &Caller,
    id: &str,
    look: Look,
    detail: &str,
) -> Result<SessionRow, ApiError> {
    let id = parse_id(id)?;
    st.store.look(&caller.viewer, id, look, detail).await.map_err(|e| match e {
        LookError::NotFound { id } => ApiError::not_found(format!("session {id}")),
        LookError::NotLive { id, status } => {
            ApiError::new(StatusCode::CONFLICT, format!("session {id} is not live ({status})"))
        }
        LookError::Audit { .. } => {
            tracing::error!(error = %e, "web: audit write failed");
            ApiError::internal("cannot write the audit trail, refusing")
        }
        LookError::Store { .. } => {
            tracing::error!(error = %e, "web: store failed");
            ApiError::internal("the store failed; see the gateway log")
        }
    })
}

/// The person filter of a list or search for `caller`, given the `user` it asked for:
/// `None` when the answer must be empty (a user asking for someone else, or a user-role
/// caller that is no person).
fn person_filter(caller: &Caller, asked: Option<String>) -> Option<Option<String>> {
    let asked = asked.filter(|u| !u.is_empty());
    match caller.viewer.scope() {
        SessionScope::All => Some(asked),
        SessionScope::Person(p) if asked.as_ref().is_none_or(|u| u == p.as_str()) => {
            Some(Some(p.to_string()))
        }
        SessionScope::Person(_) | SessionScope::Nothing => None,
    }
}

// ---- login ----

#[derive(Deserialize, ToSchema)]
pub(crate) struct LoginBody {
    name: String,
    password: String,
}

/// Log in with a name and password.
///
/// Sets the browser session's cookie and answers the CSRF token to send with every request
/// that changes something. Failed logins count toward the lockout the SSH gateway shares.
#[utoipa::path(post, path = "/api/v1/login", tag = "login", security(()), request_body = LoginBody,
    responses(
        (status = 200, description = "Logged in; the cookie is set", body = views::LoggedIn,
            headers(("Set-Cookie" = String, description = "the browser session"))),
        (status = 401, description = "Wrong name or password (or a disabled person: the same answer)", body = views::ErrorBody),
        (status = 429, description = "Too many failed logins for this name or address (SSH and web together)", body = views::ErrorBody,
            headers(("Retry-After" = u64, description = "seconds to wait"))),
        (status = 500, description = "The audit trail or the store failed", body = views::ErrorBody),
        (status = 503, description = "Too many password checks at once", body = views::ErrorBody,
            headers(("Retry-After" = u64, description = "seconds to wait"))),
        JsonBody))]
pub(crate) async fn login(
    State(st): St,
    axum::extract::ConnectInfo(addr): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Body(b): Body<LoginBody>,
) -> Result<Response, ApiError> {
    // Counted before the password is checked, by the limiter the SSH gateway shares: a
    // flood of guesses locks the name or the address whichever door it comes through.
    let attempt = match st.logins.begin(&b.name, addr.ip(), Instant::now()) {
        Ok(a) => a,
        Err(locked) => {
            let wait = locked.retry_after.as_secs().max(1);
            login_refused(
                &st,
                &b.name,
                addr,
                &format!("too many failed logins; locked for {wait} s"),
            )
            .await?;
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed logins; try again later",
            );
            e.retry_after = Some(wait);
            return Err(e);
        }
    };
    // No real name is longer; a long one is not looked up (it still costs a hash).
    let person = if keepwatch_core::valid_name(&b.name) && b.name.len() <= 128 {
        st.store.person(&b.name).await?
    } else {
        None
    };
    let hash = person.as_ref().and_then(|p| p.password_hash.as_deref());
    let ok = match st.passwords.check(&b.password, hash).await {
        Ok(ok) => ok,
        Err(busy) => {
            login_refused(&st, &b.name, addr, "too many password checks at once").await?;
            let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, busy.to_string());
            e.retry_after = Some(1);
            return Err(e);
        }
    };
    let person = match person {
        Some(p) if ok && !p.disabled => p,
        // The same answer as a wrong password: only the trail says why.
        Some(_) if ok => {
            login_refused(&st, &b.name, addr, "the person is disabled").await?;
            return Err(ApiError::unauthorized("wrong name or password"));
        }
        _ => {
            login_refused(&st, &b.name, addr, "wrong name or password").await?;
            return Err(ApiError::unauthorized("wrong name or password"));
        }
    };
    st.logins.succeeded(attempt);
    let (cookie, csrf) = st.sessions.create(&st, &person).await?;
    st.store
        .audit(NewAudit {
            actor: person.name.clone(),
            action: AuditAction::LoginSucceeded,
            session_id: None,
            client_addr: Some(addr.to_string()),
            detail: "web login".into(),
        })
        .await?;
    let set = format!("{COOKIE}={cookie}; HttpOnly; SameSite=Strict; Path=/");
    let body = views::LoggedIn {
        name: person.name,
        role: person.role.as_str().to_owned(),
        csrf: Some(csrf),
    };
    Ok(([(header::SET_COOKIE, set)], Json(body)).into_response())
}

/// Audits a refused web login, as many as the shared limiter lets through per address (the
/// others are counted, and their number goes into the next one audited).
async fn login_refused(
    st: &WebState,
    name: &str,
    addr: std::net::SocketAddr,
    why: &str,
) -> Result<(), ApiError> {
    let RefusalAudit::Write { suppressed } = st.logins.refusal(addr.ip(), Instant::now()) else {
        return Ok(());
    };
    let more = if suppressed > 0 {
        format!(" ({suppressed} more refused from this address since the last one audited)")
    } else {
        String::new()
    };
    st.store
        .audit(NewAudit {
            actor: name.to_owned(),
            action: AuditAction::LoginRefused,
            session_id: None,
            client_addr: Some(addr.to_string()),
            detail: format!("web login: {why}{more}"),
        })
        .await?;
    Ok(())
}

/// Log out: ends the browser session and clears its cookie.
#[utoipa::path(post, path = "/api/v1/logout", tag = "login",
    responses((status = 200, description = "Logged out", body = views::Empty), Guarded))]
pub(crate) async fn logout(
    State(st): St,
    _caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(c) = cookie_from_headers(&headers) {
        st.sessions.remove(&st, &c).await?;
    }
    let clear = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    Ok(([(header::SET_COOKIE, clear)], Json(views::Empty {})).into_response())
}

/// Who is logged in, the CSRF token, and what the newest verify round found.
///
/// `verify_alert` (auditors and admins) is what the newest verify round found when it found
/// a problem, else null. Any role.
#[utoipa::path(get, path = "/api/v1/me", tag = "login",
    responses((status = 200, description = "The caller", body = views::Me), Guarded))]
pub(crate) async fn me(State(st): St, caller: Caller, headers: HeaderMap) -> ApiResult<views::Me> {
    let csrf = crate::auth::csrf_of(&st, cookie_from_headers(&headers).as_deref()).await?;
    Ok(Json(views::Me {
        who: views::LoggedIn {
            name: caller.viewer.person.as_ref().map_or(caller.actor(), |p| p.as_str()).to_owned(),
            role: caller.viewer.role.as_str().to_owned(),
            csrf,
        },
        key_fingerprint: keepwatch_recording::fingerprint(&st.verifying_key),
        verify_alert: verify_alert(&st, &caller).await?,
    }))
}

/// What the newest verify round (the gateway's scheduled one, or `verify --all`) found when it
/// found a problem: the console shows it as a banner to auditors and admins until a round
/// finds none. `None` for other roles, before any round, and after a clean one.
async fn verify_alert(
    st: &WebState,
    caller: &Caller,
) -> Result<Option<views::VerifyAlert>, ApiError> {
    if !caller.viewer.role.at_least(Role::Auditor) {
        return Ok(None);
    }
    let newest = AuditFilter {
        action: Some(AuditAction::RecordingsVerified),
        limit: Some(1),
        ..Default::default()
    };
    let last = st.store.audit_events(&newest).await?.into_iter().next();
    Ok(last.filter(|e| !e.detail.ends_with(" 0 problem(s)")).map(|e| views::VerifyAlert {
        at: rfc3339(e.at_us),
        by: e.actor,
        detail: e.detail,
    }))
}

// ---- sessions ----

/// A command row as the API and `keepwatch show --json` give it.
pub fn command_json(c: &CommandRow) -> Value {
    serde_json::to_value(views::Command::from(c)).unwrap_or_default()
}

/// A search's answer as `GET /api/v1/search` and `keepwatch search --json` give it: the hits
/// and the sessions not fully indexed.
pub fn search_json(
    answer: &keepwatch_store::SearchAnswer,
    gaps: &keepwatch_store::IndexGaps,
) -> Value {
    serde_json::to_value(views::SearchResult::new(answer, gaps)).unwrap_or_default()
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SessionsQuery {
    /// Only this person's sessions (a user sees only their own whatever this says).
    user: Option<String>,
    /// Only sessions on this target.
    target: Option<String>,
    /// active, closed, terminated, interrupted or refused.
    status: Option<String>,
    /// Only sessions started at or after this RFC 3339 time.
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only sessions started before this RFC 3339 time.
    #[param(format = DateTime)]
    until: Option<String>,
    /// At most this many (default 200).
    #[param(maximum = 4294967295_u64)]
    limit: Option<u32>,
    /// Only sessions whose stated reason holds this text.
    reason: Option<String>,
    /// Only sessions carrying this tag.
    tag: Option<String>,
}

/// Sessions, newest first, each with its channels and tags.
///
/// Any role; a user sees their own sessions, a user token without a person none.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions", params(SessionsQuery),
    responses((status = 200, description = "The sessions", body = Vec<views::Session>), Malformed, Guarded))]
pub(crate) async fn sessions(
    State(st): St,
    caller: Caller,
    Params(q): Params<SessionsQuery>,
) -> ApiResult<Vec<views::Session>> {
    let Some(person) = person_filter(&caller, q.user.clone()) else {
        return Ok(Json(Vec::new()));
    };
    let status: Option<SessionStatus> = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => {
            Some(s.parse().map_err(|_| ApiError::bad_request(format!("unknown status {s:?}")))?)
        }
    };
    // Every filter and the limit are applied by the store, in its query.
    let filter = SessionFilter {
        status,
        person,
        target: q.target.clone().filter(|t| !t.is_empty()),
        since_us: q.since.as_deref().map(parse_time).transpose()?,
        until_us: q.until.as_deref().map(parse_time).transpose()?,
        limit: Some(q.limit.unwrap_or(200)),
        node: None,
        reason: q.reason.clone().filter(|r| !r.is_empty()),
        tag: q.tag.as_deref().filter(|t| !t.is_empty()).map(tag_param).transpose()?,
    };
    let listed = st.store.session_listings(&filter).await?;
    Ok(Json(listed.iter().map(|l| views::Session::new(&l.session, &l.channels, &l.tags)).collect()))
}

/// One session with its channels, transfers, commands and verification.
///
/// The recording is verified piece by piece when it changed, and the row is compared on
/// every request. Audited as a view. Any role; a user sees their own.
#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "sessions", params(Id),
    responses((status = 200, description = "The session", body = views::SessionDetail), Malformed, Missing, Heavy, Guarded))]
pub(crate) async fn session(
    State(st): St,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<views::SessionDetail> {
    let s = look(&st, &caller, &id, Look::View, "web").await?;
    let channels = st.store.channels(s.id).await?;
    let transfers =
        st.store.transfers(&TransferFilter { session: Some(s.id), ..Default::default() }).await?;
    let (env, commands): (Vec<_>, Vec<_>) =
        st.store.commands(s.id).await?.into_iter().partition(|c| c.kind == "env");
    let problems = crate::verification::check(&st, &s).await?;
    let tags: Vec<String> = st.store.session_tags(s.id).await?.into_iter().map(|t| t.tag).collect();
    Ok(Json(views::SessionDetail {
        session: views::Session::new(&s, &channels, &tags),
        transfers: transfers.iter().map(views::Transfer::from).collect(),
        commands: commands.iter().map(views::Command::from).collect(),
        environment: env.iter().map(views::Command::from).collect(),
        verify: views::Verification {
            intact: problems.is_empty(),
            problems: problems.into_iter().map(|p| p.what).collect(),
            key_fingerprint: keepwatch_recording::fingerprint(&st.verifying_key),
        },
    }))
}

/// A session id in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct Id {
    /// The session's id (as `keepwatch sessions` lists it).
    #[allow(dead_code)] // Describes the path; handlers take it as a string.
    id: String,
}

/// One page of a replay window of one channel.
///
/// The keyframe at `from_us`, then the events to `until_us`. A page holds at most
/// replay_max_events events and replay_max_bytes of events; when it stops early,
/// `truncated` is true and `next` is the cursor of the following page (pass it as `cursor`,
/// with the same `until_us`). Every window is audited (one recording_replayed per caller,
/// address and session every 5 minutes). Any role; a user replays their own.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/replay", tag = "sessions",
    params(Id, crate::replay::ReplayQuery),
    responses((status = 200, description = "A page of the window: the keyframe (screen, cursor, size) and the events", body = serde_json::Value),
        Malformed, Missing, Heavy, Guarded))]
pub(crate) async fn replay(
    State(st): St,
    caller: Caller,
    PathParams(id): PathParams<String>,
    Params(q): Params<crate::replay::ReplayQuery>,
) -> ApiResult<Value> {
    // Every window is a look, whatever it asks for: `Store::look` audits the first of a
    // viewer's replays of a session and again after `REPLAY_AUDIT_WINDOW`.
    let s = look(&st, &caller, &id, Look::Replay, "web").await?;
    let _permit = st.heavy.permit("the replay").await?;
    Ok(Json(crate::replay::page(&st, &s, q).await?))
}

/// The session as an asciicast v2 download, streamed as the recording is read. Auditors.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/export", tag = "sessions", params(Id),
    responses((status = 200, description = "The asciicast v2 file", content_type = "application/x-asciicast", body = String,
        headers(("Content-Disposition" = String, description = "attachment; filename=\"ID.cast\""))),
        Malformed, Missing, Heavy, Guarded))]
pub(crate) async fn export(
    State(st): St,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Auditor)?;
    let s = look(&st, &caller, &id, Look::Export, "web asciicast").await?;
    let permit = st.heavy.permit("the export").await?;
    let channels = st.store.channels(s.id).await?;
    let disposition = format!("attachment; filename=\"{}.cast\"", s.id);
    let body = crate::replay::export_body(st.clone(), s, &channels, permit);
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-asciicast".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// A tag given in a query or a path, checked and lowercased (400 naming the rule).
fn tag_param(t: &str) -> Result<String, ApiError> {
    Tag::parse(t).map(|t| t.to_string()).map_err(|e| ApiError::bad_request(e.to_string()))
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct TagsBody {
    /// Each 1 to 64 characters of a-z 0-9 . _ : / - (lowercased); at most 32 on a session.
    #[schema(min_items = 1, max_items = 32)]
    tags: Vec<String>,
}

/// Put tags on a session.
///
/// Audited as session_tagged with the ones it did not carry yet; answers the tags added and
/// the session's tags now. Auditors and admins.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/tags", tag = "sessions", params(Id), request_body = TagsBody,
    responses((status = 200, description = "The tags added and the session's tags", body = views::Tags),
        JsonBody, Missing, Clash, Guarded))]
pub(crate) async fn add_tags(
    State(st): St,
    caller: Caller,
    PathParams(id): PathParams<String>,
    Body(b): Body<TagsBody>,
) -> ApiResult<views::Tags> {
    caller.require(Role::Auditor)?;
    let id = parse_id(&id)?;
    let tags = parse_tags(&b.tags).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let added = st.store.add_session_tags(&tag_change(&caller, id, &tags)).await?;
    tags_answer(&st, id, true, &added).await
}

/// A session id and one of its tags in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Describes the path; the handler takes it as strings.
pub(crate) struct IdAndTag {
    /// The session's id.
    id: String,
    /// The tag to take off.
    #[param(pattern = r"^[A-Za-z0-9._:/-]{1,64}$")]
    tag: String,
}

/// Take one tag off a session.
///
/// Audited as session_untagged when the session carried it; answers the tags removed and the
/// session's tags. Auditors and admins.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}/tags/{tag}", tag = "sessions", params(IdAndTag),
    responses((status = 200, description = "The tag removed (if it was there) and the session's tags", body = views::Tags),
        Malformed, Missing, Clash, Guarded))]
pub(crate) async fn remove_tag(
    State(st): St,
    caller: Caller,
    PathParams((id, tag)): PathParams<(String, String)>,
) -> ApiResult<views::Tags> {
    caller.require(Role::Auditor)?;
    let id = parse_id(&id)?;
    let tags = vec![Tag::parse(&tag).map_err(|e| ApiError::bad_request(e.to_string()))?];
    let removed = st.store.remove_session_tags(&tag_change(&caller, id, &tags)).await?;
    tags_answer(&st, id, false, &removed).await
}

fn tag_change<'a>(caller: &'a Caller, session: SessionId, tags: &'a [Tag]) -> TagChange<'a> {
    TagChange {
        session,
        tags,
        actor: caller.actor(),
        client_addr: caller.viewer.client_addr.as_deref(),
    }
}

async fn tags_answer(
    st: &WebState,
    id: SessionId,
    added: bool,
    changed: &[Tag],
) -> ApiResult<views::Tags> {
    let tags: Vec<String> = st.store.session_tags(id).await?.into_iter().map(|t| t.tag).collect();
    let changed = Some(changed.iter().map(|t| t.as_str().to_owned()).collect());
    let (added, removed) = if added { (changed, None) } else { (None, changed) };
    Ok(Json(views::Tags { session: id.to_string(), tags, added, removed }))
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct TerminateBody {
    /// Shown to the person and kept in the audit trail (at most 500 characters).
    reason: Option<String>,
}

/// End a live session with a reason, on whichever gateway node runs it. Auditors.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/terminate", tag = "sessions", params(Id), request_body = TerminateBody,
    responses((status = 200, description = "The session was ended", body = views::Terminated),
        (status = 409, description = "The session is not live", body = views::ErrorBody),
        JsonBody, Missing, Guarded))]
pub(crate) async fn terminate(
    State(st): St,
    caller: Caller,
    PathParams(id): PathParams<String>,
    Body(b): Body<TerminateBody>,
) -> ApiResult<views::Terminated> {
    caller.require(Role::Auditor)?;
    let reason =
        b.reason.filter(|r| !r.trim().is_empty()).unwrap_or_else(|| "no reason given".into());
    let reason: String =
        reason.chars().filter(|c| !keepwatch_core::needs_escape(*c)).take(500).collect();
    let s = look(&st, &caller, &id, Look::Terminate, &reason).await?;
    let message = format!("keepwatch: session terminated by {}: {reason}", caller.actor());
    if !st.live.terminate_anywhere(s.id, &message).await {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("session {} is not live on any gateway node", s.id),
        ));
    }
    Ok(Json(views::Terminated { terminated: s.id.to_string() }))
}

/// How far a node's request may be from this node's clock (either way) and still count.
pub(crate) const NODE_REQUEST_WINDOW_US: i64 = 60_000_000;

/// The header carrying a node request's signature: BLAKE3 keyed with the node key over the
/// whole request (the body, or the [`NODE_REQUEST_HEADER`]), in hex.
pub const NODE_MAC_HEADER: &str = "x-keepwatch-node-mac";

/// The header carrying a node request that has no body (a watch: a WebSocket upgrade).
pub const NODE_REQUEST_HEADER: &str = "x-keepwatch-node-request";

/// What a node asks the node running a session (the body of `POST /api/v1/nodes/terminate`).
#[derive(Deserialize, serde::Serialize)]
pub struct NodeTerminate {
    /// The asking node, for the log.
    pub from: String,
    pub session: String,
    /// Shown to the person, as the asking node wrote it (it audited the termination).
    pub message: String,
    /// When the asking node signed it, unix µs.
    pub at_us: i64,
}

/// A node request checked: signed with this cluster's node key and recent. `signed` is
/// exactly what the MAC covers.
pub(crate) fn check_node_request<T: serde::de::DeserializeOwned>(
    st: &WebState,
    headers: &HeaderMap,
    signed: &[u8],
    at_us: impl Fn(&T) -> i64,
) -> Result<T, ApiError> {
    let Some(key) = st.live.node_key() else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "this gateway takes no node requests"));
    };
    let mac = headers.get(NODE_MAC_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    // blake3::Hash compares in constant time.
    let ok = blake3::Hash::from_hex(mac).is_ok_and(|m| m == blake3::keyed_hash(&key, signed));
    if !ok {
        return Err(ApiError::unauthorized("node request not signed with this cluster's node key"));
    }
    let req: T = serde_json::from_slice(signed)
        .map_err(|e| ApiError::bad_request(format!("not a node request: {e}")))?;
    if (keepwatch_store::now_us() - at_us(&req)).abs() > NODE_REQUEST_WINDOW_US {
        return Err(ApiError::unauthorized("node request too old (or a clock is off)"));
    }
    Ok(req)
}

/// Another node asks this one to end a session it runs. The asking node decided and audited
/// the termination for its caller; this node checks the request's signature and age (a
/// replay inside the window can only end the same session with the same message) and ends
/// the session if it is live here.
async fn node_terminate(
    State(st): St,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<views::Terminated> {
    let req: NodeTerminate = check_node_request(&st, &headers, &body, |r: &NodeTerminate| r.at_us)?;
    let id: SessionId =
        req.session.parse().map_err(|_| ApiError::bad_request("not a session id"))?;
    let from = keepwatch_core::clean(&req.from, 64);
    tracing::info!(session_id = %id, from = %from, "another node asks to end a session");
    if !st.live.terminate(id, &req.message) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("session {id} is not live on this node"),
        ));
    }
    Ok(Json(views::Terminated { terminated: id.to_string() }))
}

// ---- search, live, audit ----

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchParams {
    /// The text to find, a case-insensitive substring of a command or its output (not
    /// only blanks).
    #[param(min_length = 1)]
    q: String,
    /// Only this person's sessions (a user searches only their own).
    user: Option<String>,
    /// Only sessions on this target.
    target: Option<String>,
    /// Only commands at or after this RFC 3339 time.
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only commands before this RFC 3339 time.
    #[param(format = DateTime)]
    until: Option<String>,
    /// Search the commands only, not their output.
    commands_only: Option<bool>,
    /// Only sessions carrying this tag.
    tag: Option<String>,
    /// At most this many hits (default 50; more than 500 count as 500).
    #[param(maximum = 4294967295_u64)]
    limit: Option<u32>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReportParams {
    /// The period, as `keepwatch report --since` takes it (default 30d).
    since: Option<String>,
    /// `html` for the page with charts; JSON otherwise.
    format: Option<String>,
}

/// The report of a period, as `keepwatch report` writes it.
///
/// Sessions per person, target and day, top commands, transfers, refusals, verification and
/// retention: JSON, or with `format=html` the same self-contained page with charts the CLI
/// writes. Auditors; it shows the commands run most, so it is audited (report_viewed).
#[utoipa::path(get, path = "/api/v1/report", tag = "audit", params(ReportParams),
    responses((status = 200, description = "The report", content(
            (serde_json::Value = "application/json"),
            (String = "text/html"))),
        Malformed, Heavy, Guarded))]
pub(crate) async fn report(
    State(st): St,
    caller: Caller,
    Params(p): Params<ReportParams>,
) -> Result<Response, ApiError> {
    caller.require(Role::Auditor)?;
    let since = p.since.as_deref().unwrap_or("30d");
    let secs = keepwatch_core::retention::parse_keep(since).map_err(ApiError::bad_request)?;
    let _permit = st.heavy.permit("the report").await?;
    let detail = json!({ "report": { "since": since } }).to_string();
    audit_as(&st, &caller, AuditAction::ReportViewed, None, detail).await?;
    let now = keepwatch_store::now_us();
    let data =
        crate::report::gather(&st.store, crate::report::period_start(now, secs), now).await?;
    Ok(match p.format.as_deref() {
        Some("html") => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'"),
            ],
            crate::report::html(&data),
        )
            .into_response(),
        _ => Json(data).into_response(),
    })
}

/// Substring search over command lines and every line of output.
///
/// Audited (searched, with the query). Any role; a user searches their own sessions. The
/// answer names the sessions it could match whose index is not complete yet.
#[utoipa::path(get, path = "/api/v1/search", tag = "sessions", params(SearchParams),
    responses((status = 200, description = "The hits, newest first, and the sessions not fully indexed", body = views::SearchResult), Malformed, Heavy, Guarded))]
pub(crate) async fn search(
    State(st): St,
    caller: Caller,
    Params(p): Params<SearchParams>,
) -> ApiResult<views::SearchResult> {
    if p.q.trim().is_empty() {
        return Err(ApiError::bad_request("the search text (q) is empty"));
    }
    let _permit = st.heavy.permit("the search").await?;
    audit_as(&st, &caller, AuditAction::Searched, None, json!({ "query": p.q }).to_string())
        .await?;
    let Some(person) = person_filter(&caller, p.user.clone()) else {
        return Ok(Json(views::SearchResult::new(&Default::default(), &Default::default())));
    };
    let q = SearchQuery {
        text: p.q.clone(),
        person,
        target: p.target,
        session: None,
        since_us: p.since.as_deref().map(parse_time).transpose()?,
        until_us: p.until.as_deref().map(parse_time).transpose()?,
        commands_only: p.commands_only.unwrap_or(false),
        tag: p.tag.as_deref().map(tag_param).transpose()?,
        limit: p.limit.unwrap_or(50).clamp(1, 500),
    };
    let answer = st.store.search(&q).await?;
    let gaps = st.store.search_gaps(&st.blobs, &q).await?;
    Ok(Json(views::SearchResult::new(&answer, &gaps)))
}

/// This node's counters in Prometheus' text format (`docs/metrics.md`). Auditors and admins:
/// the counts say who is busy when, which is not for everyone.
async fn metrics(caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.require(Role::Auditor)?;
    let body = keepwatch_core::metrics::METRICS.render();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body))
}

/// The sessions running now, with their last command. Auditors.
#[utoipa::path(get, path = "/api/v1/live", tag = "sessions",
    responses((status = 200, description = "The live sessions", body = Vec<views::LiveSession>), Guarded))]
pub(crate) async fn live(State(st): St, caller: Caller) -> ApiResult<Vec<views::LiveSession>> {
    caller.require(Role::Auditor)?;
    let now = keepwatch_store::now_us();
    let listed = st.store.session_listings(&SessionFilter::active()).await?;
    Ok(Json(
        listed
            .into_iter()
            .map(|l| {
                let s = l.session;
                views::LiveSession {
                    id: s.id.to_string(),
                    started_at: rfc3339(s.started_at_us),
                    duration_us: (now - s.started_at_us).max(0),
                    node: s.node.as_ref().map(|n| n.as_str().to_owned()),
                    user: s.person,
                    target: s.target,
                    client_addr: s.client_addr,
                    last_command: l.last_command,
                }
            })
            .collect(),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Only what this actor did (a person, token:NAME, local:USER, gateway).
    actor: Option<String>,
    /// Only events about this session.
    session: Option<String>,
    /// Only this action (login_succeeded, recording_replayed, ...: docs/events.md).
    action: Option<String>,
    /// At most this many (default 500; more than 5000 count as 5000).
    #[param(maximum = 4294967295_u64)]
    limit: Option<u32>,
}

/// The audit trail, newest first. Auditors.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "The events", body = Vec<views::AuditEvent>), Malformed, Missing, Guarded))]
pub(crate) async fn audit(
    State(st): St,
    caller: Caller,
    Params(q): Params<AuditQuery>,
) -> ApiResult<Vec<views::AuditEvent>> {
    caller.require(Role::Auditor)?;
    let session = q.session.as_deref().filter(|s| !s.is_empty()).map(parse_id).transpose()?;
    let action = match q.action.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(a) => {
            Some(a.parse::<AuditAction>().map_err(|e| ApiError::bad_request(e.to_string()))?)
        }
    };
    let filter = AuditFilter {
        action,
        actor: q.actor.filter(|s| !s.is_empty()),
        session,
        limit: Some(q.limit.unwrap_or(500).clamp(1, 5000)),
    };
    let rows = st.store.audit_events(&filter).await?;
    Ok(Json(rows.iter().map(views::AuditEvent::from).collect()))
}

// ---- administration ----

/// The people who may log in. Admins.
#[utoipa::path(get, path = "/api/v1/people", tag = "admin",
    responses((status = 200, description = "The people", body = Vec<views::Person>), Guarded))]
pub(crate) async fn people(State(st): St, caller: Caller) -> ApiResult<Vec<views::Person>> {
    caller.require(Role::Admin)?;
    let rows = st.store.people().await?;
    Ok(Json(rows.iter().map(views::Person::from).collect()))
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct NewPersonBody {
    /// Letters, digits, . _ -
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    name: String,
    /// user, auditor or admin.
    #[schema(pattern = r"^(user|auditor|admin)$")]
    role: String,
    /// For the console (and SSH password logins); none: SSH keys only.
    password: Option<String>,
    /// An OpenSSH public key line they log in with.
    ssh_key: Option<String>,
}

/// Add a person (audited as user_added). Admins.
#[utoipa::path(post, path = "/api/v1/people", tag = "admin", request_body = NewPersonBody,
    responses((status = 200, description = "The person added", body = views::PersonAdded), JsonBody, Clash, Guarded))]
pub(crate) async fn add_person(
    State(st): St,
    caller: Caller,
    Body(b): Body<NewPersonBody>,
) -> ApiResult<views::PersonAdded> {
    caller.require(Role::Admin)?;
    if !keepwatch_core::valid_name(&b.name) {
        return Err(ApiError::bad_request(format!(
            "{:?} is not a valid name (letters, digits, . _ -)",
            b.name
        )));
    }
    let role: Role =
        b.role.parse().map_err(|_| ApiError::bad_request("role must be user, auditor or admin"))?;
    let hash = match b.password.filter(|p| !p.is_empty()) {
        Some(pw) => Some(
            tokio::task::spawn_blocking(move || keepwatch_store::hash_password(&pw))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
                .map_err(|e| ApiError::internal(e.to_string()))?,
        ),
        None => None,
    };
    let keys: Vec<String> = b.ssh_key.into_iter().filter(|k| !k.trim().is_empty()).collect();
    st.store.add_person(&b.name, role, hash.as_deref(), &keys).await?;
    audit_as(
        &st,
        &caller,
        AuditAction::UserAdded,
        None,
        format!("{} as {}", b.name, role.as_str()),
    )
    .await?;
    Ok(Json(views::PersonAdded { name: b.name, role: role.as_str().to_owned() }))
}

/// The targets (never their secrets). Admins.
#[utoipa::path(get, path = "/api/v1/targets", tag = "admin",
    responses((status = 200, description = "The targets", body = Vec<views::Target>), Guarded))]
pub(crate) async fn targets(State(st): St, caller: Caller) -> ApiResult<Vec<views::Target>> {
    caller.require(Role::Admin)?;
    let rows = st.store.targets().await?;
    Ok(Json(rows.iter().map(views::Target::from).collect()))
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct NewTargetBody {
    /// Letters, digits, . _ -
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    name: String,
    host: String,
    /// Default 22.
    port: Option<u16>,
    /// The login the gateway uses on the target.
    login: String,
    /// The target's password, sealed in the vault (write-only: never shown again).
    password: String,
    /// The target's host key (`ssh-ed25519 AAAA...`, as `ssh-keyscan` prints it).
    host_key: Option<String>,
    /// Pin whatever key the target shows first instead (explicitly: never by default).
    trust_on_first_use: Option<bool>,
    /// Every session on it needs a reason given at connect.
    require_reason: Option<bool>,
}

/// Add an SSH target with a password and its host key (audited as target_added).
///
/// Give either `host_key` or `trust_on_first_use: true` (400 with neither, or both). Admins.
#[utoipa::path(post, path = "/api/v1/targets", tag = "admin", request_body = NewTargetBody,
    responses((status = 200, description = "The target added", body = views::TargetAdded), JsonBody, Clash, Guarded))]
pub(crate) async fn add_target(
    State(st): St,
    caller: Caller,
    Body(b): Body<NewTargetBody>,
) -> ApiResult<views::TargetAdded> {
    caller.require(Role::Admin)?;
    if !keepwatch_core::valid_name(&b.name) {
        return Err(ApiError::bad_request(format!("{:?} is not a valid target name", b.name)));
    }
    let host_key = b.host_key.as_deref().map(str::trim).filter(|k| !k.is_empty());
    let tofu = b.trust_on_first_use.unwrap_or(false);
    let host_key = match (host_key, tofu) {
        (None, false) => {
            return Err(ApiError::bad_request(format!(
                "target {} needs its host key: give host_key (the line `ssh-keyscan -t ed25519 {}` prints, e.g. \"ssh-ed25519 AAAA...\") or, to pin the first key it shows, \"trust_on_first_use\": true",
                b.name, b.host
            )));
        }
        (Some(_), true) => {
            return Err(ApiError::bad_request(
                "give either host_key or \"trust_on_first_use\": true, not both",
            ));
        }
        (Some(line), false) => Some(st.live.host_key_line(line).map_err(|e| {
            ApiError::bad_request(format!("host_key is not an OpenSSH public key: {e}"))
        })?),
        (None, true) => None,
    };
    let vault = st.vault.as_ref().ok_or_else(|| ApiError::internal("the vault is not open"))?;
    let mut target = keepwatch_store::NewTarget {
        database: None,
        require_reason: b.require_reason.unwrap_or(false),
        protocol: keepwatch_core::Protocol::Ssh,
        name: b.name.clone(),
        host: b.host.clone(),
        port: b.port.unwrap_or(22),
        login: b.login.clone(),
        secret: TargetSecret::Password(Vec::new()),
        host_key,
        trust_on_first_use: tofu,
        on_recording_failure: keepwatch_core::RecordingFailure::default(),
        algorithms: Default::default(),
    };
    target
        .seal_secret(vault, b.password.as_bytes())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    st.store.add_target(&target).await?;
    let detail = format!("target {} {} (web)", b.name, target.binding());
    audit_as(&st, &caller, AuditAction::TargetAdded, None, detail).await?;
    Ok(Json(views::TargetAdded { name: b.name }))
}

/// Who may reach which target. Admins.
#[utoipa::path(get, path = "/api/v1/grants", tag = "admin",
    responses((status = 200, description = "The grants", body = Vec<views::Grant>), Guarded))]
pub(crate) async fn grants(State(st): St, caller: Caller) -> ApiResult<Vec<views::Grant>> {
    caller.require(Role::Admin)?;
    let mut out = Vec::new();
    for p in st.store.people().await? {
        for t in st.store.granted_targets(&p.name).await? {
            out.push(views::Grant { user: p.name.clone(), target: t });
        }
    }
    Ok(Json(out))
}

#[derive(Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct GrantBody {
    /// The person.
    user: String,
    /// The target.
    target: String,
}

/// Grant a target to a person (audited as grant_added). Admins.
#[utoipa::path(post, path = "/api/v1/grants", tag = "admin", request_body = GrantBody,
    responses((status = 200, description = "The grant", body = views::Grant), JsonBody, Missing, Clash, Guarded))]
pub(crate) async fn add_grant(
    State(st): St,
    caller: Caller,
    Body(b): Body<GrantBody>,
) -> ApiResult<views::Grant> {
    caller.require(Role::Admin)?;
    st.store.grant(&b.user, &b.target, &keepwatch_core::GrantPolicy::default()).await?;
    audit_as(
        &st,
        &caller,
        AuditAction::GrantAdded,
        None,
        format!("{} -> {} (web)", b.user, b.target),
    )
    .await?;
    Ok(Json(views::Grant { user: b.user, target: b.target }))
}

/// Revoke a person's grant of a target (audited as grant_removed). Admins.
#[utoipa::path(delete, path = "/api/v1/grants", tag = "admin", params(GrantBody),
    responses((status = 200, description = "Revoked", body = views::Empty), Malformed, Missing, Guarded))]
pub(crate) async fn remove_grant(
    State(st): St,
    caller: Caller,
    Params(b): Params<GrantBody>,
) -> ApiResult<views::Empty> {
    caller.require(Role::Admin)?;
    if !st.store.revoke(&b.user, &b.target).await? {
        return Err(ApiError::not_found(format!("grant of {} to {}", b.target, b.user)));
    }
    audit_as(
        &st,
        &caller,
        AuditAction::GrantRemoved,
        None,
        format!("{} -> {} (web)", b.user, b.target),
    )
    .await?;
    Ok(Json(views::Empty {}))
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct TokenBody {
    /// Letters, digits, . _ - (not local-cli, nor one starting local-cli., which the CLI keeps).
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    name: String,
    /// user, auditor or admin.
    #[schema(pattern = r"^(user|auditor|admin)$")]
    role: String,
    /// The person the token acts for; required for the user role.
    person: Option<String>,
}

/// Make an API token, shown once (audited as token_created). Admins.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "admin", request_body = TokenBody,
    responses((status = 200, description = "The token; only its hash is kept", body = views::TokenMade), JsonBody, Missing, Clash, Guarded))]
pub(crate) async fn add_token(
    State(st): St,
    caller: Caller,
    Body(b): Body<TokenBody>,
) -> ApiResult<views::TokenMade> {
    caller.require(Role::Admin)?;
    let role: Role =
        b.role.parse().map_err(|_| ApiError::bad_request("role must be user, auditor or admin"))?;
    if !keepwatch_core::valid_name(&b.name) || crate::is_cli_token(&b.name) {
        return Err(ApiError::bad_request(format!("{:?} is not a valid token name", b.name)));
    }
    let person: Option<PersonName> = match b.person.as_deref().filter(|p| !p.is_empty()) {
        None if role == Role::User => {
            return Err(ApiError::bad_request(
                "a user token acts for one person: give person (the name of a person)",
            ));
        }
        None => None,
        Some(p) => Some(p.parse().map_err(|e| ApiError::bad_request(format!("person: {e}")))?),
    };
    let token = format!("kw_{}", crate::random_token()?);
    let detail = match &person {
        Some(p) => format!("{} as {} for {p} (web)", b.name, role.as_str()),
        None => format!("{} as {} (web)", b.name, role.as_str()),
    };
    let new = NewToken {
        name: &b.name,
        role,
        person: person.as_ref(),
        sha256_hex: &crate::sha256_hex(&token),
    };
    let audit = NewAudit {
        actor: caller.viewer.actor.clone(),
        action: AuditAction::TokenCreated,
        session_id: None,
        client_addr: caller.viewer.client_addr.clone(),
        detail,
    };
    st.store.add_token(&new, audit).await?;
    Ok(Json(views::TokenMade {
        name: b.name,
        role: role.as_str().to_owned(),
        person: person.map(|p| p.to_string()),
        token,
    }))
}
