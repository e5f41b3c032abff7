//! The data directory: its layout, `keepwatch.toml`, key files and `init`.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ed25519_dalek::{SigningKey, VerifyingKey};
use keepwatch_core::{MaskRule, NodeId, OutputMask, Role};
use keepwatch_recorder::{RecorderConfig, RecorderContext};
use keepwatch_ssh::GatewayConfig;
use keepwatch_store::{Archive, BlobStore, Database, Kek, S3Options, Store, Vault, hash_password};
use serde::Deserialize;

const CONFIG: &str = "keepwatch.toml";
const HOST_KEY: &str = "ssh_host_ed25519_key";
const SIGNING_KEY: &str = "signing.key";
const SIGNING_PUB: &str = "signing.pub";
const VAULT_KEY: &str = "vault.key";
const DB: &str = "keepwatch.db";
const ANCHORS: &str = "anchors.log";
/// The PostgreSQL front end's certificate and key (PEM); replace both to use your own.
const PG_TLS_CERT: &str = "pg-tls.crt";
const PG_TLS_KEY: &str = "pg-tls.key";

const DEFAULT_CONFIG: &str = r#"# Keepwatch configuration. Every setting is shown with its default.

# Where people connect with ssh/sftp/scp (USER@TARGET as the login name).
ssh_listen = "127.0.0.1:2222"
# The console and the HTTP API (docs/api.md); log in with a password from `user add`.
web_listen = "127.0.0.1:8080"
# Where PostgreSQL clients connect (user=USER@TARGET, sslmode=require). Empty: on
# 127.0.0.1:6432 when a postgres target exists, else off. TLS uses pg-tls.crt and pg-tls.key
# in the data directory (made by init; replace them with your own).
pg_listen = ""

[recording]
# Chunks reach disk at least this often: a crash loses at most this much of a session.
flush_interval_ms = 1000
# A signed checkpoint at least this often while a session produces data.
checkpoint_interval_s = 10
# Output masking: secrets a target prints are recorded (and indexed) as a marker such as
# "[masked aws-access-key]"; the person still sees them live. Private key blocks:
mask_private_keys = true
# AWS keys, password=/token:/api_key= assignments, bearer tokens, GitHub tokens:
mask_defaults = true
# More rules; a group named "secret" masks only that part of the match. For example:
# [[recording.mask]]
# name = "ticket"
# pattern = 'TKT-(?P<secret>[0-9]+)'
# Encryption at rest (docs/encryption.md): each new recording is sealed under a data key of
# its own, kept wrapped by a key-encryption key derived from vault.key, or by an external
# command (a KMS or HSM client: `COMMAND wrap|unwrap`, key on stdin) when kek_command is set.
# `verify` needs no key; `keepwatch rotate-key` re-wraps every data key.
encrypt = true
# kek_command = ["/usr/local/bin/kms-wrap", "--key-id", "keepwatch"]

[gateway]
# Environment variables a client may pass to the target; a trailing * matches a prefix.
env_allow = ["LANG", "LC_*"]
# Seconds to wait for a target before calling it unreachable.
connect_timeout_s = 10
# Seconds a shutdown waits for sessions to seal.
shutdown_grace_s = 10
# Input typed after an output line that ends in ":" and contains one of these words is
# recorded as "[redacted N bytes]" (docs/secrets.md). Default: password, passphrase, passcode,
# pin, secret, token and "password" in several languages.
# secret_prompts = ["password", "passphrase", "pin"]
# Shown at connect (on an SSH shell before the target's first output, as a NOTICE to a
# PostgreSQL client) and recorded with what the person saw. "" shows nothing.
# notice = "keepwatch: this session is recorded and may be reviewed"

[limits]
# Bounds on what a stranger (or a person with an ordinary grant) can make the gateway hold.
# Seconds a connection has to log in before it is closed.
login_grace_s = 30
# Connections that have not logged in yet, in all and from one address; more are closed
# as they arrive.
max_unauthenticated = 256
max_unauthenticated_per_address = 32
# Seconds a logged-in SSH connection may go without data either way before it is ended
# (0: never).
idle_timeout_s = 3600
# Channels (shells, execs, transfers, tunnels) one SSH connection may have open at once.
max_channels_per_connection = 64
# Failed password logins, SSH and web together, allowed per name and per address within
# the window; further attempts are refused unchecked until it passes.
login_failures_per_name = 5
login_failures_per_address = 20
login_failure_window_s = 900
# Password checks (argon2, CPU-heavy) run at once, off the network threads; an attempt
# waits at most this long for its turn and is refused after.
password_checks = 2
password_check_wait_ms = 2000
# The web listener. Seconds a client has to send a request's head (request line and
# headers; also how long an idle kept-alive connection stays open), and its body.
web_header_timeout_s = 10
web_body_timeout_s = 30
# Web connections served at once (WebSocket watchers included); further connections wait
# in the kernel's accept backlog until one closes.
web_max_connections = 512
# Console sessions: minutes without a request before one ends, hours it lasts at most,
# and how many one person may hold (a new login ends the least recently used).
web_session_idle_min = 30
web_session_lifetime_h = 12
web_sessions_per_person = 16
# One replay response holds at most this many events and bytes of event data (as JSON),
# and reads at most this many bytes of recording; the console fetches the next page.
replay_max_events = 20000
replay_max_bytes = 8388608
replay_max_scan_bytes = 67108864
# Replays, exports, session verifications, searches and watch starts served at once; the
# others wait up to heavy_wait_ms (at most heavy_max_waiting of them), then get 503.
heavy_requests = 4
heavy_wait_ms = 5000
heavy_max_waiting = 64
# Sessions whose verification result is kept (until their recording changes).
verify_cache_entries = 10000

