//! Validity records: what a namespace and its tags say about the entries stored under them, and
//! the one rule that judges an entry against them.
//!
//! # Records
//! - A namespace record, `<prefix>:#gen:<ns>`, holds `G:C:S`: the namespace's random
//!   generation `G`, its invalidation clock `C` (a counter bumped by every tag invalidation and
//!   soft purge in the namespace) and `S`, the clock of its latest soft purge. A bare `G` (as
//!   written before tags existed) reads as `G:0:0`.
//! - A tag record, `<prefix>:#tag:<ns>:<tag>`, holds `G:H:S`: the generation it belongs to and
//!   the clocks of the tag's latest hard and soft invalidation.
//! - The namespace's tag log, `<prefix>:#tags:<ns>`, holds `G:F:L` and a list of tag record
//!   keys, one a line ([`TagLog`]): every tag of generation `G` invalidated (hard or soft) at a
//!   clock in `(F, L]` is listed. Only stores read it, never hits.
//! - An entry records the [`Stamp`] read *before* its response was computed (generation and
//!   clock) and the names of its tags.
//! - Every record expires, but the namespace and tag records never before an entry stored under
//!   them: each store extends them to the entry's lifetime (and the tag log with the namespace
//!   record). A record that is gone anyway (evicted, deleted) only kills entries, see below.
//!
//! # The rule ([`judge`])
//! An entry is dead when its generation is not the namespace's, when one of its tags has no
//! record of that generation, or when a tag was invalidated at a clock later than the entry's.
//! It is stale (soft-purged) when the namespace or one of its tags was soft-purged later than
//! the entry's clock, or when the entry itself was marked. Otherwise it is valid.
//!
//! Why this is race-free: an invalidation runs after its write committed and bumps the clock
//! atomically with the records it touches. A reader whose stamp was read before that bump holds
//! an older clock, so whatever it stores from data read before the write is dead on arrival; a
//! reader whose stamp was read after it reads data after the write. A tag record that is
//! missing (never written, expired, evicted) counts as invalidated: no entry can outlive the
//! knowledge of its invalidation.
//!
//! # Tag records written by a store ([`missing_tag_record`])
//! An invalidation updates the tag records that exist and leaves missing ones alone (no key
//! for a tag nothing was filed under). So a store may find no record (or one of another
//! generation) for a tag of its entry, and must write one. The record it writes says "the
//! tag's latest invalidation was at clock `X`"; it is safe whenever `X` is at least the clock of
//! the tag's real latest invalidation, because overstating `X` only kills entries. A store
//! writes:
//! - `X = F`, the tag log's floor, when the log is of the current generation, complete up to the
//!   current clock (`L = C`) and does not list the tag: the tag was not invalidated in `(F, C]`,
//!   so its latest invalidation, if any, was at `F` or earlier;
//! - `X = C`, the current clock, otherwise (no log, a log of another generation or one that
//!   missed an invalidation, or a log that lists the tag): every invalidation so far was at `C`
//!   or earlier.
//!
//! So an entry under a tag without a record survives invalidations of *other* tags while its
//! response is computed (as long as its stamp is at least `F`: the log did not start over in the
//! meantime), which writing `X = C` always would not.
//!
//! Why the log's claim holds. Only [`super::scripts::INVALIDATE`] writes the log, in the same
//! atomic step as the clock bump from `c` to `c + 1` that it lists tags for: it extends a log of
//! the generation with `L = c` by this call's tags and sets `L = c + 1`, or else (no log, another
//! generation, `L != c`, or the log would pass [`TAG_LOG_MAX_BYTES`]) starts a new one with
//! `F = c`, `L = c + 1` and this call's tags. Either way every invalidation in `(F, L]` is
//! listed. A log is one string: it is lost whole (expired, evicted, deleted) or kept whole, and
//! a lost one reads as "no log", the conservative case. An invalidation that did not write the
//! log (an instance running the previous script during a rolling upgrade) leaves `L < C`, so
//! the log is not trusted until the next invalidation starts a new one.
//!
//! Hence the guarantee: if a tag `t` of an entry stamped `c0` was invalidated at `c1 > c0`
//! before the entry is stored, every record of `t` that exists at or after `c1` says `X >= c1`:
//! a record that existed at `c1` was updated to `c1`; a record written by a store after `c1`
//! has `X = C >= c1`, or `X = F` with `F >= c1` (a log with `F < c1` lists `t`). The record may
//! be lost before or after the store (expiry, eviction, deletion by an operator, `clear_all`'s
//! batches); a store that then finds none writes one by the same rule, and a lookup that finds
//! none misses. No time bound on requests, no eviction counter and no extra command on a hit is
//! needed; what a lost log costs is hits, never freshness.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// A namespace generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Generation(u64);

