//! The prediction-markets domain: entities, value objects, access policies and the ports to the outside world.
//!
//! This crate depends on no framework, database or network library; the `domain_stays_pure` test in
//! `tests/` reads `cargo metadata` and fails the build if that ever changes.

pub mod access;
pub mod event;
pub mod id;
pub mod image;
pub mod job;
pub mod listing;
pub mod market;
pub mod money;
pub mod ports;
pub mod position;
pub mod search;
pub mod session;
pub mod settlement;
pub mod user;

pub use access::{Actor, MarketAction, Permission, UserAction};
pub use event::{DomainEvent, RecordedEvent};
pub use id::{EventId, JobId, MarketId, PositionId, SessionId, UserId};
pub use image::ImageFormat;
pub use job::{Job, JobError, JobKind, JobState, NewJob, Priority, RetryPolicy};
pub use listing::{Page, PageRequest, SortDirection};
pub use market::{Category, Market, MarketDescription, MarketName, MarketStatus, Outcome};
pub use money::Amount;
pub use position::{Position, Side, Stake};
pub use session::{
    RefreshToken, RevokeReason, SecretDigest, Session, SessionLifetime, SessionMode, SessionState,
};
pub use user::{DisplayName, Email, Password, PasswordHash, Role, User};
