//! Who may go where, in PostgreSQL: people, targets and grants.

use ed25519_dalek::SigningKey;
use keepwatch_core::{GrantPolicy, Role};
use sqlx::Row;

use super::Postgres;
use crate::decode::{self, join_list};
use crate::error::{At, unique_violation};
use crate::rows::*;
use crate::{StoreError, now_us};

const PERSON_SELECT: &str = "SELECT p.name, p.role, p.password_hash, p.created_at_us, p.scram_verifier, s.disabled \
     FROM people p LEFT JOIN person_state s ON s.name = p.name";

impl Postgres {
    pub(crate) async fn add_person(
        &self,
        name: &str,
        role: Role,
        password_hash: Option<&str>,
        ssh_keys: &[String],
    ) -> Result<(), StoreError> {
        const OP: &str = "add person";
        let mut tx = self.pool.begin().await.at(OP, name)?;
        sqlx::query(
            "INSERT INTO people (name, role, password_hash, created_at_us) VALUES ($1, $2, $3, $4)",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(password_hash)
        .bind(now_us())
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if unique_violation(&e) {
                StoreError::Exists { op: OP, kind: "person", id: name.to_owned() }
            } else {
                crate::error::from_sqlx(e, OP, name.to_owned())
            }
        })?;
        for key in ssh_keys {
            sqlx::query("INSERT INTO person_keys (person, public_key) VALUES ($1, $2)")
                .bind(name)
                .bind(key)
                .execute(&mut *tx)
                .await
                .at(OP, name)?;
        }
        tx.commit().await.at(OP, name)
    }

    async fn person_keys(&self, name: &str) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT public_key FROM person_keys WHERE person = $1 ORDER BY id")
            .bind(name)
            .fetch_all(&self.pool)
            .await
            .at("read person keys", name)
    }

    pub(crate) async fn person(&self, name: &str) -> Result<Option<PersonRow>, StoreError> {
        const OP: &str = "read person";
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{PERSON_SELECT} WHERE p.name = $1")))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .at(OP, name)?;
        let Some(row) = row else { return Ok(None) };
        let keys = self.person_keys(name).await?;
        decode::person(&row, keys).map(Some).at(OP, name)
    }

    pub(crate) async fn people(&self) -> Result<Vec<PersonRow>, StoreError> {
        const OP: &str = "list people";
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{PERSON_SELECT} ORDER BY p.name")))
            .fetch_all(&self.pool)
            .await
            .at(OP, "")?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let name: String = row.try_get("name").at(OP, "")?;
            let keys = self.person_keys(&name).await?;
            out.push(decode::person(row, keys).at(OP, &name)?);
        }
        Ok(out)
    }

    pub(crate) async fn set_person_disabled(
        &self,
        name: &str,
        disabled: bool,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "INSERT INTO person_state (name, disabled) SELECT name, $1 FROM people WHERE name = $2 \
             ON CONFLICT (name) DO UPDATE SET disabled = excluded.disabled",
        )
        .bind(disabled)
        .bind(name)
        .execute(&self.pool)
        .await
        .at("set person disabled", name)?;
        Ok(r.rows_affected() == 1)
    }

    pub(crate) async fn set_person_role(&self, name: &str, role: Role) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE people SET role = $1 WHERE name = $2")
            .bind(role.as_str())
            .bind(name)
            .execute(&self.pool)
            .await
            .at("set person role", name)?;
        Ok(r.rows_affected() == 1)
    }

    pub(crate) async fn remove_person(&self, name: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM people WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .at("remove person", name)?;
        Ok(r.rows_affected() == 1)
    }

    /// Sets a person's password: its argon2id hash and its SCRAM verifier together; false
    /// when there is no such person.
    pub(crate) async fn set_password(
        &self,
        name: &str,
        hash: &str,
        scram_verifier: &str,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE people SET password_hash = $1, scram_verifier = $2 WHERE name = $3",
        )
        .bind(hash)
        .bind(scram_verifier)
        .bind(name)
        .execute(&self.pool)
        .await
        .at("set password", name)?;
        Ok(r.rows_affected() == 1)
    }

    pub(crate) async fn add_target(&self, t: &NewTarget) -> Result<(), StoreError> {
        const OP: &str = "add target";
        sqlx::query(
            "INSERT INTO targets (name, host, port, login, secret_kind, secret, host_key, \
             trust_on_first_use, on_recording_failure, kex_algorithms, host_key_algorithms, ciphers, macs, \
             created_at_us, protocol, database_name, tls, tls_ca, require_reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
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
        .bind(t.protocol.as_str())
        .bind(t.database.as_ref().map(|d| d.name.as_str()))
        .bind(t.database.as_ref().map(|d| d.tls.as_str()))
        .bind(t.database.as_ref().and_then(|d| d.ca.as_deref()))
        .bind(t.require_reason)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if unique_violation(&e) {
                StoreError::Exists { op: OP, kind: "target", id: t.name.clone() }
            } else {
                crate::error::from_sqlx(e, OP, t.name.clone())
            }
        })?;
        Ok(())
    }

    pub(crate) async fn target(&self, name: &str) -> Result<Option<TargetRow>, StoreError> {
        const OP: &str = "read target";
        let row = sqlx::query("SELECT * FROM targets WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .at(OP, name)?;
        row.as_ref().map(decode::target).transpose().at(OP, name)
    }

    pub(crate) async fn targets(&self) -> Result<Vec<TargetRow>, StoreError> {
        const OP: &str = "list targets";
        let rows = sqlx::query("SELECT * FROM targets ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .at(OP, "")?;
        rows.iter().map(decode::target).collect::<Result<_, _>>().at(OP, "")
    }

    pub(crate) async fn pin_host_key(
        &self,
        target: &str,
        key: &str,
        old_secret: &[u8],
        new_secret: &[u8],
        audit: &NewAudit,
        signer: Option<&SigningKey>,
    ) -> Result<bool, StoreError> {
        let (target, key) = (target.to_owned(), key.to_owned());
        let (old, new) = (old_secret.to_vec(), new_secret.to_vec());
        let done = self
            .audited_if("pin host key", audit, signer, move |conn| {
                Box::pin(async move {
                    let r = sqlx::query(
                        "UPDATE targets SET host_key = $1, secret = $2 \
                         WHERE name = $3 AND host_key IS NULL AND secret = $4",
                    )
                    .bind(&key)
                    .bind(&new)
                    .bind(&target)
                    .bind(&old)
                    .execute(&mut *conn)
                    .await
                    .at("pin host key", &target)?;
                    Ok((r.rows_affected() == 1).then_some(()))
                })
            })
            .await?;
        Ok(done.is_some())
    }

    pub(crate) async fn reseal_secret(
        &self,
        target: &str,
        old_secret: &[u8],
        new_secret: &[u8],
        audit: &NewAudit,
        signer: Option<&SigningKey>,
    ) -> Result<bool, StoreError> {
        let target = target.to_owned();
        let (old, new) = (old_secret.to_vec(), new_secret.to_vec());
        let done = self
            .audited_if("reseal secret", audit, signer, move |conn| {
                Box::pin(async move {
                    let r = sqlx::query(
                        "UPDATE targets SET secret = $1 WHERE name = $2 AND secret = $3",
                    )
                    .bind(&new)
                    .bind(&target)
                    .bind(&old)
                    .execute(&mut *conn)
                    .await
                    .at("reseal secret", &target)?;
                    Ok((r.rows_affected() == 1).then_some(()))
                })
            })
            .await?;
        Ok(done.is_some())
    }

    pub(crate) async fn grant(
        &self,
        person: &str,
        target: &str,
        policy: &GrantPolicy,
    ) -> Result<(), StoreError> {
        const OP: &str = "grant";
        let id = format!("{person}@{target}");
        let mut tx = self.pool.begin().await.at(OP, &id)?;
        sqlx::query(
            "INSERT INTO grants (person, target, upload, download, max_file_size, forward_to, remote_forward) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (person, target) DO UPDATE SET upload = excluded.upload, \
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
        .execute(&mut *tx)
        .await
        .at(OP, &id)?;
        sqlx::query(
            "INSERT INTO grant_options (person, target, capture_max_bytes, agent_forward, record_tunnel_bytes, \
             read_only, deny_statements, deny_tables, capture_rows) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (person, target) DO UPDATE SET \
             capture_max_bytes = excluded.capture_max_bytes, agent_forward = excluded.agent_forward, \
             record_tunnel_bytes = excluded.record_tunnel_bytes, read_only = excluded.read_only, \
             deny_statements = excluded.deny_statements, deny_tables = excluded.deny_tables, \
             capture_rows = excluded.capture_rows",
        )
        .bind(person)
        .bind(target)
        .bind(policy.capture_content.map(|v| v as i64))
        .bind(policy.agent_forward)
        .bind(policy.record_tunnel_bytes)
        .bind(policy.read_only)
        .bind(policy.deny_statements.join("\n"))
        .bind(policy.deny_tables.join("\n"))
        .bind(policy.capture_rows.map(i64::from))
        .execute(&mut *tx)
        .await
        .at(OP, &id)?;
        tx.commit().await.at(OP, &id)
    }

    pub(crate) async fn grant_policy(
        &self,
        person: &str,
        target: &str,
    ) -> Result<Option<GrantPolicy>, StoreError> {
        const OP: &str = "read grant";
        let id = format!("{person}@{target}");
        let row = sqlx::query(
            "SELECT g.*, o.capture_max_bytes, coalesce(o.agent_forward, false) AS agent_forward, \
             coalesce(o.record_tunnel_bytes, false) AS record_tunnel_bytes, \
             coalesce(o.read_only, false) AS read_only, \
             coalesce(o.deny_statements, '') AS deny_statements, \
             coalesce(o.deny_tables, '') AS deny_tables, o.capture_rows FROM grants g \
             LEFT JOIN grant_options o ON o.person = g.person AND o.target = g.target \
             WHERE g.person = $1 AND g.target = $2",
        )
        .bind(person)
        .bind(target)
        .fetch_optional(&self.pool)
        .await
        .at(OP, &id)?;
        row.as_ref().map(decode::grant_policy).transpose().at(OP, &id)
    }

    pub(crate) async fn revoke(&self, person: &str, target: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM grants WHERE person = $1 AND target = $2")
            .bind(person)
            .bind(target)
            .execute(&self.pool)
            .await
            .at("revoke", format!("{person}@{target}"))?;
        Ok(r.rows_affected() > 0)
    }

    pub(crate) async fn is_granted(&self, person: &str, target: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM grants WHERE person = $1 AND target = $2")
            .bind(person)
            .bind(target)
            .fetch_optional(&self.pool)
            .await
            .at("read grant", format!("{person}@{target}"))?;
        Ok(row.is_some())
    }

    pub(crate) async fn granted_targets(&self, person: &str) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT target FROM grants WHERE person = $1 ORDER BY target")
            .bind(person)
            .fetch_all(&self.pool)
            .await
            .at("list granted targets", person)
    }
}
