//! The HTTP server: an accept loop of our own around `warp::service(routes)`, so that every
//! resource a client can make us hold has a bound.
//!
//! `warp::serve` builds hyper without a timer and accepts without limit: 20,000 idle sockets
//! exhaust the file descriptors and slowloris clients are never closed. Here:
//!
//! - at most [`ServerLimits::max_connections`] connections are served at once; past the cap
//!   the loop stops accepting, so new clients wait in the kernel's listen backlog (and are
//!   refused by the kernel once it is full) instead of starving the process of descriptors;
//!   a throttled warning says so;
//! - a request head must arrive within [`ServerLimits::header_read_timeout`], a request body
//!   within [`ServerLimits::body_read_timeout`], and a connection with nothing in flight is
//!   closed after [`ServerLimits::idle_timeout`];
//! - a response the client takes none of for [`ServerLimits::response_write_timeout`] closes
//!   its connection (a client that asks for a large answer and never reads it);
//! - on shutdown the listener closes at once, idle connections close, and in-flight requests
//!   get a bounded grace period.
//!
//! Routes see the client's address through [`client_addr`].

pub mod activity;
pub mod body_timeout;
mod connection;
pub mod events;
pub mod fd_limit;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::Request;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower_service::Service;
use warp::reply::Response;
use warp::Filter;

use crate::settings::AppSettings;
use body_timeout::TimedBody;
pub use events::ConnectionMetrics;

/// A client's address as a request extension, for services that set it themselves; [`serve`]
/// does not (see [`client_addr`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

tokio::task_local! {
    /// The address of the client whose connection the current task serves ([`serve`]).
    static CONNECTION_PEER: SocketAddr;
}

/// The client's address: from [`serve`] (which serves each connection, routes included, in a
/// task that knows its peer: nothing is stored per request), from a [`ClientAddr`] extension,
/// or from `warp::serve` / `warp::test` when routes are served another way. `None` when the
/// routes run outside all of these (a task spawned from a route): callers must fail closed.
pub fn client_addr() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<ClientAddr>()
        .and(warp::addr::remote())
        .map(|ours: Option<ClientAddr>, warps: Option<SocketAddr>| {
            ours.map(|ClientAddr(addr)| addr)
                .or_else(|| CONNECTION_PEER.try_with(|peer| *peer).ok())
                .or(warps)
        })
}

/// The bounds the server enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Most connections served at once.
    pub max_connections: usize,
    /// From a request's first byte (or from accept) to its complete head.
    pub header_read_timeout: Duration,
    /// Nothing in flight for this long: the connection is closed.
    pub idle_timeout: Duration,
    /// From a request's head to the end of its body.
    pub body_read_timeout: Duration,
    /// A response the client's socket has taken nothing of for this long: the connection is
    /// closed.
    pub response_write_timeout: Duration,
    /// Most header lines in one request (more: 431).
    pub max_headers: usize,
    /// Largest request head, in bytes (larger: 431 / closed).
    pub max_header_bytes: usize,
}

impl ServerLimits {
    /// The limits in `app`; a `max_connections` of 0 is sized from the open-files limit.
    pub fn from_settings(app: &AppSettings) -> Self {
        let max_connections = match app.max_connections {
            0 => fd_limit::default_max_connections(fd_limit::open_files_limit()),
            set => set,
        };
        Self {
            max_connections,
            header_read_timeout: Duration::from_millis(app.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(app.idle_timeout_ms),
            body_read_timeout: Duration::from_millis(app.body_read_timeout_ms),
            response_write_timeout: Duration::from_millis(app.response_write_timeout_ms),
            max_headers: app.max_headers,
            max_header_bytes: app.max_header_bytes,
        }
    }

    /// A sentence for the startup log.
    pub fn describe(&self) -> String {
        let open_files = fd_limit::open_files_limit()
            .map_or_else(|| "unknown".to_string(), |limit| limit.to_string());
        format!(
            "connection limits: at most {} connections (open-files limit {open_files}), \
             header read timeout {} ms, idle timeout {} ms, body read timeout {} ms, \
             response write timeout {} ms, at most {} headers / {} header bytes",
            self.max_connections,
            self.header_read_timeout.as_millis(),
            self.idle_timeout.as_millis(),
            self.body_read_timeout.as_millis(),
            self.response_write_timeout.as_millis(),
            self.max_headers,
            self.max_header_bytes,
        )
    }
}

/// Serves `routes` on `listener` until `shutdown` completes, then closes the listener, asks
/// every connection to close once its request in flight is answered, and waits at most
/// `grace` for them.
///
/// `service` is `warp::service(routes)`, or any service of the same shape.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    limits: ServerLimits,
    metrics: Arc<ConnectionMetrics>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) where
    S: Service<Request<TimedBody<Incoming>>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (phase, phase_seen) = watch::channel(Phase::Serving);
    metrics.set_limit(limits.max_connections);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                metrics.limit_reached(limits.max_connections);
                tokio::select! {
                    slot = Arc::clone(&slots).acquire_owned() => slot.expect("never closed"),
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) if is_client_gone(&err) => {
                    log::debug!("a client left before its connection was accepted: {err}");
                    continue;
                }
                Err(err) => {
                    metrics.accept_failed(&err);
                    // Out of descriptors or memory: give closing connections a moment.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        metrics.opened();
        let (service, metrics) = (service.clone(), Arc::clone(&metrics));
        let phase = phase_seen.clone();
        tokio::spawn(CONNECTION_PEER.scope(peer, async move {
            connection::serve_connection(stream, service, limits, metrics, phase).await;
            drop(slot);
        }));
    }
    drop(listener);
    log::info!("shutting down: draining in-flight requests for up to {grace:?}");
    let _ = phase.send(Phase::Draining);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(grace, slots.acquire_many(all))
        .await
        .is_ok();
    if drained {
        log::info!("stopped");
    } else {
        log::warn!("grace period over; dropping requests still in flight");
        let _ = phase.send(Phase::Closing);
    }
}

/// Where the server is in its life; every connection watches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepting and serving.
    Serving,
    /// Finish the request in flight, then close.
    Draining,
    /// Close now, whatever is in flight.
    Closing,
}

/// Errors `accept` reports for a client that gave up before it was accepted: not ours.
fn is_client_gone(err: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        err.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    )
}
