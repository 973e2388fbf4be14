//! patchwarden: a security advisory and patch distribution server.
//!
//! The crate map, top to bottom (a layer uses only those below it): `routes` (the
//! one route table), `handlers` (HTTP only: parse, authorise by extractor type, call
//! one service, render) with `http` (plumbing they share) and `auth` (extractors that
//! say who may call), `api` (wire types shared with `client`), `services` (business
//! operations, no HTTP), `jobs` (the background runner), `db`, `storage`, `signing`,
//! `domain` (pure rules, no I/O), `config`, `secrets`, `ids`; and beside them
//! `server`, `state`, `metrics`, `templates` (with `when`, how a screen shows a
//! moment), `telemetry`, `error`.
//!
//! Without the default `server` feature only the device side builds: `client::agent`
//! (the reference device agent) with the wire types of `api::device`, `signing` and
//! `domain`.

#![forbid(unsafe_code)]

pub mod api;
#[cfg(feature = "server")]
pub mod auth;
pub mod client;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod db;
pub mod domain;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod handlers;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod ids;
#[cfg(feature = "server")]
pub mod jobs;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod random;
#[cfg(feature = "server")]
pub mod routes;
#[cfg(feature = "server")]
pub mod secrets;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod services;
pub mod signing;
#[cfg(feature = "server")]
pub mod state;
#[cfg(feature = "server")]
pub mod storage;
#[cfg(feature = "server")]
pub mod telemetry;
#[cfg(feature = "server")]
pub mod templates;
#[cfg(feature = "server")]
pub mod when;
#[cfg(feature = "server")]
pub mod witness;
