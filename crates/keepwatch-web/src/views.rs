//! What `/api/v1` answers, as types: the handlers build these, and the OpenAPI document
//! (`openapi.rs`) is generated from the same types, so the two cannot drift apart. Times are
//! RFC 3339 in UTC with microseconds ([`rfc3339`]); offsets and durations are microseconds.

use keepwatch_store::{
    AuditRow, ChannelRow, CommandRow, IndexGap, IndexGaps, IndexStatus, PersonRow, SearchAnswer,
    SearchHit, SessionRow, TargetRow, TransferRow,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::rfc3339;

/// Every error: what went wrong and, where there is one, what to send instead.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    pub error: String,
}

/// An answer with nothing to say (logout, a revoked grant).
#[derive(Serialize, ToSchema)]
pub(crate) struct Empty {}

/// Who is logged in (login, `/me`).
#[derive(Serialize, ToSchema)]
pub(crate) struct LoggedIn {
    pub name: String,
    /// user, auditor or admin.
    pub role: String,
    /// Send it as `X-CSRF-Token` with every request that changes something (browser
    /// sessions; null for a token).
    pub csrf: Option<String>,
}

/// `GET /api/v1/me`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Me {
    #[serde(flatten)]
    pub who: LoggedIn,
    /// The fingerprint of the key that signs recordings: compare it with the one written
    /// down at `keepwatch init`.
    pub key_fingerprint: String,
    /// What the newest verify round found when it found a problem (auditors and admins);
    /// null before any round, after a clean one, and for other roles.
    pub verify_alert: Option<VerifyAlert>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct VerifyAlert {
    pub at: String,
    /// Who ran the round (the gateway's schedule, or the person who ran `verify --all`).
    pub by: String,
    pub detail: String,
}

/// One channel of a session (a shell, an exec, sftp, a forward, a database connection).
#[derive(Serialize, ToSchema)]
pub(crate) struct Channel {
    pub channel: u32,
    pub kind: String,
    pub command: Option<String>,
    pub subsystem: Option<String>,
    pub pty_term: Option<String>,
    pub destination: Option<String>,
    pub opened_at: String,
    pub closed_at: Option<String>,
    pub exit_status: Option<u32>,
}

impl From<&ChannelRow> for Channel {
    fn from(c: &ChannelRow) -> Self {
        Channel {
            channel: c.channel,
            kind: c.kind.clone(),
            command: c.command.clone(),
            subsystem: c.subsystem.clone(),
            pty_term: c.pty_term.clone(),
            destination: c.destination.clone(),
            opened_at: rfc3339(c.opened_at_us),
            closed_at: c.closed_at_us.map(rfc3339),
            exit_status: c.exit_status,
        }
    }
}

/// A session as the list gives it.
#[derive(Serialize, ToSchema)]
pub(crate) struct Session {
    pub id: String,
    pub user: String,
    pub target: String,
    /// ssh or postgres.
    pub protocol: String,
    pub target_host: String,
    pub target_login: String,
    pub client_addr: String,
    /// active, closed, terminated, interrupted or refused.
    pub status: String,
    /// Why it ended, when it did not end normally.
    pub reason: Option<String>,
    /// The reason the person gave at connect (`--require-reason` targets).
    pub stated_reason: Option<String>,
    pub tags: Vec<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub duration_us: i64,
    /// The gateway node that runs (or ran) it.
    pub node: Option<String>,
    pub channels: Vec<Channel>,
}

impl Session {
    pub(crate) fn new(s: &SessionRow, channels: &[ChannelRow], tags: &[String]) -> Self {
        let end = s.ended_at_us.unwrap_or_else(keepwatch_store::now_us);
        Session {
            id: s.id.to_string(),
            user: s.person.clone(),
            target: s.target.clone(),
            protocol: s.protocol.as_str().to_owned(),
            target_host: s.target_host.clone(),
            target_login: s.target_login.clone(),
            client_addr: s.client_addr.clone(),
            status: s.status.as_str().to_owned(),
            reason: s.reason.clone(),
            stated_reason: s.stated_reason.clone(),
            tags: tags.to_vec(),
            started_at: rfc3339(s.started_at_us),
            ended_at: s.ended_at_us.map(rfc3339),
            duration_us: (end - s.started_at_us).max(0),
            node: s.node.as_ref().map(|n| n.as_str().to_owned()),
            channels: channels.iter().map(Channel::from).collect(),
        }
    }
}

