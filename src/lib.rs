//! patchwarden: a security advisory and patch distribution server.
//!
//! The crate map: `config` (settings → validated `Config`), `db` (connections, pool,
//! migrations, models), `domain` (pure rules), `ids`, `secrets` (tokens, hashes),
//! `accounts` (customer, user and token operations), `auth` (request extractors),
//! `handlers` and `routes` (HTTP), `server` (middleware and binding), `state`,
//! `metrics`, `ratelimit`, `templates` and `telemetry`.

#![forbid(unsafe_code)]

pub mod accounts;
pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod handlers;
pub mod ids;
pub mod metrics;
pub mod patches;
pub mod publishing;
pub mod ratelimit;
pub mod resumable;
pub mod routes;
pub mod secrets;
pub mod server;
pub mod signing;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod templates;
pub mod upload;
