//! The audit trail and API tokens, in PostgreSQL. Every audit event is appended with its chain
//! link in a transaction that first takes the audit chain's advisory lock, so two processes
//! never link to the same head, and the event's id (drawn from its sequence under the lock)
//! grows in commit order.

use ed25519_dalek::SigningKey;
use futures::future::BoxFuture;
use keepwatch_core::{PersonName, Role};
use sqlx::PgConnection;

use super::Postgres;
use crate::decode;
use crate::error::{At, unique_violation};
use crate::rows::*;
use crate::{StoreError, now_us};

/// Every column of a token, with its person (a macro so queries stay `concat!`ed literals).
macro_rules! token_select {
    () => {
        "SELECT t.*, p.person FROM api_tokens t LEFT JOIN token_people p ON p.token = t.name"
    };
}

impl Postgres {
    /// Makes `change` and appends the (cleaned) audit event `a` in one transaction.
    pub(crate) async fn audited_if<T, F>(
        &self,
        op: &'static str,
        a: &NewAudit,
        signer: Option<&SigningKey>,
        change: F,
    ) -> Result<Option<T>, StoreError>
    where
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<Option<T>, StoreError>>,
    {
        let id = a.action.as_str();
        let mut tx = self.pool.begin().await.at(op, id)?;
        // Taken before the change, so the change's own row locks are never waited for while
        // holding the chain (every audited transaction locks in this order).
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(super::AUDIT_LOCK)
            .execute(&mut *tx)
            .await
            .at(op, id)?;
        let Some(out) = change(&mut tx).await? else {
            tx.rollback().await.at(op, id)?;
            return Ok(None);
        };
        append_audit(&mut tx, a, signer).await.at(op, id)?;
        tx.commit().await.at(op, id)?;
        Ok(Some(out))
    }

    pub(crate) async fn audit(
        &self,
        a: &NewAudit,
        signer: Option<&SigningKey>,
    ) -> Result<(), StoreError> {
        self.audited_if("write audit event", a, signer, |_| Box::pin(async { Ok(Some(())) }))
            .await
            .map(|_| ())
    }

    pub(crate) async fn audit_head(&self) -> Result<Option<(i64, [u8; 32])>, StoreError> {
        const OP: &str = "read audit head";
        let row: Option<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT id, hash FROM audit_chain ORDER BY id DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await
                .at(OP, "")?;
        row.map(|(id, h)| Ok((id, decode::hash32("audit_chain.hash", h).at(OP, id)?))).transpose()
    }