/// One session with everything recorded about it (`GET /api/v1/sessions/{id}`).
#[derive(Serialize, ToSchema)]
pub(crate) struct SessionDetail {
    #[serde(flatten)]
    pub session: Session,
    pub transfers: Vec<Transfer>,
    pub commands: Vec<Command>,
    /// The environment the client asked for (env requests), as commands of kind env.
    pub environment: Vec<Command>,
    pub verify: Verification,
}

/// A file moved in a session (scp, sftp, rsync).
#[derive(Serialize, ToSchema)]
pub(crate) struct Transfer {
    pub id: i64,
    pub channel: u32,
    pub at: String,
    pub protocol: String,
    pub path: String,
    /// upload or download.
    pub direction: String,
    pub bytes: u64,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    pub complete: bool,
}

impl From<&TransferRow> for Transfer {
    fn from(t: &TransferRow) -> Self {
        Transfer {
            id: t.id,
            channel: t.channel,
            at: rfc3339(t.at_us),
            protocol: t.protocol.clone(),
            path: t.path.clone(),
            direction: if t.upload { "upload" } else { "download" }.to_owned(),
            bytes: t.bytes,
            size: t.size,
            sha256: t.sha256.clone(),
            complete: t.complete,
        }
    }
}

/// The verdict on a session's recording, checked when it is shown.
#[derive(Serialize, ToSchema)]
pub(crate) struct Verification {
    pub intact: bool,
    pub problems: Vec<String>,
    /// What the verdict trusts: compare it with the fingerprint written down at `init`.
    pub key_fingerprint: String,
}

/// A command (or a database statement) as the API and `keepwatch show --json` give it.
#[derive(Serialize, ToSchema)]
pub(crate) struct Command {
    pub seq: u32,
    pub channel: u32,
    /// shell, exec, sql or env.
    pub kind: String,
    pub at: String,
    /// Where it starts in the session, for the replay.
    pub offset_us: u64,
    pub end_offset_us: Option<u64>,
    pub command: String,
    pub prompt: String,
    /// How sure the extractor is of the text: exact, inferred (where the prompt ends was
    /// guessed) or unknown (typed with no echo).
    pub confidence: String,
    pub full_screen: bool,
    pub output_truncated: bool,
    /// What was typed, where it differs from what the screen showed.
    pub typed: Option<String>,
    /// A database statement's outcome (`SELECT 3`, `ERROR 42P01: ...`, `refused by
    /// keepwatch: ...`); null for other kinds.
    pub outcome: Option<String>,
}

impl From<&CommandRow> for Command {
    fn from(c: &CommandRow) -> Self {
        // A statement's outcome is the last line of its indexed output, after any rows the
        // grant kept.
        let outcome =
            (c.kind == "sql").then(|| c.output.lines().last().unwrap_or_default().to_owned());
        Command {
            seq: c.seq,
            channel: c.channel,
            kind: c.kind.clone(),
            at: rfc3339(c.at_us),
            offset_us: c.start_offset_us,
            end_offset_us: c.end_offset_us,
            command: c.command.clone(),
            prompt: c.prompt.clone(),
            confidence: c.confidence.clone(),
            full_screen: c.full_screen,
            output_truncated: c.output_truncated,
            typed: c.typed.clone(),
            outcome,
        }
    }
}

/// A session's tags after a change.
#[derive(Serialize, ToSchema)]
pub(crate) struct Tags {
    pub session: String,
    /// The session's tags now.
    pub tags: Vec<String>,
    /// The tags this request put on (`POST`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added: Option<Vec<String>>,
    /// The tags this request took off (`DELETE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Terminated {
    /// The session ended.
    pub terminated: String,
}

