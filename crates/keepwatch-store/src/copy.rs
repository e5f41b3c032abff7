//! Copying a whole store into another (`keepwatch migrate`): every table, row for row, with
//! its ids, so the ledger and the audit chain (whose hashes cover ids) verify in the copy.
//!
//! The tables and their columns are listed once here, in an order where every row's foreign
//! keys are copied before it; each backend reads (`sqlite/copy.rs`) or writes
//! (`postgres/copy.rs`) them. What is derived from the copied rows is not copied but rebuilt
//! by the target: SQLite's FTS5 indexes and `command_blocks`, PostgreSQL's trigram indexes,
//! `command_spans` and `output_spans`.
//! Output blocks' text is unpacked on the way (SQLite keeps it compressed, PostgreSQL as
//! text under its trigram index).

use keepwatch_core::AuditAction;

use crate::StoreError;
use crate::rows::NewAudit;
use crate::store::{Backend, Store};

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Text,
    Bytes,
    Flag,
    /// Text that SQLite keeps zstd-compressed in a BLOB (an output block's `body`) and
    /// PostgreSQL as text (`text`, under its trigram index).
    PackedText,
}

/// One column's value, NULL or not.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    Flag(Option<bool>),
}

/// A table to copy: its columns, and the order its rows are read in.
pub(crate) struct Table {
    pub(crate) name: &'static str,
    pub(crate) columns: &'static [(&'static str, Kind)],
    pub(crate) order_by: &'static str,
    /// A column whose ids the target draws from a sequence, set past the copied ones.
    pub(crate) identity: Option<&'static str>,
}

use Kind::*;

/// Every table, parents before children.
/// Tables `keepwatch migrate` leaves behind: console logins end with the installation they
/// were made on (people log in again on the new one), and rows there do not make a target
/// database count as used.
pub(crate) const NOT_COPIED: &[&str] = &["web_logins"];

