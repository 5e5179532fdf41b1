//! `cached` with `CacheSemantics::Http` (RFC 9111 as a shared cache) on a scripted origin,
//! against a real redis-server: one test per rule the mode implements, end to end through the
//! filter and Redis. The rules on headers alone are unit-tested in the library
//! (`filters/http/tests.rs`); docs/http-conformance.md has the suite's verdict.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use warp::http::header::HeaderMap;
use warp::http::StatusCode;
use warp::Filter;
use warp_redis_cache::{cached, CacheManager, CachePolicy, CacheSemantics, Namespace};

use crate::support::{body_text, command_calls, get, redis_manager, x_cache, RedisServer};

/// One scripted answer: status, headers, body.
type Scripted = (u16, Vec<(&'static str, String)>, &'static str);

/// An origin at `/r` that answers with its script, in order, and records the headers of every
/// request it gets.
#[derive(Clone, Default)]
struct Origin {
    script: Arc<Mutex<VecDeque<Scripted>>>,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
    /// When set, each call waits for a permit before answering (to hold a call open while
    /// other requests arrive).
    gate: Option<Arc<tokio::sync::Semaphore>>,
}

impl Origin {
    fn new(script: Vec<Scripted>) -> Self {
        let origin = Self::default();
        *origin.script.lock().unwrap() = script.into();
        origin
    }

    fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn request(&self, call: usize) -> HeaderMap {
        self.seen.lock().unwrap()[call].clone()
    }

    fn route(
        &self,
    ) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
        let origin = self.clone();
        warp::path("r")
            .and(warp::header::headers_cloned())
            .and_then(move |headers: HeaderMap| {
                let origin = origin.clone();
                async move {
                    origin.seen.lock().unwrap().push(headers);
                    if let Some(gate) = &origin.gate {
                        gate.acquire().await.expect("open").forget();
                    }
                    Ok::<_, warp::Rejection>(origin.answer())
                }
            })
    }

    /// The next scripted answer.
    fn answer(&self) -> warp::reply::Response {
        let (status, pairs, body) = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .expect("the origin was asked more often than scripted");
        let mut response = warp::reply::Response::new(body.into());
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        for (name, value) in pairs {
            response.headers_mut().append(name, value.parse().unwrap());
        }
        response
    }
}

/// Lookups (`MGET`s) redis-server has answered so far.
fn lookups(server: &RedisServer) -> u64 {
    command_calls(server, "mget")
}

