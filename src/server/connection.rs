//! Serving one accepted connection: HTTP/1 through hyper, a watchdog enforcing the header
//! read and idle timeouts ([`super::activity`]), a deadline on each request body, and a
//! graceful close when the server drains.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
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
use super::{ClientAddr, ServerLimits};

/// Serves `stream` until the client leaves, a timeout fires, or `drain` turns true and the
/// connection has finished its request in flight.
pub(super) async fn serve_connection<S>(
    stream: TcpStream,
    peer: SocketAddr,
    routes: S,
    limits: ServerLimits,
    metrics: Arc<ConnectionMetrics>,
    mut drain: watch::Receiver<bool>,
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
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            activity.request_began();
            request.extensions_mut().insert(ClientAddr(peer));
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
    builder
        .max_headers(limits.max_headers)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    let connection = builder.serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let budgets = Budgets {
        header_read: limits.header_read_timeout,
        idle: limits.idle_timeout,
    };
    let mut closing: Option<CloseReason> = None;
    let reason = loop {
        let check_at = match activity.verdict(Instant::now(), budgets) {
            Verdict::CheckAt(at) => at,
            Verdict::HeaderTimeout => break (CloseReason::HeaderTimeout, None),
            Verdict::Idle => {
                connection.as_mut().graceful_shutdown();
                closing.get_or_insert(CloseReason::IdleTimeout);
                Instant::now() + budgets.header_read
            }
        };
        let draining = *drain.borrow();
        tokio::select! {
            finished = connection.as_mut() => {
                break match finished {
                    Ok(()) => (closing.unwrap_or(CloseReason::Completed), None),
                    Err(err) => (CloseReason::of(&err), Some(err)),
                };
            }
            _ = tokio::time::sleep_until(check_at.into()) => {}
            () = activity.deadline_moved() => {}
            changed = drain.changed(), if !draining => {
                if changed.is_err() || *drain.borrow() {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    };
    metrics.closed(reason.0, reason.1.as_ref());
}

/// A TCP stream that tells the connection's [`Activity`] when bytes arrive.
struct ObservedStream {
    inner: TcpStream,
    activity: Arc<Activity>,
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
        Pin::new(&mut self.inner).poll_write(cx, data)
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
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
