//! Many requests at once, but not too many: bounded concurrency, progress, and an early stop.
//!
//! Up to `concurrency` steps run at a time, in any order. When a step fails because the service
//! cannot be reached at all (after that request's own retries), the batch stops: every later
//! step would wait out the same retries for nothing. The steps not finished are reported as
//! abandoned; running the command again picks them up (seed skips what exists, warm only reads).

use std::future::Future;

use futures_util::stream::{self, StreamExt};

use super::error::RequestError;
use super::progress::Progress;

/// What a batch did.
#[derive(Debug)]
pub struct Batch<T> {
    /// Each finished step's index and outcome, in the order they finished.
    pub finished: Vec<(usize, Result<T, RequestError>)>,
    /// Steps not run, or cut short, because the service became unreachable.
    pub abandoned: usize,
}

/// Runs `step(0)` to `step(total - 1)`, `concurrency` at a time, showing progress as `phase`.
///
/// Steps take an index rather than an item, so that a step can borrow what the caller holds.
pub async fn run<T, F, Fut>(
    phase: &'static str,
    total: usize,
    concurrency: usize,
    step: F,
) -> Batch<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T, RequestError>>,
{
    let mut progress = Progress::start(phase, total);
    let step = &step;
    let mut outcomes = stream::iter(0..total)
        .map(|index| async move { (index, step(index).await) })
        .buffer_unordered(concurrency.max(1));
    let mut finished = Vec::with_capacity(total);
    while let Some((index, outcome)) = outcomes.next().await {
        progress.step(outcome.is_ok());
        let unreachable = matches!(&outcome, Err(err) if err.is_unreachable());
        finished.push((index, outcome));
        if unreachable {
            break;
        }
    }
    progress.finish();
    Batch {
        abandoned: total - finished.len(),
        finished,
    }
}
