//! Tag records under concurrent invalidation, on both backends: an entry filed under a tag
//! that has no record yet must survive invalidations of *other* tags while its response is
//! computed, and must never survive an invalidation of one of *its* tags, even when that tag's
//! record is lost (deleted, evicted) before the entry is stored. Redis cases run against a
//! private redis-server on a free loopback port.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::generations::{Lookup, StorePayload};
use super::key::Namespace;
use super::manager::CacheManager;
use super::stamp::{NamespaceState, Stamp, TAG_LOG_MAX_BYTES};
use super::tag::{Invalidation, Tag};
use crate::config::{BackendChoice, CacheConfig, RedisConfig};

/// A redis-server owned by one test: a free loopback port, no persistence, killed on drop.
struct TestRedis {
    port: u16,
    child: Child,
}

impl TestRedis {
    fn start() -> Self {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .map(|addr| addr.port())
                .expect("bind an ephemeral port");
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .args(["--protected-mode", "no", "--loglevel", "warning"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server runs (apt-get install redis-server)");
            let mut server = Self { port, child };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if server.answers_ping() {
                    return server;
                }
                if let Ok(Some(_)) = server.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("could not start redis-server on a free port after 5 tries");
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Runs one command on a fresh synchronous connection.
    fn command<T: ::redis::FromRedisValue>(&self, cmd: &::redis::Cmd) -> T {
        let client = ::redis::Client::open(self.url()).expect("valid url");
        let mut conn = client.get_connection().expect("connect to test redis");
        cmd.query(&mut conn).expect("command succeeds")
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A manager under test, and the redis-server behind it when there is one.
struct Fixture {
    cache: CacheManager,
    server: Option<TestRedis>,
}

impl Fixture {
    fn memory() -> Self {
        Self {
            cache: CacheManager::in_memory(&CacheConfig::default()),
            server: None,
        }
    }

    async fn redis() -> Self {
        let server = TestRedis::start();
        let cache = CacheConfig {
            backend: BackendChoice::Redis,
            ..CacheConfig::default()
        };
        let redis = RedisConfig {
            url: server.url(),
            command_timeout_ms: 2_000,
            ..RedisConfig::default()
        };
        let cache = CacheManager::connect(&cache, &redis)
            .await
            .expect("valid redis settings");
        Self {
            cache,
            server: Some(server),
        }
    }

    fn ns(&self) -> Namespace {
        Namespace::new("pages").expect("valid namespace")
    }

    /// The stamp a request reads before it computes its response.
    async fn stamp(&self) -> Stamp {
        self.cache
            .current_stamp(&self.ns())
            .await
            .expect("stamp read")
    }

    async fn store(&self, key: &str, stamp: Stamp, tags: &[&str]) {
        let tags: Vec<Tag> = tags.iter().map(|t| Tag::new(t).expect("tag")).collect();
        self.cache
            .store(
                &self.ns(),
                key,
                stamp,
                &tags,
                b"{}",
                StorePayload::Plain(b"body"),
                None,
            )
            .await
            .expect("store");
    }

    async fn invalidate(&self, tags: &[&str], how: Invalidation) {
        let tags: Vec<Tag> = tags.iter().map(|t| Tag::new(t).expect("tag")).collect();
        self.cache
            .invalidate_tags(&self.ns(), &tags, how)
            .await
            .expect("invalidate");
    }

    /// `Some(soft_purged)` on a hit, `None` on a miss.
    async fn lookup(&self, key: &str) -> Option<bool> {
        match self
            .cache
            .lookup(&self.ns(), key, true)
            .await
            .expect("lookup")
        {
            Lookup::Hit { soft_purged, .. } => Some(soft_purged),
            Lookup::Miss { .. } => None,
        }
    }

    /// Deletes the tag's record, as an eviction or an operator would.
    async fn lose_tag_record(&self, tag: &str) {
        let key = self.cache.layout().tag_key(&self.ns(), tag);
        self.cache.backend().delete(&[key]).await.expect("delete");
    }

    /// Deletes the tag records of `tags` and the namespace's tag log, as an eviction could.
    async fn lose_every_tag_record(&self, tags: &[&str]) {
        for tag in tags {
            self.lose_tag_record(tag).await;
        }
        let log = self.cache.layout().tag_log_key(&self.ns());
        self.cache.backend().delete(&[log]).await.expect("delete");
    }

    /// Bumps the namespace clock as an instance running the previous `INVALIDATE` script did
    /// for a tag without a record (during a rolling upgrade): the tag log does not hear of it.
    async fn invalidate_as_before_tag_logs(&self) {
        let key = self.cache.layout().generation_key(&self.ns());
        let record = self.cache.backend().get(&key).await.expect("get");
        let mut state =
            NamespaceState::parse(&record.expect("a namespace record")).expect("parses");
        state.clock += 1;
        self.cache
            .backend()
            .replace_existing(&key, state.to_record().into())
            .await
            .expect("replace");
    }
}

macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::cases::$case(&super::Fixture::memory()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    super::cases::$case(&super::Fixture::redis().await).await;
                }
            )*
        }
    };
}

both_backends!(
    a_new_tag_survives_an_invalidation_of_another_tag_during_the_origin_call,
    an_existing_tag_survives_an_invalidation_of_another_tag_during_the_origin_call,
    invalidating_a_new_tag_during_the_origin_call_kills_the_entry,
    invalidating_an_existing_tag_during_the_origin_call_kills_the_entry,
    a_soft_invalidation_during_the_origin_call_is_never_served_fresh,
    a_lost_tag_record_does_not_revive_an_entry_invalidated_during_the_origin_call,
    losing_every_tag_record_does_not_revive_an_entry_invalidated_during_the_origin_call,
    an_entry_stored_after_the_invalidation_is_served,
    an_invalidation_the_tag_log_missed_kills_entries_under_new_tags,
    a_tag_log_that_starts_over_forgets_nothing,
    new_tags_survive_many_invalidations_of_other_tags,
);

mod cases {
    use super::*;

