//! Single-flight: concurrent misses for the same key in one process run the origin once.
//!
//! The first miss becomes the leader and runs the route; later ones follow, waiting (up to a
//! bound) for the leader's entry and answering with it. If the leader's response cannot be
//! shared (not storable) or the leader goes away, followers run the route themselves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::entry::EntryMeta;
use super::response::Representation;
use crate::cache::Stamp;

/// What a leader hands its followers.
#[derive(Debug)]
pub struct SharedEntry {
    /// Stored metadata.
    pub meta: EntryMeta,
    /// The body.
    pub representation: Representation,
}

/// What a flight's followers see: nothing yet, the leader's entry, or that the origin failed.
#[derive(Debug, Clone)]
pub enum Slot {
    /// The leader is still asking.
    Pending,
    /// The leader's entry, for every follower to answer with.
    Shared(Arc<SharedEntry>),
    /// The origin failed (its 5xx status, or `None`: no answer in time); followers do not ask
    /// it again.
    Failed(Option<u16>),
}

/// The misses in flight, by key.
#[derive(Debug, Default)]
pub struct Flights {
    in_flight: Mutex<HashMap<String, (u64, watch::Receiver<Slot>)>>,
    next_id: AtomicU64,
}

/// This request's part in a flight.
pub enum Role {
    /// Run the origin and publish what it answered.
    Leader(Leader),
    /// Wait for the leader.
    Follower(watch::Receiver<Slot>),
}

/// The request running the origin for a key; leaving (on drop) ends the flight.
pub struct Leader {
    flights: Arc<Flights>,
    key: String,
    id: u64,
    sender: watch::Sender<Slot>,
}

impl Flights {
    /// Joins the flight for `key`, leading it when there is none.
    pub fn join(self: &Arc<Self>, key: &str) -> Role {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, receiver)) = in_flight.get(key) {
            return Role::Follower(receiver.clone());
        }
        let (sender, receiver) = watch::channel(Slot::Pending);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        in_flight.insert(key.to_string(), (id, receiver));
        Role::Leader(Leader {
            flights: Arc::clone(self),
            key: key.to_string(),
            id,
            sender,
        })
    }
}

impl Leader {
    /// Hands `entry` to every follower.
    pub fn publish(&self, entry: Arc<SharedEntry>) {
        self.sender.send_replace(Slot::Shared(entry));
    }

    /// Tells every follower that the origin failed (`status`: its 5xx, or `None` when it did
    /// not answer in time), so that they do not all ask a failing origin again.
    pub fn fail(&self, status: Option<u16>) {
        self.sender.send_replace(Slot::Failed(status));
    }

    /// [`Self::fail`], unless an entry was published already (a server error the origin said
    /// may be stored is shared like any answer).
    pub fn fail_unless_shared(&self, status: Option<u16>) {
        self.sender.send_if_modified(|slot| match slot {
            Slot::Pending => {
                *slot = Slot::Failed(status);
                true
            }
            _ => false,
        });
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        let mut in_flight = self
            .flights
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if in_flight
            .get(&self.key)
            .is_some_and(|(id, _)| *id == self.id)
        {
            in_flight.remove(&self.key);
        }
    }
}

/// Waits up to `bound` for the leader's entry; `None` when it has none to share, went away, or
/// took too long.
pub async fn follow(receiver: watch::Receiver<Slot>, bound: Duration) -> Option<Arc<SharedEntry>> {
    match follow_flight(receiver, bound).await {
        Followed::Shared(shared) => Some(shared),
        Followed::Failed(_) | Followed::LeaderLeft | Followed::TimedOut => None,
    }
}

/// How following a flight ended.
pub enum Followed {
    /// The leader shared its entry.
    Shared(Arc<SharedEntry>),
    /// The origin failed for the leader (its 5xx status, or `None`: no answer in time).
    Failed(Option<u16>),
    /// The leader finished without an entry to share (its answer was not storable, or was
    /// for another variant): the follower must ask for itself.
    LeaderLeft,
    /// The leader did not finish within the bound.
    TimedOut,
}

/// [`follow`], saying why no entry came.
pub async fn follow_flight(mut receiver: watch::Receiver<Slot>, bound: Duration) -> Followed {
    let settled = |slot: &Slot| !matches!(slot, Slot::Pending);
    let waited = tokio::time::timeout(bound, receiver.wait_for(settled)).await;
    match waited {
        Ok(Ok(slot)) => match slot.clone() {
            Slot::Shared(shared) => Followed::Shared(shared),
            Slot::Failed(status) => Followed::Failed(status),
            Slot::Pending => Followed::LeaderLeft,
        },
        Ok(Err(_)) => Followed::LeaderLeft,
        Err(_) => Followed::TimedOut,
    }
}

/// Flights are per stamp: a request that saw a newer stamp (it started after a write) must
/// never take the answer of an origin read that began before the write.
pub(crate) fn flight_key(stamp: Stamp, key: &str) -> String {
    format!("{:016x}:{:x}:{key}", stamp.generation.value(), stamp.clock)
}