[proxy]
# Behind a load balancer (HAProxy, a cloud TCP balancer) that sends the PROXY protocol
# header (version 1 or 2), the listeners read the person's address from it: that address is
# recorded and limited. Off by default. When on, connections must come from a trusted
# balancer and start with the header; any other connection is refused.
ssh = false
web = false
trusted = ["127.0.0.1", "::1"]
header_timeout_s = 5

[store]
# Where the metadata lives (people, targets, grants, sessions, the search index, the ledger,
# the audit trail, API tokens). Empty: keepwatch.db (SQLite) in this data directory. A
# PostgreSQL URL ("postgres://USER:PASSWORD@HOST:5432/DB") lets several gateways share one
# database (see docs/deploy.md); `keepwatch migrate --to URL` copies an SQLite installation
# into it. Recordings go where [storage] recordings says.
database = ""

[trust]
# The key that signs recordings, checkpoints, the ledger, the audit trail and anchors. Keep
# it outside the data directory (root-owned, readable by the gateway only) so that someone
# who can write the data directory cannot re-sign a forged history; `keepwatch init
# --signing-key FILE` puts it there. Empty: signing.key in the data directory.
signing_key = ""

[anchor]
# Every interval the gateway appends a signed anchor (the ledger's head, the audit trail's
# head, every live recording's latest checkpoint) so that deleting the newest history is
# caught by `keepwatch verify --anchor FILE`. Send anchors where the gateway cannot rewrite
# them: an append-only file on another path (made `chattr +a` when it is outside the data
# directory) and/or syslog (forwarded to a collector). Empty file: anchors.log in the data
# directory, which protects nothing against someone who can write the data directory.
file = ""
syslog = false
syslog_socket = "/dev/log"
interval_s = 60

[storage]
# Where sealed recordings and kept copies of files go. Empty: this data directory
# (recordings/, captures/), where sealing a recording renames its spool file. An S3 bucket
# (any S3-compatible server) as "s3://bucket/prefix": recordings are uploaded in segments
# while sessions run, and sealed with a signed manifest. Credentials, region and endpoint
# come from the AWS_* variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
# AWS_ENDPOINT, ...) or the ~/.aws/credentials and ~/.aws/config profile (AWS_PROFILE).
recordings = ""
# An S3-compatible server that is not AWS: its URL (path-style requests), and whether plain
# HTTP is allowed to it. Empty: AWS, or AWS_ENDPOINT.
endpoint = ""
region = ""
allow_http = false
# A live recording goes up at least this often (when anything new was written), and as soon
# as this many bytes wait: a node that dies with its disk loses at most about this interval
# plus the flush interval of a recording.
segment_interval_ms = 3000
segment_bytes = 8388608
# While the bucket cannot be reached the local spool keeps the recordings and uploads them
# when it answers again; past this many bytes not yet uploaded (all sessions together),
# sessions end with a message and new ones are refused (fail closed), as on a full disk.
outage_spool_bytes = 1073741824

[node]
# This gateway's name among the nodes that share one database (letters, digits, '.', '_',
# '-'). Empty: the name in this data directory's node-id file, made at the first start. Every
# node needs a data directory of its own (its spool); a copied node-id file makes two
# processes one node, and the older one is fenced (its sessions end) at its next heartbeat.
id = ""
# How often this node records that it is alive, and after how long without a heartbeat
# another node seals this node's sessions as interrupted (from the recordings in the bucket).
heartbeat_s = 5
lapse_s = 30
# Where the other nodes reach this node's web listener (host:port), to end a session this
# node runs when someone asks another node. Empty: the address the web listener is bound to
# (set this when it listens on 0.0.0.0). Requests between nodes are signed with a key
# derived from vault.key, which every node shares; with [proxy] web = true they start with
# a PROXY header, so list the nodes' addresses in [proxy] trusted too.
advertise_web = ""

[index]
# Extract commands and output from the recordings into the search index (off the data
# path: live recordings are read back from disk, a slow index never slows a session).
enabled = true
# How often live recordings are read into the index.
interval_ms = 1000

[verify]
# Every recording, the ledger and the audit chain verified on a schedule (what
# `keepwatch verify --all` checks, against this gateway's key), by one live node. Each round
# is audited `recordings_verified`, with one more event per session that has a problem, so a
# failure reaches the event feed, syslog and webhooks. Seconds between rounds; 0 is off.
interval_s = 86400

[retention]
# The retention policies and legal holds (`keepwatch retention`, `keepwatch hold`) applied by
# one live node: what no policy keeps and no hold holds is deleted, each deletion leaving a
# signed tombstone in the audit chain. Seconds between rounds; 0 is off (apply by hand).
interval_s = 86400