    pub(crate) async fn audit_link(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar("SELECT hash FROM audit_chain WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .at("read audit link", id)
    }

    pub(crate) async fn audit_events(&self, f: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        const OP: &str = "list audit events";
        let rows = sqlx::query(
            "SELECT * FROM audit_events WHERE ($1 IS NULL OR action = $1) AND ($2 IS NULL OR actor = $2) \
             AND ($3 IS NULL OR session_id = $3) ORDER BY id DESC LIMIT $4",
        )
        .bind(f.action.map(|a| a.as_str()))
        .bind(&f.actor)
        .bind(f.session.map(|s| s.to_string()))
        .bind(f.limit.map(i64::from))
        .fetch_all(&self.pool)
        .await
        .at(OP, "")?;
        rows.iter().map(decode::audit).collect::<Result<_, _>>().at(OP, "")
    }

    pub(crate) async fn audit_events_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredAudit>, StoreError> {
        const OP: &str = "list audit events after";
        let rows = sqlx::query("SELECT * FROM audit_events WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .at(OP, after)?;
        rows.iter().map(decode::stored_audit).collect::<Result<_, _>>().at(OP, after)
    }

    pub(crate) async fn audit_chain(&self) -> Result<Vec<AuditLink>, StoreError> {
        const OP: &str = "read audit chain";
        let rows = sqlx::query(
            "SELECT e.*, c.hash AS chain_hash, c.signature AS chain_signature FROM audit_events e \
             LEFT JOIN audit_chain c ON c.id = e.id ORDER BY e.id",
        )
        .fetch_all(&self.pool)
        .await
        .at(OP, "")?;
        rows.iter().map(decode::audit_link).collect::<Result<_, _>>().at(OP, "")
    }

    pub(crate) async fn orphaned_audit_links(&self) -> Result<Vec<i64>, StoreError> {
        sqlx::query_scalar(
            "SELECT c.id FROM audit_chain c LEFT JOIN audit_events e ON e.id = c.id \
             WHERE e.id IS NULL ORDER BY c.id",
        )
        .fetch_all(&self.pool)
        .await
        .at("read audit chain", "")
    }

    // ---- tokens ----

    pub(crate) async fn add_token(
        &self,
        name: &str,
        role: Role,
        person: Option<&PersonName>,
        sha256_hex: &str,
        a: &NewAudit,
        signer: Option<&SigningKey>,
    ) -> Result<(), StoreError> {
        const OP: &str = "add token";
        let (name, sha) = (name.to_owned(), sha256_hex.to_owned());
        let person = person.cloned();
        self.audited_if(OP, a, signer, move |conn| {
            Box::pin(async move {
                if let Some(p) = &person {
                    let found = sqlx::query("SELECT 1 FROM people WHERE name = $1")
                        .bind(p.as_str())
                        .fetch_optional(&mut *conn)
                        .await
                        .at(OP, &name)?;
                    if found.is_none() {
                        return Err(StoreError::NotFound { op: OP, kind: "person", id: p.to_string() });
                    }
                }
                let r = sqlx::query(
                    "INSERT INTO api_tokens (name, role, token_sha256, created_at_us) VALUES ($1, $2, $3, $4)",
                )
                .bind(&name)
                .bind(role.as_str())
                .bind(&sha)
                .bind(now_us())
                .execute(&mut *conn)
                .await;
                match r {
                    Err(e) if unique_violation(&e) => {
                        return Err(StoreError::Exists { op: OP, kind: "token", id: name });
                    }
                    r => r.at(OP, &name)?,
                };
                // A stale row of an earlier token of the same name (removed by hand) must not
                // lend this one its person.
                sqlx::query("DELETE FROM token_people WHERE token = $1")
                    .bind(&name)
                    .execute(&mut *conn)
                    .await
                    .at(OP, &name)?;
                if let Some(p) = &person {
                    sqlx::query("INSERT INTO token_people (token, person) VALUES ($1, $2)")
                        .bind(&name)
                        .bind(p.as_str())
                        .execute(&mut *conn)
                        .await
                        .at(OP, &name)?;
                }
                Ok(Some(()))
            })
        })
        .await
        .map(|_| ())
    }

    pub(crate) async fn set_token(
        &self,
        name: &str,
        role: Role,
        sha256_hex: &str,
        a: &NewAudit,
        signer: Option<&SigningKey>,
    ) -> Result<(), StoreError> {
        const OP: &str = "set token";
        let (name, sha256_hex) = (name.to_owned(), sha256_hex.to_owned());
        self.audited_if(OP, a, signer, move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO api_tokens (name, role, token_sha256, created_at_us) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (name) DO UPDATE SET role = excluded.role, token_sha256 = excluded.token_sha256",
                )
                .bind(&name)
                .bind(role.as_str())
                .bind(&sha256_hex)
                .bind(now_us())
                .execute(&mut *conn)
                .await
                .at(OP, &name)?;
                sqlx::query("DELETE FROM token_people WHERE token = $1")
                    .bind(&name)
                    .execute(&mut *conn)
                    .await
                    .at(OP, &name)?;
                Ok(Some(()))
            })
        })
        .await
        .map(|_| ())
    }

    pub(crate) async fn token_by_hash(
        &self,
        sha256_hex: &str,
    ) -> Result<Option<TokenRow>, StoreError> {
        const OP: &str = "read token";
        let used: Option<String> = sqlx::query_scalar(
            "UPDATE api_tokens SET last_used_at_us = $1 WHERE token_sha256 = $2 RETURNING name",
        )
        .bind(now_us())
        .bind(sha256_hex)
        .fetch_optional(&self.pool)
        .await
        .at(OP, "by hash")?;
        let Some(name) = used else { return Ok(None) };
        let row = sqlx::query(concat!(token_select!(), " WHERE t.name = $1"))
            .bind(&name)
            .fetch_optional(&self.pool)
            .await
            .at(OP, &name)?;
        row.as_ref().map(decode::token).transpose().at(OP, &name)
    }

    pub(crate) async fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        const OP: &str = "list tokens";
        let rows = sqlx::query(concat!(token_select!(), " ORDER BY t.name"))
            .fetch_all(&self.pool)
            .await
            .at(OP, "")?;
        rows.iter().map(decode::token).collect::<Result<_, _>>().at(OP, "")
    }

    pub(crate) async fn remove_token(
        &self,
        name: &str,
        a: &NewAudit,
        signer: Option<&SigningKey>,
    ) -> Result<(), StoreError> {
        const OP: &str = "remove token";
        let name = name.to_owned();
        self.audited_if(OP, a, signer, move |conn| {
            Box::pin(async move {
                let r = sqlx::query("DELETE FROM api_tokens WHERE name = $1")
                    .bind(&name)
                    .execute(&mut *conn)
                    .await
                    .at(OP, &name)?;
                if r.rows_affected() == 0 {
                    return Err(StoreError::NotFound { op: OP, kind: "token", id: name });
                }
                Ok(Some(()))
            })
        })
        .await
        .map(|_| ())
    }
}

/// Appends a cleaned event and its chain link, inside the caller's transaction.
pub(super) async fn append_audit(
    conn: &mut PgConnection,
    a: &NewAudit,
    signer: Option<&SigningKey>,
) -> Result<(), sqlx::Error> {
    let at_us = now_us();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO audit_events (at_us, actor, action, session_id, client_addr, detail) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(at_us)
    .bind(&a.actor)
    .bind(a.action.as_str())
    .bind(a.session_id.map(|s| s.to_string()))
    .bind(&a.client_addr)
    .bind(&a.detail)
    .fetch_one(&mut *conn)
    .await?;
    let prev: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT hash FROM audit_chain ORDER BY id DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    let (hash, sig) = crate::chain::audit_link(prev, id, at_us, a, signer);
    sqlx::query("INSERT INTO audit_chain (id, hash, signature) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(hash.as_slice())
        .bind(sig)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
