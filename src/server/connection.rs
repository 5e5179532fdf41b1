//! Serving one accepted connection: HTTP/1 through hyper, a watchdog enforcing the header
//! read, idle and response write timeouts ([`super::activity`]), a deadline on each request
//! body, and a graceful close when the server drains.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::activity::{Activity, Budgets, Verdict};
use super::body_timeout::TimedBody;
use super::events::{CloseReason, ConnectionMetrics};
use super::{Phase, ServerLimits};

/// hyper's own limit on request header lines (`DEFAULT_MAX_HEADERS` in hyper's HTTP/1 parser).
const HYPER_MAX_HEADERS: usize = 100;

/// Serves `stream` until the client leaves, a timeout fires, or the server drains (then the
/// request in flight is finished first) or closes.
pub(super) async fn serve_connection<S>(
    stream: TcpStream,
    routes: S,
    limits: ServerLimits,
    metrics: Arc<ConnectionMetrics>,
    phase: watch::Receiver<Phase>,
) where
    S: tower_service::Service<
            Request<TimedBody<Incoming>>,
            Response = warp::reply::Response,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let activity = Arc::new(Activity::accepted(Instant::now()));
    let io = TokioIo::new(ObservedStream {
        inner: stream,
        activity: Arc::clone(&activity),
    });
    let service = {
        let (activity, metrics) = (Arc::clone(&activity), Arc::clone(&metrics));
        let body_budget = limits.body_read_timeout;
        hyper::service::service_fn(move |request: Request<Incoming>| {
            activity.request_began();
            let request =
                request.map(|body| TimedBody::new(body, body_budget, Arc::clone(&metrics)));
            let answer = routes.clone().call(request);
            let activity = Arc::clone(&activity);
            async move {
                let response = answer.await;
                activity.request_ended(Instant::now());
                response
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    if limits.max_headers != HYPER_MAX_HEADERS {
        // Only when it differs: with an explicit limit hyper sizes and fills its header index
        // arrays on every request (~1.6 k instructions); its own default is the same limit.
        builder.max_headers(limits.max_headers);
    }
    builder
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    let connection = builder.serve_connection(io, service);
    let budgets = Budgets {
        header_read: limits.header_read_timeout,
        idle: limits.idle_timeout,
        response_write: limits.response_write_timeout,
    };
    let (reason, error) = supervise(connection, &activity, budgets, phase).await;
    metrics.closed(reason, error.as_ref());
}

/// Runs `connection` to its end, closing it when a timeout in `budgets` fires or the server
/// drains or closes; says why it ended.
async fn supervise<S>(
    connection: hyper::server::conn::http1::Connection<TokioIo<ObservedStream>, S>,
    activity: &Activity,
    budgets: Budgets,
    mut phase: watch::Receiver<Phase>,
) -> (CloseReason, Option<hyper::Error>)
where
    S: hyper::service::HttpService<Incoming>,
    S::ResBody: 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connection = std::pin::pin!(connection);
    // Why we asked for a graceful close, and when to stop waiting for it: hyper's graceful
    // close finishes the response being written first, which may never happen.
    let mut closing: Option<(CloseReason, Instant)> = None;
    let mut server_alive = true;
    loop {
        let now = Instant::now();
        if let Some((reason, close_by)) = closing {
            if now >= close_by {
                return (reason, None);
            }
        }
        let check_at = match activity.verdict(now, budgets) {
            Verdict::CheckAt(at) => at,
            Verdict::HeaderTimeout => return (CloseReason::HeaderTimeout, None),
            Verdict::WriteStalled => return (CloseReason::WriteTimeout, None),
            Verdict::Idle => {
                connection.as_mut().graceful_shutdown();
                closing.get_or_insert((CloseReason::IdleTimeout, now + budgets.response_write));
                now + budgets.header_read
            }
        };
        let check_at = closing.map_or(check_at, |(_, close_by)| check_at.min(close_by));
        let current = *phase.borrow_and_update();
        match current {
            Phase::Serving => {}
            Phase::Draining => connection.as_mut().graceful_shutdown(),
            Phase::Closing => return (CloseReason::Other, None),
        }
        tokio::select! {
            finished = connection.as_mut() => {
                return match finished {
                    Ok(()) => (closing.map_or(CloseReason::Completed, |(reason, _)| reason), None),
                    Err(err) => (CloseReason::of(&err), Some(err)),
                };
            }
            _ = tokio::time::sleep_until(check_at.into()) => {}
            () = activity.deadline_moved() => {}
            changed = phase.changed(), if server_alive => {
                // An error means the server loop is gone and will say nothing more.
                server_alive = changed.is_ok();
            }
        }
    }
}

/// A TCP stream that tells the connection's [`Activity`] when bytes arrive, when bytes
/// leave, and when the client's socket is too full to take more.
struct ObservedStream {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl ObservedStream {
    fn observe_write(&self, polled: &Poll<io::Result<usize>>) {
        match polled {
            Poll::Ready(Ok(written)) if *written > 0 => {
                self.activity.bytes_written(Instant::now());
            }
            Poll::Pending => self.activity.write_refused(Instant::now()),
            Poll::Ready(_) => {}
        }
    }
}

impl AsyncRead for ObservedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_read(Instant::now());
        }
        polled
    }
}

impl AsyncWrite for ObservedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        self.observe_write(&polled);
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.observe_write(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
