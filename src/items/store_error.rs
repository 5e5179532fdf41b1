//! Why an item store could not do what was asked: one error for both stores, so routes map it
//! to a status once.

/// Why the store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed: the file cannot be opened, the disk is full, the lock timed out, ...
    #[error("item store: {0}")]
    Sqlite(String),
    /// PostgreSQL refused a statement: a constraint, a permission, a schema it does not have.
    #[error("item store: {0}")]
    Postgres(String),
    /// The database cannot be reached right now (connection refused or lost, no answer in
    /// time); the same request may succeed later. Routes answer 503.
    #[error("item store unavailable: {0}")]
    Unavailable(String),
    /// The blocking task running the query was cancelled or panicked.
    #[error("item store task failed: {0}")]
    Task(String),
    /// The database holds something this build cannot read (a bad row, a newer schema).
    #[error("item store holds data this build cannot read: {0}")]
    Corrupt(String),
}
