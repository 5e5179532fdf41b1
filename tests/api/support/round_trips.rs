//! What a request costs in Redis: the round trips clients sent while an action ran
//! (`MONITOR`), and command counts (`INFO commandstats`).

use std::process::{Command, Stdio};
use std::time::Duration;

use super::{free_port, RedisServer};

/// How long `redis-cli monitor` may take to print its next line.
const MONITOR_TIMEOUT: Duration = Duration::from_secs(10);

/// The commands clients sent to `server` while `action` ran, lower-cased, in order: round
/// trips, not the commands a Lua script ran on their behalf (`MONITOR` tells them apart, which
/// `INFO commandstats` cannot).
pub async fn round_trips<Fut: std::future::Future>(
    server: &RedisServer,
    action: impl FnOnce() -> Fut,
) -> (Fut::Output, Vec<String>) {
    round_trips_on(server.port(), action).await
}

/// [`round_trips`] as seen by the Redis server on `port` (one node of a cluster, say).
pub async fn round_trips_on<Fut: std::future::Future>(
    port: u16,
    action: impl FnOnce() -> Fut,
) -> (Fut::Output, Vec<String>) {
    use std::io::BufRead;
    let mut monitor = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "monitor"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-cli runs");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stdout = monitor.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |rx: &std::sync::mpsc::Receiver<String>| {
        rx.recv_timeout(MONITOR_TIMEOUT)
            .expect("redis-cli monitor printed a line in time")
    };
    assert_eq!(next(&lines_rx), "OK", "MONITOR started");
    let output = action().await;
    let marker = format!("round-trips-marker-{}", free_port());
    let _: String = redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
        .and_then(|client| client.get_connection())
        .and_then(|mut conn| redis::cmd("ECHO").arg(&marker).query(&mut conn))
        .expect("ECHO the marker");
    let mut commands = Vec::new();
    loop {
        let line = next(&lines_rx);
        if line.contains(&marker) {
            break;
        }
        if line.contains(" lua]") {
            continue;
        }
        // The instance's background work, not the request's: the server watch (INFO, CLUSTER
        // SLOTS, every second), heartbeats and write-intent sweeps (every 2 s).
        let name = line.split('"').nth(1).unwrap_or_default().to_lowercase();
        if matches!(name.as_str(), "info" | "cluster")
            || line.contains("#alive:")
            || line.contains("#intent:")
        {
            continue;
        }
        commands.push(name);
    }
    monitor.kill().ok();
    monitor.wait().ok();
    (output, commands)
}

/// Calls per command name (`mget`, `set`, ...) since start.
pub fn command_calls(server: &RedisServer, command: &str) -> u64 {
    let info: String = server.command(redis::cmd("INFO").arg("commandstats"));
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0)
}
