//! The L1 tier: recently read entries kept in this process, in front of Redis, so a hot key is
//! answered without a round trip.
//!
//! Bounded by bytes (moka, TinyLFU), and an entry never lives longer than the freshness its
//! Redis entry has left nor than `cache.l1_ttl_ms`. Invalidations reach every instance through
//! Redis pub/sub (see [`super::invalidation`]): each one is recorded here as a mark — "namespace
//! N", "tag T of N", "key K", or "everything" — with a sequence number, and an L1 entry is
//! served only if no mark that concerns it is newer than the moment its Redis read started.
//! That moment is taken *before* the read, so a mark that lands while an entry travels from
//! Redis into L1 still kills it. Marks are O(1) whatever the number of entries.
//!
//! While the subscription is down, L1 is off: nothing is served from it or put into it, and
//! everything in it is marked dead when the subscription comes back (messages may have been
//! missed). Values are opaque here (`Arc<dyn Any>`); the cache filter stores parsed responses.

use std::any::Any;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;

use super::key::Namespace;

/// Memory an entry takes besides its key and body: parsed metadata, prebuilt header maps, tag
/// names and moka's own bookkeeping. Measured with `scripts/bench_memory.sh` (RSS growth over
/// entries held, small list pages): about 2.2 KiB per entry in all, so the byte bound is a
/// bound on real memory, not on bodies alone.
const ENTRY_OVERHEAD_BYTES: usize = 2048;

/// A value held in L1 with what decides whether it may still be served.
pub struct L1Entry {
    /// What the caller stored.
    pub value: Arc<dyn Any + Send + Sync>,
    namespace: Namespace,
    tags: Box<[String]>,
    /// The sequence number taken before the Redis read that produced the value.
    seen: u64,
    expires_at: Instant,
    weight: u32,
}

struct L1Deadline;

impl Expiry<String, Arc<L1Entry>> for L1Deadline {
    fn expire_after_create(
        &self,
        _key: &String,
        entry: &Arc<L1Entry>,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(entry.expires_at.saturating_duration_since(created_at))
    }
}

/// A value to hold in L1 and what it belongs to.
pub struct Held<'a> {
    /// Its namespace.
    pub namespace: &'a Namespace,
    /// The tags it is filed under.
    pub tags: &'a [String],
    /// The value.
    pub value: Arc<dyn Any + Send + Sync>,
    /// About how many bytes it takes.
    pub bytes: usize,
    /// How long it stays fresh.
    pub lifetime: Duration,
}

/// The L1 tier; see the module docs.
pub struct L1 {
    entries: Cache<String, Arc<L1Entry>>,
    max_lifetime: Duration,
    /// Whether invalidations are being received (the subscription is up).
    live: AtomicBool,
    sequence: AtomicU64,
    /// The last mark of everything.
    everything_at: AtomicU64,
    /// The last mark of each namespace, tag and key, by a hash of what it names (a collision
    /// can only kill an entry that was still good, never keep a dead one), with when it was
    /// made. Sequence numbers are taken while the write lock is held, so a mark never
    /// overwrites a newer one.
    marks: RwLock<Marks>,
    hasher: RandomState,
}

/// The marks, and when old ones were last dropped.
struct Marks {
    by_name: HashMap<u64, (u64, Instant)>,
    swept_at: Instant,
}

/// Marks are dropped once older than the longest L1 lifetime plus this: no entry that a mark
/// could still concern (one read from Redis before the mark) can be held any longer.
const MARK_RETENTION_MARGIN: Duration = Duration::from_secs(60);
/// The mark count above which old marks are looked for (at most once a second).
const MARKS_BEFORE_SWEEP: usize = 4096;

