//! Id generators: time-ordered random UUIDs (v7) and a deterministic sequence for tests.

use std::sync::atomic::{AtomicU64, Ordering};

use domain::ports::IdGenerator;
use uuid::Uuid;

/// UUIDv7 from the system clock and random bits: unique, and ordered by creation time within
/// this process (the `uuid` crate keeps a monotonic counter), so new rows land at the end of
/// indexes.
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidV7Generator;

impl IdGenerator for UuidV7Generator {
    fn next_id(&self) -> Uuid {
        Uuid::now_v7()
    }
}

/// Predictable ids for tests: well-formed UUIDv7s with the timestamp fixed at
/// 2026-01-01T00:00:00Z and the counter 1, 2, 3... in the low bits, so they sort in the order
/// they were made. `019b76da-a800-7000-8000-000000000001` and so on.
#[derive(Debug)]
pub struct SequentialIdGenerator {
    next: AtomicU64,
}

impl SequentialIdGenerator {
    /// The Unix time in milliseconds written into every id.
    const TIMESTAMP_MS: u128 = 1_767_225_600_000;
    /// The counter occupies the 62 bits after the variant.
    const COUNTER_MASK: u64 = (1 << 62) - 1;

    /// A generator whose first id has counter 1.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            next: AtomicU64::new(1),
        }
    }

    /// The id with counter `n`, as the `n`-th call of [`IdGenerator::next_id`] returns it.
    #[must_use]
    pub const fn nth(n: u64) -> Uuid {
        let bits = (Self::TIMESTAMP_MS << 80)
            | (0x7 << 76) // version 7
            | (0b10 << 62) // RFC 9562 variant
            | (n & Self::COUNTER_MASK) as u128;
        Uuid::from_u128(bits)
    }
}

impl Default for SequentialIdGenerator {
    fn default() -> Self {
        Self::new()
    }
}

impl IdGenerator for SequentialIdGenerator {
    fn next_id(&self) -> Uuid {
        Self::nth(self.next.fetch_add(1, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use uuid::{Variant, Version};

    use super::*;

    #[test]
    fn v7_ids_are_unique_and_time_ordered() {
        let ids: Vec<Uuid> = (0..1_000).map(|_| UuidV7Generator.next_id()).collect();
        assert!(
            ids.iter()
                .all(|id| id.get_version() == Some(Version::SortRand))
        );
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn sequential_ids_are_predictable_well_formed_v7_and_ordered() {
        let ids = SequentialIdGenerator::new();
        let first = ids.next_id();
        let second = ids.next_id();
        assert_eq!(first, SequentialIdGenerator::nth(1));
        assert_eq!(second, SequentialIdGenerator::nth(2));
        assert_eq!(first.to_string(), "019b76da-a800-7000-8000-000000000001");
        assert!(first < second);
        for id in [first, second] {
            assert_eq!(id.get_version(), Some(Version::SortRand));
            assert_eq!(id.get_variant(), Variant::RFC4122);
        }
        let (seconds, _) = first
            .get_timestamp()
            .expect("a v7 id has a timestamp")
            .to_unix();
        assert_eq!(seconds, 1_767_225_600);
    }
}
