//! The metadata store: people, targets, grants, sessions, channels, the ledger and audit events.
//!
//! SQL lives only in this file and [`db/schema.sql`]; callers see domain-named methods, so a
//! PostgreSQL backend can be added here without touching them.

use std::str::FromStr;
use std::time::Duration;

use keepwatch_core::{GrantPolicy, RecordingFailure, Role, SessionId, SessionStatus};
use keepwatch_recording::ledger;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::StoreError;
use crate::rows::*;

const SCHEMA: &str = include_str!("db/schema.sql");

/// Which sessions to list.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub active_only: bool,
    pub person: Option<String>,
    pub target: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    /// Serialises ledger appends within this process; the ledger is one chain.
    ledger_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn corrupt(what: &str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt { what: what.to_owned(), detail: detail.to_string() }
}

fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

fn hash32(what: &str, v: Vec<u8>) -> Result<[u8; 32], StoreError> {
    v.try_into().map_err(|_| corrupt(what, "hash is not 32 bytes"))
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path`.
    ///
    /// # Errors
    /// Fails if the file cannot be opened or the schema cannot be applied.
    pub async fn open_sqlite(path: &std::path::Path) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(Store { pool, ledger_lock: Default::default() })
    }

    // ---- people ----

    /// # Errors
    /// `Exists` if the name is taken.
    pub async fn add_person(
        &self,
        name: &str,
        role: Role,
        password_hash: Option<&str>,
        ssh_keys: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO people (name, role, password_hash, created_at_us) VALUES (?, ?, ?, ?)",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(password_hash)
        .bind(now_us())
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if unique_violation(&e) {
                StoreError::Exists { kind: "person", name: name.to_owned() }
            } else {
                e.into()
            }
        })?;
        for key in ssh_keys {
            sqlx::query("INSERT INTO person_keys (person, public_key) VALUES (?, ?)")
                .bind(name)
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// # Errors
    /// Database failures only; an unknown name is `Ok(None)`.
    pub async fn person(&self, name: &str) -> Result<Option<PersonRow>, StoreError> {
        let row = sqlx::query(
            "SELECT name, role, password_hash, created_at_us FROM people WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let keys: Vec<String> =
            sqlx::query("SELECT public_key FROM person_keys WHERE person = ? ORDER BY rowid")
                .bind(name)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
        Ok(Some(person_row(&row, keys)?))
    }

    /// # Errors
    /// Database failures only.
    pub async fn people(&self) -> Result<Vec<PersonRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, role, password_hash, created_at_us FROM people ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let name: String = row.get("name");
            let keys =
                sqlx::query("SELECT public_key FROM person_keys WHERE person = ? ORDER BY rowid")
                    .bind(&name)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
            out.push(person_row(row, keys)?);
        }
        Ok(out)
    }

    // ---- targets ----

    /// # Errors
    /// `Exists` if the name is taken.
    pub async fn add_target(&self, t: &NewTarget) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO targets (name, host, port, login, secret_kind, secret, host_key, \
             trust_on_first_use, on_recording_failure, kex_algorithms, host_key_algorithms, ciphers, macs, \
             created_at_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&t.name)
        .bind(&t.host)
        .bind(i64::from(t.port))
        .bind(&t.login)
        .bind(t.secret.kind())
        .bind(t.secret.ciphertext())
        .bind(&t.host_key)
        .bind(t.trust_on_first_use)
        .bind(t.on_recording_failure.as_str())
        .bind(join_list(&t.algorithms.kex))
        .bind(join_list(&t.algorithms.host_key))
        .bind(join_list(&t.algorithms.ciphers))
        .bind(join_list(&t.algorithms.macs))
        .bind(now_us())
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if unique_violation(&e) {
                StoreError::Exists { kind: "target", name: t.name.clone() }
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    /// # Errors
    /// Database failures only; an unknown name is `Ok(None)`.
    pub async fn target(&self, name: &str) -> Result<Option<TargetRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM targets WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(target_row).transpose()
    }

    /// # Errors
    /// Database failures only.
    pub async fn targets(&self) -> Result<Vec<TargetRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM targets ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(target_row).collect()
    }

    /// Pins the host key of a trust-on-first-use target, only if none is pinned yet.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn pin_host_key(&self, target: &str, key: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE targets SET host_key = ? WHERE name = ? AND host_key IS NULL")
            .bind(key)
            .bind(target)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    // ---- grants ----

    /// Grants `target` to `person` with `policy`, replacing the policy of an existing grant.
    ///
    /// # Errors
    /// `NotFound` when the person or target does not exist.
    pub async fn grant(
        &self,
        person: &str,
        target: &str,
        policy: &GrantPolicy,
    ) -> Result<(), StoreError> {
        self.require_person_and_target(person, target).await?;
        sqlx::query(
            "INSERT INTO grants (person, target, upload, download, max_file_size, forward_to, remote_forward) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (person, target) DO UPDATE SET upload = excluded.upload, \
             download = excluded.download, max_file_size = excluded.max_file_size, \
             forward_to = excluded.forward_to, remote_forward = excluded.remote_forward",
        )
        .bind(person)
        .bind(target)
        .bind(policy.upload)
        .bind(policy.download)
        .bind(policy.max_file_size.map(|v| v as i64))
        .bind(policy.forward_to.join("\n"))
        .bind(policy.remote_forward)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The policy of `person`'s grant on `target`, or `None` without a grant.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn grant_policy(
        &self,
        person: &str,
        target: &str,
    ) -> Result<Option<GrantPolicy>, StoreError> {
        let row = sqlx::query("SELECT * FROM grants WHERE person = ? AND target = ?")
            .bind(person)
            .bind(target)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| GrantPolicy {
            upload: r.get("upload"),
            download: r.get("download"),
            max_file_size: r.get::<Option<i64>, _>("max_file_size").map(|v| v as u64),
            forward_to: r
                .get::<String, _>("forward_to")
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
            remote_forward: r.get("remote_forward"),
        }))
    }

    /// Returns whether a grant was removed.
    ///
    /// # Errors
    /// `NotFound` when the person or target does not exist.
    pub async fn revoke(&self, person: &str, target: &str) -> Result<bool, StoreError> {
        self.require_person_and_target(person, target).await?;
        let r = sqlx::query("DELETE FROM grants WHERE person = ? AND target = ?")
            .bind(person)
            .bind(target)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn require_person_and_target(
        &self,
        person: &str,
        target: &str,
    ) -> Result<(), StoreError> {
        if self.person(person).await?.is_none() {
            return Err(StoreError::NotFound { kind: "person", name: person.to_owned() });
        }
        if self.target(target).await?.is_none() {
            return Err(StoreError::NotFound { kind: "target", name: target.to_owned() });
        }
        Ok(())
    }

    /// # Errors
    /// Database failures only.
    pub async fn is_granted(&self, person: &str, target: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM grants WHERE person = ? AND target = ?")
            .bind(person)
            .bind(target)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// The names of the targets granted to `person`, sorted.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn granted_targets(&self, person: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT target FROM grants WHERE person = ? ORDER BY target")
            .bind(person)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    // ---- sessions ----

    /// # Errors
    /// Database failures only.
    pub async fn insert_session(&self, s: &SessionRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, person, target, target_host, target_login, client_addr, status, \
             reason, started_at_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(s.id.to_string())
        .bind(&s.person)
        .bind(&s.target)
        .bind(&s.target_host)
        .bind(&s.target_login)
        .bind(&s.client_addr)
        .bind(s.status.as_str())
        .bind(&s.reason)
        .bind(s.started_at_us)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes a session row whose recording could not be started (so no session exists
    /// without a recording; the refusal is kept as an audit event instead).
    ///
    /// # Errors
    /// Database failures only.
    pub async fn delete_unrecorded_session(&self, id: SessionId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id = ? AND chain_head IS NULL")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records the seal of a session and appends it to the ledger, in one transaction.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn finish_session(
        &self,
        id: SessionId,
        status: SessionStatus,
        reason: Option<&str>,
        seal: &keepwatch_recording::SealInfo,
        ended_at_us: i64,
        ledger_key: &ed25519_dalek::SigningKey,
    ) -> Result<(), StoreError> {
        let _guard = self.ledger_lock.lock().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE sessions SET status = ?, reason = ?, ended_at_us = ?, chain_head = ?, seal_seq = ?, \
             seal_signature = ? WHERE id = ?",
        )
        .bind(status.as_str())
        .bind(reason)
        .bind(ended_at_us)
        .bind(seal.chain_head.as_slice())
        .bind(seal.seq as i64)
        .bind(seal.signature.as_slice())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        let last = sqlx::query("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        let (seq, prev) = match last {
            Some(r) => (r.get::<i64, _>(0) as u64 + 1, hash32("ledger.hash", r.get(1))?),
            None => (0, ledger::GENESIS),
        };
        let hash = ledger::entry_hash(&prev, seq, &id, &seal.chain_head, seal.sealed_at_us);
        let sig = ledger::sign(ledger_key, &hash);
        sqlx::query(
            "INSERT INTO ledger (seq, session_id, chain_head, sealed_at_us, prev_hash, hash, signature) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(seq as i64)
        .bind(id.to_string())
        .bind(seal.chain_head.as_slice())
        .bind(seal.sealed_at_us)
        .bind(prev.as_slice())
        .bind(hash.as_slice())
        .bind(sig.as_slice())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// # Errors
    /// Database failures, or a row that does not parse.
    pub async fn session(&self, id: SessionId) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM sessions WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(session_row).transpose()
    }

    /// Sessions matching `f`, newest first.
    ///
    /// # Errors
    /// Database failures, or a row that does not parse.
    pub async fn sessions(&self, f: &SessionFilter) -> Result<Vec<SessionRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM sessions WHERE (? = 0 OR status = 'active') AND (? IS NULL OR person = ?) \
             AND (? IS NULL OR target = ?) ORDER BY started_at_us DESC, id DESC",
        )
        .bind(f.active_only)
        .bind(&f.person)
        .bind(&f.person)
        .bind(&f.target)
        .bind(&f.target)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_row).collect()
    }

    // ---- channels ----

    /// # Errors
    /// Database failures only.
    pub async fn add_channel(&self, session: SessionId, c: &ChannelRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR REPLACE INTO channels (session_id, channel, kind, command, subsystem, pty_term, \
             destination, opened_at_us, closed_at_us, exit_status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(session.to_string())
        .bind(i64::from(c.channel))
        .bind(&c.kind)
        .bind(&c.command)
        .bind(&c.subsystem)
        .bind(&c.pty_term)
        .bind(&c.destination)
        .bind(c.opened_at_us)
        .bind(c.closed_at_us)
        .bind(c.exit_status.map(i64::from))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// # Errors
    /// Database failures only.
    pub async fn close_channel(
        &self,
        session: SessionId,
        channel: u32,
        exit_status: Option<u32>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE channels SET closed_at_us = ?, exit_status = ? WHERE session_id = ? AND channel = ?",
        )
        .bind(now_us())
        .bind(exit_status.map(i64::from))
        .bind(session.to_string())
        .bind(i64::from(channel))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// # Errors
    /// Database failures only.
    pub async fn channels(&self, session: SessionId) -> Result<Vec<ChannelRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM channels WHERE session_id = ? ORDER BY opened_at_us, channel",
        )
        .bind(session.to_string())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| ChannelRow {
                channel: r.get::<i64, _>("channel") as u32,
                kind: r.get("kind"),
                command: r.get("command"),
                subsystem: r.get("subsystem"),
                pty_term: r.get("pty_term"),
                destination: r.get("destination"),
                opened_at_us: r.get("opened_at_us"),
                closed_at_us: r.get("closed_at_us"),
                exit_status: r.get::<Option<i64>, _>("exit_status").map(|v| v as u32),
            })
            .collect())
    }

    // ---- transfers ----

    /// # Errors
    /// Database failures only.
    pub async fn add_transfer(&self, t: &TransferRow) -> Result<(), StoreError> {
        let ranges: Vec<String> = t.ranges.iter().map(|(a, b)| format!("{a}-{b}")).collect();
        sqlx::query(
            "INSERT INTO transfers (session_id, channel, at_us, protocol, path, direction, bytes, size, sha256, \
             complete, ranges) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(t.session_id.to_string())
        .bind(i64::from(t.channel))
        .bind(t.at_us)
        .bind(&t.protocol)
        .bind(&t.path)
        .bind(if t.upload { "upload" } else { "download" })
        .bind(t.bytes as i64)
        .bind(t.size.map(|s| s as i64))
        .bind(&t.sha256)
        .bind(t.complete)
        .bind(ranges.join(","))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Transfers matching `f`, newest first.
    ///
    /// # Errors
    /// Database failures, or a row that does not parse.
    pub async fn transfers(&self, f: &TransferFilter) -> Result<Vec<TransferRow>, StoreError> {
        let session = f.session.map(|s| s.to_string());
        let rows = sqlx::query(
            "SELECT t.* FROM transfers t JOIN sessions s ON s.id = t.session_id \
             WHERE (? IS NULL OR s.person = ?) AND (? IS NULL OR s.target = ?) AND (? IS NULL OR t.session_id = ?) \
             AND (? IS NULL OR t.sha256 = lower(?)) ORDER BY t.at_us DESC, t.id DESC",
        )
        .bind(&f.person)
        .bind(&f.person)
        .bind(&f.target)
        .bind(&f.target)
        .bind(&session)
        .bind(&session)
        .bind(&f.sha256)
        .bind(&f.sha256)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let sid: String = r.get("session_id");
                let direction: String = r.get("direction");
                let ranges: String = r.get("ranges");
                Ok(TransferRow {
                    session_id: sid.parse().map_err(|e| corrupt("transfers.session_id", e))?,
                    channel: r.get::<i64, _>("channel") as u32,
                    at_us: r.get("at_us"),
                    protocol: r.get("protocol"),
                    path: r.get("path"),
                    upload: direction == "upload",
                    bytes: r.get::<i64, _>("bytes") as u64,
                    size: r.get::<Option<i64>, _>("size").map(|v| v as u64),
                    sha256: r.get("sha256"),
                    complete: r.get("complete"),
                    ranges: ranges
                        .split(',')
                        .filter_map(|p| {
                            let (a, b) = p.split_once('-')?;
                            Some((a.parse().ok()?, b.parse().ok()?))
                        })
                        .collect(),
                })
            })
            .collect()
    }

    // ---- ledger ----

    /// # Errors
    /// Database failures, or a row that does not parse.
    pub async fn ledger(&self) -> Result<Vec<LedgerRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM ledger ORDER BY seq").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let sid: String = r.get("session_id");
                Ok(LedgerRow {
                    seq: r.get::<i64, _>("seq") as u64,
                    session_id: sid.parse().map_err(|e| corrupt("ledger.session_id", e))?,
                    chain_head: hash32("ledger.chain_head", r.get("chain_head"))?,
                    sealed_at_us: r.get("sealed_at_us"),
                    prev_hash: hash32("ledger.prev_hash", r.get("prev_hash"))?,
                    hash: hash32("ledger.hash", r.get("hash"))?,
                    signature: r.get("signature"),
                })
            })
            .collect()
    }

    // ---- audit ----

    /// Writes an audit event. Also logged, so an audit write failure is never silent.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn audit(&self, a: NewAudit) -> Result<(), StoreError> {
        tracing::info!(actor = %a.actor, action = a.action.as_str(), session_id = ?a.session_id.map(|s| s.to_string()), client = ?a.client_addr, detail = %a.detail, "audit");
        sqlx::query(
            "INSERT INTO audit_events (at_us, actor, action, session_id, client_addr, detail) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(now_us())
        .bind(&a.actor)
        .bind(a.action.as_str())
        .bind(a.session_id.map(|s| s.to_string()))
        .bind(&a.client_addr)
        .bind(&a.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Audit events, newest first, optionally for one action.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn audit_events(&self, action: Option<&str>) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM audit_events WHERE (? IS NULL OR action = ?) ORDER BY id DESC",
        )
        .bind(action)
        .bind(action)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| AuditRow {
                id: r.get("id"),
                at_us: r.get("at_us"),
                actor: r.get("actor"),
                action: r.get("action"),
                session_id: r.get("session_id"),
                client_addr: r.get("client_addr"),
                detail: r.get("detail"),
            })
            .collect())
    }

    /// Closes the pool, flushing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn join_list(v: &[String]) -> Option<String> {
    (!v.is_empty()).then(|| v.join(","))
}

fn split_list(v: Option<String>) -> Vec<String> {
    v.map(|s| s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn person_row(
    row: &sqlx::sqlite::SqliteRow,
    ssh_keys: Vec<String>,
) -> Result<PersonRow, StoreError> {
    let role: String = row.get("role");
    Ok(PersonRow {
        name: row.get("name"),
        role: role.parse().map_err(|e| corrupt("people.role", e))?,
        password_hash: row.get("password_hash"),
        ssh_keys,
        created_at_us: row.get("created_at_us"),
    })
}

fn target_row(row: &sqlx::sqlite::SqliteRow) -> Result<TargetRow, StoreError> {
    let kind: String = row.get("secret_kind");
    let secret: Vec<u8> = row.get("secret");
    let secret = match kind.as_str() {
        "password" => TargetSecret::Password(secret),
        "key" => TargetSecret::PrivateKey(secret),
        other => return Err(corrupt("targets.secret_kind", other)),
    };
    let orf: String = row.get("on_recording_failure");
    Ok(TargetRow {
        name: row.get("name"),
        host: row.get("host"),
        port: u16::try_from(row.get::<i64, _>("port")).map_err(|e| corrupt("targets.port", e))?,
        login: row.get("login"),
        secret,
        host_key: row.get("host_key"),
        trust_on_first_use: row.get("trust_on_first_use"),
        on_recording_failure: RecordingFailure::from_str(&orf)
            .map_err(|e| corrupt("targets.on_recording_failure", e))?,
        algorithms: Algorithms {
            kex: split_list(row.get("kex_algorithms")),
            host_key: split_list(row.get("host_key_algorithms")),
            ciphers: split_list(row.get("ciphers")),
            macs: split_list(row.get("macs")),
        },
        created_at_us: row.get("created_at_us"),
    })
}

fn session_row(row: &sqlx::sqlite::SqliteRow) -> Result<SessionRow, StoreError> {
    let id: String = row.get("id");
    let status: String = row.get("status");
    Ok(SessionRow {
        id: id.parse().map_err(|e| corrupt("sessions.id", e))?,
        person: row.get("person"),
        target: row.get("target"),
        target_host: row.get("target_host"),
        target_login: row.get("target_login"),
        client_addr: row.get("client_addr"),
        status: status.parse().map_err(|e| corrupt("sessions.status", e))?,
        reason: row.get("reason"),
        started_at_us: row.get("started_at_us"),
        ended_at_us: row.get("ended_at_us"),
        chain_head: row
            .get::<Option<Vec<u8>>, _>("chain_head")
            .map(|v| hash32("sessions.chain_head", v))
            .transpose()?,
        seal_seq: row.get::<Option<i64>, _>("seal_seq").map(|v| v as u64),
        seal_signature: row.get("seal_signature"),
    })
}
