//! The `/api/v1` handlers (`docs/api.md`).

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, Query, State};
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

use crate::auth::{COOKIE, Caller, cookie_from_headers};
use crate::{ApiError, WebState};

type St = State<Arc<WebState>>;
type ApiResult = Result<Json<Value>, ApiError>;

pub(crate) fn routes() -> axum::Router<Arc<WebState>> {
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(|| async { Json(crate::openapi::document()) }))
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

#[derive(Deserialize)]
struct LoginBody {
    name: String,
    password: String,
}

async fn login(
    State(st): St,
    axum::extract::ConnectInfo(addr): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Json(b): Json<LoginBody>,
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
    let body = json!({ "name": person.name, "role": person.role.as_str(), "csrf": csrf });
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

async fn logout(State(st): St, _caller: Caller, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(c) = cookie_from_headers(&headers) {
        st.sessions.remove(&st, &c).await?;
    }
    let clear = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    Ok(([(header::SET_COOKIE, clear)], Json(json!({}))).into_response())
}

async fn me(State(st): St, caller: Caller, headers: HeaderMap) -> ApiResult {
    let csrf = crate::auth::csrf_of(&st, cookie_from_headers(&headers).as_deref()).await?;
    Ok(Json(json!({
        "name": caller.viewer.person.as_ref().map_or(caller.actor(), |p| p.as_str()),
        "role": caller.viewer.role.as_str(),
        "csrf": csrf,
        "key_fingerprint": keepwatch_recording::fingerprint(&st.verifying_key),
        "verify_alert": verify_alert(&st, &caller).await?,
    })))
}

/// What the newest verify round (the gateway's scheduled one, or `verify --all`) found when it
/// found a problem: the console shows it as a banner to auditors and admins until a round
/// finds none. `None` for other roles, before any round, and after a clean one.
async fn verify_alert(st: &WebState, caller: &Caller) -> Result<Option<Value>, ApiError> {
    if !caller.viewer.role.at_least(Role::Auditor) {
        return Ok(None);
    }
    let newest = AuditFilter {
        action: Some(AuditAction::RecordingsVerified),
        limit: Some(1),
        ..Default::default()
    };
    let last = st.store.audit_events(&newest).await?.into_iter().next();
    Ok(last
        .filter(|e| !e.detail.ends_with(" 0 problem(s)"))
        .map(|e| json!({ "at": rfc3339(e.at_us), "by": e.actor, "detail": e.detail })))
}

// ---- sessions ----

fn session_json(
    s: &SessionRow,
    channels: &[keepwatch_store::ChannelRow],
    tags: &[String],
) -> Value {
    let end = s.ended_at_us.unwrap_or_else(keepwatch_store::now_us);
    json!({
        "id": s.id.to_string(), "user": s.person, "target": s.target, "protocol": s.protocol.as_str(), "target_host": s.target_host,
        "target_login": s.target_login, "client_addr": s.client_addr, "status": s.status.as_str(),
        "reason": s.reason, "stated_reason": s.stated_reason, "tags": tags,
        "started_at": rfc3339(s.started_at_us), "ended_at": s.ended_at_us.map(rfc3339),
        "duration_us": (end - s.started_at_us).max(0),
        "node": s.node.as_ref().map(|n| n.as_str()),
        "channels": channels.iter().map(|c| json!({
            "channel": c.channel, "kind": c.kind, "command": c.command, "subsystem": c.subsystem,
            "pty_term": c.pty_term, "destination": c.destination, "opened_at": rfc3339(c.opened_at_us),
            "closed_at": c.closed_at_us.map(rfc3339), "exit_status": c.exit_status,
        })).collect::<Vec<_>>(),
    })
}

/// A command row as the API and `keepwatch show --json` give it.
pub fn command_json(c: &CommandRow) -> Value {
    // A database statement's outcome (`SELECT 3`, `ERROR 42P01: ...`, `refused by keepwatch:
    // ...`) is the last line of its indexed output, after any rows the grant kept.
    let outcome = (c.kind == "sql").then(|| c.output.lines().last().unwrap_or_default());
    json!({
        "seq": c.seq, "channel": c.channel, "kind": c.kind, "at": rfc3339(c.at_us),
        "offset_us": c.start_offset_us, "end_offset_us": c.end_offset_us, "command": c.command,
        "prompt": c.prompt, "confidence": c.confidence, "full_screen": c.full_screen,
        "output_truncated": c.output_truncated, "typed": c.typed, "outcome": outcome,
    })
}

#[derive(Deserialize, Default)]
struct SessionsQuery {
    user: Option<String>,
    target: Option<String>,
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    reason: Option<String>,
    tag: Option<String>,
}

async fn sessions(State(st): St, caller: Caller, Query(q): Query<SessionsQuery>) -> ApiResult {
    let Some(person) = person_filter(&caller, q.user.clone()) else {
        return Ok(Json(json!([])));
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
        limit: Some(q.limit.unwrap_or(200).min(u32::MAX as usize) as u32),
        node: None,
        reason: q.reason.clone().filter(|r| !r.is_empty()),
        tag: q.tag.as_deref().filter(|t| !t.is_empty()).map(tag_param).transpose()?,
    };
    let listed = st.store.session_listings(&filter).await?;
    Ok(Json(listed.iter().map(|l| session_json(&l.session, &l.channels, &l.tags)).collect()))
}

async fn session(State(st): St, caller: Caller, Path(id): Path<String>) -> ApiResult {
    let s = look(&st, &caller, &id, Look::View, "web").await?;
    let channels = st.store.channels(s.id).await?;
    let transfers =
        st.store.transfers(&TransferFilter { session: Some(s.id), ..Default::default() }).await?;
    let (env, commands): (Vec<_>, Vec<_>) =
        st.store.commands(s.id).await?.into_iter().partition(|c| c.kind == "env");
    let problems = crate::verification::check(&st, &s).await?;
    let tags: Vec<String> = st.store.session_tags(s.id).await?.into_iter().map(|t| t.tag).collect();
    let mut v = session_json(&s, &channels, &tags);
    v["transfers"] = transfers
        .iter()
        .map(|t| {
            json!({
                "id": t.id, "channel": t.channel, "at": rfc3339(t.at_us), "protocol": t.protocol,
                "path": t.path, "direction": if t.upload { "upload" } else { "download" },
                "bytes": t.bytes, "size": t.size, "sha256": t.sha256, "complete": t.complete,
            })
        })
        .collect();
    v["commands"] = commands.iter().map(command_json).collect();
    v["environment"] = env.iter().map(command_json).collect();
    v["verify"] = json!({
        "intact": problems.is_empty(),
        "problems": problems.iter().map(|p| p.what.clone()).collect::<Vec<_>>(),
        // What the verdict trusts: compare it with the fingerprint written down at `init`.
        "key_fingerprint": keepwatch_recording::fingerprint(&st.verifying_key),
    });
    Ok(Json(v))
}

async fn replay(
    State(st): St,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<crate::replay::ReplayQuery>,
) -> ApiResult {
    // Every window is a look, whatever it asks for: `Store::look` audits the first of a
    // viewer's replays of a session and again after `REPLAY_AUDIT_WINDOW`.
    let s = look(&st, &caller, &id, Look::Replay, "web").await?;
    let _permit = st.heavy.permit("the replay").await?;
    Ok(Json(crate::replay::page(&st, &s, q).await?))
}

async fn export(
    State(st): St,
    caller: Caller,
    Path(id): Path<String>,
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

#[derive(Deserialize)]
struct TagsBody {
    tags: Vec<String>,
}

/// Puts tags on a session (auditors and admins), audited as `session_tagged` with the ones
/// it did not carry yet; answers the tags added and the session's tags now.
async fn add_tags(
    State(st): St,
    caller: Caller,
    Path(id): Path<String>,
    Json(b): Json<TagsBody>,
) -> ApiResult {
    caller.require(Role::Auditor)?;
    let id = parse_id(&id)?;
    let tags = parse_tags(&b.tags).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let added = st.store.add_session_tags(&tag_change(&caller, id, &tags)).await?;
    tags_answer(&st, id, "added", &added).await
}

/// Takes a tag off a session (auditors and admins), audited as `session_untagged` when the
/// session carried it.
async fn remove_tag(
    State(st): St,
    caller: Caller,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult {
    caller.require(Role::Auditor)?;
    let id = parse_id(&id)?;
    let tags = vec![Tag::parse(&tag).map_err(|e| ApiError::bad_request(e.to_string()))?];
    let removed = st.store.remove_session_tags(&tag_change(&caller, id, &tags)).await?;
    tags_answer(&st, id, "removed", &removed).await
}

fn tag_change<'a>(caller: &'a Caller, session: SessionId, tags: &'a [Tag]) -> TagChange<'a> {
    TagChange {
        session,
        tags,
        actor: caller.actor(),
        client_addr: caller.viewer.client_addr.as_deref(),
    }
}

async fn tags_answer(st: &WebState, id: SessionId, what: &str, changed: &[Tag]) -> ApiResult {
    let now: Vec<String> = st.store.session_tags(id).await?.into_iter().map(|t| t.tag).collect();
    let changed: Vec<&str> = changed.iter().map(Tag::as_str).collect();
    let mut v = json!({ "session": id.to_string(), "tags": now });
    v[what] = json!(changed);
    Ok(Json(v))
}

#[derive(Deserialize)]
struct TerminateBody {
    reason: Option<String>,
}

async fn terminate(
    State(st): St,
    caller: Caller,
    Path(id): Path<String>,
    Json(b): Json<TerminateBody>,
) -> ApiResult {
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
    Ok(Json(json!({ "terminated": s.id.to_string() })))
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
async fn node_terminate(State(st): St, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
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
    Ok(Json(json!({ "terminated": id.to_string() })))
}

// ---- search, live, audit ----

#[derive(Deserialize)]
struct SearchParams {
    q: String,
    user: Option<String>,
    target: Option<String>,
    since: Option<String>,
    until: Option<String>,
    commands_only: Option<bool>,
    tag: Option<String>,
    limit: Option<u32>,
}

#[derive(Deserialize)]
struct ReportParams {
    /// The period, as `keepwatch report --since` takes it (default 30d).
    since: Option<String>,
    /// `html` for the page with charts; JSON otherwise.
    format: Option<String>,
}

/// The report (`keepwatch report`): JSON, or with `format=html` the same self-contained page
/// the CLI writes. Auditors; it shows the commands run most, so it is audited like a search.
async fn report(
    State(st): St,
    caller: Caller,
    Query(p): Query<ReportParams>,
) -> Result<Response, ApiError> {
    caller.require(Role::Auditor)?;
    let since = p.since.as_deref().unwrap_or("30d");
    let secs = keepwatch_core::retention::parse_keep(since).map_err(ApiError::bad_request)?;
    let _permit = st.heavy.permit("the report").await?;
    let detail = json!({ "report": { "since": since } }).to_string();
    audit_as(&st, &caller, AuditAction::Searched, None, detail).await?;
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

async fn search(State(st): St, caller: Caller, Query(p): Query<SearchParams>) -> ApiResult {
    if p.q.trim().is_empty() {
        return Err(ApiError::bad_request("the search text (q) is empty"));
    }
    let _permit = st.heavy.permit("the search").await?;
    audit_as(&st, &caller, AuditAction::Searched, None, json!({ "query": p.q }).to_string())
        .await?;
    let Some(person) = person_filter(&caller, p.user.clone()) else {
        return Ok(Json(json!([])));
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
    let hits = st.store.search(&q).await?;
    Ok(Json(
        hits.iter()
            .map(|h| {
                json!({
                    "session": h.session_id.to_string(), "user": h.person, "target": h.target,
                    "seq": h.command.seq, "channel": h.command.channel, "kind": h.command.kind,
                    "at": rfc3339(h.command.at_us), "offset_us": h.command.start_offset_us,
                    "command": h.command.command, "snippet": h.snippet,
                })
            })
            .collect(),
    ))
}

/// This node's counters in Prometheus' text format (`docs/metrics.md`). Auditors and admins:
/// the counts say who is busy when, which is not for everyone.
async fn metrics(caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.require(Role::Auditor)?;
    let body = keepwatch_core::metrics::METRICS.render();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body))
}

async fn live(State(st): St, caller: Caller) -> ApiResult {
    caller.require(Role::Auditor)?;
    let now = keepwatch_store::now_us();
    let listed = st.store.session_listings(&SessionFilter::active()).await?;
    Ok(Json(Value::Array(
        listed
            .into_iter()
            .map(|l| {
                let s = l.session;
                json!({
                    "id": s.id.to_string(), "user": s.person, "target": s.target, "client_addr": s.client_addr,
                    "started_at": rfc3339(s.started_at_us), "duration_us": (now - s.started_at_us).max(0),
                    "last_command": l.last_command, "node": s.node.as_ref().map(|n| n.as_str()),
                })
            })
            .collect(),
    )))
}

#[derive(Deserialize)]
struct AuditQuery {
    actor: Option<String>,
    session: Option<String>,
    action: Option<String>,
    limit: Option<u32>,
}

async fn audit(State(st): St, caller: Caller, Query(q): Query<AuditQuery>) -> ApiResult {
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
    Ok(Json(
        rows.iter()
            .map(|e| {
                json!({
                    "id": e.id, "at": rfc3339(e.at_us), "actor": e.actor, "action": e.action.as_str(),
                    "session": e.session_id.map(|s| s.to_string()), "client_addr": e.client_addr,
                    "detail": e.detail,
                })
            })
            .collect(),
    ))
}

// ---- administration ----

async fn people(State(st): St, caller: Caller) -> ApiResult {
    caller.require(Role::Admin)?;
    let rows = st.store.people().await?;
    Ok(Json(rows
        .iter()
        .map(|p| json!({
            "name": p.name, "role": p.role.as_str(), "has_password": p.password_hash.is_some(),
            "ssh_keys": p.ssh_keys.len(), "created_at": rfc3339(p.created_at_us),
        }))
        .collect()))
}

#[derive(Deserialize)]
struct NewPersonBody {
    name: String,
    role: String,
    password: Option<String>,
    ssh_key: Option<String>,
}

async fn add_person(State(st): St, caller: Caller, Json(b): Json<NewPersonBody>) -> ApiResult {
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
    Ok(Json(json!({ "name": b.name, "role": role.as_str() })))
}

async fn targets(State(st): St, caller: Caller) -> ApiResult {
    caller.require(Role::Admin)?;
    let rows = st.store.targets().await?;
    Ok(Json(
        rows.iter()
            .map(|t| {
                json!({
                    "name": t.name, "host": t.host, "port": t.port, "login": t.login,
                    "secret_kind": t.secret.kind(), "host_key": t.host_key,
                    "trust_on_first_use": t.trust_on_first_use, "require_reason": t.require_reason,
                    "created_at": rfc3339(t.created_at_us),
                })
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
struct NewTargetBody {
    name: String,
    host: String,
    port: Option<u16>,
    login: String,
    password: String,
    /// The target's host key (`ssh-ed25519 AAAA...`, as `ssh-keyscan` prints it).
    host_key: Option<String>,
    /// Pin whatever key the target shows first instead (explicitly: never by default).
    trust_on_first_use: Option<bool>,
    /// Every session on it needs a reason given at connect.
    require_reason: Option<bool>,
}

async fn add_target(State(st): St, caller: Caller, Json(b): Json<NewTargetBody>) -> ApiResult {
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
    Ok(Json(json!({ "name": b.name })))
}

async fn grants(State(st): St, caller: Caller) -> ApiResult {
    caller.require(Role::Admin)?;
    let mut out = Vec::new();
    for p in st.store.people().await? {
        for t in st.store.granted_targets(&p.name).await? {
            out.push(json!({ "user": p.name, "target": t }));
        }
    }
    Ok(Json(Value::Array(out)))
}

#[derive(Deserialize)]
struct GrantBody {
    user: String,
    target: String,
}

async fn add_grant(State(st): St, caller: Caller, Json(b): Json<GrantBody>) -> ApiResult {
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
    Ok(Json(json!({ "user": b.user, "target": b.target })))
}

async fn remove_grant(State(st): St, caller: Caller, Query(b): Query<GrantBody>) -> ApiResult {
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
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct TokenBody {
    name: String,
    role: String,
    /// The person the token acts for; required for the user role.
    person: Option<String>,
}

async fn add_token(State(st): St, caller: Caller, Json(b): Json<TokenBody>) -> ApiResult {
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
    Ok(Json(json!({
        "name": b.name, "role": role.as_str(), "person": person.map(|p| p.to_string()), "token": token,
    })))
}
