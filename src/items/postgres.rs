//! The PostgreSQL item store: the same operations as the SQLite one, for several service
//! instances sharing their items.
//!
//! A deadpool pool of tokio-postgres connections (plain TCP or a Unix socket; no TLS), each
//! statement prepared once per connection. Like the SQLite store, this module neither validates
//! nor normalizes nor caches, and never panics on any input.
//!
//! - Schema: versioned, append-only [`MIGRATIONS`], applied by [`PostgresStore::connect`] in
//!   one transaction under a transaction-scoped advisory lock, so instances starting together
//!   apply each migration once and the others wait, then find nothing to do.
//! - Ids come from an identity column: a sequence never hands out a value twice, so a deleted
//!   item's id is never reused (a failed insert may leave a gap).
//! - Timestamps are `timestamptz` truncated to milliseconds and read back as RFC 3339 UTC text
//!   (`2026-11-25T00:10:00.123Z`), exactly what the SQLite store returns. Tags are `text[]`.
//! - Failures that mean "cannot reach the database" (refused or lost connection, server
//!   shutting down, no answer within [`OPERATION_TIMEOUT`]) are [`StoreError::Unavailable`]; the
//!   routes answer them 503. Others are [`StoreError::Postgres`].
//! - A write runs on a task of its own, so it finishes (or fails) even when the request that
//!   asked for it is dropped, as the SQLite store's blocking task does.

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::{IsolationLevel, NoTls, Row};

use super::model::{Item, ItemPatch, NewItem};
use super::query::like_pattern;
use super::query::{ItemPage, ListQuery};
use super::store_error::StoreError;

/// Most connections one instance opens.
const POOL_SIZE: usize = 8;
/// Budget for dialling the server, when the URL sets no `connect_timeout` of its own.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Budget for one store call, waiting for a connection included. Also bounds how long a write
/// whose request was dropped can still land, which the cache-busting filter's late re-busts
/// (after 1 s and 6 s) rely on.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// `pg_advisory_xact_lock` key serializing migrations: "wrc_item" in ASCII.
const MIGRATION_LOCK: i64 = 0x7772_635f_6974_656d;

