//! Words for numbers in messages people read: "1 key", "2 keys".
//!
//! Only for log lines and operator output; JSON answers carry plain numbers.

/// `n` followed by `noun`, made plural with an `s` unless `n` is 1.
///
/// ```
/// use warp_redis_cache::wording::count;
///
/// assert_eq!(count(1, "key"), "1 key");
/// assert_eq!(count(0, "key"), "0 keys");
/// assert_eq!(count(12, "namespace"), "12 namespaces");
/// ```
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
