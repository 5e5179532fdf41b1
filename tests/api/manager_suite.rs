//! The CacheManager specification, run against both backends: the memory backend and Redis
//! (a real redis-server started for each test). Both must behave the same.

use std::time::Duration;

use serde_json::json;
use warp_redis_cache::admin::{KeyLayout, KeyTtl};
use warp_redis_cache::{CacheManager, Namespace};

use crate::support::{cache_settings, eventually, redis_manager, RedisServer};

/// A manager under test, and the Redis server behind it when there is one.
pub struct Fixture {
    pub cache: CacheManager,
    _server: Option<RedisServer>,
}

impl Fixture {
    fn memory() -> Self {
        Self {
            cache: CacheManager::in_memory(&cache_settings()),
            _server: None,
        }
    }

    async fn redis() -> Self {
        let server = RedisServer::start();
        let cache = redis_manager(&server).await;
        Self {
            cache,
            _server: Some(server),
        }
    }
}

fn ns(name: &str) -> Namespace {
    Namespace::new(name).expect("valid namespace")
}

macro_rules! manager_suite {
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

manager_suite!(
    json_value_round_trips,
    missing_key_is_a_miss,
    explicit_and_default_ttls_are_applied,
    entry_expires_after_its_ttl,
    delete_and_exists_agree,
    large_value_is_stored_compressed,
    wrongly_typed_entry_is_a_miss,
    clear_namespace_touches_only_that_namespace,
    clear_namespace_deletes_more_than_one_scan_batch,
    clear_all_leaves_other_prefixes_untouched,
    ping_answers,
);

mod cases {
    use super::*;

    pub async fn json_value_round_trips(fx: &Fixture) {
        let users = ns("users");
        let value = json!({"id": 42, "name": "Ada", "tags": ["x", "y"]});
        fx.cache.set(&users, "42", &value, None).await.expect("set");
        let back: Option<serde_json::Value> = fx.cache.get(&users, "42").await.expect("get");
        assert_eq!(back, Some(value));
        let stats = fx.cache.stats().snapshot();
        assert_eq!((stats.total.hits, stats.total.sets), (1, 1));
        assert_eq!(stats.namespaces["users"].hits, 1);
    }

    pub async fn missing_key_is_a_miss(fx: &Fixture) {
        let got: Option<String> = fx.cache.get(&ns("users"), "nobody").await.expect("get");
        assert_eq!(got, None);
        assert!(fx
            .cache
            .get_bytes(&ns("users"), "nobody")
            .await
            .expect("get")
            .is_none());
        assert_eq!(fx.cache.stats().snapshot().total.misses, 2);
    }

    pub async fn explicit_and_default_ttls_are_applied(fx: &Fixture) {
        let n = ns("ttl");
        fx.cache
            .set(&n, "short", &1, Some(Duration::from_secs(20)))
            .await
            .expect("set");
        fx.cache.set(&n, "default", &2, None).await.expect("set");
        let KeyTtl::ExpiresIn(short) = fx.cache.ttl(&n, "short").await.expect("ttl") else {
            panic!("short key should expire");
        };
        assert!(
            short <= Duration::from_secs(20) && short > Duration::from_secs(18),
            "{short:?}"
        );
        let KeyTtl::ExpiresIn(default) = fx.cache.ttl(&n, "default").await.expect("ttl") else {
            panic!("default key should expire");
        };
        let configured = fx.cache.default_ttl();
        assert!(default <= configured && default > configured - Duration::from_secs(2));
        assert_eq!(
            fx.cache.ttl(&n, "absent").await.expect("ttl"),
            KeyTtl::Missing
        );
    }

    pub async fn entry_expires_after_its_ttl(fx: &Fixture) {
        let n = ns("ttl");
        fx.cache
            .set(&n, "brief", &"soon gone", Some(Duration::from_millis(150)))
            .await
            .expect("set");
        assert!(fx.cache.exists(&n, "brief").await.expect("exists"));
        let gone = eventually(Duration::from_secs(3), || async {
            !fx.cache.exists(&n, "brief").await.expect("exists")
        })
        .await;
        assert!(gone, "entry outlived its TTL");
        let got: Option<String> = fx.cache.get(&n, "brief").await.expect("get");
        assert_eq!(got, None);
    }

    pub async fn delete_and_exists_agree(fx: &Fixture) {
        let n = ns("items");
        fx.cache.set(&n, "1", &1, None).await.expect("set");
        fx.cache.set(&n, "2", &2, None).await.expect("set");
        assert!(fx.cache.exists(&n, "1").await.expect("exists"));
        assert!(fx.cache.delete(&n, "1").await.expect("delete"));
        assert!(!fx.cache.delete(&n, "1").await.expect("delete again"));
        assert!(!fx.cache.exists(&n, "1").await.expect("exists"));
        assert_eq!(
            fx.cache.delete_many(&n, &["2", "3"]).await.expect("delete"),
            1
        );
        assert_eq!(fx.cache.stats().snapshot().total.deletes, 2);
    }

    pub async fn large_value_is_stored_compressed(fx: &Fixture) {
        let n = ns("pages");
        let body = "a highly compressible body ".repeat(200);
        fx.cache.set(&n, "page", &body, None).await.expect("set");
        let stored = fx
            .cache
            .inspect(&n, "page")
            .await
            .expect("inspect")
            .expect("stored");
        assert_eq!(stored.encoding, "gzip");
        assert!(
            stored.stored_bytes < body.len() / 4,
            "{}",
            stored.stored_bytes
        );
        let back: Option<String> = fx.cache.get(&n, "page").await.expect("get");
        assert_eq!(back.as_deref(), Some(body.as_str()));
        let stats = fx.cache.stats().snapshot().total;
        assert!(stats.stored_bytes < stats.body_bytes / 4);
    }

    pub async fn wrongly_typed_entry_is_a_miss(fx: &Fixture) {
        let n = ns("items");
        fx.cache.set(&n, "k", &"a string", None).await.expect("set");
        let got: Option<u64> = fx.cache.get(&n, "k").await.expect("get");
        assert_eq!(got, None);
        assert_eq!(fx.cache.stats().snapshot().total.corrupt_entries, 1);
    }

    pub async fn clear_namespace_touches_only_that_namespace(fx: &Fixture) {
        for name in ["a*", "a?", "a:b", "[ab]", ""] {
            assert!(Namespace::new(name).is_err(), "{name:?} accepted");
        }
        for name in ["a", "ab", "a-b", "b"] {
            for key in ["1", "2", "x:y"] {
                fx.cache.set(&ns(name), key, &key, None).await.expect("set");
            }
        }
        assert_eq!(fx.cache.clear_namespace(&ns("a")).await.expect("clear"), 3);
        assert!(!fx.cache.exists(&ns("a"), "x:y").await.expect("exists"));
        for name in ["ab", "a-b", "b"] {
            for key in ["1", "2", "x:y"] {
                assert!(
                    fx.cache.exists(&ns(name), key).await.expect("exists"),
                    "{name}:{key}"
                );
            }
        }
    }

    pub async fn clear_namespace_deletes_more_than_one_scan_batch(fx: &Fixture) {
        let n = ns("bulk");
        for i in 0..1_200 {
            fx.cache
                .set(&n, &i.to_string(), &i, None)
                .await
                .expect("set");
        }
        fx.cache
            .set(&ns("other"), "1", &1, None)
            .await
            .expect("set");
        assert_eq!(fx.cache.clear_namespace(&n).await.expect("clear"), 1_200);
        assert_eq!(fx.cache.clear_namespace(&n).await.expect("clear again"), 0);
        assert!(fx.cache.exists(&ns("other"), "1").await.expect("exists"));
    }

    pub async fn clear_all_leaves_other_prefixes_untouched(fx: &Fixture) {
        let neighbour = fx.cache.with_key_prefix("wrcx").expect("valid prefix");
        let stranger = fx.cache.with_key_prefix("other").expect("valid prefix");
        for manager in [&fx.cache, &neighbour, &stranger] {
            for name in ["a", "b"] {
                manager.set(&ns(name), "k", &1, None).await.expect("set");
            }
        }
        assert_eq!(fx.cache.clear_all().await.expect("clear all"), 2);
        assert!(!fx.cache.exists(&ns("a"), "k").await.expect("exists"));
        for manager in [&neighbour, &stranger] {
            for name in ["a", "b"] {
                assert!(manager.exists(&ns(name), "k").await.expect("exists"));
            }
        }
    }

    pub async fn ping_answers(fx: &Fixture) {
        let latency = fx.cache.ping().await.expect("ping");
        assert!(latency < Duration::from_secs(1));
    }
}

/// Bytes that are not an entry of ours, found under an entry's key (another program wrote
/// there, or a bug did): a counted miss, and the key is deleted. The memory backend's variant is
/// a unit test of the library (nothing outside it can write there).
#[tokio::test]
async fn a_corrupt_entry_in_redis_is_a_counted_miss_and_is_deleted() {
    let fx = Fixture::redis().await;
    let n = ns("items");
    let full_key = KeyLayout::new(&cache_settings().key_prefix).full_key(&n, "7");
    let server = fx._server.as_ref().expect("a Redis fixture");
    let _: () = server.command(::redis::cmd("SET").arg(&full_key).arg("not ours at all"));
    let got: Option<serde_json::Value> = fx.cache.get(&n, "7").await.expect("get");
    assert_eq!(got, None);
    let stats = fx.cache.stats().snapshot().total;
    assert_eq!((stats.corrupt_entries, stats.misses, stats.hits), (1, 1, 0));
    let exists: u64 = server.command(::redis::cmd("EXISTS").arg(&full_key));
    assert_eq!(exists, 0, "corrupt entry kept");
}
