//! The `cached` and `cache_busting` filters on routes of someone else's warp app, with origins
//! that count how often they run, against a real redis-server.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use warp::http::header::{HeaderName, AUTHORIZATION};
use warp::http::StatusCode;
use warp::{Filter, Reply};
use warp_redis_cache::{cache_busting, cached, BustPolicy, CachePolicy, RequestParts};
use warp_redis_cache::{CacheManager, Namespace};

use crate::support::{get, redis_manager, x_cache, RedisServer};

/// An origin at `/<name>` answering with `reply(call number)`, counting its calls.
fn counting_origin<R, F>(
    name: &'static str,
    calls: &Arc<AtomicUsize>,
    reply: F,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone
where
    R: Reply,
    F: Fn(usize) -> R + Clone + Send + Sync + 'static,
{
    let calls = Arc::clone(calls);
    warp::path(name).and(warp::get()).map(move || {
        let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
        reply(call).into_response()
    })
}

fn policy() -> CachePolicy {
    CachePolicy::new(Namespace::new("t").expect("valid"))
}

async fn setup() -> (RedisServer, CacheManager, Arc<AtomicUsize>) {
    let server = RedisServer::start();
    let cache = redis_manager(&server).await;
    (server, cache, Arc::new(AtomicUsize::new(0)))
}

#[tokio::test]
async fn set_cookie_and_no_store_responses_are_not_stored() {
    let (_server, cache, calls) = setup().await;
    let cookie = counting_origin("cookie", &calls, |n| {
        warp::reply::with_header(format!("call {n}"), "set-cookie", "session=abc")
    });
    let no_store = counting_origin("nostore", &calls, |n| {
        warp::reply::with_header(format!("call {n}"), "cache-control", "no-store")
    });
    let private = counting_origin("private", &calls, |n| {
        warp::reply::with_header(format!("call {n}"), "cache-control", "private, max-age=60")
    });
    let route = cached(
        cache,
        policy(),
        cookie.or(no_store).unify().or(private).unify(),
    );
    for path in ["/cookie", "/nostore", "/private"] {
        let before = calls.load(Ordering::SeqCst);
        for _ in 0..2 {
            let response = get(&route, path, &[]).await;
            assert_eq!(x_cache(&response), "MISS", "{path}");
        }
        assert_eq!(
            calls.load(Ordering::SeqCst) - before,
            2,
            "{path} was served from cache"
        );
    }
}

#[tokio::test]
async fn only_chosen_statuses_are_stored() {
    let (_server, cache, calls) = setup().await;
    let origin = counting_origin("gone", &calls, |_| {
        warp::reply::with_status("gone", StatusCode::NOT_FOUND)
    });
    let default_route = cached(cache.clone(), policy(), origin.clone());
    get(&default_route, "/gone", &[]).await;
    get(&default_route, "/gone", &[]).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let with_404 = policy().statuses([StatusCode::OK, StatusCode::NOT_FOUND]);
    let route = cached(
        cache.with_key_prefix("other").expect("prefix"),
        with_404,
        origin,
    );
    get(&route, "/gone", &[]).await;
    let second = get(&route, "/gone", &[]).await;
    assert_eq!(second.status(), StatusCode::NOT_FOUND);
    assert_eq!(x_cache(&second), "HIT");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn vary_headers_key_entries_and_allow_per_user_caching() {
    let (_server, cache, calls) = setup().await;
    let origin = counting_origin("me", &calls, |n| format!("call {n}"));
    let per_user = policy()
        .vary_on(AUTHORIZATION)
        .vary_on(HeaderName::from_static("accept-language"));
    let route = cached(cache, per_user, origin);
    let alice = [("authorization", "Bearer alice")];
    let bob = [("authorization", "Bearer bob")];
    assert_eq!(get(&route, "/me", &alice).await.body(), "call 1");
    assert_eq!(get(&route, "/me", &bob).await.body(), "call 2");
    let alice_again = get(&route, "/me", &alice).await;
    assert_eq!(x_cache(&alice_again), "HIT");
    assert_eq!(
        alice_again.body(),
        "call 1",
        "alice got someone else's response"
    );
    let french = [("authorization", "Bearer alice"), ("accept-language", "fr")];
    assert_eq!(get(&route, "/me", &french).await.body(), "call 3");
    let vary = get(&route, "/me", &french).await;
    let vary = vary.headers()["vary"].to_str().expect("text");
    assert!(
        vary.contains("authorization") && vary.contains("accept-language"),
        "{vary}"
    );
}

#[tokio::test]
async fn a_custom_key_function_decides_what_is_shared() {
    let (_server, cache, calls) = setup().await;
    let origin = warp::path!("page" / String).map({
        let calls = Arc::clone(&calls);
        move |_: String| format!("call {}", calls.fetch_add(1, Ordering::SeqCst) + 1)
    });
    let one_key = policy().key_with(|_: &RequestParts| "everything".to_string());
    let route = cached(cache, one_key, origin);
    assert_eq!(get(&route, "/page/a", &[]).await.body(), "call 1");
    let other_path = get(&route, "/page/b?x=1", &[]).await;
    assert_eq!(x_cache(&other_path), "HIT");
    assert_eq!(other_path.body(), "call 1");
}

#[tokio::test]
async fn an_origin_gzip_body_is_stored_as_is_never_compressed_twice() {
    let (server, cache, calls) = setup().await;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all("compressible ".repeat(500).as_bytes())
        .expect("write");
    let gzipped = bytes::Bytes::from(encoder.finish().expect("finish"));
    let body = gzipped.clone();
    let origin = counting_origin("gz", &calls, move |_| {
        let mut response = warp::reply::Response::new(body.clone().into());
        response
            .headers_mut()
            .insert("content-encoding", "gzip".parse().expect("header"));
        response
    });
    let route = cached(cache, policy(), origin);
    get(&route, "/gz", &[("accept-encoding", "gzip")]).await;
    let hit = get(&route, "/gz", &[("accept-encoding", "gzip")]).await;
    assert_eq!(x_cache(&hit), "HIT");
    assert_eq!(hit.body(), &gzipped, "the gzip body changed");
    let stored: Vec<u8> = server.command(redis::cmd("GET").arg("wrc:t:GET:/gz"));
    assert!(
        stored.ends_with(&gzipped),
        "stored body differs from the origin's gzip body"
    );
    let plain = get(&route, "/gz", &[]).await;
    assert_eq!(plain.body(), "compressible ".repeat(500).as_bytes());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn bodies_over_the_entry_limit_are_sent_whole_but_not_stored() {
    let (_server, cache, calls) = setup().await;
    let big = "x".repeat(10_000);
    let sized = counting_origin("sized", &calls, {
        let big = big.clone();
        move |_| big.clone()
    });
    let streamed = counting_origin("streamed", &calls, {
        let big = big.clone();
        move |_| {
            let chunks: Vec<Result<bytes::Bytes, std::convert::Infallible>> = big
                .as_bytes()
                .chunks(1_000)
                .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
                .collect();
            warp::reply::stream(futures_util::stream::iter(chunks))
        }
    });
    let small_limit = policy().max_entry_bytes(4_096);
    let route = cached(cache, small_limit, sized.or(streamed).unify());
    for path in ["/sized", "/streamed"] {
        for _ in 0..2 {
            let response = get(&route, path, &[]).await;
            assert_eq!(response.body().len(), 10_000, "{path} body cut");
            assert_eq!(x_cache(&response), "MISS", "{path}");
            let status = response.headers()["cache-status"].to_str().expect("text");
            assert!(status.contains("detail=too-large"), "{status}");
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn other_methods_pass_through_untouched() {
    let (_server, cache, calls) = setup().await;
    let origin = warp::path("thing").and(warp::post()).map({
        let calls = Arc::clone(&calls);
        move || format!("call {}", calls.fetch_add(1, Ordering::SeqCst) + 1)
    });
    let route = cached(cache, policy(), origin);
    for n in 1..=2 {
        let response = warp::test::request()
            .method("POST")
            .path("/thing")
            .reply(&route)
            .await;
        assert_eq!(response.body(), format!("call {n}").as_str());
        assert!(response.headers().get("x-cache").is_none());
    }
}

#[tokio::test]
async fn busting_keys_computed_from_the_request_deletes_only_those() {
    let (_server, cache, calls) = setup().await;
    let ns = Namespace::new("t").expect("valid");
    let reads = cached(
        cache.clone(),
        policy(),
        warp::path!("doc" / u32).and(warp::get()).map({
            let calls = Arc::clone(&calls);
            move |id| format!("doc {id} v{}", calls.fetch_add(1, Ordering::SeqCst) + 1)
        }),
    );
    let bust_one = BustPolicy::default().and_key(ns, |request: &RequestParts| {
        RequestParts::get_key_for(request.path(), "")
    });
    let writes = cache_busting(
        cache,
        bust_one,
        warp::path!("doc" / u32).and(warp::put()).map(|_| "saved"),
    );
    let app = reads.or(writes);
    for id in [1, 2] {
        warp::test::request()
            .path(&format!("/doc/{id}"))
            .reply(&app)
            .await;
    }
    let put = warp::test::request()
        .method("PUT")
        .path("/doc/1")
        .reply(&app)
        .await;
    assert_eq!(put.status(), 200);
    let one = warp::test::request().path("/doc/1").reply(&app).await;
    let two = warp::test::request().path("/doc/2").reply(&app).await;
    assert_eq!(x_cache(&one), "MISS");
    assert_eq!(x_cache(&two), "HIT");
}

#[tokio::test]
async fn a_failed_bust_makes_the_namespace_bypass_until_a_retry_succeeds() {
    let (server, cache, calls) = setup().await;
    let ns = Namespace::new("t").expect("valid");
    let version = Arc::new(AtomicUsize::new(1));
    let reads = cached(
        cache.clone(),
        policy(),
        counting_origin("v", &calls, {
            let version = Arc::clone(&version);
            move |_| format!("v{}", version.load(Ordering::SeqCst))
        }),
    );
    let writes = cache_busting(
        cache,
        BustPolicy::namespace(ns),
        warp::path("v").and(warp::put()).map({
            let version = Arc::clone(&version);
            move || {
                version.fetch_add(1, Ordering::SeqCst);
                "saved"
            }
        }),
    );
    let app = reads.or(writes);
    warp::test::request().path("/v").reply(&app).await;
    assert_eq!(
        x_cache(&warp::test::request().path("/v").reply(&app).await),
        "HIT"
    );

    // Writes block for 1.5 s while reads still answer: the bust times out, the entry survives.
    let _: () = server.command(redis::cmd("CLIENT").arg("PAUSE").arg(1_500).arg("WRITE"));
    let put = warp::test::request()
        .method("PUT")
        .path("/v")
        .reply(&app)
        .await;
    assert_eq!(
        put.status(),
        200,
        "the write must stand even though the bust failed"
    );
    let during = warp::test::request().path("/v").reply(&app).await;
    assert_eq!(
        during.body(),
        "v2",
        "a stale entry was served after a write"
    );
    assert_eq!(x_cache(&during), "BYPASS");

    let _: () = server.command(redis::cmd("CLIENT").arg("UNPAUSE"));
    let after = warp::test::request().path("/v").reply(&app).await;
    assert_eq!(after.body(), "v2");
    assert_eq!(x_cache(&after), "MISS");
    assert_eq!(
        x_cache(&warp::test::request().path("/v").reply(&app).await),
        "HIT"
    );
}
