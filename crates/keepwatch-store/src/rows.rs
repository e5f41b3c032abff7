//! Row shapes: what the store reads and writes, converted explicitly from domain values.

use keepwatch_core::{
    AuditAction, NodeId, PersonName, Protocol, RecordingFailure, Role, SessionId, SessionStatus,
    Tag,
};

#[derive(Debug, Clone)]
pub struct PersonRow {
    pub name: String,
    pub role: Role,
    pub password_hash: Option<String>,
    pub ssh_keys: Vec<String>,
    pub created_at_us: i64,
    /// A disabled person can log in nowhere, and their live sessions get no new channels.
    pub disabled: bool,
    /// Their password as a SCRAM-SHA-256 verifier (PostgreSQL's text form), for the
    /// PostgreSQL front end; written with the password.
    pub scram_verifier: Option<String>,
}

/// The target's credential, as the vault holds it (ciphertext only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSecret {
    Password(Vec<u8>),
    PrivateKey(Vec<u8>),
}

impl TargetSecret {
    pub fn kind(&self) -> &'static str {
        self.secret_kind().as_str()
    }
    pub fn ciphertext(&self) -> &[u8] {
        match self {
            TargetSecret::Password(c) | TargetSecret::PrivateKey(c) => c,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewTarget {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub login: String,
    pub secret: TargetSecret,
    /// `None` with `trust_on_first_use` pins the first key seen.
    pub host_key: Option<String>,
    pub trust_on_first_use: bool,
    pub on_recording_failure: RecordingFailure,
    pub algorithms: Algorithms,
    /// Which front end serves it.
    pub protocol: Protocol,
    /// For a database target: which database, and how to reach it.
    pub database: Option<DatabaseTarget>,
    /// A session on it opens only with a reason given at connect.
    pub require_reason: bool,
}

/// Where a database target's sessions go, beyond host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseTarget {
    /// The database sessions open.
    pub name: String,
    pub tls: TlsMode,
    /// PEM certificates to verify the server against (`verify-full`); `None`: system roots.
    pub ca: Option<String>,
}

/// How the gateway secures its connection to a database target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Plain TCP (the password still never travels in clear under SCRAM).
    Disable,
    /// TLS, the certificate not checked.
    #[default]
    Require,
    /// TLS, the certificate checked against the CA and the host name.
    VerifyFull,
}

impl TlsMode {
    pub const ALL: [TlsMode; 3] = [TlsMode::Disable, TlsMode::Require, TlsMode::VerifyFull];

    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Require => "require",
            TlsMode::VerifyFull => "verify-full",
        }
    }
}

impl std::str::FromStr for TlsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown TLS mode {s:?} (known: disable, require, verify-full)"))
    }
}

/// SSH algorithm names to offer a target, in preference order; empty = the gateway's
/// modern defaults. For switches and old servers that speak only older algorithms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Algorithms {
    pub kex: Vec<String>,
    pub host_key: Vec<String>,
    pub ciphers: Vec<String>,
    pub macs: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct TargetRow {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub login: String,
    pub secret: TargetSecret,
    pub host_key: Option<String>,
    pub trust_on_first_use: bool,
    pub on_recording_failure: RecordingFailure,
    pub algorithms: Algorithms,
    /// Which front end serves it.
    pub protocol: Protocol,
    pub database: Option<DatabaseTarget>,
    /// A session on it opens only with a reason given at connect.
    pub require_reason: bool,
    pub created_at_us: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: SessionId,
    pub person: String,
    pub target: String,
    pub target_host: String,
    pub target_login: String,
    pub client_addr: String,
    pub status: SessionStatus,
    /// Why the session ended (a termination's or a refusal's reason).
    pub reason: Option<String>,
    /// Why the person opened it, as they gave it at connect (also signed in the recording).
    pub stated_reason: Option<String>,
    pub started_at_us: i64,
    pub ended_at_us: Option<i64>,
    /// Chain head and signature of the seal, once sealed.
    pub chain_head: Option<[u8; 32]>,
    pub seal_seq: Option<u64>,
    pub seal_signature: Option<Vec<u8>>,
    /// The gateway node that runs (or ran) it; `None` for a session from before nodes.
    pub node: Option<NodeId>,
    /// The protocol it ran (its target's, when it started).
    pub protocol: Protocol,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRow {
    pub channel: u32,
    /// `shell`, `exec`, `subsystem` or `tunnel`.
    pub kind: String,
    pub command: Option<String>,
    pub subsystem: Option<String>,
    pub pty_term: Option<String>,
    pub destination: Option<String>,
    pub opened_at_us: i64,
    pub closed_at_us: Option<i64>,
    pub exit_status: Option<u32>,
}

/// A file that moved in a session (SFTP or SCP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRow {
    /// Assigned by the store: [`Store::add_transfer`](crate::Store::add_transfer) ignores it
    /// and returns the new one.
    pub id: i64,
    pub session_id: SessionId,
    pub channel: u32,
    pub at_us: i64,
    /// `sftp` or `scp`.
    pub protocol: String,
    pub path: String,
    pub upload: bool,
    pub bytes: u64,
    pub size: Option<u64>,
    /// Lowercase hex, when the whole file moved.
    pub sha256: Option<String>,
    pub complete: bool,
    pub ranges: Vec<(u64, u64)>,
    /// Whether a copy of the content was kept, when the grant asked for copies.
    pub capture: Option<ContentCapture>,
}

