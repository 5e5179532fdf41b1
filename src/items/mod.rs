//! Items: the service's own data, the origin that the cache sits in front of.
//!
//! - [`model`]: what an item is, the request bodies that create and change one, and their
//!   validation;
//! - [`query`]: the `GET /items` query string and the page it answers with;
//! - [`store`]: durable storage, the [`ItemStore`] the routes call, in front of one of two
//!   backends: `sqlite` (embedded, the default) or `postgres` (when `database.url` is set).
//!
//! Nothing here knows about HTTP or the cache: the routes validate input with these types, call
//! the [`ItemStore`], and map [`ValidationError`] and [`StoreError`] to responses.

pub mod model;
mod postgres;
pub mod query;
mod sqlite;
pub mod store;
mod store_error;

pub use model::{Item, ItemPatch, NewItem, ValidationError};
pub use query::{ItemPage, ListQuery};
pub use store::{ItemStore, StoreError};
