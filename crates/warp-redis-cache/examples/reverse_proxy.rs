//! A caching reverse proxy built from the filters: the filters cache any warp route, not only
//! routes that compute their answers themselves. Every request is forwarded to one upstream
//! with its method, target, headers and body; every answer comes back with its status (299 and
//! 999 included), headers and body. GET and HEAD go through [`cached`], keyed on the target
//! (path and query, verbatim; HEAD shares GET's entry); methods that may change state go
//! through [`cache_busting`], which invalidates the target and the response's `Location` and
//! `Content-Location` after a 2xx; OPTIONS and TRACE are only forwarded.
//!
//! Run (from `crates/warp-redis-cache`, or with `-p warp-redis-cache` from the workspace root):
//! `cargo run --release --example reverse_proxy -- --upstream http://127.0.0.1:8000 --listen 127.0.0.1:8080`
//! Redis comes from `REDIS_URL` (default `redis://127.0.0.1:6379/0`); when none answers the
//! cache lives in process memory.
//!
//! The caching is the filters' HTTP semantics ([`CacheSemantics::Http`], RFC 9111 as a shared
//! cache): the upstream's `Cache-Control`, `CDN-Cache-Control`, `Expires`, `Date`, `Age`,
//! `Vary`, `ETag` and `Last-Modified` decide what is stored, for how long, and how it is
//! revalidated; `--ttl SECS` (default one day) bounds heuristic freshness only.
//! `--policy-mode` uses the policy mode instead (every heuristically cacheable status fresh for
//! `--ttl`, default 60 s, whatever the upstream says), for comparison.
//! `--bust-by-key` invalidates by deleting keys instead of tags (see [`Invalidation`]).
//! `scripts/cache_tests.sh` measures the proxy against the HTTP caching test suite;
//! docs/http-conformance.md has the results.
//!
//! Hop-by-hop headers (`Connection` and the headers it lists, `Keep-Alive`, `TE`, `Trailer`,
//! `Transfer-Encoding`, `Upgrade`, `Proxy-Connection`) are not forwarded (RFC 9110 section
//! 7.6.1); message framing (`Content-Length`) is recomputed for the body sent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};
use warp::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use warp::http::{Method, Request, StatusCode, Uri};
use warp::reply::Response;
use warp::{Filter, Rejection};
use warp_redis_cache::{
    cache_busting, cached, with_bust_tags, BustPolicy, CacheConfig, CacheManager, CachePolicy,
    CacheSemantics, Namespace, RedisConfig, RequestParts, TagContext,
};

/// How long a request to the upstream may take before the proxy answers 504.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// With `--policy-mode`: the statuses RFC 9110 section 15.1 calls heuristically cacheable, less
/// 206: a partial answer stored under its target would be served to requests for the whole
/// representation.
const STORED_STATUSES: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

#[tokio::main]
async fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let redis = RedisConfig {
        url: std::env::var("REDIS_URL").unwrap_or_else(|_| RedisConfig::default().url),
        ..RedisConfig::default()
    };
    let cache = CacheManager::connect(&CacheConfig::default(), &redis)
        .await
        .unwrap_or_else(|err| {
            eprintln!("REDIS_URL: {err}");
            std::process::exit(2);
        });
    let upstream = Arc::new(Upstream::new(args.upstream));
    let routes = proxy(cache, upstream, args.caching, args.invalidation);
    println!("listening on http://{}", args.listen);
    warp::serve(routes).run(args.listen).await;
}

const USAGE: &str = "usage: reverse_proxy --upstream http://HOST:PORT --listen ADDR:PORT \
     [--ttl SECS] [--policy-mode] [--bust-by-key]";

/// The command line.
struct Args {
    upstream: Uri,
    listen: SocketAddr,
    caching: Caching,
    invalidation: Invalidation,
}

/// How responses are cached.
#[derive(Debug, Clone, Copy)]
enum Caching {
    /// RFC 9111 (the default); heuristic freshness at most this long.
    Http { heuristic_cap: Duration },
    /// The policy mode: fresh this long.
    Policy { ttl: Duration },
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let (mut upstream, mut listen, mut ttl) = (None, None, None);
        let mut policy_mode = false;
        let mut invalidation = Invalidation::Tags;
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--upstream" => {
                    let uri: Uri = value()?
                        .parse()
                        .map_err(|err| format!("--upstream: {err}"))?;
                    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                        return Err("--upstream must be an http://HOST:PORT URL".into());
                    }
                    upstream = Some(uri);
                }
                "--listen" => {
                    let addr = value()?;
                    listen = Some(
                        addr.parse()
                            .map_err(|err| format!("--listen {addr}: {err}"))?,
                    );
                }
                "--ttl" => {
                    let secs: u64 = value()?.parse().map_err(|err| format!("--ttl: {err}"))?;
                    ttl = Some(Duration::from_secs(secs));
                }
                "--policy-mode" => policy_mode = true,
                "--bust-by-key" => invalidation = Invalidation::Keys,
                "-h" | "--help" => return Err("A caching reverse proxy.".into()),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        Ok(Self {
            upstream: upstream.ok_or("--upstream is required")?,
            listen: listen.ok_or("--listen is required")?,
            caching: if policy_mode {
                Caching::Policy {
                    ttl: ttl.unwrap_or(Duration::from_secs(60)),
                }
            } else {
                Caching::Http {
                    heuristic_cap: ttl.unwrap_or(Duration::from_secs(86_400)),
                }
            },
            invalidation,
        })
    }
}