/// What became of a transfer's content under a grant that keeps copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentCapture {
    /// The whole file is in the blob store ([`BlobStore::capture`](crate::BlobStore::capture)).
    Captured { bytes: u64 },
    /// No copy was kept, for this reason.
    Skipped { reason: String },
}

/// Which transfers to list (every filter is applied by the database).
#[derive(Debug, Clone, Default)]
pub struct TransferFilter {
    pub person: Option<String>,
    pub target: Option<String>,
    pub session: Option<SessionId>,
    /// Lowercase or uppercase hex.
    pub sha256: Option<String>,
    /// Paths matching this pattern: `*` matches anything, `/` included; letters match
    /// ASCII case-insensitively (`keepwatch_core::glob_match`).
    pub path: Option<String>,
}

/// Which sessions to list, newest first (every filter is applied by the database).
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub status: Option<SessionStatus>,
    pub person: Option<String>,
    pub target: Option<String>,
    /// Bounds on the session's start, unix microseconds, both inclusive.
    pub since_us: Option<i64>,
    pub until_us: Option<i64>,
    /// At most this many (the newest).
    pub limit: Option<u32>,
    /// Only the sessions of this node.
    pub node: Option<NodeId>,
    /// Only sessions whose stated reason contains this text (case-insensitive; ASCII case).
    pub reason: Option<String>,
    /// Only sessions that carry this tag (exactly; tags are stored lowercase).
    pub tag: Option<String>,
}

impl SessionFilter {
    /// Every session running now.
    pub fn active() -> Self {
        SessionFilter { status: Some(SessionStatus::Active), ..Default::default() }
    }
}

/// A session as listed: its row, its channels, and the last command the indexer found in
/// it (shell, exec or stdin; not screen snapshots or environment rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionListing {
    pub session: SessionRow,
    pub channels: Vec<ChannelRow>,
    pub last_command: Option<String>,
    /// The session's tags, sorted.
    pub tags: Vec<String>,
}

/// Tags put on or taken off a session by someone, audited with the change
/// ([`crate::Store::add_session_tags`], [`crate::Store::remove_session_tags`]).
#[derive(Debug, Clone)]
pub struct TagChange<'a> {
    pub session: SessionId,
    pub tags: &'a [Tag],
    /// Who: `local:<user>`, `token:<name>`, `web:<person>`, as in the audit trail.
    pub actor: &'a str,
    pub client_addr: Option<&'a str>,
}

/// A recording's data key as the store keeps it: wrapped by the key-encryption key `kek`
/// names (`vault` or `command`).
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub wrapped: Vec<u8>,
    pub kek: String,
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WrappedKey({}, {} bytes)", self.kek, self.wrapped.len())
    }
}

/// One tag on a session, with who put it there and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTag {
    pub tag: String,
    pub added_by: String,
    pub added_at_us: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub seq: u64,
    pub session_id: SessionId,
    pub chain_head: [u8; 32],
    pub sealed_at_us: i64,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
    pub signature: Vec<u8>,
}

