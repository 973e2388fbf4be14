//! The JSON API under `/api/v1`.

pub mod advisories;
pub mod anomalies;
pub mod customers;
pub mod devices;
pub mod enrollment_tokens;
pub mod entitlements;
pub mod evidence;
pub mod exposure;
pub mod images;
pub mod keys;
pub mod log;
pub mod me;
pub mod patches;
pub mod products;
pub mod pulls;
pub mod query;
pub mod rollouts;
pub mod session;
pub mod tokens;
pub mod uploads;
pub mod users;
pub mod vex;
pub mod webhooks;
pub mod windows;