[events]
# The event feed for a SIEM (docs/events.md): audit events and session summaries as JSON,
# each with its audit id. Off while nothing is named. Each sink follows the audit trail
# about once a second and keeps its place in events/*.cursor here, so a restart resumes
# (at least once: dedupe by id). A receiver that is down never holds a session. On a shared
# PostgreSQL database every node with [events] sends every event: set it on one node.
# JSON lines appended to a file ("-": stdout).
file = ""
# Syslog (RFC 5424, the JSON as MSG): "udp://HOST:514", "tcp://HOST:601" or
# "tls://HOST:6514" (octet-counted framing over TCP and TLS; UDP is fire-and-forget).
syslog = ""
# For tls://: the CA that signed the receiver's certificate (PEM). Empty: the system's.
syslog_ca = ""
# kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, local0-7.
syslog_facility = "authpriv"
# A sink's first start sends only events from then on; true: the whole trail first.
backfill = false
interval_ms = 1000
# Webhooks: each chosen event POSTed as JSON, signed in X-Keepwatch-Signature
# ("sha256=" and the hex HMAC-SHA256 of the body with the secret), retried with backoff
# up to max_attempts times, then dropped (logged). Empty events: every type.
# [[events.webhook]]
# url = "https://hooks.example/keepwatch"
# secret = "a long random string"
# events = ["recordings_verified", "session_terminated", "host_key_mismatch"]
# max_attempts = 6
# ca = ""
"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileConfig {
    pub ssh_listen: String,
    pub web_listen: String,
    pub pg_listen: String,
    pub recording: RecordingSection,
    pub gateway: GatewaySection,
    pub limits: LimitsSection,
    pub proxy: ProxySection,
    pub store: StoreSection,
    pub trust: TrustSection,
    pub anchor: AnchorSection,
    pub storage: StorageSection,
    pub index: IndexSection,
    pub verify: VerifySection,
    pub retention: RetentionSection,
    pub node: NodeSection,
    pub events: crate::events::EventsSection,
}

/// This node among those sharing the database (`[node]`); see `DEFAULT_CONFIG`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct NodeSection {
    pub id: String,
    pub heartbeat_s: u64,
    pub lapse_s: u64,
    pub advertise_web: String,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection { id: String::new(), heartbeat_s: 5, lapse_s: 30, advertise_web: String::new() }
    }
}

impl NodeSection {
    /// The heartbeat interval and the lapse after which a silent node's sessions are sealed.
    pub(crate) fn timing(&self) -> anyhow::Result<(Duration, Duration)> {
        if self.heartbeat_s == 0 || self.lapse_s < 3 * self.heartbeat_s {
            bail!(
                "[node] lapse_s ({}) must be at least three heartbeats (heartbeat_s = {}, at least 1) in keepwatch.toml",
                self.lapse_s,
                self.heartbeat_s
            );
        }
        Ok((Duration::from_secs(self.heartbeat_s), Duration::from_secs(self.lapse_s)))
    }
}

/// Where recordings are archived (`[storage]`); see `DEFAULT_CONFIG`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StorageSection {
    pub recordings: String,
    pub endpoint: String,
    pub region: String,
    pub allow_http: bool,
    pub segment_interval_ms: u64,
    pub segment_bytes: u64,
    pub outage_spool_bytes: u64,
}

impl Default for StorageSection {
    fn default() -> Self {
        let d = keepwatch_recorder::ShipConfig::default();
        StorageSection {
            recordings: String::new(),
            endpoint: String::new(),
            region: String::new(),
            allow_http: false,
            segment_interval_ms: d.segment_interval.as_millis() as u64,
            segment_bytes: d.segment_bytes,
            outage_spool_bytes: d.outage_spool_bytes,
        }
    }
}

impl StorageSection {
    pub(crate) fn ship(&self) -> keepwatch_recorder::ShipConfig {
        keepwatch_recorder::ShipConfig {
            segment_interval: Duration::from_millis(self.segment_interval_ms.max(100)),
            segment_bytes: self.segment_bytes.clamp(64 << 10, 1 << 30),
            outage_spool_bytes: self.outage_spool_bytes,
            ..Default::default()
        }
    }
}

/// Bounds (`[limits]`); see `DEFAULT_CONFIG` for each one's meaning.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LimitsSection {
    pub(crate) login_grace_s: u64,
    pub(crate) max_unauthenticated: usize,
    pub(crate) max_unauthenticated_per_address: usize,
    pub(crate) idle_timeout_s: u64,
    pub(crate) max_channels_per_connection: usize,
    pub(crate) login_failures_per_name: u32,
    pub(crate) login_failures_per_address: u32,
    pub(crate) login_failure_window_s: u64,
    pub(crate) password_checks: usize,
    pub(crate) password_check_wait_ms: u64,
    pub(crate) web_header_timeout_s: u64,
    pub(crate) web_body_timeout_s: u64,
    pub(crate) web_max_connections: usize,
    pub(crate) web_session_idle_min: u64,
    pub(crate) web_session_lifetime_h: u64,
    pub(crate) web_sessions_per_person: usize,
    pub(crate) replay_max_events: usize,
    pub(crate) replay_max_bytes: usize,
    pub(crate) replay_max_scan_bytes: u64,
    pub(crate) heavy_requests: usize,
    pub(crate) heavy_wait_ms: u64,
    pub(crate) heavy_max_waiting: usize,
    pub(crate) verify_cache_entries: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let g = GatewayConfig::default();
        let l = keepwatch_core::LoginLimits::default();
        let w = keepwatch_web::WebConfig::default();
        LimitsSection {
            login_grace_s: g.login_grace.as_secs(),
            max_unauthenticated: g.max_unauthenticated,
            max_unauthenticated_per_address: g.max_unauthenticated_per_address,
            idle_timeout_s: g.idle_timeout.map_or(0, |d| d.as_secs()),
            max_channels_per_connection: g.max_channels,
            login_failures_per_name: l.per_name,
            login_failures_per_address: l.per_address,
            login_failure_window_s: l.window.as_secs(),
            password_checks: 2,
            password_check_wait_ms: 2000,
            web_header_timeout_s: w.listener.header_timeout.as_secs(),
            web_body_timeout_s: w.listener.body_timeout.as_secs(),
            web_max_connections: w.listener.max_connections,
            web_session_idle_min: w.idle_timeout.as_secs() / 60,
            web_session_lifetime_h: w.session_lifetime.as_secs() / 3600,
            web_sessions_per_person: w.sessions_per_person,
            replay_max_events: w.replay.max_events,
            replay_max_bytes: w.replay.max_bytes,
            replay_max_scan_bytes: w.replay.max_scan_bytes,
            heavy_requests: w.heavy.permits,
            heavy_wait_ms: w.heavy.wait.as_millis() as u64,
            heavy_max_waiting: w.heavy.max_waiting,
            verify_cache_entries: w.verify_cache_entries,
        }
    }
}

