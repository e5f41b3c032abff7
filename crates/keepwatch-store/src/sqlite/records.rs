//! What happened, in SQLite: sessions, channels, transfers and the ledger of sealed sessions.

use ed25519_dalek::SigningKey;
use keepwatch_core::{NodeId, SessionId, SessionStatus};
use keepwatch_recording::SealInfo;
use sqlx::Row;

use super::Sqlite;
use crate::decode::{self, hash32, ranges_text};
use crate::error::At;
use crate::rows::*;
use crate::search::like_glob;
use crate::{StoreError, now_us};

/// A transfer with what became of its content (a macro so queries stay `concat!`ed literals).
macro_rules! transfer_select {
    () => {
        "SELECT t.*, c.status AS capture_status, c.bytes AS capture_bytes, \
         c.reason AS capture_reason FROM transfers t LEFT JOIN transfer_captures c ON c.transfer_id = t.id"
    };
}

/// The sessions a [`SessionFilter`] picks, newest first (bound as ?1..?9).
macro_rules! session_where {
    () => {
        " WHERE (?1 IS NULL OR s.status = ?1) AND (?2 IS NULL OR s.person = ?2) \
         AND (?3 IS NULL OR s.target = ?3) AND (?4 IS NULL OR s.started_at_us >= ?4) \
         AND (?5 IS NULL OR s.started_at_us <= ?5) AND (?7 IS NULL OR s.node = ?7) \
         AND (?8 IS NULL OR instr(lower(s.stated_reason), lower(?8)) > 0) \
         AND (?9 IS NULL OR s.id IN (SELECT t.session_id FROM session_tags t WHERE t.tag = ?9)) ORDER BY s.started_at_us DESC, s.id DESC LIMIT ?6"
    };
}

fn bind_filter<'q>(
    q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    f: &SessionFilter,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    q.bind(f.status.map(|s| s.as_str()))
        .bind(f.person.clone())
        .bind(f.target.clone())
        .bind(f.since_us)
        .bind(f.until_us)
        .bind(f.limit.map_or(-1, i64::from))
        .bind(f.node.as_ref().map(|n| n.as_str().to_owned()))
        .bind(f.reason.clone())
        .bind(f.tag.as_ref().map(|t| t.to_ascii_lowercase()))
}

impl Sqlite {
    pub(crate) async fn insert_session(&self, s: &SessionRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, person, target, target_host, target_login, client_addr, status, \
             reason, started_at_us, node, protocol, stated_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .bind(s.node.as_ref().map_or("", NodeId::as_str))
        .bind(s.protocol.as_str())
        .bind(&s.stated_reason)
        .execute(&self.pool)
        .await
        .at("insert session", s.id)?;
        Ok(())
    }

    pub(crate) async fn delete_unrecorded_session(&self, id: SessionId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id = ? AND chain_head IS NULL")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .at("delete unrecorded session", id)?;
        Ok(())
    }

    pub(crate) async fn end_unsealed_session(
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
        .await
        .at("end unsealed session", id)?;
        Ok(())
    }