impl Generation {
    /// A new random generation.
    pub fn fresh() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        hasher.write_u128(now.as_nanos());
        Self(hasher.finish())
    }

    /// The generation recorded in an entry.
    pub fn from_value(value: u64) -> Self {
        Self(value)
    }

    /// The raw value, as recorded in entries.
    pub fn value(self) -> u64 {
        self.0
    }
}

/// The state of a namespace, parsed from its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamespaceState {
    /// The namespace generation.
    pub generation: Generation,
    /// The invalidation clock.
    pub clock: u64,
    /// The clock of the latest soft purge of the whole namespace (0: none).
    pub soft_at: u64,
}

impl NamespaceState {
    /// A new namespace with `generation` and nothing invalidated yet.
    pub fn new(generation: Generation) -> Self {
        Self {
            generation,
            clock: 0,
            soft_at: 0,
        }
    }

    /// Parses a record: `G:C:S`, or a bare `G`.
    pub fn parse(record: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(record).ok()?;
        let mut parts = text.split(':');
        let generation = Generation::from_value(parts.next()?.parse().ok()?);
        let (clock, soft_at) = match (parts.next(), parts.next(), parts.next()) {
            (None, _, _) => (0, 0),
            (Some(c), Some(s), None) => (c.parse().ok()?, s.parse().ok()?),
            _ => return None,
        };
        Some(Self {
            generation,
            clock,
            soft_at,
        })
    }

    /// The record text.
    pub fn to_record(self) -> String {
        format!(
            "{}:{}:{}",
            self.generation.value(),
            self.clock,
            self.soft_at
        )
    }

    /// The stamp an entry stored now records.
    pub fn stamp(self) -> Stamp {
        Stamp {
            generation: self.generation,
            clock: self.clock,
        }
    }
}

/// The state of one tag, parsed from its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagState {
    /// The namespace generation the record belongs to.
    pub generation: Generation,
    /// The clock of the tag's latest hard invalidation.
    pub hard_at: u64,
    /// The clock of the tag's latest soft invalidation.
    pub soft_at: u64,
}

impl TagState {
    /// Parses a record, `G:H:S`.
    pub fn parse(record: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(record).ok()?;
        let mut parts = text.split(':');
        let state = Self {
            generation: Generation::from_value(parts.next()?.parse().ok()?),
            hard_at: parts.next()?.parse().ok()?,
            soft_at: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(state)
    }

    /// The record text.
    pub fn to_record(self) -> String {
        format!(
            "{}:{}:{}",
            self.generation.value(),
            self.hard_at,
            self.soft_at
        )
    }
}

/// The most bytes a tag log keeps; past it, the next invalidation starts a new one.
pub const TAG_LOG_MAX_BYTES: usize = 16 * 1024;

/// A namespace's tag log, parsed from its record `G:F:L\n<tag record key>\n...`: every tag of
/// generation `G` invalidated (hard or soft) at a clock in `(F, L]` is listed. See the module
/// docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagLog {
    /// The namespace generation the log belongs to.
    pub generation: Generation,
    /// Invalidations at clocks up to this one may be missing from the log.
    pub floor: u64,
    /// The clock of the latest invalidation the log recorded.
    pub last: u64,
    /// `\n`, then each listed tag record key followed by `\n`.
    listed: Vec<u8>,
}

