//! Redis failing under concurrent load: stopped, paused, slow, restarted, or holding garbage
//! under our keys. The bar: no 5xx, no request past the timeout budget, and the cache in use
//! again within a second of Redis coming back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{spawn_app, x_cache, TestApp};

/// The longest any request may take while Redis misbehaves: connect (300 ms) plus command
/// (200 ms) budgets, plus generous scheduling slack for a loaded 2-core machine.
const BUDGET: Duration = Duration::from_millis(1_500);

#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    status: u16,
    x_cache: String,
    took: Duration,
}

/// Runs `workers` loops of item GETs until stopped, recording every answer.
struct Load {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(app: &Arc<TestApp>, workers: usize, items: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..workers)
            .map(|worker| {
                let (app, stop, samples) =
                    (Arc::clone(app), Arc::clone(&stop), Arc::clone(&samples));
                tokio::spawn(async move {
                    let mut n = worker as u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let path = format!("/items/{}", n % items + 1);
                        let started = Instant::now();
                        let response = app.get(&path).await;
                        let sample = Sample {
                            at: started,
                            status: response.status().as_u16(),
                            x_cache: x_cache(&response),
                            took: started.elapsed(),
                        };
                        samples.lock().expect("samples").push(sample);
                    }
                })
            })
            .collect();
        Self {
            stop,
            samples,
            tasks,
        }
    }

    async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("worker");
        }
        let samples = self.samples.lock().expect("samples").clone();
        samples
    }
}

async fn app_with_items(items: u64) -> Arc<TestApp> {
    let app = spawn_app().await;
    for i in 0..items {
        app.create_item(json!({"name": format!("Item {i}"), "price": i}))
            .await;
    }
    Arc::new(app)
}

fn assert_healthy(samples: &[Sample], phase: &str) {
    assert!(!samples.is_empty(), "{phase}: no requests completed");
    let failures: Vec<&Sample> = samples.iter().filter(|s| s.status != 200).collect();
    assert!(
        failures.is_empty(),
        "{phase}: {} non-200 answers, e.g. {:?}",
        failures.len(),
        failures[0]
    );
    let slowest = samples.iter().map(|s| s.took).max().unwrap_or_default();
    assert!(slowest < BUDGET, "{phase}: a request took {slowest:?}");
}

/// The first HIT at or after `since`, as a delay from `since`.
fn first_hit_after(samples: &[Sample], since: Instant) -> Option<Duration> {
    samples
        .iter()
        .filter(|s| s.at >= since && s.x_cache == "HIT")
        .map(|s| s.at - since)
        .min()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_restart_under_load_fails_no_request_and_recovers_within_a_second() {
    let app = app_with_items(5).await;
    let load = Load::start(&app, 8, 5);
    tokio::time::sleep(Duration::from_millis(300)).await;

    app.redis().stop();
    let stopped = Instant::now();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    app.redis().restart();
    let back = Instant::now();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let samples = load.finish().await;

    assert_healthy(&samples, "stop/restart");
    let while_down: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at > stopped + Duration::from_millis(50) && s.at + s.took < back)
        .collect();
    assert!(
        while_down.iter().all(|s| s.x_cache != "HIT"),
        "HIT served while Redis was down"
    );
    assert!(
        while_down.len() > 20,
        "only {} requests while Redis was down",
        while_down.len()
    );
    let recovery = first_hit_after(&samples, back).expect("no HIT after Redis came back");
    assert!(
        recovery < Duration::from_secs(1),
        "cache back only after {recovery:?}"
    );
    eprintln!(
        "stop/restart: {} requests, slowest {:?}, {} while down, cache back after {recovery:?}",
        samples.len(),
        samples.iter().map(|s| s.took).max().unwrap_or_default(),
        while_down.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_slow_commands_under_load_fail_no_request() {
    let app = app_with_items(5).await;
    let load = Load::start(&app, 8, 5);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let _: () = app
        .redis()
        .command(redis::cmd("CLIENT").arg("PAUSE").arg(1_000).arg("ALL"));
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let resumed = Instant::now();
    tokio::time::sleep(Duration::from_millis(1_000)).await;

    let url = app.redis().url();
    let sleeper = std::thread::spawn(move || {
        let client = redis::Client::open(url).expect("url");
        let mut conn = client.get_connection().expect("connect");
        let _: redis::RedisResult<()> = redis::cmd("DEBUG").arg("SLEEP").arg(1).query(&mut conn);
    });
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let _ = tokio::task::spawn_blocking(move || sleeper.join()).await;
    let awake = Instant::now();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let samples = load.finish().await;

    assert_healthy(&samples, "pause/slow");
    let after_pause = first_hit_after(&samples, resumed).expect("no HIT after the pause");
    assert!(
        after_pause < Duration::from_secs(1),
        "cache back only after {after_pause:?}"
    );
    let after_sleep = first_hit_after(&samples, awake).expect("no HIT after DEBUG SLEEP");
    assert!(
        after_sleep < Duration::from_secs(1),
        "cache back only after {after_sleep:?}"
    );
}

#[tokio::test]
async fn garbage_under_our_keys_never_fails_a_request() {
    let app = app_with_items(2).await;
    app.get("/items/1").await;
    app.get("/items/2").await;
    let _: () = app.redis().command(
        redis::cmd("SET")
            .arg("wrc:items:GET:/items/1")
            .arg("\u{1}garbage"),
    );
    let _: () = app
        .redis()
        .command(redis::cmd("DEL").arg("wrc:items:GET:/items/2"));
    let _: () = app.redis().command(
        redis::cmd("RPUSH")
            .arg("wrc:items:GET:/items/2")
            .arg("a list"),
    );
    for path in ["/items/1", "/items/2", "/items"] {
        for _ in 0..3 {
            let response = app.get(path).await;
            assert_eq!(response.status(), 200, "{path}");
        }
    }
    let _: () = app.redis().command(redis::cmd("DEL").arg("wrc:#gen:items"));
    let _: () = app
        .redis()
        .command(redis::cmd("HSET").arg("wrc:#gen:items").arg("f").arg("v"));
    for path in ["/items/1", "/items"] {
        let response = app.get(path).await;
        assert_eq!(
            response.status(),
            200,
            "{path} with a garbage generation key"
        );
    }
    // Fail-open is not enough: the garbage must be healed so the cache works again.
    for path in ["/items/1", "/items/2", "/items"] {
        app.get(path).await;
        assert_eq!(
            x_cache(&app.get(path).await),
            "HIT",
            "{path} never cached again"
        );
    }
    let kind: String = app
        .redis()
        .command(redis::cmd("TYPE").arg("wrc:#gen:items"));
    assert_eq!(kind, "string", "the generation key was not repaired");
}