/// The PROXY protocol in front of the listeners (`[proxy]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ProxySection {
    pub(crate) ssh: bool,
    pub(crate) web: bool,
    pub(crate) trusted: Vec<String>,
    pub(crate) header_timeout_s: u64,
}

impl Default for ProxySection {
    fn default() -> Self {
        ProxySection {
            ssh: false,
            web: false,
            trusted: vec!["127.0.0.1".into(), "::1".into()],
            header_timeout_s: 5,
        }
    }
}

impl ProxySection {
    /// The balancers to trust, when the protocol is on for `listener`.
    pub(crate) fn config(&self, on: bool) -> anyhow::Result<Option<keepwatch_proxy::ProxyConfig>> {
        if !on {
            return Ok(None);
        }
        let trusted = self
            .trusted
            .iter()
            .map(|t| t.parse().with_context(|| format!("{CONFIG} [proxy] trusted")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Some(keepwatch_proxy::ProxyConfig {
            trusted,
            timeout: Duration::from_secs(self.header_timeout_s.max(1)),
        }))
    }
}

/// Where the metadata lives (`[store]`).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StoreSection {
    /// Empty: the SQLite file in the data directory; else a `postgres://` URL.
    pub(crate) database: String,
}

/// Where the signing key lives.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TrustSection {
    /// Path of the signing key (hex seed); relative paths are inside the data directory.
    pub(crate) signing_key: String,
}

/// Where anchors go.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AnchorSection {
    pub(crate) file: String,
    pub(crate) syslog: bool,
    pub(crate) syslog_socket: String,
    pub(crate) interval_s: u64,
}

