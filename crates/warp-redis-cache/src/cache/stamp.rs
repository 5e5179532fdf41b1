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
//! - An entry records the [`Stamp`] read *before* its response was computed (generation and
//!   clock) and the names of its tags.
//! - Both kinds of record expire, but never before an entry stored under them: each store
//!   extends them to the entry's lifetime. A record that is gone anyway (evicted, deleted)
//!   only kills entries, see below.
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
}
