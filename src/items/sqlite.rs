//! The SQLite item store: the embedded default, one file (or memory) in this process.
//!
//! One connection behind a mutex, always used from `spawn_blocking`, so a slow disk never stalls
//! a runtime worker; SQLite serializes writers anyway, so a single connection costs little. This
//! module neither validates (see [`model`](super::model)) nor normalizes (the
//! [`ItemStore`](super::ItemStore) in front of it does) nor caches (the routes' cache filters
//! do): it stores what it is given and never panics on any input.
//!
//! Durability: a file database runs in WAL mode with `synchronous=FULL`, so a write is on disk
//! before its method returns and survives a killed process or a power loss. Ids come from
//! `AUTOINCREMENT`, so a deleted item's id is never handed out again and a cached `/items/{id}`
//! can never come back as a different item.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};

use super::model::{Item, ItemPatch, NewItem};
use super::query::like_pattern;
use super::query::{ItemPage, ListQuery};
use super::store_error::StoreError;

/// The path [`ItemStore::open`](super::ItemStore::open) takes as "in memory, gone when the store is dropped".
pub const MEMORY_PATH: &str = ":memory:";

/// How long a write waits for another process's lock on the same file before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema migrations: entry `n` takes `PRAGMA user_version` from `n` to `n + 1`. Append only;
/// never edit an entry that has shipped.
const MIGRATIONS: &[&str] = &[r"
    CREATE TABLE items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        price REAL NOT NULL,
        tags TEXT NOT NULL, -- JSON array of strings
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX items_name ON items (name);
"];

// SQLite evaluates 'now' once per statement, so created_at and updated_at of a new row agree.
const INSERT: &str = r"
    INSERT INTO items (name, description, price, tags, created_at, updated_at)
    VALUES (?1, ?2, ?3, ?4,
            strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    RETURNING id, name, description, price, tags, created_at, updated_at";
const SELECT_ONE: &str = r"
    SELECT id, name, description, price, tags, created_at, updated_at FROM items WHERE id = ?1";
const REPLACE: &str = r"
    UPDATE items
    SET name = ?2, description = ?3, price = ?4, tags = ?5,
        updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = ?1
    RETURNING id, name, description, price, tags, created_at, updated_at";
// A NULL parameter is a field the patch leaves alone.
const PATCH: &str = r"
    UPDATE items
    SET name = coalesce(?2, name), description = coalesce(?3, description),
        price = coalesce(?4, price), tags = coalesce(?5, tags),
        updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = ?1
    RETURNING id, name, description, price, tags, created_at, updated_at";
const DELETE: &str = "DELETE FROM items WHERE id = ?1";

/// The filter shared by the page and its total: ?1 a LIKE pattern, ?2 a tag, either NULL.
macro_rules! list_filter {
    () => {
        r"FROM items
          WHERE (?1 IS NULL OR name LIKE ?1 ESCAPE '\')
            AND (?2 IS NULL OR EXISTS (SELECT 1 FROM json_each(items.tags) WHERE value = ?2))"
    };
}
const LIST_COUNT: &str = concat!("SELECT count(*) ", list_filter!());
const LIST_PAGE: &str = concat!(
    "SELECT id, name, description, price, tags, created_at, updated_at ",
    list_filter!(),
    " ORDER BY id LIMIT ?3 OFFSET ?4"
);

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        StoreError::Sqlite(err.to_string())
    }
}

/// Items in SQLite; cheap to clone, every clone shares one connection.
#[derive(Debug, Clone)]
pub(super) struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, or an in-memory one for
    /// [`MEMORY_PATH`], and brings its schema up to date.
    ///
    /// Blocks on disk I/O: call it at startup, before serving.
    pub(super) fn open(path: &str) -> Result<Self, StoreError> {
        let opened = if path == MEMORY_PATH {
            Connection::open_in_memory()
        } else {
            Connection::open(path)
        };
        let mut connection =
            opened.map_err(|err| StoreError::Sqlite(format!("cannot open {path:?}: {err}")))?;
        if path != MEMORY_PATH {
            configure_file(&connection, path)?;
        }
        migrate(&mut connection)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Stores a new item and returns it with its id and timestamps.
    pub(super) async fn create(&self, item: NewItem) -> Result<Item, StoreError> {
        self.write(move |tx| {
            let tags = tags_json(&item.tags);
            let params = params![item.name, item.description, item.price, tags];
            tx.prepare_cached(INSERT)?
                .query_row(params, |row| Ok(item_from_row(row)))?
        })
        .await
    }

    /// The item with this id, if there is one.
    pub(super) async fn get(&self, id: i64) -> Result<Option<Item>, StoreError> {
        self.with_connection(move |connection| {
            let mut statement = connection.prepare_cached(SELECT_ONE)?;
            let row = statement.query_row([id], |row| Ok(item_from_row(row)));
            row.optional()?.transpose()
        })
        .await
    }

    /// One page of the items matching `query`, by ascending id, with the total match count.
    ///
    /// SQLite's `LIKE` ignores case for ASCII letters only, which is the documented behaviour.
    pub(super) async fn list(&self, query: ListQuery) -> Result<ItemPage, StoreError> {
        self.with_connection(move |connection| {
            // One read transaction, so the total and the page describe the same snapshot.
            let tx = connection.transaction()?;
            let pattern = query.q.as_deref().map(like_pattern);
            let tag = query.tag.as_deref();
            let total: i64 = tx
                .prepare_cached(LIST_COUNT)?
                .query_row(params![pattern, tag], |row| row.get(0))?;
            // Out-of-range values cannot come from ListQuery::from_pairs; clamp rather than fail.
            let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
            let mut statement = tx.prepare_cached(LIST_PAGE)?;
            let mut rows = statement.query(params![pattern, tag, query.limit, offset])?;
            let mut items = Vec::new();
            while let Some(row) = rows.next()? {
                items.push(item_from_row(row)?);
            }
            Ok(ItemPage {
                items,
                total: u64::try_from(total).unwrap_or_default(),
                limit: query.limit,
                offset: query.offset,
            })
        })
        .await
    }

    /// Replaces every field of an item, keeping `created_at`; `None` when there is no such id.
    pub(super) async fn replace(&self, id: i64, item: NewItem) -> Result<Option<Item>, StoreError> {
        self.write(move |tx| {
            let tags = tags_json(&item.tags);
            let params = params![id, item.name, item.description, item.price, tags];
            let row = tx
                .prepare_cached(REPLACE)?
                .query_row(params, |row| Ok(item_from_row(row)));
            row.optional()?.transpose()
        })
        .await
    }

    /// Changes the fields the patch sets; `None` when there is no such id.
    pub(super) async fn patch(
        &self,
        id: i64,
        patch: ItemPatch,
    ) -> Result<Option<Item>, StoreError> {
        self.write(move |tx| {
            let tags = patch.tags.as_deref().map(tags_json);
            let params = params![id, patch.name, patch.description, patch.price, tags];
            let row = tx
                .prepare_cached(PATCH)?
                .query_row(params, |row| Ok(item_from_row(row)));
            row.optional()?.transpose()
        })
        .await
    }

    /// Deletes an item; `false` when there was no such id.
    pub(super) async fn delete(&self, id: i64) -> Result<bool, StoreError> {
        self.write(move |tx| Ok(tx.prepare_cached(DELETE)?.execute([id])? > 0))
            .await
    }

    /// Runs `job` in one write transaction, committed only if `job` succeeds.
    ///
    /// An explicit transaction, rather than autocommit, so a failing commit (disk full, I/O
    /// error) is reported instead of lost when a `RETURNING` statement is reset. `IMMEDIATE`
    /// takes the write lock up front, so another process cannot make it fail half way.
    async fn write<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.with_connection(move |connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let result = job(&tx)?;
            tx.commit()?;
            Ok(result)
        })
        .await
    }

    /// Runs `job` with the connection on tokio's blocking pool.
    async fn with_connection<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        let task = tokio::task::spawn_blocking(move || {
            // A panic while the lock was held left no transaction open (dropping a Transaction
            // rolls it back), so the connection is still sound: carry on with it.
            let mut connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            job(&mut connection)
        });
        task.await
            .map_err(|err| StoreError::Task(err.to_string()))?
    }
}

