//! Storage errors, classified for the callers: unreachable database
//! (retryable), a statement cancelled by the sessions' statement timeout
//! (retryable), versus everything else (a bug or a broken database).

use crate::domain::PlanError;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database cannot be reached or went away mid-call; retrying later
    /// is safe.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// PostgreSQL cancelled the statement (SQLSTATE 57014): it ran past
    /// the sessions' `statement_timeout` (CLVD_DB_STATEMENT_TIMEOUT_SECONDS;
    /// clvd never cancels a statement otherwise). Nothing of it was
    /// committed; retrying later, or with a higher limit, may succeed.
    #[error("statement cancelled past the statement timeout: {0}")]
    TimedOut(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A stored or summed total (named by its column) that the API's Money
    /// cannot carry: OUT_OF_RANGE for the call that read it.
    #[error("{column}: the total exceeds what Money can express")]
    TotalOutOfRange { column: String },
}

/// A column read as NULL where this service always stores a value (on such
/// a row): an internal error, naming the column.
pub(super) fn required<T>(column: &str, value: Option<T>) -> Result<T, StorageError> {
    value.ok_or_else(|| StorageError::corrupt(column, "NULL where a value is always stored"))
}

/// Whether the error means the database cannot be reached right now.
fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_) => true,
        // Class 08 (connection exception), 57P01-57P03 (admin shutdown,
        // crash shutdown, cannot connect now).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

impl StorageError {
    /// A stored value this service never writes (a broken database, or
    /// rows written by something else): an internal error, naming the
    /// column. The one place storage builds a decode error of its own.
    pub(super) fn corrupt(column: &str, reason: impl std::fmt::Display) -> Self {
        StorageError::Database(sqlx::Error::Decode(
            format!("stored {column}: {reason}").into(),
        ))
    }

    /// Deadlocks and serialization failures: the transaction was rolled
    /// back and may simply be run again.
    pub fn is_retryable_conflict(&self) -> bool {
        matches!(self, StorageError::Database(sqlx::Error::Database(e))
            if matches!(e.code().as_deref(), Some("40P01") | Some("40001")))
    }

    /// A unique violation (23505). Ingest's first attempt at a batch plans
    /// its keys as new; the `transactions` primary key is the only unique
    /// key its write can violate (every other insert there is an upsert or
    /// has no unique key), so this means a key of the batch is stored.
    pub(super) fn is_unique_violation(&self) -> bool {
        matches!(self, StorageError::Database(sqlx::Error::Database(e))
            if e.code().as_deref() == Some("23505"))
    }

    /// True when retrying later may succeed because the database is down
    /// or restarting, rather than something being wrong with it.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StorageError::Unavailable(_) => true,
            StorageError::Migrate(
                sqlx::migrate::MigrateError::Execute(e)
                | sqlx::migrate::MigrateError::ExecuteMigration(e, _),
            ) => unreachable(e),
            _ => false,
        }
    }
}

/// Whether PostgreSQL cancelled the statement (57014, query_canceled):
/// the statement timeout, as clvd sends no cancel requests.
fn cancelled(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("57014"))
}

impl From<sqlx::Error> for StorageError {
    fn from(e: sqlx::Error) -> Self {
        if unreachable(&e) {
            StorageError::Unavailable(e)
        } else if cancelled(&e) {
            StorageError::TimedOut(e)
        } else {
            StorageError::Database(e)
        }
    }
}

/// Recording a batch failed: the batch itself is wrong, or storage is.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Rejected(#[from] PlanError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sqlx::Error> for RecordError {
    fn from(e: sqlx::Error) -> Self {
        RecordError::Storage(e.into())
    }
}
