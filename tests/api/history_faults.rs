//! The concurrent history checker of `busting_races`, with faults injected while it runs.
//!
//! Several instances (each its own `CacheManager`: its own connection, breaker and pending
//! busts) serve one store over one Redis; tasks read and write through instances picked at
//! random. A read that starts after a write of its key was acknowledged must see that write or
//! a later one. Each fault has a documented window (README, failure table) in which other
//! instances may still read what a failed bust missed; a stale read outside it fails the test.
//! Each run prints, per fault, the operations done and the stale reads seen inside the window.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use warp_redis_cache::admin::{
    INSTANCE_HEARTBEAT_TTL as HEARTBEAT_TTL, WRITE_INTENT_SWEEP_INTERVAL as SWEEP_INTERVAL,
};
use warp_redis_cache::CacheManager;
use warp_redis_cache::{BackendChoice, CacheConfig};

use crate::busting_races::{
    floors, history_app, reads_all, versions_seen, write_version, writes, Busting, Moves,
};
use crate::support::{cache_settings, redis_settings, RedisServer};

/// Keys the tasks write; reads also cover one more, `QUIET`, written only by the instance that
/// dies mid-write, so nothing but the replay of its intent can bust it.
const KEYS: usize = 3;
const QUIET: usize = KEYS;
const TASKS: usize = 8;
/// How long each history runs, and when its fault starts.
const HISTORY: Duration = Duration::from_secs(12);
const FAULT_AT: Duration = Duration::from_millis(1_500);
/// The write intents' grace in these instances.
const GRACE: Duration = Duration::from_millis(300);
/// After a fault ends, how long other instances may still read what a failed bust missed:
/// the breaker's cool-down (500 ms) plus the longest retry pause (1 s), plus scheduling slack
/// on a loaded 2-core machine.
const SETTLE: Duration = Duration::from_millis(2_500);
/// Slack on top of grace + sweep interval for an abandoned intent's replay to land.
const REPLAY_SLACK: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Redis frozen (SIGSTOP) for 600 ms.
    RedisPaused,
    /// Redis killed (SIGKILL) and started again from the RDB file saved when the history began.
    RedisRestartedFromRdb,
    /// An instance dies between a write's commit and its bust (its runtime is shut down: no
    /// destructor busts, its heartbeat stops, as in a SIGKILL); the others must replay the
    /// write's intent.
    InstanceKilledMidWrite,
    /// Redis stops; a new instance on `cache.backend: auto` starts on its memory fallback and
    /// joins the others; Redis comes back 600 ms later.
    AutoInstanceJoins,
}

fn settings() -> CacheConfig {
    CacheConfig {
        write_intent_grace_ms: GRACE.as_millis() as u64,
        ..cache_settings()
    }
}

async fn instance(server: &RedisServer, backend: BackendChoice) -> CacheManager {
    let cache = CacheConfig {
        backend,
        ..settings()
    };
    CacheManager::connect(&cache, &redis_settings(&server.url()))
        .await
        .expect("valid settings")
}

type App = warp::filters::BoxedFilter<(warp::reply::Response,)>;

fn app(cache: CacheManager, versions: &Arc<Vec<AtomicUsize>>) -> App {
    use warp::{Filter, Reply};
    history_app(cache, Arc::clone(versions), Busting::Tags)
        .map(Reply::into_response)
        .boxed()
}

/// An instance whose write commits and then never returns: the process "dies" between the
/// commit and the bust (see [`kill_an_instance_mid_write`]).
fn doomed_app(cache: CacheManager, versions: &Arc<Vec<AtomicUsize>>) -> App {
    use warp::{Filter, Reply};
    use warp_redis_cache::Namespace;
    use warp_redis_cache::{cache_busting, BustPolicy, RequestParts};
    let versions = Arc::clone(versions);
    let write = warp::path!("h" / usize)
        .and(warp::put())
        .and_then(move |k: usize| {
            versions[k].fetch_add(1, Ordering::SeqCst);
            async move {
                std::future::pending::<()>().await;
                Ok::<_, warp::Rejection>("never")
            }
        });
    let policy = BustPolicy::tags(Namespace::new("h").expect("valid"), |r: &RequestParts| {
        vec![format!(
            "k:{}",
            r.path().rsplit('/').next().unwrap_or_default()
        )]
    });
    cache_busting(cache, policy, write)
        .map(Reply::into_response)
        .boxed()
}

