//! The HTTP client of the operator commands: timeouts, bounded retries, and error messages an
//! operator can act on, in one place.
//!
//! Transient failures are retried up to `retries` times, as [`retry`](super::retry) decides:
//! connection errors, timeouts, 5xx and 429; any other 4xx is final. A create (POST) is not
//! idempotent, so before retrying one that may have reached the service (a timeout, a dropped
//! connection, a 5xx other than 503) the client looks the name up and returns the item when it
//! is already there.
//!
//! Not a general HTTP client: it knows this service's routes and error body. The admin token
//! goes on admin routes only, because the service neither looks up nor stores a GET that
//! carries `Authorization`, and warming must read through the cache.

use std::time::Duration;

use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::{BadBaseUrl, RequestError};
use super::retry::{backoff, is_transient, retry_after, status_may_have_applied};
use super::views::{KeyPageView, StatsView};
use crate::items::{Item, ItemPage, ListQuery, NewItem};
use crate::routes::admin::ClearResponse;
use crate::routes::purge::PurgeResponse;
use warp_redis_cache::Namespace;

/// Items per list page: the largest page the API serves.
pub const PAGE_SIZE: u32 = ListQuery::MAX_LIMIT;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the service is and how hard to try.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `http://host:port`, optionally with a path prefix.
    pub base_url: String,
    /// Bearer token for the admin routes.
    pub token: Option<String>,
    /// Retries after the first attempt of a request that failed transiently.
    pub retries: u32,
}

/// The cache headers of a read, which say whether it left the response cached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheHeaders {
    /// `X-Cache`: `HIT`, `MISS` or `BYPASS`.
    pub x_cache: Option<String>,
    /// RFC 9211 `Cache-Status`, e.g. `warp-redis-cache; fwd=miss; stored`.
    pub cache_status: Option<String>,
}

/// A client of one running service.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    retries: u32,
}

/// One request, rebuilt for each attempt.
struct Call<'a> {
    method: Method,
    path: String,
    admin: bool,
    body: Option<&'a serde_json::Value>,
}

/// An answer, body read in full.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// What one attempt came to.
enum Attempt {
    Done(Answer),
    Final(RequestError),
    Transient(Transient),
}

/// A failure worth retrying.
enum Transient {
    Status(Answer),
    Transport(reqwest::Error),
}

