//! `warm`: read items and the first list pages so that their responses are in the cache.
//! Writes nothing.
//!
//! A read leaves its response cached when it was a hit (`X-Cache: HIT`) or a miss the service
//! stored (`Cache-Status: ...; stored`). Anything else, such as `X-Cache: BYPASS` while Redis is
//! down, counts as a failure, with the service's reason. The reads carry no `Authorization`
//! header: the service neither looks up nor stores requests that carry credentials.

use super::batch;
use super::client::{CacheHeaders, Client, PAGE_SIZE};
use super::error::RequestError;
use super::summary::{HitRate, Summary};

/// How to warm.
#[derive(Debug, Clone)]
pub struct WarmOptions {
    /// Requests in flight at once.
    pub concurrency: usize,
    /// List pages (`GET /items?limit=100&offset=...`) to warm, from the first.
    pub list_pages: u32,
}

/// Warms `ids`, or every item when `None`, and the first list pages; then reads the hit rate.
pub async fn run(
    client: &Client,
    ids: Option<&[i64]>,
    options: &WarmOptions,
) -> Result<Summary, RequestError> {
    let every_id: Vec<i64>;
    let ids = match ids {
        Some(ids) => ids,
        None => {
            every_id = client
                .all_items()
                .await?
                .iter()
                .map(|item| item.id)
                .collect();
            &every_id
        }
    };
    let mut summary = Summary::default();
    if warm(client, ids, options, &mut summary).await {
        summary.hit_rate = HitRate::read(client).await;
    }
    Ok(summary)
}

/// Reads each of `ids` and the first list pages, counting into `summary`. Returns false when it
/// stopped early because the service became unreachable.
pub async fn warm(
    client: &Client,
    ids: &[i64],
    options: &WarmOptions,
    summary: &mut Summary,
) -> bool {
    let reads = batch::run("warm items", ids.len(), options.concurrency, |index| {
        client.get_item(ids[index])
    })
    .await;
    for (index, outcome) in reads.finished {
        count(summary, &format!("GET /items/{}", ids[index]), outcome);
    }
    summary.abandon(reads.abandoned, "item reads");
    reads.abandoned == 0 && warm_list_pages(client, options, summary).await
}

/// Reads the first page to learn how many there are, then the others up to `list_pages`.
async fn warm_list_pages(client: &Client, options: &WarmOptions, summary: &mut Summary) -> bool {
    if options.list_pages == 0 {
        return true;
    }
    let path = |offset: u64| format!("GET /items?limit={PAGE_SIZE}&offset={offset}");
    let total = match client.list_page(0).await {
        Ok((page, headers)) => {
            count(summary, &path(0), Ok(headers));
            page.total
        }
        Err(err) => {
            let reachable = !err.is_unreachable();
            summary.fail(err);
            return reachable;
        }
    };
    let pages = total
        .div_ceil(u64::from(PAGE_SIZE))
        .min(u64::from(options.list_pages));
    let offset = |index: usize| (index as u64 + 1) * u64::from(PAGE_SIZE);
    let more = pages.saturating_sub(1) as usize;
    let reads = batch::run(
        "warm list pages",
        more,
        options.concurrency,
        |index| async move {
            client
                .list_page(offset(index))
                .await
                .map(|(_, headers)| headers)
        },
    )
    .await;
    for (index, outcome) in reads.finished {
        count(summary, &path(offset(index)), outcome);
    }
    summary.abandon(reads.abandoned, "list page reads");
    reads.abandoned == 0
}

fn count(summary: &mut Summary, request: &str, outcome: Result<CacheHeaders, RequestError>) {
    match outcome.map(|headers| left_cached(&headers)) {
        Ok(Ok(already)) => {
            summary.warmed += 1;
            summary.already_cached += usize::from(already);
        }
        Ok(Err(why)) => summary.fail(format!("{request}: not cached ({why})")),
        Err(err) => summary.fail(err),
    }
}

/// Whether a read left its response cached, and whether it already was; else why not.
fn left_cached(headers: &CacheHeaders) -> Result<bool, String> {
    if headers.x_cache.as_deref() == Some("HIT") {
        return Ok(true);
    }
    match headers.cache_status.as_deref() {
        Some(status) if status.split(';').any(|part| part.trim() == "stored") => Ok(false),
        Some(status) => Err(format!("Cache-Status: {status}")),
        None => Err("no Cache-Status header: is this service caching?".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(x_cache: &str, cache_status: &str) -> CacheHeaders {
        CacheHeaders {
            x_cache: Some(x_cache.into()),
            cache_status: Some(cache_status.into()),
        }
    }

    #[test]
    fn hits_and_stored_misses_leave_the_response_cached() {
        let hit = headers("HIT", "warp-redis-cache; hit; ttl=299");
        assert_eq!(left_cached(&hit), Ok(true));
        let stored = headers("MISS", "warp-redis-cache; fwd=miss; stored");
        assert_eq!(left_cached(&stored), Ok(false));
    }

    #[test]
    fn bypasses_and_unstored_misses_do_not() {
        let bypass = headers(
            "BYPASS",
            "warp-redis-cache; fwd=bypass; detail=cache-unavailable",
        );
        let why = left_cached(&bypass).expect_err("not cached");
        assert!(why.contains("cache-unavailable"), "{why}");
        let too_big = headers("MISS", "warp-redis-cache; fwd=miss; detail=too-large");
        assert!(left_cached(&too_big).is_err());
        assert!(left_cached(&CacheHeaders::default()).is_err());
    }
}
