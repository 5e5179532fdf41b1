//! Interleavings that delete-based busting gets wrong, made deterministic: an origin that
//! pauses between reading its data and answering, and a write that lands in that pause.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use warp::Filter;
use warp_redis_cache::{cache_busting, cached, BustPolicy, CachePolicy, RequestParts, TagContext};
use warp_redis_cache::{CacheManager, Namespace};

use crate::support::{body_text, eventually, get, redis_manager, x_cache, RedisServer};

/// A versioned resource at `/v`: GET answers `v<version>`, PUT increments the version.
struct Rig {
    version: Arc<AtomicUsize>,
    pause_next_read: Arc<AtomicBool>,
    read_done: Arc<Notify>,
    release: Arc<Notify>,
}

impl Rig {
    fn new() -> Self {
        Self {
            version: Arc::new(AtomicUsize::new(1)),
            pause_next_read: Arc::new(AtomicBool::new(false)),
            read_done: Arc::new(Notify::new()),
            release: Arc::new(Notify::new()),
        }
    }

    /// The app; `commit_delay` makes the PUT's commit run on a task of its own for that long
    /// (like the item store's `spawn_blocking`), so the request can be dropped mid-write.
    fn app(
        &self,
        cache: CacheManager,
        commit_delay: Option<Duration>,
    ) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection>
           + Clone
           + Send
           + Sync
           + 'static {
        let ns = Namespace::new("t").expect("valid");
        let (version, pause, read_done, release) = (
            Arc::clone(&self.version),
            Arc::clone(&self.pause_next_read),
            Arc::clone(&self.read_done),
            Arc::clone(&self.release),
        );
        let read = warp::path("v").and(warp::get()).and_then(move || {
            let (version, pause, read_done, release) = (
                version.clone(),
                pause.clone(),
                read_done.clone(),
                release.clone(),
            );
            async move {
                let seen = version.load(Ordering::SeqCst);
                if pause.swap(false, Ordering::SeqCst) {
                    read_done.notify_one();
                    release.notified().await;
                }
                Ok::<_, warp::Rejection>(format!("v{seen}"))
            }
        });
        let version = Arc::clone(&self.version);
        let write = warp::path("v").and(warp::put()).and_then(move || {
            let version = version.clone();
            async move {
                match commit_delay {
                    Some(delay) => {
                        let version = version.clone();
                        let commit = tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            version.fetch_add(1, Ordering::SeqCst);
                        });
                        commit.await.expect("commit task");
                    }
                    None => {
                        version.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Ok::<_, warp::Rejection>("saved")
            }
        });
        cached(cache.clone(), CachePolicy::new(ns.clone()), read).or(cache_busting(
            cache,
            BustPolicy::namespace(ns),
            write,
        ))
    }
}