impl Default for AnchorSection {
    fn default() -> Self {
        AnchorSection {
            file: String::new(),
            syslog: false,
            syslog_socket: "/dev/log".into(),
            interval_s: 60,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RecordingSection {
    pub flush_interval_ms: u64,
    pub checkpoint_interval_s: u64,
    /// Mask private key blocks in output.
    pub mask_private_keys: bool,
    /// Mask with the built-in rules (`keepwatch_core::DEFAULT_MASK_RULES`).
    pub mask_defaults: bool,
    /// More masking rules, tried after the built-in ones.
    pub mask: Vec<MaskSection>,
    /// Encrypt new recordings at rest.
    pub encrypt: bool,
    /// The external key-encryption command (program and arguments); empty: the vault's KEK.
    pub kek_command: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MaskSection {
    pub name: String,
    pub pattern: String,
}

/// Audit readiness: every recording verified on a schedule while `run` runs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct VerifySection {
    /// Seconds between rounds; 0 turns the schedule off.
    pub interval_s: u64,
}

impl Default for VerifySection {
    fn default() -> Self {
        VerifySection { interval_s: 86_400 }
    }
}

/// Retention applied on a schedule while `run` runs (`keepwatch retention`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RetentionSection {
    /// Seconds between rounds; 0 turns the schedule off.
    pub interval_s: u64,
}

impl Default for RetentionSection {
    fn default() -> Self {
        RetentionSection { interval_s: 86_400 }
    }
}

/// The search index, kept current from the recordings while `run` runs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct IndexSection {
    pub enabled: bool,
    /// How often live recordings are read into the index.
    pub interval_ms: u64,
}

impl Default for IndexSection {
    fn default() -> Self {
        IndexSection { enabled: true, interval_ms: 1000 }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct GatewaySection {
    pub env_allow: Vec<String>,
    pub connect_timeout_s: u64,
    pub shutdown_grace_s: u64,
    /// Words that make an output line ending in `:` a password prompt (lowercase).
    pub secret_prompts: Vec<String>,
    /// Shown to the person at connect and recorded; empty shows nothing.
    pub notice: String,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            ssh_listen: "127.0.0.1:2222".into(),
            web_listen: "127.0.0.1:8080".into(),
            pg_listen: String::new(),
            recording: RecordingSection::default(),
            gateway: GatewaySection::default(),
            limits: LimitsSection::default(),
            proxy: ProxySection::default(),
            store: StoreSection::default(),
            trust: TrustSection::default(),
            anchor: AnchorSection::default(),
            storage: StorageSection::default(),
            index: IndexSection::default(),
            verify: VerifySection::default(),
            retention: RetentionSection::default(),
            node: NodeSection::default(),
            events: crate::events::EventsSection::default(),
        }
    }
}

impl Default for RecordingSection {
    fn default() -> Self {
        RecordingSection {
            flush_interval_ms: 1000,
            checkpoint_interval_s: 10,
            mask_private_keys: true,
            mask_defaults: true,
            mask: Vec::new(),
            encrypt: true,
            kek_command: Vec::new(),
        }
    }
}

impl Default for GatewaySection {
    fn default() -> Self {
        let d = GatewayConfig::default();
        GatewaySection {
            env_allow: d.env_allow,
            connect_timeout_s: d.connect_timeout.as_secs(),
            shutdown_grace_s: d.shutdown_grace.as_secs(),
            secret_prompts: d.secret_prompts.to_vec(),
            notice: keepwatch_session::DEFAULT_NOTICE.to_owned(),
        }
    }
}

impl FileConfig {
    pub(crate) fn recorder(&self) -> anyhow::Result<RecorderConfig> {
        let r = &self.recording;
        let mut rules = if r.mask_defaults { OutputMask::default_rules() } else { Vec::new() };
        rules.extend(
            r.mask.iter().map(|m| MaskRule { name: m.name.clone(), pattern: m.pattern.clone() }),
        );
        let mask = OutputMask::new(r.mask_private_keys, &rules)
            .with_context(|| format!("{CONFIG} [[recording.mask]]"))?;
        Ok(RecorderConfig {
            flush_interval: Duration::from_millis(r.flush_interval_ms.max(10)),
            checkpoint_interval: Duration::from_secs(r.checkpoint_interval_s.max(1)),
            mask,
            ..Default::default()
        })
    }
    pub(crate) fn gateway(&self) -> anyhow::Result<GatewayConfig> {
        Ok(GatewayConfig {
            env_allow: self.gateway.env_allow.clone(),
            connect_timeout: Duration::from_secs(self.gateway.connect_timeout_s.max(1)),
            shutdown_grace: Duration::from_secs(self.gateway.shutdown_grace_s),
            secret_prompts: self.gateway.secret_prompts.iter().map(|w| w.to_lowercase()).collect(),
            login_grace: Duration::from_secs(self.limits.login_grace_s.max(1)),
            max_unauthenticated: self.limits.max_unauthenticated.max(1),
            max_unauthenticated_per_address: self.limits.max_unauthenticated_per_address.max(1),
            idle_timeout: (self.limits.idle_timeout_s > 0)
                .then(|| Duration::from_secs(self.limits.idle_timeout_s)),
            max_channels: self.limits.max_channels_per_connection.max(1),
            proxy: self.proxy.config(self.proxy.ssh)?,
        })
    }

    /// The PostgreSQL front end's settings (the same bounds as SSH's).
    pub(crate) fn postgres(&self) -> keepwatch_pg_gateway::PgGatewayConfig {
        keepwatch_pg_gateway::PgGatewayConfig {
            login_grace: Duration::from_secs(self.limits.login_grace_s.max(1)),
            max_unauthenticated: self.limits.max_unauthenticated.max(1),
            max_unauthenticated_per_address: self.limits.max_unauthenticated_per_address.max(1),
            connect_timeout: Duration::from_secs(self.gateway.connect_timeout_s.max(1)),
            shutdown_grace: Duration::from_secs(self.gateway.shutdown_grace_s),
            limits: keepwatch_pg::Limits::default(),
            idle_timeout: (self.limits.idle_timeout_s > 0)
                .then(|| Duration::from_secs(self.limits.idle_timeout_s)),
        }
    }

    /// The login limiter shared by the SSH gateway and the web console.
    pub(crate) fn login_limits(&self) -> keepwatch_core::LoginLimits {
        keepwatch_core::LoginLimits {
            per_name: self.limits.login_failures_per_name.max(1),
            per_address: self.limits.login_failures_per_address.max(1),
            window: Duration::from_secs(self.limits.login_failure_window_s.max(1)),
            ..Default::default()
        }
    }

    /// The console's bounds.
    pub(crate) fn web(&self) -> anyhow::Result<keepwatch_web::WebConfig> {
        let l = &self.limits;
        Ok(keepwatch_web::WebConfig {
            idle_timeout: Duration::from_secs(l.web_session_idle_min.max(1) * 60),
            session_lifetime: Duration::from_secs(l.web_session_lifetime_h.max(1) * 3600),
            sessions_per_person: l.web_sessions_per_person.max(1),
            listener: keepwatch_web::ListenerConfig {
                header_timeout: Duration::from_secs(l.web_header_timeout_s.max(1)),
                body_timeout: Duration::from_secs(l.web_body_timeout_s.max(1)),
                max_connections: l.web_max_connections.max(1),
                shutdown_grace: Duration::from_secs(self.gateway.shutdown_grace_s),
                proxy: self.proxy.config(self.proxy.web)?,
            },
            replay: keepwatch_web::ReplayLimits {
                max_events: l.replay_max_events.max(1),
                max_bytes: l.replay_max_bytes.max(1),
                max_scan_bytes: l.replay_max_scan_bytes.max(1),
            },
            heavy: keepwatch_web::HeavyLimits {
                permits: l.heavy_requests.max(1),
                wait: Duration::from_millis(l.heavy_wait_ms),
                max_waiting: l.heavy_max_waiting,
            },
            verify_cache_entries: l.verify_cache_entries,
            ..Default::default()
        })
    }

