//! The process logger: `env_logger` filters, written as readable text or as JSON lines, and
//! the access log's own writer ([`access`]).
//!
//! Text lines are ` <RFC 3339 time> <LEVEL> <target> > <message>`, the target padded to the
//! widest seen so far and the level and target coloured on a terminal (pretty_env_logger's
//! layout, kept by our own formatter so access lines can share its padding). JSON lines
//! (`app.log_format: json`) are for log shippers: one object per line with `ts` (RFC 3339,
//! UTC), `level`, `target` and `message`, escaped by `serde_json`, so a message holding quotes
//! or newlines stays one valid line.
//!
//! Access lines (target [`access::TARGET`], one per request) do not go through `log`: when the
//! filter lets them through at `info`, [`init`] starts [`access::AccessLog`], which formats
//! them without `core::fmt` into a shared buffer and writes them in batches from a thread of
//! its own. Call [`flush`] before the process exits.

pub mod access;

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use pretty_env_logger::env_logger;

use crate::settings::LogFormat;

/// The widest target written so far, for padding (shared by the access log).
static TARGET_WIDTH: AtomicUsize = AtomicUsize::new(0);

/// Installs the logger for the whole process; `filter` is in `env_logger` syntax.
pub fn init(filter: &str, format: LogFormat) {
    let color = stderr_is_colored();
    let mut builder = env_logger::Builder::new();
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
    } else {
        builder.write_style(if color {
            env_logger::WriteStyle::Always
        } else {
            env_logger::WriteStyle::Never
        });
        builder.format(|out, record| {
            let width = target_width(record.target());
            let mut level_style = out.style();
            let level = level_style
                .set_color(level_color(record.level()))
                .value(padded_level(record.level()));
            let mut target_style = out.style();
            let target = target_style.set_bold(true).value(Padded {
                text: record.target(),
                width,
            });
            let time = out.timestamp_millis();
            writeln!(out, " {time} {level} {target} > {}", record.args())
        });
    }
    let logger = builder.build();
    let access_on = log::Log::enabled(
        &logger,
        &log::Metadata::builder()
            .target(access::TARGET)
            .level(log::Level::Info)
            .build(),
    );
    let max_level = logger.filter();
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max_level);
        // A `/regex` filter matches message text, which only env_logger sees: access lines
        // then keep going through `log`.
        if !filter.contains('/') {
            access::install(access_on.then(|| access::AccessLog::new(format, color)));
        }
    }
}

/// Writes out every access line logged so far. Call it once the server has stopped, before
/// the process exits: the writer thread does not outlive `main`.
pub fn flush() {
    if let Some(log) = access::installed() {
        log.flush();
    }
}

/// The width to pad `target` to: the widest target seen so far.
pub(crate) fn target_width(target: &str) -> usize {
    let widest = TARGET_WIDTH.load(Ordering::Relaxed);
    if widest >= target.len() {
        return widest;
    }
    TARGET_WIDTH
        .fetch_max(target.len(), Ordering::Relaxed)
        .max(target.len())
}

/// `text` padded with spaces to `width`.
struct Padded<'a> {
    text: &'a str,
    width: usize,
}

impl std::fmt::Display for Padded<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<width$}", self.text, width = self.width)
    }
}

fn padded_level(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "ERROR",
        log::Level::Warn => "WARN ",
        log::Level::Info => "INFO ",
        log::Level::Debug => "DEBUG",
        log::Level::Trace => "TRACE",
    }
}

fn level_color(level: log::Level) -> env_logger::fmt::Color {
    use env_logger::fmt::Color;
    match level {
        log::Level::Error => Color::Red,
        log::Level::Warn => Color::Yellow,
        log::Level::Info => Color::Green,
        log::Level::Debug => Color::Blue,
        log::Level::Trace => Color::Magenta,
    }
}

/// Whether text lines are coloured: stderr is a terminal, as env_logger decides by default.
fn stderr_is_colored() -> bool {
    std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none()
        && std::env::var("TERM").map_or(true, |term| term != "dumb")
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
