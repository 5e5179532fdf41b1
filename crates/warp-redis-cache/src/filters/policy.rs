//! What a cached route stores and for how long ([`CachePolicy`]), what a mutation route
//! invalidates ([`BustPolicy`]), and how keys are built ([`KeyFn`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use warp::http::header::{HeaderName, HeaderValue};
use warp::http::StatusCode;

use super::request::RequestParts;
use crate::cache::{Namespace, Tag};

/// How long a stale response with a validator is kept for revalidation by default
/// ([`CachePolicy::keep_stale`]).
pub const DEFAULT_KEEP_STALE: Duration = Duration::from_secs(3600);

/// Largest response body stored by default; larger responses are served but not cached.
pub const DEFAULT_MAX_ENTRY_BYTES: usize = 1024 * 1024;

/// Builds a cache key from a request. Implemented for closures:
///
/// ```
/// use warp_redis_cache::{CachePolicy, Namespace, RequestParts};
/// let policy = CachePolicy::new(Namespace::new("items").unwrap())
///     .key_with(|request: &RequestParts| format!("item:{}", request.path()));
/// ```
pub trait KeyFn: Send + Sync + 'static {
    /// The key for `request`, unique within the namespace.
    fn key(&self, request: &RequestParts) -> String;
}

impl<F> KeyFn for F
where
    F: Fn(&RequestParts) -> String + Send + Sync + 'static,
{
    fn key(&self, request: &RequestParts) -> String {
        self(request)
    }
}

/// What a tag function sees of a response about to be stored.
pub struct TagContext<'a> {
    /// The request.
    pub request: &'a RequestParts,
    /// The response's status.
    pub status: StatusCode,
    /// The response body, uncompressed.
    pub body: &'a [u8],
}

/// Computes the tags of a response from the request and the response. Implemented for
/// closures returning any list of strings; names that are not valid [`Tag`]s keep the response
/// from being stored (an entry missing a tag could never be invalidated by it).
///
/// ```
/// use warp_redis_cache::{CachePolicy, Namespace, TagContext};
/// let policy = CachePolicy::new(Namespace::new("items").unwrap())
///     .tags_with(|cx: &TagContext| vec![format!("path:{}", cx.request.path())]);
/// ```
pub trait TagFn: Send + Sync + 'static {
    /// The tags of this response.
    fn tags(&self, context: &TagContext<'_>) -> Vec<String>;
}

impl<F, I, S> TagFn for F
where
    F: Fn(&TagContext<'_>) -> I + Send + Sync + 'static,
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    fn tags(&self, context: &TagContext<'_>) -> Vec<String> {
        self(context).into_iter().map(Into::into).collect()
    }
}

/// Computes the tags a successful write invalidates, from its request.
pub trait BustTagFn: Send + Sync + 'static {
    /// The tags this write invalidates.
    fn tags(&self, request: &RequestParts) -> Vec<String>;
}

impl<F, I, S> BustTagFn for F
where
    F: Fn(&RequestParts) -> I + Send + Sync + 'static,
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    fn tags(&self, request: &RequestParts) -> Vec<String> {
        self(request).into_iter().map(Into::into).collect()
    }
}

/// What a cached route lets caches downstream (browsers, CDNs, proxies) keep, as its
/// `Cache-Control` header. Our own entries are invalidated by busts; a copy downstream is out
/// of reach of any bust, so the server-side TTL and what downstream may keep are different
/// things.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ClientCacheControl {
    /// `no-cache` (the default): downstream may keep a copy but must revalidate it before each
    /// use; with the entry's `ETag` that is a cheap 304. A write is seen at once.
    #[default]
    Revalidate,
    /// `max-age=<the entry's lifetime>`: downstream serves its copy for that long, even after
    /// a write. For resources that never change, or whose readers tolerate that.
    MaxAge,
    /// This value, verbatim (e.g. `private, max-age=30`).
    Custom(HeaderValue),
}

impl ClientCacheControl {
    /// The header value for an entry with this lifetime.
    pub fn header_value(&self, lifetime: Duration) -> HeaderValue {
        match self {
            ClientCacheControl::Revalidate => HeaderValue::from_static("no-cache"),
            ClientCacheControl::MaxAge => {
                HeaderValue::from_str(&format!("max-age={}", lifetime.as_secs()))
                    .expect("max-age=<digits> is a valid header value")
            }
            ClientCacheControl::Custom(value) => value.clone(),
        }
    }
}