    /// Password checks shared by the SSH gateway and the web console.
    pub(crate) fn password_checker(&self) -> keepwatch_store::PasswordChecker {
        keepwatch_store::PasswordChecker::new(
            self.limits.password_checks.max(1),
            Duration::from_millis(self.limits.password_check_wait_ms),
        )
    }
}

pub(crate) struct DataDir {
    root: PathBuf,
}

fn write_secret_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn random_password() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut raw = [0u8; 20];
    getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("random source failed: {e}"))?;
    Ok(raw.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect())
}

impl DataDir {
    pub(crate) fn new(root: PathBuf) -> Self {
        DataDir { root }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub(crate) fn is_initialised(&self) -> bool {
        self.path(CONFIG).exists()
    }

    fn require_initialised(&self) -> anyhow::Result<()> {
        if !self.is_initialised() {
            bail!(
                "{} is not a keepwatch data directory (run `keepwatch --data-dir {} init` first, or set KEEPWATCH_DATA_DIR)",
                self.root.display(),
                self.root.display()
            );
        }
        Ok(())
    }

    /// Creates the directory with fresh keys and an `admin` person. The signing key goes to
    /// `signing_key` when given (outside the data directory, recorded in keepwatch.toml).
    pub(crate) async fn init(
        &self,
        signing_key: Option<&Path>,
        database: Option<&str>,
    ) -> anyhow::Result<()> {
        if self.is_initialised() {
            bail!("{} is already initialised; refusing to touch it", self.root.display());
        }
        let db = Database::from_setting(database.unwrap_or(""), &self.path(DB))?;
        if matches!(db, Database::Postgres(_)) && !Store::is_empty_database(&db).await? {
            bail!(
                "{} is not empty: init needs a new, empty database (to join an installation, copy its keepwatch.toml and keys instead)",
                db.describe()
            );
        }
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("cannot create {}", self.root.display()))?;
        std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", self.root.display()))?;
        let mut host_seed = [0u8; 32];
        getrandom::fill(&mut host_seed)
            .map_err(|e| anyhow::anyhow!("random source failed: {e}"))?;
        let host_key = russh::keys::PrivateKey::from(
            russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&host_seed),
        );
        let host_key_text = host_key
            .to_openssh(russh::keys::ssh_key::LineEnding::LF)
            .context("cannot encode the SSH host key")?;
        write_secret_file(&self.path(HOST_KEY), host_key_text.as_bytes())?;
        self.pg_tls()?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("random source failed: {e}"))?;
        let signing = SigningKey::from_bytes(&seed);
        let key_path = match signing_key {
            Some(p) => {
                std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display()))?
            }
            None => self.path(SIGNING_KEY),
        };
        write_secret_file(&key_path, hex(&seed).as_bytes())?;
        let public = format!("{}\n", hex(signing.verifying_key().as_bytes()));
        std::fs::write(self.path(SIGNING_PUB), &public).context("cannot write signing.pub")?;
        if signing_key.is_some() {
            let beside = key_path.with_extension("pub");
            std::fs::write(&beside, &public)
                .with_context(|| format!("cannot write {}", beside.display()))?;
        }
        let vault_key = Vault::generate_key()?;
        write_secret_file(&self.path(VAULT_KEY), hex(&vault_key).as_bytes())?;
        let store = Store::open(&db)
            .await
            .with_context(|| format!("cannot create the database ({})", db.describe()))?
            .with_audit_key(Arc::new(signing.clone()));
        let password = random_password()?;
        let hash = hash_password(&password).map_err(|e| anyhow::anyhow!(e))?;
        store.add_person("admin", Role::Admin, Some(&hash), &[]).await?;
        store
            .audit(keepwatch_store::NewAudit {
                actor: crate::output::local_actor(),
                action: keepwatch_core::AuditAction::UserAdded,
                session_id: None,
                client_addr: None,
                detail: "user admin role admin (init)".into(),
            })
            .await?;
        store.close().await;
        // The config goes last: its presence is what marks the directory as initialised.
        let mut config = match signing_key {
            Some(_) => DEFAULT_CONFIG.replace(
                "\nsigning_key = \"\"\n",
                &format!("\nsigning_key = {:?}\n", key_path.display().to_string()),
            ),
            None => DEFAULT_CONFIG.to_owned(),
        };
        if let Some(url) = database.filter(|d| !d.trim().is_empty()) {
            config = config.replace("\ndatabase = \"\"\n", &format!("\ndatabase = {url:?}\n"));
        }
        std::fs::write(self.path(CONFIG), config).context("cannot write keepwatch.toml")?;
        let fp = fingerprint(&signing.verifying_key());
        println!("Initialised {}", self.root.display());
        println!("admin password (shown once): {password}");
        println!();
        println!("Signing key {} (fingerprint {fp})", key_path.display());
        println!(
            "  Write the fingerprint down where the gateway cannot write (a ticket, a vault, paper):"
        );
        println!("  `keepwatch verify --all --fingerprint {fp}` proves history against it, not");
        println!("  against whatever key the data directory holds at the time.");
        if signing_key.is_none() {
            println!(
                "  The key is inside the data directory; `keepwatch init --signing-key FILE` keeps it elsewhere."
            );
        }
        println!();
        println!("Next steps:");
        println!("  keepwatch user add alice --role user --ssh-key ~/.ssh/id_ed25519.pub");
        println!(
            "  keepwatch target add web01 --host 10.0.0.5 --login root --password-stdin --trust-on-first-use"
        );
        println!("  keepwatch grant alice web01");
        println!("  keepwatch run");
        println!("  ssh -p 2222 alice@web01@127.0.0.1");
        println!("  open http://127.0.0.1:8080 and log in as admin (the console)");
        Ok(())
    }

    pub(crate) fn config(&self) -> anyhow::Result<FileConfig> {
        self.require_initialised()?;
        let text =
            std::fs::read_to_string(self.path(CONFIG)).context("cannot read keepwatch.toml")?;
        toml::from_str(&text)
            .with_context(|| format!("{} is not valid", self.path(CONFIG).display()))
    }

    /// Where the metadata lives: `[store] database`, or keepwatch.db in the directory.
    pub(crate) fn database(&self) -> anyhow::Result<Database> {
        let cfg = self.config()?;
        Database::from_setting(&cfg.store.database, &self.path(DB))
            .with_context(|| format!("{}", self.path(CONFIG).display()))
    }

    pub(crate) fn config_path(&self) -> PathBuf {
        self.path(CONFIG)
    }

    /// Whether a gateway (`keepwatch run`) answers on the web address it left here.
    pub(crate) async fn gateway_answers(&self) -> bool {
        let Ok(addr) = std::fs::read_to_string(self.path("web.addr")) else { return false };
        let connect = tokio::net::TcpStream::connect(addr.trim());
        matches!(tokio::time::timeout(Duration::from_secs(2), connect).await, Ok(Ok(_)))
    }

    /// The metadata store; audit events it writes are signed when the signing key is
    /// readable (it is for the gateway and for root's CLI).
    pub(crate) async fn store(&self) -> anyhow::Result<Store> {
        self.require_initialised()?;
        let db = self.database()?;
        let store =
            Store::open(&db).await.with_context(|| format!("cannot open {}", db.describe()))?;
        let store = match self.signing_key() {
            Ok(key) => store.with_audit_key(Arc::new(key)),
            Err(_) => store,
        };
        // Recordings' data keys unwrap with the vault key's KEK (or the command): readable
        // where the vault key is (the gateway, root's CLI); elsewhere an encrypted recording
        // says it needs it.
        Ok(match read(&self.path(VAULT_KEY)) {
            Ok(hex) => {
                let command = self.config().map(|c| c.recording.kek_command).unwrap_or_default();
                let hex = String::from_utf8_lossy(&hex).into_owned();
                store.with_kek(Kek::from_vault_key_hex(&hex, Some(command))?)
            }
            Err(_) => store,
        })
    }

    /// The spool in the data directory and the archive `[storage] recordings` names (the
    /// data directory itself by default).
    pub(crate) fn blobs(&self) -> anyhow::Result<BlobStore> {
        let storage = match self.config() {
            Ok(c) => c.storage,
            Err(_) if !self.is_initialised() => StorageSection::default(),
            Err(e) => return Err(e),
        };
        let archive = if storage.recordings.is_empty() {
            Archive::local(&self.root)
        } else {
            let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
            let s3 = S3Options {
                endpoint: nonempty(&storage.endpoint),
                region: nonempty(&storage.region),
                allow_http: storage.allow_http,
                access_key: None,
            };
            Archive::from_url(&storage.recordings, &s3)
        }
        .with_context(|| format!("{CONFIG} [storage] recordings: cannot open the archive"))?;
        BlobStore::new(&self.root, archive).context("cannot open the recording spool")
    }

    /// The key that signs requests between the nodes sharing a database, derived from the
    /// vault key (which every node has, and which is worth more than this key).
    pub(crate) fn node_key(&self) -> anyhow::Result<[u8; 32]> {
        let key = self.vault_key()?;
        Ok(blake3::derive_key("keepwatch 2026-11 requests between gateway nodes", &key))
    }

    pub(crate) fn vault(&self) -> anyhow::Result<Vault> {
        Ok(Vault::new(&self.vault_key()?)?)
    }

    fn vault_key(&self) -> anyhow::Result<Vec<u8>> {
        unhex(&read(&self.path(VAULT_KEY))?).context("vault.key is not hex")
    }

    /// Where the signing key is: `[trust] signing_key`, or signing.key in the directory.
    pub(crate) fn signing_key_path(&self) -> PathBuf {
        let configured = self.config().map(|c| c.trust.signing_key).unwrap_or_default();
        if configured.is_empty() { self.path(SIGNING_KEY) } else { self.root.join(configured) }
    }

    pub(crate) fn signing_key(&self) -> anyhow::Result<SigningKey> {
        let path = self.signing_key_path();
        let seed: [u8; 32] = unhex(&read(&path)?)
            .and_then(|v| v.try_into().ok())
            .with_context(|| format!("{} is not 32 hex-encoded bytes", path.display()))?;
        Ok(SigningKey::from_bytes(&seed))
    }

    /// The data directory's own public key (signing.pub). Someone who can write the
    /// directory can replace it: `verify` pins a key with `--key` or `--fingerprint`.
    pub(crate) fn verifying_key(&self) -> anyhow::Result<VerifyingKey> {
        read_public_key(&self.path(SIGNING_PUB))
    }

    pub(crate) fn signing_pub_path(&self) -> PathBuf {
        self.path(SIGNING_PUB)
    }

    /// Where anchors go, from `[anchor]`.
    pub(crate) fn anchor_config(&self, cfg: &FileConfig) -> keepwatch_recorder::AnchorConfig {
        let a = &cfg.anchor;
        let (file, inside) = if a.file.is_empty() {
            (self.path(ANCHORS), true)
        } else {
            let p = self.root.join(&a.file);
            let inside = std::path::absolute(&p)
                .ok()
                .zip(std::path::absolute(&self.root).ok())
                .is_some_and(|(p, root)| p.starts_with(root));
            (p, inside)
        };
        keepwatch_recorder::AnchorConfig {
            file: Some(file),
            protect_file: !inside,
            syslog: a.syslog.then(|| PathBuf::from(&a.syslog_socket)),
            interval: Duration::from_secs(a.interval_s.clamp(1, 60)),
        }
    }

    /// The PostgreSQL front end's TLS settings from `pg-tls.crt` and `pg-tls.key`, made
    /// (self-signed for localhost and this host's name) when missing.
    pub(crate) fn pg_tls(&self) -> anyhow::Result<std::sync::Arc<rustls::ServerConfig>> {
        let (cert, key) = (self.path(PG_TLS_CERT), self.path(PG_TLS_KEY));
        if !cert.exists() && !key.exists() {
            let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
            let mut names = vec!["localhost", "127.0.0.1"];
            if !host.trim().is_empty() {
                names.push(host.trim());
            }
            let (cert_pem, key_pem) =
                keepwatch_pg_gateway::tls::self_signed(&names).map_err(|e| anyhow::anyhow!(e))?;
            write_secret_file(&key, key_pem.as_bytes())?;
            std::fs::write(&cert, cert_pem)
                .with_context(|| format!("cannot write {}", cert.display()))?;
        }
        let cert_pem = read(&cert)?;
        let key_pem = read(&key)?;
        keepwatch_pg_gateway::tls::server_config(&cert_pem, &key_pem)
            .map_err(|e| anyhow::anyhow!("{} and {}: {e}", cert.display(), key.display()))
    }

    pub(crate) fn host_key(&self) -> anyhow::Result<russh::keys::PrivateKey> {
        let text =
            String::from_utf8(read(&self.path(HOST_KEY))?).context("host key is not text")?;
        russh::keys::PrivateKey::from_openssh(&text).context("cannot parse the SSH host key")
    }

    pub(crate) fn recorder_context(
        &self,
        store: &Store,
        cfg: &FileConfig,
    ) -> anyhow::Result<RecorderContext> {
        Ok(RecorderContext::new(
            self.node_id(cfg)?,
            store.clone(),
            self.blobs()?,
            Arc::new(self.signing_key()?),
            cfg.recorder()?,
            cfg.storage.ship(),
        )
        .encrypted(cfg.recording.encrypt))
    }
}

