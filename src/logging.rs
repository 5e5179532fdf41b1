//! The process logger: `env_logger` filters, written as readable text or as JSON lines.
//!
//! JSON lines (`app.log_format: json`) are for log shippers: one object per line with `ts`
//! (RFC 3339, UTC), `level`, `target` and `message`, escaped by `serde_json`, so a message
//! holding quotes or newlines stays one valid line.

use std::io::Write;

use crate::settings::LogFormat;

/// Installs the logger for the whole process; `filter` is in `env_logger` syntax.
pub fn init(filter: &str, format: LogFormat) {
    let mut builder = pretty_env_logger::formatted_timed_builder();
    builder.parse_filters(filter);
    if format == LogFormat::Json {
        builder.format(|out, record| {
            let line = json_line(
                &out.timestamp_millis().to_string(),
                record.level(),
                record.target(),
                &record.args().to_string(),
            );
            writeln!(out, "{line}")
        });
    }
    builder.init();
}

/// One log record as a JSON object.
///
/// ```
/// use warp_redis_cache_service::logging::json_line;
///
/// let line = json_line("2026-12-01T20:00:00.000Z", log::Level::Info, "app", "say \"hi\"\nbye");
/// let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
/// assert_eq!(parsed["level"], "INFO");
/// assert_eq!(parsed["message"], "say \"hi\"\nbye");
/// assert!(!line.contains('\n'));
/// ```
pub fn json_line(timestamp: &str, level: log::Level, target: &str, message: &str) -> String {
    serde_json::json!({
        "ts": timestamp,
        "level": level.as_str(),
        "target": target,
        "message": message,
    })
    .to_string()
}
