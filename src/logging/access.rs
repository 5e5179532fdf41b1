//! The access log's writer: one line per request, formatted on the request's thread into a
//! shared buffer without `core::fmt`, written to stderr in batches by a thread of its own.
//!
//! The line is the one operators already parse, in the process's log format:
//!
//! ```text
//!  2026-12-01T22:30:00.123Z INFO  warp_redis_cache::access > GET /items/1 200 0.412ms cache=HIT request_id=5f0c...e1
//! {"level":"INFO","message":"GET /items/1 200 0.412ms cache=HIT request_id=5f0c...e1","target":"warp_redis_cache::access","ts":"2026-12-01T22:30:00.123Z"}
//! ```
//!
//! A request appends its line under a mutex held for the few hundred instructions of copying
//! digits and bytes (the time stamp's date part is rendered once per second). The writer
//! wakes when a line lands in an empty buffer, lets lines gather for [`LINGER`] (or until
//! [`FLUSH_BYTES`] are waiting), swaps the buffer for its spare and writes the batch with one
//! `write` under stderr's lock, so access lines never interleave with other log lines.
//!
//! **When stderr cannot keep up** and [`MAX_PENDING_BYTES`] are waiting, new lines are
//! dropped, not waited for: a request never blocks on the log. Dropped lines are counted
//! ([`AccessLog::dropped`], the metric `access_log_dropped_lines_total`) and a warning says
//! how many once the writer catches up. **At shutdown** `main` calls
//! [`crate::logging::flush`], which writes whatever is waiting: no line is lost to exit.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::settings::LogFormat;

/// The target access lines are logged under (what `RUST_LOG` filters name).
pub const TARGET: &str = "warp_redis_cache::access";

/// How long the writer lets lines gather after the first one arrives.
pub const LINGER: Duration = Duration::from_millis(50);
/// Waiting lines past this many bytes wake the writer at once.
pub const FLUSH_BYTES: usize = 64 * 1024;
/// Past this many waiting bytes (stderr blocked or slower than requests), lines are dropped.
pub const MAX_PENDING_BYTES: usize = 8 * 1024 * 1024;

static INSTALLED: OnceLock<Option<AccessLog>> = OnceLock::new();

/// Where a request's access line goes.
#[derive(Clone, Copy)]
pub enum Sink {
    /// To the process's access log writer.
    Writer(&'static AccessLog),
    /// Nowhere: the log filter leaves access lines out.
    Off,
    /// Through the `log` facade ([`crate::logging::init`] was not called: a library user's
    /// own logger decides).
    Log,
}

/// Where access lines go in this process.
pub fn sink() -> Sink {
    match INSTALLED.get() {
        Some(Some(log)) => Sink::Writer(log),
        Some(None) => Sink::Off,
        None => Sink::Log,
    }
}

/// The process's access log writer, when there is one.
pub fn installed() -> Option<&'static AccessLog> {
    INSTALLED.get().and_then(Option::as_ref)
}

/// Sets the process's access log (once): `None` turns access lines off.
pub(crate) fn install(log: Option<AccessLog>) {
    if INSTALLED.set(log).is_ok() {
        if let Some(log) = installed() {
            let spawned = std::thread::Builder::new()
                .name("access-log".into())
                .spawn(move || log.run());
            if let Err(err) = spawned {
                log::warn!("access log: no writer thread ({err}); lines are written at exit");
            }
        }
    }
}

/// One request, as the access line tells it.
#[derive(Debug, Clone, Copy)]
pub struct AccessLine<'a> {
    /// The request method.
    pub method: &'a str,
    /// The request path (without the query).
    pub path: &'a str,
    /// The response status.
    pub status: u16,
    /// From the request's arrival to its response.
    pub elapsed: Duration,
    /// The response's `X-Cache`, or `-`.
    pub cache: &'a str,
    /// The request id.
    pub request_id: &'a str,
}

