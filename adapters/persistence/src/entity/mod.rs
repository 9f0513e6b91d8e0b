//! `SeaORM` entities, one per table, in the generated style; hand-written code lives elsewhere.

pub mod markets;
pub mod users;
