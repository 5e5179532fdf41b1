//! `clear`: delete cached responses through the admin API, one namespace or, only when asked
//! for explicitly, everything under the service's key prefix.
//!
//! The service does the deleting (SCAN + UNLINK under its own prefix, never FLUSHDB), so this
//! cannot touch keys outside the prefix, and clearing a namespace also invalidates responses
//! being stored while it runs. Needs the admin token unless run from the service's own host
//! against a service with no `admin.token`.

use super::client::Client;
use super::error::RequestError;
use crate::routes::admin::ClearResponse;
use crate::wording::count;
use warp_redis_cache::Namespace;

/// What to clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClearTarget {
    /// One namespace (`POST /cache/clear/{namespace}`).
    Namespace(Namespace),
    /// Every key under the prefix (`DELETE /cache/clear`).
    All,
}

/// Clears `target`; the answer says how many keys went.
pub async fn run(client: &Client, target: &ClearTarget) -> Result<ClearResponse, RequestError> {
    match target {
        ClearTarget::Namespace(ns) => client.clear_namespace(ns).await,
        ClearTarget::All => client.clear_all().await,
    }
}

/// The line printed for a clear.
///
/// ```
/// use warp_redis_cache_service::ops::clear::describe;
/// use warp_redis_cache_service::routes::admin::ClearResponse;
///
/// let answer = ClearResponse { namespace: Some("items".into()), deleted: 12 };
/// assert_eq!(describe(&answer), "cleared namespace items: 12 keys deleted");
/// let one = ClearResponse { namespace: None, deleted: 1 };
/// assert_eq!(describe(&one), "cleared everything under the prefix: 1 key deleted");
/// ```
pub fn describe(answer: &ClearResponse) -> String {
    let deleted = count(answer.deleted, "key");
    match &answer.namespace {
        Some(ns) => format!("cleared namespace {ns}: {deleted} deleted"),
        None => format!("cleared everything under the prefix: {deleted} deleted"),
    }
}
