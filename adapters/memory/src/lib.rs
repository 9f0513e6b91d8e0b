//! In-process adapters for every port of the domain: in-memory repositories, clocks, id generators and health probes.
//!
//! The repositories honour the port contracts exactly as the SQL adapters do (the same contract
//! suite runs against both), so use cases can be tested in microseconds and the composition root
//! can swap them for the real thing. [`SystemClock`] and [`UuidV7Generator`] are the production
//! implementations of their ports; [`FixedClock`] and [`SequentialIdGenerator`] are for
//! deterministic tests.

mod clock;
mod failure;
mod ids;
mod markets;
mod probe;
mod users;

pub use clock::{FixedClock, SystemClock};
pub use ids::{SequentialIdGenerator, UuidV7Generator};
pub use markets::InMemoryMarketRepository;
pub use probe::StaticProbe;
pub use users::InMemoryUserRepository;
