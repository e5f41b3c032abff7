//! Writing a copied store into PostgreSQL for `keepwatch migrate` (`crate::copy`), and the
//! check that the target is empty first.

use std::str::FromStr;

use futures::TryStreamExt;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use super::Postgres;
use crate::StoreError;
use crate::copy::{CopyProgress, CopyReport, NOT_COPIED, TABLES, Table, Value};
use crate::error::At;
use crate::sqlite::Sqlite;

/// Bind parameters in one statement stay well under PostgreSQL's 65535.
const MAX_PARAMS: usize = 30_000;

/// The tables derived from the copied rows and not copied: rebuilt after the copy.
const DERIVED: [&str; 2] = ["command_spans", "output_spans"];

/// Whether the database at `url` holds no table but keepwatch's, and none of those a row.
pub(crate) async fn is_empty(url: &str) -> Result<bool, StoreError> {
    const OP: &str = "inspect";
    let what = super::describe(url);
    let opts = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Invalid { what: format!("not a PostgreSQL URL: {e}") })?;
    let mut conn = PgConnection::connect_with(&opts).await.at(OP, &what)?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
    )
    .fetch_all(&mut conn)
    .await
    .at(OP, &what)?;
    let mut empty = true;
    for name in &tables {
        if name == "_sqlx_migrations"
            || NOT_COPIED.contains(&name.as_str())
            || DERIVED.contains(&name.as_str())
        {
            continue;
        }
        if !TABLES.iter().any(|t| t.name == name) {
            empty = false;
            break;
        }
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {name})");
        let any: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut conn)
            .await
            .at(OP, &what)?;
        if any {
            empty = false;
            break;
        }
    }
    let _ = conn.close().await;
    Ok(empty)
}

impl Postgres {
    pub(crate) async fn row_counts(&self) -> Result<Vec<(&'static str, u64)>, StoreError> {
        let mut out = Vec::with_capacity(TABLES.len());
        for t in TABLES {
            let sql = format!("SELECT count(*) FROM {}", t.name);
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&self.pool)
                .await
                .at("count rows of", t.name)?;
            out.push((t.name, n.max(0) as u64));
        }
        Ok(out)
    }

    /// Copies every table of `from` in one transaction, then sets the sequences past the
    /// copied ids.
    pub(crate) async fn copy_from(
        &self,
        from: &Sqlite,
        total: u64,
        progress: &mut (dyn FnMut(CopyProgress) + Send),
    ) -> Result<CopyReport, StoreError> {
        const OP: &str = "copy rows into";
        let mut tx = self.pool.begin().await.at(OP, "postgres")?;
        let mut report = CopyReport { tables: Vec::with_capacity(TABLES.len()) };
        let mut done = 0u64;
        for t in TABLES {
            let per_batch = (MAX_PARAMS / t.columns.len()).clamp(1, 1000);
            let mut rows = from.rows_of(t);
            let mut batch: Vec<Vec<Value>> = Vec::with_capacity(per_batch);
            let mut copied = 0u64;
            loop {
                let next = rows.try_next().await?;
                let end = next.is_none();
                if let Some(r) = next {
                    batch.push(r);
                }
                if batch.len() == per_batch || (end && !batch.is_empty()) {
                    insert(&mut tx, t, &batch).await?;
                    copied += batch.len() as u64;
                    done += batch.len() as u64;
                    batch.clear();
                    progress(CopyProgress { table: t.name, rows: done, total });
                }
                if end {
                    break;
                }
            }
            if let Some(col) = t.identity {
                let sql = format!(
                    "SELECT setval(pg_get_serial_sequence('{0}', '{col}'), \
                     (SELECT coalesce(max({col}), 0) + 1 FROM {0}), false)",
                    t.name
                );
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await.at(OP, t.name)?;
            }
            report.tables.push((t.name, copied));
        }
        // Derived, so rebuilt rather than copied: the commands' and output blocks' time spans.
        sqlx::query(
            "INSERT INTO command_spans (span, min_at_us, max_at_us) \
             SELECT id >> 10, min(at_us), max(at_us) FROM commands GROUP BY id >> 10",
        )
        .execute(&mut *tx)
        .await
        .at(OP, "command_spans")?;
        sqlx::query(
            "INSERT INTO output_spans (span, min_at_us, max_at_us) \
             SELECT id >> 10, min(at_us), max(at_us + end_offset_us - start_offset_us) \
             FROM output_blocks GROUP BY id >> 10",
        )
        .execute(&mut *tx)
        .await
        .at(OP, "output_spans")?;
        tx.commit().await.at(OP, "postgres")?;
        Ok(report)
    }
}

/// One multi-row INSERT of `rows` into `t`.
async fn insert(conn: &mut PgConnection, t: &Table, rows: &[Vec<Value>]) -> Result<(), StoreError> {
    let n = t.columns.len();
    let columns: Vec<&str> = t.columns.iter().map(|(c, _)| *c).collect();
    let tuples: Vec<String> = (0..rows.len())
        .map(|r| {
            let params: Vec<String> = (1..=n).map(|c| format!("${}", r * n + c)).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    let sql =
        format!("INSERT INTO {} ({}) VALUES {}", t.name, columns.join(", "), tuples.join(", "));
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for row in rows {
        for v in row {
            q = match v {
                Value::Int(x) => q.bind(*x),
                Value::Text(x) => q.bind(x.clone()),
                Value::Bytes(x) => q.bind(x.clone()),
                Value::Flag(x) => q.bind(*x),
            };
        }
    }
    q.execute(&mut *conn).await.at("copy rows into", t.name)?;
    Ok(())
}
