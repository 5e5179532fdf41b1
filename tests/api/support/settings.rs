//! Settings for the code under test: tight Redis budgets so fault tests finish quickly, a small
//! compression threshold so tests exercise gzip, and the service on a free port with an
//! in-memory item store.

use warp_redis_cache::CacheManager;
use warp_redis_cache::{CacheConfig, RedisConfig};

use super::RedisServer;

/// Redis settings for `server` with tight budgets, so fault tests finish quickly.
pub fn redis_settings(url: &str) -> RedisConfig {
    RedisConfig {
        url: url.to_string(),
        connect_timeout_ms: 300,
        pool_get_timeout_ms: 300,
        command_timeout_ms: 200,
        ..RedisConfig::default()
    }
}

/// Cache settings with a small compression threshold so tests exercise gzip.
pub fn cache_settings() -> CacheConfig {
    CacheConfig {
        compression_threshold_bytes: 256,
        ..CacheConfig::default()
    }
}

/// A manager over the Redis backend talking to `server`.
pub async fn redis_manager(server: &RedisServer) -> CacheManager {
    let mut cache = cache_settings();
    cache.backend = warp_redis_cache::BackendChoice::Redis;
    CacheManager::connect(&cache, &redis_settings(&server.url()))
        .await
        .expect("valid redis settings")
}

/// Settings for a test app on a free port using `redis_url` (Redis backend) and an in-memory
/// item store.
pub fn app_settings(redis_url: &str) -> warp_redis_cache_service::settings::Settings {
    let mut settings = warp_redis_cache_service::settings::Settings::default();
    settings.app.port = 0;
    settings.redis = redis_settings(redis_url);
    settings.cache = cache_settings();
    settings.cache.backend = warp_redis_cache::BackendChoice::Redis;
    settings.database.path = ":memory:".into();
    settings
}
