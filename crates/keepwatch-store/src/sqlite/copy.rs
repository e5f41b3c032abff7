//! Reading every row of an SQLite store for `keepwatch migrate` (`crate::copy`).

use futures::TryStreamExt;
use futures::stream::BoxStream;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::Sqlite;
use crate::StoreError;
use crate::copy::{Kind, TABLES, Table, Value};
use crate::error::At;

impl Sqlite {
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

    /// The rows of `t` in its order, as values.
    pub(crate) fn rows_of(
        &self,
        t: &'static Table,
    ) -> BoxStream<'_, Result<Vec<Value>, StoreError>> {
        let columns: Vec<String> = t
            .columns
            .iter()
            .map(|(c, _)| match (t.name, *c) {
                // SQLite's rowid is the order the keys were added in.
                ("person_keys", "id") => "rowid AS id".to_owned(),
                ("output_blocks", "text") => "body AS text".to_owned(),
                _ => (*c).to_owned(),
            })
            .collect();
        let sql = format!("SELECT {} FROM {} ORDER BY {}", columns.join(", "), t.name, t.order_by);
        Box::pin(
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch(&self.pool)
                .map_err(move |e| crate::error::from_sqlx(e, "read rows of", t.name.to_owned()))
                .and_then(move |r| async move { values(&r, t) }),
        )
    }
}

fn values(r: &SqliteRow, t: &Table) -> Result<Vec<Value>, StoreError> {
    t.columns
        .iter()
        .enumerate()
        .map(|(i, (c, kind))| {
            let v = match kind {
                Kind::Int => r.try_get(i).map(Value::Int),
                Kind::Text => r.try_get(i).map(Value::Text),
                Kind::Bytes => r.try_get(i).map(Value::Bytes),
                Kind::Flag => r.try_get(i).map(Value::Flag),
                Kind::PackedText => {
                    let body: Vec<u8> = r.try_get(i).at("read rows of", t.name)?;
                    let text = crate::decode::unpack_text(&body).at("read rows of", t.name)?;
                    Ok(Value::Text(Some(text)))
                }
            };
            v.at("read rows of", format!("{}.{c}", t.name))
        })
        .collect()
}
