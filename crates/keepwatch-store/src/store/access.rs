//! Who may go where: people, targets and grants.

use keepwatch_core::{GrantPolicy, Role};

use super::{Store, dispatch};
use crate::StoreError;
use crate::chain::{clean_audit, log_audit};
use crate::rows::*;

impl Store {
    /// # Errors
    /// `Exists` if the name is taken.
    pub async fn add_person(
        &self,
        name: &str,
        role: Role,
        password_hash: Option<&str>,
        ssh_keys: &[String],
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.add_person(name, role, password_hash, ssh_keys).await)
    }

    /// # Errors
    /// Database failures only; an unknown name is `Ok(None)`.
    pub async fn person(&self, name: &str) -> Result<Option<PersonRow>, StoreError> {
        dispatch!(self, b => b.person(name).await)
    }

    /// # Errors
    /// Database failures only.
    pub async fn people(&self) -> Result<Vec<PersonRow>, StoreError> {
        dispatch!(self, b => b.people().await)
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
        dispatch!(self, b => b.set_person_disabled(name, disabled).await)
    }

    /// Changes a person's role. Returns false when there is no such person.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn set_person_role(&self, name: &str, role: Role) -> Result<bool, StoreError> {
        dispatch!(self, b => b.set_person_role(name, role).await)
    }

    /// Removes a person, their keys and grants (their sessions and the audit trail stay).
    /// Returns false when there is no such person.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn remove_person(&self, name: &str) -> Result<bool, StoreError> {
        dispatch!(self, b => b.remove_person(name).await)
    }

    /// Sets a person's password: its argon2id hash (SSH, the console) and its SCRAM-SHA-256
    /// verifier (PostgreSQL's text form, for the PostgreSQL front end) together; false when
    /// there is no such person.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn set_password(
        &self,
        name: &str,
        hash: &str,
        scram_verifier: &str,
    ) -> Result<bool, StoreError> {
        dispatch!(self, b => b.set_password(name, hash, scram_verifier).await)
    }

    /// # Errors
    /// `Exists` if the name is taken.
    pub async fn add_target(&self, t: &NewTarget) -> Result<(), StoreError> {
        dispatch!(self, b => b.add_target(t).await)
    }

    /// # Errors
    /// Database failures only; an unknown name is `Ok(None)`.
    pub async fn target(&self, name: &str) -> Result<Option<TargetRow>, StoreError> {
        dispatch!(self, b => b.target(name).await)
    }

    /// # Errors
    /// Database failures only.
    pub async fn targets(&self) -> Result<Vec<TargetRow>, StoreError> {
        dispatch!(self, b => b.targets().await)
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
        let a = clean_audit(audit);
        let k = self.signer();
        let r =
            dispatch!(self, b => b.pin_host_key(target, key, old_secret, new_secret, &a, k).await);
        log_audit(&a, r.as_ref().copied());
        r
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
        let a = clean_audit(audit);
        let k = self.signer();
        let r = dispatch!(self, b => b.reseal_secret(target, old_secret, new_secret, &a, k).await);
        log_audit(&a, r.as_ref().copied());
        r
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
        self.require_person_and_target("grant", person, target).await?;
        dispatch!(self, b => b.grant(person, target, policy).await)
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
        dispatch!(self, b => b.grant_policy(person, target).await)
    }

    /// Returns whether a grant was removed.
    ///
    /// # Errors
    /// `NotFound` when the person or target does not exist.
    pub async fn revoke(&self, person: &str, target: &str) -> Result<bool, StoreError> {
        self.require_person_and_target("revoke", person, target).await?;
        dispatch!(self, b => b.revoke(person, target).await)
    }

    async fn require_person_and_target(
        &self,
        op: &'static str,
        person: &str,
        target: &str,
    ) -> Result<(), StoreError> {
        if self.person(person).await?.is_none() {
            return Err(StoreError::NotFound { op, kind: "person", id: person.to_owned() });
        }
        if self.target(target).await?.is_none() {
            return Err(StoreError::NotFound { op, kind: "target", id: target.to_owned() });
        }
        Ok(())
    }

    /// # Errors
    /// Database failures only.
    pub async fn is_granted(&self, person: &str, target: &str) -> Result<bool, StoreError> {
        dispatch!(self, b => b.is_granted(person, target).await)
    }

    /// The names of the targets granted to `person`, sorted.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn granted_targets(&self, person: &str) -> Result<Vec<String>, StoreError> {
        dispatch!(self, b => b.granted_targets(person).await)
    }
}