impl TagLog {
    /// Parses a record.
    pub fn parse(record: &[u8]) -> Option<Self> {
        let split = record.iter().position(|b| *b == b'\n')?;
        let (header, listed) = record.split_at(split);
        let mut parts = std::str::from_utf8(header).ok()?.split(':');
        let log = Self {
            generation: Generation::from_value(parts.next()?.parse().ok()?),
            floor: parts.next()?.parse().ok()?,
            last: parts.next()?.parse().ok()?,
            listed: listed.to_vec(),
        };
        parts.next().is_none().then_some(log)
    }

    /// The record text.
    pub fn to_record(&self) -> Vec<u8> {
        let mut record =
            format!("{}:{}:{}", self.generation.value(), self.floor, self.last).into_bytes();
        record.extend_from_slice(&self.listed);
        record
    }

    /// Whether the log lists `key`.
    pub fn lists(&self, key: &str) -> bool {
        log_lists(&self.listed, key)
    }

    /// The log after an invalidation of the tags under `keys` (none for a soft purge of the
    /// whole namespace) bumped the clock of the namespace in state `before` by one: `previous`
    /// extended when it was complete up to `before`'s clock and stays under `max_bytes`, else a
    /// new log that knows only this invalidation. Mirrors [`super::scripts::INVALIDATE`].
    pub fn after_invalidation(
        previous: Option<Self>,
        before: &NamespaceState,
        keys: &[String],
        max_bytes: usize,
    ) -> Self {
        let mut unique: Vec<&str> = Vec::with_capacity(keys.len());
        for key in keys {
            if !unique.contains(&key.as_str()) {
                unique.push(key);
            }
        }
        let continued =
            previous.filter(|log| log.generation == before.generation && log.last == before.clock);
        if let Some(mut log) = continued {
            let mut added = Vec::new();
            push_lines(&mut added, unique.iter().filter(|key| !log.lists(key)));
            if log.listed.len() + added.len() <= max_bytes {
                log.listed.extend_from_slice(&added);
                log.last = before.clock + 1;
                return log;
            }
        }
        let mut listed = b"\n".to_vec();
        push_lines(&mut listed, unique.iter());
        Self {
            generation: before.generation,
            floor: before.clock,
            last: before.clock + 1,
            listed,
        }
    }
}

/// Appends each key and a `\n`.
fn push_lines<'a>(listed: &mut Vec<u8>, keys: impl Iterator<Item = &'a &'a str>) {
    for key in keys {
        listed.extend_from_slice(key.as_bytes());
        listed.push(b'\n');
    }
}

/// Whether the lines `listed` (`\n`, then each key and `\n`) hold `key`.
fn log_lists(listed: &[u8], key: &str) -> bool {
    let mut line = Vec::with_capacity(key.len() + 2);
    line.push(b'\n');
    line.extend_from_slice(key.as_bytes());
    line.push(b'\n');
    listed.windows(line.len()).any(|window| window == line)
}

/// What a store writes into the missing (or foreign) record of the tag under `key`, for the
/// namespace in `state`, given its tag `log`: a tag the log proves was not invalidated since
/// its floor reads as invalidated at the floor, any other as invalidated at the current clock.
/// Mirrors [`super::scripts::STORE_TAGGED`].
pub fn missing_tag_record(state: &NamespaceState, log: Option<&TagLog>, key: &str) -> TagState {
    let complete = log.filter(|log| log.generation == state.generation && log.last == state.clock);
    let since = match complete {
        Some(log) if !log.lists(key) => log.floor,
        _ => state.clock,
    };
    TagState {
        generation: state.generation,
        hard_at: since,
        soft_at: since,
    }
}