    /// The seal and the ledger entry in one transaction that holds SQLite's write lock from
    /// its start (`BEGIN IMMEDIATE`): the ledger's head cannot move under it, whichever
    /// process writes.
    pub(crate) async fn finish_session(
        &self,
        id: SessionId,
        status: SessionStatus,
        reason: Option<&str>,
        seal: &SealInfo,
        ended_at_us: i64,
        ledger_key: &SigningKey,
    ) -> Result<(), StoreError> {
        const OP: &str = "finish session";
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.at(OP, id)?;
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
        .await
        .at(OP, id)?;
        let last = sqlx::query("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await
            .at(OP, id)?;
        let prev = match last {
            Some(r) => {
                let seq: i64 = r.try_get(0).at(OP, id)?;
                Some((seq as u64, hash32("ledger.hash", r.try_get(1).at(OP, id)?).at(OP, id)?))
            }
            None => None,
        };
        let link = crate::chain::ledger_link(prev, id, seal, ledger_key);
        sqlx::query(
            "INSERT INTO ledger (seq, session_id, chain_head, sealed_at_us, prev_hash, hash, signature) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(link.seq as i64)
        .bind(id.to_string())
        .bind(seal.chain_head.as_slice())
        .bind(seal.sealed_at_us)
        .bind(link.prev.as_slice())
        .bind(link.hash.as_slice())
        .bind(link.signature.as_slice())
        .execute(&mut *tx)
        .await
        .at(OP, id)?;
        tx.commit().await.at(OP, id)
    }

    pub(crate) async fn session(&self, id: SessionId) -> Result<Option<SessionRow>, StoreError> {
        const OP: &str = "read session";
        let row = sqlx::query("SELECT * FROM sessions WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .at(OP, id)?;
        row.as_ref().map(decode::session).transpose().at(OP, id)
    }

    pub(crate) async fn sessions(&self, f: &SessionFilter) -> Result<Vec<SessionRow>, StoreError> {
        const OP: &str = "list sessions";
        let q = sqlx::query(concat!("SELECT s.* FROM sessions s", session_where!()));
        let rows = bind_filter(q, f).fetch_all(&self.pool).await.at(OP, "")?;
        rows.iter().map(decode::session).collect::<Result<_, _>>().at(OP, "")
    }

    pub(crate) async fn session_listings(
        &self,
        f: &SessionFilter,
    ) -> Result<Vec<SessionListing>, StoreError> {
        const OP: &str = "list sessions";
        let q = sqlx::query(concat!(
            "SELECT s.*, (SELECT c.command FROM commands c WHERE c.session_id = s.id \
             AND c.kind NOT IN ('screen', 'env') ORDER BY c.seq DESC LIMIT 1) AS last_command \
             FROM sessions s",
            session_where!()
        ));
        let rows = bind_filter(q, f).fetch_all(&self.pool).await.at(OP, "")?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(SessionListing {
                session: decode::session(r).at(OP, "")?,
                channels: Vec::new(),
                last_command: r.try_get("last_command").at(OP, "")?,
                tags: Vec::new(),
            });
        }
        let ids: Vec<String> = out.iter().map(|l| format!("\"{}\"", l.session.id)).collect();
        let channels = sqlx::query(
            "SELECT * FROM channels WHERE session_id IN (SELECT value FROM json_each(?)) \
             ORDER BY opened_at_us, channel",
        )
        .bind(format!("[{}]", ids.join(",")))
        .fetch_all(&self.pool)
        .await
        .at(OP, "")?;
        let mut by_id: std::collections::HashMap<SessionId, Vec<ChannelRow>> = Default::default();
        for c in &channels {
            let id = decode::session_id(c, "session_id").at(OP, "")?;
            by_id.entry(id).or_default().push(decode::channel(c).at(OP, id)?);
        }
        let listed: Vec<SessionId> = out.iter().map(|l| l.session.id).collect();
        let mut tags = self.tags_of(&listed).await?;
        for l in &mut out {
            l.channels = by_id.remove(&l.session.id).unwrap_or_default();
            l.tags = tags.remove(&l.session.id).unwrap_or_default();
        }
        Ok(out)
    }

    pub(crate) async fn add_channel(
        &self,
        session: SessionId,
        c: &ChannelRow,
    ) -> Result<(), StoreError> {
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
        .await
        .at("add channel", format!("{session}/{}", c.channel))?;
        Ok(())
    }

    pub(crate) async fn close_channel(
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
        .await
        .at("close channel", format!("{session}/{channel}"))?;
        Ok(())
    }

    pub(crate) async fn channels(&self, session: SessionId) -> Result<Vec<ChannelRow>, StoreError> {
        const OP: &str = "list channels";
        let rows = sqlx::query(
            "SELECT * FROM channels WHERE session_id = ? ORDER BY opened_at_us, channel",
        )
        .bind(session.to_string())
        .fetch_all(&self.pool)
        .await
        .at(OP, session)?;
        rows.iter().map(decode::channel).collect::<Result<_, _>>().at(OP, session)
    }

    pub(crate) async fn add_transfer(&self, t: &TransferRow) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO transfers (session_id, channel, at_us, protocol, path, direction, bytes, size, sha256, \
             complete, ranges) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
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
        .bind(ranges_text(&t.ranges))
        .fetch_one(&self.pool)
        .await
        .at("add transfer", t.session_id)
    }

    pub(crate) async fn record_capture(
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
        .await
        .at("record capture of transfer", transfer_id)?;
        Ok(())
    }

    pub(crate) async fn transfer(&self, id: i64) -> Result<Option<TransferRow>, StoreError> {
        const OP: &str = "read transfer";
        let row = sqlx::query(concat!(transfer_select!(), " WHERE t.id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .at(OP, id)?;
        row.as_ref().map(decode::transfer).transpose().at(OP, id)
    }

    pub(crate) async fn transfers(
        &self,
        f: &TransferFilter,
    ) -> Result<Vec<TransferRow>, StoreError> {
        const OP: &str = "list transfers";
        // LIKE is ASCII case-insensitive in SQLite, as `glob_match` is.
        let rows = sqlx::query(concat!(
            transfer_select!(),
            " JOIN sessions s ON s.id = t.session_id \
             WHERE (?1 IS NULL OR s.person = ?1) AND (?2 IS NULL OR s.target = ?2) \
             AND (?3 IS NULL OR t.session_id = ?3) AND (?4 IS NULL OR t.sha256 = lower(?4)) \
             AND (?5 IS NULL OR t.path LIKE ?5 ESCAPE '\\') ORDER BY t.at_us DESC, t.id DESC"
        ))
        .bind(&f.person)
        .bind(&f.target)
        .bind(f.session.map(|s| s.to_string()))
        .bind(&f.sha256)
        .bind(f.path.as_deref().map(like_glob))
        .fetch_all(&self.pool)
        .await
        .at(OP, "")?;
        rows.iter().map(decode::transfer).collect::<Result<_, _>>().at(OP, "")
    }

    pub(crate) async fn ledger(&self) -> Result<Vec<LedgerRow>, StoreError> {
        const OP: &str = "read ledger";
        let rows = sqlx::query("SELECT * FROM ledger ORDER BY seq")
            .fetch_all(&self.pool)
            .await
            .at(OP, "")?;
        rows.iter().map(decode::ledger).collect::<Result<_, _>>().at(OP, "")
    }

    pub(crate) async fn ledger_head(&self) -> Result<Option<(u64, [u8; 32])>, StoreError> {
        const OP: &str = "read ledger head";
        let row = sqlx::query("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .at(OP, "")?;
        let Some(r) = row else { return Ok(None) };
        let seq: i64 = r.try_get(0).at(OP, "")?;
        Ok(Some((seq as u64 + 1, hash32("ledger.hash", r.try_get(1).at(OP, "")?).at(OP, "")?)))
    }
}
