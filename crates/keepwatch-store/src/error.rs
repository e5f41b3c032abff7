//! `StoreError`: what can go wrong in the store, the same whichever backend holds the data.
//!
//! Every variant says the operation and the id it was about; a driver error is kept as the
//! `source` (never in a variant's type), so nothing above this crate can tell, or needs to
//! tell, SQLite from PostgreSQL. `{:#}` (anyhow) or walking `source()` shows the driver's
//! own words.

use std::fmt;

/// A driver's error, kept as the source without naming its type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing `op` needed does not exist.
    #[error("{op}: {kind} {id:?} not found")]
    NotFound { op: &'static str, kind: &'static str, id: String },
    /// The thing `op` would create exists already.
    #[error("{op}: {kind} {id:?} already exists")]
    Exists { op: &'static str, kind: &'static str, id: String },
    /// `op` collided with another change (a constraint, a concurrent writer); trying again
    /// may succeed.
    #[error("{op}{}: conflicting change", at(id))]
    Conflict {
        op: &'static str,
        id: String,
        #[source]
        source: BoxError,
    },
    /// The database could not do `op` (unreachable, closed, out of space, refused).
    #[error("{op}{}: the database failed", at(id))]
    Unavailable {
        op: &'static str,
        id: String,
        #[source]
        source: BoxError,
    },
    /// A stored value does not parse: the database was edited, or written by something else.
    #[error("{op}{}: stored {what} is invalid: {detail}", at(id))]
    Corrupt { op: &'static str, id: String, what: String, detail: String },
    /// The caller asked for something the store does not allow.
    #[error("{what}")]
    Invalid { what: String },
    #[error("blob store error: {0}")]
    Blob(#[from] object_store::Error),
    #[error("io error on {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// ` ID` after the operation, or nothing for operations on no one thing (a listing).
fn at(id: &str) -> String {
    if id.is_empty() { String::new() } else { format!(" {id}") }
}

impl StoreError {
    /// Whether the error says the database could not be reached or used, rather than
    /// anything about the data: worth retrying later, not worth recording against a row.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// A stored value that does not decode, before it is known which operation read it.
#[derive(Debug)]
pub(crate) struct BadValue {
    pub(crate) what: String,
    pub(crate) detail: String,
}

impl BadValue {
    pub(crate) fn new(what: impl Into<String>, detail: impl ToString) -> Self {
        BadValue { what: what.into(), detail: detail.to_string() }
    }
}

/// Puts the operation and id on a lower error (`.at("read session", id)?`).
pub(crate) trait At<T> {
    fn at(self, op: &'static str, id: impl fmt::Display) -> Result<T, StoreError>;
}

impl<T> At<T> for Result<T, BadValue> {
    fn at(self, op: &'static str, id: impl fmt::Display) -> Result<T, StoreError> {
        self.map_err(|b| StoreError::Corrupt {
            op,
            id: id.to_string(),
            what: b.what,
            detail: b.detail,
        })
    }
}

impl<T> At<T> for Result<T, sqlx::Error> {
    fn at(self, op: &'static str, id: impl fmt::Display) -> Result<T, StoreError> {
        self.map_err(|e| from_sqlx(e, op, id.to_string()))
    }
}

/// Sorts a driver error into the backend-neutral kinds.
pub(crate) fn from_sqlx(e: sqlx::Error, op: &'static str, id: String) -> StoreError {
    use sqlx::Error as E;
    match e {
        E::RowNotFound => StoreError::NotFound { op, kind: "row", id },
        E::ColumnNotFound(c) => {
            StoreError::Corrupt { op, id, what: c, detail: "column missing".into() }
        }
        E::ColumnDecode { index, source } => {
            StoreError::Corrupt { op, id, what: index, detail: source.to_string() }
        }
        E::Decode(source) => {
            StoreError::Corrupt { op, id, what: "value".into(), detail: source.to_string() }
        }
        E::Database(d) if is_conflict(&*d) => StoreError::Conflict { op, id, source: d.into() },
        other => StoreError::Unavailable { op, id, source: Box::new(other) },
    }
}

/// Constraint violations and PostgreSQL's serialisation failures and deadlocks.
fn is_conflict(d: &dyn sqlx::error::DatabaseError) -> bool {
    use sqlx::error::ErrorKind;
    matches!(
        d.kind(),
        ErrorKind::UniqueViolation | ErrorKind::ForeignKeyViolation | ErrorKind::CheckViolation
    ) || matches!(d.code().as_deref(), Some("40001" | "40P01"))
}

/// Whether `e` is a unique violation (the callers that know the kind say `Exists`).
pub(crate) fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_the_operation_and_the_id() {
        let e = StoreError::NotFound { op: "add token ci", kind: "person", id: "ghost".into() };
        assert_eq!(e.to_string(), "add token ci: person \"ghost\" not found");
        let e = StoreError::Unavailable {
            op: "read session",
            id: "0190".into(),
            source: "connection refused".into(),
        };
        assert_eq!(e.to_string(), "read session 0190: the database failed");
        assert_eq!(std::error::Error::source(&e).unwrap().to_string(), "connection refused");
        let e =
            StoreError::Unavailable { op: "list sessions", id: String::new(), source: "x".into() };
        assert_eq!(e.to_string(), "list sessions: the database failed");
    }
}