/// Waits until redis-server has answered `more` lookups after `before`, then lets this process
/// take their answers: from a lookup's answer to joining a flight a request does no I/O, so
/// once the answers are here the requests reach the flight within a few polls.
async fn lookups_answered(server: &RedisServer, before: u64, more: u64) {
    while lookups(server) < before + more {
        tokio::task::yield_now().await;
    }
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

fn http_date(offset_secs: i64) -> String {
    let now = std::time::SystemTime::now();
    let at = if offset_secs >= 0 {
        now + std::time::Duration::from_secs(offset_secs as u64)
    } else {
        now - std::time::Duration::from_secs((-offset_secs) as u64)
    };
    httpdate::fmt_http_date(at)
}

fn ok(headers: &[(&'static str, &str)], body: &'static str) -> Scripted {
    (
        200,
        headers.iter().map(|(n, v)| (*n, v.to_string())).collect(),
        body,
    )
}

async fn setup(
    origin: &Origin,
) -> (
    RedisServer,
    CacheManager,
    impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone,
) {
    let server = RedisServer::start();
    let cache = redis_manager(&server).await;
    let policy = CachePolicy::new(Namespace::new("http").unwrap()).semantics(CacheSemantics::Http);
    let route = cached(cache.clone(), policy, origin.route());
    (server, cache, route)
}

#[tokio::test]
async fn rule_4_2_1_freshness_comes_from_the_response_and_its_age() {
    let origin = Origin::new(vec![
        ok(&[("cache-control", "max-age=3600")], "fresh"),
        ok(&[("cache-control", "max-age=3600"), ("age", "7200")], "old"),
        ok(&[("cache-control", "max-age=3600")], "new"),
    ]);
    let (_server, _cache, route) = setup(&origin).await;
    assert_eq!(x_cache(&get(&route, "/r", &[]).await), "MISS");
    let hit = get(&route, "/r", &[]).await;
    assert_eq!(
        (x_cache(&hit), body_text(&hit)),
        ("HIT".into(), "fresh".into())
    );
    assert_eq!(origin.calls(), 1);

    // Stored already older than its lifetime (`Age: 7200`): never served as fresh.
    let (_server, _cache, route) = setup(&origin).await;
    assert_eq!(x_cache(&get(&route, "/r", &[]).await), "MISS");
    let again = get(&route, "/r", &[]).await;
    assert_eq!(body_text(&again), "new");
    assert_eq!(origin.calls(), 3);
}

#[tokio::test]
async fn rule_3_responses_without_freshness_or_marked_no_store_or_private_are_not_reused() {
    let origin = Origin::new(vec![
        ok(&[], "none"),
        ok(&[], "none again"),
        ok(&[("cache-control", "no-store, max-age=60")], "no-store"),
        ok(
            &[("cache-control", "no-store, max-age=60")],
            "no-store again",
        ),
        ok(&[("cache-control", "private, max-age=60")], "private"),
        ok(&[("cache-control", "private, max-age=60")], "private again"),
    ]);
    let (_server, _cache, route) = setup(&origin).await;
    for round in 0..3 {
        let first = get(&route, "/r", &[]).await;
        let second = get(&route, "/r", &[]).await;
        assert_eq!(x_cache(&first), "MISS", "round {round}");
        assert_eq!(x_cache(&second), "MISS", "round {round}");
        assert_ne!(body_text(&first), body_text(&second));
    }
    assert_eq!(origin.calls(), 6);
}

#[tokio::test]
async fn rule_4_the_route_headers_are_replayed_as_sent_with_a_computed_age() {
    let date = http_date(-100);
    let origin = Origin::new(vec![ok(
        &[
            ("cache-control", "max-age=600"),
            ("etag", "\"v1\""),
            ("date", &date),
            ("x-route", "kept"),
        ],
        "body",
    )]);
    let (_server, _cache, route) = setup(&origin).await;
    get(&route, "/r", &[]).await;
    let hit = get(&route, "/r", &[]).await;
    assert_eq!(x_cache(&hit), "HIT");
    let header = |name: &str| hit.headers()[name].to_str().unwrap().to_string();
    assert_eq!(header("etag"), "\"v1\"");
    assert_eq!(header("cache-control"), "max-age=600");
    assert_eq!(header("date"), date);
    assert_eq!(header("x-route"), "kept");
    let age: u64 = header("age").parse().unwrap();
    assert!(
        (100..110).contains(&age),
        "Age {age} is not the time since Date"
    );
}

#[tokio::test]
async fn rule_4_3_2_client_conditionals_are_answered_from_the_stored_validators() {
    let modified = http_date(-3600);
    let origin = Origin::new(vec![ok(
        &[
            ("cache-control", "max-age=600"),
            ("etag", "\"v1\""),
            ("last-modified", &modified),
        ],
        "body",
    )]);
    let (_server, _cache, route) = setup(&origin).await;
    get(&route, "/r", &[]).await;
    let by_tag = get(&route, "/r", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(by_tag.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(x_cache(&by_tag), "HIT");
    let by_date = get(&route, "/r", &[("if-modified-since", &http_date(-60))]).await;
    assert_eq!(by_date.status(), StatusCode::NOT_MODIFIED);
    let older = get(&route, "/r", &[("if-modified-since", &http_date(-7200))]).await;
    assert_eq!(
        (older.status(), body_text(&older)),
        (StatusCode::OK, "body".into())
    );
    let other_tag = get(&route, "/r", &[("if-none-match", "\"v2\"")]).await;
    assert_eq!(other_tag.status(), StatusCode::OK);
    assert_eq!(origin.calls(), 1);
}

#[tokio::test]
async fn rule_4_3_stale_entries_are_revalidated_conditionally_and_updated_from_a_304() {
    let origin = Origin::new(vec![
        ok(
            &[
                ("cache-control", "no-cache"),
                ("etag", "\"v1\""),
                ("x-version", "1"),
            ],
            "stored body",
        ),
        (
            304,
            vec![
                ("cache-control", "max-age=600".into()),
                ("etag", "\"v1\"".into()),
                ("x-version", "2".into()),
            ],
            "",
        ),
    ]);
    let (_server, _cache, route) = setup(&origin).await;
    assert_eq!(x_cache(&get(&route, "/r", &[]).await), "MISS");
    let revalidated = get(&route, "/r", &[]).await;
    assert_eq!(origin.request(1)["if-none-match"], "\"v1\"");
    assert_eq!(revalidated.status(), StatusCode::OK);
    assert_eq!(body_text(&revalidated), "stored body");
    assert_eq!(revalidated.headers()["x-version"], "2");
    let hit = get(&route, "/r", &[]).await;
    assert_eq!(x_cache(&hit), "HIT");
    assert_eq!(hit.headers()["x-version"], "2");
    assert_eq!(hit.headers()["cache-control"], "max-age=600");
    assert_eq!(origin.calls(), 2);
}

#[tokio::test]
async fn rule_4_1_vary_selects_which_requests_a_response_answers() {
    let varying = |body| ok(&[("cache-control", "max-age=600"), ("vary", "Foo")], body);
    let origin = Origin::new(vec![varying("foo 1"), varying("foo 2"), varying("no foo")]);
    let (_server, _cache, route) = setup(&origin).await;
    assert_eq!(
        body_text(&get(&route, "/r", &[("foo", "1")]).await),
        "foo 1"
    );
    let same = get(&route, "/r", &[("foo", "1"), ("other", "x")]).await;
    assert_eq!(
        (x_cache(&same), body_text(&same)),
        ("HIT".into(), "foo 1".into())
    );
    let other = get(&route, "/r", &[("foo", "2")]).await;
    assert_eq!(
        (x_cache(&other), body_text(&other)),
        ("MISS".into(), "foo 2".into())
    );
    let absent = get(&route, "/r", &[]).await;
    assert_eq!(body_text(&absent), "no foo");
    assert_eq!(origin.calls(), 3);
}

#[tokio::test]
async fn rule_4_2_4_must_revalidate_is_never_served_stale_but_others_are_when_the_origin_fails() {
    let failing = (503, vec![], "down");
    let stale = |cc: &str| ok(&[("cache-control", cc), ("etag", "\"v1\"")], "stale body");
    let origin = Origin::new(vec![
        stale("max-age=0, must-revalidate"),
        failing.clone(),
        stale("max-age=0"),
        failing,
    ]);
    let (_server, _cache, route) = setup(&origin).await;
    get(&route, "/r", &[]).await;
    let strict = get(&route, "/r", &[]).await;
    assert_eq!(strict.status(), StatusCode::SERVICE_UNAVAILABLE);

    let (_server, _cache, route) = setup(&origin).await;
    get(&route, "/r", &[]).await;
    let lenient = get(&route, "/r", &[]).await;
    assert_eq!(lenient.status(), StatusCode::OK);
    assert_eq!(body_text(&lenient), "stale body");
    assert_eq!(x_cache(&lenient), "STALE");
    assert_eq!(origin.calls(), 4);
}

#[tokio::test]
async fn rule_3_5_authorization_gets_only_responses_that_allow_sharing() {
    let origin = Origin::new(vec![
        ok(&[("cache-control", "max-age=600")], "mine"),
        ok(&[("cache-control", "max-age=600")], "anonymous"),
        ok(&[("cache-control", "max-age=600")], "mine again"),
    ]);
    let (_server, _cache, route) = setup(&origin).await;
    let auth = [("authorization", "Bearer a")];
    // Not stored: the response did not say `public`, `s-maxage` or `must-revalidate`.
    assert_eq!(body_text(&get(&route, "/r", &auth).await), "mine");
    assert_eq!(body_text(&get(&route, "/r", &[]).await), "anonymous");
    assert_eq!(x_cache(&get(&route, "/r", &[]).await), "HIT");
    // Stored for anonymous requests, but not handed to one with credentials.
    assert_eq!(body_text(&get(&route, "/r", &auth).await), "mine again");
    assert_eq!(origin.calls(), 3);
}

#[tokio::test]
async fn rfc_9213_cdn_cache_control_replaces_cache_control_for_this_cache() {
    let origin = Origin::new(vec![ok(
        &[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=600"),
        ],
        "shared",
    )]);
    let (_server, _cache, route) = setup(&origin).await;
    get(&route, "/r", &[]).await;
    let hit = get(&route, "/r", &[]).await;
    assert_eq!(
        (x_cache(&hit), body_text(&hit)),
        ("HIT".into(), "shared".into())
    );
    // Clients still get the origin's own Cache-Control.
    assert_eq!(hit.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn rule_4_1_a_collapsed_miss_never_hands_one_variant_to_a_request_for_another() {
    let server = RedisServer::start();
    let cache = redis_manager(&server).await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let origin = {
        let (gate, calls) = (Arc::clone(&gate), Arc::clone(&calls));
        warp::path("r")
            .and(warp::header::optional::<String>("foo"))
            .and_then(move |foo: Option<String>| {
                let (gate, calls) = (Arc::clone(&gate), Arc::clone(&calls));
                async move {
                    calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    // Each origin call waits for a permit, so the second request arrives
                    // while the first is still with the origin.
                    gate.acquire().await.expect("open").forget();
                    let body = format!("foo {}", foo.unwrap_or_default());
                    Ok::<_, warp::Rejection>(warp::reply::with_header(
                        warp::reply::with_header(body, "cache-control", "max-age=600"),
                        "vary",
                        "Foo",
                    ))
                }
            })
    };
    let policy = CachePolicy::new(Namespace::new("http").unwrap()).semantics(CacheSemantics::Http);
    let route = cached(cache, policy, origin);
    let first = tokio::spawn({
        let route = route.clone();
        async move { get(&route, "/r", &[("foo", "1")]).await }
    });
    while calls.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let before = lookups(&server);
    let second = tokio::spawn({
        let route = route.clone();
        async move { get(&route, "/r", &[("foo", "2")]).await }
    });
    // The second request reaches the flight the first one leads before the origin answers.
    lookups_answered(&server, before, 1).await;
    gate.add_permits(2);
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!(body_text(&first), "foo 1");
    assert_eq!(body_text(&second), "foo 2");
}

#[tokio::test]
async fn rule_4_a_body_over_the_compression_threshold_is_replayed_byte_for_byte() {
    let body: &'static str = Box::leak("0123456789".repeat(500).into_boxed_str());
    let origin = Origin::new(vec![ok(&[("cache-control", "max-age=600")], body)]);
    let (_server, _cache, route) = setup(&origin).await;
    get(&route, "/r", &[]).await;
    for accept in [&[][..], &[("accept-encoding", "gzip")][..]] {
        let hit = get(&route, "/r", accept).await;
        assert_eq!(x_cache(&hit), "HIT");
        assert_eq!(body_text(&hit), body);
        assert!(hit.headers().get("content-encoding").is_none());
    }
}

/// A route whose stored entry must be revalidated on every use, then the scripted answers of
/// the revalidations; the first origin call is open (no gate), later ones wait for permits.
async fn revalidating(
    after: Vec<Scripted>,
) -> (
    Origin,
    RedisServer,
    impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone,
    Arc<tokio::sync::Semaphore>,
) {
    let mut script = vec![ok(
        &[
            ("cache-control", "max-age=0, must-revalidate"),
            ("etag", "\"v1\""),
        ],
        "stored",
    )];
    script.extend(after);
    let gate = Arc::new(tokio::sync::Semaphore::new(1));
    let origin = Origin {
        gate: Some(Arc::clone(&gate)),
        ..Origin::new(script)
    };
    let (server, _cache, route) = setup(&origin).await;
    assert_eq!(body_text(&get(&route, "/r", &[]).await), "stored");
    (origin, server, route, gate)
}

/// Sends request A, waits until the origin holds `calls_before_b` calls, then sends request B,
/// which finds A's origin call in flight; then lets the origin answer.
async fn two_at_once<F>(
    server: &RedisServer,
    origin: &Origin,
    route: &F,
    gate: &tokio::sync::Semaphore,
    a_headers: &'static [(&'static str, &'static str)],
    b_headers: &'static [(&'static str, &'static str)],
    calls_before_b: usize,
) -> (
    warp::http::Response<bytes::Bytes>,
    warp::http::Response<bytes::Bytes>,
)
where
    F: Filter<Extract = (warp::reply::Response,), Error = warp::Rejection>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let a = tokio::spawn({
        let route = route.clone();
        async move { get(&route, "/r", a_headers).await }
    });
    while origin.calls() < calls_before_b {
        tokio::task::yield_now().await;
    }
    let before = lookups(server);
    let b = tokio::spawn({
        let route = route.clone();
        async move { get(&route, "/r", b_headers).await }
    });
    // B reaches the flight A leads before the origin answers.
    lookups_answered(server, before, 1).await;
    gate.add_permits(5);
    (a.await.unwrap(), b.await.unwrap())
}

#[tokio::test]
async fn rule_4_3_4_a_304_that_sets_a_cookie_answers_only_its_own_request() {
    let not_modified = (
        304,
        vec![
            ("etag", "\"v1\"".into()),
            ("set-cookie", "session=USER-A".into()),
        ],
        "",
    );
    let plain = (304, vec![("etag", "\"v1\"".into())], "");
    let (origin, server, route, gate) = revalidating(vec![not_modified, plain]).await;
    // Neither request carries a cookie: A leads the revalidation, B waits on it.
    let (a, b) = two_at_once(&server, &origin, &route, &gate, &[], &[], 2).await;
    assert_eq!(a.headers()["set-cookie"], "session=USER-A");
    assert!(
        b.headers().get("set-cookie").is_none(),
        "another client got user A's cookie"
    );
    assert_eq!(body_text(&b), "stored");
}

#[tokio::test]
async fn rule_4_3_a_request_waiting_on_a_revalidation_it_cannot_share_asks_the_origin_itself() {
    let unstorable = ok(&[("cache-control", "no-store")], "for a");
    let (origin, server, route, gate) = revalidating(vec![
        unstorable,
        ok(&[("cache-control", "no-store")], "for b"),
    ])
    .await;
    let (a, b) = two_at_once(&server, &origin, &route, &gate, &[], &[], 2).await;
    assert_eq!(body_text(&a), "for a");
    assert_eq!(
        b.status(),
        StatusCode::OK,
        "a waiting request got {}",
        b.status()
    );
    assert_eq!(body_text(&b), "for b");
}

#[tokio::test]
async fn rule_4_1_a_fresh_variant_keeps_its_slot_against_requests_for_others() {
    let varying = |body| ok(&[("cache-control", "max-age=600"), ("vary", "Foo")], body);
    let origin = Origin::new(vec![varying("foo 1"), varying("foo 2"), varying("foo 3")]);
    let (_server, _cache, route) = setup(&origin).await;
    get(&route, "/r", &[("foo", "1")]).await;
    for value in ["2", "3"] {
        let other = get(&route, "/r", &[("foo", value)]).await;
        assert_eq!(body_text(&other), format!("foo {value}"));
        assert!(other.headers()["cache-status"]
            .to_str()
            .unwrap()
            .contains("other-variant"));
    }
    let first = get(&route, "/r", &[("foo", "1")]).await;
    assert_eq!(
        (x_cache(&first), body_text(&first)),
        ("HIT".into(), "foo 1".into())
    );
}

#[tokio::test]
async fn requests_with_a_cookie_share_only_responses_marked_for_shared_caches() {
    let origin = Origin::new(vec![
        ok(&[("cache-control", "max-age=600")], "made for a"),
        ok(&[("cache-control", "max-age=600")], "anonymous"),
        ok(&[("cache-control", "public, max-age=600")], "public"),
    ]);
    let (_server, _cache, route) = setup(&origin).await;
    let cookie = [("cookie", "user=a")];
    assert_eq!(body_text(&get(&route, "/r", &cookie).await), "made for a");
    // Not stored: a later anonymous request goes to the origin.
    assert_eq!(body_text(&get(&route, "/r", &[]).await), "anonymous");
    // Stored for anonymous requests, but not handed to one with a cookie.
    assert_eq!(x_cache(&get(&route, "/r", &[]).await), "HIT");
    assert_eq!(body_text(&get(&route, "/r", &cookie).await), "public");
    assert_eq!(origin.calls(), 3);
}

#[tokio::test]
async fn rule_4_2_4_requests_waiting_on_a_failing_origin_do_not_ask_it_again() {
    let gate = Arc::new(tokio::sync::Semaphore::new(1));
    let origin = Origin {
        gate: Some(Arc::clone(&gate)),
        ..Origin::new(vec![
            ok(
                &[
                    ("cache-control", "max-age=10, stale-if-error=600"),
                    ("age", "20"),
                ],
                "stored",
            ),
            (500, vec![], "down"),
            (500, vec![], "down"),
        ])
    };
    let (server, _cache, route) = setup(&origin).await;
    assert_eq!(body_text(&get(&route, "/r", &[]).await), "stored");
    let (a, b) = two_at_once(&server, &origin, &route, &gate, &[], &[], 2).await;
    assert_eq!(
        (body_text(&a), body_text(&b)),
        ("stored".into(), "stored".into())
    );
    assert_eq!(
        origin.calls(),
        2,
        "the waiting request asked the failing origin again"
    );
}

#[tokio::test]
async fn rule_4_1_a_reload_for_another_variant_does_not_evict_a_fresh_one() {
    let varying = |body| ok(&[("cache-control", "max-age=600"), ("vary", "Foo")], body);
    let origin = Origin::new(vec![varying("foo 1"), varying("foo 2"), varying("foo 1b")]);
    let (_server, _cache, route) = setup(&origin).await;
    get(&route, "/r", &[("foo", "1")]).await;
    get(&route, "/r", &[("foo", "2"), ("cache-control", "no-cache")]).await;
    let first = get(&route, "/r", &[("foo", "1")]).await;
    assert_eq!(
        (x_cache(&first), body_text(&first)),
        ("HIT".into(), "foo 1".into())
    );
}

#[tokio::test]
async fn rule_4_1_concurrent_requests_for_another_variant_are_collapsed() {
    let varying = |body| ok(&[("cache-control", "max-age=600"), ("vary", "Foo")], body);
    let gate = Arc::new(tokio::sync::Semaphore::new(1));
    let origin = Origin {
        gate: Some(Arc::clone(&gate)),
        ..Origin::new(vec![
            varying("foo 1"),
            varying("foo 2"),
            varying("foo 2"),
            varying("foo 2"),
            varying("foo 2"),
        ])
    };
    let (server, _cache, route) = setup(&origin).await;
    get(&route, "/r", &[("foo", "1")]).await;
    let before = lookups(&server);
    let requests: Vec<_> = (0..4)
        .map(|_| {
            let route = route.clone();
            tokio::spawn(async move { get(&route, "/r", &[("foo", "2")]).await })
        })
        .collect();
    // All four reach the flight the first of them leads before the origin answers.
    while origin.calls() < 2 {
        tokio::task::yield_now().await;
    }
    lookups_answered(&server, before, 4).await;
    gate.add_permits(10);
    for request in requests {
        assert_eq!(body_text(&request.await.unwrap()), "foo 2");
    }
    assert_eq!(
        origin.calls(),
        2,
        "requests for variant 2 were not collapsed"
    );
}

#[tokio::test]
async fn rule_4_one_clients_precondition_failure_is_not_served_to_others() {
    let origin = Origin::new(vec![
        (
            412,
            vec![("cache-control", "max-age=600".to_string())],
            "precondition failed",
        ),
        ok(&[("cache-control", "max-age=600")], "the page"),
    ]);
    let (_server, _cache, route) = setup(&origin).await;
    let first = get(&route, "/r", &[("if-match", "\"nope\"")]).await;
    assert_eq!(first.status(), StatusCode::PRECONDITION_FAILED);
    let plain = get(&route, "/r", &[]).await;
    assert_eq!(
        (plain.status(), body_text(&plain)),
        (StatusCode::OK, "the page".into())
    );
}

#[tokio::test]
async fn rule_4_2_4_requests_waiting_on_a_must_revalidate_entry_share_the_origins_failure() {
    let down = (503, vec![], "down");
    let (origin, server, route, gate) = revalidating(vec![down.clone(), down]).await;
    let (a, b) = two_at_once(&server, &origin, &route, &gate, &[], &[], 2).await;
    assert_eq!(a.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(b.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        origin.calls(),
        2,
        "the waiting request asked the failing origin again"
    );
}