impl L1 {
    /// An L1 tier of at most `max_bytes`, holding entries at most `max_lifetime`. It starts
    /// off: [`Self::set_live`] turns it on once invalidations are received.
    pub fn new(max_bytes: u64, max_lifetime: Duration) -> Self {
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key: &String, entry: &Arc<L1Entry>| entry.weight)
            .expire_after(L1Deadline)
            .build();
        Self {
            entries,
            max_lifetime,
            live: AtomicBool::new(false),
            sequence: AtomicU64::new(1),
            everything_at: AtomicU64::new(0),
            marks: RwLock::new(Marks {
                by_name: HashMap::new(),
                swept_at: Instant::now(),
            }),
            hasher: RandomState::new(),
        }
    }

    /// Whether L1 is in use now.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Turns L1 on (invalidations are received) or off. Either way everything held is
    /// marked dead: while off, invalidations may have been missed.
    pub fn set_live(&self, live: bool) {
        self.mark_everything();
        self.live.store(live, Ordering::Release);
    }

    /// The sequence number to pass to [`Self::insert`], taken before reading what will be
    /// inserted; `None` while L1 is off.
    pub fn snapshot(&self) -> Option<u64> {
        self.is_live()
            .then(|| self.sequence.load(Ordering::Acquire))
    }

    /// The value under `full_key`, if it is held, unexpired and no invalidation reached it.
    pub fn get(&self, full_key: &str) -> Option<Arc<dyn Any + Send + Sync>> {
        if !self.is_live() {
            return None;
        }
        let entry = self.entries.get(full_key)?;
        if entry.expires_at <= Instant::now() || !self.still_valid(full_key, &entry) {
            return None;
        }
        Some(Arc::clone(&entry.value))
    }

    fn still_valid(&self, full_key: &str, entry: &L1Entry) -> bool {
        if self.everything_at.load(Ordering::Acquire) >= entry.seen {
            return false;
        }
        let marks = self.marks.read().unwrap_or_else(|e| e.into_inner());
        if marks.by_name.is_empty() {
            return true;
        }
        let newer = |mark: u64| {
            marks
                .by_name
                .get(&mark)
                .is_some_and(|(at, _)| *at >= entry.seen)
        };
        let ns = entry.namespace.as_str();
        if newer(self.mark_of(Mark::Namespace, ns, ""))
            || newer(self.mark_of(Mark::Key, full_key, ""))
        {
            return false;
        }
        !entry
            .tags
            .iter()
            .any(|tag| newer(self.mark_of(Mark::Tag, ns, tag)))
    }

    fn mark_of(&self, kind: Mark, first: &str, second: &str) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        hasher.write_u8(kind as u8);
        hasher.write(first.as_bytes());
        hasher.write_u8(0xff); // not UTF-8: separates the parts unambiguously
        hasher.write(second.as_bytes());
        hasher.finish()
    }

    /// Holds `held` under `full_key` for at most its lifetime (and the tier's maximum), unless
    /// an invalidation since `seen` reached it.
    pub fn insert(&self, full_key: &str, held: Held<'_>, seen: u64) {
        let Held {
            namespace,
            tags,
            value,
            bytes,
            lifetime,
        } = held;
        let lifetime = lifetime.min(self.max_lifetime);
        if !self.is_live() || lifetime.is_zero() {
            return;
        }
        let entry = L1Entry {
            value,
            namespace: namespace.clone(),
            tags: tags.into(),
            seen,
            expires_at: Instant::now() + lifetime,
            weight: u32::try_from(full_key.len() + bytes + ENTRY_OVERHEAD_BYTES)
                .unwrap_or(u32::MAX),
        };
        if self.still_valid(full_key, &entry) {
            self.entries.insert(full_key.to_string(), Arc::new(entry));
        }
    }

    fn next(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::AcqRel)
    }

    fn mark(&self, mark: u64) {
        let mut marks = self.marks.write().unwrap_or_else(|e| e.into_inner());
        let at = self.next();
        let now = Instant::now();
        marks.by_name.insert(mark, (at, now));
        if marks.by_name.len() > MARKS_BEFORE_SWEEP
            && now.duration_since(marks.swept_at) > Duration::from_secs(1)
        {
            let keep = self.max_lifetime + MARK_RETENTION_MARGIN;
            marks
                .by_name
                .retain(|_, (_, made)| now.duration_since(*made) < keep);
            marks.swept_at = now;
        }
    }

    /// Every entry of `namespace` is dead.
    pub fn mark_namespace(&self, namespace: &Namespace) {
        self.mark(self.mark_of(Mark::Namespace, namespace.as_str(), ""));
    }

    /// Every entry of `namespace` filed under one of `tags` is dead.
    pub fn mark_tags<'a>(&self, namespace: &Namespace, tags: impl IntoIterator<Item = &'a str>) {
        for tag in tags {
            self.mark(self.mark_of(Mark::Tag, namespace.as_str(), tag));
        }
    }

    /// The entry under `full_key` is dead.
    pub fn mark_key(&self, full_key: &str) {
        self.entries.invalidate(full_key);
        self.mark(self.mark_of(Mark::Key, full_key, ""));
    }

    /// Everything is dead.
    pub fn mark_everything(&self) {
        let mut marks = self.marks.write().unwrap_or_else(|e| e.into_inner());
        let at = self.next();
        self.everything_at.fetch_max(at, Ordering::AcqRel);
        // Older marks are covered by this one.
        marks.by_name.retain(|_, (mark_at, _)| *mark_at > at);
        drop(marks);
        self.entries.invalidate_all();
    }

    /// How many marks are held.
    #[cfg(test)]
    fn marks_held(&self) -> usize {
        self.marks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_name
            .len()
    }

    /// Entries held and their total weight in bytes (approximate, for stats).
    pub fn usage(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.entry_count(), self.entries.weighted_size())
    }
}

