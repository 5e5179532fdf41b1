//! Words for numbers in messages people read: "1 key", "2 keys", "1.5 KiB", "93.2%".
//!
//! Only for log lines and operator output; JSON answers carry plain numbers.

/// `n` followed by `noun`, made plural with an `s` unless `n` is 1.
///
/// ```
/// use warp_redis_cache_service::wording::count;
///
/// assert_eq!(count(1, "key"), "1 key");
/// assert_eq!(count(0, "key"), "0 keys");
/// assert_eq!(count(12, "namespace"), "12 namespaces");
/// ```
pub fn count(n: u64, noun: &str) -> String {
    count_with(n, noun, &format!("{noun}s"))
}

/// `n` followed by `singular` when `n` is 1, else by `plural`.
///
/// ```
/// use warp_redis_cache_service::wording::count_with;
///
/// assert_eq!(count_with(1, "live entry", "live entries"), "1 live entry");
/// assert_eq!(count_with(3, "live entry", "live entries"), "3 live entries");
/// ```
pub fn count_with(n: u64, singular: &str, plural: &str) -> String {
    if n == 1 {
        format!("1 {singular}")
    } else {
        format!("{n} {plural}")
    }
}

/// A byte count in binary units: `512 B`, `1.5 KiB`, `3.2 MiB`.
///
/// ```
/// use warp_redis_cache_service::wording::bytes;
///
/// assert_eq!(bytes(512), "512 B");
/// assert_eq!(bytes(1536), "1.5 KiB");
/// assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
/// ```
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A ratio as a percentage with one decimal, or `-` when there is none.
///
/// ```
/// use warp_redis_cache_service::wording::percent;
///
/// assert_eq!(percent(Some(0.9321)), "93.2%");
/// assert_eq!(percent(None), "-");
/// ```
pub fn percent(ratio: Option<f64>) -> String {
    match ratio {
        Some(ratio) => format!("{:.1}%", ratio * 100.0),
        None => "-".into(),
    }
}