/// The body and `X-Cache` of a GET of `/v`.
async fn seen(
    app: &(impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + 'static),
) -> (String, String) {
    let response = get(app, "/v", &[]).await;
    (body_text(&response), x_cache(&response))
}

/// What the cache holds when the race starts.
#[derive(Clone, Copy)]
enum Before {
    /// Nothing, not even a generation for the namespace.
    FreshNamespace,
    /// A generation, but no live entry for `/v` (so the GET misses).
    NoEntry,
    /// A live entry for `/v` (the GET must skip it to reach the origin).
    LiveEntry,
}

/// A GET reads v1 and pauses; a PUT commits v2 and returns; the GET resumes and stores what it
/// read. Returns the body and `X-Cache` a GET after all that sees.
async fn read_write_race(
    headers: &'static [(&'static str, &'static str)],
    before: Before,
) -> (String, String) {
    let server = RedisServer::start();
    let cache = redis_manager(&server).await;
    let rig = Rig::new();
    let app = rig.app(cache.clone(), None);
    match before {
        Before::FreshNamespace => {}
        Before::NoEntry => {
            let ns = Namespace::new("t").expect("valid");
            cache
                .bust_namespace(&ns)
                .await
                .expect("create a namespace record");
        }
        Before::LiveEntry => {
            get(&app, "/v", &[]).await;
            assert_eq!(seen(&app).await, ("v1".into(), "HIT".into()));
        }
    }
    rig.pause_next_read.store(true, Ordering::SeqCst);
    let slow_app = app.clone();
    let slow_get = tokio::spawn(async move { get(&slow_app, "/v", headers).await });
    rig.read_done.notified().await;
    let put = warp::test::request()
        .method("PUT")
        .path("/v")
        .reply(&app)
        .await;
    assert_eq!(put.status(), 200);
    rig.release.notify_one();
    assert_eq!(slow_get.await.expect("slow GET").body(), "v1");
    seen(&app).await
}

/// The last path segment of a request, as the tag `r:<segment>`.
fn own_tag(path: &str) -> String {
    format!("r:{}", path.rsplit('/').next().unwrap_or_default())
}

/// `/r/<name>`, each filed under a tag of its own (`r:<name>`, which has no record before its
/// first store): GET answers `<name> v<version>` (only `a` changes), PUT `/r/<name>` commits and
/// invalidates `r:<name>` only. A GET of `/r/a` reads and pauses; a PUT of `/r/<written>` lands;
/// the GET resumes and stores what it read. Returns what a GET of `/r/a` then sees.
async fn tagged_read_write_race(written: &str) -> (String, String) {
    let server = RedisServer::start();
    let cache = redis_manager(&server).await;
    let rig = Rig::new();
    let ns = Namespace::new("r").expect("valid");
    let (version, pause, read_done, release) = (
        Arc::clone(&rig.version),
        Arc::clone(&rig.pause_next_read),
        Arc::clone(&rig.read_done),
        Arc::clone(&rig.release),
    );
    let read = warp::path!("r" / String)
        .and(warp::get())
        .and_then(move |name: String| {
            let (version, pause, read_done, release) = (
                version.clone(),
                pause.clone(),
                read_done.clone(),
                release.clone(),
            );
            async move {
                let seen = if name == "a" {
                    version.load(Ordering::SeqCst)
                } else {
                    1
                };
                if pause.swap(false, Ordering::SeqCst) {
                    read_done.notify_one();
                    release.notified().await;
                }
                Ok::<_, warp::Rejection>(format!("{name} v{seen}"))
            }
        });
    let version = Arc::clone(&rig.version);
    let write = warp::path!("r" / String)
        .and(warp::put())
        .map(move |name: String| {
            if name == "a" {
                version.fetch_add(1, Ordering::SeqCst);
            }
            "saved"
        });
    let reads =
        CachePolicy::new(ns.clone()).tags_with(|cx: &TagContext| vec![own_tag(cx.request.path())]);
    let busts = BustPolicy::tags(ns, |request: &RequestParts| vec![own_tag(request.path())]);
    let app = cached(cache.clone(), reads, read).or(cache_busting(cache, busts, write));

    rig.pause_next_read.store(true, Ordering::SeqCst);
    let slow_app = app.clone();
    let slow_get = tokio::spawn(async move { get(&slow_app, "/r/a", &[]).await });
    rig.read_done.notified().await;
    let put = warp::test::request()
        .method("PUT")
        .path(&format!("/r/{written}"))
        .reply(&app)
        .await;
    assert_eq!(put.status(), 200);
    rig.release.notify_one();
    let slow = slow_get.await.expect("slow GET");
    assert_eq!(
        (body_text(&slow), x_cache(&slow)),
        ("a v1".into(), "MISS".into())
    );
    let after = get(&app, "/r/a", &[]).await;
    (body_text(&after), x_cache(&after))
}

#[tokio::test]
async fn an_entry_under_a_new_tag_survives_a_write_to_another_tag_during_its_miss() {
    let after = tagged_read_write_race("b").await;
    assert_eq!(after, ("a v1".into(), "HIT".into()));
}

#[tokio::test]
async fn an_entry_under_a_new_tag_dies_by_a_write_to_its_tag_during_its_miss() {
    let after = tagged_read_write_race("a").await;
    assert_eq!(
        after.0, "a v2",
        "stale entry served after a completed write: {after:?}"
    );
}

#[tokio::test]
async fn a_miss_that_read_before_a_write_never_stores_a_live_entry() {
    let after = read_write_race(&[], Before::NoEntry).await;
    assert_eq!(
        after.0, "v2",
        "stale entry served after a completed write: {after:?}"
    );
}

#[tokio::test]
async fn the_first_miss_of_a_fresh_namespace_is_race_free_too() {
    let after = read_write_race(&[], Before::FreshNamespace).await;
    assert_eq!(
        after.0, "v2",
        "stale entry served after a completed write: {after:?}"
    );
}

#[tokio::test]
async fn a_no_cache_refresh_racing_a_write_is_race_free() {
    let after = read_write_race(&[("cache-control", "no-cache")], Before::LiveEntry).await;
    assert_eq!(
        after.0, "v2",
        "stale entry served after a completed write: {after:?}"
    );
}

#[tokio::test]
async fn a_write_whose_request_is_dropped_mid_commit_still_busts() {
    let server = RedisServer::start();
    let cache = redis_manager(&server).await;
    let rig = Rig::new();
    let app = rig.app(cache, Some(Duration::from_millis(100)));
    get(&app, "/v", &[]).await;
    assert_eq!(seen(&app).await, ("v1".into(), "HIT".into()));

    let put = warp::test::request().method("PUT").path("/v").reply(&app);
    let dropped = tokio::time::timeout(Duration::from_millis(10), put).await;
    assert!(dropped.is_err(), "the PUT should still have been running");
    let committed = eventually(Duration::from_secs(2), || async {
        rig.version.load(Ordering::SeqCst) == 2
    })
    .await;
    assert!(committed, "the write never committed");
    let fresh = eventually(Duration::from_secs(2), || async {
        get(&app, "/v", &[]).await.body() == "v2"
    })
    .await;
    assert!(fresh, "a stale entry outlived a committed write");
}

/// How the history app invalidates.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Busting {
    /// A write busts the whole namespace.
    Namespace,
    /// Entries are tagged with the keys they hold; a write invalidates its key's tag.
    Tags,
}