/// How a cached route stores responses.
#[derive(Clone)]
pub struct CachePolicy {
    pub(crate) namespace: Namespace,
    pub(crate) ttl: Option<Duration>,
    pub(crate) statuses: Vec<StatusCode>,
    pub(crate) vary: Vec<HeaderName>,
    pub(crate) key: Option<Arc<dyn KeyFn>>,
    pub(crate) max_entry_bytes: usize,
    pub(crate) stale_while_revalidate: Option<Duration>,
    pub(crate) stale_if_error: Option<Duration>,
    pub(crate) origin_timeout: Duration,
    pub(crate) refill_lock: Option<bool>,
    pub(crate) tags: Vec<Tag>,
    pub(crate) tag_fns: Vec<Arc<dyn TagFn>>,
    pub(crate) early_refresh: Option<f64>,
    pub(crate) l1: bool,
    pub(crate) client_cache_control: ClientCacheControl,
    pub(crate) semantics: CacheSemantics,
    pub(crate) keep_stale: Duration,
}

/// Who decides how long a response is fresh: the policy, or the response itself.
///
/// **Which one do I want?** [`Policy`](CacheSemantics::Policy) (the default) for routes you
/// write: the policy's TTL, statuses and stale windows decide, writes bust entries at once, and
/// clients get `Cache-Control: no-cache` with an `ETag`, so they always see the latest write.
/// [`Http`](CacheSemantics::Http) when the route's own headers should decide, as for a
/// reverse proxy, or a route that sets `Cache-Control`, `Expires`, `ETag` or
/// `Last-Modified` itself: the cache then behaves as a shared HTTP cache of RFC 9111.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CacheSemantics {
    /// The policy decides: fresh for its TTL, the statuses it lists, its stale windows. The
    /// cache answers with its own `Cache-Control`, `ETag` and `Age`.
    #[default]
    Policy,
    /// RFC 9111, as a shared cache: freshness from the response's `CDN-Cache-Control`
    /// (RFC 9213) or `Cache-Control` (`s-maxage`, `max-age`), else `Expires` − `Date`, else
    /// 10% of the time since `Last-Modified` for the statuses RFC 9110 calls heuristically
    /// cacheable (at most the policy's TTL); the response's `Age` counted; `no-store`,
    /// `private`, `no-cache`, `must-revalidate`, `proxy-revalidate`, `stale-while-revalidate`
    /// and `stale-if-error` obeyed; `Vary` matched; stale responses revalidated with the
    /// origin by `If-None-Match` / `If-Modified-Since` and updated from its 304; the route's
    /// headers (`Date`, `ETag`, `Last-Modified`, `Cache-Control`, any encoding) replayed as
    /// it sent them, with a computed `Age`. The policy's statuses, stale windows and
    /// downstream `Cache-Control` are not used, nor the L1 tier. Still refused: responses
    /// with `Set-Cookie`, `Range` requests' partial answers.
    Http,
}

/// The lifetimes an entry is stored with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Served as fresh.
    pub fresh: Duration,
    /// Then served while a refresh runs behind.
    pub stale_while_revalidate: Duration,
    /// Then (counting from the end of `fresh`) served when the origin fails.
    pub stale_if_error: Duration,
}

/// The longest origin timeout accepted: one hour.
pub const MAX_ORIGIN_TIMEOUT: Duration = Duration::from_secs(3600);

/// How long a stale-if-error origin call, or a follower of a collapsed miss, waits by default.
pub const DEFAULT_ORIGIN_TIMEOUT: Duration = Duration::from_secs(10);

impl fmt::Debug for CachePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachePolicy")
            .field("namespace", &self.namespace)
            .field("ttl", &self.ttl)
            .field("statuses", &self.statuses)
            .field("vary", &self.vary)
            .field("custom_key", &self.key.is_some())
            .field("max_entry_bytes", &self.max_entry_bytes)
            .field("stale_while_revalidate", &self.stale_while_revalidate)
            .field("stale_if_error", &self.stale_if_error)
            .field("origin_timeout", &self.origin_timeout)
            .field("refill_lock", &self.refill_lock)
            .field("tags", &self.tags)
            .field("tag_fns", &self.tag_fns.len())
            .field("early_refresh", &self.early_refresh)
            .field("l1", &self.l1)
            .field("client_cache_control", &self.client_cache_control)
            .field("semantics", &self.semantics)
            .field("keep_stale", &self.keep_stale)
            .finish()
    }
}

