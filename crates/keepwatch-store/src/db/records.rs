//! What happened: sessions, channels, transfers, the ledger of sealed sessions and audit events.

use keepwatch_core::{SessionId, SessionStatus};
use keepwatch_recording::{audit_chain, ledger};
use sqlx::Row;

use super::*;

/// A transfer with what became of its content (a macro so queries stay `concat!`ed literals).
macro_rules! transfer_select {
    () => {
        "SELECT t.*, c.status AS capture_status, c.bytes AS capture_bytes, \
         c.reason AS capture_reason FROM transfers t LEFT JOIN transfer_captures c ON c.transfer_id = t.id"
    };
}

impl Store {
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

    /// Ends a session that could not be sealed (crash recovery found its recording forged or
    /// unreadable): the row says `status` and why, with no seal, so `verify` keeps reporting
    /// the recording.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn end_unsealed_session(
        &self,
        id: SessionId,
        status: SessionStatus,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET status = ?, reason = ?, ended_at_us = ? WHERE id = ? AND chain_head IS NULL",
        )
        .bind(status.as_str())
        .bind(reason)
        .bind(now_us())
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

    /// Stores a transfer (its `id` and `capture` are ignored) and returns its new id.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn add_transfer(&self, t: &TransferRow) -> Result<i64, StoreError> {
        let ranges: Vec<String> = t.ranges.iter().map(|(a, b)| format!("{a}-{b}")).collect();
        let r = sqlx::query(
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
        Ok(r.last_insert_rowid())
    }

    /// Records whether a transfer's content was kept.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn record_capture(
        &self,
        transfer_id: i64,
        capture: &ContentCapture,
    ) -> Result<(), StoreError> {
        let (status, bytes, reason) = match capture {
            ContentCapture::Captured { bytes } => ("captured", Some(*bytes as i64), None),
            ContentCapture::Skipped { reason } => ("skipped", None, Some(reason.as_str())),
        };
        sqlx::query(
            "INSERT OR REPLACE INTO transfer_captures (transfer_id, status, bytes, reason) VALUES (?, ?, ?, ?)",
        )
        .bind(transfer_id)
        .bind(status)
        .bind(bytes)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One transfer by id.
    ///
    /// # Errors
    /// Database failures, or a row that does not parse.
    pub async fn transfer(&self, id: i64) -> Result<Option<TransferRow>, StoreError> {
        let row = sqlx::query(concat!(transfer_select!(), " WHERE t.id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(transfer_row).transpose()
    }

    /// Transfers matching `f`, newest first.
    ///
    /// # Errors
    /// Database failures, or a row that does not parse.
    pub async fn transfers(&self, f: &TransferFilter) -> Result<Vec<TransferRow>, StoreError> {
        let session = f.session.map(|s| s.to_string());
        let rows = sqlx::query(concat!(
            transfer_select!(),
            " JOIN sessions s ON s.id = t.session_id \
             WHERE (? IS NULL OR s.person = ?) AND (? IS NULL OR s.target = ?) AND (? IS NULL OR t.session_id = ?) \
             AND (? IS NULL OR t.sha256 = lower(?)) ORDER BY t.at_us DESC, t.id DESC"
        ))
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
        rows.iter().map(transfer_row).collect()
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

    /// How many ledger entries there are and the hash of the last (`None` while empty),
    /// for anchors.
    ///
    /// # Errors
    /// Database failures, or a row that does not parse.
    pub async fn ledger_head(&self) -> Result<Option<(u64, [u8; 32])>, StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.get::<i64, _>(0) as u64 + 1, hash32("ledger.hash", r.get(1))?)))
            .transpose()
    }

    /// The id of the newest audit event in the chain and its hash (`None` while empty), for
    /// anchors.
    ///
    /// # Errors
    /// Database failures, or a row that does not parse.
    pub async fn audit_head(&self) -> Result<Option<(i64, [u8; 32])>, StoreError> {
        let row = sqlx::query("SELECT id, hash FROM audit_chain ORDER BY id DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.get::<i64, _>(0), hash32("audit_chain.hash", r.get(1))?))).transpose()
    }

    /// The chain hash stored for audit event `id`, if the chain has it.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn audit_link(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT hash FROM audit_chain WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    // ---- audit ----

    /// Writes an audit event. Also logged, so an audit write failure is never silent.
    /// The actor, client address and detail are cleaned first ([`clean_audit`]): what is
    /// hashed into the chain, stored, logged and later printed holds no control character
    /// and has a bounded length.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn audit(&self, a: NewAudit) -> Result<(), StoreError> {
        self.audited(a, |_| Box::pin(async { Ok(()) })).await
    }

    /// Makes `change` and writes the audit event `a` in one transaction: both happen or
    /// neither does, so no change is ever left unaudited by a failed audit write. `change`
    /// runs first; its error rolls everything back.
    pub(crate) async fn audited<T, F>(&self, a: NewAudit, change: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(
                &'c mut sqlx::SqliteConnection,
            ) -> futures::future::BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let done = self
            .audited_if(a, move |conn| Box::pin(async move { change(conn).await.map(Some) }))
            .await?;
        done.ok_or_else(|| StoreError::Invalid { what: "audited change made nothing".into() })
    }

    /// Like [`Store::audited`], for a change that may find nothing to do: `Ok(None)` from
    /// `change` rolls back and writes no audit event.
    pub(crate) async fn audited_if<T, F>(
        &self,
        a: NewAudit,
        change: F,
    ) -> Result<Option<T>, StoreError>
    where
        F: for<'c> FnOnce(
            &'c mut sqlx::SqliteConnection,
        ) -> futures::future::BoxFuture<'c, Result<Option<T>, StoreError>>,
    {
        let a = clean_audit(a);
        // One writer at a time across processes (the CLI audits too): the chain must not fork.
        let mut conn = self.pool.acquire().await?;
        sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        let r = async {
            let Some(out) = change(&mut conn).await? else { return Ok(None) };
            self.append_audit(&mut conn, &a).await?;
            Ok::<_, StoreError>(Some(out))
        }
        .await;
        let end = if matches!(r, Ok(Some(_))) { "COMMIT" } else { "ROLLBACK" };
        let r = match sqlx::raw_sql(end).execute(&mut *conn).await {
            Ok(_) => r,
            Err(e) => Err(e.into()),
        };
        // Logged with the cleaned fields (no control character reaches the log either), and
        // a failed write is logged as loudly as a written one.
        let session_id = a.session_id.map(|s| s.to_string());
        match &r {
            Ok(Some(_)) => {
                tracing::info!(actor = %a.actor, action = a.action.as_str(), ?session_id, client = ?a.client_addr, detail = %a.detail, "audit")
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(actor = %a.actor, action = a.action.as_str(), ?session_id, client = ?a.client_addr, detail = %a.detail, error = %e, "audit event not written")
            }
        }
        r
    }

    /// Appends a cleaned event and its chain link, inside the caller's transaction.
    async fn append_audit(
        &self,
        conn: &mut sqlx::SqliteConnection,
        a: &NewAudit,
    ) -> Result<(), sqlx::Error> {
        let session = a.session_id.map(|s| s.to_string());
        let at_us = now_us();
        let id: i64 = sqlx::query(
            "INSERT INTO audit_events (at_us, actor, action, session_id, client_addr, detail) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(at_us)
        .bind(&a.actor)
        .bind(a.action.as_str())
        .bind(&session)
        .bind(&a.client_addr)
        .bind(&a.detail)
        .fetch_one(&mut *conn)
        .await?
        .get(0);
        let prev: Option<Vec<u8>> =
            sqlx::query("SELECT hash FROM audit_chain ORDER BY id DESC LIMIT 1")
                .fetch_optional(&mut *conn)
                .await?
                .map(|r| r.get(0));
        let prev =
            prev.and_then(|p| <[u8; 32]>::try_from(p).ok()).unwrap_or_else(audit_chain::genesis);
        let entry = audit_chain::AuditEntry {
            id,
            at_us,
            actor: &a.actor,
            action: a.action.as_str(),
            session_id: session.as_deref(),
            client_addr: a.client_addr.as_deref(),
            detail: &a.detail,
        };
        let hash = entry.hash(&prev);
        let sig = self.audit_key.as_ref().map(|k| audit_chain::sign(k, &hash).to_vec());
        sqlx::query("INSERT INTO audit_chain (id, hash, signature) VALUES (?, ?, ?)")
            .bind(id)
            .bind(hash.as_slice())
            .bind(sig)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Audit events matching `f`, newest first.
    ///
    /// # Errors
    /// Database failures only.
    /// Fails on a row whose action or session id does not parse (`verify` says why).
    pub async fn audit_events(&self, f: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM audit_events WHERE (?1 IS NULL OR action = ?1) AND (?2 IS NULL OR actor = ?2) \
             AND (?3 IS NULL OR session_id = ?3) ORDER BY id DESC LIMIT ?4",
        )
        .bind(f.action.map(|a| a.as_str()))
        .bind(&f.actor)
        .bind(f.session.map(|s| s.to_string()))
        .bind(f.limit.map_or(-1, i64::from))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_row).collect()
    }

    /// Every audit event, oldest first, with its chain hash and signature (absent when the
    /// event has no chain row), for `verify`.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn audit_chain(&self) -> Result<Vec<AuditLink>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.*, c.hash AS chain_hash, c.signature AS chain_signature FROM audit_events e \
             LEFT JOIN audit_chain c ON c.id = e.id ORDER BY e.id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| AuditLink {
                event: stored_audit(r),
                hash: r.get("chain_hash"),
                signature: r.get("chain_signature"),
            })
            .collect())
    }

    /// Chain rows whose event is gone (an audit event deleted from under its chain row).
    ///
    /// # Errors
    /// Database failures only.
    pub async fn orphaned_audit_links(&self) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.id FROM audit_chain c LEFT JOIN audit_events e ON e.id = c.id \
             WHERE e.id IS NULL ORDER BY c.id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// `a` as it may be stored: no control characters, bounded lengths.
