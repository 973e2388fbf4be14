//! Pure domain logic: the types that are checked once when built (roles, slugs,
//! emails, durations, identifiers) and the rules over them. Nothing here does I/O;
//! the database, HTTP and randomness live elsewhere.

pub mod duration;
pub mod email;
pub mod password;
pub mod role;
pub mod slug;

pub use duration::parse_duration;
pub use email::Email;
pub use password::NewPassword;
pub use role::Role;
pub use slug::Slug;
