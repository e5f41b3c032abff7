//! Session tags in SQLite: changed with their audit event in one transaction that holds the
//! write lock from its start, read for a session and for a page of listed sessions.

use std::collections::HashMap;

use ed25519_dalek::SigningKey;
use keepwatch_core::{SessionId, Tag};
use sqlx::Row;

use super::Sqlite;
use super::audit::append_audit;
use crate::error::At;
use crate::rows::*;
use crate::store::tags::{TagOp, check_tag_count, tag_audit};
use crate::{StoreError, decode, now_us};

impl Sqlite {
    pub(crate) async fn change_tags(
        &self,
        how: TagOp,
        c: &TagChange<'_>,
        template: &NewAudit,
        signer: Option<&SigningKey>,
    ) -> Result<Vec<Tag>, StoreError> {
        let (op, id) = (how.op(), c.session);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.at(op, id)?;
        let found = sqlx::query("SELECT 1 FROM sessions WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .at(op, id)?;
        if found.is_none() {
            return Err(StoreError::NotFound { op, kind: "session", id: id.to_string() });
        }
        let mut changed = Vec::new();
        for t in c.tags {
            let q = match how {
                TagOp::Add => sqlx::query(
                    "INSERT INTO session_tags (session_id, tag, added_by, added_at_us) \
                     VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                )
                .bind(id.to_string())
                .bind(t.as_str())
                .bind(&template.actor)
                .bind(now_us()),
                TagOp::Remove => {
                    sqlx::query("DELETE FROM session_tags WHERE session_id = ? AND tag = ?")
                        .bind(id.to_string())
                        .bind(t.as_str())
                }
            };
            if q.execute(&mut *tx).await.at(op, id)?.rows_affected() > 0 {
                changed.push(t.clone());
            }
        }
        if how == TagOp::Add {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM session_tags WHERE session_id = ?")
                    .bind(id.to_string())
                    .fetch_one(&mut *tx)
                    .await
                    .at(op, id)?;
            check_tag_count(id, n)?;
        }
        if changed.is_empty() {
            tx.rollback().await.at(op, id)?;
            return Ok(changed);
        }
        append_audit(&mut tx, &tag_audit(template, &changed), signer).await.at(op, id)?;
        tx.commit().await.at(op, id)?;
        Ok(changed)
    }

    pub(crate) async fn session_tags(&self, id: SessionId) -> Result<Vec<SessionTag>, StoreError> {
        const OP: &str = "list session tags";
        let rows = sqlx::query(
            "SELECT tag, added_by, added_at_us FROM session_tags WHERE session_id = ? ORDER BY tag",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await
        .at(OP, id)?;
        rows.iter().map(decode::session_tag).collect::<Result<_, _>>().at(OP, id)
    }

    /// The tags of each of `ids`, sorted, in one query.
    pub(crate) async fn tags_of(
        &self,
        ids: &[SessionId],
    ) -> Result<HashMap<SessionId, Vec<String>>, StoreError> {
        const OP: &str = "list sessions";
        let list: Vec<String> = ids.iter().map(|id| format!("\"{id}\"")).collect();
        let rows = sqlx::query(
            "SELECT session_id, tag FROM session_tags \
             WHERE session_id IN (SELECT value FROM json_each(?)) ORDER BY session_id, tag",
        )
        .bind(format!("[{}]", list.join(",")))
        .fetch_all(&self.pool)
        .await
        .at(OP, "")?;
        let mut out: HashMap<SessionId, Vec<String>> = HashMap::new();
        for r in &rows {
            let id = decode::session_id(r, "session_id").at(OP, "")?;
            out.entry(id).or_default().push(r.try_get("tag").at(OP, id)?);
        }
        Ok(out)
    }
}
