//! Configuration of a [`CacheManager`](crate::CacheManager): where Redis is ([`RedisConfig`])
//! and how the cache behaves ([`CacheConfig`]).
//!
//! Both types have a `Default` that works on a developer machine (Redis at `127.0.0.1:6379`
//! when it answers, process memory otherwise) and serde derives, so an application can embed
//! them in its own settings file. [`CacheConfig::validate`] and [`RedisConfig::validate`] check
//! the values once, naming the field that is wrong; the service's `settings.yaml` loader calls
//! them. This module reads no file and no environment variable.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest TTL accepted anywhere: ten years.
pub const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 3600;
/// Largest accepted [`CacheConfig::early_refresh_beta`].
pub const MAX_EARLY_REFRESH_BETA: f64 = 10.0;

/// A configuration value that cannot be used: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    /// The field's name within its section, e.g. `default_ttl_secs`.
    pub field: &'static str,
    /// What is wrong with its value.
    pub reason: String,
}

impl ConfigError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// Where Redis is and how much a call may cost (the service's `redis:` settings section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// One server, or one Redis Cluster.
    pub mode: RedisMode,
    /// `redis://[user:password@]host:port/db` (or `rediss://`, `redis+unix://`). In cluster
    /// mode, one or more seed nodes separated by commas (database 0 only); the rest of the
    /// cluster is discovered from them.
    #[serde(deserialize_with = "scalar_string")]
    pub url: String,
    /// Most connections the pool opens.
    pub max_open: u64,
    /// Most idle connections the pool keeps; equal to `max_open` so connections never churn.
    pub max_idle: u64,
    /// Budget for dialling a new connection.
    pub connect_timeout_ms: u64,
    /// Budget for taking a connection from the pool (waiting for a free one included).
    pub pool_get_timeout_ms: u64,
    /// Budget for one command's round trip.
    pub command_timeout_ms: u64,
    /// Consecutive failures after which the cache is skipped for a cool-down.
    pub breaker_failures: u32,
    /// How long the cache is skipped once the breaker opens, before one probe decides.
    pub breaker_cooldown_ms: u64,
}

/// Which backend, key layout, lifetimes and compression (the service's `cache:` settings
/// section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Which backend stores entries.
    pub backend: BackendChoice,
    /// First segment of every key: `<prefix>:<namespace>:<key>`.
    #[serde(deserialize_with = "scalar_string")]
    pub key_prefix: String,
    /// Lifetime of an entry stored without an explicit TTL, in seconds.
    pub default_ttl_secs: u64,
    /// Values larger than this many bytes are stored gzip-compressed.
    pub compression_threshold_bytes: usize,
    /// gzip level, 1 (fastest) to 9 (smallest).
    pub gzip_level: u32,
    /// Upper bound on the memory backend's size (keys plus values), in bytes.
    pub memory_max_bytes: u64,
    /// After an entry's TTL, how long it may be served while one request refreshes it.
    pub stale_while_revalidate_secs: u64,
    /// After an entry's TTL, how long it may be served when the origin fails.
    pub stale_if_error_secs: u64,
    /// Whether a miss takes a short Redis lock so one instance refills while others wait.
    pub refill_lock: bool,
    /// Probabilistic early refresh (XFetch): how eagerly a hit refreshes an entry before it
    /// expires, scaled by how long the origin took to compute it. 0 turns it off; 1 is the
    /// usual setting; larger refreshes earlier.
    pub early_refresh_beta: f64,
    /// Size of the in-process L1 tier in front of Redis, in bytes; 0 turns it off.
    pub l1_max_bytes: u64,
    /// Longest an entry stays in the L1 tier, in milliseconds (never longer than its freshness).
    pub l1_ttl_ms: u64,
    /// How old a write's intent record must be, besides its instance's heartbeat having
    /// expired (the instance died between the write's commit and its bust), before another
    /// instance replays it as a namespace bust, in milliseconds.
    pub write_intent_grace_ms: u64,
}

/// How Redis is deployed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    /// One server (or a proxy in front of several).
    #[default]
    Standalone,
    /// A Redis Cluster: keys of one namespace share a hash slot, scans visit every master.
    Cluster,
}

/// Which cache backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// Redis when it answers at startup, else the in-process memory backend.
    Auto,
    /// Redis only; when it is down, requests are served uncached.
    Redis,
    /// The in-process memory backend only.
    Memory,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            mode: RedisMode::Standalone,
            url: "redis://127.0.0.1:6379/0".into(),
            max_open: 4,
            max_idle: 4,
            connect_timeout_ms: 500,
            pool_get_timeout_ms: 500,
            command_timeout_ms: 250,
            breaker_failures: 5,
            breaker_cooldown_ms: 500,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            backend: BackendChoice::Auto,
            key_prefix: "wrc".into(),
            default_ttl_secs: 300,
            compression_threshold_bytes: 1024,
            gzip_level: 6,
            memory_max_bytes: 64 * 1024 * 1024,
            stale_while_revalidate_secs: 30,
            stale_if_error_secs: 300,
            refill_lock: false,
            early_refresh_beta: 1.0,
            l1_max_bytes: 0,
            l1_ttl_ms: 1000,
            write_intent_grace_ms: 1_000,
        }
    }
}

