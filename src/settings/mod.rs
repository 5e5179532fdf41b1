//! Typed settings, loaded once at startup.
//!
//! Precedence, lowest first: the built-in defaults ([`Settings::default`]), the YAML file, then
//! environment variables named `SECTION__FIELD` (`APP__PORT=9000`, `CACHE__BACKEND=memory`).
//! Every problem is reported as one [`SettingsError`] naming the field and where its value came
//! from. This is the only module that reads the environment; the rest of the code receives a
//! validated [`Settings`].
//!
//! The types are here; [`load`] reads the file and the environment, [`validate`] checks the
//! values (the cache's own through [`CacheConfig::validate`] and [`RedisConfig::validate`]),
//! and [`fields`] holds the deserializers that keep YAML from rewriting text.

mod fields;
mod load;
mod validate;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use warp_redis_cache::{redact_password, CacheConfig, RedisConfig};

use fields::{host_list, optional_secret_string, scalar_string};
pub use load::{Origin, SettingsError};

/// Environment variable naming the settings file when `--config` is not given.
pub const SETTINGS_FILE_ENV: &str = "SETTINGS_FILE";
/// File read when neither `--config` nor `SETTINGS_FILE` names one.
pub const DEFAULT_SETTINGS_FILE: &str = "settings.yaml";

/// Everything the service can be configured with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// HTTP server settings.
    pub app: AppSettings,
    /// Redis connection and pool settings.
    pub redis: RedisConfig,
    /// Cache behaviour settings.
    pub cache: CacheConfig,
    /// Admin route settings.
    pub admin: AdminSettings,
    /// Item store settings.
    pub database: DatabaseSettings,
}

/// `app:` section: how the HTTP server listens and shuts down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppSettings {
    /// Interface to bind, e.g. `127.0.0.1` or `0.0.0.0`.
    #[serde(deserialize_with = "scalar_string")]
    pub host: String,
    /// TCP port; 0 picks a free port (the startup log says which).
    pub port: u16,
    /// Log filter in `env_logger` syntax (`info`, `warp_redis_cache=debug`); `RUST_LOG` wins.
    #[serde(deserialize_with = "scalar_string")]
    pub log_level: String,
    /// `text` (readable lines) or `json` (one JSON object per line, for log shippers).
    pub log_format: LogFormat,
    /// Largest request body accepted, in bytes; larger bodies get 413.
    pub max_body_bytes: u64,
    /// How long in-flight requests may run after SIGINT/SIGTERM before the server stops.
    pub shutdown_grace_ms: u64,
    /// `Strict-Transport-Security: max-age` in seconds; 0 sends no HSTS header (set it when
    /// the service is reached over HTTPS).
    pub hsts_max_age_secs: u64,
    /// Most client connections served at once; past it, new clients wait in the listen
    /// backlog. 0 sizes it from the open-files limit (less 128 for everything else).
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (from its first byte, or from
    /// connecting), in milliseconds.
    pub header_read_timeout_ms: u64,
    /// How long a connection with no request in flight stays open, in milliseconds.
    pub idle_timeout_ms: u64,
    /// How long a client may take to send a request's body (from its headers), in
    /// milliseconds.
    pub body_read_timeout_ms: u64,
    /// How long a response may wait on a client that takes none of it (its socket full)
    /// before the connection is closed, in milliseconds.
    pub response_write_timeout_ms: u64,
    /// Most header lines in one request; more are answered 431.
    pub max_headers: usize,
    /// Largest request head (request line and headers), in bytes; at least 8192.
    pub max_header_bytes: usize,
}

/// `admin:` section: who may use the cache admin routes.
///
/// `Debug` shows whether a token is set, never the token.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// Bearer token required by admin routes, at least [`MIN_ADMIN_TOKEN_BYTES`] bytes; with
    /// none, they answer loopback clients only. In the YAML file it must be a string (quote
    /// it when it looks like a number); from `ADMIN__TOKEN` it is taken exactly as written.
    #[serde(deserialize_with = "optional_secret_string")]
    pub token: Option<String>,
    /// Without a token: host names accepted in the `Host` header besides `localhost`,
    /// `127.0.0.1` and `[::1]` (e.g. a name the operator's machine maps to loopback). A YAML
    /// list, or a comma-separated string (`ADMIN__ALLOWED_HOSTS=a.internal,b.internal`).
    #[serde(deserialize_with = "host_list")]
    pub allowed_hosts: Vec<String>,
}

/// Shortest accepted `admin.token`, in bytes.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 16;

/// `database:` section: where items are stored.
///
/// `Debug` shows [`Self::url`] without its password ([`redact_password`]).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// SQLite file path, or `:memory:` for a store that lives as long as the process; used when
    /// [`Self::url`] is empty.
    #[serde(deserialize_with = "scalar_string")]
    pub path: String,
    /// Empty for SQLite at [`Self::path`], or `postgres://user[:password]@host[:port]/db` (or
    /// `postgresql://`) to keep items in PostgreSQL instead.
    #[serde(deserialize_with = "scalar_string")]
    pub url: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines with a timestamp, level and target.
    #[default]
    Text,
    /// One JSON object per line: `ts`, `level`, `target`, `message`.
    Json,
}

impl Default for AppSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            log_level: "info".into(),
            log_format: LogFormat::Text,
            max_body_bytes: 64 * 1024,
            shutdown_grace_ms: 10_000,
            hsts_max_age_secs: 0,
            max_connections: 0,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            body_read_timeout_ms: 30_000,
            response_write_timeout_ms: 30_000,
            max_headers: 100,
            max_header_bytes: 64 * 1024,
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            path: "items.sqlite3".into(),
            url: String::new(),
        }
    }
}

impl DatabaseSettings {
    /// Whether items live in PostgreSQL ([`Self::url`] is set) rather than SQLite.
    pub fn is_postgres(&self) -> bool {
        !self.url.is_empty()
    }

    /// Where the items are, fit for a log line or an error: the SQLite path, or the PostgreSQL
    /// URL without its password.
    ///
    /// ```
    /// use warp_redis_cache_service::settings::DatabaseSettings;
    ///
    /// let settings = DatabaseSettings {
    ///     url: "postgres://app:s3cret@db:5432/items".into(),
    ///     ..DatabaseSettings::default()
    /// };
    /// assert_eq!(settings.location(), "postgres://app:***@db:5432/items");
    /// ```
    pub fn location(&self) -> String {
        if self.is_postgres() {
            redact_password(&self.url)
        } else {
            self.path.clone()
        }
    }
}

impl fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminSettings")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("allowed_hosts", &self.allowed_hosts)
            .finish()
    }
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("path", &self.path)
            .field("url", &redact_password(&self.url))
            .finish()
    }
}

impl AppSettings {
    /// [`Self::shutdown_grace_ms`] as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}
