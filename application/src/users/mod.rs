//! Use cases about users: registration, sign-in and the current user.

mod current_user;
mod login;
mod register;
mod user_profile;

pub use current_user::CurrentUserError;
pub use login::{LoginError, SignInThrottle, SignedIn};
pub use register::{RegisterError, Registration};
pub use user_profile::UserProfileError;