/// A buffered access log writer (see the module documentation).
pub struct AccessLog {
    pending: Mutex<Pending>,
    wake: Condvar,
    output: Mutex<Output>,
    dropped: AtomicU64,
    json: bool,
    color: bool,
}

struct Pending {
    lines: Vec<u8>,
    /// The second `stamp` renders, since the epoch.
    second: u64,
    /// `YYYY-MM-DDTHH:MM:SS.` for `second`.
    stamp: [u8; 20],
}

struct Output {
    out: Box<dyn Write + Send>,
    spare: Vec<u8>,
    reported_drops: u64,
}

impl AccessLog {
    /// A writer to stderr, in `format` (`color`: ANSI styles as on a terminal).
    pub fn new(format: LogFormat, color: bool) -> Self {
        Self::to(Box::new(Stderr), format, color)
    }

    /// A writer to `out` (tests).
    pub fn to(out: Box<dyn Write + Send>, format: LogFormat, color: bool) -> Self {
        Self {
            pending: Mutex::new(Pending {
                lines: Vec::with_capacity(2 * FLUSH_BYTES),
                second: u64::MAX,
                stamp: [0; 20],
            }),
            wake: Condvar::new(),
            output: Mutex::new(Output {
                out,
                spare: Vec::with_capacity(2 * FLUSH_BYTES),
                reported_drops: 0,
            }),
            dropped: AtomicU64::new(0),
            json: format == LogFormat::Json,
            color,
        }
    }

    /// Lines dropped so far because too much was waiting.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues `line`, stamped now.
    pub fn record(&self, line: &AccessLine<'_>) {
        self.record_at(line, SystemTime::now());
    }

