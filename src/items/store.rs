//! The item store: durable create, read, list, replace, patch and delete of items, in SQLite
//! (the embedded default) or in PostgreSQL (when `database.url` is set, so several instances
//! can share the items).
//!
//! [`ItemStore`] is the one type the routes see; it normalizes what it is given
//! ([`NewItem::normalized`]) and hands the work to the backend module, `sqlite` or `postgres`.
//! Both backends keep the same contract, specified once in `tests/api/item_store_suite.rs` and
//! run against each: ids are never reused, timestamps are RFC 3339 UTC with milliseconds, the
//! name filter ignores ASCII case only and takes wildcards literally, pages follow ids.
//! Nothing here validates (see [`model`](super::model)) or caches (the routes' cache filters do).

use super::model::{Item, ItemPatch, NewItem};
use super::postgres::PostgresStore;
use super::query::{ItemPage, ListQuery};
use super::sqlite::SqliteStore;
pub use super::store_error::StoreError;
use crate::settings::DatabaseSettings;

/// Items in SQLite or PostgreSQL; cheap to clone, every clone shares one connection or pool.
///
/// ```
/// use warp_redis_cache_service::items::{ItemStore, NewItem};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = ItemStore::open(":memory:").expect("in-memory store");
/// let pen = NewItem { name: " pen ".into(), description: String::new(), price: 1.5, tags: vec![] };
/// let created = store.create(pen).await.unwrap();
/// assert_eq!(created.name, "pen");
/// assert_eq!(store.get(created.id).await.unwrap(), Some(created));
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct ItemStore {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl ItemStore {
    /// Opens (creating if needed) the SQLite database at `path`, or an in-memory one for
    /// [`MEMORY_PATH`], and brings its schema up to date.
    ///
    /// Blocks on disk I/O: call it at startup, before serving.
    pub fn open(path: &str) -> Result<Self, StoreError> {
        let backend = Backend::Sqlite(SqliteStore::open(path)?);
        Ok(Self { backend })
    }

    /// Connects a pool to the PostgreSQL database at `url` (`postgres://...`) and applies the
    /// migrations it has not seen yet; several instances may start at once.
    ///
    /// Fails with [`StoreError::Unavailable`] when the server cannot be reached.
    pub async fn open_postgres(url: &str) -> Result<Self, StoreError> {
        let backend = Backend::Postgres(PostgresStore::connect(url).await?);
        Ok(Self { backend })
    }

    /// The store `settings` describe: PostgreSQL when `url` is set, else SQLite at `path`.
    ///
    /// ```no_run
    /// use warp_redis_cache_service::items::ItemStore;
    /// use warp_redis_cache_service::settings::DatabaseSettings;
    ///
    /// # async fn example() -> Result<(), warp_redis_cache_service::items::StoreError> {
    /// let settings = DatabaseSettings {
    ///     url: "postgres://app@127.0.0.1:5432/items".into(),
    ///     ..DatabaseSettings::default()
    /// };
    /// let store = ItemStore::connect(&settings).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        if settings.is_postgres() {
            return Self::open_postgres(&settings.url).await;
        }
        let path = settings.path.clone();
        tokio::task::spawn_blocking(move || Self::open(&path))
            .await
            .map_err(|err| StoreError::Task(err.to_string()))?
    }

    /// Stores a new item (name and tags trimmed) and returns it with its id and timestamps.
    pub async fn create(&self, item: NewItem) -> Result<Item, StoreError> {
        let item = item.normalized();
        match &self.backend {
            Backend::Sqlite(store) => store.create(item).await,
            Backend::Postgres(store) => store.create(item).await,
        }
    }

    /// The item with this id, if there is one.
    pub async fn get(&self, id: i64) -> Result<Option<Item>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.get(id).await,
            Backend::Postgres(store) => store.get(id).await,
        }
    }

    /// One page of the items matching `query`, by ascending id, with the total match count.
    ///
    /// `q` matches a substring of the name, ignoring case for ASCII letters only; `%`, `_` and
    /// `\` in it match themselves. `tag` matches one tag exactly. The total and the page come
    /// from one snapshot.
    pub async fn list(&self, query: ListQuery) -> Result<ItemPage, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.list(query).await,
            Backend::Postgres(store) => store.list(query).await,
        }
    }

    /// Replaces every field of an item, keeping `created_at`; `None` when there is no such id.
    pub async fn replace(&self, id: i64, item: NewItem) -> Result<Option<Item>, StoreError> {
        let item = item.normalized();
        match &self.backend {
            Backend::Sqlite(store) => store.replace(id, item).await,
            Backend::Postgres(store) => store.replace(id, item).await,
        }
    }

    /// Changes the fields the patch sets; `None` when there is no such id.
    pub async fn patch(&self, id: i64, patch: ItemPatch) -> Result<Option<Item>, StoreError> {
        let patch = patch.normalized();
        match &self.backend {
            Backend::Sqlite(store) => store.patch(id, patch).await,
            Backend::Postgres(store) => store.patch(id, patch).await,
        }
    }

    /// Deletes an item; `false` when there was no such id.
    pub async fn delete(&self, id: i64) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.delete(id).await,
            Backend::Postgres(store) => store.delete(id).await,
        }
    }
}
