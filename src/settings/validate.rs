//! Checking loaded settings once, naming the first field that cannot be used and where its
//! value came from. The cache's sections are checked by the library's own rules.

use warp_redis_cache::redact_password;

use super::load::Provenance;
use super::{AppSettings, Settings, SettingsError, MIN_ADMIN_TOKEN_BYTES};

impl Settings {
    pub(super) fn validate(&self, provenance: &Provenance) -> Result<(), SettingsError> {
        let fail = |field: &str, reason: String| SettingsError::Invalid {
            field: field.to_string(),
            origin: provenance.origin_of(field),
            reason,
        };
        if self.app.host.parse::<std::net::IpAddr>().is_err() {
            return Err(fail(
                "app.host",
                format!("{:?} is not an IP address", self.app.host),
            ));
        }
        if let Err(reason) = crate::log_filter::validate(&self.app.log_level) {
            return Err(fail("app.log_level", reason));
        }
        if let Err(err) = self.redis.validate() {
            return Err(fail(&format!("redis.{}", err.field), err.reason));
        }
        if let Err(err) = self.cache.validate() {
            return Err(fail(&format!("cache.{}", err.field), err.reason));
        }
        let positive = [
            ("app.max_body_bytes", self.app.max_body_bytes),
            (
                "app.header_read_timeout_ms",
                self.app.header_read_timeout_ms,
            ),
            ("app.idle_timeout_ms", self.app.idle_timeout_ms),
            ("app.body_read_timeout_ms", self.app.body_read_timeout_ms),
            (
                "app.response_write_timeout_ms",
                self.app.response_write_timeout_ms,
            ),
            ("app.max_headers", self.app.max_headers as u64),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(fail(field, "must be greater than zero".into()));
        }
        if let Err((field, reason)) = validate_server_limits(&self.app) {
            return Err(fail(field, reason));
        }
        if let Some(Err(reason)) = self.admin.token.as_deref().map(validate_admin_token) {
            return Err(fail("admin.token", reason));
        }
        if let Some(host) = self.admin.allowed_hosts.iter().find(|h| !is_host_name(h)) {
            return Err(fail(
                "admin.allowed_hosts",
                format!("{host:?} is not a host name (letters, digits, '-' and '.', no port)"),
            ));
        }
        if self.database.path.is_empty() {
            return Err(fail("database.path", "must not be empty".into()));
        }
        if let Err(reason) = validate_database_url(&self.database.url) {
            return Err(fail("database.url", reason));
        }
        Ok(())
    }
}

/// A token long enough not to be guessed, and one that can be sent in a header as it is.
fn validate_admin_token(token: &str) -> Result<(), String> {
    if token.len() < MIN_ADMIN_TOKEN_BYTES {
        return Err(format!(
            "must be at least {MIN_ADMIN_TOKEN_BYTES} bytes (got {}); unset it for loopback-only \
             admin routes",
            token.len()
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic() || b == b' ') || token.trim() != token {
        return Err(
            "must be printable ASCII without leading or trailing spaces (it is sent in a header)"
                .into(),
        );
    }
    Ok(())
}

fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Bounds hyper and the accept loop can honour.
fn validate_server_limits(app: &AppSettings) -> Result<(), (&'static str, String)> {
    const MAX_CONNECTIONS: usize = 1_000_000;
    const MIN_HEADER_BYTES: usize = 8192;
    const MAX_TIMEOUT_MS: u64 = 24 * 3600 * 1000;
    if app.max_connections > MAX_CONNECTIONS {
        let reason =
            format!("must be at most {MAX_CONNECTIONS} (0 sizes it from the open-files limit)");
        return Err(("app.max_connections", reason));
    }
    if app.max_header_bytes < MIN_HEADER_BYTES {
        return Err((
            "app.max_header_bytes",
            format!("must be at least {MIN_HEADER_BYTES}"),
        ));
    }
    for (field, ms) in [
        ("app.header_read_timeout_ms", app.header_read_timeout_ms),
        ("app.idle_timeout_ms", app.idle_timeout_ms),
        ("app.body_read_timeout_ms", app.body_read_timeout_ms),
        (
            "app.response_write_timeout_ms",
            app.response_write_timeout_ms,
        ),
    ] {
        if ms > MAX_TIMEOUT_MS {
            return Err((field, format!("must be at most {MAX_TIMEOUT_MS} (a day)")));
        }
    }
    Ok(())
}

/// One Redis URL in standalone mode; one or more seed URLs, each on database 0, in cluster mode.
/// Empty (SQLite), or a URL that the PostgreSQL driver can use; the reason never shows the
/// password.
fn validate_database_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Ok(());
    }
    let shown = redact_password(url);
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(format!(
            "{shown:?} is not a PostgreSQL URL: expected postgres://... or postgresql://..., \
             or empty for SQLite at database.path"
        ));
    }
    match url.parse::<tokio_postgres::Config>() {
        Ok(_) => Ok(()),
        Err(err) => {
            let cause = std::error::Error::source(&err)
                .map(|cause| format!(": {cause}"))
                .unwrap_or_default();
            Err(format!(
                "{shown:?} is not a valid PostgreSQL URL: {err}{cause}"
            ))
        }
    }
}