/// Runs an instance on a runtime of its own, has it commit a write of `QUIET`, then shuts that
/// runtime down while the write waits before its bust: its tasks are dropped without running
/// (no bust, no cancelled-write task, no more heartbeats), as in a SIGKILL. Returns the
/// version committed.
async fn kill_an_instance_mid_write(
    server: &RedisServer,
    versions: &Arc<Vec<AtomicUsize>>,
) -> usize {
    let url = server.url();
    let versions = Arc::clone(versions);
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the doomed instance");
        let committed = runtime.block_on(async {
            let cache = CacheConfig {
                backend: BackendChoice::Redis,
                ..settings()
            };
            let manager = CacheManager::connect(&cache, &redis_settings(&url))
                .await
                .expect("valid settings");
            let doomed = doomed_app(manager, &versions);
            let before = versions[QUIET].load(Ordering::SeqCst);
            tokio::spawn(async move {
                warp::test::request()
                    .method("PUT")
                    .path(&format!("/h/{QUIET}"))
                    .reply(&doomed)
                    .await
            });
            while versions[QUIET].load(Ordering::SeqCst) == before {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            before + 1
        });
        runtime.shutdown_background();
        committed
    })
    .await
    .expect("the doomed instance ran")
}

/// What one history saw.
#[derive(Debug, Default)]
struct Report {
    operations: usize,
    stale_in_window: usize,
    /// (ms since start, path, key, acknowledged, seen)
    violations: Vec<(u128, String, usize, usize, usize)>,
    /// Cache errors the first instances counted (a failed bust explains stale reads on the
    /// other instance until its retry lands: a window of its own, reported for diagnosis).
    cache_errors: u64,
}