/// What a mark names.
#[derive(Clone, Copy)]
enum Mark {
    Namespace,
    Tag,
    Key,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l1() -> L1 {
        let l1 = L1::new(1 << 20, Duration::from_secs(60));
        l1.set_live(true);
        l1
    }

    fn put(l1: &L1, key: &str, tags: &[&str], seen: u64) {
        let ns = Namespace::new("n").unwrap();
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        let held = Held {
            namespace: &ns,
            tags: &tags,
            value: Arc::new(key.to_string()),
            bytes: 10,
            lifetime: Duration::from_secs(60),
        };
        l1.insert(key, held, seen);
    }

    #[test]
    fn marks_reach_exactly_their_entries() {
        let l1 = l1();
        let ns = Namespace::new("n").unwrap();
        let seen = l1.snapshot().unwrap();
        put(&l1, "a", &["t1"], seen);
        put(&l1, "b", &["t2"], seen);
        assert!(l1.get("a").is_some() && l1.get("b").is_some());
        l1.mark_tags(&ns, ["t1"]);
        assert!(l1.get("a").is_none());
        assert!(l1.get("b").is_some());
        l1.mark_key("b");
        assert!(l1.get("b").is_none());
        let seen = l1.snapshot().unwrap();
        put(&l1, "c", &[], seen);
        l1.mark_namespace(&ns);
        assert!(l1.get("c").is_none());
    }

    #[test]
    fn a_mark_between_the_snapshot_and_the_insert_wins() {
        let l1 = l1();
        let ns = Namespace::new("n").unwrap();
        let seen = l1.snapshot().unwrap();
        l1.mark_namespace(&ns); // lands while the value travels from Redis
        put(&l1, "a", &[], seen);
        assert!(l1.get("a").is_none());
        let later = l1.snapshot().unwrap();
        put(&l1, "a", &[], later);
        assert!(l1.get("a").is_some());
    }

    #[test]
    fn off_means_nothing_served_and_coming_back_forgets_everything() {
        let l1 = l1();
        let seen = l1.snapshot().unwrap();
        put(&l1, "a", &[], seen);
        l1.set_live(false);
        assert!(l1.snapshot().is_none());
        assert!(l1.get("a").is_none());
        l1.set_live(true);
        assert!(
            l1.get("a").is_none(),
            "an entry from before the outage came back"
        );
    }

    #[test]
    fn old_marks_are_dropped_once_no_entry_can_need_them() {
        let l1 = L1::new(1 << 20, Duration::ZERO);
        l1.set_live(true);
        let ns = Namespace::new("n").unwrap();
        let names: Vec<String> = (0..MARKS_BEFORE_SWEEP + 10)
            .map(|i| format!("t{i}"))
            .collect();
        l1.mark_tags(&ns, names.iter().map(String::as_str));
        assert_eq!(
            l1.marks_held(),
            MARKS_BEFORE_SWEEP + 10,
            "not swept within a second"
        );
        // Pretend the marks were made long ago.
        {
            let mut marks = l1.marks.write().unwrap();
            let long_ago = Instant::now() - MARK_RETENTION_MARGIN - Duration::from_secs(2);
            for (_, made) in marks.by_name.values_mut() {
                *made = long_ago;
            }
            marks.swept_at = long_ago;
        }
        l1.mark_tags(&ns, ["fresh"]);
        assert_eq!(l1.marks_held(), 1, "old marks kept");
    }

    #[test]
    fn marking_everything_drops_the_marks_it_covers_and_moves_forward() {
        let l1 = l1();
        let ns = Namespace::new("n").unwrap();
        l1.mark_tags(&ns, ["old"]);
        l1.mark_everything();
        assert_eq!(
            l1.marks_held(),
            0,
            "marks covered by everything are dropped"
        );
        let before = l1.everything_at.load(Ordering::Acquire);
        l1.mark_everything();
        assert!(l1.everything_at.load(Ordering::Acquire) > before);
    }

    #[test]
    fn lifetimes_are_capped() {
        let l1 = L1::new(1 << 20, Duration::from_millis(20));
        l1.set_live(true);
        let ns = Namespace::new("n").unwrap();
        let seen = l1.snapshot().unwrap();
        let held = Held {
            namespace: &ns,
            tags: &[],
            value: Arc::new(1u8),
            bytes: 1,
            lifetime: Duration::from_secs(60),
        };
        l1.insert("a", held, seen);
        assert!(l1.get("a").is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(l1.get("a").is_none());
    }
}
