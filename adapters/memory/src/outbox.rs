//! `InMemoryOutbox`: events numbered 1, 2, 3... in commit order, visible once their transaction commits.

use async_trait::async_trait;
use domain::RecordedEvent;
use domain::ports::{Outbox, RepositoryError, StoredEvent};

use crate::failure::OutageSwitch;
use crate::store::Scope;

/// The domain's [`Outbox`] over the events of an [`crate::InMemoryStore`], or of one of its
/// transactions.
///
/// Sequence numbers start at 1 and grow by exactly 1 per recorded event, in commit order, with no
/// gaps: transactions run one at a time and take their numbers from their working copy, so the
/// numbers of a rolled-back transaction are handed out again. `record` outside a transaction
/// commits the event at once; inside one it joins the outbox at commit. `after` returns committed
/// events only, in a transaction too (never the transaction's own pending ones).
#[derive(Debug)]
pub struct InMemoryOutbox {
    scope: Scope,
    outage: OutageSwitch,
}

impl InMemoryOutbox {
    pub(crate) fn in_scope(scope: Scope) -> Self {
        Self {
            scope,
            outage: OutageSwitch::default(),
        }
    }

    /// While `true`, every operation of this outbox fails with [`RepositoryError::Unavailable`]
    /// and changes nothing, as a database that cannot be reached would.
    /// [`crate::InMemoryStore::set_unavailable`] switches the whole store off.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.outage.set(unavailable);
    }
}

#[async_trait]
impl Outbox for InMemoryOutbox {
    async fn record(&self, event: &RecordedEvent) -> Result<(), RepositoryError> {
        self.outage.check()?;
        self.scope
            .write_recording(|state, recorded| {
                let sequence = state.last_sequence + 1;
                state.last_sequence = sequence;
                recorded.push(StoredEvent {
                    sequence,
                    event: event.clone(),
                });
                Ok(())
            })
            .await
    }

    async fn after(&self, after: i64, limit: u64) -> Result<Vec<StoredEvent>, RepositoryError> {
        self.outage.check()?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        self.scope.read(|state| {
            // The events are in sequence order: skip those at or below `after`.
            let start = state
                .events
                .partition_point(|stored| stored.sequence <= after);
            state
                .events
                .iter()
                .skip(start)
                .take(limit)
                .cloned()
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use domain::ports::UnitOfWork as _;

    use super::*;
    use crate::InMemoryStore;
    use crate::store::testing::event;

    fn sequences(events: &[StoredEvent]) -> Vec<i64> {
        events.iter().map(|stored| stored.sequence).collect()
    }

    #[tokio::test]
    async fn sequences_start_at_one_and_follow_the_commit_order() {
        let store = InMemoryStore::new();
        let outbox = store.outbox();
        outbox.record(&event(1)).await.expect("recorded at once");
        let first = store.unit_of_work().begin().await.expect("a transaction");
        first.outbox().record(&event(2)).await.expect("recorded");
        first.outbox().record(&event(3)).await.expect("recorded");
        assert_eq!(
            sequences(&first.outbox().after(0, 10).await.expect("a read")),
            vec![1],
            "a transaction's own events are not committed yet"
        );
        first.commit().await.expect("a commit");
        outbox.record(&event(4)).await.expect("recorded at once");

        let all = outbox.after(0, 10).await.expect("a read");
        assert_eq!(sequences(&all), vec![1, 2, 3, 4]);
        let events: Vec<_> = all.into_iter().map(|stored| stored.event).collect();
        assert_eq!(events, vec![event(1), event(2), event(3), event(4)]);
    }

    #[tokio::test]
    async fn after_resumes_past_a_sequence_and_stops_at_the_limit() {
        let store = InMemoryStore::new();
        let outbox = store.outbox();
        for n in 1..=5 {
            outbox.record(&event(n)).await.expect("recorded");
        }
        assert_eq!(
            sequences(&outbox.after(2, 2).await.expect("a read")),
            vec![3, 4]
        );
        assert_eq!(
            sequences(&outbox.after(4, 10).await.expect("a read")),
            vec![5]
        );
        assert_eq!(
            sequences(&outbox.after(5, 10).await.expect("a read")),
            vec![]
        );
        assert_eq!(
            sequences(&outbox.after(-7, 1).await.expect("a read")),
            vec![1]
        );
        assert_eq!(
            sequences(&outbox.after(0, 0).await.expect("a read")),
            vec![]
        );
    }

    #[tokio::test]
    async fn a_switched_off_outbox_records_nothing() {
        let store = InMemoryStore::new();
        store.outbox().set_unavailable(true);
        assert!(matches!(
            store.outbox().record(&event(1)).await,
            Err(RepositoryError::Unavailable(_))
        ));
        store.outbox().set_unavailable(false);
        assert_eq!(store.outbox().after(0, 10).await.expect("a read"), vec![]);
    }
}