/// A few versioned keys, read one at a time (`/h/<k>`) or all together (`/h/all`, a "list page"
/// holding every key); reads are slowed by a random 0-3 ms between reading the versions and
/// answering, writes increment a key's version.
pub(crate) fn history_app(
    cache: CacheManager,
    versions: Arc<Vec<AtomicUsize>>,
    busting: Busting,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone + Send + Sync + 'static
{
    let ns = Namespace::new("h").expect("valid");
    let read_versions = Arc::clone(&versions);
    let read = warp::path!("h" / String)
        .and(warp::get())
        .and_then(move |which: String| {
            let versions = Arc::clone(&read_versions);
            async move {
                let keys: Vec<usize> = match which.parse::<usize>() {
                    Ok(k) if k < versions.len() => vec![k],
                    Ok(_) => return Err(warp::reject::not_found()),
                    Err(_) => (0..versions.len()).collect(),
                };
                let seen: Vec<String> = keys
                    .iter()
                    .map(|k| format!("{k}={}", versions[*k].load(Ordering::SeqCst)))
                    .collect();
                let pause = (seen.len() as u64 * 2_654_435_761 + keys[0] as u64) % 4;
                tokio::time::sleep(Duration::from_millis(pause)).await;
                Ok::<_, warp::Rejection>(seen.join(","))
            }
        });
    let write = warp::path!("h" / usize)
        .and(warp::put())
        .map(move |k: usize| (versions[k].fetch_add(1, Ordering::SeqCst) + 1).to_string());
    let (read_policy, bust_policy) = match busting {
        Busting::Namespace => (CachePolicy::new(ns.clone()), BustPolicy::namespace(ns)),
        Busting::Tags => (
            CachePolicy::new(ns.clone()).tags_with(|cx: &TagContext| {
                String::from_utf8_lossy(cx.body)
                    .split(',')
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(k, _)| format!("k:{k}"))
                    .collect::<Vec<_>>()
            }),
            BustPolicy::tags(ns, |request: &RequestParts| {
                vec![format!(
                    "k:{}",
                    request.path().rsplit('/').next().unwrap_or_default()
                )]
            }),
        ),
    };
    cached(cache.clone(), read_policy, read).or(cache_busting(cache, bust_policy, write))
}

/// Parses `k=v,k=v` into (key, version) pairs.
pub(crate) fn versions_seen(body: &[u8]) -> Vec<(usize, usize)> {
    String::from_utf8_lossy(body)
        .split(',')
        .map(|pair| {
            let (k, v) = pair.split_once('=').expect("k=v");
            (k.parse().expect("key"), v.parse().expect("version"))
        })
        .collect()
}

