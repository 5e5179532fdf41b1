//! A request body that must arrive within a deadline.
//!
//! hyper bounds how long headers may take (our connection watchdog does), but nothing bounds
//! a body sent one byte a minute. [`TimedBody`] wraps the incoming body: once the deadline,
//! counted from when the request's headers were read, passes with body frames still missing,
//! the next read fails with [`BodyReadTimeout`]; the route answers 408 and the connection is
//! closed because its body was not read to the end.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::events::ConnectionMetrics;

/// The error a [`TimedBody`] yields once its deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyReadTimeout {
    /// The budget that was exceeded.
    pub budget: Duration,
}

impl fmt::Display for BodyReadTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the request body did not arrive within {} ms",
            self.budget.as_millis()
        )
    }
}

impl std::error::Error for BodyReadTimeout {}

/// Whether `err` (or anything in its source chain) is a [`BodyReadTimeout`].
pub fn is_body_read_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(err) = current {
        if err.is::<BodyReadTimeout>() {
            return true;
        }
        current = err.source();
    }
    false
}

/// `inner`, failing with [`BodyReadTimeout`] when it is not complete by the deadline.
///
/// The timer is armed only the first time the body has to wait for the client, so a request
/// without a body (every GET) costs no timer and no allocation.
pub struct TimedBody<B> {
    inner: B,
    budget: Duration,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    timed_out: bool,
    metrics: Arc<ConnectionMetrics>,
}

impl<B> TimedBody<B> {
    /// Wraps `inner`; it must be read within `budget` from now.
    pub fn new(inner: B, budget: Duration, metrics: Arc<ConnectionMetrics>) -> Self {
        Self {
            inner,
            budget,
            deadline: Instant::now() + budget,
            timer: None,
            timed_out: false,
            metrics,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if this.timed_out {
            return Poll::Ready(Some(Err(Box::new(BodyReadTimeout {
                budget: this.budget,
            }))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_ready() {
                    this.timed_out = true;
                    this.metrics.body_timed_out();
                    return Poll::Ready(Some(Err(Box::new(BodyReadTimeout {
                        budget: this.budget,
                    }))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
