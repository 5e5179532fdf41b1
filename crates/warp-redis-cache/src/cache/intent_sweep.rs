//! What this process needs to sweep for abandoned write intents: the namespaces its busting
//! filters write to and the name its intents and heartbeat carry. The state behind
//! [`super::intents`], held by the manager.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use super::key::Namespace;
use super::stamp::Generation;

/// The namespaces this process's busting filters write to, swept for abandoned intents, and
/// the name its intents and heartbeat carry.
#[derive(Debug)]
pub(super) struct IntentSweep {
    pub(super) namespaces: Mutex<HashSet<Namespace>>,
    pub(super) running: AtomicBool,
    pub(super) owner: String,
}

impl Default for IntentSweep {
    fn default() -> Self {
        Self {
            namespaces: Mutex::new(HashSet::new()),
            running: AtomicBool::new(false),
            owner: format!("{:016x}", Generation::fresh().value()),
        }
    }
}
