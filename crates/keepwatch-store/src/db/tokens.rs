//! API tokens: a name, a role, the person a token acts for and the SHA-256 of the token
//! (the token itself is shown once and never stored).

use keepwatch_core::{PersonName, Role};
use sqlx::Row;

use super::*;

/// A token about to be stored.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub name: &'a str,
    pub role: Role,
    /// Required for the `user` role: a user token sees only this person's sessions.
    pub person: Option<&'a PersonName>,
    pub sha256_hex: &'a str,
}

/// Every column of a token, with its person (a macro so queries stay `concat!`ed literals).
macro_rules! token_select {
    () => {
        "SELECT t.*, p.person FROM api_tokens t LEFT JOIN token_people p ON p.token = t.name"
    };
}

impl Store {
    /// Stores a token and its audit event `audit`, both or neither.
    ///
    /// # Errors
    /// `Invalid` for a `user` token without a person; `NotFound` when the person does not
    /// exist; `Exists` when a token of that name exists; database failures.
    pub async fn add_token(&self, t: &NewToken<'_>, audit: NewAudit) -> Result<(), StoreError> {
        if t.role == Role::User && t.person.is_none() {
            return Err(StoreError::Invalid {
                what: format!("token {}: a user token must name the person it acts for", t.name),
            });
        }
        let (name, role, sha) = (t.name.to_owned(), t.role, t.sha256_hex.to_owned());
        let person = t.person.cloned();
        self.audited(audit, move |conn| {
            Box::pin(async move {
                if let Some(p) = &person {
                    let found = sqlx::query("SELECT 1 FROM people WHERE name = ?")
                        .bind(p.as_str())
                        .fetch_optional(&mut *conn)
                        .await?;
                    if found.is_none() {
                        return Err(StoreError::NotFound { kind: "person", name: p.to_string() });
                    }
                }
                let r = sqlx::query(
                    "INSERT INTO api_tokens (name, role, token_sha256, created_at_us) VALUES (?, ?, ?, ?)",
                )
                .bind(&name)
                .bind(role.as_str())
                .bind(&sha)
                .bind(now_us())
                .execute(&mut *conn)
                .await;
                match r {
                    Err(e) if unique_violation(&e) => {
                        return Err(StoreError::Exists { kind: "token", name });
                    }
                    r => r?,
                };
                // A stale row of an earlier token of the same name (removed by hand) must not
                // lend this one its person.
                sqlx::query("DELETE FROM token_people WHERE token = ?")
                    .bind(&name)
                    .execute(&mut *conn)
                    .await?;
                if let Some(p) = &person {
                    sqlx::query("INSERT INTO token_people (token, person) VALUES (?, ?)")
                        .bind(&name)
                        .bind(p.as_str())
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        .await
    }

    /// Replaces the token of `name` (the CLI's local credential at each start) and writes
    /// its audit event, both or neither. The token acts for no person.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn set_token(
        &self,
        name: &str,
        role: Role,
        sha256_hex: &str,
        audit: NewAudit,
    ) -> Result<(), StoreError> {
        let (name, sha256_hex) = (name.to_owned(), sha256_hex.to_owned());
        self.audited(audit, move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO api_tokens (name, role, token_sha256, created_at_us) VALUES (?, ?, ?, ?) \
                     ON CONFLICT (name) DO UPDATE SET role = excluded.role, token_sha256 = excluded.token_sha256",
                )
                .bind(&name)
                .bind(role.as_str())
                .bind(&sha256_hex)
                .bind(now_us())
                .execute(&mut *conn)
                .await?;
                sqlx::query("DELETE FROM token_people WHERE token = ?")
                    .bind(&name)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    /// The token whose SHA-256 is `sha256_hex`, noting its use.
    ///
    /// # Errors
    /// Database failures, or a stored role or person that does not parse.
    pub async fn token_by_hash(&self, sha256_hex: &str) -> Result<Option<TokenRow>, StoreError> {
        let used = sqlx::query(
            "UPDATE api_tokens SET last_used_at_us = ? WHERE token_sha256 = ? RETURNING name",
        )
        .bind(now_us())
        .bind(sha256_hex)
        .fetch_optional(&self.pool)
        .await?;
        let Some(used) = used else { return Ok(None) };
        let name: String = used.get(0);
        let row = sqlx::query(concat!(token_select!(), " WHERE t.name = ?"))
            .bind(&name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_row).transpose()
    }

    /// # Errors
    /// Database failures, or a stored role or person that does not parse.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let rows =
            sqlx::query(concat!(token_select!(), " ORDER BY t.name")).fetch_all(&self.pool).await?;
        rows.iter().map(token_row).collect()
    }

    /// Removes a token and writes its audit event `audit`, both or neither.
    ///
    /// # Errors
    /// `NotFound` when there is no such token (nothing is audited then).
    pub async fn remove_token(&self, name: &str, audit: NewAudit) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.audited(audit, move |conn| {
            Box::pin(async move {
                let r = sqlx::query("DELETE FROM api_tokens WHERE name = ?")
                    .bind(&name)
                    .execute(&mut *conn)
                    .await?;
                if r.rows_affected() == 0 {
                    return Err(StoreError::NotFound { kind: "token", name });
                }
                Ok(())
            })
        })
        .await
    }
}

fn token_row(r: &sqlx::sqlite::SqliteRow) -> Result<TokenRow, StoreError> {
    let role: String = r.get("role");
    Ok(TokenRow {
        name: r.get("name"),
        role: role.parse().map_err(|e| corrupt("api_tokens.role", e))?,
        person: r
            .get::<Option<String>, _>("person")
            .map(|p| p.parse())
            .transpose()
            .map_err(|e| corrupt("token_people.person", e))?,
        created_at_us: r.get("created_at_us"),
        last_used_at_us: r.get("last_used_at_us"),
    })
}
