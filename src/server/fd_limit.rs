//! How many connections the process can hold: the open-files limit, less what the rest of the
//! service needs.
//!
//! Every connection costs one file descriptor; when they run out, `accept` fails and every new
//! client waits (`EMFILE`). The default connection cap leaves room for the listener, Redis,
//! the item store, log files and the runtime.

/// Descriptors kept back from the open-files limit for everything that is not a client.
pub const RESERVED_DESCRIPTORS: u64 = 128;
/// The smallest default cap, even under a tiny open-files limit.
pub const MIN_DEFAULT_CONNECTIONS: usize = 16;

/// The process's soft open-files limit (`RLIMIT_NOFILE`), when the platform says.
pub fn open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own and reads nothing else.
        let status = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        if status == 0 && limit.rlim_cur != libc::RLIM_INFINITY {
            return Some(limit.rlim_cur);
        }
        None
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The connection cap for an open-files limit: the limit less [`RESERVED_DESCRIPTORS`], at
/// least [`MIN_DEFAULT_CONNECTIONS`]; 10,000 when the limit is unknown or unlimited.
///
/// ```
/// use warp_redis_cache_service::server::fd_limit::default_max_connections;
///
/// assert_eq!(default_max_connections(Some(1024)), 896);
/// assert_eq!(default_max_connections(Some(64)), 16);
/// assert_eq!(default_max_connections(None), 10_000);
/// ```
pub fn default_max_connections(open_files: Option<u64>) -> usize {
    match open_files {
        Some(limit) => {
            let usable = limit.saturating_sub(RESERVED_DESCRIPTORS);
            usize::try_from(usable)
                .unwrap_or(usize::MAX)
                .max(MIN_DEFAULT_CONNECTIONS)
        }
        None => 10_000,
    }
}
