//! Retention policies, legal holds and deleting a session by policy, in PostgreSQL.

use ed25519_dalek::SigningKey;
use keepwatch_core::SessionId;
use keepwatch_core::retention::{HoldScope, PolicyScope};
use sqlx::Row;

use super::Postgres;
use crate::decode;
use crate::error::At;
use crate::rows::*;
use crate::search::TextIndex;
use crate::{StoreError, now_us};

/// The rows a session owns besides its own, deleted with it (the index entries first).
const SESSION_TABLES: [&str; 11] = [
    "DELETE FROM commands WHERE session_id = $1",
    "DELETE FROM output_blocks WHERE session_id = $1",
    "DELETE FROM keyframes WHERE session_id = $1",
    "DELETE FROM index_state WHERE session_id = $1",
    "DELETE FROM index_progress WHERE session_id = $1",
    "DELETE FROM channels WHERE session_id = $1",
    "DELETE FROM transfer_captures WHERE transfer_id IN (SELECT id FROM transfers WHERE session_id = $1)",
    "DELETE FROM transfers WHERE session_id = $1",
    "DELETE FROM session_tags WHERE session_id = $1",
    // Crypto-shredding: without its data key the recording is unreadable, wherever its
    // bytes are (write-once storage included).
    "DELETE FROM data_keys WHERE session_id = $1",
    "DELETE FROM sessions WHERE id = $1",
];

impl Postgres {
    pub(crate) async fn add_retention_policy(
        &self,
        scope: &PolicyScope,
        keep_s: u64,
        by: &str,
        a: &NewAudit,
        signer: Option<&SigningKey>,
    ) -> Result<i64, StoreError> {
        const OP: &str = "add retention policy";
        let (kind, value) = scope.parts();
        let by = by.to_owned();
        let id = self
            .audited_if(OP, a, signer, move |conn| {
                Box::pin(async move {
                    let row = sqlx::query(
                        "INSERT INTO retention_policies (scope, value, keep_s, created_by, created_at_us) \
                         VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    )
                    .bind(kind)
                    .bind(&value)
                    .bind(i64::try_from(keep_s).unwrap_or(i64::MAX))
                    .bind(&by)
                    .bind(now_us())
                    .fetch_one(&mut *conn)
                    .await
                    .at(OP, kind)?;
                    Ok(Some(row.try_get::<i64, _>("id").at(OP, kind)?))
                })
            })
            .await?;
        Ok(id.unwrap_or_default())
    }

    pub(crate) async fn retention_policies(&self) -> Result<Vec<RetentionRow>, StoreError> {
        const OP: &str = "list retention policies";
        let rows = sqlx::query("SELECT * FROM retention_policies ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .at(OP, "")?;
        rows.iter().map(decode::retention).collect::<Result<_, _>>().at(OP, "")
    }

    pub(crate) async fn remove_retention_policy(
        &self,
        id: i64,
        a: &NewAudit,
        signer: Option<&SigningKey>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "remove retention policy";
        let done = self
            .audited_if(OP, a, signer, move |conn| {
                Box::pin(async move {
                    let r = sqlx::query("DELETE FROM retention_policies WHERE id = $1")
                        .bind(id)
                        .execute(&mut *conn)
                        .await
                        .at(OP, id)?;
                    Ok((r.rows_affected() == 1).then_some(()))
                })
            })
            .await?;
        Ok(done.is_some())
    }

    pub(crate) async fn place_hold(
        &self,
        scope: &HoldScope,
        reason: &str,
        by: &str,
        a: &NewAudit,
        signer: Option<&SigningKey>,
    ) -> Result<i64, StoreError> {
        const OP: &str = "place legal hold";
        let (kind, value) = scope.parts();
        let (reason, by) = (reason.to_owned(), by.to_owned());
        let id = self
            .audited_if(OP, a, signer, move |conn| {
                Box::pin(async move {
                    let row = sqlx::query(
                        "INSERT INTO legal_holds (scope, value, reason, placed_by, placed_at_us) \
                         VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    )
                    .bind(kind)
                    .bind(&value)
                    .bind(&reason)
                    .bind(&by)
                    .bind(now_us())
                    .fetch_one(&mut *conn)
                    .await
                    .at(OP, kind)?;
                    Ok(Some(row.try_get::<i64, _>("id").at(OP, kind)?))
                })
            })
            .await?;
        Ok(id.unwrap_or_default())
    }

    pub(crate) async fn holds(&self, released_too: bool) -> Result<Vec<HoldRow>, StoreError> {
        const OP: &str = "list legal holds";
        let sql = if released_too {
            "SELECT * FROM legal_holds ORDER BY id"
        } else {
            "SELECT * FROM legal_holds WHERE released_at_us IS NULL ORDER BY id"
        };
        let rows = sqlx::query(sql).fetch_all(&self.pool).await.at(OP, "")?;
        rows.iter().map(decode::hold).collect::<Result<_, _>>().at(OP, "")
    }

    pub(crate) async fn release_hold(
        &self,
        id: i64,
        by: &str,
        reason: &str,
        a: &NewAudit,
        signer: Option<&SigningKey>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "release legal hold";
        let (by, reason) = (by.to_owned(), reason.to_owned());
        let done = self
            .audited_if(OP, a, signer, move |conn| {
                Box::pin(async move {
                    let r = sqlx::query(
                        "UPDATE legal_holds SET released_by = $1, released_at_us = $2, release_reason = $3 \
                         WHERE id = $4 AND released_at_us IS NULL",
                    )
                    .bind(&by)
                    .bind(now_us())
                    .bind(&reason)
                    .bind(id)
                    .execute(&mut *conn)
                    .await
                    .at(OP, id)?;
                    Ok((r.rows_affected() == 1).then_some(()))
                })
            })
            .await?;
        Ok(done.is_some())
    }

    pub(crate) async fn delete_ended_session(
        &self,
        session: SessionId,
        a: &NewAudit,
        signer: Option<&SigningKey>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "delete session by retention";
        let index = self.index.clone();
        let done = self
            .audited_if(OP, a, signer, move |conn| {
                Box::pin(async move {
                    let id = session.to_string();
                    // Only a sealed session: a live one (or one a crash left active) stays.
                    let ended = sqlx::query(
                        "SELECT 1 FROM sessions WHERE id = $1 AND status <> 'active' AND chain_head IS NOT NULL",
                    )
                    .bind(&id)
                    .fetch_optional(&mut *conn)
                    .await
                    .at(OP, session)?;
                    if ended.is_none() {
                        return Ok(None);
                    }
                    index.forget(&mut *conn, &id).await.at(OP, session)?;
                    for sql in SESSION_TABLES {
                        sqlx::query(sql).bind(&id).execute(&mut *conn).await.at(OP, session)?;
                    }
                    Ok(Some(()))
                })
            })
            .await?;
        Ok(done.is_some())
    }
}