/// `url` with the password replaced by `***`, both in the user info (`user:pw@`) and in a
/// `password=` query parameter; anything else is kept as written.
///
/// ```
/// use warp_redis_cache::redact_password;
///
/// assert_eq!(redact_password("postgres://u:pw@h/db"), "postgres://u:***@h/db");
/// assert_eq!(redact_password("postgres://h/db?password=pw&sslmode=disable"),
///            "postgres://h/db?password=***&sslmode=disable");
/// assert_eq!(redact_password("postgres://u@h/db"), "postgres://u@h/db");
/// ```
pub fn redact_password(url: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (url, None),
    };
    let (scheme, rest) = before_query
        .split_once("://")
        .map_or(("", before_query), |(scheme, rest)| (scheme, rest));
    let mut redacted = String::with_capacity(url.len());
    if !scheme.is_empty() {
        redacted.push_str(scheme);
        redacted.push_str("://");
    }
    // The last `@` ends the user info, so an unescaped `@` in a password is hidden too.
    match rest.rsplit_once('@') {
        Some((user_info, host)) => {
            match user_info.split_once(':') {
                Some((user, _password)) => {
                    redacted.push_str(user);
                    redacted.push_str(":***");
                }
                None => redacted.push_str(user_info),
            }
            redacted.push('@');
            redacted.push_str(host);
        }
        None => redacted.push_str(rest),
    }
    if let Some(query) = query {
        redacted.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_string(),
            })
            .collect();
        redacted.push_str(&pairs.join("&"));
    }
    redacted
}

impl RedisConfig {
    /// The URLs in [`Self::url`]: one in standalone mode, the seed nodes in cluster mode.
    ///
    /// ```
    /// use warp_redis_cache::RedisConfig;
    ///
    /// let settings = RedisConfig {
    ///     url: "redis://10.0.0.1:7000, redis://10.0.0.2:7000".into(),
    ///     ..RedisConfig::default()
    /// };
    /// assert_eq!(settings.urls(), ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]);
    /// ```
    pub fn urls(&self) -> Vec<&str> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .collect()
    }

    /// [`Self::connect_timeout_ms`] as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    /// [`Self::pool_get_timeout_ms`] as a duration.
    pub fn pool_get_timeout(&self) -> Duration {
        Duration::from_millis(self.pool_get_timeout_ms)
    }
    /// [`Self::command_timeout_ms`] as a duration.
    pub fn command_timeout(&self) -> Duration {
        Duration::from_millis(self.command_timeout_ms)
    }
}

impl CacheConfig {
    /// [`Self::default_ttl_secs`] as a duration.
    pub fn default_ttl(&self) -> Duration {
        Duration::from_secs(self.default_ttl_secs)
    }
}

impl RedisConfig {
    /// Checks every field, returning the first one that cannot be used.
    ///
    /// ```
    /// use warp_redis_cache::RedisConfig;
    ///
    /// assert!(RedisConfig::default().validate().is_ok());
    /// let bad = RedisConfig { max_open: 1, ..RedisConfig::default() };
    /// assert_eq!(bad.validate().unwrap_err().field, "max_open");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_urls(self).map_err(|reason| ConfigError::new("url", reason))?;
        let positive = [
            ("max_open", self.max_open),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("pool_get_timeout_ms", self.pool_get_timeout_ms),
            ("command_timeout_ms", self.command_timeout_ms),
            ("breaker_failures", u64::from(self.breaker_failures)),
            ("breaker_cooldown_ms", self.breaker_cooldown_ms),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::new(field, "must be greater than zero"));
        }
        if self.max_open < 2 {
            return Err(ConfigError::new(
                "max_open",
                "must be at least 2: one connection is shared by all hits, the others do bulk work",
            ));
        }
        if self.max_idle > self.max_open {
            return Err(ConfigError::new(
                "max_idle",
                format!("must not exceed redis.max_open ({})", self.max_open),
            ));
        }
        Ok(())
    }
}

