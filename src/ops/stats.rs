//! `stats`: the cache's state as a table, once or live (`--watch`, like `varnishstat`).
//!
//! Rendering is pure: a [`StatsView`] (and, for the live view, the one before it and the
//! seconds between them) in, text out, so every number is a unit test. The live view shows
//! rates per second over the last interval and each namespace's hit ratio, busiest first.

use std::fmt::Write as _;
use std::io::Write;
use std::time::{Duration, Instant};

use super::client::Client;
use super::error::RequestError;
use super::views::{CountersView, StatsView};
use crate::wording::{bytes, count, percent};

/// The lines about the backend, L1, pending busts and uptime.
pub fn overview(stats: &StatsView) -> String {
    let backend = &stats.backend;
    let mut health = if backend.healthy {
        match backend.latency_ms {
            Some(ms) => format!("healthy ({ms:.1} ms)"),
            None => "healthy".into(),
        }
    } else {
        format!("DOWN ({})", backend.error.as_deref().unwrap_or("no answer"))
    };
    if let Some(circuit) = &backend.circuit {
        let _ = write!(
            health,
            ", breaker {} (opened {} times)",
            circuit.state.replace('_', " "),
            circuit.opened_total
        );
    }
    let mut text = format!("backend   {}: {health}\n", backend.kind);
    let l1 = match &stats.l1 {
        Some(l1) => format!(
            "{}, {} entries, {}",
            if l1.live { "live" } else { "NOT LIVE" },
            l1.entries,
            bytes(l1.bytes)
        ),
        None => "off".into(),
    };
    let _ = writeln!(text, "l1        {l1}");
    if let Some(pending) = stats.pending_busts() {
        let _ = writeln!(
            text,
            "pending   {} (failed invalidations being retried)",
            count(pending, "bust")
        );
    }
    let _ = writeln!(text, "uptime    {:.0} s", stats.uptime_secs);
    text
}

/// `cachectl stats`: the overview and a table of counters per namespace, then the total.
pub fn table(stats: &StatsView) -> String {
    let mut text = overview(stats);
    let _ = writeln!(
        text,
        "\n{:<24} {:>10} {:>10} {:>8} {:>9} {:>8} {:>7} {:>10} {:>10}",
        "namespace", "hits", "misses", "stale", "hit rate", "sets", "errors", "body", "stored"
    );
    let rows = stats
        .namespaces
        .iter()
        .map(|(name, counters)| (name.as_str(), counters))
        .chain([("(total)", &stats.total)]);
    for (name, c) in rows {
        let _ = writeln!(
            text,
            "{:<24} {:>10} {:>10} {:>8} {:>9} {:>8} {:>7} {:>10} {:>10}",
            name,
            c.hits,
            c.misses,
            c.stale_serves,
            percent(c.hit_ratio()),
            c.sets,
            c.errors,
            bytes(c.body_bytes),
            bytes(c.stored_bytes)
        );
    }
    text
}

/// Per-second rates of one namespace (or the total) over an interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Rates {
    /// The namespace, or `(total)`.
    pub name: String,
    /// Lookups (hits + misses) per second.
    pub lookups: f64,
    /// Hits per second.
    pub hits: f64,
    /// Misses per second.
    pub misses: f64,
    /// Stale serves per second.
    pub stale: f64,
    /// Hit ratio over the interval; `None` without lookups in it.
    pub interval_ratio: Option<f64>,
    /// Hit ratio since the counters started.
    pub overall_ratio: Option<f64>,
}

fn rates_of(name: &str, before: &CountersView, after: &CountersView, seconds: f64) -> Rates {
    let delta = |a: u64, b: u64| a.saturating_sub(b) as f64;
    let hits = delta(after.hits, before.hits);
    let misses = delta(after.misses, before.misses);
    Rates {
        name: name.to_string(),
        lookups: (hits + misses) / seconds,
        hits: hits / seconds,
        misses: misses / seconds,
        stale: delta(after.stale_serves, before.stale_serves) / seconds,
        interval_ratio: (hits + misses > 0.0).then(|| hits / (hits + misses)),
        overall_ratio: after.hit_ratio(),
    }
}

/// Rates per namespace between two answers `seconds` apart, busiest first, then the total.
/// A namespace new in `after` counts from zero; counters that went down (a reset) count as 0.
pub fn rates(before: &StatsView, after: &StatsView, seconds: f64) -> Vec<Rates> {
    let seconds = seconds.max(1e-3);
    let zero = CountersView::default();
    let mut rows: Vec<Rates> = after
        .namespaces
        .iter()
        .map(|(name, counters)| {
            let earlier = before.namespaces.get(name).unwrap_or(&zero);
            rates_of(name, earlier, counters, seconds)
        })
        .collect();
    rows.sort_by(|a, b| b.lookups.total_cmp(&a.lookups).then(a.name.cmp(&b.name)));
    rows.push(rates_of("(total)", &before.total, &after.total, seconds));
    rows
}

