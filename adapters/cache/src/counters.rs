//! `TierCounters`: the hit, miss and error counters of one cache tier, shared by its clones.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use domain::ports::CacheTierStats;

/// Hits, misses and errors of one tier since it was created; cloning shares them.
#[derive(Debug, Clone, Default)]
pub(crate) struct TierCounters(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
}

impl TierCounters {
    pub(crate) fn hit(&self) {
        self.0.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn miss(&self) {
        self.0.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn error(&self) {
        self.0.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A hit for `Some`, a miss for `None`.
    pub(crate) fn read<T>(&self, found: Option<&T>) {
        if found.is_some() {
            self.hit();
        } else {
            self.miss();
        }
    }

    /// The counts now, as the stats of `tier`.
    pub(crate) fn snapshot(&self, tier: &'static str) -> CacheTierStats {
        CacheTierStats {
            tier,
            hits: self.0.hits.load(Ordering::Relaxed),
            misses: self.0.misses.load(Ordering::Relaxed),
            errors: self.0.errors.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_count_together() {
        let counters = TierCounters::default();
        let other = counters.clone();
        counters.read(Some(&1));
        other.read::<u8>(None);
        other.miss();
        counters.error();
        assert_eq!(
            counters.snapshot("memory"),
            CacheTierStats {
                tier: "memory",
                hits: 1,
                misses: 2,
                errors: 1
            }
        );
    }
}