impl CachePolicy {
    /// Stores 200 responses in `namespace` for the manager's default TTL, keyed by method,
    /// path and sorted query parameters.
    pub fn new(namespace: Namespace) -> Self {
        Self {
            namespace,
            ttl: None,
            statuses: vec![StatusCode::OK],
            vary: Vec::new(),
            key: None,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            stale_while_revalidate: None,
            stale_if_error: None,
            origin_timeout: DEFAULT_ORIGIN_TIMEOUT,
            refill_lock: None,
            tags: Vec::new(),
            tag_fns: Vec::new(),
            early_refresh: None,
            l1: true,
            client_cache_control: ClientCacheControl::default(),
            semantics: CacheSemantics::Policy,
            keep_stale: DEFAULT_KEEP_STALE,
        }
    }

    /// Who decides freshness ([`CacheSemantics`]; default: the policy). With
    /// [`CacheSemantics::Http`] the policy's TTL is the longest *heuristic* lifetime, and
    /// [`keep_stale`](Self::keep_stale) how long stale responses stay for revalidation.
    ///
    /// ```
    /// use warp_redis_cache::{CachePolicy, CacheSemantics, Namespace};
    /// let policy = CachePolicy::new(Namespace::new("proxy").unwrap()).semantics(CacheSemantics::Http);
    /// ```
    pub fn semantics(mut self, semantics: CacheSemantics) -> Self {
        self.semantics = semantics;
        self
    }

    /// With [`CacheSemantics::Http`]: how long a response with a validator (`ETag`,
    /// `Last-Modified`) is kept after it went stale, to be revalidated with a conditional
    /// request instead of fetched again (default one hour, at most ten years).
    pub fn keep_stale(mut self, keep: Duration) -> Self {
        self.keep_stale = keep.min(Duration::from_secs(crate::config::MAX_TTL_SECS));
        self
    }

    /// Whether the response's headers decide freshness ([`CacheSemantics::Http`]).
    pub(crate) fn is_http(&self) -> bool {
        self.semantics == CacheSemantics::Http
    }

    /// What downstream caches may keep ([`ClientCacheControl`]; default: revalidate, i.e.
    /// `Cache-Control: no-cache` with the ETag).
    pub fn client_cache_control(mut self, directive: ClientCacheControl) -> Self {
        self.client_cache_control = directive;
        self
    }

    /// Whether hits may be answered from the in-process L1 tier, when the manager has one
    /// (`cache.l1_max_bytes`; default: yes). Turn it off for a route whose readers must see
    /// another instance's write the moment it returned.
    pub fn l1(mut self, enabled: bool) -> Self {
        self.l1 = enabled;
        self
    }

    /// Files every entry under `tag` too.
    pub fn tag(mut self, tag: Tag) -> Self {
        if !self.tags.contains(&tag) {
            self.tags.push(tag);
        }
        self
    }

    /// Files each entry under the tags `tags` computes from the request and the response, e.g.
    /// `item:42` for every item a list page holds.
    pub fn tags_with(mut self, tags: impl TagFn) -> Self {
        self.tag_fns.push(Arc::new(tags));
        self
    }

    /// Whether entries carry tags (their lookups then read the tag records too, in the same
    /// round trip, through a script).
    pub fn is_tagged(&self) -> bool {
        !self.tags.is_empty() || !self.tag_fns.is_empty()
    }

    /// Probabilistic early refresh (XFetch): a hit refreshes the entry in the background before
    /// it expires with probability rising as expiry nears, scaled by how long the origin took
    /// and by `beta` (0: off, 1: the usual). Default: `cache.early_refresh_beta`.
    pub fn early_refresh(mut self, beta: f64) -> Self {
        let most = crate::config::MAX_EARLY_REFRESH_BETA;
        self.early_refresh = Some(if beta.is_finite() {
            beta.clamp(0.0, most)
        } else {
            0.0
        });
        self
    }

    /// The early refresh factor in force (resolved once, when the filter is built).
    pub(crate) fn early_refresh_beta(&self, cache: &crate::cache::CacheManager) -> f64 {
        self.early_refresh
            .unwrap_or_else(|| cache.early_refresh_default())
    }

    /// Whether a miss takes a short Redis lock so that, across instances, one refills the entry
    /// while the others wait for it (up to the origin timeout). Costs a lock and an unlock per
    /// miss. Default: `cache.refill_lock`.
    pub fn refill_lock(mut self, enabled: bool) -> Self {
        self.refill_lock = Some(enabled);
        self
    }