/// The moves of a history task: a xorshift64 sequence seeded per task, so every run of a
/// history makes the same moves. One in five moves writes; of the reads, one in three reads the
/// page holding every key.
pub(crate) struct Moves(u64);

impl Moves {
    /// The sequence of task number `seed`.
    pub(crate) fn seeded(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// The next move's state.
    pub(crate) fn next_state(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Whether the move `state` writes.
pub(crate) fn writes(state: u64) -> bool {
    state.is_multiple_of(5)
}

/// Whether the read `state` reads the page of every key (else one key).
pub(crate) fn reads_all(state: u64) -> bool {
    state.is_multiple_of(3)
}

/// PUTs key `k` and records the version the write acknowledged.
pub(crate) async fn write_version<F>(app: &F, k: usize, acknowledged: &[AtomicUsize])
where
    F: Filter + 'static,
    F::Extract: warp::Reply + Send,
{
    let response = warp::test::request()
        .method("PUT")
        .path(&format!("/h/{k}"))
        .reply(app)
        .await;
    let written: usize = String::from_utf8_lossy(response.body())
        .parse()
        .expect("version");
    acknowledged[k].fetch_max(written, Ordering::SeqCst);
}

/// The versions acknowledged so far: a read that starts now must see at least these.
pub(crate) fn floors(acknowledged: &[AtomicUsize]) -> Vec<usize> {
    acknowledged
        .iter()
        .map(|a| a.load(Ordering::SeqCst))
        .collect()
}

/// Concurrent tasks read and write at random; a read that starts after a write of its key
/// returned must see that write (or a later one), whether it reads the key alone or the page
/// holding every key.
async fn history_without_stale_reads(busting: Busting) {
    const KEYS: usize = 3;
    const TASKS: usize = 12;
    const OPS_PER_TASK: usize = 250;
    let server = RedisServer::start();
    let base = redis_manager(&server).await;
    for round in 0..3 {
        let cache = base
            .with_key_prefix(&format!("round{round}"))
            .expect("prefix");
        let versions: Arc<Vec<AtomicUsize>> =
            Arc::new((0..KEYS).map(|_| AtomicUsize::new(0)).collect());
        let app = history_app(cache, Arc::clone(&versions), busting);
        // Per key: the highest version whose write has returned.
        let acknowledged: Arc<Vec<AtomicUsize>> =
            Arc::new((0..KEYS).map(|_| AtomicUsize::new(0)).collect());
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let (app, acknowledged) = (app.clone(), Arc::clone(&acknowledged));
            tasks.push(tokio::spawn(async move {
                let mut stale = Vec::new();
                let mut moves = Moves::seeded(task as u64 + 1);
                for _ in 0..OPS_PER_TASK {
                    let state = moves.next_state();
                    let k = (state % KEYS as u64) as usize;
                    if writes(state) {
                        write_version(&app, k, &acknowledged).await;
                    } else {
                        let floors = floors(&acknowledged);
                        let path = if reads_all(state) {
                            "/h/all".to_string()
                        } else {
                            format!("/h/{k}")
                        };
                        let response = warp::test::request().path(&path).reply(&app).await;
                        for (key, seen) in versions_seen(response.body()) {
                            if seen < floors[key] {
                                stale.push((path.clone(), key, floors[key], seen));
                            }
                        }
                    }
                }
                stale
            }));
        }
        let mut stale = Vec::new();
        for task in tasks {
            stale.extend(task.await.expect("task"));
        }
        let writes: usize = versions.iter().map(|v| v.load(Ordering::SeqCst)).sum();
        assert!(
            writes > 100,
            "round {round}: too few writes ({writes}) to mean anything"
        );
        assert!(
            stale.is_empty(),
            "{busting:?} round {round}: {} stale reads, e.g. (path, key, acknowledged, seen) {:?}",
            stale.len(),
            &stale[..stale.len().min(5)]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_read_that_starts_after_a_write_returned_sees_an_older_value() {
    history_without_stale_reads(Busting::Namespace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_invalidation_passes_the_same_history_test() {
    history_without_stale_reads(Busting::Tags).await;
}