impl DataDir {
    /// This node's name: `[node] id`, else the data directory's `node-id` file (made with a
    /// fresh name the first time).
    pub(crate) fn node_id(&self, cfg: &FileConfig) -> anyhow::Result<NodeId> {
        if !cfg.node.id.is_empty() {
            return cfg.node.id.parse().context("[node] id in keepwatch.toml");
        }
        let path = self.root().join("node-id");
        match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().with_context(|| {
                format!("{} (delete it to get a fresh node name)", path.display())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let node = NodeId::generate();
                let mut f = std::fs::File::options()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                f.write_all(format!("{node}\n").as_bytes())
                    .and_then(|()| f.sync_all())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Ok(node)
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
}

/// A public key file: 32 bytes in hex (signing.pub's format).
pub(crate) fn read_public_key(path: &Path) -> anyhow::Result<VerifyingKey> {
    let raw: [u8; 32] = unhex(&read(path)?)
        .and_then(|v| v.try_into().ok())
        .with_context(|| format!("{} is not 32 hex-encoded bytes", path.display()))?;
    VerifyingKey::from_bytes(&raw)
        .with_context(|| format!("{} is not an ed25519 public key", path.display()))
}

pub(crate) use keepwatch_recording::fingerprint;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(text).ok()?.trim();
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    hex(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented defaults in a new keepwatch.toml are the ones the code uses when a
    /// setting is left out (issue 10: every limit configurable with a documented default).
    #[test]
    fn the_default_config_documents_the_defaults() {
        let written: FileConfig = toml::from_str(DEFAULT_CONFIG).unwrap();
        assert_eq!(format!("{:?}", written.limits), format!("{:?}", LimitsSection::default()));
        assert_eq!(format!("{:?}", written.storage), format!("{:?}", StorageSection::default()));
        let web = written.web().unwrap();
        let d = keepwatch_web::WebConfig::default();
        assert_eq!(web.idle_timeout, d.idle_timeout);
        assert_eq!(web.session_lifetime, d.session_lifetime);
        assert_eq!(web.listener.header_timeout, d.listener.header_timeout);
        assert_eq!(web.listener.max_connections, d.listener.max_connections);
        assert_eq!(web.replay.max_bytes, d.replay.max_bytes);
        assert_eq!(web.heavy.permits, d.heavy.permits);
    }
}
