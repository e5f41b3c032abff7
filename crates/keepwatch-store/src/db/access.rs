//! Who may go where: people, targets and grants.

use keepwatch_core::{GrantPolicy, Role};
use sqlx::Row;

use super::*;

impl Store {
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
            "SELECT p.name, p.role, p.password_hash, p.created_at_us, s.disabled FROM people p \
             LEFT JOIN person_state s ON s.name = p.name WHERE p.name = ?",
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
            "SELECT p.name, p.role, p.password_hash, p.created_at_us, s.disabled FROM people p \
             LEFT JOIN person_state s ON s.name = p.name ORDER BY p.name",
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

    /// Disables (or enables again) a person. Returns false when there is no such person.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn set_person_disabled(
        &self,
        name: &str,
        disabled: bool,
    ) -> Result<bool, StoreError> {
        if self.person(name).await?.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO person_state (name, disabled) VALUES (?, ?) \
             ON CONFLICT (name) DO UPDATE SET disabled = excluded.disabled",
        )
        .bind(name)
        .bind(disabled)
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    /// Changes a person's role. Returns false when there is no such person.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn set_person_role(&self, name: &str, role: Role) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE people SET role = ? WHERE name = ?")
            .bind(role.as_str())
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Removes a person, their keys and grants (their sessions and the audit trail stay).
    /// Returns false when there is no such person.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn remove_person(&self, name: &str) -> Result<bool, StoreError> {
        let r =
            sqlx::query("DELETE FROM people WHERE name = ?").bind(name).execute(&self.pool).await?;
        Ok(r.rows_affected() == 1)
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

    /// Pins the host key of a trust-on-first-use target and, in the same step, replaces its
    /// secret with `new_secret` (sealed for the row with the key pinned), writing `audit`
    /// with both. Only if no key is pinned yet and the secret is still `old_secret`: a row
    /// changed meanwhile is left alone and `false` returned (nothing audited).
    ///
    /// # Errors
    /// Database failures only.
    pub async fn pin_host_key(
        &self,
        target: &str,
        key: &str,
        old_secret: &[u8],
        new_secret: &[u8],
        audit: NewAudit,
    ) -> Result<bool, StoreError> {
        let (target, key) = (target.to_owned(), key.to_owned());
        let (old, new) = (old_secret.to_vec(), new_secret.to_vec());
        let done = self
            .audited_if(audit, move |conn| {
                Box::pin(async move {
                    let r = sqlx::query(
                        "UPDATE targets SET host_key = ?, secret = ? \
                         WHERE name = ? AND host_key IS NULL AND secret = ?",
                    )
                    .bind(&key)
                    .bind(&new)
                    .bind(&target)
                    .bind(&old)
                    .execute(&mut *conn)
                    .await?;
                    Ok((r.rows_affected() == 1).then_some(()))
                })
            })
            .await?;
        Ok(done.is_some())
    }

    /// Replaces a target's secret with `new_secret`, only if it is still `old_secret`,
    /// writing `audit` in the same step; `false` (nothing audited) when it changed meanwhile.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn reseal_secret(
        &self,
        target: &str,
        old_secret: &[u8],
        new_secret: &[u8],
        audit: NewAudit,
    ) -> Result<bool, StoreError> {
        let target = target.to_owned();
        let (old, new) = (old_secret.to_vec(), new_secret.to_vec());
        let done = self
            .audited_if(audit, move |conn| {
                Box::pin(async move {
                    let r =
                        sqlx::query("UPDATE targets SET secret = ? WHERE name = ? AND secret = ?")
                            .bind(&new)
                            .bind(&target)
                            .bind(&old)
                            .execute(&mut *conn)
                            .await?;
                    Ok((r.rows_affected() == 1).then_some(()))
                })
            })
            .await?;
        Ok(done.is_some())
    }

    /// Seals every secret sealed before targets were bound to their rows again, bound to
    /// its row as it is now, each with a `target_secret_resealed` audit event by `actor`
    /// naming what it is now bound to. Run once at gateway start (`keepwatch run`).
    ///
    /// # Errors
    /// Database failures only; a secret that does not open is reported, not fatal.
    pub async fn reseal_legacy_secrets(
        &self,
        vault: &crate::Vault,
        actor: &str,
    ) -> Result<Vec<Resealed>, StoreError> {
        let mut out = Vec::new();
        for t in self.targets().await? {
            let old = t.secret.ciphertext();
            if !crate::Vault::is_legacy(old) {
                continue;
            }
            let plain = match vault.open_legacy(&t.name, old) {
                Ok(p) => p,
                Err(e) => {
                    out.push(Resealed::Unreadable {
                        target: t.name.clone(),
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            let new = vault
                .seal(&t.binding(), plain.expose())
                .map_err(|e| StoreError::Invalid { what: e.to_string() })?;
            let audit = NewAudit {
                actor: actor.to_owned(),
                action: keepwatch_core::AuditAction::TargetSecretResealed,
                session_id: None,
                client_addr: None,
                detail: format!(
                    "target {}: secret sealed before targets were bound to their rows, now bound to {}",
                    t.name,
                    t.binding()
                ),
            };
            if self.reseal_secret(&t.name, old, &new, audit).await? {
                out.push(Resealed::Resealed { target: t.name.clone() });
            }
        }
        Ok(out)
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
        let mut tx = self.pool.begin().await?;
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
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO grant_options (person, target, capture_max_bytes, agent_forward, record_tunnel_bytes) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (person, target) DO UPDATE SET \
             capture_max_bytes = excluded.capture_max_bytes, agent_forward = excluded.agent_forward, \
             record_tunnel_bytes = excluded.record_tunnel_bytes",
        )
        .bind(person)
        .bind(target)
        .bind(policy.capture_content.map(|v| v as i64))
        .bind(policy.agent_forward)
        .bind(policy.record_tunnel_bytes)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
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
        let row = sqlx::query(
            "SELECT g.*, o.capture_max_bytes, coalesce(o.agent_forward, 0) AS agent_forward, \
             coalesce(o.record_tunnel_bytes, 0) AS record_tunnel_bytes FROM grants g \
             LEFT JOIN grant_options o ON o.person = g.person AND o.target = g.target \
             WHERE g.person = ? AND g.target = ?",
        )
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
            agent_forward: r.get("agent_forward"),
            record_tunnel_bytes: r.get("record_tunnel_bytes"),
            capture_content: r.get::<Option<i64>, _>("capture_max_bytes").map(|v| v as u64),
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
}
