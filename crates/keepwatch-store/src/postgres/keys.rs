//! Recordings' wrapped data keys (encryption at rest), in Postgres.

use keepwatch_core::SessionId;
use sqlx::Row;

use super::Postgres;
use crate::error::At;
use crate::rows::WrappedKey;
use crate::{StoreError, decode, now_us};

impl Postgres {
    pub(crate) async fn put_data_key(
        &self,
        id: SessionId,
        key: &WrappedKey,
    ) -> Result<(), StoreError> {
        const OP: &str = "store data key";
        let now = now_us();
        sqlx::query(
            "INSERT INTO data_keys (session_id, wrapped, kek, created_at_us, wrapped_at_us) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.to_string())
        .bind(&key.wrapped)
        .bind(&key.kek)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await
        .at(OP, id)?;
        Ok(())
    }

    pub(crate) async fn data_key(&self, id: SessionId) -> Result<Option<WrappedKey>, StoreError> {
        const OP: &str = "read data key";
        let row = sqlx::query("SELECT wrapped, kek FROM data_keys WHERE session_id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .at(OP, id)?;
        Ok(row.map(|r| WrappedKey { wrapped: r.get("wrapped"), kek: r.get("kek") }))
    }

    pub(crate) async fn data_keys_after(
        &self,
        after: Option<SessionId>,
        limit: i64,
    ) -> Result<Vec<(SessionId, WrappedKey)>, StoreError> {
        const OP: &str = "list data keys";
        let after = after.map(|a| a.to_string()).unwrap_or_default();
        let rows = sqlx::query(
            "SELECT session_id, wrapped, kek FROM data_keys WHERE session_id > $1 \
             ORDER BY session_id LIMIT $2",
        )
        .bind(&after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .at(OP, &after)?;
        rows.iter()
            .map(|r| {
                let id = decode::session_id(r, "session_id").at(OP, &after)?;
                Ok((id, WrappedKey { wrapped: r.get("wrapped"), kek: r.get("kek") }))
            })
            .collect()
    }

    pub(crate) async fn rewrap_data_key(
        &self,
        id: SessionId,
        old: &[u8],
        new: &WrappedKey,
    ) -> Result<bool, StoreError> {
        const OP: &str = "rewrap data key";
        let n = sqlx::query(
            "UPDATE data_keys SET wrapped = $1, kek = $2, wrapped_at_us = $3 \
             WHERE session_id = $4 AND wrapped = $5",
        )
        .bind(&new.wrapped)
        .bind(&new.kek)
        .bind(now_us())
        .bind(id.to_string())
        .bind(old)
        .execute(&self.pool)
        .await
        .at(OP, id)?
        .rows_affected();
        Ok(n == 1)
    }
}
