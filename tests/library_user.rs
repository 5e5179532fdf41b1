//! The library's promise to a warp user, checked (a test binary of its own, so that building
//! the app never competes for the CPU with the timing-sensitive tests in `tests/api`): a separate app (tests/user_app, its own
//! Cargo.toml and lock file, outside this workspace) adds `warp-redis-cache` with default
//! features, caches two routes and busts each with its own write, against a real Redis. Its
//! dependency tree holds none of the service's heavy parts.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

#[path = "api/support/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;

use redis_server::RedisServer;

fn x_cache(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-cache")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// What the service needs and a library user must not pay for.
const SERVICE_ONLY: [&str; 7] = [
    "rusqlite",
    "tokio-postgres",
    "deadpool-postgres",
    "reqwest",
    "utoipa",
    "prometheus",
    "serde_yaml",
];

/// The user's app copied out of the workspace, its path dependency pointing at the library.
fn user_app_checkout(root: &Path, into: &Path) {
    let library = root.join("crates/warp-redis-cache");
    let manifest = std::fs::read_to_string(root.join("tests/user_app/Cargo.toml"))
        .expect("user app manifest")
        .replace(
            "../../crates/warp-redis-cache",
            &library.display().to_string(),
        );
    std::fs::create_dir_all(into.join("src")).expect("src dir");
    std::fs::write(into.join("Cargo.toml"), manifest).expect("write manifest");
    std::fs::copy(
        root.join("tests/user_app/src/main.rs"),
        into.join("src/main.rs"),
    )
    .expect("copy main.rs");
    // The workspace's lock file pins the same versions, so the build needs no network; cargo
    // drops what the app does not use.
    std::fs::copy(root.join("Cargo.lock"), into.join("Cargo.lock")).expect("copy lock file");
}

fn cargo(dir: &Path, target: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO"))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo")
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

#[tokio::test]
async fn a_separate_warp_app_caches_and_busts_two_routes_with_the_library_as_one_dependency() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let checkout = tempfile::tempdir().expect("temp dir");
    user_app_checkout(&root, checkout.path());
    // Kept between runs, apart from the workspace's own builds.
    let target = root.join("target/user-app");
    let (dir, target_dir) = (checkout.path().to_path_buf(), target.clone());
    let (build, tree) = tokio::task::spawn_blocking(move || {
        let build = cargo(&dir, &target_dir, &["build", "--offline"]);
        let tree = cargo(
            &dir,
            &target_dir,
            &["tree", "--offline", "-e", "normal", "--prefix", "none"],
        );
        (build, tree)
    })
    .await
    .expect("build task");
    assert!(
        build.status.success(),
        "the user's app does not build:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let tree = String::from_utf8_lossy(&tree.stdout);
    assert!(tree.contains("warp-redis-cache v"), "{tree}");
    for heavy in SERVICE_ONLY {
        assert!(
            !tree
                .lines()
                .any(|line| line.starts_with(&format!("{heavy} v"))),
            "the library pulls {heavy} into a user's app"
        );
    }

    let redis = RedisServer::start();
    let mut child = Command::new(target.join("debug/user-app"))
        .env("REDIS_URL", redis.url())
        .env("PORT", "0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the user's app");
    let mut first_line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first_line)
        .expect("the app says where it listens");
    let _app = Running(child);
    let port: u16 = first_line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {first_line:?}"));
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let get = |path: &str| {
        let request = client.get(format!("{base}{path}"));
        async move {
            let response = request.send().await.expect("GET");
            let cache = x_cache(&response);
            (cache, response.text().await.expect("body"))
        }
    };

    let (cache, greeting) = get("/greetings/ada").await;
    assert_eq!(cache, "MISS");
    assert_eq!(
        get("/greetings/ada").await,
        ("HIT".to_string(), greeting.clone())
    );
    let (cache, about) = get("/about").await;
    assert_eq!(cache, "MISS");
    assert_eq!(get("/about").await, ("HIT".to_string(), about.clone()));
    let stored: u64 = redis.command(&redis::cmd("DBSIZE"));
    assert!(stored >= 2, "entries are in Redis: {stored} keys");

    let write = client.post(format!("{base}/greetings/ada")).send().await;
    assert!(write.expect("POST").status().is_success());
    let (cache, renewed) = get("/greetings/ada").await;
    assert_eq!(cache, "MISS", "the write busted the greetings");
    assert_ne!(renewed, greeting, "the handler ran again");
    assert_eq!(get("/about").await, ("HIT".to_string(), about.clone()));

    let write = client.put(format!("{base}/about")).send().await;
    assert!(write.expect("PUT").status().is_success());
    let (cache, renewed) = get("/about").await;
    assert_eq!(cache, "MISS", "the write busted the pages");
    assert_ne!(renewed, about);
}