    /// Queues `line`, stamped `at`.
    pub fn record_at(&self, line: &AccessLine<'_>, at: SystemTime) {
        let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let width = crate::logging::target_width(TARGET);
        let mut pending = lock(&self.pending);
        let before = pending.lines.len();
        if before >= MAX_PENDING_BYTES {
            drop(pending);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.stamp_for(since_epoch.as_secs());
        let Pending { lines, stamp, .. } = &mut *pending;
        let millis = since_epoch.subsec_millis();
        if self.json {
            json_line(lines, line, stamp, millis);
        } else {
            text_line(lines, line, stamp, millis, width, self.color);
        }
        let after = lines.len();
        drop(pending);
        if before == 0 || (before < FLUSH_BYTES && after >= FLUSH_BYTES) {
            self.wake.notify_one();
        }
    }

    /// Writes out every line queued so far (at shutdown; the writer thread does the same in
    /// the background).
    pub fn flush(&self) {
        let mut output = lock(&self.output);
        let Output { out, spare, .. } = &mut *output;
        std::mem::swap(&mut lock(&self.pending).lines, spare);
        if !spare.is_empty() {
            // Nowhere to report a failing stderr; the lines are gone either way.
            let _ = out.write_all(spare).and_then(|()| out.flush());
            spare.clear();
        }
        if spare.capacity() > 4 * FLUSH_BYTES {
            *spare = Vec::with_capacity(2 * FLUSH_BYTES);
        }
        let dropped = self.dropped();
        if dropped > output.reported_drops {
            let newly = dropped - output.reported_drops;
            output.reported_drops = dropped;
            drop(output);
            log::warn!("access log: {newly} lines dropped: stderr did not keep up");
        }
    }

    /// The writer thread: waits for lines, lets them gather, writes them; never returns.
    fn run(&self) {
        loop {
            let mut pending = lock(&self.pending);
            while pending.lines.is_empty() {
                pending = self
                    .wake
                    .wait(pending)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            let deadline = Instant::now() + LINGER;
            while pending.lines.len() < FLUSH_BYTES {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                pending = self
                    .wake
                    .wait_timeout(pending, deadline - now)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
            }
            drop(pending);
            self.flush();
        }
    }
}

impl Pending {
    /// Renders `YYYY-MM-DDTHH:MM:SS.` for `second` unless it is the one already rendered.
    fn stamp_for(&mut self, second: u64) {
        if second == self.second {
            return;
        }
        self.second = second;
        let (year, month, day) = civil_date(second / 86_400);
        let of_day = second % 86_400;
        let s = &mut self.stamp;
        digits(&mut s[0..4], year);
        s[4] = b'-';
        digits(&mut s[5..7], month);
        s[7] = b'-';
        digits(&mut s[8..10], day);
        s[10] = b'T';
        digits(&mut s[11..13], of_day / 3600);
        s[13] = b':';
        digits(&mut s[14..16], of_day / 60 % 60);
        s[16] = b':';
        digits(&mut s[17..19], of_day % 60);
        s[19] = b'.';
    }
}

/// ` <ts> INFO  <target> > <message>\n`, as [`crate::logging::init`]'s text format.
fn text_line(
    out: &mut Vec<u8>,
    line: &AccessLine<'_>,
    stamp: &[u8; 20],
    millis: u32,
    width: usize,
    color: bool,
) {
    out.push(b' ');
    timestamp(out, stamp, millis);
    out.extend_from_slice(if color {
        b" \x1b[0m\x1b[32mINFO \x1b[0m \x1b[0m\x1b[1m"
    } else {
        b" INFO  "
    });
    out.extend_from_slice(TARGET.as_bytes());
    out.resize(out.len() + width.saturating_sub(TARGET.len()), b' ');
    if color {
        out.extend_from_slice(b"\x1b[0m");
    }
    out.extend_from_slice(b" > ");
    message(out, line, false);
    out.push(b'\n');
}

/// The JSON object [`crate::logging::json_line`] makes, keys in its (sorted) order.
fn json_line(out: &mut Vec<u8>, line: &AccessLine<'_>, stamp: &[u8; 20], millis: u32) {
    out.extend_from_slice(b"{\"level\":\"INFO\",\"message\":\"");
    message(out, line, true);
    out.extend_from_slice(b"\",\"target\":\"");
    out.extend_from_slice(TARGET.as_bytes());
    out.extend_from_slice(b"\",\"ts\":\"");
    timestamp(out, stamp, millis);
    out.extend_from_slice(b"\"}\n");
}

/// `GET /items/1 200 0.412ms cache=HIT request_id=...`; `escape`: as inside a JSON string.
fn message(out: &mut Vec<u8>, line: &AccessLine<'_>, escape: bool) {
    out.reserve(
        64 + line.method.len() + line.path.len() + line.cache.len() + line.request_id.len(),
    );
    let text = |out: &mut Vec<u8>, value: &str| {
        if escape {
            json_escaped(out, value);
        } else {
            out.extend_from_slice(value.as_bytes());
        }
    };
    text(out, line.method);
    out.push(b' ');
    text(out, line.path);
    out.push(b' ');
    decimal(out, u64::from(line.status));
    out.push(b' ');
    // Milliseconds with three decimals, rounded to the microsecond like `{:.3}`.
    let micros = (line.elapsed.as_nanos() + 500) / 1000;
    decimal(out, u64::try_from(micros / 1000).unwrap_or(u64::MAX));
    out.push(b'.');
    let mut fraction = [0u8; 3];
    digits(&mut fraction, (micros % 1000) as u64);
    out.extend_from_slice(&fraction);
    out.extend_from_slice(b"ms cache=");
    text(out, line.cache);
    out.extend_from_slice(b" request_id=");
    text(out, line.request_id);
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn timestamp(out: &mut Vec<u8>, stamp: &[u8; 20], millis: u32) {
    out.extend_from_slice(stamp);
    let mut fraction = [0u8; 3];
    digits(&mut fraction, u64::from(millis));
    out.extend_from_slice(&fraction);
    out.push(b'Z');
}

/// `value` as JSON string content, escaped as serde_json escapes it.
fn json_escaped(out: &mut Vec<u8>, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &byte in value.as_bytes() {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0xf)]);
            }
            _ => out.push(byte),
        }
    }
}

