//! HTML pages rendered with the embedded tera templates.

pub mod account;
pub mod advisories;
pub mod customers;
pub mod fleet;
pub mod home;
pub mod log;
pub mod login;
pub mod patches;
pub mod people;
pub mod rollouts;
pub mod vendor;