/// An audit fact about to be written. [`Store::audit`](crate::Store::audit) escapes
/// control characters in the actor, client address and detail and caps their lengths
/// (`keepwatch_core::clean`) before the event is hashed into the chain.
#[derive(Debug, Clone)]
pub struct NewAudit {
    pub actor: String,
    pub action: AuditAction,
    pub session_id: Option<SessionId>,
    pub client_addr: Option<String>,
    pub detail: String,
}

/// An audit event as listed. Rows stored before actors were cleaned may still hold control
/// characters: whoever prints them escapes them (`keepwatch_core::escape_controls`).
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: i64,
    pub at_us: i64,
    pub actor: String,
    pub action: AuditAction,
    pub session_id: Option<SessionId>,
    pub client_addr: Option<String>,
    pub detail: String,
}

/// An audit event exactly as stored, for checking its place in the chain (a typed
/// [`AuditRow`] could not hash what an edited row really holds).
#[derive(Debug, Clone)]
pub struct StoredAudit {
    pub id: i64,
    pub at_us: i64,
    pub actor: String,
    pub action: String,
    pub session_id: Option<String>,
    pub client_addr: Option<String>,
    pub detail: String,
}

/// One thing a person ran (or a snapshot of what a full-screen program showed), as the
/// indexer extracted it from a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRow {
    /// 1-based, per session.
    pub seq: u32,
    pub channel: u32,
    /// `shell`, `exec`, `stdin`, `file`, `env`, `screen` or `sql`.
    pub kind: String,
    /// Wall clock of the start, unix microseconds.
    pub at_us: i64,
    /// Offsets in the recording (microseconds since the session started).
    pub start_offset_us: u64,
    pub end_offset_us: Option<u64>,
    pub command: String,
    pub prompt: String,
    pub output: String,
    /// `exact`, `inferred` or `unknown`.
    pub confidence: String,
    pub output_truncated: bool,
    pub full_screen: bool,
    /// What was typed, when it is not what ran: a history expansion such as `!!`, which the
    /// shell printed expanded before running it (`command` is the expansion).
    pub typed: Option<String>,
}

/// What `search` looks for.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// Matched as a substring of the command or its output, case-insensitively.
    pub text: String,
    pub person: Option<String>,
    pub target: Option<String>,
    pub session: Option<SessionId>,
    /// Wall-clock bounds on the command's start, unix microseconds.
    pub since_us: Option<i64>,
    pub until_us: Option<i64>,
    /// Match command lines only, not output or screen snapshots.
    pub commands_only: bool,
    /// Only in sessions that carry this tag.
    pub tag: Option<String>,
    pub limit: u32,
}

impl SearchQuery {
    /// Whether a person, target, session or tag narrows the search to some sessions.
    pub fn names_sessions(&self) -> bool {
        self.person.is_some()
            || self.target.is_some()
            || self.tag.is_some()
            || self.session.is_some()
    }

    /// Whether those or a time bound narrow the search.
    pub fn is_filtered(&self) -> bool {
        self.names_sessions() || self.since_us.is_some() || self.until_us.is_some()
    }
}

/// One search result: where it is, and a snippet around the match (marked `«...»`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    pub session_id: SessionId,
    pub person: String,
    pub target: String,
    /// The command the match is in: its line, or (`in_output`) the output it printed. An
    /// output line seen before any command of its channel has a row of kind `output` with
    /// no command line and seq 0.
    pub command: CommandRow,
    /// The match is in output (what the terminal showed, what an exec printed, a file
    /// operation's answer, a statement's rows), not in the command line.
    pub in_output: bool,
    /// Where to open the replay (microseconds since the session started): the command's
    /// start, or for output the moment its line was on the screen (or about to be printed).
    pub offset_us: u64,
    /// Wall clock of that moment, unix microseconds.
    pub at_us: i64,
    pub snippet: String,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchAnswer {
    /// Newest first.
    pub hits: Vec<SearchHit>,
    /// The search read as many output blocks as one query may (64 MiB of text) before it
    /// found `limit` hits: older output was not searched. Narrow it (a person, a target, a
    /// time range) or use a longer text.
    pub stopped_early: bool,
}

