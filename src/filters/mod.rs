//! The reusable warp filters: [`cached()`] answers GET/HEAD from the cache and stores what the
//! wrapped route answers; [`cache_busting()`] invalidates after a successful mutation.

pub mod body;
pub mod busting;
pub mod cached;
pub mod early_refresh;
pub mod entry;
pub mod flights;
pub mod origin;
pub mod policy;
pub mod request;
pub mod response;
pub mod storing;

pub use busting::cache_busting;
pub use cached::cached;
pub use policy::{
    with_bust_tags, BustPolicy, BustTagFn, BustTags, CachePolicy, ClientCacheControl, KeyFn,
    TagContext, TagFn,
};
pub use request::{decode_query, request_parts, RequestDirectives, RequestParts};