/// A search hit: the command whose text or output holds the query.
#[derive(Serialize, ToSchema)]
pub(crate) struct Hit {
    pub session: String,
    pub user: String,
    pub target: String,
    /// The command the match is in (its line, or the output it printed); 0 for output seen
    /// before any command of its channel.
    pub seq: u32,
    pub channel: u32,
    pub kind: String,
    /// When the matching line was on the screen (or the command started).
    pub at: String,
    /// Where to open the replay (microseconds into the recording): the matching output
    /// line's moment, or the command's start.
    pub offset_us: u64,
    /// The match is in output, not in the command line.
    pub in_output: bool,
    pub command: String,
    /// The matching text with some context.
    pub snippet: String,
}

impl From<&SearchHit> for Hit {
    fn from(h: &SearchHit) -> Self {
        Hit {
            session: h.session_id.to_string(),
            user: h.person.clone(),
            target: h.target.clone(),
            seq: h.command.seq,
            channel: h.command.channel,
            kind: h.command.kind.clone(),
            at: rfc3339(h.at_us),
            offset_us: h.offset_us,
            in_output: h.in_output,
            command: h.command.command.clone(),
            snippet: h.snippet.clone(),
        }
    }
}

/// What a search found, and where it could not look (`GET /api/v1/search`,
/// `keepwatch search --json`).
#[derive(Serialize, ToSchema)]
pub(crate) struct SearchResult {
    /// Newest first.
    pub hits: Vec<Hit>,
    /// Sessions the search could match whose index is not complete yet (live, catching up,
    /// or failed): matches there may be missing from `hits`. The oldest 100 of them.
    pub not_fully_indexed: Vec<Unindexed>,
    /// How many such sessions there are in all (more than are listed after an upgrade that
    /// indexes every session again).
    pub not_fully_indexed_total: u64,
    /// The search read as much output as one search may before it found `limit` hits:
    /// older output was not searched. Narrow it by person, target or time.
    pub stopped_early: bool,
}

/// A session whose index is behind or failed.
#[derive(Serialize, ToSchema)]
pub(crate) struct Unindexed {
    pub session: String,
    pub user: String,
    pub target: String,
    /// behind, rebuilding (output stored before an upgrade not searchable yet) or error.
    pub state: String,
    pub session_status: String,
    pub bytes_indexed: u64,
    /// Null when the recording's length cannot be read.
    pub bytes_recorded: Option<u64>,
    pub error: Option<String>,
}

impl From<&IndexGap> for Unindexed {
    fn from(g: &IndexGap) -> Self {
        Unindexed {
            session: g.session_id.to_string(),
            user: g.person.clone(),
            target: g.target.clone(),
            state: g.state.as_str().to_owned(),
            session_status: g.session_status.as_str().to_owned(),
            bytes_indexed: g.bytes_indexed,
            bytes_recorded: g.bytes_recorded,
            error: g.error.clone(),
        }
    }
}

impl SearchResult {
    pub(crate) fn new(answer: &SearchAnswer, gaps: &IndexGaps) -> Self {
        SearchResult {
            hits: answer.hits.iter().map(Hit::from).collect(),
            not_fully_indexed: gaps.listed.iter().map(Unindexed::from).collect(),
            not_fully_indexed_total: gaps.total,
            stopped_early: answer.stopped_early,
        }
    }
}

/// A session running now.
#[derive(Serialize, ToSchema)]
pub(crate) struct LiveSession {
    pub id: String,
    pub user: String,
    pub target: String,
    pub client_addr: String,
    pub started_at: String,
    pub duration_us: i64,
    pub last_command: Option<String>,
    pub node: Option<String>,
}

