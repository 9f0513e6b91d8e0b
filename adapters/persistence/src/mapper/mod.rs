//! Mappers between domain types and `SeaORM` models; models never leave this crate.

pub(crate) mod job;
pub(crate) mod market;
pub(crate) mod position;
pub(crate) mod session;
pub(crate) mod user;

use chrono::{DateTime, SubsecRound, Utc};

/// A timestamp as it is stored: whole microseconds, the precision PostgreSQL keeps. SQLite would
/// keep nanoseconds; cutting them here makes both stores read back the same value.
pub(crate) fn stored(time: DateTime<Utc>) -> DateTime<Utc> {
    time.trunc_subsecs(6)
}
