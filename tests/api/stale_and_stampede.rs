//! Stampede control and stale serving: concurrent misses run the origin once, a stale entry is
//! answered at once and refreshed once in the background, and a failing origin is covered by
//! a stale entry.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use warp::http::StatusCode;
use warp::Filter;
use warp_redis_cache::{cached, CachePolicy, Namespace};

use crate::support::{body_text, eventually, get, header, redis_manager, x_cache, RedisServer};

/// An origin at `/r` that counts its calls, waits `delay` (so calls overlap), and answers
/// `v<call>` or, while `failing` is set, 503.
fn origin(
    calls: &Arc<AtomicUsize>,
    failing: &Arc<AtomicBool>,
    delay: Duration,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection>
       + Clone
       + Send
       + Sync
       + 'static {
    let (calls, failing) = (Arc::clone(calls), Arc::clone(failing));
    warp::path("r").and(warp::get()).then(move || {
        let (calls, failing) = (Arc::clone(&calls), Arc::clone(&failing));
        async move {
            use warp::Reply;
            let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(delay).await;
            if failing.load(Ordering::SeqCst) {
                return warp::reply::with_status("down", StatusCode::SERVICE_UNAVAILABLE)
                    .into_response();
            }
            format!("v{call}").into_response()
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_on_a_cold_key_run_the_origin_once() {
    let server = RedisServer::start();
    let cache = redis_manager(&server).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(AtomicBool::new(false));
    let route = cached(
        cache,
        CachePolicy::new(Namespace::new("s").expect("valid")),
        origin(&calls, &failing, Duration::from_millis(200)),
    );
    let requests: Vec<_> = (0..50)
        .map(|_| {
            let route = route.clone();
            tokio::spawn(async move { get(&route, "/r", &[]).await })
        })
        .collect();
    let mut answers = Vec::new();
    for request in requests {
        answers.push(request.await.expect("request"));
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the origin ran more than once"
    );
    assert!(answers
        .iter()
        .all(|answer| answer.status() == 200 && answer.body() == "v1"));
    let collapsed = answers
        .iter()
        .filter(|&answer| header(answer, "cache-status").contains("collapsed"))
        .count();
    assert_eq!(collapsed, 49, "followers should say they were collapsed");
}

#[tokio::test]
async fn a_stale_entry_is_answered_at_once_and_refreshed_once_in_the_background() {
    let server = RedisServer::start();
    let cache = redis_manager(&server).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(AtomicBool::new(false));
    let policy = CachePolicy::new(Namespace::new("s").expect("valid"))
        .ttl(Duration::from_millis(300))
        // Early refresh would keep the entry from ever going stale under this polling.
        .early_refresh(0.0)
        .stale_while_revalidate(Duration::from_secs(30));
    let route = cached(
        cache,
        policy,
        origin(&calls, &failing, Duration::from_millis(100)),
    );
    assert_eq!(get(&route, "/r", &[]).await.body(), "v1");
    let stale = eventually(Duration::from_secs(3), || async {
        x_cache(&get(&route, "/r", &[]).await) == "STALE"
    })
    .await;
    assert!(stale, "the entry never went stale");

    let mut answers = Vec::new();
    for _ in 0..10 {
        let started = std::time::Instant::now();
        let answer = get(&route, "/r", &[]).await;
        assert!(
            started.elapsed() < Duration::from_millis(90),
            "a stale answer waited for the origin"
        );
        answers.push(answer);
    }
    assert!(answers
        .iter()
        .all(|answer| answer.body() == "v1" || answer.body() == "v2"));
    let refreshed = eventually(Duration::from_secs(3), || async {
        get(&route, "/r", &[]).await.body() == "v2"
    })
    .await;
    assert!(refreshed, "the background refresh never landed");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the stale entry was refreshed more than once"
    );
    let hit = get(&route, "/r", &[]).await;
    assert_eq!(x_cache(&hit), "HIT");
    let status = header(&hit, "cache-status");
    assert!(status.contains("; hit; ttl="), "{status}");
}

#[tokio::test]
async fn a_failing_origin_is_covered_by_a_stale_entry_and_a_healthy_one_refreshes_it() {
    let server = RedisServer::start();
    let cache = redis_manager(&server).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(AtomicBool::new(false));
    let policy = CachePolicy::new(Namespace::new("s").expect("valid"))
        .ttl(Duration::from_millis(200))
        .early_refresh(0.0)
        .stale_while_revalidate(Duration::ZERO)
        .stale_if_error(Duration::from_secs(60))
        .origin_timeout(Duration::from_millis(300));
    let slow = Arc::new(AtomicBool::new(false));
    let route = cached(cache, policy, {
        let slow = Arc::clone(&slow);
        origin(&calls, &failing, Duration::ZERO)
            .and(warp::any().map(move || Arc::clone(&slow)))
            .and_then(
                |response: warp::reply::Response, slow: Arc<AtomicBool>| async move {
                    if slow.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                    Ok::<_, warp::Rejection>(response)
                },
            )
    });
    assert_eq!(get(&route, "/r", &[]).await.body(), "v1");
    // Let the fresh lifetime (200 ms) run out without touching the entry: any request would
    // refresh it. The clock is the condition here, so there is nothing to poll.
    tokio::time::sleep(Duration::from_millis(300)).await;

    failing.store(true, Ordering::SeqCst);
    let covered = get(&route, "/r", &[]).await;
    assert_eq!(
        (covered.status(), body_text(&covered), x_cache(&covered)),
        (StatusCode::OK, "v1".into(), "STALE".into())
    );
    let cache_status = header(&covered, "cache-status");
    assert!(
        cache_status.contains("fwd-status=503; detail=stale-if-error"),
        "{cache_status}"
    );

    failing.store(false, Ordering::SeqCst);
    slow.store(true, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let timed_out = get(&route, "/r", &[]).await;
    assert_eq!(
        (timed_out.status(), body_text(&timed_out)),
        (StatusCode::OK, "v1".into())
    );
    let cache_status = header(&timed_out, "cache-status");
    assert!(
        cache_status.contains("stale-if-error-timeout"),
        "{cache_status}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "waited past the origin timeout"
    );

    slow.store(false, Ordering::SeqCst);
    let refreshed = get(&route, "/r", &[]).await;
    assert_eq!(x_cache(&refreshed), "MISS");
    let body = body_text(&refreshed);
    assert!(body.starts_with('v') && body != "v1", "{body}");
    assert_eq!(x_cache(&get(&route, "/r", &[]).await), "HIT");
}

/// Two instances (separate filter stacks and managers, one Redis) take `requests` concurrent
/// misses of a cold key between them; returns how often the origin ran.
async fn origin_runs_across_two_instances(refill_lock: bool, requests: usize) -> usize {
    let server = RedisServer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(AtomicBool::new(false));
    let mut instances = Vec::new();
    for _ in 0..2 {
        let cache = redis_manager(&server).await;
        let policy = CachePolicy::new(Namespace::new("s").expect("valid")).refill_lock(refill_lock);
        instances.push(cached(
            cache,
            policy,
            origin(&calls, &failing, Duration::from_millis(300)),
        ));
    }
    let tasks: Vec<_> = (0..requests)
        .map(|i| {
            let route = instances[i % 2].clone();
            tokio::spawn(async move { get(&route, "/r", &[]).await })
        })
        .collect();
    for task in tasks {
        let answer = task.await.expect("request");
        assert_eq!(
            (answer.status(), body_text(&answer).starts_with('v')),
            (StatusCode::OK, true)
        );
    }
    calls.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_lock_each_instance_refills_once_and_with_it_one_refills_for_all() {
    assert_eq!(
        origin_runs_across_two_instances(false, 40).await,
        2,
        "once per instance"
    );
    assert_eq!(
        origin_runs_across_two_instances(true, 40).await,
        1,
        "once overall"
    );
}

/// What steady load on one hot key did over `run`, through two instances sharing one Redis.
struct HotKeyRun {
    origin_calls: usize,
    /// Answers after warm-up that were not served from a fresh entry (MISS, or collapsed
    /// behind another request's origin call).
    waited: usize,
    answers: usize,
    early_refreshes: usize,
}

async fn hot_key_load(beta: f64, ttl: Duration, run: Duration) -> HotKeyRun {
    let server = RedisServer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(AtomicBool::new(false));
    let mut instances = Vec::new();
    for _ in 0..2 {
        let policy = CachePolicy::new(Namespace::new("hot").expect("valid"))
            .ttl(ttl)
            .stale_while_revalidate(Duration::ZERO)
            .stale_if_error(Duration::ZERO)
            .early_refresh(beta);
        let origin = origin(&calls, &failing, Duration::from_millis(30));
        instances.push(cached(redis_manager(&server).await, policy, origin));
    }
    // Warm up: the first answer is a miss by necessity.
    assert_eq!(get(&instances[0], "/r", &[]).await.status(), StatusCode::OK);
    let deadline = tokio::time::Instant::now() + run;
    let mut clients = Vec::new();
    for client in 0..16 {
        let route = instances[client % 2].clone();
        clients.push(tokio::spawn(async move {
            let (mut waited, mut answers, mut early) = (0, 0, 0);
            while tokio::time::Instant::now() < deadline {
                let answer = get(&route, "/r", &[]).await;
                assert_eq!(answer.status(), StatusCode::OK);
                answers += 1;
                let cache_status = header(&answer, "cache-status");
                if x_cache(&answer) != "HIT" || cache_status.contains("collapsed") {
                    waited += 1;
                }
                if cache_status.contains("early-refresh") {
                    early += 1;
                }
            }
            (waited, answers, early)
        }));
    }
    let mut result = HotKeyRun {
        origin_calls: 0,
        waited: 0,
        answers: 0,
        early_refreshes: 0,
    };
    for client in clients {
        let (waited, answers, early) = client.await.expect("client");
        result.waited += waited;
        result.answers += answers;
        result.early_refreshes += early;
    }
    result.origin_calls = calls.load(Ordering::SeqCst);
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_key_is_refreshed_early_about_once_per_ttl_and_never_missed() {
    let (ttl, run) = (Duration::from_millis(500), Duration::from_millis(3000));
    let lifetimes = (run.as_millis() / ttl.as_millis()) as usize; // 6
    let early = hot_key_load(1.0, ttl, run).await;
    let late = hot_key_load(0.0, ttl, run).await;
    eprintln!(
        "early refresh: {} origin calls, {} waits in {} answers ({} early refreshes); \
         without: {} origin calls, {} waits in {} answers",
        early.origin_calls,
        early.waited,
        early.answers,
        early.early_refreshes,
        late.origin_calls,
        late.waited,
        late.answers
    );
    assert!(early.answers > 1000, "too little load to mean anything");
    // About once per TTL (a refresh takes the refill lock, so the other instance does not
    // refresh the same lifetime; early refreshes make lifetimes a little shorter), never once
    // per concurrent request.
    assert!(
        early.origin_calls <= lifetimes * 3 / 2 + 2,
        "{} origin calls for {lifetimes} lifetimes",
        early.origin_calls
    );
    assert!(
        early.early_refreshes >= lifetimes - 1,
        "{} early refreshes",
        early.early_refreshes
    );
    assert_eq!(
        early.waited, 0,
        "with early refresh no client waits for the origin"
    );
    // The same load without it: every expiry makes clients wait for the origin.
    assert!(
        late.waited >= lifetimes,
        "without early refresh only {} waits: the test cannot tell",
        late.waited
    );
}