/// `value` in decimal, without `core::fmt`.
fn decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut buffer = [0u8; 20];
    let mut start = buffer.len();
    loop {
        start -= 1;
        buffer[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&buffer[start..]);
}

/// The last `out.len()` decimal digits of `value`, zero-padded.
fn digits(out: &mut [u8], mut value: u64) {
    for byte in out.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// (year, month, day) of the day `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// stderr, locked for each whole batch so other log lines land between batches, not inside.
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        std::io::stderr().lock().write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn line(path: &str) -> AccessLine<'_> {
        AccessLine {
            method: "GET",
            path,
            status: 200,
            elapsed: Duration::from_nanos(412_499),
            cache: "HIT",
            request_id: "5f0c",
        }
    }

    /// 2026-12-01T22:30:05.123Z
    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_796_164_205_123)
    }

    #[test]
    fn text_lines_match_the_documented_layout() {
        let captured = Captured::default();
        let log = AccessLog::to(Box::new(captured.clone()), LogFormat::Text, false);
        log.record_at(&line("/items/1"), at());
        log.flush();
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let width = crate::logging::target_width(TARGET);
        assert_eq!(
            text,
            format!(
                " 2026-12-01T22:30:05.123Z INFO  {TARGET:<width$} > GET /items/1 200 0.412ms cache=HIT request_id=5f0c\n"
            )
        );
    }

    #[test]
    fn json_lines_are_what_json_line_makes() {
        let captured = Captured::default();
        let log = AccessLog::to(Box::new(captured.clone()), LogFormat::Json, false);
        let awkward = "/items/\"quoted\"\\\t\u{1}é";
        log.record_at(&line(awkward), at());
        log.flush();
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let expected = crate::logging::json_line(
            "2026-12-01T22:30:05.123Z",
            log::Level::Info,
            TARGET,
            &format!("GET {awkward} 200 0.412ms cache=HIT request_id=5f0c"),
        );
        assert_eq!(text, expected + "\n");
    }

    #[test]
    fn dates_and_durations_render_like_core_fmt() {
        for (days, date) in [
            (0, (1970, 1, 1)),
            (11_016, (2000, 2, 29)),
            (20_788, (2026, 12, 1)),
            (2_932_896, (9999, 12, 31)),
        ] {
            assert_eq!(civil_date(days), date, "{days}");
        }
        for nanos in [0u64, 499, 500, 999_999, 1_000_000, 12_345_678_901] {
            let mut out = Vec::new();
            message(
                &mut out,
                &AccessLine {
                    elapsed: Duration::from_nanos(nanos),
                    ..line("/")
                },
                false,
            );
            let millis = Duration::from_nanos(nanos).as_secs_f64() * 1000.0;
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("GET / 200 {millis:.3}ms cache=HIT request_id=5f0c"),
                "{nanos}"
            );
        }
    }

    #[test]
    fn lines_past_the_bound_are_dropped_and_counted_not_waited_for() {
        let captured = Captured::default();
        let log = AccessLog::to(Box::new(captured.clone()), LogFormat::Text, false);
        let long = "/".repeat(4096);
        let fitting = MAX_PENDING_BYTES.div_ceil(long.len() + 100);
        for _ in 0..fitting + 10 {
            log.record_at(&line(&long), at());
        }
        assert!(log.dropped() >= 10, "{}", log.dropped());
        log.flush();
        let written = captured
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        assert_eq!(written as u64 + log.dropped(), fitting as u64 + 10);
        log.record_at(&line("/after"), at());
        log.flush();
        assert!(String::from_utf8_lossy(&captured.0.lock().unwrap()).ends_with("request_id=5f0c\n"));
    }
}