    /// Whether misses take the refill lock.
    pub(crate) fn uses_refill_lock(&self, cache: &crate::cache::CacheManager) -> bool {
        self.refill_lock
            .unwrap_or_else(|| cache.refill_lock_default())
    }

    /// After the fresh lifetime, serve the stale entry at once for up to `window` while one
    /// background request refreshes it (RFC 5861). Default: `cache.stale_while_revalidate_secs`.
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.stale_while_revalidate = Some(window);
        self
    }

    /// After the fresh lifetime, serve the stale entry for up to `window` when the origin
    /// answers 5xx or does not answer within the origin timeout (RFC 5861). Default:
    /// `cache.stale_if_error_secs`.
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = Some(window);
        self
    }

    /// How long an origin call made to refresh a stale entry may take before the stale entry
    /// is served instead, and how long a collapsed miss waits for its leader (default 10 s).
    pub fn origin_timeout(mut self, timeout: Duration) -> Self {
        self.origin_timeout = timeout.clamp(Duration::from_millis(1), MAX_ORIGIN_TIMEOUT);
        self
    }

    /// The lifetimes entries are stored with: this policy's, else the manager's defaults.
    pub(crate) fn lifetimes(&self, cache: &crate::cache::CacheManager) -> Lifetimes {
        let (default_swr, default_sie) = cache.default_stale_windows();
        let most = Duration::from_secs(crate::config::MAX_TTL_SECS);
        Lifetimes {
            fresh: self.ttl.unwrap_or_else(|| cache.default_ttl()),
            stale_while_revalidate: self.stale_while_revalidate.unwrap_or(default_swr).min(most),
            stale_if_error: self.stale_if_error.unwrap_or(default_sie).min(most),
        }
    }

    /// Entries live this long (at most ten years; at least one millisecond).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        let most = Duration::from_secs(crate::config::MAX_TTL_SECS);
        self.ttl = Some(ttl.clamp(Duration::from_millis(1), most));
        self
    }

    /// Stores responses with these statuses (default: 200 only).
    pub fn statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.statuses = statuses.into_iter().collect();
        self
    }

    /// Keys entries also by this request header's value. Varying on `Authorization` or
    /// `Cookie` is what allows requests carrying them to be cached, per user.
    pub fn vary_on(mut self, header: HeaderName) -> Self {
        if !self.vary.contains(&header) {
            self.vary.push(header);
        }
        self
    }

    /// Builds keys with `key` instead of method + path + sorted query. Vary headers are still
    /// appended.
    pub fn key_with(mut self, key: impl KeyFn) -> Self {
        self.key = Some(Arc::new(key));
        self
    }

    /// Responses with larger bodies are served but not stored.
    pub fn max_entry_bytes(mut self, bytes: usize) -> Self {
        self.max_entry_bytes = bytes;
        self
    }

    /// The namespace entries go to.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// Whether requests are keyed by `header`.
    pub fn varies_on(&self, header: &HeaderName) -> bool {
        self.vary.contains(header)
    }
}

/// The tags a write route's reply says its write changed, attached with [`with_bust_tags`] and
/// read by a [`BustPolicy::reply_tags`] policy. The handler that parsed the request is the one
/// source of truth for what it changed: nothing re-derives an id from the raw path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BustTags(pub(crate) Vec<String>);

/// Attaches to `reply` the tags its write changed (see [`BustPolicy::reply_tags`]). The tags
/// travel as a response extension: they are never sent to the client.
///
/// ```
/// use warp_redis_cache::with_bust_tags;
/// let reply = with_bust_tags(warp::reply::json(&"ok"), ["item:42"]);
/// assert_eq!(reply.status(), 200);
/// ```
pub fn with_bust_tags<S: Into<String>>(
    reply: impl warp::Reply,
    tags: impl IntoIterator<Item = S>,
) -> warp::reply::Response {
    let mut response = reply.into_response();
    let tags = BustTags(tags.into_iter().map(Into::into).collect());
    response.extensions_mut().insert(tags);
    response
}

/// Where a bust policy's tags come from.
#[derive(Clone)]
pub(crate) enum BustTagSource {
    /// Computed from the request.
    Request(Arc<dyn BustTagFn>),
    /// Named by the route's reply ([`with_bust_tags`]); a reply that names none, or a write
    /// whose reply never came (the request was dropped), invalidates the whole namespace.
    Reply,
}