/// How a successful write invalidates what it changed.
#[derive(Debug, Clone, Copy)]
enum Invalidation {
    /// Every entry is tagged with its target; a write invalidates the tags of its target and of
    /// its response's `Location` and `Content-Location`: race-free (the default).
    Tags,
    /// A write deletes the entry of its own target only (`--bust-by-key`): not race-free, and
    /// `Location` / `Content-Location` are left alone, but no entry carries a tag. A tag record
    /// created when an entry is stored counts as invalidated at the namespace's current clock,
    /// so with one tag per target, a miss whose response is computed while any other write
    /// busts is dead on arrival; under the suite's constant writes that makes results vary
    /// between runs (docs/http-conformance.md). This keeps measurements repeatable.
    Keys,
}

/// The whole proxy: GET and HEAD cached, unsafe methods busting, OPTIONS and TRACE forwarded.
fn proxy(
    cache: CacheManager,
    upstream: Arc<Upstream>,
    caching: Caching,
    invalidation: Invalidation,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let namespace = Namespace::new("proxy").expect("a valid namespace");
    let policy = CachePolicy::new(namespace.clone())
        .key_with(|request: &RequestParts| format!("GET {}", target(request)));
    let policy = match caching {
        Caching::Http { heuristic_cap } => {
            policy.semantics(CacheSemantics::Http).ttl(heuristic_cap)
        }
        Caching::Policy { ttl } => {
            let statuses = STORED_STATUSES
                .iter()
                .map(|&code| StatusCode::from_u16(code).expect("a status code"));
            policy.ttl(ttl).statuses(statuses)
        }
    };
    let (policy, bust) = match invalidation {
        Invalidation::Tags => (
            policy.tags_with(|cx: &TagContext| [uri_tag(&target(cx.request))]),
            BustPolicy::reply_tags(namespace),
        ),
        Invalidation::Keys => (
            policy,
            BustPolicy::default().and_key(namespace, |request: &RequestParts| {
                format!("GET {}", target(request))
            }),
        ),
    };

    let reads = methods(|m| *m == Method::GET || *m == Method::HEAD).and(cached(
        cache.clone(),
        policy,
        forward(Arc::clone(&upstream)),
    ));
    let writes = methods(|m| !m.is_safe()).and(cache_busting(
        cache,
        bust,
        forward_write(Arc::clone(&upstream)),
    ));
    reads.or(writes).unify().or(forward(upstream)).unify()
}