/// Schema migrations: entry `n` is version `n + 1`, recorded in `items_schema_migrations`.
/// Append only; never edit an entry that has shipped.
const MIGRATIONS: &[&str] = &[r"
    CREATE TABLE items (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        -- SQLite refuses NaN (it stores it as NULL); so does this store.
        price DOUBLE PRECISION NOT NULL CHECK (price <> 'NaN'),
        tags TEXT[] NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL
    );
"];

const MIGRATIONS_TABLE: &str = r"
    CREATE TABLE IF NOT EXISTS items_schema_migrations (
        version INTEGER PRIMARY KEY,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )";

/// The columns every statement returns, in [`item_from_row`]'s order.
macro_rules! item_columns {
    () => {
        r#"id, name, description, price, tags,
           to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#
    };
}
/// `now()` is the transaction's start, so created_at and updated_at of a new row agree.
macro_rules! now_ms {
    () => {
        "date_trunc('milliseconds', now())"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO items (name, description, price, tags, created_at, updated_at) ",
    "VALUES ($1, $2, $3, $4, ",
    now_ms!(),
    ", ",
    now_ms!(),
    ") RETURNING ",
    item_columns!()
);
const SELECT_ONE: &str = concat!("SELECT ", item_columns!(), " FROM items WHERE id = $1");
const REPLACE: &str = concat!(
    "UPDATE items SET name = $2, description = $3, price = $4, tags = $5, updated_at = ",
    now_ms!(),
    " WHERE id = $1 RETURNING ",
    item_columns!()
);
// A NULL parameter is a field the patch leaves alone.
const PATCH: &str = concat!(
    "UPDATE items SET name = coalesce($2, name), description = coalesce($3, description), ",
    "price = coalesce($4, price), tags = coalesce($5, tags), updated_at = ",
    now_ms!(),
    " WHERE id = $1 RETURNING ",
    item_columns!()
);
const DELETE: &str = "DELETE FROM items WHERE id = $1";

/// The filter shared by the page and its total: $1 a LIKE pattern in ASCII lower case, $2 a
/// tag, either NULL. `translate` folds ASCII letters only, as SQLite's `LIKE` does (`ILIKE`
/// would fold every script); `E'\\'` is one backslash whatever `standard_conforming_strings`.
macro_rules! list_filter {
    () => {
        r"FROM items
          WHERE ($1::text IS NULL
                 OR translate(name, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
                    LIKE $1 ESCAPE E'\\')
            AND ($2::text IS NULL OR $2 = ANY (tags))"
    };
}
const LIST_COUNT: &str = concat!("SELECT count(*) ", list_filter!());
const LIST_PAGE: &str = concat!(
    "SELECT ",
    item_columns!(),
    " ",
    list_filter!(),
    " ORDER BY id LIMIT $3 OFFSET $4"
);

/// Items in PostgreSQL; cheap to clone, every clone shares one pool.
#[derive(Debug, Clone)]
pub(super) struct PostgresStore {
    pool: Pool,
}

impl PostgresStore {
    /// Builds the pool for `url` and brings the schema up to date.
    pub(super) async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|err| StoreError::Postgres(format!("invalid URL: {}", describe(&err))))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("warp-redis-cache");
        }
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = Manager::from_config(config, NoTls, manager_config);
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|err| StoreError::Postgres(format!("cannot build the pool: {err}")))?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Stores a new item and returns it with its id and timestamps.
    pub(super) async fn create(&self, item: NewItem) -> Result<Item, StoreError> {
        self.write(move |client| async move {
            let statement = client.prepare_cached(INSERT).await?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                [&item.name, &item.description, &item.price, &item.tags];
            let row = client.query_one(&statement, &params).await?;
            item_from_row(&row)
        })
        .await
    }

    /// The item with this id, if there is one.
    pub(super) async fn get(&self, id: i64) -> Result<Option<Item>, StoreError> {
        bounded(async {
            let client = self.checkout().await?;
            let statement = client.prepare_cached(SELECT_ONE).await?;
            let row = client.query_opt(&statement, &[&id]).await?;
            row.as_ref().map(item_from_row).transpose()
        })
        .await
    }

    /// One page of the items matching `query`, by ascending id, with the total match count.
    pub(super) async fn list(&self, query: ListQuery) -> Result<ItemPage, StoreError> {
        bounded(async {
            let mut client = self.checkout().await?;
            // One snapshot, so the total and the page describe the same items.
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let pattern = query
                .q
                .as_deref()
                .map(|q| like_pattern(&q.to_ascii_lowercase()));
            let tag = query.tag.as_deref();
            let total: i64 = tx
                .query_one(&tx.prepare_cached(LIST_COUNT).await?, &[&pattern, &tag])
                .await?
                .try_get(0)?;
            let limit = i64::from(query.limit);
            // Out-of-range values cannot come from ListQuery::from_pairs; clamp rather than fail.
            let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
            let rows = tx
                .query(
                    &tx.prepare_cached(LIST_PAGE).await?,
                    &[&pattern, &tag, &limit, &offset],
                )
                .await?;
            tx.commit().await?;
            Ok(ItemPage {
                items: rows.iter().map(item_from_row).collect::<Result<_, _>>()?,
                total: u64::try_from(total).unwrap_or_default(),
                limit: query.limit,
                offset: query.offset,
            })
        })
        .await
    }

    /// Replaces every field of an item, keeping `created_at`; `None` when there is no such id.
    pub(super) async fn replace(&self, id: i64, item: NewItem) -> Result<Option<Item>, StoreError> {
        self.write(move |client| async move {
            let statement = client.prepare_cached(REPLACE).await?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
                [&id, &item.name, &item.description, &item.price, &item.tags];
            let row = client.query_opt(&statement, &params).await?;
            row.as_ref().map(item_from_row).transpose()
        })
        .await
    }

    /// Changes the fields the patch sets; `None` when there is no such id.
    pub(super) async fn patch(
        &self,
        id: i64,
        patch: ItemPatch,
    ) -> Result<Option<Item>, StoreError> {
        self.write(move |client| async move {
            let statement = client.prepare_cached(PATCH).await?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
                &id,
                &patch.name,
                &patch.description,
                &patch.price,
                &patch.tags,
            ];
            let row = client.query_opt(&statement, &params).await?;
            row.as_ref().map(item_from_row).transpose()
        })
        .await
    }

    /// Deletes an item; `false` when there was no such id.
    pub(super) async fn delete(&self, id: i64) -> Result<bool, StoreError> {
        self.write(move |client| async move {
            let statement = client.prepare_cached(DELETE).await?;
            Ok(client.execute(&statement, &[&id]).await? > 0)
        })
        .await
    }

    /// Runs `job` with a pooled connection on a task of its own, bounded by
    /// [`OPERATION_TIMEOUT`]. Each write is one statement, committed as it returns.
    async fn write<T, F, Fut>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send,
    {
        let store = self.clone();
        let task = tokio::spawn(bounded(async move { job(store.checkout().await?).await }));
        task.await
            .map_err(|err| StoreError::Task(err.to_string()))?
    }

    async fn checkout(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Applies the migrations the database has not seen yet, all in one transaction.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.checkout().await?;
        check_encoding(&client).await?;
        let tx = client.transaction().await?;
        // Held until commit or rollback: a second instance starting now waits here, then
        // finds every migration recorded.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        // Quiet the "already exists, skipping" notice on every start but the first.
        tx.batch_execute("SET LOCAL client_min_messages TO warning")
            .await?;
        tx.batch_execute(MIGRATIONS_TABLE).await?;
        let version: i32 = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM items_schema_migrations",
                &[],
            )
            .await?
            .try_get(0)?;
        let known = MIGRATIONS.len();
        let applied = usize::try_from(version)
            .ok()
            .filter(|applied| *applied <= known)
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "schema version {version} is not one this build knows (0 to {known})"
                ))
            })?;
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
            let version = i32::try_from(index + 1).expect("fewer than 2^31 migrations");
            tx.batch_execute(migration).await?;
            tx.execute(
                "INSERT INTO items_schema_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Items are Unicode text; a database in another encoding would refuse some of them later, one
/// request at a time, so refuse it now.
async fn check_encoding(client: &Object) -> Result<(), StoreError> {
    let encoding: String = client
        .query_one("SELECT current_setting('server_encoding')", &[])
        .await?
        .try_get(0)?;
    if encoding != "UTF8" {
        return Err(StoreError::Postgres(format!(
            "the database's encoding is {encoding}; items need UTF8 (CREATE DATABASE ... ENCODING 'UTF8')"
        )));
    }
    Ok(())
}

/// Runs `operation`, or gives up after [`OPERATION_TIMEOUT`] as unavailable.
async fn bounded<T>(
    operation: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(OPERATION_TIMEOUT, operation)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "PostgreSQL did not answer within {OPERATION_TIMEOUT:?}"
            )))
        })
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        if cannot_reach_database(&err) {
            StoreError::Unavailable(describe(&err))
        } else {
            StoreError::Postgres(describe(&err))
        }
    }
}