/// What an entry records about the moment its response started to be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// The namespace generation then.
    pub generation: Generation,
    /// The namespace's invalidation clock then.
    pub clock: u64,
}

/// What an entry is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// Usable under its own lifetimes.
    Valid,
    /// Soft-purged: usable only as a stale entry (stale-while-revalidate, stale-if-error).
    SoftPurged,
    /// Invalidated: never served.
    Dead,
}

/// Judges an entry (its stamp, whether it was marked soft-purged) against the namespace's state
/// and the records of its tags (`None`: no record). See the module docs.
pub fn judge(
    entry: Stamp,
    marked_soft: bool,
    namespace: &NamespaceState,
    tags: impl IntoIterator<Item = Option<TagState>>,
) -> Validity {
    if entry.generation != namespace.generation {
        return Validity::Dead;
    }
    let mut soft = marked_soft || namespace.soft_at > entry.clock;
    for tag in tags {
        match tag {
            Some(tag) if tag.generation == namespace.generation => {
                if tag.hard_at > entry.clock {
                    return Validity::Dead;
                }
                soft |= tag.soft_at > entry.clock;
            }
            _ => return Validity::Dead,
        }
    }
    if soft {
        Validity::SoftPurged
    } else {
        Validity::Valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(clock: u64, soft_at: u64) -> NamespaceState {
        NamespaceState {
            generation: Generation::from_value(7),
            clock,
            soft_at,
        }
    }

    fn stamp(clock: u64) -> Stamp {
        Stamp {
            generation: Generation::from_value(7),
            clock,
        }
    }

    fn tag(hard_at: u64, soft_at: u64) -> Option<TagState> {
        Some(TagState {
            generation: Generation::from_value(7),
            hard_at,
            soft_at,
        })
    }

    #[test]
    fn records_round_trip_and_bare_generations_read_as_clock_zero() {
        let state = ns(5, 3);
        assert_eq!(
            NamespaceState::parse(state.to_record().as_bytes()),
            Some(state)
        );
        assert_eq!(NamespaceState::parse(b"7"), Some(ns(0, 0)));
        assert_eq!(NamespaceState::parse(b"7:1"), None);
        assert_eq!(NamespaceState::parse(b"7:1:2:3"), None);
        assert_eq!(NamespaceState::parse(b"x:1:2"), None);
        let tag_state = tag(4, 2).unwrap();
        assert_eq!(
            TagState::parse(tag_state.to_record().as_bytes()),
            Some(tag_state)
        );
        assert_eq!(TagState::parse(b"7:1"), None);
    }

    #[test]
    fn generation_mismatch_and_missing_tags_are_dead() {
        let other = Stamp {
            generation: Generation::from_value(8),
            clock: 9,
        };
        assert_eq!(judge(other, false, &ns(9, 0), []), Validity::Dead);
        assert_eq!(judge(stamp(9), false, &ns(9, 0), [None]), Validity::Dead);
        let foreign = Some(TagState {
            generation: Generation::from_value(8),
            hard_at: 0,
            soft_at: 0,
        });
        assert_eq!(judge(stamp(9), false, &ns(9, 0), [foreign]), Validity::Dead);
    }

    #[test]
    fn invalidations_after_the_stamp_count_and_earlier_ones_do_not() {
        let state = ns(10, 0);
        assert_eq!(judge(stamp(5), false, &state, [tag(5, 5)]), Validity::Valid);
        assert_eq!(judge(stamp(5), false, &state, [tag(6, 0)]), Validity::Dead);
        assert_eq!(
            judge(stamp(5), false, &state, [tag(0, 6), tag(1, 1)]),
            Validity::SoftPurged
        );
        assert_eq!(
            judge(stamp(5), false, &state, [tag(0, 6), tag(7, 0)]),
            Validity::Dead
        );
        assert_eq!(judge(stamp(5), false, &ns(10, 6), []), Validity::SoftPurged);
        assert_eq!(judge(stamp(6), false, &ns(10, 6), []), Validity::Valid);
        assert_eq!(judge(stamp(6), true, &ns(10, 6), []), Validity::SoftPurged);
    }

    fn keys(names: &[&str]) -> Vec<String> {
        names
            .iter()
            .map(|name| format!("p:#tag:ns:{name}"))
            .collect()
    }

    #[test]
    fn a_tag_log_lists_the_tags_invalidated_since_its_floor() {
        let first = TagLog::after_invalidation(None, &ns(4, 0), &keys(&["a", "b", "a"]), 1024);
        assert_eq!(
            first.to_record(),
            b"7:4:5\np:#tag:ns:a\np:#tag:ns:b\n".to_vec()
        );
        assert_eq!(TagLog::parse(&first.to_record()), Some(first.clone()));
        let second = TagLog::after_invalidation(Some(first), &ns(5, 0), &keys(&["b", "c"]), 1024);
        assert_eq!((second.floor, second.last), (4, 6));
        assert!(second.lists("p:#tag:ns:a") && second.lists("p:#tag:ns:c"));
        assert!(!second.lists("p:#tag:ns:") && !second.lists("p:#tag:ns:ab"));
        assert_eq!(second.to_record().len(), "7:4:6\n".len() + 3 * 12);
        // A soft purge of the namespace lists nothing but keeps the log complete.
        let third = TagLog::after_invalidation(Some(second), &ns(6, 0), &[], 1024);
        assert_eq!((third.floor, third.last), (4, 7));
        assert_eq!(TagLog::parse(b"7:4:6"), None);
        assert_eq!(TagLog::parse(b"7:4\nx\n"), None);
    }

    #[test]
    fn a_tag_log_starts_over_when_it_missed_a_clock_changed_generation_or_grew_too_big() {
        let log = TagLog::after_invalidation(None, &ns(4, 0), &keys(&["a"]), 1024);
        let missed = TagLog::after_invalidation(Some(log.clone()), &ns(6, 0), &keys(&["b"]), 1024);
        assert_eq!((missed.floor, missed.last), (6, 7));
        assert!(!missed.lists("p:#tag:ns:a") && missed.lists("p:#tag:ns:b"));
        let other = NamespaceState {
            generation: Generation::from_value(8),
            clock: 5,
            soft_at: 0,
        };
        let moved = TagLog::after_invalidation(Some(log.clone()), &other, &keys(&["b"]), 1024);
        assert_eq!((moved.generation, moved.floor), (other.generation, 5));
        let full = TagLog::after_invalidation(Some(log), &ns(5, 0), &keys(&["b"]), 20);
        assert_eq!((full.floor, full.last), (5, 6));
        assert!(!full.lists("p:#tag:ns:a") && full.lists("p:#tag:ns:b"));
    }

    #[test]
    fn a_missing_tag_record_reads_as_invalidated_at_the_floor_only_when_the_log_vouches() {
        let log = TagLog::after_invalidation(None, &ns(4, 0), &keys(&["a"]), 1024);
        let at = |log: Option<&TagLog>, state: NamespaceState, name: &str| {
            missing_tag_record(&state, log, &format!("p:#tag:ns:{name}")).hard_at
        };
        assert_eq!(at(Some(&log), ns(5, 0), "b"), 4);
        assert_eq!(at(Some(&log), ns(5, 0), "a"), 5);
        assert_eq!(at(None, ns(5, 0), "b"), 5);
        assert_eq!(at(Some(&log), ns(6, 0), "b"), 6, "the log missed clock 6");
        let written = missing_tag_record(&ns(5, 0), Some(&log), "p:#tag:ns:b");
        assert_eq!(
            (written.soft_at, written.generation),
            (4, Generation::from_value(7))
        );
    }
}
