//! Invalidations between instances: every invalidation is applied to this process's L1 tier at
//! once and published on the Redis channel `<prefix>:#invalidate`; a subscriber applies what
//! the other instances publish.
//!
//! Messages are one line: `n <namespace>`, `t <namespace> <tag> <tag> ...`,
//! `k <namespace> <key>` (the key is the rest of the line), or `a` (everything). A message
//! that cannot be parsed marks everything dead: losing an invalidation is worse than losing the
//! L1 contents. Publishing costs one command per write, and only when an L1 tier is
//! configured.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;

use super::key::Namespace;
use super::l1::L1;

/// How long the subscriber waits before dialling again after losing Redis.
const RESUBSCRIBE_BACKOFF: Duration = Duration::from_millis(200);

/// What was invalidated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidated<'a> {
    /// A whole namespace (hard or soft).
    Namespace(&'a Namespace),
    /// Some tags of a namespace.
    Tags(&'a Namespace, Vec<&'a str>),
    /// One entry.
    Key(&'a Namespace, &'a str),
    /// Everything under the prefix.
    Everything,
}

impl Invalidated<'_> {
    /// The message announcing it.
    pub fn message(&self) -> String {
        match self {
            Invalidated::Namespace(ns) => format!("n {ns}"),
            Invalidated::Tags(ns, tags) => format!("t {ns} {}", tags.join(" ")),
            Invalidated::Key(ns, key) => format!("k {ns} {key}"),
            Invalidated::Everything => "a".to_string(),
        }
    }

    /// Applies it to `l1`; `full_key` lays out a key of a namespace.
    pub fn apply(&self, l1: &L1, full_key: impl Fn(&Namespace, &str) -> String) {
        match self {
            Invalidated::Namespace(ns) => l1.mark_namespace(ns),
            Invalidated::Tags(ns, tags) => l1.mark_tags(ns, tags.iter().copied()),
            Invalidated::Key(ns, key) => l1.mark_key(&full_key(ns, key)),
            Invalidated::Everything => l1.mark_everything(),
        }
    }
}

/// Applies a received message to `l1`.
pub fn apply_message(l1: &L1, message: &str, full_key: impl Fn(&Namespace, &str) -> String) {
    let mut words = message.splitn(3, ' ');
    let kind = words.next().unwrap_or_default();
    let ns = words.next().and_then(|ns| Namespace::new(ns).ok());
    let rest = words.next();
    let parsed = match (kind, &ns, rest) {
        ("a", None, None) => Some(Invalidated::Everything),
        ("n", Some(ns), None) => Some(Invalidated::Namespace(ns)),
        ("t", Some(ns), Some(tags)) => Some(Invalidated::Tags(ns, tags.split(' ').collect())),
        ("k", Some(ns), Some(key)) => Some(Invalidated::Key(ns, key)),
        _ => None,
    };
    match parsed {
        Some(invalidated) => invalidated.apply(l1, full_key),
        None => {
            log::warn!("unreadable invalidation message {message:?}: dropping all of L1");
            l1.mark_everything();
        }
    }
}

/// Keeps a subscription to `channel` for as long as `l1` exists: L1 is live while subscribed,
/// off (and forgotten) while not. `client_for(attempt)` gives the server to subscribe on; each
/// attempt after a lost subscription asks for the next one (another seed node of a cluster).
pub fn spawn_subscriber(
    client_for: impl Fn(usize) -> Option<redis::Client> + Send + 'static,
    channel: String,
    l1: Weak<L1>,
    full_key: impl Fn(&Namespace, &str) -> String + Send + Sync + 'static,
) {
    tokio::spawn(async move {
        let mut logged_down = false;
        for attempt in 0.. {
            let Some(client) = client_for(attempt) else {
                log::warn!("L1 off: no server to subscribe to invalidations on");
                return;
            };
            match subscribe(&client, &channel, &l1, &full_key).await {
                Ok(()) => return, // L1 is gone
                Err(err) => {
                    if !logged_down {
                        log::warn!("L1 off: no invalidation subscription ({err}); retrying");
                        logged_down = true;
                    }
                }
            }
            let Some(l1) = l1.upgrade() else { return };
            l1.set_live(false);
            drop(l1);
            tokio::time::sleep(RESUBSCRIBE_BACKOFF).await;
        }
    });
}

/// One subscription, until it breaks (`Err`) or L1 is dropped (`Ok`).
async fn subscribe(
    client: &redis::Client,
    channel: &str,
    l1: &Weak<L1>,
    full_key: &(impl Fn(&Namespace, &str) -> String + Send + Sync),
) -> Result<(), redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    match l1.upgrade() {
        Some(l1) => {
            l1.set_live(true);
            log::info!("L1 on: subscribed to {channel}");
        }
        None => return Ok(()),
    }
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let Some(l1) = l1.upgrade() else {
            return Ok(());
        };
        let payload: String = message.get_payload().unwrap_or_default();
        apply_message(&l1, &payload, full_key);
    }
    Err(redis::RedisError::from((
        redis::ErrorKind::IoError,
        "subscription closed",
    )))
}

/// Shared by the manager: the L1 tier and where to publish.
pub struct Announcer {
    /// The L1 tier.
    pub l1: Arc<L1>,
    /// The channel invalidations go to.
    pub channel: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let ns = Namespace::new("items").unwrap();
        let cases = [
            Invalidated::Namespace(&ns),
            Invalidated::Tags(&ns, vec!["item:1", "items:lists"]),
            Invalidated::Key(&ns, "GET:/items?q=a b"),
            Invalidated::Everything,
        ];
        for case in cases {
            let l1 = L1::new(1 << 20, Duration::from_secs(1));
            l1.set_live(true);
            let before = l1.snapshot().unwrap();
            apply_message(&l1, &case.message(), |ns, key| format!("p:{ns}:{key}"));
            let after = l1.snapshot().unwrap();
            assert!(after > before, "{case:?} marked nothing");
        }
    }
}
