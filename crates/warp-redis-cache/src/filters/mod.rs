//! The reusable warp filters: [`cached()`] answers GET/HEAD from the cache and stores what the
//! wrapped route answers; [`cache_busting()`] invalidates after a successful mutation.

pub(crate) mod body;
pub(crate) mod busting;
pub(crate) mod cached;
pub(crate) mod early_refresh;
pub(crate) mod entry;
pub(crate) mod failure;
pub(crate) mod flights;
pub(crate) mod http;
pub(crate) mod origin;
pub(crate) mod policy;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod storing;

pub use busting::cache_busting;
pub use cached::cached;
pub use failure::FilterFailure;
pub use policy::{
    with_bust_tags, BustPolicy, BustTagFn, BustTags, CachePolicy, CacheSemantics,
    ClientCacheControl, KeyFn, TagContext, TagFn,
};
pub use request::{decode_query, RequestParts};
