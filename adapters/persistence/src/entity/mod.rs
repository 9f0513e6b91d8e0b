//! `SeaORM` entities, one per table, in the generated style; hand-written code lives elsewhere.

pub mod idempotency_keys;
pub mod jobs;
pub mod markets;
pub mod outbox_events;
pub mod positions;
pub mod refresh_tokens;
pub mod relay_cursors;
pub mod sessions;
pub mod users;