/// A pool that cannot hand out a connection means the database cannot be reached: refused,
/// timed out, authentication or database gone; whatever the cause, a retry later may work.
fn pool_error(err: PoolError) -> StoreError {
    match err {
        PoolError::Backend(err) => {
            StoreError::Unavailable(format!("cannot connect to PostgreSQL: {}", describe(&err)))
        }
        other => StoreError::Unavailable(format!("no PostgreSQL connection: {other}")),
    }
}

/// Whether `err` says the connection broke or the server is going away, rather than that a
/// statement was refused.
fn cannot_reach_database(err: &tokio_postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    if let Some(code) = err.code() {
        return code.code().starts_with("08") // connection exception
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
            ]
            .contains(code);
    }
    let mut cause = std::error::Error::source(err);
    while let Some(inner) = cause {
        if inner.is::<std::io::Error>() {
            return true;
        }
        cause = inner.source();
    }
    false
}

/// The error with what the server or the socket said, which tokio-postgres's `Display` leaves
/// to `source()`.
fn describe(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        return format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
    }
    match std::error::Error::source(err) {
        Some(cause) => format!("{err}: {cause}"),
        None => err.to_string(),
    }
}

/// Reads a row selected as [`item_columns!`].
fn item_from_row(row: &Row) -> Result<Item, StoreError> {
    let wrong_type =
        |err: tokio_postgres::Error| StoreError::Corrupt(format!("items row: {}", describe(&err)));
    let id: i64 = row.try_get(0).map_err(wrong_type)?;
    Ok(Item {
        id,
        name: row.try_get(1).map_err(wrong_type)?,
        description: row.try_get(2).map_err(wrong_type)?,
        price: row.try_get(3).map_err(wrong_type)?,
        tags: row.try_get(4).map_err(|err| {
            StoreError::Corrupt(format!(
                "item {id}: tags are not a list of strings: {}",
                describe(&err)
            ))
        })?,
        created_at: row.try_get(5).map_err(wrong_type)?,
        updated_at: row.try_get(6).map_err(wrong_type)?,
    })
}