/// A run of output text of one channel as the indexer extracted it (every line the person
/// saw, in order), stored and indexed as one unit of up to about [`OutputBlock::TARGET`]
/// bytes. A search hit in it is confirmed against the text and dated by `marks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputBlock {
    pub channel: u32,
    /// Wall clock of its first line, unix microseconds.
    pub at_us: i64,
    /// Offsets in the recording (microseconds since the session started) of its first and
    /// last lines.
    pub start_offset_us: u64,
    pub end_offset_us: u64,
    pub text: String,
    /// `(byte offset in text, offset_us)`, ascending: the text from that byte on was seen at
    /// that moment of the recording (until the next mark). The first mark is at byte 0.
    pub marks: Vec<(u32, u64)>,
}

impl OutputBlock {
    /// The size the indexer cuts blocks at (at a line's end).
    pub const TARGET: usize = 4 * 1024;

    /// The recording offset of the text at byte `at`.
    pub fn offset_at(&self, at: usize) -> u64 {
        let i = self.marks.partition_point(|&(b, _)| b as usize <= at);
        self.marks.get(i.wrapping_sub(1)).map_or(self.start_offset_us, |&(_, t)| t)
    }
}

/// Sessions whose index cannot yet answer for everything they recorded: a search's hits
/// may be missing matches there ([`crate::Store::search_gaps`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexGap {
    pub session_id: SessionId,
    pub person: String,
    pub target: String,
    /// `Behind` (live, or not caught up yet), `Rebuilding` (output stored before an upgrade
    /// not in the index yet) or `Error` (the recording could not be read).
    pub state: IndexState,
    pub session_status: SessionStatus,
    /// Recording bytes indexed, of the bytes recorded so far (when the recording is here).
    pub bytes_indexed: u64,
    pub bytes_recorded: Option<u64>,
    pub error: Option<String>,
}

/// The sessions a search could match whose index is not complete
/// ([`crate::Store::search_gaps`]): the oldest [`IndexGaps::LISTED`], with how many there are
/// in all (after an upgrade that reindexes every session, that is all of them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexGaps {
    pub listed: Vec<IndexGap>,
    pub total: u64,
}

impl IndexGaps {
    /// Sessions listed at most; each costs a look at its recording's length (on S3, a
    /// request).
    pub const LISTED: usize = 100;

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// How far the indexer has read a session's recording, stored in the same transaction as
/// the rows it produced ([`crate::Store::add_commands`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexProgress {
    /// The events of the recording's first `bytes` bytes (its header and whole chunks) are
    /// indexed. A command still running at that point is not a row yet: the extractor ends
    /// a shell command at the next prompt, an exec command when its channel closes.
    Partial { bytes: u64 },
    /// Every event of the recording is indexed: the seal was read, or the recording ended
    /// without one and will not grow.
    Complete,
}

/// Where the index of one session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexState {
    /// The recording ended and every event of it is indexed.
    Complete,
    /// Not every event is indexed yet: the session is live (its recording still grows), or
    /// the indexer has not caught up with it.
    Behind,
    /// Every event of the recording is indexed, but output blocks stored before an upgrade
    /// are still being given to the search index (SQLite after migration 0015, see
    /// [`crate::Store::finish_index_rebuild`]): that output is not found yet.
    Rebuilding,
    /// The recording could not be indexed; not retried until `reindex` asks for it.
    Error,
}

impl IndexState {
    pub fn as_str(self) -> &'static str {
        match self {
            IndexState::Complete => "complete",
            IndexState::Behind => "behind",
            IndexState::Rebuilding => "rebuilding",
            IndexState::Error => "error",
        }
    }
}

/// One session's index status ([`crate::Store::index_status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexStatus {
    pub session_id: SessionId,
    /// The session's own status: `Active` means its recording still grows.
    pub session_status: SessionStatus,
    pub state: IndexState,
    /// Bytes of the recording whose events are indexed (the file header and whole chunks;
    /// see [`IndexProgress::Partial`]); the whole recording once complete.
    pub bytes_indexed: u64,
    /// The recording's length now: the spool file's for a live session, the sealed file's
    /// after; `None` when there is no recording to be found.
    pub bytes_recorded: Option<u64>,
    /// Rows written so far: commands, screen snapshots, file operations and the like.
    pub commands: u32,
    /// When the indexer last wrote for this session; `None` if it never has.
    pub updated_at_us: Option<i64>,
    /// Why the recording could not be indexed (with [`IndexState::Error`]).
    pub error: Option<String>,
}