async fn run_history(fault: Fault) -> Report {
    let mut server = RedisServer::start_persistent();
    let versions: Arc<Vec<AtomicUsize>> =
        Arc::new((0..=QUIET).map(|_| AtomicUsize::new(0)).collect());
    let acknowledged: Arc<Vec<AtomicUsize>> =
        Arc::new((0..=QUIET).map(|_| AtomicUsize::new(0)).collect());
    let mut first = Vec::new();
    let mut managers = Vec::new();
    for _ in 0..2 {
        let manager = instance(&server, BackendChoice::Redis).await;
        managers.push(manager.clone());
        first.push(app(manager, &versions));
    }
    let instances = Arc::new(RwLock::new(first));
    let started = Instant::now();
    let window_end = Arc::new(RwLock::new(None::<Instant>));

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (instances, acknowledged, window_end) = (
            Arc::clone(&instances),
            Arc::clone(&acknowledged),
            Arc::clone(&window_end),
        );
        tasks.push(tokio::spawn(async move {
            let mut report = Report::default();
            let mut moves = Moves::seeded(task as u64 + 7);
            while started.elapsed() < HISTORY {
                let state = moves.next_state();
                let app = {
                    let all = instances.read().expect("instances");
                    all[(state >> 32) as usize % all.len()].clone()
                };
                let k = (state % KEYS as u64) as usize;
                report.operations += 1;
                if writes(state) {
                    write_version(&app, k, &acknowledged).await;
                    continue;
                }
                let floors = floors(&acknowledged);
                let read_at = Instant::now();
                let path = if reads_all(state) {
                    "/h/all".to_string()
                } else {
                    format!("/h/{}", (state >> 8) as usize % (QUIET + 1))
                };
                let response = warp::test::request().path(&path).reply(&app).await;
                for (key, seen) in versions_seen(response.body()) {
                    if seen >= floors[key] {
                        continue;
                    }
                    let in_window = read_at >= started + FAULT_AT
                        && window_end
                            .read()
                            .expect("window")
                            .is_none_or(|end| read_at <= end);
                    if in_window {
                        report.stale_in_window += 1;
                    } else {
                        let at = read_at.duration_since(started).as_millis();
                        report
                            .violations
                            .push((at, path.clone(), key, floors[key], seen));
                    }
                }
            }
            report
        }));
    }

    let mut return_early = false;
    let _: String = server.command(&redis::cmd("SAVE"));
    tokio::time::sleep(FAULT_AT.saturating_sub(started.elapsed())).await;
    match fault {
        Fault::RedisPaused => {
            server.pause();
            tokio::time::sleep(Duration::from_millis(600)).await;
            server.resume();
        }
        Fault::RedisRestartedFromRdb => {
            server = tokio::task::spawn_blocking(move || {
                server.restart();
                server
            })
            .await
            .expect("restart");
        }
        Fault::InstanceKilledMidWrite => {
            let committed = kill_an_instance_mid_write(&server, &versions).await;
            // Once its heartbeat expired and a sweep replayed its intent, readers must see
            // the committed write.
            let replay_bound = HEARTBEAT_TTL.max(GRACE) + SWEEP_INTERVAL;
            let acknowledged = Arc::clone(&acknowledged);
            tokio::spawn(async move {
                tokio::time::sleep(replay_bound + REPLAY_SLACK).await;
                acknowledged[QUIET].fetch_max(committed, Ordering::SeqCst);
            });
            tokio::time::sleep(replay_bound + REPLAY_SLACK).await;
            *window_end.write().expect("window") = Some(Instant::now());
            return_early = true;
        }
        Fault::AutoInstanceJoins => {
            let mut stopped = tokio::task::spawn_blocking(move || {
                server.stop();
                server
            })
            .await
            .expect("stop");
            let auto = app(instance(&stopped, BackendChoice::Auto).await, &versions);
            instances.write().expect("instances").push(auto);
            tokio::time::sleep(Duration::from_millis(600)).await;
            stopped = tokio::task::spawn_blocking(move || {
                stopped.restart();
                stopped
            })
            .await
            .expect("restart");
            server = stopped;
            // The auto instance's probe runs every second.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    if !return_early {
        *window_end.write().expect("window") = Some(Instant::now() + SETTLE);
    }

    let mut total = Report::default();
    for task in tasks {
        let report = task.await.expect("task");
        total.operations += report.operations;
        total.stale_in_window += report.stale_in_window;
        total.violations.extend(report.violations);
    }
    total.cache_errors = managers
        .iter()
        .map(|manager| manager.stats().snapshot().total.errors)
        .sum();
    drop(server);
    total
}

async fn history_survives(fault: Fault) {
    let report = run_history(fault).await;
    eprintln!(
        "{fault:?}: {} operations, {} stale reads inside the documented window, {} outside",
        report.operations,
        report.stale_in_window,
        report.violations.len()
    );
    assert!(
        report.operations > 500,
        "{fault:?}: too few operations: {report:?}"
    );
    assert!(
        report.violations.is_empty(),
        "{fault:?}: stale reads outside the window, e.g. (ms, path, key, acknowledged, seen) {:?}; \
         cache errors counted by the first instances: {}",
        &report.violations[..report.violations.len().min(5)],
        report.cache_errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_with_redis_paused_has_no_stale_read_outside_the_retry_window() {
    history_survives(Fault::RedisPaused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_with_redis_restarted_from_its_rdb_has_no_stale_read_outside_the_window() {
    history_survives(Fault::RedisRestartedFromRdb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_with_an_instance_killed_mid_write_has_no_stale_read_after_the_replay() {
    history_survives(Fault::InstanceKilledMidWrite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_with_an_auto_instance_joining_has_no_stale_read_outside_the_window() {
    history_survives(Fault::AutoInstanceJoins).await;
}