/// Passes requests whose method `accept` takes, rejects the others (404, so that the next
/// route in an `or` chain is tried).
fn methods(accept: fn(&Method) -> bool) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::method()
        .and_then(move |method: Method| async move {
            if accept(&method) {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
}

/// The route the cache wraps: forwards the request and answers with what the upstream said.
fn forward(
    upstream: Arc<Upstream>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    incoming().then(move |request: Incoming| {
        let upstream = Arc::clone(&upstream);
        async move { upstream.forward(request).await }
    })
}

/// Forwards a write, and names what a successful one invalidates: its target, and the
/// `Location` and `Content-Location` of its response when they are on the same host (RFC 9111
/// section 4.4).
fn forward_write(
    upstream: Arc<Upstream>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    incoming().then(move |request: Incoming| {
        let upstream = Arc::clone(&upstream);
        async move {
            let host = request.headers.get(header::HOST).cloned();
            let base = request.target.clone();
            let response = upstream.forward(request).await;
            let mut targets = vec![base.clone()];
            for name in [header::LOCATION, header::CONTENT_LOCATION] {
                if let Some(location) = response.headers().get(name) {
                    targets.extend(same_host_target(&base, host.as_ref(), location));
                }
            }
            let tags: Vec<String> = targets.iter().map(|t| uri_tag(t)).collect();
            with_bust_tags(response, tags)
        }
    })
}

/// A request as it is forwarded.
struct Incoming {
    method: Method,
    /// Path and query, as the client sent them.
    target: String,
    headers: HeaderMap,
    body: Bytes,
}

fn incoming() -> impl Filter<Extract = (Incoming,), Error = Rejection> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .map(
            |method, path: warp::path::FullPath, query: String, headers, body| Incoming {
                method,
                target: join_target(path.as_str(), &query),
                headers,
                body,
            },
        )
}

/// The upstream server and the client that reaches it.
struct Upstream {
    base: Uri,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Upstream {
    fn new(base: Uri) -> Self {
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self { base, client }
    }

    /// Sends `request` upstream and turns the answer into a warp response; an upstream that
    /// cannot be reached is a 502, one that takes too long a 504.
    async fn forward(&self, request: Incoming) -> Response {
        let head_request = request.method == Method::HEAD;
        let uri = format!(
            "{}://{}{}",
            self.base.scheme_str().unwrap_or("http"),
            self.base.authority().expect("checked when parsed"),
            request.target
        );
        let mut outgoing = Request::new(Full::new(request.body));
        *outgoing.method_mut() = request.method;
        *outgoing.uri_mut() = match uri.parse() {
            Ok(uri) => uri,
            Err(err) => return error(StatusCode::BAD_REQUEST, format!("bad target: {err}")),
        };
        *outgoing.headers_mut() = end_to_end(request.headers);
        outgoing.headers_mut().remove(header::CONTENT_LENGTH);
        // The cache key has no host: the upstream is told its own name, never the client's,
        // so a forged `Host` cannot make it answer for another site under our key.
        if let Ok(host) = HeaderValue::from_str(self.base.authority().expect("checked").as_str()) {
            outgoing.headers_mut().insert(header::HOST, host);
        }

        let answer = async {
            let response = self
                .client
                .request(outgoing)
                .await
                .map_err(|e| e.to_string())?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok::<_, String>((parts, body))
        };
        let (parts, body) = match tokio::time::timeout(UPSTREAM_TIMEOUT, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(err)) => return error(StatusCode::BAD_GATEWAY, format!("upstream: {err}")),
            Err(_) => return error(StatusCode::GATEWAY_TIMEOUT, "upstream timed out".into()),
        };
        let mut response = Response::new(body.into());
        *response.status_mut() = parts.status;
        *response.headers_mut() = end_to_end(parts.headers);
        // Carries the upstream's reason phrase when it is not the usual one ("299 Custom").
        *response.extensions_mut() = parts.extensions;
        if !head_request {
            // Recomputed from the body (which the cache may also re-encode); a HEAD answer
            // keeps the length of the representation it describes.
            response.headers_mut().remove(header::CONTENT_LENGTH);
        }
        response
    }
}

/// `headers` without the hop-by-hop ones, which describe one connection, not the message.
fn end_to_end(mut headers: HeaderMap) -> HeaderMap {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    let hop_by_hop = [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ];
    for name in hop_by_hop.iter().chain(&listed) {
        headers.remove(name);
    }
    headers
}

fn error(status: StatusCode, message: String) -> Response {
    let mut response = Response::new(message.into());
    *response.status_mut() = status;
    response
}

/// Path and raw query as one target (`/a?b=c`, or `/a`).
fn join_target(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

/// The request's target, verbatim: the cache key and the tag of its entry.
fn target(request: &RequestParts) -> String {
    join_target(request.path(), request.query())
}

/// The tag every entry of `target` is filed under, so that a write can invalidate them all.
/// Tags allow few characters and a bounded length, so the target is hashed.
fn uri_tag(target: &str) -> String {
    let digest = Sha256::digest(target.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("uri:{hex}")
}

/// The path and query `location` names, resolved against `base`, when it is on the request's
/// own host: a response must not invalidate another host's entries.
fn same_host_target(
    base: &str,
    host: Option<&HeaderValue>,
    location: &HeaderValue,
) -> Option<String> {
    let location = location.to_str().ok()?;
    if location.starts_with('/') && !location.starts_with("//") {
        return Some(location.to_string());
    }
    if let Ok(uri) = location.parse::<Uri>() {
        if let (Some(authority), Some(path)) = (uri.authority(), uri.path_and_query()) {
            let host = host?.to_str().ok()?;
            return authority
                .as_str()
                .eq_ignore_ascii_case(host)
                .then(|| path.as_str().to_string());
        }
    }
    // A relative reference: resolved against the base's directory (no dot segments).
    let path = base.split('?').next().unwrap_or("/");
    let dir = &path[..=path.rfind('/').unwrap_or(0)];
    Some(format!("{dir}{location}"))
}