/// Which sessions [`crate::Store::index_status`] reports.
#[derive(Debug, Clone, Copy)]
pub enum IndexScope<'a> {
    /// Every session whose index is not complete (behind or failed), oldest first.
    Unfinished,
    /// Those of them a search could match: within its person, target, session, tag and
    /// time filters (its text is not looked at).
    UnfinishedFor(&'a SearchQuery),
    /// These sessions, in this order, whatever their state.
    Sessions(&'a [SessionId]),
}

/// Which audit events to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<AuditAction>,
    pub actor: Option<String>,
    pub session: Option<SessionId>,
    pub limit: Option<u32>,
}

/// An audit event with its place in the audit chain.
#[derive(Debug, Clone)]
pub struct AuditLink {
    pub event: StoredAudit,
    pub hash: Option<Vec<u8>>,
    pub signature: Option<Vec<u8>>,
}

/// An API token as stored (the token itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub name: String,
    pub role: Role,
    /// The person the token acts for. A `user` token sees only this person's sessions, and
    /// none at all without one (tokens made before tokens named a person).
    pub person: Option<PersonName>,
    pub created_at_us: i64,
    pub last_used_at_us: Option<i64>,
}

/// A terminal channel's screen at a point of a recording, for seeking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyframeRow {
    pub channel: u32,
    /// Offset in the recording (microseconds since the session started).
    pub at_us: u64,
    /// File offset of the chunk to resume reading at, and how many of its events the screen
    /// already includes.
    pub chunk_offset: u64,
    pub skip_events: u32,
    pub cols: u16,
    pub rows: u16,
    /// Escape sequences that redraw the screen.
    pub screen: String,
}

/// What [`Store::reseal_legacy_secrets`](crate::Store::reseal_legacy_secrets) did with one
/// target's old secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resealed {
    /// Sealed again, bound to the target's row.
    Resealed { target: String },
    /// It does not open for the target's name (a wrong vault key or a changed row): left as
    /// it is, so sessions to the target are refused.
    Unreadable { target: String, reason: String },
}

/// One registered node: its name, when it started and when it last beat (unix µs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub id: NodeId,
    pub started_at_us: i64,
    pub heartbeat_at_us: i64,
    /// Where the other nodes reach its web listener (`host:port`); empty until it is up.
    pub web_addr: String,
}

/// A console login (a browser session): whose, since when, and the CSRF token its
/// state-changing requests must carry. Keyed by the SHA-256 of its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebLoginRow {
    pub person: PersonName,
    pub role: Role,
    /// When the person's row was created, as it was at login.
    pub person_created_at_us: i64,
    pub csrf: String,
    pub started_at_us: i64,
    pub last_seen_at_us: i64,
}

/// How long console logins last: idle and in all (µs), and how many one person holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebLoginLimits {
    pub idle_us: i64,
    pub lifetime_us: i64,
    pub per_person: usize,
}

impl WebLoginLimits {
    /// At `now_us`, a login last seen at or before the first, or started at or before the
    /// second, has expired.
    pub(crate) fn alive_after(&self, now_us: i64) -> (i64, i64) {
        (now_us.saturating_sub(self.idle_us), now_us.saturating_sub(self.lifetime_us))
    }

    /// A login seen within this is not touched again (one write per login per interval, not
    /// per request): a tenth of the idle timeout, at most 15 s.
    pub(crate) fn touch_after_us(&self) -> i64 {
        (self.idle_us / 10).min(15_000_000)
    }
}

/// A retention policy as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRow {
    pub policy: keepwatch_core::retention::Policy,
    pub created_by: String,
    pub created_at_us: i64,
}

/// A legal hold as stored, released or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRow {
    pub hold: keepwatch_core::retention::Hold,
    pub reason: String,
    pub placed_by: String,
    pub placed_at_us: i64,
    /// Who released it, when and why; `None` while it holds.
    pub released: Option<HoldRelease>,
}

/// How a hold ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRelease {
    pub by: String,
    pub at_us: i64,
    pub reason: String,
}
