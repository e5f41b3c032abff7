//! API tokens: a name, a role and the SHA-256 of the token (the token is shown once).

use keepwatch_core::Role;
use sqlx::Row;

use super::*;

impl Store {
    /// # Errors
    /// `Exists` when a token of that name exists; database failures.
    pub async fn add_token(
        &self,
        name: &str,
        role: Role,
        sha256_hex: &str,
    ) -> Result<(), StoreError> {
        let r = sqlx::query(
            "INSERT INTO api_tokens (name, role, token_sha256, created_at_us) VALUES (?, ?, ?, ?)",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(sha256_hex)
        .bind(now_us())
        .execute(&self.pool)
        .await;
        match r {
            Err(e) if unique_violation(&e) => {
                Err(StoreError::Exists { kind: "token", name: name.to_owned() })
            }
            r => Ok(r.map(|_| ())?),
        }
    }

    /// Replaces the token of `name` (used for the CLI's local credential at each start).
    ///
    /// # Errors
    /// Database failures only.
    pub async fn set_token(
        &self,
        name: &str,
        role: Role,
        sha256_hex: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (name, role, token_sha256, created_at_us) VALUES (?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET role = excluded.role, token_sha256 = excluded.token_sha256",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(sha256_hex)
        .bind(now_us())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The token whose SHA-256 is `sha256_hex`, noting its use.
    ///
    /// # Errors
    /// Database failures, or a stored role that does not parse.
    pub async fn token_by_hash(&self, sha256_hex: &str) -> Result<Option<TokenRow>, StoreError> {
        let row = sqlx::query(
            "UPDATE api_tokens SET last_used_at_us = ? WHERE token_sha256 = ? RETURNING *",
        )
        .bind(now_us())
        .bind(sha256_hex)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(token_row).transpose()
    }

    /// # Errors
    /// Database failures, or a stored role that does not parse.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM api_tokens ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(token_row).collect()
    }

    /// # Errors
    /// `NotFound` when there is no such token.
    pub async fn remove_token(&self, name: &str) -> Result<(), StoreError> {
        let r = sqlx::query("DELETE FROM api_tokens WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound { kind: "token", name: name.to_owned() });
        }
        Ok(())
    }
}

fn token_row(r: &sqlx::sqlite::SqliteRow) -> Result<TokenRow, StoreError> {
    let role: String = r.get("role");
    Ok(TokenRow {
        name: r.get("name"),
        role: role.parse().map_err(|e| corrupt("api_tokens.role", e))?,
        created_at_us: r.get("created_at_us"),
        last_used_at_us: r.get("last_used_at_us"),
    })
}