    pub async fn a_new_tag_survives_an_invalidation_of_another_tag_during_the_origin_call(
        fx: &Fixture,
    ) {
        let stamp = fx.stamp().await;
        fx.invalidate(&["b"], Invalidation::Hard).await;
        fx.store("A", stamp, &["a"]).await;
        assert_eq!(fx.lookup("A").await, Some(false), "A lost to tag b's purge");
    }

    pub async fn an_existing_tag_survives_an_invalidation_of_another_tag_during_the_origin_call(
        fx: &Fixture,
    ) {
        fx.store("earlier", fx.stamp().await, &["a", "b"]).await;
        let stamp = fx.stamp().await;
        fx.invalidate(&["b"], Invalidation::Hard).await;
        fx.store("A", stamp, &["a"]).await;
        assert_eq!(fx.lookup("A").await, Some(false));
        assert_eq!(fx.lookup("earlier").await, None, "tag b was invalidated");
    }

    pub async fn invalidating_a_new_tag_during_the_origin_call_kills_the_entry(fx: &Fixture) {
        let stamp = fx.stamp().await;
        fx.invalidate(&["b", "a"], Invalidation::Hard).await;
        fx.store("A", stamp, &["a"]).await;
        assert_eq!(fx.lookup("A").await, None, "stale A served");
    }

    pub async fn invalidating_an_existing_tag_during_the_origin_call_kills_the_entry(fx: &Fixture) {
        fx.store("earlier", fx.stamp().await, &["a"]).await;
        let stamp = fx.stamp().await;
        fx.invalidate(&["a"], Invalidation::Hard).await;
        fx.store("A", stamp, &["a", "c"]).await;
        assert_eq!(fx.lookup("A").await, None, "stale A served");
        assert_eq!(fx.lookup("earlier").await, None);
    }

    pub async fn a_soft_invalidation_during_the_origin_call_is_never_served_fresh(fx: &Fixture) {
        fx.store("earlier", fx.stamp().await, &["a"]).await;
        let stamp = fx.stamp().await;
        fx.invalidate(&["a", "n"], Invalidation::Soft).await;
        fx.store("A", stamp, &["a"]).await;
        fx.store("N", stamp, &["n"]).await;
        assert_eq!(fx.lookup("A").await, Some(true), "A served as fresh");
        assert_ne!(fx.lookup("N").await, Some(false), "N served as fresh");
    }

    pub async fn a_lost_tag_record_does_not_revive_an_entry_invalidated_during_the_origin_call(
        fx: &Fixture,
    ) {
        fx.store("earlier", fx.stamp().await, &["a"]).await;
        let stamp = fx.stamp().await;
        fx.invalidate(&["a"], Invalidation::Hard).await;
        fx.lose_tag_record("a").await;
        fx.store("A", stamp, &["a"]).await;
        assert_eq!(fx.lookup("A").await, None, "stale A served");
    }

    pub async fn losing_every_tag_record_does_not_revive_an_entry_invalidated_during_the_origin_call(
        fx: &Fixture,
    ) {
        fx.store("earlier", fx.stamp().await, &["a"]).await;
        let stamp = fx.stamp().await;
        fx.invalidate(&["a"], Invalidation::Hard).await;
        fx.invalidate(&["b"], Invalidation::Hard).await;
        fx.lose_every_tag_record(&["a", "b"]).await;
        fx.store("A", stamp, &["a"]).await;
        assert_eq!(fx.lookup("A").await, None, "stale A served");
    }

    pub async fn an_invalidation_the_tag_log_missed_kills_entries_under_new_tags(fx: &Fixture) {
        fx.stamp().await;
        fx.invalidate(&["b"], Invalidation::Hard).await;
        let stamp = fx.stamp().await;
        fx.invalidate_as_before_tag_logs().await;
        fx.store("A", stamp, &["a"]).await;
        assert_eq!(fx.lookup("A").await, None, "possibly stale A served");
        // The next invalidation starts a new log, and entries read after it are served.
        fx.invalidate(&["b"], Invalidation::Hard).await;
        let stamp = fx.stamp().await;
        fx.invalidate(&["c"], Invalidation::Hard).await;
        fx.store("A2", stamp, &["a2"]).await;
        assert_eq!(fx.lookup("A2").await, Some(false));
    }