pub(crate) fn clean_audit(a: NewAudit) -> NewAudit {
    use keepwatch_core::{MAX_ACTOR_BYTES, MAX_DETAIL_BYTES, clean};
    NewAudit {
        actor: clean(&a.actor, MAX_ACTOR_BYTES),
        action: a.action,
        session_id: a.session_id,
        client_addr: a.client_addr.map(|c| clean(&c, MAX_ACTOR_BYTES)),
        detail: clean(&a.detail, MAX_DETAIL_BYTES),
    }
}

fn stored_audit(r: &sqlx::sqlite::SqliteRow) -> StoredAudit {
    StoredAudit {
        id: r.get("id"),
        at_us: r.get("at_us"),
        actor: r.get("actor"),
        action: r.get("action"),
        session_id: r.get("session_id"),
        client_addr: r.get("client_addr"),
        detail: r.get("detail"),
    }
}

fn audit_row(r: &sqlx::sqlite::SqliteRow) -> Result<AuditRow, StoreError> {
    let raw = stored_audit(r);
    let what = |field: &str| format!("audit_events {} {field}", raw.id);
    Ok(AuditRow {
        id: raw.id,
        at_us: raw.at_us,
        action: raw.action.parse().map_err(|e| corrupt(&what("action"), e))?,
        session_id: raw
            .session_id
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| corrupt(&what("session_id"), e))?,
        actor: raw.actor,
        client_addr: raw.client_addr,
        detail: raw.detail,
    })
}

fn transfer_row(r: &sqlx::sqlite::SqliteRow) -> Result<TransferRow, StoreError> {
    let sid: String = r.get("session_id");
    let direction: String = r.get("direction");
    let ranges: String = r.get("ranges");
    let capture = match r.get::<Option<String>, _>("capture_status").as_deref() {
        None => None,
        Some("captured") => Some(ContentCapture::Captured {
            bytes: r.get::<Option<i64>, _>("capture_bytes").unwrap_or(0) as u64,
        }),
        Some("skipped") => Some(ContentCapture::Skipped {
            reason: r.get::<Option<String>, _>("capture_reason").unwrap_or_default(),
        }),
        Some(other) => return Err(corrupt("transfer_captures.status", other)),
    };
    Ok(TransferRow {
        id: r.get("id"),
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
        capture,
    })
}