/// What a successful mutation invalidates: whole namespaces (O(1) each), tags computed from
/// the request or named by the reply, and/or single keys computed from the request.
#[derive(Clone, Default)]
pub struct BustPolicy {
    pub(crate) namespaces: Vec<Namespace>,
    pub(crate) keys: Vec<(Namespace, Arc<dyn KeyFn>)>,
    pub(crate) tags: Vec<(Namespace, BustTagSource)>,
    pub(crate) soft: bool,
}

impl fmt::Debug for BustPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BustPolicy")
            .field("namespaces", &self.namespaces)
            .field("keys", &self.keys.len())
            .field("tags", &self.tags.len())
            .field("soft", &self.soft)
            .finish()
    }
}

impl BustPolicy {
    /// Invalidates all of `namespace`.
    pub fn namespace(namespace: Namespace) -> Self {
        Self::default().and_namespace(namespace)
    }

    /// Also invalidates all of `namespace`.
    pub fn and_namespace(mut self, namespace: Namespace) -> Self {
        if !self.namespaces.contains(&namespace) {
            self.namespaces.push(namespace);
        }
        self
    }

    /// Also deletes the entry `key(request)` in `namespace`, e.g. the cached `GET` of the
    /// resource a `PUT` changed (see [`RequestParts::get_key_for`]).
    pub fn and_key(mut self, namespace: Namespace, key: impl KeyFn) -> Self {
        self.keys.push((namespace, Arc::new(key)));
        self
    }

    /// Invalidates, in `namespace`, the tags `tags` computes from the request: every entry
    /// filed under one of them, in O(1) per tag, race-free like a namespace bust.
    ///
    /// ```
    /// use warp_redis_cache::Namespace;
    /// use warp_redis_cache::{BustPolicy, RequestParts};
    /// let items = Namespace::new("items").unwrap();
    /// let policy = BustPolicy::tags(items, |request: &RequestParts| {
    ///     let id = request.path().rsplit('/').next().unwrap_or_default().to_string();
    ///     vec![format!("item:{id}")]
    /// });
    /// ```
    pub fn tags(namespace: Namespace, tags: impl BustTagFn) -> Self {
        Self::default().and_tags(namespace, tags)
    }

    /// Also invalidates the tags `tags` computes from the request in `namespace`.
    pub fn and_tags(mut self, namespace: Namespace, tags: impl BustTagFn) -> Self {
        self.tags
            .push((namespace, BustTagSource::Request(Arc::new(tags))));
        self
    }

    /// Invalidates, in `namespace`, the tags the route's reply names with [`with_bust_tags`]:
    /// the handler that parsed the request says what its write changed, so `/items/5/` and
    /// `/items/05` bust `item:5` exactly as `/items/5` does. A successful reply that names no
    /// tags, or a write whose request was dropped before it replied, invalidates the whole
    /// namespace instead (the safe side).
    ///
    /// ```
    /// use warp::Filter;
    /// use warp_redis_cache::Namespace;
    /// use warp_redis_cache::{with_bust_tags, BustPolicy};
    /// let items = Namespace::new("items").unwrap();
    /// let policy = BustPolicy::reply_tags(items);
    /// let route = warp::path!("items" / u64)
    ///     .and(warp::delete())
    ///     .map(|id: u64| with_bust_tags(warp::reply(), [format!("item:{id}")]));
    /// ```
    pub fn reply_tags(namespace: Namespace) -> Self {
        Self::default().and_reply_tags(namespace)
    }

    /// Also invalidates, in `namespace`, the tags the route's reply names.
    pub fn and_reply_tags(mut self, namespace: Namespace) -> Self {
        self.tags.push((namespace, BustTagSource::Reply));
        self
    }

    /// Every namespace this policy invalidates something in, once each.
    pub fn namespaces_touched(&self) -> Vec<Namespace> {
        let mut touched: Vec<Namespace> = Vec::new();
        let named = self.namespaces.iter();
        let by_tags = self.tags.iter().map(|(ns, _)| ns);
        let by_keys = self.keys.iter().map(|(ns, _)| ns);
        for ns in named.chain(by_tags).chain(by_keys) {
            if !touched.contains(ns) {
                touched.push(ns.clone());
            }
        }
        touched
    }

    /// Soft invalidation: what this policy reaches is marked stale (served under its
    /// stale-while-revalidate and stale-if-error windows while refreshed) instead of dead.
    /// Keys named with [`Self::and_key`] are marked too rather than deleted.
    pub fn soft(mut self, soft: bool) -> Self {
        self.soft = soft;
        self
    }
}