pub(crate) const TABLES: &[Table] = &[
    Table {
        name: "people",
        columns: &[
            ("name", Text),
            ("role", Text),
            ("password_hash", Text),
            ("created_at_us", Int),
            ("scram_verifier", Text),
        ],
        order_by: "name",
        identity: None,
    },
    Table {
        name: "person_keys",
        // `id` is SQLite's rowid: the order the keys were added in.
        columns: &[("id", Int), ("person", Text), ("public_key", Text)],
        order_by: "id",
        identity: Some("id"),
    },
    Table {
        name: "person_state",
        columns: &[("name", Text), ("disabled", Flag)],
        order_by: "name",
        identity: None,
    },
    Table {
        name: "targets",
        columns: &[
            ("name", Text),
            ("host", Text),
            ("port", Int),
            ("login", Text),
            ("secret_kind", Text),
            ("secret", Bytes),
            ("host_key", Text),
            ("trust_on_first_use", Flag),
            ("on_recording_failure", Text),
            ("kex_algorithms", Text),
            ("host_key_algorithms", Text),
            ("ciphers", Text),
            ("macs", Text),
            ("created_at_us", Int),
            ("protocol", Text),
            ("database_name", Text),
            ("tls", Text),
            ("tls_ca", Text),
            ("require_reason", Flag),
        ],
        order_by: "name",
        identity: None,
    },
    Table {
        name: "grants",
        columns: &[
            ("person", Text),
            ("target", Text),
            ("upload", Flag),
            ("download", Flag),
            ("max_file_size", Int),
            ("forward_to", Text),
            ("remote_forward", Flag),
        ],
        order_by: "person, target",
        identity: None,
    },
    Table {
        name: "grant_options",
        columns: &[
            ("person", Text),
            ("target", Text),
            ("capture_max_bytes", Int),
            ("agent_forward", Flag),
            ("record_tunnel_bytes", Flag),
            ("read_only", Flag),
            ("deny_statements", Text),
            ("deny_tables", Text),
            ("capture_rows", Int),
        ],
        order_by: "person, target",
        identity: None,
    },
    Table {
        name: "sessions",
        columns: &[
            ("id", Text),
            ("person", Text),
            ("target", Text),
            ("target_host", Text),
            ("target_login", Text),
            ("client_addr", Text),
            ("status", Text),
            ("reason", Text),
            ("started_at_us", Int),
            ("ended_at_us", Int),
            ("chain_head", Bytes),
            ("seal_seq", Int),
            ("seal_signature", Bytes),
            ("node", Text),
            ("protocol", Text),
            ("stated_reason", Text),
        ],
        order_by: "started_at_us, id",
        identity: None,
    },
    Table {
        name: "data_keys",
        columns: &[
            ("session_id", Text),
            ("wrapped", Bytes),
            ("kek", Text),
            ("created_at_us", Int),
            ("wrapped_at_us", Int),
        ],
        order_by: "session_id",
        identity: None,
    },
    Table {
        name: "session_tags",
        columns: &[("session_id", Text), ("tag", Text), ("added_by", Text), ("added_at_us", Int)],
        order_by: "session_id, tag",
        identity: None,
    },
    Table {
        name: "channels",
        columns: &[
            ("session_id", Text),
            ("channel", Int),
            ("kind", Text),
            ("command", Text),
            ("subsystem", Text),
            ("pty_term", Text),
            ("destination", Text),
            ("opened_at_us", Int),
            ("closed_at_us", Int),
            ("exit_status", Int),
        ],
        order_by: "session_id, channel",
        identity: None,
    },
    Table {
        name: "transfers",
        columns: &[
            ("id", Int),
            ("session_id", Text),
            ("channel", Int),
            ("at_us", Int),
            ("protocol", Text),
            ("path", Text),
            ("direction", Text),
            ("bytes", Int),
            ("size", Int),
            ("sha256", Text),
            ("complete", Flag),
            ("ranges", Text),
        ],
        order_by: "id",
        identity: Some("id"),
    },
    Table {
        name: "transfer_captures",
        columns: &[("transfer_id", Int), ("status", Text), ("bytes", Int), ("reason", Text)],
        order_by: "transfer_id",
        identity: None,
    },
    Table {
        name: "ledger",
        columns: &[
            ("seq", Int),
            ("session_id", Text),
            ("chain_head", Bytes),
            ("sealed_at_us", Int),
            ("prev_hash", Bytes),
            ("hash", Bytes),
            ("signature", Bytes),
        ],
        order_by: "seq",
        identity: None,
    },
    Table {
        name: "audit_events",
        columns: &[
            ("id", Int),
            ("at_us", Int),
            ("actor", Text),
            ("action", Text),
            ("session_id", Text),
            ("client_addr", Text),
            ("detail", Text),
        ],
        order_by: "id",
        identity: Some("id"),
    },
    Table {
        name: "audit_chain",
        columns: &[("id", Int), ("hash", Bytes), ("signature", Bytes)],
        order_by: "id",
        identity: None,
    },
    Table {
        name: "commands",
        columns: &[
            ("id", Int),
            ("session_id", Text),
            ("seq", Int),
            ("channel", Int),
            ("kind", Text),
            ("at_us", Int),
            ("start_offset_us", Int),
            ("end_offset_us", Int),
            ("command", Text),
            ("prompt", Text),
            ("output", Text),
            ("confidence", Text),
            ("output_truncated", Flag),
            ("full_screen", Flag),
        ],
        order_by: "id",
        identity: Some("id"),
    },
    Table {
        name: "output_blocks",
        columns: &[
            ("id", Int),
            ("session_id", Text),
            ("channel", Int),
            ("at_us", Int),
            ("start_offset_us", Int),
            ("end_offset_us", Int),
            ("text_len", Int),
            ("text", PackedText),
            ("marks", Bytes),
        ],
        order_by: "id",
        identity: Some("id"),
    },
    Table {
        name: "command_typed",
        columns: &[("id", Int), ("typed", Text)],
        order_by: "id",
        identity: None,
    },
    Table {
        name: "index_state",
        columns: &[
            ("session_id", Text),
            ("complete", Flag),
            ("commands", Int),
            ("error", Text),
            ("updated_at_us", Int),
        ],
        order_by: "session_id",
        identity: None,
    },
    Table {
        name: "index_progress",
        columns: &[("session_id", Text), ("bytes_indexed", Int)],
        order_by: "session_id",
        identity: None,
    },
    Table {
        name: "keyframes",
        columns: &[
            ("session_id", Text),
            ("channel", Int),
            ("at_us", Int),
            ("chunk_offset", Int),
            ("skip_events", Int),
            ("cols", Int),
            ("rows", Int),
            ("screen", Text),
        ],
        order_by: "session_id, channel, at_us",
        identity: None,
    },
    Table {
        name: "api_tokens",
        columns: &[
            ("name", Text),
            ("role", Text),
            ("token_sha256", Text),
            ("created_at_us", Int),
            ("last_used_at_us", Int),
        ],
        order_by: "name",
        identity: None,
    },
    Table {
        name: "retention_policies",
        columns: &[
            ("id", Int),
            ("scope", Text),
            ("value", Text),
            ("keep_s", Int),
            ("created_by", Text),
            ("created_at_us", Int),
        ],
        order_by: "id",
        identity: Some("id"),
    },
    Table {
        name: "legal_holds",
        columns: &[
            ("id", Int),
            ("scope", Text),
            ("value", Text),
            ("reason", Text),
            ("placed_by", Text),
            ("placed_at_us", Int),
            ("released_by", Text),
            ("released_at_us", Int),
            ("release_reason", Text),
        ],
        order_by: "id",
        identity: Some("id"),
    },
    Table {
        name: "token_people",
        columns: &[("token", Text), ("person", Text)],
        order_by: "token",
        identity: None,
    },
    Table {
        name: "anchors",
        columns: &[("id", Int), ("node", Text), ("at_us", Int), ("line", Text)],
        order_by: "id",
        identity: Some("id"),
    },
    // The node that ran the copied sessions: it keeps its name on the new database.
    Table {
        name: "nodes",
        columns: &[
            ("id", Text),
            ("instance", Text),
            ("started_at_us", Int),
            ("web_addr", Text),
            ("heartbeat_at_us", Int),
        ],
        order_by: "id",
        identity: None,
    },
];