/// One frame of `stats --watch`: the overview and the `top` busiest namespaces' rates.
pub fn watch_frame(before: &StatsView, after: &StatsView, seconds: f64, top: usize) -> String {
    let mut text = overview(after);
    let _ = writeln!(
        text,
        "\nper second over the last {seconds:.1} s\n{:<24} {:>10} {:>10} {:>10} {:>8} {:>10} {:>10}",
        "namespace", "lookups/s", "hits/s", "misses/s", "stale/s", "hit ratio", "overall"
    );
    let mut rows = rates(before, after, seconds);
    let total = rows.pop().expect("rates end with the total");
    let hidden = rows.len().saturating_sub(top);
    rows.truncate(top);
    for row in rows.iter().chain([&total]) {
        let _ = writeln!(
            text,
            "{:<24} {:>10.1} {:>10.1} {:>10.1} {:>8.1} {:>10} {:>10}",
            row.name,
            row.lookups,
            row.hits,
            row.misses,
            row.stale,
            percent(row.interval_ratio),
            percent(row.overall_ratio)
        );
    }
    if hidden > 0 {
        let _ = writeln!(text, "({hidden} quieter namespaces not shown; --top N)");
    }
    text
}

/// How `stats --watch` runs.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Time between two frames.
    pub interval: Duration,
    /// Stop after this many frames (`None`: until interrupted).
    pub frames: Option<u64>,
    /// Namespaces shown.
    pub top: usize,
    /// Redraw in place (a terminal) rather than print one frame after another.
    pub redraw: bool,
}

/// Prints a frame every `interval` to `out`; stops on the first request error.
pub async fn watch(
    client: &Client,
    options: &WatchOptions,
    out: &mut impl Write,
) -> Result<(), RequestError> {
    let mut before = client.stats().await?;
    let mut at = Instant::now();
    let mut shown = 0;
    while options.frames.is_none_or(|frames| shown < frames) {
        tokio::time::sleep(options.interval).await;
        let after = client.stats().await?;
        let now = Instant::now();
        let frame = watch_frame(&before, &after, (now - at).as_secs_f64(), options.top);
        let clear = if options.redraw { "\x1b[2J\x1b[H" } else { "" };
        let separator = if options.redraw || shown == 0 {
            ""
        } else {
            "\n"
        };
        let _ = write!(out, "{clear}{separator}{frame}");
        let _ = out.flush();
        shown += 1;
        (before, at) = (after, now);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(hits: u64, misses: u64) -> CountersView {
        CountersView {
            hits,
            misses,
            ..CountersView::default()
        }
    }

    fn stats(namespaces: &[(&str, u64, u64)]) -> StatsView {
        let mut view = StatsView::default();
        for (name, hits, misses) in namespaces {
            view.namespaces
                .insert(name.to_string(), counters(*hits, *misses));
            view.total.hits += hits;
            view.total.misses += misses;
        }
        view
    }

    #[test]
    fn rates_are_per_second_over_the_interval_busiest_first() {
        let before = stats(&[("items", 100, 100), ("users", 10, 0)]);
        let after = stats(&[("items", 130, 110), ("users", 10, 0), ("new", 4, 0)]);
        let rows = rates(&before, &after, 2.0);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["items", "new", "users", "(total)"]);
        assert_eq!(rows[0].lookups, 20.0);
        assert_eq!(rows[0].hits, 15.0);
        assert_eq!(rows[0].interval_ratio, Some(0.75));
        assert_eq!(rows[0].overall_ratio, Some(130.0 / 240.0));
        assert_eq!(rows[1].lookups, 2.0, "a new namespace counts from zero");
        assert_eq!(rows[2].interval_ratio, None, "no lookups in the interval");
        assert_eq!(rows[3].lookups, 22.0);
    }

    #[test]
    fn a_reset_between_two_answers_counts_as_zero_not_as_a_wrap() {
        let rows = rates(
            &stats(&[("items", 500, 5)]),
            &stats(&[("items", 1, 0)]),
            1.0,
        );
        assert_eq!(rows[0].lookups, 0.0);
    }

    #[test]
    fn the_watch_frame_shows_the_top_namespaces_and_says_how_many_are_hidden() {
        let many: Vec<(String, u64, u64)> = (0..200).map(|i| (format!("ns{i:03}"), i, 0)).collect();
        let refs: Vec<(&str, u64, u64)> =
            many.iter().map(|(n, h, m)| (n.as_str(), *h, *m)).collect();
        let frame = watch_frame(&StatsView::default(), &stats(&refs), 1.0, 5);
        assert!(frame.contains("ns199"), "{frame}");
        assert!(!frame.contains("ns000"), "{frame}");
        assert!(frame.contains("(195 quieter namespaces not shown; --top N)"));
        assert!(frame.contains("(total)"));
    }

    #[test]
    fn the_table_lists_each_namespace_and_the_total_and_the_backend() {
        let mut view = stats(&[("items", 41, 3)]);
        view.backend.kind = "redis".into();
        view.backend.healthy = true;
        view.backend.latency_ms = Some(0.42);
        view.backend.pending_busts = Some(2);
        let text = table(&view);
        assert!(text.contains("backend   redis: healthy (0.4 ms)"), "{text}");
        assert!(text.contains("l1        off"), "{text}");
        assert!(
            text.contains("pending   2 busts (failed invalidations being retried)"),
            "{text}"
        );
        let items = text.lines().find(|l| l.starts_with("items")).expect("row");
        assert!(items.contains("93.2%"), "{items}");
        assert!(text.lines().any(|l| l.starts_with("(total)")));
    }
}
