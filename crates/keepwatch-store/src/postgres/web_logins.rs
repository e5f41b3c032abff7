//! Console logins in PostgreSQL (see `store/web_logins.rs`).

use super::Postgres;
use crate::StoreError;
use crate::decode;
use crate::error::{At, unique_violation};
use crate::rows::{WebLoginLimits, WebLoginRow};

const OP_ADD: &str = "add console login";
const OP_READ: &str = "read console login";

impl Postgres {
    pub(crate) async fn add_web_login(
        &self,
        cookie_sha256: &str,
        login: &WebLoginRow,
        limits: WebLoginLimits,
    ) -> Result<(), StoreError> {
        let who = login.person.as_str();
        let (idle_cut, life_cut) = limits.alive_after(login.started_at_us);
        let mut tx = self.pool.begin().await.at(OP_ADD, who)?;
        sqlx::query("DELETE FROM web_logins WHERE last_seen_at_us <= $1 OR started_at_us <= $2")
            .bind(idle_cut)
            .bind(life_cut)
            .execute(&mut *tx)
            .await
            .at(OP_ADD, who)?;
        let r = sqlx::query(
            "INSERT INTO web_logins (cookie_sha256, person, role, person_created_at_us, csrf, \
             started_at_us, last_seen_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(cookie_sha256)
        .bind(who)
        .bind(login.role.as_str())
        .bind(login.person_created_at_us)
        .bind(&login.csrf)
        .bind(login.started_at_us)
        .bind(login.last_seen_at_us)
        .execute(&mut *tx)
        .await;
        match r {
            Err(e) if unique_violation(&e) => {
                return Err(StoreError::Exists {
                    op: OP_ADD,
                    kind: "console login",
                    id: who.into(),
                });
            }
            r => r.at(OP_ADD, who)?,
        };
        // The person's most recently used logins stay (the new one first); the rest go.
        sqlx::query(
            "DELETE FROM web_logins WHERE person = $1 AND cookie_sha256 NOT IN \
             (SELECT cookie_sha256 FROM web_logins WHERE person = $1 \
              ORDER BY cookie_sha256 = $2 DESC, last_seen_at_us DESC, started_at_us DESC LIMIT $3)",
        )
        .bind(who)
        .bind(cookie_sha256)
        .bind(i64::try_from(limits.per_person.max(1)).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .at(OP_ADD, who)?;
        tx.commit().await.at(OP_ADD, who)
    }

    pub(crate) async fn web_login(
        &self,
        cookie_sha256: &str,
        now_us: i64,
        limits: WebLoginLimits,
    ) -> Result<Option<WebLoginRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM web_logins WHERE cookie_sha256 = $1")
            .bind(cookie_sha256)
            .fetch_optional(&self.pool)
            .await
            .at(OP_READ, "")?;
        let Some(row) = row else { return Ok(None) };
        let mut login = decode::web_login(&row).at(OP_READ, "")?;
        let (idle_cut, life_cut) = limits.alive_after(now_us);
        if login.last_seen_at_us <= idle_cut || login.started_at_us <= life_cut {
            self.remove_web_login(cookie_sha256).await?;
            return Ok(None);
        }
        if now_us - login.last_seen_at_us >= limits.touch_after_us() {
            sqlx::query(
                "UPDATE web_logins SET last_seen_at_us = $1 \
                 WHERE cookie_sha256 = $2 AND last_seen_at_us < $1",
            )
            .bind(now_us)
            .bind(cookie_sha256)
            .execute(&self.pool)
            .await
            .at(OP_READ, "")?;
            login.last_seen_at_us = now_us;
        }
        Ok(Some(login))
    }

    pub(crate) async fn remove_web_login(&self, cookie_sha256: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM web_logins WHERE cookie_sha256 = $1")
            .bind(cookie_sha256)
            .execute(&self.pool)
            .await
            .at("end console login", "")?;
        Ok(())
    }

    pub(crate) async fn web_login_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM web_logins")
            .fetch_one(&self.pool)
            .await
            .at("count console logins", "")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