impl CacheConfig {
    /// Checks every field, returning the first one that cannot be used.
    ///
    /// ```
    /// use warp_redis_cache::CacheConfig;
    ///
    /// assert!(CacheConfig::default().validate().is_ok());
    /// let bad = CacheConfig { gzip_level: 12, ..CacheConfig::default() };
    /// assert_eq!(bad.validate().unwrap_err().field, "gzip_level");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("default_ttl_secs", self.default_ttl_secs),
            ("memory_max_bytes", self.memory_max_bytes),
            ("write_intent_grace_ms", self.write_intent_grace_ms),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::new(field, "must be greater than zero"));
        }
        let ten_years = format!("must be at most {MAX_TTL_SECS} (ten years)");
        for (field, secs) in [
            ("default_ttl_secs", self.default_ttl_secs),
            (
                "stale_while_revalidate_secs",
                self.stale_while_revalidate_secs,
            ),
            ("stale_if_error_secs", self.stale_if_error_secs),
        ] {
            if secs > MAX_TTL_SECS {
                return Err(ConfigError::new(field, ten_years));
            }
        }
        if !(0.0..=MAX_EARLY_REFRESH_BETA).contains(&self.early_refresh_beta) {
            return Err(ConfigError::new(
                "early_refresh_beta",
                format!("must be between 0 (off) and {MAX_EARLY_REFRESH_BETA}"),
            ));
        }
        if !(1..=9).contains(&self.gzip_level) {
            return Err(ConfigError::new(
                "gzip_level",
                format!("{} is not between 1 and 9", self.gzip_level),
            ));
        }
        crate::cache::key::validate_prefix(&self.key_prefix)
            .map_err(|reason| ConfigError::new("key_prefix", reason))
    }
}

/// One URL, or several seed nodes in cluster mode, each one Redis can dial.
fn validate_urls(redis: &RedisConfig) -> Result<(), String> {
    let urls = redis.urls();
    if urls.is_empty() {
        return Err("must name a Redis server".into());
    }
    if urls.len() > 1 && redis.mode == RedisMode::Standalone {
        return Err(format!(
            "{:?} names {} servers; several seed nodes need redis.mode: cluster",
            redact_password(&redis.url),
            urls.len()
        ));
    }
    for url in urls {
        let shown = redact_password(url);
        let info = redis::parse_redis_url(url)
            .ok_or_else(|| "not a URL".to_string())
            .and_then(|_| {
                redis::IntoConnectionInfo::into_connection_info(url).map_err(|e| e.to_string())
            })
            .map_err(|err| format!("{shown:?} is not a Redis URL: {err}"))?;
        if redis.mode == RedisMode::Cluster && info.redis.db != 0 {
            return Err(format!(
                "{shown:?} selects database {}; a Redis Cluster has database 0 only",
                info.redis.db
            ));
        }
    }
    Ok(())
}

/// Accepts any scalar as a string, so `key_prefix: 2024` in a YAML file is "2024".
fn scalar_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Scalar;
    impl serde::de::Visitor<'_> for Scalar {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    deserializer.deserialize_any(Scalar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_wherever_the_url_carries_them() {
        for (url, shown) in [
            ("redis://u:secret@h:1/0", "redis://u:***@h:1/0"),
            ("redis://:secret@h:1/0", "redis://:***@h:1/0"),
            ("redis://h:1/0", "redis://h:1/0"),
            ("postgres://u:p@ss@h/db", "postgres://u:***@h/db"),
            ("postgres://u:p%40ss@h/db", "postgres://u:***@h/db"),
            ("postgres://u:@h/db", "postgres://u:***@h/db"),
            (
                "postgres://h/db?user=u&PASSWORD=pw",
                "postgres://h/db?user=u&PASSWORD=***",
            ),
            ("postgres://h:5432", "postgres://h:5432"),
            ("", ""),
        ] {
            assert_eq!(redact_password(url), shown, "{url}");
        }
    }

    #[test]
    fn a_redis_url_in_an_error_never_shows_its_password() {
        let config = RedisConfig {
            url: "redis://u:s3cret@h:1/0,redis://u:s3cret@h:2/0".into(),
            ..RedisConfig::default()
        };
        let err = config.validate().unwrap_err();
        assert_eq!(err.field, "url");
        assert!(!err.reason.contains("s3cret"), "{err}");
    }

    #[test]
    fn defaults_are_valid_and_zero_budgets_are_not() {
        assert_eq!(CacheConfig::default().validate(), Ok(()));
        assert_eq!(RedisConfig::default().validate(), Ok(()));
        let err = RedisConfig {
            command_timeout_ms: 0,
            ..RedisConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.field, "command_timeout_ms");
    }

    #[test]
    fn numbers_and_booleans_are_taken_as_text_where_text_is_expected() {
        let config: CacheConfig = serde_json::from_str(r#"{"key_prefix": 2024}"#).unwrap();
        assert_eq!(config.key_prefix, "2024");
    }
}