    pub async fn a_tag_log_that_starts_over_forgets_nothing(fx: &Fixture) {
        let stamp = fx.stamp().await;
        fx.invalidate(&["a"], Invalidation::Hard).await;
        // Enough other tags to push the log past its bound, in several invalidations.
        let names: Vec<String> = (0..TAG_LOG_MAX_BYTES / 64 + 1)
            .map(|i| format!("filler:{i:0>100}"))
            .collect();
        for chunk in names.chunks(50) {
            let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
            fx.invalidate(&chunk, Invalidation::Hard).await;
        }
        let log = fx.cache.layout().tag_log_key(&fx.ns());
        let log = fx.cache.backend().get(&log).await.expect("get");
        let log = log.expect("a tag log");
        assert!(log.len() <= TAG_LOG_MAX_BYTES + 64, "{} bytes", log.len());
        assert!(!log.windows(3).any(|w| w == b":a\n"), "the log kept tag a");
        fx.store("A", stamp, &["a"]).await;
        fx.store("N", stamp, &["new"]).await;
        assert_eq!(fx.lookup("A").await, None, "stale A served");
        // What the log cannot vouch for any more is treated as invalidated.
        assert_eq!(fx.lookup("N").await, None);
    }

    pub async fn new_tags_survive_many_invalidations_of_other_tags(fx: &Fixture) {
        let stamps = [fx.stamp().await, fx.stamp().await];
        for i in 0..20 {
            fx.invalidate(&[&format!("other:{i}")], Invalidation::Hard)
                .await;
            fx.invalidate(&[&format!("other:{i}"), "shared"], Invalidation::Soft)
                .await;
        }
        fx.store("A", stamps[0], &["a", "b"]).await;
        fx.store("B", stamps[1], &["b", "c"]).await;
        assert_eq!(fx.lookup("A").await, Some(false));
        assert_eq!(fx.lookup("B").await, Some(false));
    }

    pub async fn an_entry_stored_after_the_invalidation_is_served(fx: &Fixture) {
        fx.store("earlier", fx.stamp().await, &["a"]).await;
        fx.invalidate(&["a"], Invalidation::Hard).await;
        fx.lose_tag_record("a").await;
        fx.store("A", fx.stamp().await, &["a"]).await;
        assert_eq!(fx.lookup("A").await, Some(false));
    }
}

/// A real eviction (`maxmemory`, `volatile-lru`) takes the tag records between the
/// invalidation and the store; the namespace record, made persistent, survives it.
#[tokio::test]
async fn an_evicted_tag_record_does_not_revive_an_entry_invalidated_during_the_origin_call() {
    let fx = Fixture::redis().await;
    let server = fx.server.as_ref().expect("redis");
    fx.store("earlier", fx.stamp().await, &["a"]).await;
    let stamp = fx.stamp().await;
    fx.invalidate(&["a"], Invalidation::Hard).await;
    let tag_key = fx.cache.layout().tag_key(&fx.ns(), "a");
    let record_key = fx.cache.layout().generation_key(&fx.ns());
    let evicted_before = evicted_keys(server);
    let _: i64 = server.command(::redis::cmd("PERSIST").arg(&record_key));
    let _: () = server.command(
        ::redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory-policy")
            .arg("volatile-lru"),
    );
    let _: () = server.command(::redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg("1"));
    // Any command runs the eviction first; with every volatile key gone it stays over the
    // limit, so lift the limit again before the store.
    let _: i64 = server.command(&::redis::cmd("DBSIZE"));
    let _: () = server.command(::redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg("0"));
    assert!(evicted_keys(server) > evicted_before, "nothing was evicted");
    let exists: i64 = server.command(::redis::cmd("EXISTS").arg(&tag_key));
    assert_eq!(exists, 0, "the tag record survived the eviction");
    let log_key = fx.cache.layout().tag_log_key(&fx.ns());
    let exists: i64 = server.command(::redis::cmd("EXISTS").arg(&log_key));
    assert_eq!(exists, 0, "the tag log survived the eviction");
    let exists: i64 = server.command(::redis::cmd("EXISTS").arg(&record_key));
    assert_eq!(exists, 1, "the namespace record was evicted");
    fx.store("A", stamp, &["a"]).await;
    assert_eq!(fx.lookup("A").await, None, "stale A served");
}

fn evicted_keys(server: &TestRedis) -> u64 {
    let info: String = server.command(::redis::cmd("INFO").arg("stats"));
    info.lines()
        .find_map(|line| line.strip_prefix("evicted_keys:"))
        .and_then(|value| value.trim().parse().ok())
        .expect("INFO stats has evicted_keys")
}
