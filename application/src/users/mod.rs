//! Use cases about users: registration, the current user, profiles and administration.

mod current_user;
mod manage_users;
mod register;
mod user_profile;

pub use current_user::CurrentUserError;
pub use manage_users::{ProfileChange, UserChange, UserListError, UserUpdateError};
pub use register::{RegisterError, Registration};
pub use user_profile::UserProfileError;