/// One entry of the audit trail.
#[derive(Serialize, ToSchema)]
pub(crate) struct AuditEvent {
    pub id: i64,
    pub at: String,
    pub actor: String,
    /// The action, as `docs/events.md` lists them (login_succeeded, recording_replayed, ...).
    pub action: String,
    pub session: Option<String>,
    pub client_addr: Option<String>,
    pub detail: String,
}

impl From<&AuditRow> for AuditEvent {
    fn from(e: &AuditRow) -> Self {
        AuditEvent {
            id: e.id,
            at: rfc3339(e.at_us),
            actor: e.actor.clone(),
            action: e.action.as_str().to_owned(),
            session: e.session_id.map(|s| s.to_string()),
            client_addr: e.client_addr.clone(),
            detail: e.detail.clone(),
        }
    }
}

/// A person (never their password or keys: whether they have them).
#[derive(Serialize, ToSchema)]
pub(crate) struct Person {
    pub name: String,
    pub role: String,
    pub has_password: bool,
    /// How many SSH keys they log in with.
    pub ssh_keys: usize,
    pub created_at: String,
}

impl From<&PersonRow> for Person {
    fn from(p: &PersonRow) -> Self {
        Person {
            name: p.name.clone(),
            role: p.role.as_str().to_owned(),
            has_password: p.password_hash.is_some(),
            ssh_keys: p.ssh_keys.len(),
            created_at: rfc3339(p.created_at_us),
        }
    }
}

/// A person just added.
#[derive(Serialize, ToSchema)]
pub(crate) struct PersonAdded {
    pub name: String,
    pub role: String,
}

/// A target (never its secret: what kind it is).
#[derive(Serialize, ToSchema)]
pub(crate) struct Target {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub login: String,
    /// password or key.
    pub secret_kind: String,
    /// The pinned host key; null until a trust-on-first-use target is first reached.
    pub host_key: Option<String>,
    pub trust_on_first_use: bool,
    pub require_reason: bool,
    pub created_at: String,
}

impl From<&TargetRow> for Target {
    fn from(t: &TargetRow) -> Self {
        Target {
            name: t.name.clone(),
            host: t.host.clone(),
            port: t.port,
            login: t.login.clone(),
            secret_kind: t.secret.kind().to_owned(),
            host_key: t.host_key.clone(),
            trust_on_first_use: t.trust_on_first_use,
            require_reason: t.require_reason,
            created_at: rfc3339(t.created_at_us),
        }
    }
}

/// A target just added.
#[derive(Serialize, ToSchema)]
pub(crate) struct TargetAdded {
    pub name: String,
}

/// A person's grant of a target.
#[derive(Serialize, ToSchema)]
pub(crate) struct Grant {
    pub user: String,
    pub target: String,
}

/// A token just made: `token` is shown this once (only its hash is kept).
#[derive(Serialize, ToSchema)]
pub(crate) struct TokenMade {
    pub name: String,
    pub role: String,
    pub person: Option<String>,
    /// Send it as `Authorization: Bearer ...`.
    pub token: String,
}

/// One session's index status (`GET /api/v1/index`, `keepwatch index status --json`).
#[derive(Serialize, ToSchema)]
pub(crate) struct IndexRow {
    pub session: String,
    pub session_status: String,
    /// complete, behind, rebuilding (output stored before an upgrade not searchable yet) or
    /// error.
    pub state: String,
    pub bytes_indexed: u64,
    /// Null when the recording's length cannot be read.
    pub bytes_recorded: Option<u64>,
    pub commands: u32,
    pub updated_at: Option<String>,
    pub error: Option<String>,
}

impl From<&IndexStatus> for IndexRow {
    fn from(s: &IndexStatus) -> Self {
        IndexRow {
            session: s.session_id.to_string(),
            session_status: s.session_status.as_str().to_owned(),
            state: s.state.as_str().to_owned(),
            bytes_indexed: s.bytes_indexed,
            bytes_recorded: s.bytes_recorded,
            commands: s.commands,
            updated_at: s.updated_at_us.map(rfc3339),
            error: s.error.clone(),
        }
    }
}
