//! Ports: the traits through which the domain and the use cases reach everything outside.
//!
//! They are object-safe (`#[async_trait]`) so that the composition root can pick adapters from
//! configuration at run time, and mockable with the `mocks` feature.

mod blobs;
mod cache;
mod events;
mod jobs;
mod mail;
mod rate_limit;
mod repository;
mod search;
mod security;
mod sessions;
mod system;
mod unit_of_work;

pub use blobs::{Blob, BlobError, BlobKey, BlobStore, InvalidBlobKey};
pub use cache::{Cache, CacheEntry, CacheError, CacheTierStats};
pub use events::{EventBus, EventBusError, EventSubscription, RelayCursors};
pub use jobs::{Enqueued, JobQueue};
pub use mail::{Email, InvalidEmail, MailError, Mailer};
pub use rate_limit::{InvalidQuota, Quota, RateDecision, RateLimitError, RateLimiter};
pub use repository::{MAX_BATCH, MarketRepository, RepositoryError, UserRepository};
pub use search::{EmbeddingError, EmbeddingProvider, KeywordSearch, VectorIndex, VectorIndexError};
pub use security::{
    AccessClaims, HashError, IssuedToken, NewSecret, PasswordHasher, SecretGenerator, TokenError,
    TokenIssuer,
};
pub use sessions::SessionRepository;
pub use system::{Clock, HealthProbe, IdGenerator, ProbeError, RecentWrites};
pub use unit_of_work::{
    Claim, ClaimRequest, IdempotencyScope, IdempotencyStore, Outbox, PositionRepository,
    StoredEvent, StoredResponse, Transaction, UnitOfWork,
};

#[cfg(feature = "mocks")]
pub use blobs::MockBlobStore;
#[cfg(feature = "mocks")]
pub use events::MockRelayCursors;
#[cfg(feature = "mocks")]
pub use jobs::MockJobQueue;
#[cfg(feature = "mocks")]
pub use mail::MockMailer;
#[cfg(feature = "mocks")]
pub use rate_limit::MockRateLimiter;
#[cfg(feature = "mocks")]
pub use repository::{MockMarketRepository, MockUserRepository};
#[cfg(feature = "mocks")]
pub use security::{MockPasswordHasher, MockSecretGenerator, MockTokenIssuer};
#[cfg(feature = "mocks")]
pub use sessions::MockSessionRepository;
#[cfg(feature = "mocks")]
pub use system::{MockClock, MockIdGenerator, MockRecentWrites};

/// The cause of an infrastructure failure, kept for logs and never shown to clients.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
