//! Cryptographic adapters: argon2id password hashing and HS256 JWT access tokens behind the domain's ports.
//!
//! - [`Argon2Hasher`] implements [`domain::ports::PasswordHasher`];
//! - [`JwtIssuer`] implements [`domain::ports::TokenIssuer`];
//! - [`RandomSecrets`] implements [`domain::ports::SecretGenerator`].

mod password;
mod secret;
mod token;

pub use password::{Argon2Hasher, HashingConfig, MAX_CANDIDATE_BYTES};
pub use secret::{RandomSecrets, SECRET_BYTES};
pub use token::{JwtConfig, JwtConfigError, JwtIssuer, MAX_TOKEN_BYTES, MAX_TTL, MIN_SECRET_BYTES};
