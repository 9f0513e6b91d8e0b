//! Route handlers, one module per resource.

pub mod auth;
pub mod health;
pub mod images;
pub mod jobs;
pub mod markets;
pub mod positions;
pub mod search;
pub mod users;
