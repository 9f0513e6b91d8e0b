//! `InMemoryRelayCursors`: relay positions and leases in this process's memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::ports::{RelayCursors, RepositoryError};

/// One relay's position and lease.
#[derive(Debug, Clone)]
struct Cursor {
    position: i64,
    holder: String,
    lease_until: DateTime<Utc>,
}

/// Relay cursors in memory, honouring the port's lease rules. Cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct InMemoryRelayCursors {
    cursors: Arc<Mutex<HashMap<String, Cursor>>>,
}

impl InMemoryRelayCursors {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl RelayCursors for InMemoryRelayCursors {
    async fn lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<i64>, RepositoryError> {
        // Every change is made whole under the lock: a poisoned lock still holds a valid map.
        let mut cursors = self.cursors.lock().unwrap_or_else(PoisonError::into_inner);
        let cursor = cursors.entry(name.to_owned()).or_insert_with(|| Cursor {
            position: 0,
            holder: holder.to_owned(),
            lease_until: until,
        });
        if cursor.holder != holder && cursor.lease_until > now {
            return Ok(None);
        }
        cursor.holder = holder.to_owned();
        cursor.lease_until = until;
        Ok(Some(cursor.position))
    }

    async fn advance(
        &self,
        name: &str,
        holder: &str,
        position: i64,
    ) -> Result<bool, RepositoryError> {
        let mut cursors = self.cursors.lock().unwrap_or_else(PoisonError::into_inner);
        match cursors.get_mut(name) {
            Some(cursor) if cursor.holder == holder => {
                cursor.position = cursor.position.max(position);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
