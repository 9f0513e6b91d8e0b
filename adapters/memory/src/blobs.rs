//! [`InMemoryBlobStore`]: blobs in a map, with switches that make it report a full store or an outage.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use domain::ports::{Blob, BlobError, BlobKey, BlobStore};

/// Blobs kept in process. [`Self::set_full`] makes every `put` fail with [`BlobError::Full`]
/// (nothing is stored), [`Self::set_unavailable`] makes every operation fail with
/// [`BlobError::Unavailable`]: the failures a disk or an object store can have, for tests.
#[derive(Debug, Default)]
pub struct InMemoryBlobStore {
    blobs: Mutex<BTreeMap<BlobKey, Blob>>,
    full: AtomicBool,
    unavailable: AtomicBool,
}

impl InMemoryBlobStore {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// While on, every `put` fails with [`BlobError::Full`].
    pub fn set_full(&self, full: bool) {
        self.full.store(full, Ordering::SeqCst);
    }

    /// While on, every operation fails with [`BlobError::Unavailable`].
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// The keys stored, in order.
    #[must_use]
    pub fn keys(&self) -> Vec<BlobKey> {
        self.blobs
            .lock()
            .map(|blobs| blobs.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn check(&self) -> Result<(), BlobError> {
        if self.unavailable.load(Ordering::SeqCst) {
            Err(BlobError::Unavailable(
                "the in-memory blob store is switched off (simulated outage)".to_owned(),
            ))
        } else {
            Ok(())
        }
    }

    fn locked(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<BlobKey, Blob>>, BlobError> {
        self.blobs.lock().map_err(|_| {
            BlobError::Unavailable("the in-memory blob store's lock was poisoned".to_owned())
        })
    }
}

#[async_trait]
impl BlobStore for InMemoryBlobStore {
    async fn put(&self, key: &BlobKey, bytes: &[u8], content_type: &str) -> Result<(), BlobError> {
        self.check()?;
        if self.full.load(Ordering::SeqCst) {
            return Err(BlobError::Full);
        }
        self.locked()?.insert(
            key.clone(),
            Blob {
                bytes: bytes.to_vec(),
                content_type: content_type.to_owned(),
            },
        );
        Ok(())
    }

    async fn get(&self, key: &BlobKey) -> Result<Option<Blob>, BlobError> {
        self.check()?;
        Ok(self.locked()?.get(key).cloned())
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        self.check()?;
        self.locked()?.remove(key);
        Ok(())
    }
}
