//! What happens to connections, as Prometheus metrics with a fixed label set, and the few log
//! lines worth an operator's attention.
//!
//! A client that disconnects mid-request is normal on the internet: it is counted under
//! `http_connections_closed_total{reason="aborted"}` and logged at debug, never at error.

use std::time::Duration;

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use warp_redis_cache::admin::ThrottledLog;

/// Why a connection ended; the `reason` label of `http_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client or the server closed it after a complete exchange.
    Completed,
    /// No request arrived within the idle timeout.
    IdleTimeout,
    /// A request's headers did not arrive within the header read timeout.
    HeaderTimeout,
    /// A response sat on the client's full socket for the response write timeout (a client
    /// that does not read what it asked for).
    WriteTimeout,
    /// The client went away mid-request or mid-response (reset, broken pipe, early EOF).
    Aborted,
    /// The client sent something that is not HTTP/1 (hyper answered 400 or 431 and closed).
    Malformed,
    /// Anything else.
    Other,
}

impl CloseReason {
    /// Every reason, in label order.
    pub const ALL: [CloseReason; 7] = [
        CloseReason::Completed,
        CloseReason::IdleTimeout,
        CloseReason::HeaderTimeout,
        CloseReason::WriteTimeout,
        CloseReason::Aborted,
        CloseReason::Malformed,
        CloseReason::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Completed => "completed",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::HeaderTimeout => "header_timeout",
            CloseReason::WriteTimeout => "write_timeout",
            CloseReason::Aborted => "aborted",
            CloseReason::Malformed => "malformed",
            CloseReason::Other => "other",
        }
    }

    /// Classifies the error a connection ended with.
    pub fn of(err: &hyper::Error) -> Self {
        use std::io::ErrorKind;
        if err.is_incomplete_message() || err.is_canceled() || err.is_closed() {
            return CloseReason::Aborted;
        }
        if err.is_parse() || err.is_parse_too_large() || err.is_parse_status() {
            return CloseReason::Malformed;
        }
        if err.is_timeout() {
            return CloseReason::HeaderTimeout;
        }
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            if let Some(io) = cause.downcast_ref::<std::io::Error>() {
                return match io.kind() {
                    ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::BrokenPipe
                    | ErrorKind::UnexpectedEof
                    | ErrorKind::NotConnected => CloseReason::Aborted,
                    _ => CloseReason::Other,
                };
            }
            source = cause.source();
        }
        CloseReason::Other
    }
}

/// Connection counters and gauges, registered in the service's registry.
pub struct ConnectionMetrics {
    open: IntGauge,
    limit: IntGauge,
    accepted: IntCounter,
    closed: IntCounterVec,
    limit_reached: IntCounter,
    body_timeouts: IntCounter,
    accept_errors: IntCounter,
    limit_warning: ThrottledLog,
    other_errors: ThrottledLog,
}

impl ConnectionMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Self {
        let gauge = |name: &str, help: &str| {
            let gauge = IntGauge::new(name, help).expect("valid metric definition");
            registry
                .register(Box::new(gauge.clone()))
                .expect("registered once");
            gauge
        };
        let counter = |name: &str, help: &str| {
            let counter = IntCounter::new(name, help).expect("valid metric definition");
            registry
                .register(Box::new(counter.clone()))
                .expect("registered once");
            counter
        };
        let closed = IntCounterVec::new(
            Opts::new(
                "http_connections_closed_total",
                "Connections closed, by why",
            ),
            &["reason"],
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(closed.clone()))
            .expect("registered once");
        for reason in CloseReason::ALL {
            closed.with_label_values(&[reason.as_str()]);
        }
        Self {
            open: gauge("http_connections_open", "Client connections open now"),
            limit: gauge(
                "http_connections_limit",
                "Most client connections served at once (app.max_connections)",
            ),
            accepted: counter("http_connections_accepted_total", "Connections accepted"),
            closed,
            limit_reached: counter(
                "http_connection_limit_reached_total",
                "Times a connection waited in the backlog because the cap was reached",
            ),
            body_timeouts: counter(
                "http_request_body_timeouts_total",
                "Request bodies not received within app.body_read_timeout_ms",
            ),
            accept_errors: counter(
                "http_accept_errors_total",
                "Failed accept calls (for example: out of file descriptors)",
            ),
            limit_warning: ThrottledLog::new(Duration::from_secs(10)),
            other_errors: ThrottledLog::new(Duration::from_secs(10)),
        }
    }

    pub(super) fn set_limit(&self, limit: usize) {
        self.limit.set(i64::try_from(limit).unwrap_or(i64::MAX));
    }

    pub(super) fn opened(&self) {
        self.accepted.inc();
        self.open.inc();
    }

    pub(super) fn closed(&self, reason: CloseReason, detail: Option<&hyper::Error>) {
        self.open.dec();
        self.closed.with_label_values(&[reason.as_str()]).inc();
        match (reason, detail) {
            (CloseReason::Other, Some(err)) => {
                self.other_errors
                    .warn(|| format!("connection error: {err}"));
            }
            (_, Some(err)) => log::debug!("connection closed ({}): {err}", reason.as_str()),
            (_, None) => log::debug!("connection closed ({})", reason.as_str()),
        }
    }

    pub(super) fn limit_reached(&self, limit: usize) {
        self.limit_reached.inc();
        self.limit_warning.warn(|| {
            format!(
                "connection cap reached: {limit} connections open (app.max_connections); \
                 new clients wait in the listen backlog until one closes"
            )
        });
    }

    pub(super) fn accept_failed(&self, err: &std::io::Error) {
        self.accept_errors.inc();
        self.other_errors.warn(|| format!("accept failed: {err}"));
    }

    pub(super) fn body_timed_out(&self) {
        self.body_timeouts.inc();
    }
}
