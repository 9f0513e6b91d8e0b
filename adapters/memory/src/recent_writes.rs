//! `InProcessRecentWrites`: who wrote when, in this process, for read-your-own-writes routing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::UserId;
use domain::ports::RecentWrites;

/// The domain's [`RecentWrites`] in a map, bounded: entries older than `retention` are dropped
/// whenever the map grows past `capacity`.
///
/// One process only: behind a load balancer, a caller's next request may reach another instance
/// that has not seen the write (a shared store, such as Redis, closes that gap).
#[derive(Debug)]
pub struct InProcessRecentWrites {
    writes: Mutex<HashMap<UserId, DateTime<Utc>>>,
    retention: chrono::Duration,
    capacity: usize,
}

impl InProcessRecentWrites {
    /// Remembers writes for at least `retention` (the read-your-writes window).
    #[must_use]
    pub fn new(retention: Duration) -> Self {
        Self {
            writes: Mutex::new(HashMap::new()),
            retention: chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX),
            capacity: 100_000,
        }
    }
}

impl RecentWrites for InProcessRecentWrites {
    fn record(&self, caller: UserId, at: DateTime<Utc>) {
        let Ok(mut writes) = self.writes.lock() else {
            return;
        };
        writes.insert(caller, at);
        if writes.len() > self.capacity {
            let horizon = at - self.retention;
            writes.retain(|_, written| *written >= horizon);
        }
    }

    fn wrote_since(&self, caller: UserId, since: DateTime<Utc>) -> bool {
        self.writes
            .lock()
            .ok()
            .and_then(|writes| writes.get(&caller).copied())
            .is_some_and(|written| written >= since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_write_is_remembered_from_its_time_on() {
        let writes = InProcessRecentWrites::new(Duration::from_secs(5));
        let caller = UserId::from_uuid(Uuid::now_v7());
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("a time");
        assert!(!writes.wrote_since(caller, now - chrono::Duration::seconds(5)));
        writes.record(caller, now);
        assert!(writes.wrote_since(caller, now - chrono::Duration::seconds(5)));
        assert!(!writes.wrote_since(caller, now + chrono::Duration::seconds(1)));
        let other = UserId::from_uuid(Uuid::now_v7());
        assert!(!writes.wrote_since(other, now - chrono::Duration::seconds(5)));
    }

    #[test]
    fn old_entries_are_dropped_past_capacity() {
        let mut writes = InProcessRecentWrites::new(Duration::from_secs(5));
        writes.capacity = 2;
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("a time");
        let old = UserId::from_uuid(Uuid::now_v7());
        writes.record(old, now - chrono::Duration::seconds(60));
        writes.record(UserId::from_uuid(Uuid::now_v7()), now);
        writes.record(UserId::from_uuid(Uuid::now_v7()), now);
        assert_eq!(writes.writes.lock().map(|w| w.len()).unwrap_or(0), 2);
        assert!(!writes.wrote_since(old, now - chrono::Duration::seconds(120)));
    }
}
