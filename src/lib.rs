//! patchwarden: a security advisory and patch distribution server.
//!
//! The crate map, top to bottom (a layer uses only those below it): `routes` (the
//! one route table), `handlers` (HTTP only: parse, authorise by extractor type, call
//! one service, render) with `http` (plumbing they share) and `auth` (extractors that
//! say who may call), `api` (wire types shared with `client`), `services` (business
//! operations, no HTTP), `jobs` (the background runner), `db`, `storage`, `signing`,
//! `domain` (pure rules, no I/O), `config`, `secrets`, `ids`; and beside them
//! `server`, `state`, `metrics`, `templates`, `telemetry`, `error`.

#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod client;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod handlers;
pub mod http;
pub mod ids;
pub mod jobs;
pub mod metrics;
pub mod routes;
pub mod secrets;
pub mod server;
pub mod services;
pub mod signing;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod templates;
