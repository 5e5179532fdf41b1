//! The one rejection the cache filters raise themselves.
//!
//! Everything else a cached route rejects with is the wrapped route's own rejection, passed on
//! untouched. This one means the route answered but its body could not be read (the body
//! stream failed), so there is nothing to answer with: map it to a 500 in your `recover`.

/// The wrapped route's answer could not be used: its body stream failed, or (a bug) an answer
/// was taken twice. Answer it with a 500; the message is for the log, not for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterFailure(pub(crate) String);

impl FilterFailure {
    /// What went wrong, for the log.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl warp::reject::Reject for FilterFailure {}