impl Client {
    /// A client for the service at `config.base_url` (plain `http://`; this build has no TLS).
    ///
    /// ```
    /// use warp_redis_cache_service::ops::client::{Client, ClientConfig};
    ///
    /// let config = |url: &str| ClientConfig { base_url: url.into(), token: None, retries: 3 };
    /// assert_eq!(Client::new(&config("http://127.0.0.1:8080/")).unwrap().base_url(), "http://127.0.0.1:8080");
    /// assert!(Client::new(&config("127.0.0.1:8080")).is_err());
    /// ```
    pub fn new(config: &ClientConfig) -> Result<Self, BadBaseUrl> {
        let bad = |reason: &str| BadBaseUrl {
            url: config.base_url.clone(),
            reason: reason.to_string(),
        };
        let url = reqwest::Url::parse(&config.base_url).map_err(|err| bad(&err.to_string()))?;
        match url.scheme() {
            "http" => {}
            "https" => return Err(bad("https is not supported: this build has no TLS")),
            _ => return Err(bad("must start with http://")),
        }
        if url.host_str().is_none() || url.query().is_some() || url.fragment().is_some() {
            return Err(bad("must be http://host[:port][/prefix], nothing more"));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("cachectl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| bad(&err.to_string()))?;
        Ok(Self {
            http,
            base: url.as_str().trim_end_matches('/').to_string(),
            token: config.token.clone(),
            retries: config.retries,
        })
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET /items/{id}`, body read and dropped; the cache headers say what the cache did.
    pub async fn get_item(&self, id: i64) -> Result<CacheHeaders, RequestError> {
        let answer = self.call(&Call::get(format!("/items/{id}"))).await?;
        Ok(cache_headers(&answer.headers))
    }

    /// `GET /items?limit=100&offset={offset}`.
    pub async fn list_page(&self, offset: u64) -> Result<(ItemPage, CacheHeaders), RequestError> {
        let call = Call::get(format!("/items?limit={PAGE_SIZE}&offset={offset}"));
        let answer = self.call(&call).await?;
        Ok((decode(&call, &answer)?, cache_headers(&answer.headers)))
    }

    /// Every item, a page at a time, in id order.
    pub async fn all_items(&self) -> Result<Vec<Item>, RequestError> {
        let mut items = Vec::new();
        loop {
            let (page, _) = self.list_page(items.len() as u64).await?;
            let last =
                page.items.is_empty() || items.len() + page.items.len() >= page.total as usize;
            items.extend(page.items);
            if last {
                return Ok(items);
            }
        }
    }

    /// The item named exactly `name` (after trimming), if there is one.
    pub async fn find_by_name(&self, name: &str) -> Result<Option<Item>, RequestError> {
        let name = name.trim();
        let q = utf8_percent_encode(name, NON_ALPHANUMERIC);
        let mut offset = 0u64;
        loop {
            let call = Call::get(format!("/items?q={q}&limit={PAGE_SIZE}&offset={offset}"));
            let page: ItemPage = decode(&call, &self.call(&call).await?)?;
            let seen = offset + page.items.len() as u64;
            if let Some(item) = page.items.into_iter().find(|item| item.name == name) {
                return Ok(Some(item));
            }
            if seen >= page.total || seen == offset {
                return Ok(None);
            }
            offset = seen;
        }
    }

    /// `POST /items`; retried only when the item is known not to exist yet.
    pub async fn create_item(&self, item: &NewItem) -> Result<Item, RequestError> {
        let body = serde_json::to_value(item).expect("an item serialises to JSON");
        let call = Call {
            method: Method::POST,
            path: "/items".into(),
            admin: false,
            body: Some(&body),
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let failure = match self.attempt(&call).await {
                Attempt::Done(answer) => return decode(&call, &answer),
                Attempt::Final(err) => return Err(err),
                Attempt::Transient(failure) => failure,
            };
            if attempts > self.retries {
                return Err(self.give_up(&call, failure, attempts));
            }
            let may_have_been_created = failure.may_have_applied();
            tokio::time::sleep(backoff(attempts, failure.retry_after())).await;
            if may_have_been_created {
                if let Some(existing) = self.find_by_name(&item.name).await? {
                    return Ok(existing);
                }
            }
        }
    }

    /// `POST /cache/clear/{namespace}` (admin).
    pub async fn clear_namespace(&self, ns: &Namespace) -> Result<ClearResponse, RequestError> {
        self.admin_json(Method::POST, format!("/cache/clear/{ns}"))
            .await
    }

    /// `DELETE /cache/clear` (admin): every key under the service's prefix.
    pub async fn clear_all(&self) -> Result<ClearResponse, RequestError> {
        self.admin_json(Method::DELETE, "/cache/clear".into()).await
    }

    /// The service-wide hit rate from `GET /cache/stats` (admin).
    pub async fn hit_rate(&self) -> Result<f64, RequestError> {
        #[derive(Deserialize)]
        struct Stats {
            hit_rate: f64,
        }
        let stats: Stats = self.admin_json(Method::GET, "/cache/stats".into()).await?;
        Ok(stats.hit_rate)
    }

    /// `GET /cache/stats` (admin).
    pub async fn stats(&self) -> Result<StatsView, RequestError> {
        self.admin_json(Method::GET, "/cache/stats".into()).await
    }

    /// One page of `GET /cache/keys` (admin): entries of `namespace` (or all), optionally only
    /// those starting with `prefix`, from `cursor`.
    pub async fn keys(
        &self,
        namespace: Option<&Namespace>,
        prefix: Option<&str>,
        cursor: u64,
        limit: usize,
    ) -> Result<KeyPageView, RequestError> {
        let mut path = format!("/cache/keys?limit={limit}&cursor={cursor}");
        if let Some(ns) = namespace {
            path.push_str(&format!("&namespace={ns}"));
        }
        if let Some(prefix) = prefix {
            let prefix = utf8_percent_encode(prefix, NON_ALPHANUMERIC);
            path.push_str(&format!("&prefix={prefix}"));
        }
        self.admin_json(Method::GET, path).await
    }

    /// `POST /cache/purge` (admin); with `dry_run` set in `request`, changes nothing.
    pub async fn purge(&self, request: &serde_json::Value) -> Result<PurgeResponse, RequestError> {
        let call = Call {
            method: Method::POST,
            path: "/cache/purge".into(),
            admin: true,
            body: Some(request),
        };
        decode(&call, &self.call(&call).await?)
    }

    async fn admin_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: String,
    ) -> Result<T, RequestError> {
        let call = Call {
            method,
            path,
            admin: true,
            body: None,
        };
        decode(&call, &self.call(&call).await?)
    }

    /// Sends `call`, retrying transient failures; for idempotent requests only.
    async fn call(&self, call: &Call<'_>) -> Result<Answer, RequestError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let failure = match self.attempt(call).await {
                Attempt::Done(answer) => return Ok(answer),
                Attempt::Final(err) => return Err(err),
                Attempt::Transient(failure) => failure,
            };
            if attempts > self.retries {
                return Err(self.give_up(call, failure, attempts));
            }
            tokio::time::sleep(backoff(attempts, failure.retry_after())).await;
        }
    }

    async fn attempt(&self, call: &Call<'_>) -> Attempt {
        match self.send(call).await {
            Ok(answer) if answer.status.is_success() => Attempt::Done(answer),
            Ok(answer) if is_transient(answer.status) => {
                Attempt::Transient(Transient::Status(answer))
            }
            Ok(answer) => Attempt::Final(RequestError::status(
                &call.method,
                &call.path,
                answer.status,
                &answer.body,
            )),
            Err(err) => Attempt::Transient(Transient::Transport(err)),
        }
    }

    async fn send(&self, call: &Call<'_>) -> Result<Answer, reqwest::Error> {
        let url = format!("{}{}", self.base, call.path);
        let mut request = self.http.request(call.method.clone(), url);
        if let (true, Some(token)) = (call.admin, &self.token) {
            request = request.bearer_auth(token);
        }
        if let Some(body) = call.body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    fn give_up(&self, call: &Call<'_>, failure: Transient, attempts: u32) -> RequestError {
        match failure {
            Transient::Status(answer) => {
                RequestError::status(&call.method, &call.path, answer.status, &answer.body)
            }
            Transient::Transport(err) => RequestError::unreachable(&self.base, &err, attempts),
        }
    }
}

impl Call<'_> {
    fn get(path: String) -> Self {
        Call {
            method: Method::GET,
            path,
            admin: false,
            body: None,
        }
    }
}

impl Transient {
    /// Whether the request may have taken effect although no success came back.
    fn may_have_applied(&self) -> bool {
        match self {
            Transient::Status(answer) => status_may_have_applied(answer.status),
            Transient::Transport(err) => !err.is_connect(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Transient::Status(answer) => retry_after(&answer.headers),
            Transient::Transport(_) => None,
        }
    }
}

fn cache_headers(headers: &HeaderMap) -> CacheHeaders {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    };
    CacheHeaders {
        x_cache: text("x-cache"),
        cache_status: text("cache-status"),
    }
}

fn decode<T: DeserializeOwned>(call: &Call<'_>, answer: &Answer) -> Result<T, RequestError> {
    serde_json::from_slice(&answer.body).map_err(|err| RequestError::Unexpected {
        method: call.method.clone(),
        path: call.path.clone(),
        detail: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_must_be_plain_http() {
        let config = |url: &str| ClientConfig {
            base_url: url.into(),
            token: None,
            retries: 0,
        };
        let client = Client::new(&config("http://localhost:8080/api/")).expect("valid");
        assert_eq!(client.base_url(), "http://localhost:8080/api");
        for bad in [
            "https://example.com",
            "ftp://x",
            "localhost:8080",
            "http://x/?a=1",
            "",
        ] {
            assert!(Client::new(&config(bad)).is_err(), "{bad}");
        }
    }
}