/// How far a copy is, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyProgress {
    pub table: &'static str,
    /// Rows copied so far, of all tables.
    pub rows: u64,
    /// Rows to copy, of all tables.
    pub total: u64,
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Rows copied per table, in copy order.
    pub tables: Vec<(&'static str, u64)>,
}

impl Store {
    /// Whether `db` holds no keepwatch data and nothing else: no table but keepwatch's own,
    /// and none of those with a row. What `keepwatch migrate` and `init` require of a new
    /// database.
    ///
    /// # Errors
    /// `Unavailable` when the database cannot be reached.
    pub async fn is_empty_database(db: &crate::Database) -> Result<bool, StoreError> {
        match db {
            crate::Database::Sqlite(path) => {
                if !path.exists() {
                    return Ok(true);
                }
                let store = Store::open_sqlite(path).await?;
                let r = store.row_counts().await.map(|c| c.iter().all(|(_, n)| *n == 0));
                store.close().await;
                r
            }
            crate::Database::Postgres(url) => crate::postgres::is_empty(url).await,
        }
    }

    /// Rows per table, in copy order.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn row_counts(&self) -> Result<Vec<(&'static str, u64)>, StoreError> {
        crate::store::dispatch!(self, b => b.row_counts().await)
    }

    /// Copies every row of this store into `target`, which must be empty (see
    /// [`Store::is_empty_database`]), in one transaction of the target's: all of it or
    /// nothing. Then appends a `store_migrated` audit event by `actor` to the target's
    /// chain. Only SQLite to PostgreSQL is supported (`keepwatch migrate`).
    ///
    /// # Errors
    /// `Invalid` for another pair of backends; a row that does not read (`Corrupt`) or
    /// write (`Conflict`, e.g. a dangling foreign key) names its table.
    pub async fn copy_into(
        &self,
        target: &Store,
        actor: &str,
        progress: &mut (dyn FnMut(CopyProgress) + Send),
    ) -> Result<CopyReport, StoreError> {
        let (Backend::Sqlite(from), Backend::Postgres(to)) = (&self.backend, &target.backend)
        else {
            return Err(StoreError::Invalid {
                what: "copy: only an SQLite store can be copied, and only into PostgreSQL".into(),
            });
        };
        let counts = self.row_counts().await?;
        let total = counts.iter().map(|(_, n)| n).sum();
        let report = to.copy_from(from, total, progress).await?;
        let detail = report
            .tables
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| format!("{t} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        target
            .audit(NewAudit {
                actor: actor.to_owned(),
                action: AuditAction::StoreMigrated,
                session_id: None,
                client_addr: None,
                detail: format!("copied from SQLite: {detail}"),
            })
            .await?;
        Ok(report)
    }
}