/// Runs `step` again while SQLite answers busy, until [`BUSY_TIMEOUT`]. Needed while several
/// processes set up one new file at once: switching it to WAL, and reading a file another
/// process is switching, answer busy without waiting on the busy handler.
fn retry_busy<T>(mut step: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match step() {
            Err(err)
                if matches!(
                    err.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Durability and locking settings for a file database.
fn configure_file(connection: &Connection, path: &str) -> Result<(), StoreError> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = retry_busy(|| {
        connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
    })?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Still durable with synchronous=FULL; readers just wait for writers.
        log::warn!("item store {path:?}: journal_mode is {mode:?}, WAL is not available here");
    }
    connection.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

/// Applies the migrations the database has not seen yet, all in one transaction.
fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    retry_busy(|| migrate_once(connection))?.map_err(StoreError::Corrupt)
}

/// One attempt of [`migrate`]; the inner error says why the schema cannot be used.
fn migrate_once(connection: &mut Connection) -> rusqlite::Result<Result<(), String>> {
    // IMMEDIATE, so two processes opening a new file cannot both create the schema.
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let known = MIGRATIONS.len();
    let Some(applied) = usize::try_from(version)
        .ok()
        .filter(|applied| *applied <= known)
    else {
        return Ok(Err(format!(
            "schema version {version} is not one this build knows (0 to {known})"
        )));
    };
    for migration in &MIGRATIONS[applied..] {
        tx.execute_batch(migration)?;
    }
    tx.pragma_update(None, "user_version", known)?;
    tx.commit()?;
    Ok(Ok(()))
}

/// Reads a row selected as `id, name, description, price, tags, created_at, updated_at`.
fn item_from_row(row: &Row<'_>) -> Result<Item, StoreError> {
    let wrong_type = |err: rusqlite::Error| StoreError::Corrupt(format!("items row: {err}"));
    let id: i64 = row.get(0).map_err(wrong_type)?;
    let tags: String = row.get(4).map_err(wrong_type)?;
    let tags = serde_json::from_str(&tags).map_err(|err| {
        StoreError::Corrupt(format!(
            "item {id}: tags are not a JSON array of strings: {err}"
        ))
    })?;
    Ok(Item {
        id,
        name: row.get(1).map_err(wrong_type)?,
        description: row.get(2).map_err(wrong_type)?,
        price: row.get(3).map_err(wrong_type)?,
        tags,
        created_at: row.get(5).map_err(wrong_type)?,
        updated_at: row.get(6).map_err(wrong_type)?,
    })
}

fn tags_json(tags: &[String]) -> String {
    serde_json::to_string(tags).expect("a list of strings always serializes to JSON")
}

// The behaviour both backends share is specified in tests/api/item_store_suite.rs; these tests
// cover what only SQLite has: a file, its journal mode, its schema version and its lock.
#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> SqliteStore {
        SqliteStore::open(MEMORY_PATH).expect("in-memory store")
    }

    fn new_item(name: &str) -> NewItem {
        NewItem {
            name: name.into(),
            description: format!("about {name}"),
            price: 2.5,
            tags: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_file_store_keeps_items_and_ids_across_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("items.sqlite3");
        let path = path.to_str().expect("temp path is UTF-8");
        let store = SqliteStore::open(path).expect("open");
        let mut created = Vec::new();
        for name in ["a", "b", "c"] {
            created.push(store.create(new_item(name)).await.expect("create"));
        }
        store.delete(created[2].id).await.expect("delete");
        drop(store);

        let reopened = SqliteStore::open(path).expect("reopen");
        let page = reopened.list(ListQuery::default()).await.expect("list");
        assert_eq!(page.items, created[..2]);
        let next = reopened.create(new_item("d")).await.expect("create");
        assert_eq!(next.id, created[2].id + 1, "deleted id reused after reopen");
        let connection = reopened.connection.lock().expect("unpoisoned");
        let mode: String = connection
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .expect("journal_mode");
        assert_eq!(mode, "wal");
    }

    #[test]
    fn instances_opening_one_new_file_at_once_all_start() {
        // Three service instances started together on a fresh database file (as a benchmark or
        // a deploy does) must all open it, whoever creates the schema.
        for round in 0..20 {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("items.sqlite3");
            let path = path.to_str().expect("temp path is UTF-8").to_string();
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
            let openers: Vec<_> = (0..4)
                .map(|_| {
                    let (path, barrier) = (path.clone(), std::sync::Arc::clone(&barrier));
                    std::thread::spawn(move || {
                        barrier.wait();
                        SqliteStore::open(&path).map(drop)
                    })
                })
                .collect();
            for opener in openers {
                let opened = opener.join().expect("no panic");
                assert!(opened.is_ok(), "round {round}: {}", opened.unwrap_err());
            }
        }
    }

    #[test]
    fn a_schema_newer_than_this_build_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("items.sqlite3");
        let path = path.to_str().expect("temp path is UTF-8");
        let connection = Connection::open(path).expect("open raw");
        connection
            .pragma_update(None, "user_version", 99)
            .expect("set version");
        drop(connection);
        let err = SqliteStore::open(path).expect_err("newer schema");
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    }

    #[test]
    fn an_unopenable_path_is_an_error_naming_it() {
        let err = SqliteStore::open("/nonexistent-dir/items.sqlite3").expect_err("no such dir");
        assert!(err.to_string().contains("/nonexistent-dir"), "{err}");
    }

    #[tokio::test]
    async fn a_corrupt_tags_column_is_an_error_not_a_panic() {
        let store = store();
        let created = store.create(new_item("pen")).await.expect("create");
        for bad_tags in ["not json", "[1, 2]", r#"{"a": "b"}"#] {
            store
                .connection
                .lock()
                .expect("unpoisoned")
                .execute("UPDATE items SET tags = ?1", [bad_tags])
                .expect("corrupt the row");
            let err = store.get(created.id).await.expect_err("corrupt tags");
            assert!(matches!(err, StoreError::Corrupt(_)), "{bad_tags}: {err}");
            let err = store.list(ListQuery::default()).await.expect_err("corrupt");
            assert!(matches!(err, StoreError::Corrupt(_)), "{bad_tags}: {err}");
        }
    }

    #[tokio::test]
    async fn a_nan_price_is_an_sqlite_error() {
        let nan = NewItem {
            price: f64::NAN,
            ..new_item("pen")
        };
        let err = store().create(nan).await.expect_err("NaN price");
        assert!(matches!(err, StoreError::Sqlite(_)), "{err}");
    }

    #[tokio::test]
    async fn a_poisoned_lock_is_recovered() {
        let store = store();
        let connection = Arc::clone(&store.connection);
        let panicked = std::thread::spawn(move || {
            let _held = connection.lock().expect("first lock");
            panic!("poisoning the item store lock on purpose");
        })
        .join();
        assert!(panicked.is_err());
        assert!(store.connection.is_poisoned());
        let created = store.create(new_item("pen")).await.expect("create");
        assert_eq!(store.get(created.id).await, Ok(Some(created)));
    }
}
